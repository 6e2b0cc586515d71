"""Optimizers that update a dict of parameter arrays in place.

Params, grads and optimizer moments are flat dicts with the same keys
(``enc0.W``, ``mu.b``, ...). The state is plain arrays so a checkpoint
can store it in an ``.npz`` and training can resume bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._validation import check_positive

Array = NDArray[np.floating]


def _check_grads(params: dict, grads: dict) -> None:
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

    The code folds both bias corrections into scalars, in the spirit of
    the paper's Section 2 but with epsilon scaled too, so that it is
    algebraically identical to Algorithm 1 (the paper's own rearrangement
    leaves epsilon unscaled); it saves two passes over memory:

        lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
        theta = theta - lr_t * m / (sqrt(v) + epsilon * sqrt(1 - beta2^t))

    (multiply numerator and denominator of m_hat / (sqrt(v_hat) + eps) by
    sqrt(1 - beta2^t)). Moments are kept in the parameters' dtype and the
    scalars are cast to it, so a float32 model never touches float64.

    Speed: NumPy has no fused multiply-add, so the update is 12 passes
    over memory, written into one scratch buffer (nothing is allocated
    after the first step). The moments are views into one buffer each;
    when the parameters and the gradients are laid out the same way (as
    `init_params` and a `Trainer`'s workspace lay them out) every pass runs
    once over all parameters instead of once per array, bit for bit the
    same numbers. Splitting the passes over two threads did not pay on a
    2-core machine (docs/performance.md), so the update runs in the
    calling thread.

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
        self._scratch: dict = {}
        self._last = None  # (arrays, pieces) of the previous step

    def step(self, params: dict, grads: dict) -> None:
        """Apply one Adam update to every array of `params`, in place."""
        _check_grads(params, grads)
        if not self.m:
            self.m, self.v = _packed_zeros(params), _packed_zeros(params)
        self.t += 1
        c2 = math.sqrt(1.0 - self.beta2 ** self.t)
        lr_t = self.lr * c2 / (1.0 - self.beta1 ** self.t)
        eps_t = self.epsilon * c2
        for p, g, m, v, buf in self._pieces(params, grads):
            self._update(p, g, m, v, buf, lr_t, eps_t)

    def _pieces(self, params: dict, grads: dict) -> list[tuple]:
        """``(p, g, m, v, buf)`` tuples to update: one tuple of 1-d arrays
        when params, grads and moments each tile one buffer in the same
        order, else one tuple per name. Remembered while the same arrays
        come back (a Trainer passes the same ones every step)."""
        arrays = [(params[k], grads[k], self.m[k], self.v[k]) for k in params]
        if not arrays:
            return []
        last = self._last
        if last is not None and len(arrays) == len(last[0]) and all(
                a is b for new, old in zip(arrays, last[0]) for a, b in zip(new, old)):
            return last[1]
        flats = [_tiled([a[i] for a in arrays]) for i in range(4)]
        if all(f is not None for f in flats):
            pieces = [(*flats, self._buffer(None, flats[0]))]
        else:
            pieces = [(*a, self._buffer(k, a[0])) for k, a in zip(params, arrays)]
        self._last = (arrays, pieces)
        return pieces

    def _buffer(self, key: str | None, like: Array) -> Array:
        """Scratch array like `like`, kept across steps (key None: the flat one)."""
        buf = self._scratch.get(key)
        if buf is None or buf.shape != like.shape or buf.dtype != like.dtype:
            buf = self._scratch[key] = np.empty_like(like)
        return buf

    def _update(self, p, g, m, v, buf, lr_t: float, eps_t: float) -> None:
        dt = p.dtype.type
        # m = beta1 m + (1 - beta1) g, written as m += (1 - beta1) (g - m)
        np.subtract(g, m, out=buf)
        buf *= dt(1.0 - self.beta1)
        m += buf
        # v = beta2 v + (1 - beta2) g^2
        np.multiply(g, g, out=buf)
        buf *= dt(1.0 - self.beta2)
        v *= dt(self.beta2)
        v += buf
        # p -= lr_t * m / (sqrt(v) + eps_t)
        np.sqrt(v, out=buf)
        buf += dt(eps_t)
        np.divide(m, buf, out=buf)
        buf *= dt(lr_t)
        p -= buf

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
        self.m, self.v = _packed_zeros(state, names, "m."), _packed_zeros(state, names, "v.")
        for k in names:
            self.m[k][...] = state[f"m.{k}"]
            self.v[k][...] = state[f"v.{k}"]
        self._scratch, self._last = {}, None

    def config(self) -> dict:
        """Hyperparameters, JSON-ready."""
        return {"name": "adam", "lr": self.lr, "beta1": self.beta1,
                "beta2": self.beta2, "epsilon": self.epsilon}


def _packed_zeros(arrays: dict, names=None, prefix: str = "") -> dict[str, Array]:
    """Zeros shaped like ``arrays[prefix + name]``, views into one buffer
    in `names` order (one dtype), so that Adam can run over all at once."""
    names = list(arrays) if names is None else names
    like = [arrays[prefix + k] for k in names]
    if len({np.asarray(a).dtype for a in like}) != 1:
        return {k: np.zeros_like(a) for k, a in zip(names, like)}
    flat = np.zeros(sum(np.size(a) for a in like), dtype=np.asarray(like[0]).dtype)
    out, start = {}, 0
    for k, a in zip(names, like):
        out[k] = flat[start:start + np.size(a)].reshape(np.shape(a))
        start += np.size(a)
    return out


def _tiled(arrays: list) -> Array | None:
    """The 1-d array that `arrays` tile end to end, in order, or None."""
    base = arrays[0].base
    if base is None or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    origin = base.__array_interface__["data"][0]
    start = position = (arrays[0].__array_interface__["data"][0] - origin) // base.itemsize
    for a in arrays:
        if (a.base is not base or a.dtype != base.dtype or not a.flags.c_contiguous
                or a.__array_interface__["data"][0] != origin + position * base.itemsize):
            return None
        position += a.size
    return base[start:position]


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
        _check_grads(params, grads)
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
