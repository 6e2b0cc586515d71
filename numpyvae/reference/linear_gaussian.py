"""The linear-Gaussian VAE, the one model here whose log p(x) has a closed form.

With a linear decoder and a Gaussian likelihood of fixed sigma, the
notes' latent model x = z W + b + sigma * noise, z ~ r = N(0, I), makes
p(x) itself Gaussian. Its exact log-likelihood is the yardstick the
experiments hold every estimate against (the naive Monte-Carlo estimate
and its Jensen bias, the ELBO, the IWAE bound). No backward: nothing is
trained on it.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import cho_factor, cho_solve

Array = NDArray[np.floating]

LOG_2PI = math.log(2.0 * math.pi)


def log_marginal(x: Array, W: Array, b: Array, sigma: float) -> NDArray[np.float64]:
    """log p(x) of the linear-Gaussian model, per row of `x`, in float64.

    Parameters
    ----------
    x : ndarray, shape (n, d_x)
    W : ndarray, shape (d_z, d_x)
        The decoder's weights (rows: the latent units).
    b : ndarray, shape (d_x,)
        The decoder's bias.
    sigma : float
        The decoder's fixed standard deviation, > 0.

    Notes
    -----
    Integrating z out of x = z W + b + sigma * noise with z ~ N(0, I):

        p(x) = N(x; b, C),   C = W^T W + sigma^2 I            (d_x, d_x)
        log p(x) = -0.5 (d_x log(2 pi) + log det C + (x - b)^T C^{-1} (x - b))

    evaluated with the Cholesky factor C = L L^T, so log det C =
    2 sum_j log L_jj and C^{-1} (x - b) is two triangular solves.

    Examples
    --------
    >>> log_marginal(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros(1), 1.0)  # -0.5 log(2 pi)
    array([-0.91893853])
    """
    W64 = W.astype(np.float64)
    diff = x.astype(np.float64) - b.astype(np.float64)  # (n, d_x)
    d_x = diff.shape[1]
    cov = W64.T @ W64 + sigma ** 2 * np.eye(d_x)  # (d_x, d_x)
    factor = cho_factor(cov, lower=True)
    log_det = 2.0 * np.log(np.diag(factor[0])).sum()
    maha = (diff * cho_solve(factor, diff.T).T).sum(axis=1)  # (n,)
    return -0.5 * (d_x * LOG_2PI + log_det + maha)
