"""The parser of the ``numpyvae`` command (`build_parser`): one
subparser per verb, the flags of ``numpyvae train`` made from the run
settings of `numpyvae.app.settings`, and the argument types that check each
flag's value (an integer at least a minimum, layer widths, the two sizes
of --latent-dims, a finite number). The verbs themselves are in cli.py,
which imports this module. Imports argparse, settings.py and, inside
the functions, experiments.py (the experiment names).
"""

from __future__ import annotations

import argparse
import math

from .settings import SETTINGS, Setting


def _int_at_least(minimum: int | None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if minimum is not None and value < minimum:
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
    if setting.kind == "widths" and isinstance(setting.default, list):
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


def _add_quiet(p, progress: str | None) -> None:
    """--quiet, on every verb: no progress lines; the result is still printed."""
    what = f"no progress ({progress})" if progress else "no progress (this verb shows none)"
    p.add_argument("--quiet", action="store_true",
                   help=f"{what}; the result and errors are still printed")


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
    _add_quiet(p, "a tqdm bar, or at most 22 lines of epochs and a line a minute inside "
               "a long epoch")


def _add_experiment(sub) -> None:
    from .experiments import EXPERIMENTS
    p = sub.add_parser("experiment", help="run one of the notes' experiments",
                       description="Run one experiment; prints its numbers as JSON.")
    p.add_argument("name", choices=EXPERIMENTS, help="the experiment")
    p.add_argument("--out", required=True, help="folder for its numbers and figure (a "
                   "folder holding a run or a sweep is refused)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="default 0")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the result of an experiment already in --out")
    _add_quiet(p, None)


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
    p.add_argument("--h", type=float, default=None,
                   help="central-difference step of the element-wise checks (default 1e-5)")
    p.add_argument("--threshold", type=float, default=None,
                   help="an array passes exactly when its normwise relative error is below "
                   "this (default: the built-in gate)")
    p.add_argument("--beta", type=_finite_float, default=None, help="KL weight (default 1)")
    p.add_argument("--directional", action="store_true",
                   help="check the ELBO and IWAE gradients along random unit directions "
                   "(Richardson-extrapolated differences): a few evaluations at any size")
    p.add_argument("--model-size", choices=("small", "mnist"), default=None,
                   help="with --directional: 'small' (7-6-5-3) or 'mnist' (the "
                   "784-400-20 relu model of pytorch/examples, 652,824 parameters)")
    p.add_argument("--directions", type=_int_at_least(1), default=None,
                   help="with --directional: random directions per check (default 3)")
    p.add_argument("--latent-dims", type=_two_sizes, metavar="D1,D2",
                   help="check the model with two stochastic layers of these sizes of "
                   "z1 and z2, e.g. 3,2 (as train's --latent-dims; with --model-size "
                   "mnist the IWAE paper's 784-100-100-D1-50-50-D2 tanh model); its "
                   "beta must be 1")
    p.add_argument("--bugs", action="store_true",
                   help="plant classic backprop bugs in copies of the kernels and print "
                   "whether the element-wise and the directional checks catch each")
    _add_quiet(p, None)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="test-set ELBO, IWAE-k log-likelihood, bits/dim",
                       description="Evaluate the run in RUN_DIR on its test split: mean "
                       "ELBO (a fresh z per example), IWAE-k estimate of log p(x) (quote "
                       "its NLL), their gap and bits/dim, each with its Monte-Carlo "
                       "standard error, and the active units; adds them to "
                       "RUN_DIR/metrics.json (test_elbo, test_iwae_k, test_nll, ..., eval_k, eval_n, "
                       "eval_seconds, eval_seed: the names printed). A run being trained "
                       "is refused; an unfinished run's numbers are printed, not saved.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by numpyvae train")
    p.add_argument("--k", type=_int_at_least(1), default=5000,
                   help="importance samples per example (default 5000)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="default 0")
    p.add_argument("--block-size", type=_int_at_least(1), default=500,
                   help="test examples per IWAE block, a progress line after each "
                   "(default 500; memory stays bounded whatever it is)")
    p.add_argument("--limit", type=_int_at_least(1),
                   help="evaluate only the first N test examples (quick checks)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an evaluation already in RUN_DIR/metrics.json")
    _add_quiet(p, "a tqdm bar, or a line per block")


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
    _add_quiet(p, None)


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
    _add_quiet(p, None)


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
    _add_quiet(p, "a line per finished run")


def build_parser(exit_on_error: bool = True) -> argparse.ArgumentParser:
    """The ``numpyvae`` command-line parser, with one subparser per command;
    with `exit_on_error` False, a bad flag raises argparse.ArgumentError
    instead of exiting (`numpyvae.app.cli.run`).

    Examples
    --------
    >>> args = build_parser().parse_args(["gradcheck", "--seed", "3"])
    >>> args.command, args.seed, args.dtype
    ('gradcheck', 3, 'float64')
    """
    from ..version import __version__
    parser = argparse.ArgumentParser(prog="numpyvae", description="A VAE in pure NumPy.",
                                     exit_on_error=exit_on_error)
    parser.add_argument("--version", action="version", version=f"numpyvae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_experiment(sub)
    _add_gradcheck(sub)
    _add_sweep(sub)
    _add_evaluate(sub)
    _add_sample(sub)
    _add_encode(sub)
    for verb in sub.choices.values():
        verb.exit_on_error = exit_on_error
    # Later subcommands (evaluate, gradcheck, sweep): one _add_<name>(sub) here,
    # one _<name>(args) -> int in cli.py, one branch in its main.
    return parser
