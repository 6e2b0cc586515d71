"""The ``numpyvae gradcheck`` verb (`run_gradcheck`): the small float64
models it builds (`GRADCHECK_CONFIGS` of one stochastic layer, with
--latent-dims `TWO_LAYER_CONFIGS` of two; --model-size mnist the full
sizes), their batches, and the element-wise or directional checks of
each model's ELBO and IWAE gradients, printed as tables; --bugs runs
the bug zoo instead. cli.py parses the flags and calls it;
`checked_flags` refuses the flags a mode would ignore (exit status 2).
Imports numpy, vae.py, hierarchical_vae.py and cli_parser.py (the
defaults) and, inside the functions, gradcheck.py, testing.py and
bugzoo.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np

from ..hierarchical_vae import HierarchicalVAE
from ..vae import VAE
from .cli_parser import build_parser

if TYPE_CHECKING:
    from ..checks.gradcheck import GradcheckReport

GRADCHECK_CONFIGS = [(lik, post, hidden) for lik in ("bernoulli", "gaussian")
                     for post in ("diagonal", "fixed") for hidden in ((), (6, 5))]
TWO_LAYER_CONFIGS = [((), ()), ((6, 5), (4,))]  # hidden, hidden2 of the two-layer checks


def _one_layer_case(args, likelihood: str, posterior: str, hidden: tuple):
    """``(label, float64 VAE, its generator)`` of one `GRADCHECK_CONFIGS` row."""
    rng = np.random.default_rng(args.seed)
    sigma = 0.7 if likelihood == "gaussian" else None  # away from 1 on purpose:
    delta = 0.6 if posterior == "fixed" else None      # sigma-for-sigma^2 shows
    big = args.directional and args.model_size == "mnist"
    d_x, d_z, hidden = (784, 20, (400,)) if big else (7, 3, hidden)
    init = "he" if args.directional else "auto"  # He's wider scale keeps relu inputs off kinks
    model = VAE(d_x, d_z, hidden=hidden, activation="relu" if big else "tanh",
                likelihood=likelihood, sigma=sigma, posterior=posterior, delta=delta,
                dtype="float64", rng=rng, init=init)
    return f"{likelihood} likelihood, {posterior} posterior, hidden={list(hidden)}", model, rng


def _two_layer_case(args, hidden: tuple, hidden2: tuple):
    """``(label, float64 HierarchicalVAE, its generator)``: z1 and z2 of
    --latent-dims; tanh, so no unit sits on a kink; 'mnist' is the IWAE
    paper's 784-100-100-z1-50-50-z2 architecture."""
    rng = np.random.default_rng(args.seed)
    if args.directional and args.model_size == "mnist":
        d_x, hidden, hidden2 = 784, (100, 100), (50, 50)
    else:
        d_x = 7
    model = HierarchicalVAE(d_x, args.latent_dims, hidden=hidden, hidden2=hidden2,
                            activation="tanh", dtype="float64", rng=rng)
    label = (f"two layers, latent_dims={list(args.latent_dims)}, hidden={list(hidden)}, "
             f"hidden2={list(hidden2)}")
    return label, model, rng


def _gradcheck_cases(args) -> list:
    """Every configuration the flags ask for, as ``(label, model, rng)``."""
    if args.latent_dims is not None:
        configs = TWO_LAYER_CONFIGS[-1:] if args.directional and args.model_size == "mnist" \
            else TWO_LAYER_CONFIGS  # one architecture at the MNIST size: the paper's
        return [_two_layer_case(args, *config) for config in configs]
    return [_one_layer_case(args, *config) for config in GRADCHECK_CONFIGS
            if not (args.directional and args.model_size == "mnist" and config[2] == ())]


