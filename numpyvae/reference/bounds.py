"""Bounds on log p(x) as heads over log-weights: the sampled ELBO and IWAE.

Every model gives, for k samples z_i of q(z|x) per example, its
log-weights log w_i = log p(x, z_i) - log q(z_i|x), an array of shape
(k, n) (`model.log_weights_forward`, `hierarchy.log_weights_forward`).
The notes rewrite p(x) = E_{z~q(.|x)}[w], so each bound is a function of
those weights alone, written here once for every model:

    sampled ELBO:  elbo(x) = (1/k) sum_i log w_i       (Jensen, per sample)
    IWAE bound:    L_k(x)  = log (1/k) sum_i w_i       (Jensen, on the mean)

with L_1 = elbo and elbo <= L_k <= log p(x) in expectation, L_k growing
with k (Burda, Grosse and Salakhutdinov, 2016, Section 3, Theorem 1).
Training minimises loss = -mean_x bound(x) (`loss_forward`); its
gradient reaches the parameters through the model's log-weights
backward. For the IWAE bound, with the self-normalised weights
w~_i = w_i / sum_l w_l (a softmax of log w over the samples),

    dL_k/dlog w_i = w~_i,   so   dL_k/dtheta = sum_i w~_i dlog w_i/dtheta:

each sample's ordinary gradient weighted by its share of the total
weight (docs/derivations.md, "The IWAE objective"). The training step
runs the same heads on its fused log-weights (fused_step.py).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.special import logsumexp, softmax

Array = NDArray[np.floating]

OBJECTIVES = ("elbo", "iwae")


def elbo_bound_forward(log_w: Array) -> tuple[Array, int]:
    """The sampled ELBO per example: the mean of the k log-weights.

    Parameters
    ----------
    log_w : ndarray, shape (k, n)

    Returns
    -------
    bound : ndarray, shape (n,)
    cache : int, k

    Notes
    -----
    Forward:   elbo = (1/k) sum_i log w_i
    Backward:  delbo/dlog w_i = 1/k

    References
    ----------
    Burda, Grosse and Salakhutdinov, "Importance Weighted Autoencoders"
    (2016), Section 3: the bound L_1, the VAE's, estimated with k
    samples; the notes, the ELBO by Jensen's inequality.

    Examples
    --------
    >>> elbo_bound_forward(np.array([[0.0], [2.0]]))[0]
    array([1.])
    """
    return log_w.mean(axis=0), log_w.shape[0]


def elbo_bound_backward(dbound: Array, cache: int) -> Array:
    """dlog_w (k, n) of `elbo_bound_forward` given dbound (n,).

    Examples
    --------
    >>> elbo_bound_backward(np.array([1.0]), 2)
    array([[0.5],
           [0.5]])
    """
    k = cache
    return np.broadcast_to(dbound * (1.0 / k), (k, dbound.shape[0])).copy()


def iwae_bound_forward(log_w: Array) -> tuple[Array, Array]:
    """The IWAE bound per example: the log of the mean of the k weights.

    Parameters
    ----------
    log_w : ndarray, shape (k, n)

    Returns
    -------
    bound : ndarray, shape (n,), in log_w's dtype
    cache : ndarray, shape (k, n), the self-normalised weights w~

    Notes
    -----
    Forward:   L_k = log (1/k) sum_i exp(log w_i)
                   = logsumexp_i(log w_i) - log k   (no overflow)
    Backward:  dL_k/dlog w_i = w~_i = softmax_i(log w)_i; the columns of
               w~ sum to 1.

    References
    ----------
    Burda, Grosse and Salakhutdinov, "Importance Weighted Autoencoders"
    (2016), Section 3: the bound L_k and Theorem 1 (L_k <= L_{k+1}
    <= log p(x)); the notes, the importance-sampling identity
    p(x) = E_q[w].

    Examples
    --------
    >>> bound, w_tilde = iwae_bound_forward(np.log(np.array([[1.0], [3.0]])))
    >>> np.exp(bound), w_tilde[:, 0]  # the mean weight 2, and 1/4, 3/4
    (array([2.]), array([0.25, 0.75]))
    """
    k = log_w.shape[0]
    bound = logsumexp(log_w, axis=0) - log_w.dtype.type(math.log(k))  # (n,)
    return bound.astype(log_w.dtype, copy=False), softmax(log_w, axis=0)


def iwae_bound_backward(dbound: Array, cache: Array) -> Array:
    """dlog_w = w~ * dbound of `iwae_bound_forward`: the softmax weights.

    References
    ----------
    Burda, Grosse and Salakhutdinov (2016), Section 3: the gradient of
    L_k as the w~-weighted average of the single-sample gradients.

    Examples
    --------
    >>> _, w_tilde = iwae_bound_forward(np.log(np.array([[1.0], [3.0]])))
    >>> iwae_bound_backward(np.array([2.0]), w_tilde)
    array([[0.5],
           [1.5]])
    """
    w_tilde = cache
    return w_tilde * dbound


def loss_forward(log_w: Array, log_lik: Array, objective: str):
    """loss = -mean_x bound(x) over a batch, from the model's log-weights.

    Parameters
    ----------
    log_w : ndarray, shape (k, n)
        The model's log-weights of k samples per example.
    log_lik : ndarray, shape (k, n)
        Their log p(x|z) parts, for the reported terms.
    objective : {"elbo", "iwae"}
        The bound: `elbo_bound_forward` or `iwae_bound_forward`.

    Returns
    -------
    loss : float
        Nats per example.
    terms : dict of (n,) arrays
        ``elbo`` (mean_i log w_i), ``iwae`` (log mean_i w_i),
        ``log_lik`` (mean_i log p(x|z_i)) and ``kl`` = log_lik - elbo,
        the KL sampled at the same z (its expectation is KL(q || r)).
    cache : tuple, for `loss_backward`

    Raises
    ------
    ValueError
        For an unknown objective.

    References
    ----------
    Burda, Grosse and Salakhutdinov (2016), Section 3: training on L_k
    (k = 1 is the VAE's sampled ELBO).

    Examples
    --------
    >>> log_w = np.log(np.array([[1.0, 1.0], [3.0, 1.0]]))
    >>> loss, terms, _ = loss_forward(log_w, log_w - 1.0, "iwae")
    >>> round(loss, 6) == round(-float(np.log(2.0)) / 2, 6), terms["kl"]
    (True, array([-1., -1.]))
    """
    elbo, _ = elbo_bound_forward(log_w)
    iwae, w_tilde = iwae_bound_forward(log_w)
    if objective == "elbo":
        bound, cache = elbo, log_w.shape[0]
    elif objective == "iwae":
        bound, cache = iwae, w_tilde
    else:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
    loss = -float(np.mean(bound, dtype=np.float64))
    mean_log_lik = log_lik.mean(axis=0)
    terms = {"elbo": elbo, "iwae": iwae, "log_lik": mean_log_lik, "kl": mean_log_lik - elbo}
    return loss, terms, (objective, cache, log_w.shape[1], log_w.dtype)


def loss_over_log_weights(log_weights: tuple, objective: str):
    """`loss_forward` over what a model's ``log_weights_forward`` returns.

    `log_weights` is ``(log_w, terms, cache)`` (`model.log_weights_forward`,
    `hierarchy.log_weights_forward`); returns ``(loss, terms, cache)``,
    its cache ``(head_cache, log_weights_cache)``: the head's for
    `loss_backward`, the model's for its ``log_weights_backward``.

    Examples
    --------
    >>> log_w = np.zeros((2, 3))
    >>> loss, terms, (head, mine) = loss_over_log_weights(
    ...     (log_w, {"log_lik": log_w}, "the model's cache"), "iwae")
    >>> loss, mine
    (-0.0, "the model's cache")
    """
    log_w, parts, log_weights_cache = log_weights
    loss, terms, head_cache = loss_forward(log_w, parts["log_lik"], objective)
    return loss, terms, (head_cache, log_weights_cache)


def loss_backward(cache) -> Array:
    """dloss/dlog_w (k, n) of `loss_forward`: the bound's backward of
    dloss/dbound = -1/n (the batch mean), for the model's log-weights
    backward to take on.

    Examples
    --------
    >>> log_w = np.zeros((4, 2))
    >>> loss_backward(loss_forward(log_w, log_w, "elbo")[2])[0]  # -1 / (k n)
    array([-0.125, -0.125])
    """
    objective, head_cache, n, dtype = cache
    dbound = np.full(n, -1.0 / n, dtype=dtype)
    if objective == "elbo":
        return elbo_bound_backward(dbound, head_cache)
    return iwae_bound_backward(dbound, head_cache)
