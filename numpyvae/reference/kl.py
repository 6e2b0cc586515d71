"""KL(q_phi(z|x) || r(z)) for a Gaussian posterior and the standard prior.

The ELBO of the notes subtracts E_x[KL(q_phi(.|x) || r)] from the
reconstruction term. With r = N(0, I) and a Gaussian q the KL has a
closed form, so no sampling is needed for it. Two posteriors:

* diagonal: q = N(mu, diag(exp(log_var))), the usual VAE encoder;
* fixed width: q = N(lambda(x), Delta^2 I), the notes' form, where only
  the mean lambda(x) (called ``mu`` in code) is learned and the KL grows
  like ||lambda(x)||^2 plus terms that do not depend on phi.

The KL is the expectation over z ~ q of log q(z|x) - log r(z). A bound
that samples z instead (the IWAE bound, or the ELBO of a model whose KL
has no closed form) needs that log-ratio at the sample itself:
`log_ratio_forward` computes log r(z) - log q(z|x) in the eps form.

Every kernel takes arrays of shape (..., d_z) and sums over the last
axis: (n, d_z) for one value per example, (k, n, d_z) for k samples.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from .arrays import check_float_array, check_positive, check_same_dtype, check_same_shape

Array = NDArray[np.floating]


def kl_forward(mu: Array, log_var: Array) -> tuple[Array, tuple[Array, Array]]:
    """KL of N(mu, diag(exp(log_var))) from N(0, I), per example.

    Parameters
    ----------
    mu : ndarray, shape (..., d_z)
    log_var : ndarray, shape (..., d_z)
        Log variances (not log standard deviations), same dtype as `mu`.

    Returns
    -------
    kl : ndarray, shape (...)
    cache : tuple ``(mu, var)`` with var = exp(log_var)

    Notes
    -----
    Forward:   kl = 0.5 * sum_j (mu_j^2 + exp(log_var_j) - log_var_j - 1)
    Backward:  dkl/dmu_j      = mu_j
               dkl/dlog_var_j = 0.5 * (exp(log_var_j) - 1)

    The KL is zero exactly when mu = 0 and log_var = 0, i.e. q = r.

    References
    ----------
    Kingma and Welling, "Auto-Encoding Variational Bayes" (2014),
    Appendix B: the Gaussian KL in closed form; the notes, the ELBO as
    reconstruction minus KL.

    Examples
    --------
    >>> kl_forward(np.zeros((1, 3)), np.zeros((1, 3)))[0]
    array([0.])
    """
    check_float_array(mu, "mu")
    check_float_array(log_var, "log_var")
    check_same_shape("mu", mu, log_var=log_var)
    check_same_dtype(mu=mu, log_var=log_var)
    var = np.exp(log_var)  # (..., d_z)
    kl = 0.5 * (mu * mu + var - log_var - 1.0).sum(axis=-1)
    return kl, (mu, var)


def kl_backward(dkl: Array, cache: tuple[Array, Array]) -> tuple[Array, Array]:
    """Gradients of `kl_forward` given ``dkl`` of shape (...); see its Notes.

    Returns
    -------
    dmu : ndarray, shape (..., d_z)
    dlog_var : ndarray, shape (..., d_z)

    Examples
    --------
    >>> mu = np.array([[1.0, -2.0]]); log_var = np.array([[0.0, np.log(3.0)]])
    >>> _, cache = kl_forward(mu, log_var)
    >>> dmu, dlog_var = kl_backward(np.ones(1), cache)
    >>> dmu, dlog_var
    (array([[ 1., -2.]]), array([[0., 1.]]))
    """
    mu, var = cache
    dkl = dkl[..., None]
    return dkl * mu, dkl * (0.5 * (var - 1.0))


def kl_fixed_forward(mu: Array, delta: float) -> tuple[Array, Array]:
    """KL of N(mu, delta^2 I) from N(0, I), per example (fixed width).

    Parameters
    ----------
    mu : ndarray, shape (..., d_z)
        The encoder mean lambda_phi(x).
    delta : float
        The fixed posterior standard deviation, > 0 (at delta = 0 the
        posterior is a point mass and the KL is infinite).

    Returns
    -------
    kl : ndarray, shape (...)
    cache : ndarray
        `mu` itself.

    Notes
    -----
    Forward:   kl = 0.5 * sum_j (mu_j^2 + delta^2 - log(delta^2) - 1)
    Backward:  dkl/dmu_j = mu_j

    Only the ||mu||^2 term depends on the encoder, which is why the KL
    alone pulls every lambda(x) to 0.

    References
    ----------
    Kingma and Welling (2014), Appendix B, with every variance delta^2;
    the notes, the second term of the bound.

    Examples
    --------
    >>> kl_fixed_forward(np.array([[3.0, 4.0]]), 1.0)[0]
    array([12.5])
    """
    check_float_array(mu, "mu")
    if mu.ndim < 1:
        raise ValueError(f"mu: expected shape (..., d_z), got {mu.shape}")
    delta = check_positive(delta, "delta")
    d_z = mu.shape[-1]
    const = 0.5 * d_z * (delta * delta - math.log(delta * delta) - 1.0)
    kl = 0.5 * (mu * mu).sum(axis=-1) + const
    return kl, mu


def kl_fixed_backward(dkl: Array, cache: Array) -> Array:
    """Gradient of `kl_fixed_forward`: dmu = dkl[..., None] * mu.

    Examples
    --------
    >>> _, cache = kl_fixed_forward(np.array([[3.0, 4.0]]), 1.0)
    >>> kl_fixed_backward(np.array([2.0]), cache)
    array([[6., 8.]])
    """
    mu = cache
    return dkl[..., None] * mu


def log_ratio_forward(z: Array, eps: Array, log_var: Array) -> tuple[Array, tuple]:
    """log r(z) - log q(z|x) at a reparameterized sample, per sample.

    Parameters
    ----------
    z : ndarray, shape (..., d_z)
        The sample z = mu + std * eps.
    eps : ndarray, shape (..., d_z)
        The noise that made it (held fixed: no gradient flows to it).
    log_var : ndarray, shape (..., d_z)
        The posterior's log-variance (2 log delta everywhere for the
        fixed-width posterior, delta > 0).

    Returns
    -------
    log_ratio : ndarray, shape (...)
    cache : tuple ``(z,)``

    Notes
    -----
    With r = N(0, I) and q = N(mu, diag(std^2)), (z - mu) / std = eps, so
    the log(2 pi) terms cancel and no division by a tiny std is needed:
    Forward:   log r(z) - log q(z|x) = -0.5 sum_j (z_j^2 - eps_j^2 - log_var_j)
    Backward:  d/dz_j = -z_j,   d/dlog_var_j = 0.5   (eps held fixed)
    Its expectation over eps is -KL(q || r) (`kl_forward`); the chain
    through z = mu + std * eps is the caller's (`sampling`).

    References
    ----------
    Burda, Grosse and Salakhutdinov, "Importance Weighted Autoencoders"
    (2016), Section 3, the log-weights w_i; the notes, the
    importance-sampling identity before the ELBO.

    Examples
    --------
    >>> z = eps = log_var = np.zeros((1, 2))
    >>> log_ratio_forward(z, eps, log_var)[0]  # q = r at z = 0
    array([0.])
    """
    for name, a in (("z", z), ("eps", eps), ("log_var", log_var)):
        check_float_array(a, name)
    check_same_shape("z", z, eps=eps, log_var=log_var)
    check_same_dtype(z=z, eps=eps, log_var=log_var)
    log_ratio = -0.5 * (z * z - eps * eps - log_var).sum(axis=-1)  # (...)
    return log_ratio, (z,)


def log_ratio_backward(dlog_ratio: Array, cache: tuple) -> tuple[Array, Array]:
    """Gradients of `log_ratio_forward`: ``(dz, dlog_var)``.

    Examples
    --------
    >>> z = np.array([[1.0, -2.0]]); eps = log_var = np.zeros((1, 2))
    >>> _, cache = log_ratio_forward(z, eps, log_var)
    >>> log_ratio_backward(np.array([2.0]), cache)  # -2 z, 2 * 0.5
    (array([[-2.,  4.]]), array([[1., 1.]]))
    """
    (z,) = cache
    g = dlog_ratio[..., None]
    return -g * z, np.broadcast_to(0.5 * g, z.shape).astype(z.dtype)
