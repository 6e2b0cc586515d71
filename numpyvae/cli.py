"""The ``numpyvae`` command: argparse subcommands; the only reader of sys.argv.

``numpyvae train`` trains a VAE and writes a run folder (see `runs`),
one flag per run setting of `numpyvae.settings`;
``numpyvae experiment NAME`` runs one of `numpyvae.experiments`;
``numpyvae sweep SPEC --out DIR`` trains one run per point of a grid
(see `numpyvae.sweep`); ``numpyvae evaluate RUN_DIR`` scores a run on
its test split; ``numpyvae sample RUN_DIR`` and ``numpyvae encode
RUN_DIR`` write a run's samples and latent codes (`numpyvae.export`);
``numpyvae gradcheck`` checks every gradient by finite differences;
``numpyvae --version`` prints the version. Every verb reaches the model
through the model protocol (protocol.py), so each works for a run of
either model (one stochastic layer, or two with ``--latent-dims``). Errors
from numpyvae (bad values, missing files, corrupt checkpoints, diverged
training) print ``numpyvae: error: <message>`` and exit with status 2;
Ctrl-C during training saves a checkpoint and exits with status 130.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

import numpy as np

from . import runs
from ._progress import plus_minus
from .checkpoint import load_checkpoint
from .settings import DEFAULTS, SETTINGS, Setting
from .hierarchical_vae import HierarchicalVAE
from .vae import VAE

PICTURES_SKIPPED = 'pictures skipped: matplotlib is not installed (pip install "numpyvae[viz]")'


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    return parse


def _hidden(text: str) -> list[int]:
    """'256,128' -> [256, 128]; '' -> [] (a linear encoder and decoder)."""
    if text.strip() == "":
        return []
    try:
        widths = [int(part) for part in text.split(",")]
    except ValueError:
        widths = [0]
    if min(widths) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated widths >= 1 such as 128 or 256,128 (or '' for "
            f"linear), got {text!r}")
    return widths


def _two_sizes(text: str) -> list[int]:
    """'3,2' -> [3, 2]: the sizes of z1 and z2."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        sizes = []
    if len(sizes) != 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected the two sizes of z1 and z2, integers >= 1 such as 3,2; got {text!r}")
    return sizes


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _default_text(setting: Setting) -> str:
    if setting.default is None:
        return "none"
    if setting.kind == "widths":
        return ",".join(map(str, setting.default)) or "''"
    if setting.kind == "bool":
        return "on" if setting.default else "off"
    return str(setting.default)


def _add_setting(p, setting: Setting) -> None:
    """One flag of `numpyvae train`, from its `Setting`."""
    text = f"{setting.help} (default {_default_text(setting)})"
    if setting.kind == "bool":
        p.add_argument(setting.flag, action=argparse.BooleanOptionalAction, default=None,
                       help=text)
    elif setting.kind == "int":
        p.add_argument(setting.flag, type=_int_at_least(setting.minimum), help=text)
    elif setting.kind == "float":
        p.add_argument(setting.flag, type=_finite_float, help=text)
    elif setting.kind == "widths":
        p.add_argument(setting.flag, type=_hidden, help=text)
    else:
        p.add_argument(setting.flag, choices=setting.choices, help=text)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a VAE and write numbers, checkpoint and pictures",
                       description="Train a VAE and write metrics.json, history.csv, "
                       "checkpoint.npz, config.json and PNG pictures into --out.")
    for setting in SETTINGS:
        _add_setting(p, setting)
    p.add_argument("--out", help="run folder (default runs/<data>: runs/digits, "
                   "runs/mnist, runs/<file name>; DIR with --resume); a folder that "
                   "holds a run is refused")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out: its files are removed first")
    p.add_argument("--no-plots", action="store_true", help="write no pictures")
    p.add_argument("--resume", metavar="DIR",
                   help="continue the run in DIR from DIR/checkpoint.npz to --epochs in total")
    p.add_argument("--quiet", action="store_true",
                   help="no progress (a tqdm bar, or at most 22 lines of epochs); the "
                   "final summary is still printed")


