"""Gradient checks at any size: random directions instead of coordinates.

Here live `check_directional` (a scalar f), `check_vjp_jvp` (an
array-valued kernel) and `check_model_directional` (a whole model of the
model protocol, one or two stochastic layers, ELBO or IWAE), with the
pieces they share: `richardson_derivative`, `random_directions` and
`DirectionalReport`. Each compares a gradient with f along a few random
unit directions u, each derivative by central differences with a
Richardson step (h = 5e-3, then h / 2), 4 calls of f per direction and
float64 precision (about 1e-10 relative). It imports numpy and
`numpyvae.checks.fd_setup` (the float64 precondition and a model's loss as a
function of its parameters) only; `numpyvae.gradcheck`, the element-wise
checks, re-exports its public names.

Power: a wrong gradient g + e is missed in one direction only when
|<e, u>| <= rtol |<g, u>| + noise; both inner products are about
|.| / sqrt(N) times a standard normal, so the test compares |e| / |g|
with rtol = 1e-8 whatever N. At N = 652,824 (sqrt(N) = 808)
an error of |e| / |g| = 1e-6 escapes one direction with probability
about 0.6% and all three with about 3e-7; docs/gradient-checking.md
works through the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..protocol import Model
from .fd_setup import model_loss, require_float64

DIRECTIONAL_STEP = 5e-3   # h of the coarsest difference along a unit direction
DIRECTIONAL_LEVELS = 1    # Richardson steps: differences at h, h/2 (h^2 removed)
DIRECTIONAL_RTOL = 1e-8   # gate on |a - n| / max(|a|, |n|), above the noise
N_DIRECTIONS = 3          # random directions per check
ROUNDING = 100 * np.finfo(np.float64).eps  # relative rounding of one value of f


def richardson_derivative(phi: Callable, fd_step: float = DIRECTIONAL_STEP,
                          levels: int = DIRECTIONAL_LEVELS) -> tuple[float, float]:
    """Derivative of a scalar function of t at t = 0, to float64 precision.

    Parameters
    ----------
    phi : callable
        ``phi(t) -> float`` for a float t.
    fd_step : float
        The coarsest step h.
    levels : int
        Richardson steps, >= 0 (0 is the plain central difference).

    Returns
    -------
    derivative : float
    noise : float
        The rounding error the estimate may carry,
        ``ROUNDING * max|phi| * 2^levels / h``.

    Notes
    -----
    D(h) = (phi(h) - phi(-h)) / (2 h) = phi'(0) + c2 h^2 + c4 h^4 + ...
    (odd powers cancel). Richardson's step combines two steps so that the
    leading error term cancels:

        R_1(h) = (4 D(h/2) - D(h)) / 3        error O(h^4)
        R_2(h) = (16 R_1(h/2) - R_1(h)) / 15  error O(h^6)

    The truncation error falls fast, so h can be large (1e-2 rather than
    1e-5), which divides the rounding error eps |phi| / h by a thousand.
    2 (levels + 1) calls of phi.

    Examples
    --------
    >>> d, noise = richardson_derivative(np.exp, 0.1, levels=2)
    >>> bool(abs(d - 1.0) < 1e-10)
    True
    """
    table: list[list[float]] = []
    scale = 0.0
    for j in range(levels + 1):
        h = fd_step / 2 ** j
        plus, minus = float(phi(h)), float(phi(-h))
        scale = max(scale, abs(plus), abs(minus))
        row = [(plus - minus) / (2.0 * h)]
        for level in range(1, j + 1):  # Neville's table, one row per step
            factor = 4.0 ** level
            row.append((factor * row[level - 1] - table[-1][level - 1]) / (factor - 1.0))
        table.append(row)
    noise = ROUNDING * scale * 2 ** levels / fd_step
    return table[-1][-1], noise


def _as_list(arrays) -> list:
    return [arrays] if isinstance(arrays, np.ndarray) else list(arrays)


def random_directions(inputs, rng: np.random.Generator) -> list[np.ndarray]:
    """A random unit direction u over all arrays of `inputs` together.

    Each entry is drawn from N(0, 1), then the whole is divided by its
    norm, so u is uniform on the unit sphere of R^N (N = total size).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> u = random_directions([np.zeros(3), np.zeros((2, 2))], rng)
    >>> [a.shape for a in u]
    [(3,), (2, 2)]
    >>> round(float(sum((a * a).sum() for a in u)), 12)
    1.0
    """
    u = [rng.standard_normal(np.shape(x)) for x in inputs]
    norm = math.sqrt(sum(float((a * a).sum()) for a in u)) or 1.0
    return [a / norm for a in u]


@dataclass
class DirectionalReport:
    """Per-direction results of `check_directional` or `check_vjp_jvp`.

    ``analytic[k]`` is <g, u_k> (or <backward(v_k), u_k>), ``numerical[k]``
    its Richardson difference, ``allowed[k]`` the gate on their gap.

    Examples
    --------
    >>> r = DirectionalReport(1.0, [2.0], [2.0 + 1e-12], [1e-9])
    >>> r.passed, f"{r.errors[0]:.0e}"
    (True, '5e-13')
    """

    f_value: float
    analytic: list
    numerical: list
    allowed: list

    @property
    def errors(self) -> list[float]:
        """Relative errors |a - n| / max(|a|, |n|) (0 when both are 0)."""
        return [abs(a - n) / max(abs(a), abs(n)) if a != n else 0.0
                for a, n in zip(self.analytic, self.numerical, strict=True)]

    @property
    def max_error(self) -> float:
        return max(self.errors, default=0.0)

    @property
    def passed(self) -> bool:
        return all(math.isfinite(a) and abs(a - n) <= ok
                   for a, n, ok in zip(self.analytic, self.numerical, self.allowed, strict=True))

    def __str__(self) -> str:
        rows = [f"{'direction':<10} {'analytic':>16} {'numerical':>16} {'|a-n|':>9} "
                f"{'allowed':>9} {'relative':>9} {'ok':>4}"]
        for k, (a, n, ok, e) in enumerate(zip(self.analytic, self.numerical, self.allowed,
                                              self.errors, strict=True)):
            rows.append(f"{k:<10} {a:16.10g} {n:16.10g} {abs(a - n):9.2e} {ok:9.2e} "
                        f"{e:9.2e} {'yes' if abs(a - n) <= ok else 'NO':>4}")
        return "\n".join(rows)


def _gate(analytic: float, numerical: float, noise: float, rtol: float) -> float:
    return rtol * max(abs(analytic), abs(numerical)) + noise


def check_directional(f: Callable, inputs, analytic, rng: np.random.Generator | int = 0,
                      n_directions: int = N_DIRECTIONS, fd_step: float = DIRECTIONAL_STEP,
                      levels: int = DIRECTIONAL_LEVELS,
                      rtol: float = DIRECTIONAL_RTOL) -> DirectionalReport:
    """Check a gradient along random directions: a few calls at any size.

    Parameters
    ----------
    f : callable
        ``f(*inputs) -> float``, a scalar.
    inputs : ndarray or sequence of ndarray, float64
        The point; not modified.
    analytic : ndarray or sequence of ndarray
        The claimed gradients g = df/dinput, one per input.
    rng : numpy.random.Generator or int
        Source of the directions (an int is a seed).
    n_directions : int
        Directions u_1 .. u_m, each a unit vector over all inputs at once.
    fd_step, levels : float, int
        Step and Richardson levels of `richardson_derivative`.
    rtol : float
        Each direction passes when ``|a - n| <= rtol * max(|a|, |n|) +
        noise``, with `noise` the rounding bound of the difference.

    Returns
    -------
    DirectionalReport

    Notes
    -----
    a_k = <g, u_k> = sum over inputs of sum(g * u_k)
    n_k = d/dt f(x + t u_k) at t = 0, by `richardson_derivative`
    Cost: 2 (levels + 1) calls of f per direction, whatever the size.

    Power. A wrong gradient g + e passes direction u only when
    |<e, u>| <= rtol |<g, u>| + noise. For u uniform on the unit sphere
    of R^N, <e, u> is about |e| Z / sqrt(N) with Z ~ N(0, 1), and <g, u>
    about |g| Z' / sqrt(N): both shrink by sqrt(N), so the test compares
    |e| / |g| with rtol whatever N is. With r = |e| / (rtol |g|), one
    direction misses the error with probability about
    (2 / pi) arctan(|Z'| / (r |Z|)) ~ 0.64 / r for large r, and m
    independent directions with about (0.64 / r)^m. An error exactly
    proportional to g (g scaled by 1 + d) gives relative error d in
    every direction. An e orthogonal to a drawn u has probability 0.

    Examples
    --------
    >>> x = np.array([1.0, -2.0, 0.5])
    >>> f = lambda v: float(np.sum(np.sin(v)))
    >>> check_directional(f, x, np.cos(x)).passed
    True
    >>> check_directional(f, x, np.cos(x) * (1 + 1e-6)).passed
    False
    """
    inputs, analytic = _as_list(inputs), _as_list(analytic)
    if len(analytic) != len(inputs):
        raise ValueError(f"analytic: expected {len(inputs)} gradients, one per input, "
                         f"got {len(analytic)}")
    for i, (x, g) in enumerate(zip(inputs, analytic, strict=True)):
        require_float64(x, f"inputs[{i}]")
        if np.shape(g) != x.shape:
            raise ValueError(f"analytic[{i}]: expected shape {x.shape}, got {np.shape(g)}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    f_value = float(f(*inputs))
    report = DirectionalReport(f_value, [], [], [])
    for _ in range(n_directions):
        u = random_directions(inputs, rng)
        a = sum(float(np.sum(g * d, dtype=np.float64)) for g, d in zip(analytic, u, strict=True))

        def phi(t, u=u):
            return f(*[x + t * d for x, d in zip(inputs, u, strict=True)])

        n, noise = richardson_derivative(phi, fd_step, levels)
        report.analytic.append(a)
        report.numerical.append(n)
        report.allowed.append(_gate(a, n, noise, rtol))
    return report


def check_vjp_jvp(forward: Callable, inputs, backward: Callable,
                  rng: np.random.Generator | int = 0, n_directions: int = N_DIRECTIONS,
                  fd_step: float = DIRECTIONAL_STEP, levels: int = DIRECTIONAL_LEVELS,
                  rtol: float = DIRECTIONAL_RTOL) -> DirectionalReport:
    """VJP/JVP consistency of an array-valued kernel: <v, J u> both ways.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs) -> (out, cache)``, out an array.
    inputs : ndarray or sequence of ndarray, float64
    backward : callable
        ``backward(dout, cache)`` -> the gradient of sum(dout * out) wrt
        each input (a single array when there is one input).
    rng, n_directions, fd_step, levels, rtol
        As in `check_directional`.

    Returns
    -------
    DirectionalReport
        ``analytic[k] = <backward(v_k), u_k>``, ``numerical[k] =
        <v_k, J u_k>`` by differences.

    Notes
    -----
    For random v (shaped like out, N(0, 1) entries) and a random unit u
    over all inputs:

        <v, J u> = d/dt sum(v * forward(x + t u)) at t = 0
                 = <J^T v, u> = sum over inputs of sum(backward(v) * u)

    The left side by `richardson_derivative`, the right by the backward
    pass: 2 (levels + 1) forward calls per direction (autograd's
    check_vjp does the same with one central difference). The power is
    that of `check_directional` with g = J^T v.

    Examples
    --------
    >>> from numpyvae.reference.layers import dense_backward, dense_forward
    >>> rng = np.random.default_rng(0)
    >>> x, W = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    >>> b = np.zeros(4)
    >>> check_vjp_jvp(dense_forward, [x, W, b], dense_backward).passed
    True
    """
    inputs = _as_list(inputs)
    for i, x in enumerate(inputs):
        require_float64(x, f"inputs[{i}]")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    out, cache = forward(*inputs)
    report = DirectionalReport(float(np.sum(out)), [], [], [])
    for _ in range(n_directions):
        v = rng.standard_normal(np.shape(out))
        grads = _as_list(backward(v, cache))
        if len(grads) != len(inputs):
            raise ValueError(f"backward: expected {len(inputs)} gradients, one per input, "
                             f"got {len(grads)}")
        u = random_directions(inputs, rng)
        a = sum(float(np.sum(g * d, dtype=np.float64)) for g, d in zip(grads, u, strict=True))

        def phi(t, u=u, v=v):
            return np.sum(v * forward(*[x + t * d for x, d in zip(inputs, u, strict=True)])[0])

        n, noise = richardson_derivative(phi, fd_step, levels)
        report.analytic.append(a)
        report.numerical.append(n)
        report.allowed.append(_gate(a, n, noise, rtol))
    return report


def check_model_directional(model: Model, x: np.ndarray, eps: np.ndarray, beta: float = 1.0,
                            objective: str = "elbo", grads: dict | None = None,
                            rng: np.random.Generator | int = 0,
                            n_directions: int = N_DIRECTIONS,
                            fd_step: float = DIRECTIONAL_STEP,
                            levels: int = DIRECTIONAL_LEVELS,
                            rtol: float = DIRECTIONAL_RTOL) -> DirectionalReport:
    """Check a whole float64 model's gradient along random directions.

    Parameters
    ----------
    model : any model of the protocol (VAE, HierarchicalVAE)
        float64; any size (the 784-400-20 MNIST model takes seconds).
    x : ndarray, shape (n, input_dim), float64
    eps : ndarray, float64
        Held fixed: shape (n, noise_dim) for one sample, (k, n,
        noise_dim) for k (the one-layer model's "elbo" objective, with
        its analytic KL, takes one sample).
    beta : float
        KL weight of the ELBO, as the model accepts it (`check_beta`);
        the IWAE objective has none, so 1.
    objective : {"elbo", "iwae"}
        The loss of ``model.loss_and_grads(x, eps, beta, objective)``.
    grads : dict, optional
        The gradient to judge (default: the model's own), e.g. one with
        a planted error.
    rng, n_directions, fd_step, levels, rtol
        As in `check_directional`.

    Returns
    -------
    DirectionalReport

    Notes
    -----
    One direction u is one unit vector over every parameter array at
    once; each costs 2 (levels + 1) loss evaluations. See
    `check_directional` for the test's power.

    Examples
    --------
    >>> from numpyvae import VAE
    >>> model = VAE(3, 2, hidden=(4,), activation="tanh", dtype="float64",
    ...             rng=0)
    >>> rng = np.random.default_rng(0)
    >>> x, eps = rng.random((2, 3)), rng.standard_normal((2, 2))
    >>> check_model_directional(model, x, eps).passed
    True
    """
    if objective not in ("elbo", "iwae"):
        raise ValueError(f"objective: expected 'elbo' or 'iwae', got {objective!r}")
    if model.dtype != np.float64:
        raise TypeError(f"model: finite differences need a float64 model, got {model.dtype}")
    require_float64(x, "x")
    require_float64(eps, "eps")
    names = list(model.params)
    if grads is None:
        grads = model.loss_and_grads(x, eps, beta, objective)[1]
    return check_directional(model_loss(model, x, eps, beta, objective),
                             [model.params[k] for k in names],
                             [grads[k] for k in names], rng, n_directions, fd_step,
                             levels, rtol)
