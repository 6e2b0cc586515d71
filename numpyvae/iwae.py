"""The importance-weighted training objective (IWAE) and its gradient.

The notes rewrite p(x) = E_{z~q(.|x)}[p(x|z) r(z) / q(z|x)] and bound
its log by Jensen with one sample. Averaging k samples inside the log
gives a tighter bound (Burda, Grosse and Salakhutdinov, 2016):

    L_k(x) = log (1/k) sum_i w_i,   w_i = p(x|z_i) r(z_i) / q(z_i|x),

with z_i = mu + std * eps_i, eps_i ~ N(0, I). Training minimises
loss = -mean_x L_k(x). For k = 1 it is the negative ELBO with the KL
sampled instead of exact. The derivation of the gradient is in
docs/derivations.md ("The IWAE objective"); in short, with the
self-normalised weights w~_i = w_i / sum_l w_l (a softmax of log w),

    dL_k/dtheta = sum_i w~_i d(log w_i)/dtheta,

each sample's ordinary gradient weighted by its share of the total
weight. This module is the reference, written with the same kernels as
model.py; the training step runs its fused form (fused_step.py), tested
equal to it.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.special import softmax

from ._validation import check_dtype_like_params, check_float_array
from .model import (VAEConfig, decoder_backward, decoder_forward, encoder_backward,
                    encoder_forward, log_lik_backward, log_lik_forward)

Array = NDArray[np.floating]


def check_iwae_batch(params, x, eps, config: VAEConfig) -> None:
    """The checks of `iwae_loss_forward`: float arrays of the parameters'
    dtype, eps of shape (k, n, d_z) with k >= 1, and a posterior density
    (delta > 0)."""
    check_float_array(x, "x", ndim=2)
    check_float_array(eps, "eps", ndim=3)
    check_dtype_like_params(params["mu.W"].dtype, x=x, eps=eps)
    if eps.shape[1:] != (x.shape[0], config.latent_dim) or eps.shape[0] < 1:
        raise ValueError(f"eps: expected shape (k, {x.shape[0]}, {config.latent_dim}) with "
                         f"k >= 1, got {eps.shape}")
    if config.posterior == "fixed" and not config.delta > 0:
        raise ValueError("delta: the IWAE objective needs a posterior density; delta=0 is a "
                         "point mass")


def iwae_loss_forward(params, x: Array, eps: Array, config: VAEConfig):
    """The IWAE loss -mean_x L_k(x) for the k samples given by `eps`.

    Parameters
    ----------
    params : dict of name -> ndarray
    x : ndarray, shape (n, d_x)
    eps : ndarray, shape (k, n, d_z)
        Standard-normal noise, one (n, d_z) slab per sample.
    config : VAEConfig

    Returns
    -------
    loss : float
        Nats per example.
    terms : dict
        ``iwae`` (n,) = L_k(x); ``log_lik`` (n,) the mean over samples
        of log p(x|z_i); ``kl`` (n,) the analytic KL(q || r), so that
        log_lik - kl is the ELBO of the same samples.
    cache : dict, for `iwae_loss_backward`.

    Notes
    -----
    Forward, per example, with d = d_z:
        mu, log_var = encoder(x);   std = exp(0.5 log_var)
        z_i = mu + std * eps_i
        log r(z_i) - log q(z_i|x) = -0.5 sum_j (z_ij^2 - eps_ij^2 - log_var_j)
        log w_i = log p(x|z_i) + log r(z_i) - log q(z_i|x)
        L_k = logsumexp_i(log w_i) - log k
    Backward, with n the batch size and w~ = softmax_i(log w):
        dloss/dlog w_i   = -w~_i / n
        dloss/dout_i     = (-w~_i / n) * dlog p(x|z_i)/dout_i
        dloss/dz_i       = decoder_backward(dout_i) + (w~_i / n) * z_i
        dloss/dmu        = sum_i dloss/dz_i
        dloss/dlog_var_j = sum_i dloss/dz_ij * eps_ij * 0.5 * std_j - 0.5 / n
    (the last term is the +0.5 log_var_j of -log q, whose weights sum to 1).

    Examples
    --------
    >>> from numpyvae.model import VAEConfig, init_params
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> rng = np.random.default_rng(1)
    >>> x, eps = rng.random((5, 3)), rng.standard_normal((10, 5, 2))  # k = 10
    >>> loss, terms, cache = iwae_loss_forward(params, x, eps, config)
    >>> isinstance(loss, float), terms["iwae"].shape, terms["kl"].shape
    (True, (5,), (5,))
    """
    check_iwae_batch(params, x, eps, config)
    k, n, d_z = eps.shape
    mu, log_var, enc_cache = encoder_forward(params, x, config)  # (n, d_z)
    if log_var is None:
        log_var = np.full_like(mu, 2.0 * math.log(config.delta))
    std = np.exp(0.5 * log_var)
    z = mu + std * eps  # (k, n, d_z)
    out, dec_cache = decoder_forward(params, z.reshape(k * n, d_z), config)
    x_rep = np.broadcast_to(x, (k, n, x.shape[1])).reshape(k * n, -1)
    log_lik, ll_cache = log_lik_forward(x_rep, out, config)
    log_lik = log_lik.reshape(k, n)
    log_ratio = -0.5 * (z * z - eps * eps - log_var).sum(axis=-1)  # (k, n)
    log_w = log_lik + log_ratio
    w_tilde = softmax(log_w, axis=0)  # (k, n), columns sum to 1
    iwae = np.logaddexp.reduce(log_w, axis=0) - x.dtype.type(math.log(k))  # (n,)
    kl = 0.5 * (mu * mu + std * std - log_var - 1.0).sum(axis=1)
    loss = -float(np.mean(iwae, dtype=np.float64))
    cache = {"enc_cache": enc_cache, "dec_cache": dec_cache, "ll_cache": ll_cache,
             "w_tilde": w_tilde, "z": z, "eps": eps, "std": std, "config": config}
    return loss, {"iwae": iwae, "log_lik": log_lik.mean(axis=0), "kl": kl}, cache


def iwae_loss_backward(cache) -> dict[str, Array]:
    """Gradients of `iwae_loss_forward`'s loss; see its Notes.

    Examples
    --------
    >>> from numpyvae.gradcheck import numerical_gradient
    >>> from numpyvae.model import VAEConfig, init_params
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> rng = np.random.default_rng(1)
    >>> x, eps = rng.random((5, 3)), rng.standard_normal((10, 5, 2))
    >>> grads = iwae_loss_backward(iwae_loss_forward(params, x, eps, config)[2])
    >>> list(grads) == list(config.param_shapes())
    True
    >>> f = lambda W: iwae_loss_forward({**params, "mu.W": W}, x, eps, config)[0]
    >>> np.allclose(grads["mu.W"], numerical_gradient(f, params["mu.W"]), atol=1e-8)
    True
    """
    config, w_tilde, z, eps, std = (cache["config"], cache["w_tilde"], cache["z"],
                                    cache["eps"], cache["std"])
    k, n, d_z = z.shape
    grads: dict[str, Array] = {}
    dlog_w = w_tilde * z.dtype.type(-1.0 / n)  # (k, n)
    dout = log_lik_backward(dlog_w.reshape(k * n), cache["ll_cache"], config)
    dz = decoder_backward(dout, cache["dec_cache"], config, grads).reshape(k, n, d_z)
    dz -= dlog_w[:, :, None] * z  # from log r(z_i) = -0.5 ||z_i||^2 + const
    dmu = dz.sum(axis=0)  # (n, d_z)
    dlog_var = None
    if config.posterior == "diagonal":
        dlog_var = (dz * eps).sum(axis=0) * (0.5 * std) + dlog_w.sum(axis=0)[:, None] * 0.5
    encoder_backward(dmu, dlog_var, cache["enc_cache"], config, grads)
    return {name: grads[name] for name in config.param_shapes()}
