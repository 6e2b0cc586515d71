"""Decoder log-likelihoods log p_theta(x | z), one value per example.

The notes model x given z with a decoder network; these functions score
a data batch under the decoder's output. Two families:

* Bernoulli pixels, from the decoder's pre-sigmoid ``logits``;
* a Gaussian with mean mu_theta(z) (``recon``) and a fixed, shared
  sigma -- the notes' running example, where log p(x|z) is, up to an
  additive constant and the positive factor 1 / (2 sigma^2),
  -||x - mu_theta(z)||^2.

Each returns ``(log_lik, cache)`` with ``log_lik`` of shape (...): the
decoder output may carry a leading sample axis, (k, n, d_x) beside data
x of shape (n, d_x), which then broadcasts over the k samples. Its
backward maps ``dlog_lik`` (...) to the gradient wrt the decoder output.

The kernels trust their callers for the values (x in [0, 1] for the
Bernoulli decoder, everything finite): the public entry points check
the data once (`VAE.as_input`); the kernels check only what is cheap,
the types, dtypes and shapes.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from .activations import sigmoid, softplus
from .arrays import check_float_array, check_positive, check_same_dtype, check_same_shape

Array = NDArray[np.floating]


def _check_pair(x: Array, out: Array, out_name: str) -> None:
    """x of out's shape, or of its trailing (n, d_x) (broadcast over samples)."""
    check_float_array(x, "x")
    check_float_array(out, out_name)
    if x.ndim < 2 or out.ndim < x.ndim or out.shape[out.ndim - x.ndim:] != x.shape:
        raise ValueError(f"x: expected shape (n, d_x) = {out.shape[-2:]}, the last two axes "
                         f"of {out_name} of shape {out.shape}, got {x.shape}")
    check_same_dtype(x=x, **{out_name: out})


def bernoulli_log_lik_forward(x: Array, logits: Array) -> tuple[Array, tuple[Array, Array]]:
    """Log-likelihood of x under independent Bernoulli(sigmoid(logits)).

    Parameters
    ----------
    x : ndarray, shape (n, d_x)
        Targets in [0, 1] (a precondition: not checked here). Grey levels
        are allowed (the common MNIST practice): the formula is then the
        negative binary cross-entropy.
    logits : ndarray, shape (..., n, d_x)
        Decoder output before the sigmoid, same dtype as `x`; leading
        sample axes broadcast `x`.

    Returns
    -------
    log_lik : ndarray, shape (..., n)
    cache : tuple ``(x, logits)``

    Raises
    ------
    ValueError
        If the shapes do not match.
    TypeError
        If the dtypes differ or are not float32/float64.

    Notes
    -----
    With l = logits and p = sigmoid(l):

    Forward:   log p(x|z) = sum_j [x_j log p_j + (1 - x_j) log(1 - p_j)]
                          = sum_j [x_j l_j - softplus(l_j)]
    Backward:  dlog_lik/dl_j = x_j - sigmoid(l_j)

    softplus is evaluated as max(l, 0) + log1p(exp(-|l|)), exact to
    rounding for |l| up to 1e4 in float32 and float64; probabilities are
    never formed, so nothing is clipped.

    Examples
    --------
    >>> x = np.array([[1.0, 0.0]]); logits = np.zeros((1, 2))
    >>> bernoulli_log_lik_forward(x, logits)[0]  # 2 * log(1/2)
    array([-1.38629436])
    """
    _check_pair(x, logits, "logits")
    log_lik = (x * logits - softplus(logits)).sum(axis=-1)  # (..., n)
    return log_lik, (x, logits)


def bernoulli_log_lik_backward(dlog_lik: Array, cache: tuple[Array, Array]) -> Array:
    """Gradient wrt the logits: dlogits = dlog_lik[..., None] * (x - sigmoid(l)).

    Examples
    --------
    >>> x = np.array([[1.0, 0.0]]); logits = np.zeros((1, 2))
    >>> _, cache = bernoulli_log_lik_forward(x, logits)
    >>> bernoulli_log_lik_backward(np.ones(1), cache)  # x - sigmoid(0)
    array([[ 0.5, -0.5]])
    """
    x, logits = cache
    return dlog_lik[..., None] * (x - sigmoid(logits))


