"""Two measures of a trained model that the IWAE paper reports.

* Bits per dimension: a negative log-likelihood in nats per example,
  divided by the number of pixels and by log 2.
* Active units (Burda et al., 2016, section 5.2): latent unit j is
  active when its posterior mean moves with the data,
  A_j = Var_x(E_{q(z|x)}[z_j]) > 0.01; an inactive unit carries no
  information about x (its q(z_j|x) is the same for every x).

The model protocol supplies the posterior means (numpyvae/protocol.py,
`posterior_means`); numpyvae/evaluation.py streams them over a data set.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

ACTIVE_THRESHOLD = 1e-2


def bits_per_dim(nll: float, d_x: int) -> float:
    """NLL (nats per example) / (d_x log 2).

    Examples
    --------
    >>> bits_per_dim(784 * math.log(2.0), 784)
    1.0
    """
    return nll / (d_x * math.log(2.0))


def count_active_units(means: NDArray[np.floating],
                 threshold: float = ACTIVE_THRESHOLD) -> tuple[int, NDArray[np.float64]]:
    """Count the units whose posterior mean varies over the data.

    `means` holds E_q[z_j | x_i] in row i, column j, shape (n, d_z).
    Returns ``(count, variances)`` with ``variances[j] = Var_i(means[i, j])``
    (the population variance, in float64) and count = #{j : variances[j] >
    threshold}.

    Examples
    --------
    >>> means = np.array([[0.0, 1.0], [0.5, 1.0], [-0.5, 1.0]])
    >>> count_active_units(means)  # unit 0 moves with x, unit 1 does not
    (1, array([0.16666667, 0.        ]))
    """
    variances = means.astype(np.float64).var(axis=0)
    return int((variances > threshold).sum()), variances
