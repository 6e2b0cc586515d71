"""Central-difference gradient checking, public so users can check their own layers.

The derivative of a scalar function f at x along coordinate i is
approximated by the central difference

    (f(x + h e_i) - f(x - h e_i)) / (2 h),

whose error is O(h^2) from truncation plus O(eps_machine |f| / h) from
rounding; with h = 1e-5 in float64 both are near 1e-11 (relative to
|f| and to f''' respectively). In float32 the rounding term alone is
near 1e-2 * |f|, which is why checks run in float64.

The gate used throughout numpyvae, per input array, with analytic
gradient a and numerical gradient n:

* normwise relative error ||a - n|| / (||a|| + ||n||) below 1e-7, or
  ||a - n|| within the rounding noise of the central differences,
  NOISE_FLOOR * |f| * sqrt(size) (a gradient that is tiny next to |f|,
  or exactly 0, leaves only that noise for the relative error), and
* every entry within |a - n| <= 1e-6 * max(1, |f|) + 1e-5 * |n|
  (a relative error per entry alone would fail on the near-zero entries
  of a correct gradient).

Element-wise differences cost two calls of f per entry: 1.3 million
for the 784-400-20 MNIST model. At any size, `check_directional` (a
scalar f) and `check_vjp_jvp` (an array-valued kernel) compare a
gradient with f along a few random unit directions u instead, each
derivative by central differences with a Richardson step (h = 5e-3,
then h / 2), 4 calls of f per direction and float64 precision (about
1e-10 relative). `check_model` (element-wise) and
`check_model_directional` apply them to a whole model of the model
protocol (one or two stochastic layers), ELBO or IWAE. Power: a wrong
gradient g + e is missed in one direction only when
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
from typing import Callable, Sequence

import numpy as np

NORMWISE_TOL = 1e-7
ABS_TOL = 1e-6
REL_TOL = 1e-5
FD_STEP = 1e-5
NOISE_FLOOR = 1e-9  # ~100 * 2.2e-16 / FD_STEP: rounding noise of one difference, per |f|


def require_float64(x: np.ndarray, name: str) -> None:
    """TypeError unless `x` is a float64 ndarray (finite differences need it)."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(
            f"{name}: finite differences need float64 inputs, got {got}; in float32 "
            "the rounding error of (f(x+h) - f(x-h)) / 2h is about 1e-7 * |f| / h, "
            "far above the gate. Use x.astype(np.float64)."
        )


def numerical_vjp(f: Callable, x: np.ndarray, dout, fd_step: float = FD_STEP) -> np.ndarray:
    """Numerical vector-Jacobian product sum(dout * df/dx), entry by entry.

    Parameters
    ----------
    f : callable
        Maps an array shaped like `x` to an array shaped like `dout` (or
        to a scalar, with ``dout = 1.0``).
    x : ndarray, float64
        The point; it is not modified (f sees copies).
    dout : ndarray or float
        The upstream gradient.
    fd_step : float
        The step h.

    Returns
    -------
    dx : ndarray, like `x`
        dx[i] = sum(dout * (f(x + h e_i) - f(x - h e_i))) / (2 h)

    Examples
    --------
    >>> numerical_vjp(lambda v: (v ** 2).sum(), np.array([1.0, 2.0]), 1.0)
    array([2., 4.])
    """
    require_float64(x, "x")
    dx = np.zeros_like(x)
    xp = x.copy()
    for i in np.ndindex(x.shape):
        old = xp[i]
        xp[i] = old + fd_step
        f_plus = np.asarray(f(xp.copy()), dtype=np.float64)
        xp[i] = old - fd_step
        f_minus = np.asarray(f(xp.copy()), dtype=np.float64)
        xp[i] = old
        dx[i] = np.sum(dout * (f_plus - f_minus)) / (2.0 * fd_step)
    return dx


def numerical_gradient(f: Callable, x: np.ndarray, fd_step: float = FD_STEP) -> np.ndarray:
    """Central-difference gradient of a scalar function f at x.

    Examples
    --------
    >>> numerical_gradient(lambda v: float((v ** 2).sum()), np.array([3.0, -1.0]))
    array([ 6., -2.])
    """
    return numerical_vjp(f, x, 1.0, fd_step)


