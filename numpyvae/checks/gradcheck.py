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
for the 784-400-20 MNIST model. `check_model` applies them to a whole
model of the model protocol (one or two stochastic layers), ELBO or
IWAE. At any size, the checks along a few random directions live in
`numpyvae.checks.directional` (`check_directional`, `check_vjp_jvp`,
`check_model_directional`); this module re-exports them, so
``numpyvae.gradcheck`` stays the one public module of every checker.
It imports numpy, `numpyvae.checks.fd_setup` (the float64 precondition and a
model's loss as a function of its parameters, shared with the
directional checks) and, for that re-export only, `numpyvae.checks.directional`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..protocol import Model
from .fd_setup import model_loss, require_float64

NORMWISE_TOL = 1e-7
ABS_TOL = 1e-6
REL_TOL = 1e-5
FD_STEP = 1e-5
NOISE_FLOOR = 1e-9  # ~100 * 2.2e-16 / FD_STEP: rounding noise of one difference, per |f|


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


def directional_derivatives(f: Callable, x: np.ndarray, dx: np.ndarray, rng: np.random.Generator,
                      fd_step: float = FD_STEP) -> tuple[float, float]:
    """Compare a gradient with f along one random direction u: two calls of f.

    Returns ``(analytic, numerical)`` where analytic = sum(dx * u) and
    numerical = (f(x + h u) - f(x - h u)) / (2 h). Cheap at any size, so
    it suits property-based tests of whole models.

    Examples
    --------
    >>> x = np.array([1.0, 2.0])
    >>> f = lambda v: float((v ** 2).sum())
    >>> analytic, numerical = directional_derivatives(f, x, 2 * x, np.random.default_rng(0))
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
    for name, x in zip(names, inputs, strict=True):
        require_float64(x, name)
    f_value = float(f(*inputs))
    checks = []
    for i, (name, x, a) in enumerate(zip(names, inputs, analytic, strict=True)):
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


def check_model(model: Model, x: np.ndarray, eps: np.ndarray, beta: float = 1.0,
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
    return check_gradients(model_loss(model, x, eps, beta, objective),
                           [model.params[k] for k in names],
                           [grads[k].astype(np.float64) for k in names], names=names,
                           fd_step=fd_step, normwise_tol=normwise_tol, abs_tol=abs_tol,
                           rel_tol=rel_tol)
