"""Estimators of log p_theta(x).

The notes write p_theta(x) = E_{z~r}[p_theta(x|z)], an integral with no
closed form; these functions estimate its logarithm. The sampled
estimators work in log space: each keeps a running logsumexp of its
log-weights over chunks of samples and subtracts log k at the end (the
log-mean-exp of `log_mean_exp`, computed a chunk at a time), so tiny
likelihoods (MNIST's are near exp(-100)) never underflow.

* `naive_log_likelihood`: the notes' plain Monte-Carlo average over z
  drawn from the prior, under a log; biased low by Jensen's inequality.
* `elbo`: the notes' lower bound, reconstruction minus the analytic KL.
* `iwae_bound`: the notes' importance-sampling identity, averaged over k
  draws of q(z|x) before the log; k = 1 is the ELBO, k -> infinity
  approaches log p(x) (Burda, Grosse and Salakhutdinov, 2016).
* `exact_log_likelihood`: the closed form of the linear-Gaussian VAE,
  the yardstick the others are tested against.

Speed. `_block_log_weights` and `_log_mean_weight` below are the
reference: the log-weights of a block of (samples x examples) rows
written as the notes have them. `iwae_bound` and `naive_log_likelihood`
run the same sum rearranged for speed (fused_eval.py; for the MNIST
784-400-20 model about twice as fast), held equal to the reference by
tests/test_fused_eval.py for every configuration.

Memory. Both forms keep a running logsumexp per example in float64 and
work on a block of rows at a time, so the memory in use is bounded by
`MEMORY_BUDGET` whatever k and n are. In the reference one decoder row
(one z and its copy of x) costs at most
``itemsize * (8 d_x + 4 sum(hidden) + 4 d_z)`` bytes: the copy of x, the
decoder output, up to five temporaries of the log-likelihood, and per
hidden layer its pre-activation, activation and cache; the noise of one
chunk of samples for all n examples, (chunk, n, d_z), gets a quarter of
the budget and the rows the rest (`chunk_plan`). The fast form needs
less: blocks of at most `fused_eval.BLOCK_ROWS` rows and noise chunks of
at most `fused_eval.NOISE_VALUES` normals (`fused_eval.block_plan`).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import cho_factor, cho_solve
from scipy.special import logsumexp

from . import fused_eval
from ._validation import check_int
from .hierarchical_vae import HierarchicalVAE
from .hierarchy import log_weights_forward
from .model import decoder_forward, encoder_forward, log_lik_forward
from .vae import VAE, as_generator

Array = NDArray[np.floating]

MEMORY_BUDGET = 256 * 2**20  # bytes for one estimator call's working arrays
LOG_2PI = math.log(2.0 * math.pi)


def log_mean_exp(a: Array, axis: int = 0) -> Array:
    """log((1/m) sum_i exp(a_i)) along `axis`, without overflow.

    Notes
    -----
    log_mean_exp(a) = logsumexp(a) - log(m), and logsumexp subtracts the
    maximum before exponentiating. Float input keeps its dtype; integer
    or boolean input is computed in float64.

    Raises
    ------
    TypeError
        For complex or non-numeric input.

    Examples
    --------
    >>> float(log_mean_exp(np.array([-1000.0, -1000.0])))
    -1000.0
    >>> float(log_mean_exp([1, 3]))  # log((e + e^3) / 2), not truncated
    2.433780830483027
    """
    a = np.asarray(a)
    if a.dtype.kind in "iub":
        a = a.astype(np.float64)
    elif a.dtype.kind != "f":
        raise TypeError(f"a: expected real numbers, got an array of dtype {a.dtype}")
    m = a.shape[axis]
    if m == 0:
        raise ValueError(f"a: expected at least one entry along axis {axis}, got shape {a.shape}")
    out = logsumexp(a, axis=axis) - np.log(a.dtype.type(m))
    return out.astype(a.dtype, copy=False)


def _check_model(model) -> VAE:
    if not isinstance(model, VAE):
        raise TypeError(f"model: expected a numpyvae.VAE, got {type(model).__name__}")
    return model


def _check_width(model: VAE, estimator: str) -> None:
    """q(z|x) must be a density: a fixed posterior needs delta > 0."""
    if model.config.posterior == "fixed" and model.config.delta == 0:
        raise ValueError(f"model: {estimator} needs the density q(z|x), but this model's "
                         "posterior has delta=0 (a point mass); use a model with delta > 0")


def _optional_size(value, name: str) -> int | None:
    return None if value is None else check_int(value, name, 1)


def chunk_plan(model: VAE, n: int, k: int, chunk_size: int | None = None,
               batch_size: int | None = None) -> tuple[int, int]:
    """Samples and examples per decoder block: ``(chunk_size, batch_size)``.

    Sizes left as None are chosen so the block fits `MEMORY_BUDGET` (see
    the module docstring for the per-row cost); given sizes are kept
    (capped at k and n).

    Examples
    --------
    >>> model = VAE(784, 20, hidden=(400,))
    >>> chunk_plan(model, n=10_000, k=5000)
    (83, 76)
    """
    c = model.config
    itemsize = np.dtype(c.dtype).itemsize
    row_bytes = itemsize * (8 * c.input_dim + 4 * sum(c.hidden) + 4 * c.latent_dim)
    rows = max(1, (MEMORY_BUDGET - MEMORY_BUDGET // 4) // row_bytes)
    if chunk_size is None:
        eps_cap = (MEMORY_BUDGET // 4) // (itemsize * n * c.latent_dim)
        chunk_size = max(1, min(eps_cap, rows))
    chunk_size = min(chunk_size, k)
    if batch_size is None:
        batch_size = max(1, rows // chunk_size)
    return chunk_size, min(batch_size, n)


def _block_log_weights(model: VAE, x: Array, eps: Array, proposal: str) -> Array:
    """log w for a block: x (b, d_x), eps (s, b, d_z) -> (s, b) float64.

    "prior":     z = eps,                   log w = log p(x|z)
    "posterior": z = mu + std * eps,        log w = log p(x|z) + log r(z)
                                                    - log q(z|x)
    """
    config = model.config
    s, b, d_z = eps.shape
    if proposal == "prior":
        z = eps
        log_ratio = 0.0
    else:
        mu, log_var, _ = encoder_forward(model.params, x, config)  # (b, d_z)
        if log_var is None:
            log_var = np.full_like(mu, 2.0 * math.log(config.delta))
        z = mu + np.exp(0.5 * log_var) * eps  # (s, b, d_z)
        # log r(z) - log q(z|x); the log(2 pi) terms cancel, and
        # (z - mu) / std is eps exactly, so no division by a tiny std.
        z64, eps64 = z.astype(np.float64), eps.astype(np.float64)
        log_ratio = -0.5 * (z64 * z64 - eps64 * eps64 - log_var.astype(np.float64)).sum(-1)
    out, _ = decoder_forward(model.params, z.reshape(s * b, d_z), config)  # (s*b, d_x)
    x_rep = np.broadcast_to(x, (s, *x.shape)).reshape(s * b, -1)
    log_lik, _ = log_lik_forward(x_rep, out, config)
    return log_lik.reshape(s, b).astype(np.float64) + log_ratio


def _log_mean_weight(model: VAE, x: Array, k: int, rng: np.random.Generator,
                     proposal: str, chunk_size: int | None, batch_size: int | None) -> Array:
    """log (1/k) sum_i w_i per example, streamed over blocks (float64 sums).

    The noise is drawn chunk by chunk of samples as (chunk, n, d_z) arrays:
    sample-major, example next, so the stream -- and so the result, up to
    rounding -- does not depend on `chunk_size` or `batch_size`.
    """
    n, d_z = x.shape[0], model.config.latent_dim
    chunk_size, batch_size = chunk_plan(model, n, k, chunk_size, batch_size)
    total = np.full(n, -np.inf)  # running log sum_i w_i, float64
    for start in range(0, k, chunk_size):
        s = min(chunk_size, k - start)
        eps = rng.standard_normal((s, n, d_z), dtype=model.dtype)
        for lo in range(0, n, batch_size):
            hi = min(lo + batch_size, n)
            log_w = _block_log_weights(model, x[lo:hi], eps[:, lo:hi], proposal)
            total[lo:hi] = np.logaddexp(total[lo:hi], logsumexp(log_w, axis=0))
    return (total - math.log(k)).astype(model.dtype)


def naive_log_likelihood(model: VAE, x, m: int, rng, chunk_size: int | None = None,
                         batch_size: int | None = None) -> Array:
    """Plain Monte-Carlo estimate of log p(x), with z from the prior.

    Parameters
    ----------
    model : VAE
    x : ndarray, shape (n, d_x)
        Converted once to the model's dtype.
    m : int
        Prior samples per example, >= 1.
    rng : numpy.random.Generator or int
    chunk_size, batch_size : int, optional
        Samples and examples per decoder block; None chooses them from
        `MEMORY_BUDGET`. The result does not depend on them.

    Returns
    -------
    ndarray, shape (n,)
        One estimate per example, in the model's dtype.

    Notes
    -----
    log p_hat(x) = log (1/m) sum_i p(x|z_i),   z_i ~ r(z) = N(0, I),
    computed in log space as logsumexp_i log p(x|z_i) - log m. The average of p(x|z_i) is
    unbiased for p(x), but its log is not: by Jensen's inequality
    E[log p_hat(x)] <= log p(x), the gap shrinking as m grows.

    References
    ----------
    The notes, "Latent Generative Models": the Monte-Carlo estimate and
    why its log is biased.

    Examples
    --------
    >>> model = VAE(3, 2, hidden=(), likelihood="gaussian", dtype="float64")
    >>> x = np.zeros((2, 3))
    >>> naive_log_likelihood(model, x, 100, np.random.default_rng(0)).shape
    (2,)
    """
    model = _check_model(model)
    x = model.as_input(x)
    m = check_int(m, "m", 1)
    return fused_eval.log_mean_weight(model, x, m, as_generator(rng), "prior", MEMORY_BUDGET,
                                      _optional_size(chunk_size, "chunk_size"),
                                      _optional_size(batch_size, "batch_size"),
                                      reference=_block_log_weights)


def elbo(model: VAE, x, rng) -> Array:
    """The evidence lower bound per example: one sample and the exact KL.

    Parameters
    ----------
    model : VAE
        Its posterior must be a density (delta > 0 if fixed).
    x : ndarray, shape (n, d_x)
    rng : numpy.random.Generator or int

    Returns
    -------
    ndarray, shape (n,)

    Notes
    -----
    elbo(x) = log p(x|z) - KL(q(.|x) || r),   z = mu + std * eps,
    eps ~ N(0, I), with the KL in closed form. Its expectation over eps
    is <= log p(x).

    Examples
    --------
    >>> model = VAE(3, 2, hidden=(), likelihood="gaussian", dtype="float64")
    >>> x = np.zeros((5000, 3))  # one x, 5000 draws of eps
    >>> bound = elbo(model, x, np.random.default_rng(0))
    >>> bool(bound.mean() < exact_log_likelihood(model, x[:1])[0])
    True
    """
    model = _check_model(model)
    x = model.as_input(x)
    _check_width(model, "elbo")
    rng = as_generator(rng)
    terms = model.elbo_terms(x, rng)
    return terms["log_lik"] - terms["kl"]


def iwae_bound(model: VAE, x, k: int, rng, chunk_size: int | None = None,
               batch_size: int | None = None) -> Array:
    """Importance-weighted lower bound on log p(x) with k samples of q.

    Parameters
    ----------
    model : VAE
        Its posterior must be a density (delta > 0 if fixed).
    x : ndarray, shape (n, d_x)
        Converted once to the model's dtype.
    k : int
        Importance samples per example, >= 1.
    rng : numpy.random.Generator or int
    chunk_size, batch_size : int, optional
        Samples and examples per decoder block; None chooses them from
        `MEMORY_BUDGET` (module docstring). The noise stream, and so the
        result up to rounding, does not depend on them.

    Returns
    -------
    ndarray, shape (n,)
        In the model's dtype; the sums are accumulated in float64.

    Raises
    ------
    ValueError
        If the model's posterior is a point mass (delta = 0), or k < 1.

    Notes
    -----
    The notes rewrite p(x) = E_{z~q(.|x)}[p(x|z) r(z) / q(z|x)]. With
    z_i ~ q(.|x) and log w_i = log p(x|z_i) + log r(z_i) - log q(z_i|x):

        iwae_k(x) = log (1/k) sum_i w_i = log_mean_exp_i log w_i

    E[iwae_k] <= log p(x) by Jensen, E[iwae_k] grows with k and tends to
    log p(x). k = 1 is the ELBO with the KL sampled instead of exact.
    With z = mu + std * eps, log r(z) - log q(z|x) =
    -0.5 sum_j (z_j^2 - eps_j^2 - log_var_j).

    References
    ----------
    The notes, the importance-sampling step before the ELBO; Burda,
    Grosse and Salakhutdinov, "Importance Weighted Autoencoders" (2016).

    Examples
    --------
    >>> model = VAE(3, 2, hidden=(), likelihood="gaussian", dtype="float64")
    >>> x = np.zeros((2, 3))
    >>> bound = iwae_bound(model, x, 5000, np.random.default_rng(0))
    >>> np.round(bound - exact_log_likelihood(model, x), 1) + 0.0
    array([0., 0.])
    """
    model = _check_model(model)
    x = model.as_input(x)
    k = check_int(k, "k", 1)
    _check_width(model, "iwae_bound")
    return fused_eval.log_mean_weight(model, x, k, as_generator(rng), "posterior",
                                      MEMORY_BUDGET, _optional_size(chunk_size, "chunk_size"),
                                      _optional_size(batch_size, "batch_size"),
                                      reference=_block_log_weights)


def exact_log_likelihood(model: VAE, x) -> Array:
    """log p(x) in closed form for the linear-Gaussian VAE.

    Parameters
    ----------
    model : VAE
        A linear decoder (``hidden=()``) with ``likelihood="gaussian"``;
        the encoder plays no part.
    x : ndarray, shape (n, d_x)

    Returns
    -------
    ndarray, shape (n,)
        In the model's dtype (computed in float64).

    Raises
    ------
    ValueError
        For any other model: then p(x) has no closed form.

    Notes
    -----
    With W = params['out.W'] (d_z, d_x) and b = params['out.b'], the
    model is x = z W + b + sigma * noise (rows), z ~ N(0, I), so

        p(x) = N(x; b, C),   C = W^T W + sigma^2 I   (d_x, d_x)
        log p(x) = -0.5 (d_x log(2 pi) + log det C
                         + (x - b)^T C^{-1} (x - b)),

    evaluated with the Cholesky factor C = L L^T: log det C =
    2 sum log diag(L).

    Examples
    --------
    >>> model = VAE(1, 1, hidden=(), likelihood="gaussian", sigma=1.0,
    ...             dtype="float64")
    >>> model.params["out.W"][:] = 0.0  # p(x) = N(x; b, 1), b = 0
    >>> exact_log_likelihood(model, np.zeros((1, 1)))  # -0.5 log(2 pi)
    array([-0.91893853])
    """
    model = _check_model(model)
    c = model.config
    if c.hidden != () or c.likelihood != "gaussian":
        raise ValueError(
            "model: exact_log_likelihood needs the linear-Gaussian VAE (hidden=() and "
            "likelihood='gaussian'), whose p(x) is Gaussian; got hidden="
            f"{c.hidden} and likelihood={c.likelihood!r}, for which p(x) has no closed form")
    x = model.as_input(x)
    W = model.params["out.W"].astype(np.float64)  # (d_z, d_x)
    diff = x.astype(np.float64) - model.params["out.b"].astype(np.float64)  # (n, d_x)
    cov = W.T @ W + c.sigma ** 2 * np.eye(c.input_dim)  # (d_x, d_x)
    factor = cho_factor(cov, lower=True)
    log_det = 2.0 * np.log(np.diag(factor[0])).sum()
    maha = (diff * cho_solve(factor, diff.T).T).sum(axis=1)  # (n,)
    return (-0.5 * (c.input_dim * LOG_2PI + log_det + maha)).astype(model.dtype)


def hierarchy_chunk_plan(model: HierarchicalVAE, n: int, k: int,
                         chunk_size: int | None = None,
                         batch_size: int | None = None) -> tuple[int, int]:
    """`chunk_plan` for the two-layer model: ``(chunk_size, batch_size)``.

    One row (one sample of (z1, z2) for one example) costs at most
    ``itemsize * (8 d_x + 8 (sum(hidden) + sum(hidden2)) + 12 (d_z1 + d_z2))``
    bytes: the copy of x, the logits and the likelihood's temporaries, the
    pre-activation and activation of every hidden layer of the four
    networks, and the means, log-variances, samples and densities' caches.

    Examples
    --------
    >>> hierarchy_chunk_plan(HierarchicalVAE(784), n=10_000, k=5000)
    (11, 436)
    """
    c = model.config
    itemsize = np.dtype(c.dtype).itemsize
    d_z = sum(c.latent_dims)
    row_bytes = itemsize * (8 * c.input_dim + 8 * (sum(c.hidden) + sum(c.hidden2)) + 12 * d_z)
    rows = max(1, (MEMORY_BUDGET - MEMORY_BUDGET // 4) // row_bytes)
    if chunk_size is None:
        eps_cap = (MEMORY_BUDGET // 4) // (itemsize * n * d_z)
        chunk_size = max(1, min(eps_cap, rows))
    chunk_size = min(chunk_size, k)
    if batch_size is None:
        batch_size = max(1, rows // chunk_size)
    return chunk_size, min(batch_size, n)


def hierarchical_iwae_bound(model: HierarchicalVAE, x, k: int, rng,
                            chunk_size: int | None = None,
                            batch_size: int | None = None) -> Array:
    """`iwae_bound` for the two-stochastic-layer model: log (1/k) sum_i w_i.

    Parameters
    ----------
    model : HierarchicalVAE
    x : ndarray, shape (n, d_x), in [0, 1]
    k : int
        Importance samples of (z1, z2) ~ q(z1|x) q(z2|z1) per example.
    rng : numpy.random.Generator or int
    chunk_size, batch_size : int, optional
        As for `iwae_bound` (`hierarchy_chunk_plan`); the noise stream,
        and so the result up to rounding, does not depend on them.

    Returns
    -------
    ndarray, shape (n,), in the model's dtype (sums in float64).

    Notes
    -----
    log w_i = log p(x|z1_i) + log p(z1_i|z2_i) + log r(z2_i)
              - log q(z1_i|x) - log q(z2_i|z1_i),
    computed by `hierarchy.log_weights_forward` on a block of samples at
    a time; the noise of each chunk is drawn as eps1 (s, n, d_z1), then
    eps2 (s, n, d_z2).

    Examples
    --------
    >>> model = HierarchicalVAE(4, (3, 2), hidden=(5,), hidden2=(4,), dtype="float64")
    >>> x = np.random.default_rng(0).random((3, 4))
    >>> bound = hierarchical_iwae_bound(model, x, 50, np.random.default_rng(1))
    >>> bound.shape, bool(np.all(bound < 0))
    ((3,), True)
    """
    if not isinstance(model, HierarchicalVAE):
        raise TypeError(f"model: expected a numpyvae HierarchicalVAE, got "
                        f"{type(model).__name__}")
    x = model.as_input(x)
    k, rng = check_int(k, "k", 1), as_generator(rng)
    n, (d1, d2) = x.shape[0], model.config.latent_dims
    chunk_size, batch_size = hierarchy_chunk_plan(model, n, k,
                                                  _optional_size(chunk_size, "chunk_size"),
                                                  _optional_size(batch_size, "batch_size"))
    total = np.full(n, -np.inf)  # running log sum_i w_i, float64
    for start in range(0, k, chunk_size):
        s = min(chunk_size, k - start)
        eps1 = rng.standard_normal((s, n, d1), dtype=model.dtype)
        eps2 = rng.standard_normal((s, n, d2), dtype=model.dtype)
        for lo in range(0, n, batch_size):
            hi = min(lo + batch_size, n)
            log_w, _, _ = log_weights_forward(model.params, x[lo:hi], eps1[:, lo:hi],
                                              eps2[:, lo:hi], model.config)
            total[lo:hi] = np.logaddexp(total[lo:hi],
                                        logsumexp(log_w.astype(np.float64), axis=0))
    return (total - math.log(k)).astype(model.dtype)


def standard_error(estimates) -> float | None:
    """Monte-Carlo standard error of the mean of per-example `estimates`.

    Notes
    -----
    se = std(estimates, ddof=1) / sqrt(n): the spread of the mean over
    fresh draws of z and of the examples. None for a single example (no
    spread to measure) or an infinite or NaN estimate (a point-mass
    posterior's ELBO is -inf: no spread either).

    Examples
    --------
    >>> standard_error(np.array([1.0, 2.0, 3.0, 4.0]))  # std 1.29 / sqrt(4)
    0.6454972243679028
    >>> standard_error(np.array([-3.0])) is None
    True
    >>> standard_error(np.array([-np.inf, -2.0])) is None
    True
    """
    a = np.asarray(estimates, dtype=np.float64).reshape(-1)
    if a.size < 2 or not np.isfinite(a).all():
        return None
    return float(np.std(a, ddof=1) / math.sqrt(a.size))