def _gradcheck_batch(model, rng: np.random.Generator, n: int, eps_shape: tuple,
                     off_kinks: bool):
    """x (n, input_dim) in [0, 1) and eps; with `off_kinks` redrawn until
    every relu input of the one-layer model is off its kink."""
    from ..checks.testing import KINK_MARGIN, relu_margin
    for _ in range(100):
        x, eps = rng.random((n, model.config.input_dim)), rng.standard_normal(eps_shape)
        if not off_kinks or relu_margin(model, x, eps) >= KINK_MARGIN:
            break
    return x, eps


def _directional_checks(args, label: str, model, rng, one_layer: bool) -> tuple[int, int]:
    """The ELBO and IWAE checks of one model: ``(failures, checks)``."""
    from ..checks.directional import check_model_directional
    d, failures = model.config.noise_dim, 0
    for objective, shape in (("elbo", (3, d)), ("iwae", (2, 3, d))):
        x, eps = _gradcheck_batch(model, rng, 3, shape, off_kinks=one_layer)
        beta = args.beta if objective == "elbo" else 1.0
        report = check_model_directional(model, x, eps, beta, objective, rng=rng,
                                         n_directions=args.directions)
        failures += not report.passed
        print(f"\n{label}, {objective}, loss={report.f_value:.6g}, "
              f"max relative error {report.max_error:.2e}")
        print(report)
    return failures, 2


def _elementwise_checks(args, label: str, model, rng, one_layer: bool) -> tuple[int, int]:
    """Every parameter of one model by central differences: ``(failing
    arrays, checks)``; the ELBO (and for two layers, IWAE too)."""
    from ..checks.gradcheck import check_model
    d = model.config.noise_dim
    cases = [("elbo", (5, d))] if one_layer else [("elbo", (5, d)), ("iwae", (2, 5, d))]
    failures = 0
    for objective, shape in cases:
        x, eps = rng.random((5, model.config.input_dim)), rng.standard_normal(shape)
        report = judge(check_model(model, x, eps, beta=args.beta, objective=objective,
                                   analytic_dtype=args.dtype, fd_step=args.h),
                       args.threshold)
        failures += sum(not c.passed for c in report.inputs)
        print(f"\n{label}, " + ("" if one_layer else f"{objective}, ")
              + f"loss={report.f_value:.6g}")
        print(report)
    return failures, len(cases)


def judge(report: GradcheckReport, threshold: float | None) -> GradcheckReport:
    """`report` under --threshold: with a threshold, an array passes
    exactly when its normwise relative error is below it (tighter or
    looser than the built-in gate); None keeps the built-in gate of
    `numpyvae.gradcheck.compare_gradients`.

    Examples
    --------
    >>> from numpyvae.gradcheck import GradcheckReport, compare_gradients
    >>> a, n = np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-9])
    >>> report = GradcheckReport(1.0, [compare_gradients("b", a, n, 1.0)])
    >>> report.passed, judge(report, 1e-12).passed, judge(report, None).passed
    (True, False, True)
    """
    if threshold is None:
        return report
    inputs = [dataclasses.replace(c, passed=bool(c.normwise_error < threshold))
              for c in report.inputs]  # NaN errors fail
    return dataclasses.replace(report, inputs=inputs)


# The flags each mode reads (--seed: all of them); any other flag given is refused.
CHECKED_FLAGS = ("dtype", "h", "threshold", "beta", "directional", "model_size",
                 "directions", "latent_dims")