def directional_check(f: Callable, x: np.ndarray, dx: np.ndarray, rng: np.random.Generator,
                      fd_step: float = FD_STEP) -> tuple[float, float]:
    """Compare a gradient with f along one random direction u: two calls of f.

    Returns ``(analytic, numerical)`` where analytic = sum(dx * u) and
    numerical = (f(x + h u) - f(x - h u)) / (2 h). Cheap at any size, so
    it suits property-based tests of whole models.

    Examples
    --------
    >>> x = np.array([1.0, 2.0])
    >>> f = lambda v: float((v ** 2).sum())
    >>> analytic, numerical = directional_check(f, x, 2 * x, np.random.default_rng(0))
    >>> abs(analytic - numerical) < 1e-8
    True
    """
    require_float64(x, "x")
    u = rng.standard_normal(x.shape)
    u /= np.linalg.norm(u) or 1.0
    numerical = (float(f(x + fd_step * u)) - float(f(x - fd_step * u))) / (2.0 * fd_step)
    return float(np.sum(dx * u)), numerical


@dataclass
class InputCheck:
    """Result of checking one input array.

    Examples
    --------
    >>> c = compare_gradients("W", np.array([1.0, 2.0]), np.array([1.0, 2.0]), 1.0)
    >>> c.name, c.shape, c.passed
    ('W', (2,), True)
    """

    name: str
    shape: tuple
    normwise_error: float
    max_abs_error: float
    worst_index: tuple
    worst_analytic: float
    worst_numerical: float
    passed: bool


@dataclass
class GradcheckReport:
    """Per-input results of `check_gradients`; ``str(report)`` is a table.

    Examples
    --------
    >>> f = lambda v: float((v ** 2).sum())
    >>> report = check_gradients(f, np.array([1.0, -1.0]), np.array([2.0, -2.0]), names=["v"])
    >>> report.passed, [c.name for c in report.inputs]
    (True, ['v'])
    >>> print(str(report).splitlines()[1].split()[:2])
    ['v', '(2,)']
    """

    f_value: float
    inputs: list

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.inputs)

    def __str__(self) -> str:
        head = (f"{'input':<14} {'shape':<12} {'normwise':>10} {'max |a-n|':>10} "
                f"{'ok':>4}  worst entry: index, analytic, numerical")
        rows = [head]
        for c in self.inputs:
            rows.append(
                f"{c.name:<14} {str(c.shape):<12} {c.normwise_error:10.2e} "
                f"{c.max_abs_error:10.2e} {'yes' if c.passed else 'NO':>4}  "
                f"{c.worst_index}, {c.worst_analytic:.10g}, {c.worst_numerical:.10g}"
            )
        return "\n".join(rows)


def compare_gradients(name: str, analytic: np.ndarray, numerical: np.ndarray, f_value: float,
                      normwise_tol: float = NORMWISE_TOL, abs_tol: float = ABS_TOL,
                      rel_tol: float = REL_TOL) -> InputCheck:
    """Judge one analytic gradient against its numerical estimate by the gate.

    Examples
    --------
    >>> n = np.array([1.0, 2.0])
    >>> bool(compare_gradients("b", np.array([1.0, 2.0]), n, f_value=1.0).passed)
    True
    >>> bool(compare_gradients("b", np.array([1.0, 2.1]), n, f_value=1.0).passed)
    False
    """
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numerical, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"{name}: analytic gradient has shape {a.shape}, expected {n.shape}")
    err = np.abs(a - n)
    denom = np.linalg.norm(a) + np.linalg.norm(n)
    normwise = float(np.linalg.norm(a - n) / denom) if denom > 0 else 0.0
    within_noise = np.linalg.norm(a - n) <= NOISE_FLOOR * abs(f_value) * np.sqrt(a.size)
    allowed = abs_tol * max(1.0, abs(f_value)) + rel_tol * np.abs(n)
    excess = err - allowed
    if a.size:
        worst = np.unravel_index(int(np.argmax(excess)), a.shape)
        max_abs, wa, wn = float(err.max()), float(a[worst]), float(n[worst])
        entries_ok = bool(np.all(excess <= 0))
    else:
        worst, max_abs, wa, wn, entries_ok = (), 0.0, 0.0, 0.0, True
    ok = bool(np.isfinite(a).all()) and (normwise < normwise_tol or within_noise) and entries_ok
    return InputCheck(name, a.shape, normwise, max_abs, tuple(int(i) for i in worst), wa, wn, ok)


