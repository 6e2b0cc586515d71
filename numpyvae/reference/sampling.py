"""The reparameterization trick and draws from the prior.

The notes write a sample of q_phi(z|x) = N(lambda_phi(x), Delta^2 I) as
z = lambda_phi(x) + Delta * eps with eps ~ N(0, I) drawn independently of
x. Because the randomness sits in eps, z is a differentiable function of
the encoder's outputs and gradients flow through the sample.

The kernels work elementwise on arrays of one shape (..., d_z): one
sample per example (n, d_z), or k samples of each (k, n, d_z), with mu
and log_var broadcast over the sample axis by the caller.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .arrays import check_float_array, check_positive, check_same_dtype, check_same_shape

Array = NDArray[np.floating]


def draw_eps(rng: np.random.Generator, shape: tuple[int, ...], dtype="float32") -> Array:
    """Standard-normal noise eps of the given shape, drawn in `dtype`.

    Examples
    --------
    >>> draw_eps(np.random.default_rng(0), (2, 3), "float64").shape
    (2, 3)
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    return rng.standard_normal(shape, dtype=np.dtype(dtype).type)


def sample_prior(rng: np.random.Generator, n: int, d_z: int, dtype="float32") -> Array:
    """n draws from the prior r(z) = N(0, I), shape (n, d_z).

    Examples
    --------
    >>> z = sample_prior(np.random.default_rng(0), 4, 2)
    >>> z.shape, z.dtype
    ((4, 2), dtype('float32'))
    """
    return draw_eps(rng, (n, d_z), dtype)


def reparameterize_forward(mu: Array, log_var: Array, eps: Array) -> tuple[Array, tuple]:
    """Sample of N(mu, diag(exp(log_var))) written as a function of eps.

    Parameters
    ----------
    mu, log_var, eps : ndarray, shape (..., d_z), one shape and dtype

    Returns
    -------
    z : ndarray, shape (..., d_z)
    cache : tuple ``(std, eps)``

    Notes
    -----
    Forward:   std = exp(0.5 * log_var),   z = mu + std * eps
    Backward:  dmu = dz,   dlog_var = dz * eps * 0.5 * std

    References
    ----------
    Kingma and Welling, "Auto-Encoding Variational Bayes" (2014),
    Section 2.4: the reparameterization trick; the notes,
    z = lambda_phi(x) + Delta * epsilon.

    Examples
    --------
    >>> z, _ = reparameterize_forward(np.zeros((1, 1)), np.zeros((1, 1)),
    ...                               np.full((1, 1), 2.0))
    >>> z
    array([[2.]])
    """
    for name, a in (("mu", mu), ("log_var", log_var), ("eps", eps)):
        check_float_array(a, name)
    check_same_shape("mu", mu, log_var=log_var, eps=eps)
    check_same_dtype(mu=mu, log_var=log_var, eps=eps)
    std = np.exp(0.5 * log_var)  # (..., d_z)
    z = mu + std * eps
    return z, (std, eps)


def reparameterize_backward(dz: Array, cache: tuple) -> tuple[Array, Array]:
    """Gradients of `reparameterize_forward`: ``(dmu, dlog_var)``.

    Examples
    --------
    >>> mu, log_var = np.zeros((1, 1)), np.full((1, 1), np.log(4.0))  # std = 2
    >>> _, cache = reparameterize_forward(mu, log_var, np.full((1, 1), 3.0))
    >>> dmu, dlog_var = reparameterize_backward(np.ones((1, 1)), cache)
    >>> dmu, dlog_var  # dlog_var = 1 * 3 * 0.5 * 2
    (array([[1.]]), array([[3.]]))
    """
    std, eps = cache
    return dz, dz * eps * (0.5 * std)


def reparameterize_fixed_forward(mu: Array, delta: float, eps: Array) -> tuple[Array, None]:
    """The notes' sample z = lambda(x) + Delta * eps with a fixed Delta >= 0.

    Notes
    -----
    Forward:   z = mu + delta * eps
    Backward:  dmu = dz   (delta is a constant, not learned)

    At delta = 0 the sample is z = mu: the deterministic autoencoder.

    Examples
    --------
    >>> eps = np.array([[2.0, -2.0]])
    >>> reparameterize_fixed_forward(np.ones((1, 2)), 0.5, eps)[0]
    array([[2., 0.]])
    >>> reparameterize_fixed_forward(np.ones((1, 2)), 0.0, eps)[0]  # delta = 0: z = mu
    array([[1., 1.]])
    """
    check_float_array(mu, "mu")
    check_float_array(eps, "eps")
    check_same_shape("mu", mu, eps=eps)
    check_same_dtype(mu=mu, eps=eps)
    delta = check_positive(delta, "delta", allow_zero=True)
    return mu + delta * eps, None


def reparameterize_fixed_backward(dz: Array, cache: None) -> Array:
    """Gradient of `reparameterize_fixed_forward`: dmu = dz.

    Examples
    --------
    >>> reparameterize_fixed_backward(np.array([[1.0, -1.0]]), None)
    array([[ 1., -1.]])
    """
    return dz
