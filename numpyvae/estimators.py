"""Estimators of log p_theta(x).

The notes write p_theta(x) = E_{z~r}[p_theta(x|z)], an integral with no
closed form; these functions estimate its logarithm. Every estimator
works in log space through `log_mean_exp`, so tiny likelihoods (MNIST's
are near exp(-100)) never underflow.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import logsumexp

Array = NDArray[np.floating]


def log_mean_exp(a: Array, axis: int = 0) -> Array:
    """log((1/m) sum_i exp(a_i)) along `axis`, without overflow.

    Notes
    -----
    log_mean_exp(a) = logsumexp(a) - log(m), and logsumexp subtracts the
    maximum before exponentiating. Output dtype equals input dtype.

    Examples
    --------
    >>> float(log_mean_exp(np.array([-1000.0, -1000.0])))
    -1000.0
    """
    a = np.asarray(a)
    m = a.shape[axis]
    if m == 0:
        raise ValueError(f"a: expected at least one entry along axis {axis}, got shape {a.shape}")
    out = logsumexp(a, axis=axis) - np.log(a.dtype.type(m))
    return out.astype(a.dtype, copy=False)