def check_gradients(f: Callable, inputs, analytic, names: Sequence[str] | None = None,
              fd_step: float = FD_STEP, normwise_tol: float = NORMWISE_TOL,
              abs_tol: float = ABS_TOL, rel_tol: float = REL_TOL,
              verbose: bool = False) -> GradcheckReport:
    """Check analytic gradients of a scalar function against central differences.

    Parameters
    ----------
    f : callable
        ``f(*inputs) -> float``, a scalar.
    inputs : ndarray or sequence of ndarray, float64
        The point at which to check. Not modified.
    analytic : ndarray or sequence of ndarray
        The claimed gradients df/dinput, one per input, same shapes.
    names : sequence of str, optional
        Labels for the report (default ``x0, x1, ...``).
    fd_step : float
        Central-difference step h (default 1e-5).
    normwise_tol, abs_tol, rel_tol : float
        The gate: normwise relative error below `normwise_tol` and every
        entry within ``abs_tol * max(1, |f|) + rel_tol * |numerical|``.
    verbose : bool
        Print the report table.

    Returns
    -------
    GradcheckReport
        ``report.passed`` and, per input, the normwise relative error and
        the worst entry (index, analytic value, numerical value).

    Raises
    ------
    TypeError
        If an input is not float64.

    Examples
    --------
    >>> x = np.array([1.0, -2.0])
    >>> check_gradients(lambda v: float((v ** 3).sum()), x, 3 * x ** 2).passed
    True
    >>> check_gradients(lambda v: float((v ** 3).sum()), x, 2 * x ** 2).passed
    False
    """
    single = isinstance(inputs, np.ndarray)
    inputs = [inputs] if single else list(inputs)
    analytic = [analytic] if isinstance(analytic, np.ndarray) else list(analytic)
    if len(analytic) != len(inputs):
        raise ValueError(f"analytic: expected {len(inputs)} gradients, one per input, "
                         f"got {len(analytic)}")
    names = list(names) if names is not None else [f"x{i}" for i in range(len(inputs))]
    for name, x in zip(names, inputs):
        require_float64(x, name)
    f_value = float(f(*inputs))
    checks = []
    for i, (name, x, a) in enumerate(zip(names, inputs, analytic)):
        def f_i(v, i=i):
            args = list(inputs)
            args[i] = v
            return f(*args)
        n = numerical_gradient(f_i, x, fd_step)
        checks.append(compare_gradients(name, a, n, f_value, normwise_tol, abs_tol, rel_tol))
    report = GradcheckReport(f_value, checks)
    if verbose:
        print(report)
    return report


def _model_loss(model, x: np.ndarray, eps: np.ndarray, beta: float,
                objective: str) -> Callable:
    """The model's loss as a function of its parameter arrays (in the order
    of ``model.params``), x and eps held fixed: what the checks difference.

    Each call swaps the arrays into a fresh model of the same class and
    config (`from_config`) and returns its ``loss_and_grads(x, eps, beta,
    objective)[0]``: the protocol's loss, whatever the model."""
    names = list(model.params)
    probe = type(model).from_config(model.config.to_dict())

    def loss(*arrays):
        probe.params = dict(zip(names, arrays))
        return probe.loss_and_grads(x, eps, beta, objective)[0]

    return loss