def _add_experiment(sub) -> None:
    from .experiments import EXPERIMENTS
    p = sub.add_parser("experiment", help="run one of the notes' experiments",
                       description="Run one experiment; prints its numbers as JSON.")
    p.add_argument("name", choices=EXPERIMENTS, help="the experiment")
    p.add_argument("--out", required=True, help="folder for its numbers and figure")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="default 0")


def _add_gradcheck(sub) -> None:
    p = sub.add_parser("gradcheck", help="finite-difference check of every model gradient",
                       description="Build a small VAE for each likelihood x posterior x "
                       "depth (with --latent-dims, a two-layer model for each depth, "
                       "ELBO and IWAE), check every parameter's gradient against central "
                       "differences in float64, print a table; exit 1 on any failure. "
                       "--directional checks along random directions instead (any size, "
                       "ELBO and IWAE); --bugs prints the bug zoo's table.")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="dtype of the analytic gradient (the finite differences are "
                   "always float64; float32 shows its round-off and fails the default gate)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="default 0")
    p.add_argument("--h", type=float, default=1e-5, help="central-difference step (1e-5)")
    p.add_argument("--threshold", type=float, default=1e-7,
                   help="gate on the normwise relative error (default 1e-7)")
    p.add_argument("--beta", type=float, default=1.0, help="KL weight (default 1)")
    p.add_argument("--directional", action="store_true",
                   help="check the ELBO and IWAE gradients along random unit directions "
                   "(Richardson-extrapolated differences): a few evaluations at any size")
    p.add_argument("--model-size", choices=("small", "mnist"), default="small",
                   help="with --directional: 'small' (7-6-5-3) or 'mnist' (the "
                   "784-400-20 relu model of pytorch/examples, 652,824 parameters)")
    p.add_argument("--directions", type=_int_at_least(1), default=3,
                   help="with --directional: random directions per check (default 3)")
    p.add_argument("--latent-dims", type=_two_sizes, metavar="D1,D2",
                   help="check the model with two stochastic layers of these sizes of "
                   "z1 and z2, e.g. 3,2 (as train's --latent-dims; with --model-size "
                   "mnist the IWAE paper's 784-100-100-D1-50-50-D2 tanh model); its "
                   "beta must be 1")
    p.add_argument("--bugs", action="store_true",
                   help="plant classic backprop bugs in copies of the kernels and print "
                   "whether the element-wise and the directional checks catch each")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="test-set ELBO, IWAE-k log-likelihood, bits/dim",
                       description="Evaluate the run in RUN_DIR on its test split: mean "
                       "ELBO (a fresh z per example), IWAE-k estimate of log p(x) (quote "
                       "its NLL), their gap and bits/dim, each with its Monte-Carlo "
                       "standard error, and the active units; adds them to "
                       "RUN_DIR/metrics.json (test_elbo, test_iwae_k, test_nll, ...).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by numpyvae train")
    p.add_argument("--k", type=_int_at_least(1), default=5000,
                   help="importance samples per example (default 5000)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="default 0")
    p.add_argument("--batch-size", type=_int_at_least(1), default=500,
                   help="examples per progress step (default 500)")
    p.add_argument("--limit", type=_int_at_least(1),
                   help="evaluate only the first N test examples (quick checks)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or lines")


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="draw samples of a trained run into a file",
                       description="Load RUN_DIR/checkpoint.npz, draw N decoder means "
                       "mu(z) at z ~ N(0, I) (for two stochastic layers z2 ~ N(0, I), "
                       "z1 ~ p(z1|z2)) (means, the pixel probabilities of a "
                       "Bernoulli decoder, not draws of x; --draws writes one draw "
                       "x ~ p(x|z) per z instead) and write them to FILE: .png a grid picture (square "
                       "images, needs matplotlib), .npy or .csv the (N, d) array.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by numpyvae train")
    p.add_argument("--n", type=_int_at_least(1), default=64, help="samples (default 64)")
    p.add_argument("--out", metavar="FILE", required=True, help=".png, .npy or .csv")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="default 0")
    p.add_argument("--draws", action="store_true",
                   help="write x ~ p(x|z) (0/1 pixels for a Bernoulli decoder) instead of "
                   "the decoder means")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")


