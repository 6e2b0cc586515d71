"""The set-up both families of finite-difference checks share: the float64
precondition on the point (`require_float64`) and, for a whole model of
the model protocol, the function that is differenced, its loss as a
function of its parameter arrays (`model_loss`). `numpyvae.gradcheck`
(entry by entry) and `numpyvae.checks.directional` (along random directions)
both import it, so neither needs the other; it imports only numpy.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..protocol import Model


def require_float64(x: np.ndarray, name: str) -> None:
    """TypeError unless `x` is a float64 ndarray (finite differences need it)."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(
            f"{name}: finite differences need float64 inputs, got {got}; in float32 "
            "the rounding error of (f(x+h) - f(x-h)) / 2h is about 1e-7 * |f| / h, "
            "far above the gate. Use x.astype(np.float64)."
        )


def model_loss(model: Model, x: np.ndarray, eps: np.ndarray, beta: float,
               objective: str) -> Callable:
    """The model's loss as a function of its parameter arrays (in the order
    of ``model.params``), x and eps held fixed: what the checks difference.

    Each call swaps the arrays into a fresh model of the same class and
    config (`from_config`) and returns its ``loss_and_grads(x, eps, beta,
    objective)[0]``: the protocol's loss, whatever the model."""
    names = list(model.params)
    probe = type(model).from_config(model.config.to_dict())

    def loss(*arrays):
        probe.params = dict(zip(names, arrays, strict=True))
        return probe.loss_and_grads(x, eps, beta, objective)[0]

    return loss