def check_model(model, x: np.ndarray, eps: np.ndarray, beta: float = 1.0,
                objective: str = "elbo", analytic_dtype=None, fd_step: float = FD_STEP,
                normwise_tol: float = NORMWISE_TOL, abs_tol: float = ABS_TOL,
                rel_tol: float = REL_TOL) -> GradcheckReport:
    """Check every parameter gradient of a float64 model's loss.

    Parameters
    ----------
    model : any model of the protocol (VAE, HierarchicalVAE), float64
    x : ndarray, shape (n, input_dim)
    eps : ndarray, shape (n, noise_dim), or (k, n, noise_dim)
        Held fixed, so the loss is a deterministic function of the
        parameters.
    beta : float
        The KL weight, as the model accepts it (`check_beta`).
    objective : {"elbo", "iwae"}
        The loss of ``model.loss_and_grads(x, eps, beta, objective)``.
    analytic_dtype : {None, "float64", "float32"}
        "float32": the analytic gradient is computed by a float32 copy of
        the model (and cast up), which shows the size of float32
        round-off against the float64 finite differences.
    fd_step, normwise_tol, abs_tol, rel_tol : float
        As for `check_gradients`.

    Examples
    --------
    >>> from numpyvae import HierarchicalVAE, VAE
    >>> model = VAE(3, 2, hidden=(4,), activation="tanh", dtype="float64", rng=0)
    >>> rng = np.random.default_rng(0)
    >>> x, eps = rng.random((2, 3)), rng.standard_normal((2, 2))
    >>> check_model(model, x, eps).passed
    True
    >>> two = HierarchicalVAE(3, (2, 1), hidden=(4,), hidden2=(),
    ...                       dtype="float64", rng=0)
    >>> eps = rng.standard_normal((2, 2, 3))  # k = 2 samples of [eps1 | eps2]
    >>> check_model(two, x, eps, objective="iwae").passed
    True
    """
    if model.dtype != np.float64:
        raise TypeError(f"model: finite differences need a float64 model, got {model.dtype}")
    names = list(model.params)
    if analytic_dtype is None or np.dtype(analytic_dtype) == np.float64:
        _, grads = model.loss_and_grads(x, eps, beta, objective)
    else:
        low = type(model).from_config(
            {**model.config.to_dict(), "dtype": np.dtype(analytic_dtype).name},
            {k: v.astype(analytic_dtype) for k, v in model.params.items()})
        _, grads = low.loss_and_grads(x.astype(analytic_dtype), eps.astype(analytic_dtype),
                                      beta, objective)
    return check_gradients(_model_loss(model, x, eps, beta, objective),
                           [model.params[k] for k in names],
                           [grads[k].astype(np.float64) for k in names], names=names,
                           fd_step=fd_step, normwise_tol=normwise_tol, abs_tol=abs_tol,
                           rel_tol=rel_tol)


# ------------------------------------------------------------------------
# Checks at any size: random directions instead of coordinates.

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
    table, scale = [], 0.0
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
                for a, n in zip(self.analytic, self.numerical)]

    @property
    def max_error(self) -> float:
        return max(self.errors, default=0.0)

    @property
    def passed(self) -> bool:
        return all(math.isfinite(a) and abs(a - n) <= ok
                   for a, n, ok in zip(self.analytic, self.numerical, self.allowed))

    def __str__(self) -> str:
        rows = [f"{'direction':<10} {'analytic':>16} {'numerical':>16} {'|a-n|':>9} "
                f"{'allowed':>9} {'relative':>9} {'ok':>4}"]
        for k, (a, n, ok, e) in enumerate(zip(self.analytic, self.numerical, self.allowed,
                                              self.errors)):
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
    for i, (x, g) in enumerate(zip(inputs, analytic)):
        require_float64(x, f"inputs[{i}]")
        if np.shape(g) != x.shape:
            raise ValueError(f"analytic[{i}]: expected shape {x.shape}, got {np.shape(g)}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    f_value = float(f(*inputs))
    report = DirectionalReport(f_value, [], [], [])
    for _ in range(n_directions):
        u = random_directions(inputs, rng)
        a = sum(float(np.sum(g * d, dtype=np.float64)) for g, d in zip(analytic, u))

        def phi(t, u=u):
            return f(*[x + t * d for x, d in zip(inputs, u)])

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
    >>> from numpyvae.layers import dense_backward, dense_forward
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
        a = sum(float(np.sum(g * d, dtype=np.float64)) for g, d in zip(grads, u))

        def phi(t, u=u, v=v):
            return np.sum(v * forward(*[x + t * d for x, d in zip(inputs, u)])[0])

        n, noise = richardson_derivative(phi, fd_step, levels)
        report.analytic.append(a)
        report.numerical.append(n)
        report.allowed.append(_gate(a, n, noise, rtol))
    return report


def check_model_directional(model, x: np.ndarray, eps: np.ndarray, beta: float = 1.0,
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
    return check_directional(_model_loss(model, x, eps, beta, objective),
                             [model.params[k] for k in names],
                             [grads[k] for k in names], rng, n_directions, fd_step,
                             levels, rtol)