def _add_encode(sub) -> None:
    p = sub.add_parser("encode", help="write the latent means of a run's data to a file",
                       description="Load RUN_DIR/checkpoint.npz and write mu(x) and "
                       "log_var(x) of q(z|x) (of z1, the latent the decoder reads, for a "
                       "run with two stochastic layers) for every example of the run's "
                       "data split (as the run saw it: binarized test data for a "
                       "binarized run) to FILE: .npz (arrays mu, log_var, labels) or .csv "
                       "(columns mu_0.., log_var_0.., label).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by numpyvae train")
    p.add_argument("--out", metavar="FILE", required=True, help=".npz or .csv")
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="default test")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")


def _add_sweep(sub) -> None:
    p = sub.add_parser("sweep", help="train one run per point of a grid of settings",
                       description="Train one run per point of the grid in SPEC (a TOML "
                       "file with [base], [grid] and [sweep] tables; see docs/sweeps.md) "
                       "into DIR/<run name>/, skipping runs already finished, then write "
                       "DIR/summary.csv and pictures. Exit 1 if a run failed.")
    p.add_argument("spec", metavar="SPEC", help="the sweep's TOML file")
    p.add_argument("--out", metavar="DIR", required=True, help="the sweep folder")
    p.add_argument("--jobs", metavar="N", type=_int_at_least(1), default=1,
                   help="runs at a time on local processes (joblib's loky backend); "
                   "default 1: one after the other in this process")
    p.add_argument("--dask-scheduler", metavar="ADDRESS",
                   help="run on the Dask cluster at ADDRESS (e.g. tcp://127.0.0.1:8786) "
                   "through joblib's dask backend, instead of --jobs")
    p.add_argument("--no-plots", action="store_true", help="write no pictures")


def build_parser() -> argparse.ArgumentParser:
    """The ``numpyvae`` command-line parser, with one subparser per command.

    Examples
    --------
    >>> args = build_parser().parse_args(["gradcheck", "--seed", "3"])
    >>> args.command, args.seed, args.dtype
    ('gradcheck', 3, 'float64')
    """
    from . import __version__
    parser = argparse.ArgumentParser(prog="numpyvae", description="A VAE in pure NumPy.")
    parser.add_argument("--version", action="version", version=f"numpyvae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_experiment(sub)
    _add_gradcheck(sub)
    _add_sweep(sub)
    _add_evaluate(sub)
    _add_sample(sub)
    _add_encode(sub)
    # Later subcommands (evaluate, gradcheck, sweep): one _add_<name>(sub) here,
    # one _<name>(args) -> int below, one branch in main.
    return parser


def _flags(args) -> dict:
    """The settings given as flags, by name."""
    return {s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name) is not None}


def _train(args) -> int:
    """A new run in --out (refused where a run lives, unless --overwrite),
    or with --resume the run in DIR continued; each holding its folder."""
    if args.resume is not None:
        return _resume(args)
    settings = dict(DEFAULTS, **_flags(args))
    out = runs.check_out(args.out, settings["data"])
    if not args.overwrite:
        runs.claim_folder(out)  # early, before loading data; again below, holding the folder
    data = runs.load_run_data(settings)
    runs.check_memory(settings, data[0][0].shape[1])
    with runs.lock_folder(out):
        runs.claim_folder(out, overwrite=args.overwrite)
        trainer = runs.new_trainer(settings, data[0][0])
        return _run(args, settings, out, data, trainer)


