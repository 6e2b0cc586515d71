"""The ``numpyvae`` command: argparse subcommands; the only reader of sys.argv.

``numpyvae train`` trains a VAE and writes a run folder (see `runs`);
``numpyvae experiment NAME`` runs one of `numpyvae.experiments`;
``numpyvae sweep SPEC --out DIR`` trains one run per point of a grid
(see `numpyvae.sweep`). Errors
from numpyvae (bad values, missing files, corrupt checkpoints, diverged
training) print ``numpyvae: error: <message>`` and exit with status 2;
Ctrl-C during training saves a checkpoint and exits with status 130.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from . import runs
from .activations import ACTIVATIONS
from .checkpoint import load_checkpoint
from .train import trainer_from_checkpoint
from .vae import LIKELIHOODS, VAE

# Measured with ``numpyvae train`` on 2 cores: see docs/main-job.md.
DEFAULTS = {"data": "digits", "epochs": 200, "latent_dim": 2, "hidden": [128],
            "activation": "relu", "likelihood": "bernoulli", "sigma": None, "beta": 1.0,
            "batch_size": 32, "lr": 3e-3, "seed": 0, "dtype": "float32",
            "binarize": "none", "objective": "elbo", "k": 1, "lr_schedule": "constant",
            "adam_epsilon": 1e-8, "init_output_bias": True, "init": "he",
            "latent_dims": None, "hidden2": None}
DEFAULT_OUT = "runs/digits"
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


def _latent_dims(text: str) -> list[int]:
    """'100,50' -> [100, 50]: the sizes of z1 and z2."""
    widths = _hidden(text)
    if len(widths) != 2:
        raise argparse.ArgumentTypeError(f"expected two sizes such as 100,50, got {text!r}")
    return widths


def _add_train(sub) -> None:
    d = DEFAULTS
    p = sub.add_parser("train", help="train a VAE and write numbers, checkpoint and pictures",
                       description="Train a VAE and write metrics.json, history.csv, "
                       "checkpoint.npz, config.json and PNG pictures into --out.")
    p.add_argument("--data", help=f"'digits' (embedded 8x8), 'mnist' (from $NUMPYVAE_DATA "
                   f"or the cache) or a path to an .npz file (default {d['data']})")
    p.add_argument("--epochs", type=_int_at_least(1),
                   help=f"total epochs, also when resuming (default {d['epochs']})")
    p.add_argument("--latent-dim", type=_int_at_least(1),
                   help=f"size of z (default {d['latent_dim']})")
    p.add_argument("--hidden", type=_hidden,
                   help="comma-separated hidden widths, e.g. 128 or 256,128; '' for linear "
                   "(default 128)")
    p.add_argument("--latent-dims", type=_latent_dims, metavar="D1,D2",
                   help="two stochastic layers: sizes of z1 and z2, e.g. 100,50 (the IWAE "
                   "paper's second architecture; replaces --latent-dim)")
    p.add_argument("--hidden2", type=_hidden,
                   help="with --latent-dims: hidden widths between z1 and z2 (default two "
                   "layers of the size of z2, as in the paper)")
    p.add_argument("--activation", choices=ACTIVATIONS, help="default relu")
    p.add_argument("--likelihood", choices=LIKELIHOODS, help="decoder; default bernoulli")
    p.add_argument("--sigma", type=float, help="the gaussian decoder's fixed std (default 1)")
    p.add_argument("--beta", type=float, help=f"KL weight (default {d['beta']})")
    p.add_argument("--batch-size", type=_int_at_least(1),
                   help=f"default {d['batch_size']}")
    p.add_argument("--lr", type=float, help=f"Adam learning rate (default {d['lr']})")
    p.add_argument("--seed", type=_int_at_least(0), help=f"default {d['seed']}")
    p.add_argument("--dtype", choices=("float32", "float64"), help="default float32")
    p.add_argument("--binarize", choices=("none", "dynamic", "static"),
                   help="grey levels (none, default), a fresh Bernoulli draw of every batch "
                   "(dynamic) or one fixed draw (static)")
    p.add_argument("--objective", choices=("elbo", "iwae"),
                   help="negative ELBO (default) or the IWAE bound with --k samples")
    p.add_argument("--k", type=_int_at_least(1), help="IWAE samples per example (default 1)")
    p.add_argument("--lr-schedule", choices=("constant", "iwae"),
                   help="constant (default) or the IWAE paper's 3^i-epoch stages, "
                   "compressed into --epochs")
    p.add_argument("--adam-epsilon", type=float, help="Adam's epsilon (default 1e-8)")
    p.add_argument("--init-output-bias", action=argparse.BooleanOptionalAction,
                   default=None, help="start the decoder's output bias at the training "
                   "mean pixel (default on: measured in docs/results.md)")
    p.add_argument("--init", choices=("he", "lecun"),
                   help="weight initialisation: he (He before relu, Glorot elsewhere; "
                   "default) or lecun (U(+-1/sqrt(fan_in)), PyTorch's nn.Linear scale)")
    p.add_argument("--out", help=f"run folder (default {DEFAULT_OUT}, or DIR with --resume)")
    p.add_argument("--no-plots", action="store_true", help="write no pictures")
    p.add_argument("--resume", metavar="DIR",
                   help="continue the run in DIR from DIR/checkpoint.npz to --epochs in total")


def _add_experiment(sub) -> None:
    from .experiments import EXPERIMENTS
    p = sub.add_parser("experiment", help="run one of the notes' experiments",
                       description="Run one experiment; prints its numbers as JSON.")
    p.add_argument("name", choices=EXPERIMENTS, help="the experiment")
    p.add_argument("--out", required=True, help="folder for its numbers and figure")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="default 0")


def _add_gradcheck(sub) -> None:
    p = sub.add_parser("gradcheck", help="finite-difference check of every VAE gradient",
                       description="Build a small VAE for each likelihood x posterior x "
                       "depth, check every parameter's gradient against central "
                       "differences in float64, print a table; exit 1 on any failure.")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="dtype of the analytic gradient (the finite differences are "
                   "always float64; float32 shows its round-off and fails the default gate)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="default 0")
    p.add_argument("--h", type=float, default=1e-5, help="central-difference step (1e-5)")
    p.add_argument("--threshold", type=float, default=1e-7,
                   help="gate on the normwise relative error (default 1e-7)")
    p.add_argument("--beta", type=float, default=1.0, help="KL weight (default 1)")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="test-set ELBO, IWAE-k log-likelihood, bits/dim",
                       description="Evaluate the run in RUN_DIR on its test split: mean "
                       "ELBO (sampled z), IWAE-k estimate of log p(x), their gap, bits/dim "
                       "and active units; adds them to RUN_DIR/metrics.json.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by numpyvae train")
    p.add_argument("--k", type=_int_at_least(1), default=5000,
                   help="importance samples per example (default 5000)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="default 0")
    p.add_argument("--batch-size", type=_int_at_least(1), default=500,
                   help="examples per progress step (default 500)")
    p.add_argument("--limit", type=_int_at_least(1),
                   help="evaluate only the first N test examples (quick checks)")


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
    parser = argparse.ArgumentParser(prog="numpyvae", description="A VAE in pure NumPy.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_experiment(sub)
    _add_gradcheck(sub)
    _add_sweep(sub)
    _add_evaluate(sub)
    # Later subcommands (evaluate, gradcheck, sweep): one _add_<name>(sub) here,
    # one _<name>(args) -> int below, one branch in main.
    return parser


def _settings(args, resume: Path | None) -> dict:
    """DEFAULTS, overridden by the resumed run's config.json, then by flags.

    A resumed run keeps its settings: a flag other than --epochs that
    disagrees with them is an error.
    """
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}
    settings = dict(DEFAULTS)
    if resume is not None:
        config_path = resume / runs.CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"--resume: no {runs.CONFIG_FILE} in {resume}; expected "
                                    "a run folder written by numpyvae train")
        saved = runs.read_json(config_path)
        settings.update({k: saved[k] for k in DEFAULTS if k in saved})
        for key, value in given.items():
            if key != "epochs" and value != settings[key]:
                flag = "--" + key.replace("_", "-")
                raise ValueError(f"{flag}: the run in {resume} has {settings[key]!r}, got "
                                 f"{value!r}; a resumed run keeps its settings, leave "
                                 f"{flag} out")
    settings.update(given)
    return settings


def _train(args) -> int:
    resume = None if args.resume is None else Path(args.resume)
    out = Path(args.out) if args.out is not None else (resume or Path(DEFAULT_OUT))
    settings = _settings(args, resume)
    data = runs.load_run_data(settings)
    if resume is not None:
        trainer = trainer_from_checkpoint(load_checkpoint(resume / runs.CHECKPOINT_FILE))
    else:
        trainer = runs.new_trainer(settings, data[0][0])
    try:
        metrics, written, pictures_skipped = runs.train_run(
            settings, out, data, trainer, pictures=not args.no_plots, progress=True)
    except KeyboardInterrupt:
        print(f"interrupted: checkpoint saved at epoch {trainer.epoch}, step {trainer.step} "
              f"in {out / runs.CHECKPOINT_FILE}; resume with: numpyvae train --resume "
              f"{shlex.quote(str(out))}", file=sys.stderr)
        return 130
    if pictures_skipped:
        print(PICTURES_SKIPPED)
    print(f"val ELBO {metrics['val_elbo']:.2f} nats per example (mean-pixel baseline "
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


def _gradcheck(args) -> int:
    from .gradcheck import check_model
    if not args.h > 0 or not args.threshold > 0:
        raise ValueError(f"--h and --threshold: expected numbers > 0, got {args.h} and "
                         f"{args.threshold}")
    failures = 0
    for likelihood, posterior, hidden in GRADCHECK_CONFIGS:
        rng = np.random.default_rng(args.seed)
        model = VAE(7, 3, hidden=hidden, activation="tanh", likelihood=likelihood,
                    posterior=posterior, dtype="float64", rng=rng)
        x, eps = rng.random((5, 7)), rng.standard_normal((5, 3))
        report = check_model(model, x, eps, beta=args.beta, analytic_dtype=args.dtype,
                             fd_step=args.h, normwise_tol=args.threshold)
        failures += sum(not c.passed for c in report.inputs)
        print(f"\n{likelihood} likelihood, {posterior} posterior, hidden={list(hidden)}, "
              f"loss={report.f_value:.6g}")
        print(report)
    total = len(GRADCHECK_CONFIGS)
    print(f"\n{'all' if not failures else 'NOT all'} gradients pass "
          f"({failures} failing arrays over {total} configurations)")
    return 1 if failures else 0


def _evaluate(args) -> int:
    from .evaluation import evaluate_model
    run = Path(args.run_dir)
    settings = runs.read_json(run / runs.CONFIG_FILE)
    model = load_checkpoint(run / runs.CHECKPOINT_FILE).model
    _, (x_test, _) = runs.load_run_data({**settings, "dtype": model.config.dtype})
    if args.limit is not None:
        x_test = x_test[:args.limit]
    result = evaluate_model(model, x_test, k=args.k, rng=args.seed,
                            batch_size=args.batch_size, log=lambda line: print(line, flush=True))
    metrics_path = run / runs.METRICS_FILE
    metrics = runs.read_json(metrics_path) if metrics_path.is_file() else {}
    metrics.update({f"eval_{key}": value for key, value in result.items()})
    runs.write_json(metrics_path, metrics)
    print(json.dumps(result, indent=2, allow_nan=False))
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
        parser.print_help(sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as e:
        print(f"numpyvae: error: {e}", file=sys.stderr)
        return 2
