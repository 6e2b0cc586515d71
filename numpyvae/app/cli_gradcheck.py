"""The ``numpyvae gradcheck`` verb (`run_gradcheck`): the small float64
models it builds (`GRADCHECK_CONFIGS` of one stochastic layer, with
--latent-dims `TWO_LAYER_CONFIGS` of two; --model-size mnist the full
sizes), their batches, and the element-wise or directional checks of
each model's ELBO and IWAE gradients, printed as tables; --bugs runs
the bug zoo instead. cli.py parses the flags and calls it. Imports
numpy, vae.py and hierarchical_vae.py and, inside the functions,
gradcheck.py, testing.py and bugzoo.py.
"""

from __future__ import annotations

import numpy as np

from ..hierarchical_vae import HierarchicalVAE
from ..vae import VAE

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
        report = check_model(model, x, eps, beta=args.beta, objective=objective,
                             analytic_dtype=args.dtype, fd_step=args.h,
                             normwise_tol=args.threshold)
        failures += sum(not c.passed for c in report.inputs)
        print(f"\n{label}, " + ("" if one_layer else f"{objective}, ")
              + f"loss={report.f_value:.6g}")
        print(report)
    return failures, len(cases)


def run_gradcheck(args) -> int:
    """Run ``numpyvae gradcheck`` with its parsed flags `args`.

    Returns the exit status: 0 when every gradient passes (with --bugs:
    when every planted bug is caught), 1 otherwise. Raises ValueError
    for a --h or --threshold that is not > 0.
    """
    if args.bugs:
        from ..checks.bugzoo import format_table, run_zoo
        rows = run_zoo(seed=args.seed)
        print(format_table(rows))
        return 0 if all(row.caught for row in rows) else 1
    if not args.h > 0 or not args.threshold > 0:
        raise ValueError(f"--h and --threshold: expected numbers > 0, got {args.h} and "
                         f"{args.threshold}")
    checks = _directional_checks if args.directional else _elementwise_checks
    failures = total = 0
    for label, model, rng in _gradcheck_cases(args):
        failed, done = checks(args, label, model, rng, one_layer=args.latent_dims is None)
        failures, total = failures + failed, total + done
    what = "checks" if args.directional else "arrays"
    print(f"\n{'all' if not failures else 'NOT all'} gradients pass "
          f"({failures} failing {what} over {total} configurations)")
    return 1 if failures else 0