USED_FLAGS = {
    "bugs": {"bugs"},
    "directional": {"directional", "beta", "model_size", "directions", "latent_dims"},
    "element-wise": {"dtype", "h", "threshold", "beta", "latent_dims"},
}
WHY_UNUSED = {
    "bugs": "the bug zoo plants its bugs in small kernels of its own, with its own "
            "steps and gates, and reads only --seed",
    "directional": "they check float64 gradients with their own Richardson step and "
                   "gate; --dtype, --h and --threshold set the element-wise checks",
    "element-wise": "--model-size and --directions set the directional checks; add "
                    "--directional to use them",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _shown(args: argparse.Namespace, name: str) -> str:
    """A flag as given on the command line: '--h 0.001', '--directional'."""
    value = getattr(args, name)
    if isinstance(value, bool):
        return _flag(name)
    if isinstance(value, list):
        value = ",".join(map(str, value))
    return f"{_flag(name)} {value}"


def given_flags(args: argparse.Namespace) -> list[str]:
    """The names of `CHECKED_FLAGS` that `args` sets: not None and not the
    parser's default (with a parser default of None, any value is given).

    Examples
    --------
    >>> args = build_parser().parse_args(["gradcheck", "--bugs", "--h", "0.1"])
    >>> given_flags(args)
    ['h']
    """
    defaults = vars(build_parser().parse_args(["gradcheck"]))
    return [name for name in CHECKED_FLAGS
            if getattr(args, name) is not None and getattr(args, name) != defaults[name]]


def _check_positive(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{_flag(name)}: expected a finite number > 0, got {value}")


def checked_flags(args: argparse.Namespace) -> argparse.Namespace:
    """`args` with every flag checked and those not given filled in.

    --h and --threshold must be finite and > 0. A flag that the mode
    (--bugs, --directional or the element-wise checks) would ignore is
    refused, naming it. A flag left unset (None, or the parser's
    default) takes the checks' own value; --threshold unset is None,
    the built-in gate (`judge`).

    Raises
    ------
    ValueError
        Naming the flags, what was expected and what was given.

    Examples
    --------
    >>> parse = build_parser().parse_args
    >>> checked_flags(parse(["gradcheck"])).threshold is None
    True
    >>> try:
    ...     checked_flags(parse(["gradcheck", "--directions", "5"]))
    ... except ValueError as e:
    ...     print(str(e).split(" (")[0])
    --directions 5: not used by the element-wise checks
    """
    from ..checks.directional import N_DIRECTIONS
    from ..checks.gradcheck import FD_STEP
    _check_positive("h", args.h)
    _check_positive("threshold", args.threshold)
    mode = "bugs" if args.bugs else "directional" if args.directional else "element-wise"
    given = given_flags(args)
    unused = [_shown(args, name) for name in given if name not in USED_FLAGS[mode]]
    if unused:
        by = "--bugs" if mode == "bugs" else f"the {mode} checks"
        raise ValueError(f"{', '.join(unused)}: not used by {by} ({WHY_UNUSED[mode]})")
    builtin = {"dtype": "float64", "h": FD_STEP, "beta": 1.0, "model_size": "small",
               "directions": N_DIRECTIONS}
    filled = {name: builtin[name] for name in builtin if getattr(args, name) is None}
    threshold = args.threshold if "threshold" in given else None
    return argparse.Namespace(**{**vars(args), **filled, "threshold": threshold})


def run_gradcheck(args) -> int:
    """Run ``numpyvae gradcheck`` with its parsed flags `args`.

    Returns the exit status: 0 when every gradient passes (with --bugs:
    when every planted bug is caught), 1 otherwise. Raises ValueError,
    before anything runs, for a --h or --threshold that is not a finite
    number > 0 and for a flag the mode would ignore (`checked_flags`).
    """
    args = checked_flags(args)
    if args.bugs:
        from ..checks.bugzoo import format_table, run_zoo
        rows = run_zoo(seed=args.seed)
        print(format_table(rows))
        return 0 if all(row.caught for row in rows) else 1
    if args.threshold is not None:
        print(f"gate (--threshold): an array passes when its normwise relative error "
              f"is below {args.threshold:g}")
    checks = _directional_checks if args.directional else _elementwise_checks
    failures = total = 0
    for label, model, rng in _gradcheck_cases(args):
        failed, done = checks(args, label, model, rng, one_layer=args.latent_dims is None)
        failures, total = failures + failed, total + done
    what = "checks" if args.directional else "arrays"
    print(f"\n{'all' if not failures else 'NOT all'} gradients pass "
          f"({failures} failing {what} over {total} configurations)")
    return 1 if failures else 0