def gaussian_log_lik_forward(x: Array, recon: Array, sigma: float) -> tuple[Array, tuple]:
    """Log-density of x under N(recon, sigma^2 I) with a fixed sigma.

    Parameters
    ----------
    x : ndarray, shape (n, d_x)
        Finite (a precondition: not checked here).
    recon : ndarray, shape (..., n, d_x)
        The decoder mean mu_theta(z), same dtype as `x`; leading sample
        axes broadcast `x`.
    sigma : float
        Fixed standard deviation, > 0.

    Returns
    -------
    log_lik : ndarray, shape (..., n)
    cache : tuple ``(diff, sigma)`` with diff = x - recon

    Raises
    ------
    ValueError
        If sigma <= 0, or the shapes do not match.

    Notes
    -----
    Forward:   log p(x|z) = -||x - recon||^2 / (2 sigma^2)
                            - (D / 2) log(2 pi sigma^2)
    Backward:  dlog_lik/drecon = (x - recon) / sigma^2
    The notes' "-||x - mu_theta(z)||^2 up to a constant" is this with the
    positive factor 1 / (2 sigma^2) and the additive constant dropped.

    Examples
    --------
    >>> x = np.zeros((1, 1)); recon = np.zeros((1, 1))
    >>> gaussian_log_lik_forward(x, recon, 1.0)[0]  # -0.5 log(2 pi)
    array([-0.91893853])
    """
    _check_pair(x, recon, "recon")
    sigma = check_positive(sigma, "sigma")
    d_x = x.shape[-1]
    diff = x - recon  # (..., n, d_x)
    const = -0.5 * d_x * math.log(2.0 * math.pi * sigma * sigma)
    log_lik = (diff * diff).sum(axis=-1) * (-0.5 / (sigma * sigma)) + const
    return log_lik, (diff, sigma)


def gaussian_log_lik_backward(dlog_lik: Array, cache: tuple) -> Array:
    """Gradient wrt recon: drecon = dlog_lik[..., None] * (x - recon) / sigma^2.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0]]); recon = np.zeros((1, 2))
    >>> _, cache = gaussian_log_lik_forward(x, recon, 2.0)
    >>> gaussian_log_lik_backward(np.ones(1), cache)  # (x - recon) / 4
    array([[0.25, 0.5 ]])
    """
    diff, sigma = cache
    return dlog_lik[..., None] * diff * (1.0 / (sigma * sigma))


def gaussian_log_density_forward(z: Array, mu: Array,
                                 log_var: Array) -> tuple[Array, tuple]:
    """Log-density of z under N(mu, diag(exp(log_var))), mean and variance learned.

    The terms of a bound that are no longer analytic -- log q(z1|x),
    log q(z2|z1), log p(z1|z2) and log r(z2) of the two-layer model
    (hierarchy.py) -- are this density evaluated at a sample.

    Parameters
    ----------
    z : ndarray, shape (..., d)
        The point at which the density is evaluated.
    mu, log_var : ndarray, shape (..., d)
        Mean and log-variance, same shape and dtype as `z`.

    Returns
    -------
    log_density : ndarray, shape (...)
    cache : tuple ``(diff, inv_var)`` with diff = z - mu, inv_var = exp(-log_var)

    Raises
    ------
    ValueError
        If the shapes differ.
    TypeError
        If the dtypes differ or are not float32/float64.

    Notes
    -----
    Forward:   log N(z; mu, var) = -0.5 sum_j [ log(2 pi) + log_var_j
                                     + (z_j - mu_j)^2 exp(-log_var_j) ]
    Backward:  dlog N/dz_j       = -(z_j - mu_j) exp(-log_var_j)
               dlog N/dmu_j      =  (z_j - mu_j) exp(-log_var_j)
               dlog N/dlog_var_j = -0.5 + 0.5 (z_j - mu_j)^2 exp(-log_var_j)

    Examples
    --------
    >>> z = mu = log_var = np.zeros((1, 1))
    >>> gaussian_log_density_forward(z, mu, log_var)[0]  # -0.5 log(2 pi)
    array([-0.91893853])
    """
    for name, a in (("z", z), ("mu", mu), ("log_var", log_var)):
        check_float_array(a, name)
    check_same_shape("z", z, mu=mu, log_var=log_var)
    check_same_dtype(z=z, mu=mu, log_var=log_var)
    diff = z - mu                   # (..., d)
    inv_var = np.exp(-log_var)      # (..., d)
    const = -0.5 * z.shape[-1] * math.log(2.0 * math.pi)
    log_density = -0.5 * (log_var + diff * diff * inv_var).sum(axis=-1) + const
    return log_density, (diff, inv_var)


def gaussian_log_density_backward(dlog_density: Array,
                                  cache: tuple) -> tuple[Array, Array, Array]:
    """Gradients of `gaussian_log_density_forward`: ``(dz, dmu, dlog_var)``.

    Examples
    --------
    >>> z, mu, log_var = np.full((1, 1), 2.0), np.zeros((1, 1)), np.zeros((1, 1))
    >>> _, cache = gaussian_log_density_forward(z, mu, log_var)
    >>> dz, dmu, dlog_var = gaussian_log_density_backward(np.ones(1), cache)
    >>> dz, dmu, dlog_var  # -2, 2, -0.5 + 0.5 * 4
    (array([[-2.]]), array([[2.]]), array([[1.5]]))
    """
    diff, inv_var = cache
    g = dlog_density[..., None]     # (..., 1)
    scaled = diff * inv_var         # (z - mu) / var
    dmu = g * scaled
    return -dmu, dmu, g * (0.5 * diff * scaled - 0.5)