def _resume(args) -> int:
    folder = runs.check_out(args.resume, "", "--resume")
    if not (folder / runs.CHECKPOINT_FILE).is_file():
        raise FileNotFoundError(f"--resume: no {runs.CHECKPOINT_FILE} in {folder}; expected "
                                "a run folder written by numpyvae train")
    if args.out is not None and Path(args.out).resolve() != folder.resolve():
        raise ValueError(f"--out: a resumed run stays in its folder {folder}, got --out "
                         f"{args.out}; leave --out out")
    if args.overwrite:
        raise ValueError("--overwrite: not used with --resume, which continues the run")
    with runs.lock_folder(folder, "--resume"):
        ckpt = load_checkpoint(folder / runs.CHECKPOINT_FILE)
        trainer = runs.resume_trainer(ckpt)
        settings = runs.resume_settings(folder, ckpt, trainer, _flags(args))
        data = runs.load_run_data(settings)
        return _run(args, settings, folder, data, trainer)


def _run(args, settings: dict, out: Path, data, trainer) -> int:
    try:
        metrics, written, pictures_skipped = runs.train_run(
            settings, out, data, trainer, pictures=not args.no_plots,
            progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"interrupted: checkpoint saved at epoch {trainer.epoch}, step {trainer.step} "
              f"in {out / runs.CHECKPOINT_FILE}; resume with: numpyvae train --resume "
              f"{shlex.quote(str(out))}", file=sys.stderr)
        return 130
    if pictures_skipped:
        print(PICTURES_SKIPPED)
    val = plus_minus(metrics["val_elbo"], metrics["val_elbo_se"])
    print(f"val ELBO {val} nats per example (mean-pixel baseline "
          f"{metrics['baseline_mean_pixel']:.2f}) after {trainer.epoch} epochs, "
          f"{metrics['seconds']:.1f} s of training\nwrote {out}/: {', '.join(written)}")
    return 0


def _experiment(args) -> int:
    from . import experiments
    result = experiments.run_experiment(args.name, Path(args.out), seed=args.seed)
    print(json.dumps(result, indent=2, allow_nan=False))
    return 0


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
    from .testing import KINK_MARGIN, relu_margin
    for _ in range(100):
        x, eps = rng.random((n, model.config.input_dim)), rng.standard_normal(eps_shape)
        if not off_kinks or relu_margin(model, x, eps) >= KINK_MARGIN:
            break
    return x, eps


def _directional_checks(args, label: str, model, rng, one_layer: bool) -> tuple[int, int]:
    """The ELBO and IWAE checks of one model: ``(failures, checks)``."""
    from .gradcheck import check_model_directional
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
    from .gradcheck import check_model
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


def _gradcheck(args) -> int:
    if args.bugs:
        from .bugzoo import format_table, run_zoo
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


def _evaluate(args) -> int:
    from .evaluation import evaluate_model
    run = Path(args.run_dir)
    settings = runs.read_settings(run / runs.CONFIG_FILE)
    metrics_path = run / runs.METRICS_FILE  # read (and refused) before the long computation
    metrics = runs.new_names(runs.read_json(metrics_path)) if metrics_path.is_file() else {}
    model = load_checkpoint(run / runs.CHECKPOINT_FILE).model
    _, (x_test, _) = runs.load_run_data({**settings, "dtype": model.config.dtype})
    if args.limit is not None:
        x_test = x_test[:args.limit]
    result = evaluate_model(model, x_test, k=args.k, rng=args.seed,
                            batch_size=args.batch_size, progress=not args.quiet,
                            log=lambda line: print(line, flush=True))
    renamed = {"k": "eval_k", "n": "eval_n", "seconds": "eval_seconds"}
    metrics.update({renamed.get(key, key): value for key, value in result.items()})
    metrics["eval_seed"] = args.seed
    runs.write_json(metrics_path, metrics)
    print(f"test ELBO {plus_minus(result['test_elbo'], result['test_elbo_se'])} (a fresh z "
          f"per example), IWAE-{args.k} log p(x) "
          f"{plus_minus(result['test_iwae_k'], result['test_iwae_se'])}: NLL "
          f"{plus_minus(result['test_nll'], result['test_iwae_se'])} nats per example "
          f"over {result['n']} test examples (value ± Monte-Carlo standard error)")
    print(json.dumps(result, indent=2, allow_nan=False))
    return 0


