"""THE REFERENCE: the VAE's loss and its gradient as the chain of the kernels.

The notes' bound for one example x, with z = mu + std * eps a sample of
q_phi(z|x) (the reparameterization), is

    elbo(x) = log p_theta(x|z) - KL(q_phi(.|x) || r),

reconstruction minus KL. Training minimises the batch mean of

    loss = mean_i [ -log p_theta(x_i|z_i) + beta * KL_i ],

which for beta = 1 is the negative ELBO (beta != 1 weighs the two terms
as in the beta-VAE). `loss_forward` computes it one kernel call per
equation (layers.py, activations.py, sampling.py, kl.py,
likelihoods.py); `loss_backward` walks the same calls in reverse, each
kernel's backward. The noise `eps` is an argument, so the loss is a
deterministic function of the parameters and can be checked by finite
differences. Everything here is pure: fresh arrays, no buffers.

The same model's log-weights (`log_weights_forward`), one per sample of
k samples of z per example,

    log w = log p_theta(x|z) + log r(z) - log q_phi(z|x),

are what every sampled bound and estimator is made of: the IWAE bound
and the sampled ELBO are heads over them (bounds.py), and the estimators
of log p(x) stream them (estimators.py). The two-layer model
(hierarchy.py) gives its log-weights in the same form.

Preconditions, not checked here (the callers check them once: `VAE`'s
methods, `fit`, the estimators): x of shape (n, d_x) in the parameters'
dtype, in [0, 1] for a Bernoulli decoder and finite for a Gaussian one;
eps standard-normal noise in that dtype. The kernels still check the
cheap things, shapes and dtypes.

The training step runs a faster form of the same chain (fused_step.py),
tested equal to this one for every configuration.

The architecture (`VAEConfig`) and the initial weights (`init_params`)
are in model_config.py. Parameter names, in forward order:
``enc0.W, enc0.b, ...`` (encoder hidden layers), ``mu.W, mu.b`` and, for
the diagonal posterior, ``log_var.W, log_var.b`` (the heads),
``dec0.W, dec0.b, ...`` (decoder hidden layers), ``out.W, out.b``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from . import bounds
from .config import VAEConfig, init_params  # noqa: F401  (the architecture; init_params: the doctests)
from .kl import (
    kl_backward,
    kl_fixed_backward,
    kl_fixed_forward,
    kl_forward,
    log_ratio_backward,
    log_ratio_forward,
)
from .layers import dense_backward, dense_forward, mlp_backward, mlp_forward
from .likelihoods import (
    bernoulli_log_lik_backward,
    bernoulli_log_lik_forward,
    gaussian_log_lik_backward,
    gaussian_log_lik_forward,
)
from .sampling import (
    reparameterize_backward,
    reparameterize_fixed_backward,
    reparameterize_fixed_forward,
    reparameterize_forward,
)

Array = NDArray[np.floating]


def encoder_forward(params, x: Array, config: VAEConfig):
    """lambda_phi(x): returns ``(mu, log_var, cache)``.

    For the fixed-width posterior, log_var is None (the width is delta).

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> mu, log_var, cache = encoder_forward(params, np.zeros((5, 3)), config)
    >>> mu.shape, log_var.shape
    ((5, 2), (5, 2))
    """
    h, mlp_cache = mlp_forward(params, x, "enc", len(config.hidden), config.activation)
    mu, mu_cache = dense_forward(h, params["mu.W"], params["mu.b"])  # (n, d_z)
    log_var, lv_cache = None, None
    if config.posterior == "diagonal":
        log_var, lv_cache = dense_forward(h, params["log_var.W"], params["log_var.b"])
    return mu, log_var, (mlp_cache, mu_cache, lv_cache)


def encoder_backward(dmu, dlog_var, cache, config: VAEConfig, grads: dict) -> Array:
    """Backward of `encoder_forward`; fills the encoder's grads, returns dx.

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> mu, log_var, cache = encoder_forward(params, np.zeros((5, 3)), config)
    >>> grads = {}
    >>> dx = encoder_backward(np.ones((5, 2)), np.ones((5, 2)), cache, config, grads)
    >>> dx.shape, sorted(grads)
    ((5, 3), ['enc0.W', 'enc0.b', 'log_var.W', 'log_var.b', 'mu.W', 'mu.b'])
    """
    mlp_cache, mu_cache, lv_cache = cache
    dh, grads["mu.W"], grads["mu.b"] = dense_backward(dmu, mu_cache)
    if config.posterior == "diagonal":
        dh_lv, grads["log_var.W"], grads["log_var.b"] = dense_backward(dlog_var, lv_cache)
        dh = dh + dh_lv
    return mlp_backward(dh, mlp_cache, config.activation, grads)


def decoder_forward(params, z: Array, config: VAEConfig):
    """mu_theta(z) before the output nonlinearity: logits (Bernoulli) or
    the mean itself (Gaussian). Returns ``(out, cache)``.

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> out, cache = decoder_forward(params, np.zeros((5, 2)), config)
    >>> out.shape
    (5, 3)
    """
    h, mlp_cache = mlp_forward(params, z, "dec", len(config.hidden), config.activation)
    out, out_cache = dense_forward(h, params["out.W"], params["out.b"])  # (n, d_x)
    return out, (mlp_cache, out_cache)


def decoder_backward(dout, cache, config: VAEConfig, grads: dict) -> Array:
    """Backward of `decoder_forward`; fills the decoder's grads, returns dz.

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> out, cache = decoder_forward(params, np.zeros((5, 2)), config)
    >>> grads = {}
    >>> dz = decoder_backward(np.ones((5, 3)), cache, config, grads)
    >>> dz.shape, sorted(grads)
    ((5, 2), ['dec0.W', 'dec0.b', 'out.W', 'out.b'])
    """
    mlp_cache, out_cache = cache
    dh, grads["out.W"], grads["out.b"] = dense_backward(dout, out_cache)
    return mlp_backward(dh, mlp_cache, config.activation, grads)


def log_lik_forward(x: Array, out: Array, config: VAEConfig):
    """log p_theta(x|z) per example from the decoder output.

    Examples
    --------
    >>> config = VAEConfig(2, 1, dtype="float64")  # Bernoulli
    >>> x, logits = np.array([[1.0, 0.0]]), np.zeros((1, 2))
    >>> log_lik, cache = log_lik_forward(x, logits, config)
    >>> log_lik  # 2 * log(1/2)
    array([-1.38629436])
    """
    if config.likelihood == "bernoulli":
        return bernoulli_log_lik_forward(x, out)
    return gaussian_log_lik_forward(x, out, config.gaussian_sigma)


def log_lik_backward(dlog_lik: Array, cache, config: VAEConfig) -> Array:
    """Gradient of `log_lik_forward` wrt the decoder output.

    Examples
    --------
    >>> config = VAEConfig(2, 1, dtype="float64")  # Bernoulli
    >>> _, cache = log_lik_forward(np.array([[1.0, 0.0]]), np.zeros((1, 2)), config)
    >>> log_lik_backward(np.ones(1), cache, config)  # x - sigmoid(logits)
    array([[ 0.5, -0.5]])
    """
    if config.likelihood == "bernoulli":
        return bernoulli_log_lik_backward(dlog_lik, cache)
    return gaussian_log_lik_backward(dlog_lik, cache)


def loss_forward(params, x: Array, eps: Array, config: VAEConfig, beta: float = 1.0):
    """loss = mean_i [ -log p(x_i|z_i) + beta * KL_i ], kernel by kernel.

    Parameters
    ----------
    params : dict of name -> ndarray
    x : ndarray, shape (n, d_x), in the parameters' dtype
        (the module's preconditions)
    eps : ndarray, shape (n, d_z), standard-normal noise
    config : VAEConfig
    beta : float, the weight of the KL term (1 for the ELBO; beta != 1
        is the beta-VAE of Higgins et al., 2017)

    Returns
    -------
    loss : float, nats per example
    terms : dict, ``log_lik`` (n,) and ``kl`` (n,); elbo = log_lik - kl
    cache : dict, for `loss_backward` (which only reads it)

    References
    ----------
    Kingma and Welling, "Auto-Encoding Variational Bayes" (2014),
    Section 2.4 and Appendix B: the reparameterized ELBO with the KL in
    closed form; Higgins et al., "beta-VAE: Learning Basic Visual
    Concepts with a Constrained Variational Framework" (2017): the
    weight beta; the notes, the bound as reconstruction minus KL.

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> rng = np.random.default_rng(1)
    >>> x, eps = rng.random((5, 3)), rng.standard_normal((5, 2))
    >>> loss, terms, cache = loss_forward(params, x, eps, config, beta=1.0)
    >>> bool(np.isclose(loss, np.mean(terms["kl"] - terms["log_lik"])))
    True
    """
    mu, log_var, enc_cache = encoder_forward(params, x, config)        # (n, d_z) each
    z_cache: tuple | None  # None: the fixed width's sample keeps no cache
    kl_cache: tuple | Array  # mu alone for the fixed width
    if config.posterior == "diagonal":
        z, z_cache = reparameterize_forward(mu, log_var, eps)          # mu + std * eps
        kl, kl_cache = kl_forward(mu, log_var)                         # (n,)
    else:
        z, z_cache = reparameterize_fixed_forward(mu, config.fixed_delta, eps)  # mu + delta * eps
        if config.fixed_delta > 0:
            kl, kl_cache = kl_fixed_forward(mu, config.fixed_delta)    # (n,)
        else:  # a point mass: the KL is infinite and must carry weight 0
            kl, kl_cache = np.full(x.shape[0], np.inf, dtype=x.dtype), mu
    out, dec_cache = decoder_forward(params, z, config)                # (n, d_x)
    log_lik, ll_cache = log_lik_forward(x, out, config)                # (n,)
    loss = -float(np.mean(log_lik, dtype=np.float64))
    if beta != 0:  # 0 * inf would be NaN at delta = 0
        loss += beta * float(np.mean(kl, dtype=np.float64))
    cache = {"enc": enc_cache, "z": z_cache, "kl": kl_cache, "dec": dec_cache,
             "log_lik": ll_cache, "n": x.shape[0], "beta": float(beta), "config": config,
             "dtype": x.dtype}
    return loss, {"log_lik": log_lik, "kl": kl}, cache


def loss_backward(cache) -> dict[str, Array]:
    """Gradients of `loss_forward`'s loss wrt every parameter.

    Notes
    -----
    The chain rule through the forward's calls in reverse order:
        dlog_lik_i = -1 / n,   dkl_i = beta / n       (the batch mean)
        dout = log_lik_backward(dlog_lik)             (likelihoods.py)
        dz = decoder_backward(dout)                   (layers, activations)
        dmu = dz + dkl * dKL/dmu                      (mu is used twice)
        dlog_var = dz * eps * 0.5 * std + dkl * dKL/dlog_var
        encoder_backward(dmu, dlog_var)
    docs/derivations.md derives every step.

    References
    ----------
    Kingma and Welling, "Auto-Encoding Variational Bayes" (2014): the
    reparameterized ELBO with the analytic KL of their Appendix B;
    Higgins et al., "beta-VAE" (2017) for the weight beta.

    Examples
    --------
    >>> from numpyvae.gradcheck import numerical_gradient
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> rng = np.random.default_rng(1)
    >>> x, eps = rng.random((5, 3)), rng.standard_normal((5, 2))
    >>> grads = loss_backward(loss_forward(params, x, eps, config)[2])
    >>> list(grads) == list(config.param_shapes())
    True
    >>> f = lambda b: loss_forward({**params, "out.b": b}, x, eps, config)[0]
    >>> np.allclose(grads["out.b"], numerical_gradient(f, params["out.b"]))
    True
    """
    config, n, beta, dtype = cache["config"], cache["n"], cache["beta"], cache["dtype"]
    grads: dict[str, Array] = {}
    dlog_lik = np.full(n, -1.0 / n, dtype=dtype)  # d loss / d log_lik_i
    dkl = np.full(n, beta / n, dtype=dtype)       # d loss / d kl_i
    dout = log_lik_backward(dlog_lik, cache["log_lik"], config)        # (n, d_x)
    dz = decoder_backward(dout, cache["dec"], config, grads)           # (n, d_z)
    if config.posterior == "diagonal":
        dmu, dlog_var = reparameterize_backward(dz, cache["z"])
        dmu_kl, dlog_var_kl = kl_backward(dkl, cache["kl"])
        dmu, dlog_var = dmu + dmu_kl, dlog_var + dlog_var_kl
    else:
        dmu, dlog_var = reparameterize_fixed_backward(dz, cache["z"]), None
        if beta != 0:
            dmu = dmu + kl_fixed_backward(dkl, cache["kl"])
    encoder_backward(dmu, dlog_var, cache["enc"], config, grads)
    return {name: grads[name] for name in config.param_shapes()}


def posterior_log_var(mu: Array, log_var: Array | None, config: VAEConfig) -> Array:
    """log_var of q(z|x) as an array: the encoder's head, or 2 log delta
    everywhere for the fixed-width posterior (delta > 0)."""
    if log_var is not None:
        return log_var
    return np.full_like(mu, 2.0 * math.log(config.fixed_delta))


def log_weights_forward(params, x: Array, eps: Array, config: VAEConfig):
    """log w of each of k samples per example, kernel by kernel.

    Parameters
    ----------
    params : dict of name -> ndarray
    x : ndarray, shape (n, d_x)
        In the parameters' dtype (the module's preconditions).
    eps : ndarray, shape (k, n, d_z)
        Standard-normal noise, one (n, d_z) slab per sample.
    config : VAEConfig
        A posterior with a density (delta > 0 if fixed).

    Returns
    -------
    log_w : ndarray, shape (k, n)
    terms : dict of (k, n) arrays, ``log_lik`` = log p(x|z_i) and
        ``log_ratio`` = log r(z_i) - log q(z_i|x)
    cache : dict, for `log_weights_backward`

    Notes
    -----
    Forward, each line one kernel call:
        mu, log_var = encoder(x)                        (n, d_z)
        z_i = mu + std * eps_i                          (k, n, d_z)
        log r(z_i) - log q(z_i|x) = -0.5 sum_j (z_ij^2 - eps_ij^2 - log_var_j)
        log p(x|z_i) = log_lik(x, decoder(z_i))         (k, n)
        log w_i = log p(x|z_i) + log r(z_i) - log q(z_i|x)
    Backward: `log_weights_backward`.

    References
    ----------
    Burda, Grosse and Salakhutdinov, "Importance Weighted Autoencoders"
    (2016), Section 3: the weights w_i = p(x, z_i) / q(z_i|x).

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> rng = np.random.default_rng(1)
    >>> x, eps = rng.random((5, 3)), rng.standard_normal((10, 5, 2))  # k = 10
    >>> log_w, terms, cache = log_weights_forward(params, x, eps, config)
    >>> log_w.shape, bool(np.allclose(log_w, terms["log_lik"] + terms["log_ratio"]))
    ((10, 5), True)
    """
    mu, log_var, enc_cache = encoder_forward(params, x, config)           # (n, d_z)
    log_var = posterior_log_var(mu, log_var, config)
    mu_k = np.broadcast_to(mu, eps.shape)                                 # (k, n, d_z)
    log_var_k = np.broadcast_to(log_var, eps.shape)
    z_cache: tuple | None  # None: the fixed width's sample keeps no cache
    if config.posterior == "diagonal":
        z, z_cache = reparameterize_forward(mu_k, log_var_k, eps)         # mu + std * eps
    else:
        z, z_cache = reparameterize_fixed_forward(mu_k, config.fixed_delta, eps)  # mu + delta * eps
    log_ratio, ratio_cache = log_ratio_forward(z, eps, log_var_k)        # (k, n)
    out, dec_cache = decoder_forward(params, z, config)                  # (k, n, d_x)
    log_lik, ll_cache = log_lik_forward(x, out, config)                  # (k, n)
    log_w = log_lik + log_ratio
    cache = {"enc": enc_cache, "z": z_cache, "log_ratio": ratio_cache, "dec": dec_cache,
             "log_lik": ll_cache, "config": config}
    return log_w, {"log_lik": log_lik, "log_ratio": log_ratio}, cache


def log_weights_backward(dlog_w: Array, cache) -> dict[str, Array]:
    """Gradients of sum(dlog_w * log_w) wrt every parameter.

    Notes
    -----
    With g = dlog_w (k, n), the forward's calls in reverse; z_i collects
    two gradients (the decoder's and the log-ratio's), and mu and log_var
    sum theirs over the k samples:
        dz_i = decoder_backward(log_lik_backward(g_i)) - g_i * z_i
        dmu = sum_i dz_i
        dlog_var = sum_i (dz_i * eps_i * 0.5 * std + 0.5 * g_i)
        encoder_backward(dmu, dlog_var)
    (the fixed-width posterior has no dlog_var).

    Examples
    --------
    >>> from numpyvae.gradcheck import numerical_gradient
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> rng = np.random.default_rng(1)
    >>> x, eps = rng.random((5, 3)), rng.standard_normal((10, 5, 2))
    >>> g = rng.standard_normal((10, 5))
    >>> grads = log_weights_backward(g, log_weights_forward(params, x, eps, config)[2])
    >>> f = lambda W: float(np.sum(g * log_weights_forward(
    ...     {**params, "mu.W": W}, x, eps, config)[0]))
    >>> np.allclose(grads["mu.W"], numerical_gradient(f, params["mu.W"]))
    True
    """
    config = cache["config"]
    grads: dict[str, Array] = {}
    dout = log_lik_backward(dlog_w, cache["log_lik"], config)            # (k, n, d_x)
    dz = decoder_backward(dout, cache["dec"], config, grads)             # (k, n, d_z)
    dz_ratio, dlog_var_ratio = log_ratio_backward(dlog_w, cache["log_ratio"])
    dz = dz + dz_ratio
    dlog_var = None
    if config.posterior == "diagonal":
        dmu_k, dlog_var_k = reparameterize_backward(dz, cache["z"])
        dmu, dlog_var = dmu_k.sum(axis=0), (dlog_var_k + dlog_var_ratio).sum(axis=0)
    else:  # log_var = 2 log delta is a constant
        dmu = reparameterize_fixed_backward(dz, cache["z"]).sum(axis=0)
    encoder_backward(dmu, dlog_var, cache["enc"], config, grads)
    return {name: grads[name] for name in config.param_shapes()}


def prior_log_weights(params, x: Array, eps: Array, config: VAEConfig) -> Array:
    """log w = log p(x|z) with z = eps drawn from the prior r(z) itself.

    The notes' naive Monte-Carlo estimate averages these weights
    (`estimators.naive_log_likelihood`); forward only.

    Parameters
    ----------
    x : ndarray, shape (n, d_x)
    eps : ndarray, shape (k, n, d_z), the samples z ~ N(0, I)

    Returns
    -------
    log_w : ndarray, shape (k, n)

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,), dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> prior_log_weights(params, np.zeros((5, 3)), np.zeros((7, 5, 2)), config).shape
    (7, 5)
    """
    out, _ = decoder_forward(params, eps, config)                        # (k, n, d_x)
    return log_lik_forward(x, out, config)[0]


def bound_loss_forward(params, x: Array, eps: Array, config: VAEConfig, objective: str):
    """loss = -mean_x bound(x): a bound head (bounds.py) over the log-weights.

    Parameters
    ----------
    eps : ndarray, shape (k, n, d_z)
    objective : {"elbo", "iwae"}
        The sampled ELBO (k = 1: the ELBO with the KL sampled) or the
        IWAE bound L_k.

    Returns
    -------
    ``(loss, terms, cache)`` as `bounds.loss_forward`.

    References
    ----------
    Burda, Grosse and Salakhutdinov (2016), Section 3: the IWAE
    objective L_k over the weights w_i = p(x, z_i) / q(z_i|x).

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> rng = np.random.default_rng(1)
    >>> x, eps = rng.random((5, 3)), rng.standard_normal((10, 5, 2))
    >>> loss, terms, _ = bound_loss_forward(params, x, eps, config, "iwae")
    >>> bool(np.all(terms["iwae"] >= terms["elbo"]))
    True
    """
    return bounds.loss_over_log_weights(log_weights_forward(params, x, eps, config), objective)


def bound_loss_backward(cache) -> dict[str, Array]:
    """Gradients of `bound_loss_forward`'s loss: the head's backward, then
    `log_weights_backward`."""
    head_cache, log_w_cache = cache
    return log_weights_backward(bounds.loss_backward(head_cache), log_w_cache)
