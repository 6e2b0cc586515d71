"""Optimizers that update a dict of parameter arrays in place.

Params, grads and optimizer moments are flat dicts with the same keys
(``enc0.W``, ``mu.b``, ...). The state is plain arrays so a checkpoint
can store it in an ``.npz`` and training can resume bit for bit.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .arrays import check_positive

Array = NDArray[np.floating]


def check_grads(params: dict, grads: dict) -> None:
    """grads must have the keys of params, each array of its shape and dtype."""
    if params.keys() != grads.keys():
        missing = sorted(set(params) - set(grads))
        extra = sorted(set(grads) - set(params))
        raise ValueError(f"grads: expected the keys of params; missing {missing}, extra {extra}")
    for name, p in params.items():
        g = grads[name]
        if g.shape != p.shape or g.dtype != p.dtype:
            raise ValueError(
                f"grads[{name!r}]: expected shape {p.shape} and dtype {p.dtype}, "
                f"got {g.shape} and {g.dtype}"
            )


class Adam:
    """Adam (Kingma & Ba, 2015), Algorithm 1, with bias correction.

    Parameters
    ----------
    lr : float
        Step size alpha, > 0. Default 1e-3.
    beta1, beta2 : float
        Decay rates of the first and second moment estimates, in [0, 1).
    epsilon : float
        The constant added to sqrt(v_hat), > 0. Default 1e-8.

    Notes
    -----
    For each parameter theta with gradient g, at step t = 1, 2, ...:

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        m_hat = m / (1 - beta1^t),   v_hat = v / (1 - beta2^t)
        theta = theta - lr * m_hat / (sqrt(v_hat) + epsilon)

    `step` is these lines, one array at a time. The state is data: the
    step count ``t`` and the moments ``m`` and ``v``, dicts with the
    keys of the parameters, kept in the parameters' dtype. The Trainer
    runs the same update fused over all parameters at once
    (`fused_step.adam_step`), tested equal to this one.

    Examples
    --------
    >>> params = {"w": np.array([1.0])}
    >>> opt = Adam(lr=0.1)
    >>> opt.step(params, {"w": np.array([2.0])})
    >>> params["w"]  # the first Adam step moves by about lr
    array([0.9])
    """

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8):
        self.lr = check_positive(lr, "lr")
        for name, value in (("beta1", beta1), ("beta2", beta2)):
            check_positive(value, name, allow_zero=True)
            if not value < 1:
                raise ValueError(f"{name}: expected a number in [0, 1), got {value}")
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.epsilon = check_positive(epsilon, "epsilon")
        self.t = 0
        self.m: dict[str, Array] = {}
        self.v: dict[str, Array] = {}

    def step(self, params: dict, grads: dict) -> None:
        """Apply one Adam update to every array of `params`, in place."""
        check_grads(params, grads)
        if not self.m:
            self.m = {k: np.zeros_like(p) for k, p in params.items()}
            self.v = {k: np.zeros_like(p) for k, p in params.items()}
        self.t += 1
        b1, b2, t = self.beta1, self.beta2, self.t
        for k, theta in params.items():
            g, m, v = grads[k], self.m[k], self.v[k]
            m[...] = b1 * m + (1 - b1) * g
            v[...] = b2 * v + (1 - b2) * g * g
            m_hat = m / (1 - b1 ** t)
            v_hat = v / (1 - b2 ** t)
            theta -= self.lr * m_hat / (np.sqrt(v_hat) + self.epsilon)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The state as arrays: ``t`` and ``m.<name>``, ``v.<name>``.

        The arrays are copies: `step` updates the moments in place, and a
        snapshot must not change with it (its ``t`` would no longer match).
        """
        state = {"t": np.array(self.t, dtype=np.int64)}
        for name in self.m:
            state[f"m.{name}"] = self.m[name].copy()
            state[f"v.{name}"] = self.v[name].copy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore a state produced by `state_dict` (arrays are copied)."""
        self.t = int(state["t"])
        names = [k[2:] for k in state if k.startswith("m.")]
        self.m = {k: np.array(state[f"m.{k}"]) for k in names}
        self.v = {k: np.array(state[f"v.{k}"]) for k in names}

    def config(self) -> dict:
        """Hyperparameters, JSON-ready."""
        return {"name": "adam", "lr": self.lr, "beta1": self.beta1,
                "beta2": self.beta2, "epsilon": self.epsilon}


class SGD:
    """Stochastic gradient descent with optional (heavy-ball) momentum.

    Notes
    -----
    Without momentum:  theta = theta - lr * g
    With momentum mu:  v = mu * v + g,   theta = theta - lr * v

    Examples
    --------
    >>> params = {"w": np.array([1.0])}
    >>> SGD(lr=0.1).step(params, {"w": np.array([2.0])})
    >>> params["w"]
    array([0.8])
    """

    def __init__(self, lr: float = 1e-2, momentum: float = 0.0):
        self.lr = check_positive(lr, "lr")
        self.momentum = check_positive(momentum, "momentum", allow_zero=True)
        if not self.momentum < 1:
            raise ValueError(f"momentum: expected a number in [0, 1), got {momentum}")
        self.t = 0
        self.velocity: dict[str, Array] = {}

    def step(self, params: dict, grads: dict) -> None:
        """Apply one update to every array of `params`, in place."""
        check_grads(params, grads)
        self.t += 1
        for name, p in params.items():
            g = grads[name]
            dt = p.dtype.type
            if self.momentum > 0:
                v = self.velocity.setdefault(name, np.zeros_like(p))
                v *= dt(self.momentum)
                v += g
                g = v
            p -= dt(self.lr) * g

    def state_dict(self) -> dict[str, np.ndarray]:
        """The state as arrays: ``t`` and ``velocity.<name>`` (copies)."""
        state = {"t": np.array(self.t, dtype=np.int64)}
        for name, v in self.velocity.items():
            state[f"velocity.{name}"] = v.copy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore a state produced by `state_dict` (arrays are copied)."""
        self.t = int(state["t"])
        self.velocity = {k[len("velocity."):]: np.array(v) for k, v in state.items()
                         if k.startswith("velocity.")}

    def config(self) -> dict:
        """Hyperparameters, JSON-ready."""
        return {"name": "sgd", "lr": self.lr, "momentum": self.momentum}


IWAE_STAGES = 8  # the schedule of Burda et al. (2016): stages i = 0 .. 7


def iwae_learning_rate(epoch: int, total_epochs: int, base_lr: float) -> float:
    """Learning rate of the IWAE paper's schedule at a 0-based `epoch`.

    Notes
    -----
    Stage i (i = 0 .. 7) lasts 3^i epochs and uses lr = base_lr * 10^(-i/7),
    3280 epochs in all. For `total_epochs` other than 3280 the stages keep
    their proportions: stage i ends at round(total * (3^0 + .. + 3^i) / 3280)
    epochs, so a short budget runs the same schedule, compressed (its early
    stages may then take no epoch at all).

    Examples
    --------
    >>> [iwae_learning_rate(e, 3280, 1e-3) for e in (0, 1, 4, 3279)]
    [0.001, 0.00072, 0.00052, 0.0001]
    """
    ends = [round(total_epochs * (3 ** (i + 1) - 1) / 2 / 3280) for i in range(IWAE_STAGES)]
    stage = next((i for i, end in enumerate(ends) if epoch < end), IWAE_STAGES - 1)
    return base_lr * 10.0 ** (-stage / 7.0)