def _sample(args) -> int:
    from . import export, plots
    out = export.check_target(args.out, export.SAMPLE_SUFFIXES, args.overwrite)
    if out.suffix.lower() == ".png":
        try:
            plots.require_matplotlib()
        except ImportError:
            raise ValueError(f"--out: a .png needs matplotlib, which is not installed "
                             f"({plots.INSTALL_HINT}); or write .npy or .csv") from None
    model = load_checkpoint(Path(args.run_dir) / runs.CHECKPOINT_FILE).model
    if out.suffix.lower() == ".png" and math.isqrt(model.config.input_dim) ** 2 != \
            model.config.input_dim:
        raise ValueError(f"--out: a .png needs square images, but this model's rows have "
                         f"{model.config.input_dim} values; write .npy or .csv")
    samples = export.draw_samples(model, args.n, np.random.default_rng(args.seed),
                                  draws=args.draws)
    title = "samples: x ~ p(x | z), z ~ N(0, I)" if args.draws else None
    export.write_samples(out, samples, overwrite=args.overwrite, title=title)
    what = "draws of x ~ p(x|z)" if args.draws else "decoder means at z ~ N(0, I)"
    print(f"wrote {out}: {args.n} {what} (seed {args.seed})")
    return 0


def _encode(args) -> int:
    from . import export
    out = export.check_target(args.out, export.LATENT_SUFFIXES, args.overwrite)
    run = Path(args.run_dir)
    settings = runs.read_settings(run / runs.CONFIG_FILE)
    model = load_checkpoint(run / runs.CHECKPOINT_FILE).model
    train_split, test_split = runs.load_run_data({**settings, "dtype": model.config.dtype})
    x, labels = test_split if args.split == "test" else train_split
    mu, log_var = export.encode_all(model, x)
    export.write_latents(out, mu, log_var, labels, overwrite=args.overwrite)
    print(f"wrote {out}: mu and log_var of q(z|x), shape {mu.shape}, for the {args.split} "
          f"split of {settings['data']}")
    return 0


def _sweep(args) -> int:
    from . import sweep
    if args.dask_scheduler is not None and args.jobs != 1:
        raise ValueError("--jobs: not used with --dask-scheduler (the cluster's workers run "
                         f"the runs), got --jobs {args.jobs}; leave it out")
    try:
        result = sweep.run_sweep(args.spec, args.out, jobs=args.jobs,
                                 dask_scheduler=args.dask_scheduler, pictures=not args.no_plots)
    except ImportError as e:  # joblib or dask.distributed missing: one line
        print(f"numpyvae: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept; run the same command again to run "
              "the others", file=sys.stderr)
        return 130
    failed = [row["run"] for row in result["rows"] if row["status"] != "done"]
    written = [result["summary"].name] + [p.name for p in result["pictures"]]
    print(f"{len(result['rows']) - len(failed)} of {len(result['rows'])} runs done"
          + (f"; failed (see their error.txt): {', '.join(failed)}" if failed else "")
          + f"\nwrote {args.out}/: {', '.join(written)}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``numpyvae`` command with `argv` (default sys.argv[1:]).

    Returns the exit status: 0 on success, 2 for a usage or numpyvae
    error (message on stderr), 130 when interrupted.

    Examples
    --------
    >>> args = build_parser().parse_args(["gradcheck", "--threshold", "1e-6"])
    >>> args.command, args.threshold
    ('gradcheck', 1e-06)
    >>> main(["no-such-command"])  # argparse's usage error goes to stderr
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or argparse's own usage error
        return e.code if isinstance(e.code, int) else 0
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "experiment":
            return _experiment(args)
        if args.command == "gradcheck":
            return _gradcheck(args)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "sample":
            return _sample(args)
        if args.command == "encode":
            return _encode(args)
        parser.print_help(sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as e:
        print(f"numpyvae: error: {e}", file=sys.stderr)
        return 2
    except MemoryError as e:  # beyond the estimate of runs.check_memory
        print(f"numpyvae: error: out of memory ({e or 'an allocation failed'}); choose "
              "smaller sizes", file=sys.stderr)
        return 2
