"""The ``numpyvae`` command: argparse subcommands; the only reader of sys.argv.

``numpyvae train`` trains a VAE and writes a run folder (see `runs`),
one flag per run setting of `numpyvae.app.settings`;
``numpyvae experiment NAME`` runs one of `numpyvae.app.experiments`;
``numpyvae sweep SPEC --out DIR`` trains one run per point of a grid
(see `numpyvae.app.sweep`); ``numpyvae evaluate RUN_DIR`` scores a run on
its test split; ``numpyvae sample RUN_DIR`` and ``numpyvae encode
RUN_DIR`` write a run's samples and latent codes (`numpyvae.app.export`);
``numpyvae gradcheck`` checks every gradient by finite differences;
``numpyvae --version`` prints the version. Every verb reaches the model
through the model protocol (protocol.py), so each works for a run of
either model (one stochastic layer, or two with ``--latent-dims``). Errors
from numpyvae (bad values, missing files, corrupt checkpoints, diverged
training) print ``numpyvae: error: <message>`` and exit with status 2;
Ctrl-C during training saves a checkpoint and exits with status 130.

This module holds the verbs and `main` (the ``numpyvae`` console
script); the parser is built in cli_parser.py and the gradcheck verb
runs in cli_gradcheck.py, their public names importable from here too.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import shlex
import sys
from pathlib import Path

import numpy as np

from .._progress import plus_minus, plus_minus_sign
from ..checkpoint import load_checkpoint
from . import run_folder, run_trainer, runs

# The parser and the gradcheck verb stay importable as numpyvae.app.cli.<name>.
from .cli_gradcheck import GRADCHECK_CONFIGS, TWO_LAYER_CONFIGS, run_gradcheck  # noqa: F401
from .cli_parser import build_parser
from .settings import DEFAULTS, SETTINGS, check_together

INPUT_DIMS = {"digits": 64, "mnist": 784}  # row widths of the named data sets
PICTURES_SKIPPED = 'pictures skipped: matplotlib is not installed (pip install "numpyvae[viz]")'


def _flags(args) -> dict:
    """The settings given as flags, by name."""
    return {s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name) is not None}


def _train(args) -> int:
    """A new run in --out (refused where a run lives, unless --overwrite),
    or with --resume the run in DIR continued; each holding its folder."""
    if args.resume is not None:
        return _resume(args)
    flags = _flags(args)
    settings = dict(DEFAULTS, **flags)
    check_together(settings, flags)
    out = run_folder.check_out(args.out, settings["data"])
    if not args.overwrite:
        run_folder.claim_folder(out)  # early, before loading data; again below, holding the folder
    if settings["data"] in INPUT_DIMS:  # refused before loading; other data after (new_trainer)
        run_trainer.check_memory(settings, INPUT_DIMS[settings["data"]])
    data = runs.load_run_data(settings)
    with run_folder.lock_folder(out):
        run_folder.claim_folder(out, overwrite=args.overwrite)
        trainer = run_trainer.new_trainer(settings, data[0][0])
        return _run(args, settings, out, data, trainer)


def _resume(args) -> int:
    folder = run_folder.check_out(args.resume, "", "--resume")
    if not (folder / run_folder.CHECKPOINT_FILE).is_file():
        raise FileNotFoundError(f"--resume: no {run_folder.CHECKPOINT_FILE} in {folder}; expected "
                                "a run folder written by numpyvae train")
    if args.out is not None and Path(args.out).resolve() != folder.resolve():
        raise ValueError(f"--out: a resumed run stays in its folder {folder}, got --out "
                         f"{args.out}; leave --out out")
    if args.overwrite:
        raise ValueError("--overwrite: not used with --resume, which continues the run")
    with run_folder.lock_folder(folder, "--resume"):
        ckpt = load_checkpoint(folder / run_folder.CHECKPOINT_FILE)
        trainer = run_trainer.resume_trainer(ckpt)
        settings = run_trainer.resume_settings(folder, ckpt, trainer, _flags(args))
        data = runs.load_run_data(settings)
        note = runs.check_same_data(ckpt, data, settings["data"])
        if note is not None:
            print(note, file=sys.stderr)
        return _run(args, settings, folder, data, trainer)


def _run(args, settings: dict, out: Path, data, trainer) -> int:
    try:
        metrics, written, pictures_skipped = runs.train_run(
            settings, out, data, trainer, pictures=not args.no_plots,
            progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"interrupted: checkpoint saved at epoch {trainer.epochs_done}, step {trainer.steps_done} "
              f"in {out / run_folder.CHECKPOINT_FILE}; resume with: numpyvae train --resume "
              f"{shlex.quote(str(out))}", file=sys.stderr)
        return 130
    if pictures_skipped:
        print(PICTURES_SKIPPED)
    val = plus_minus(metrics["val_elbo"], metrics["val_elbo_se"])
    print(f"val ELBO {val} nats per example (mean-pixel baseline "
          f"{metrics['baseline_mean_pixel']:.2f}) after {trainer.epochs_done} epochs, "
          f"{metrics['seconds']:.1f} s of training\nwrote {out}/: {', '.join(written)}")
    return 0


def _experiment(args) -> int:
    from . import experiments
    out = Path(args.out)
    what = run_folder.describe_run(out)
    if what is not None and what != "an experiment's result":
        raise ValueError(f"--out: {out} holds {what}; an experiment writes into a folder of "
                         "its own, choose another --out")
    with run_folder.lock_folder(out, "--out", verb="experiment"):
        if what is not None and not args.overwrite:
            raise ValueError(f"--out: {out} already holds an experiment's result "
                             f"({run_folder.RESULT_FILE}); replace it with --overwrite, or "
                             "choose another --out")
        result = experiments.run_experiment(args.name, out, seed=args.seed)
    print(json.dumps(result, indent=2, allow_nan=False))
    return 0


EVAL_NAMES = {"k": "eval_k", "n": "eval_n", "seconds": "eval_seconds"}


def _evaluate(args) -> int:
    """Score the run in RUN_DIR, holding it (a run being trained is
    refused); the numbers are printed first, then added to metrics.json
    when the run is finished and the folder writable."""
    run = Path(args.run_dir)
    run_trainer.read_settings(run / run_folder.CONFIG_FILE)  # a run folder, or a clear error
    with contextlib.ExitStack() as stack:
        unwritable = _hold_folder(stack, run, "RUN_DIR", "evaluate")
        metrics_path = run / run_folder.METRICS_FILE  # read (and refused) before the long computation
        metrics = (run_folder.new_names(run_folder.read_json(metrics_path))
                   if metrics_path.is_file() else None)
        if metrics is not None and "test_iwae_k" in metrics and not args.overwrite:
            raise ValueError(f"RUN_DIR: {metrics_path} already holds an evaluation "
                             f"(IWAE-{metrics.get('eval_k')}, seed {metrics.get('eval_seed')}); "
                             "replace it with --overwrite")
        ckpt = load_checkpoint(run / run_folder.CHECKPOINT_FILE)
        record = _evaluation(args, run, ckpt)
        if metrics is None:
            print(f"not saved: {run} holds an unfinished run (its checkpoint is of epoch "
                  f"{_epochs_of(ckpt)}); its metrics.json is written when its training ends",
                  file=sys.stderr)
            return 0
        if unwritable is None:
            try:
                run_folder.write_json(metrics_path, {**metrics, **record})
                return 0
            except OSError as e:
                unwritable = str(e)
        print(f"numpyvae: error: the numbers above are not saved: {metrics_path} cannot be "
              f"written ({unwritable})", file=sys.stderr)
        return 1


def _hold_folder(stack: contextlib.ExitStack, folder: Path, name: str, verb: str) -> str | None:
    """Hold `folder` for `verb` in `stack`; a folder held by another process
    is refused. Returns None, or why the folder cannot be written (then it
    is only read: nobody can be writing it either)."""
    try:
        stack.enter_context(run_folder.lock_folder(folder, name, verb=verb))
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        run_folder.refuse_if_held(folder, name)
        return e.strerror or str(e)
    return None


def _epochs_of(ckpt) -> str:
    trainer = ckpt.meta.get("trainer")
    return str(trainer.get("epoch")) if isinstance(trainer, dict) else "unknown"


def _evaluation(args, run: Path, ckpt) -> dict:
    """The evaluation of checkpoint `ckpt` on the run's test split, printed;
    returns the numbers as metrics.json stores them."""
    from ..evaluation import evaluate
    model = ckpt.model
    settings = run_trainer.stored_settings(ckpt) or run_trainer.read_settings(
        run / run_folder.CONFIG_FILE)
    _, (x_test, _) = runs.load_run_data({**settings, "dtype": model.config.dtype})
    if args.limit is not None:
        x_test = x_test[:args.limit]
    result = evaluate(model, x_test, k=args.k, rng=args.seed, batch_size=args.block_size,
                      progress=not args.quiet, log=lambda line: print(line, flush=True))
    record = {EVAL_NAMES.get(key, key): value for key, value in result.items()}
    record["eval_seed"] = args.seed
    sign = plus_minus_sign()
    print(f"test ELBO {plus_minus(result['test_elbo'], result['test_elbo_se'])} (a fresh z "
          f"per example), IWAE-{args.k} log p(x) "
          f"{plus_minus(result['test_iwae_k'], result['test_iwae_se'])}: NLL "
          f"{plus_minus(result['test_nll'], result['test_iwae_se'])} nats per example "
          f"over {result['n']} test examples (value {sign} Monte-Carlo standard error)")
    print(json.dumps(record, indent=2, allow_nan=False), flush=True)
    return record


def _sample(args) -> int:
    from . import export, plots
    out = export.check_target(args.out, export.SAMPLE_SUFFIXES, args.overwrite)
    if out.suffix.lower() == ".png":
        try:
            plots.require_matplotlib()
        except ImportError:
            raise ValueError(f"--out: a .png needs matplotlib, which is not installed "
                             f"({plots.INSTALL_HINT}); or write .npy or .csv") from None
    model = load_checkpoint(Path(args.run_dir) / run_folder.CHECKPOINT_FILE).model
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
    settings = run_trainer.read_settings(run / run_folder.CONFIG_FILE)
    ckpt = load_checkpoint(run / run_folder.CHECKPOINT_FILE)  # one file, replaced whole
    model, settings = ckpt.model, run_trainer.stored_settings(ckpt) or settings
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
                                 dask_scheduler=args.dask_scheduler, pictures=not args.no_plots,
                                 log=(lambda line: None) if args.quiet else print)
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


VERBS = {"train": _train, "experiment": _experiment, "gradcheck": run_gradcheck,
         "sweep": _sweep, "evaluate": _evaluate, "sample": _sample, "encode": _encode}


def run(argv: list[str]) -> int:
    """Run a ``numpyvae`` command from Python, raising its errors.

    The same verbs and flags as the command line, but a bad flag or a
    refused folder raises (argparse's usage errors as ValueError), so a
    script stops where the command would have exited with status 2.
    Returns 0, or 1 for a verb that reports failures (gradcheck, sweep,
    an evaluation not saved).

    Examples
    --------
    >>> run(["train", "--epochs", "0"])
    Traceback (most recent call last):
        ...
    ValueError: train: argument --epochs: expected an integer >= 1, got 0
    """
    parser = build_parser(exit_on_error=False)
    try:
        args = parser.parse_args(argv)
    except argparse.ArgumentError as e:
        raise ValueError(f"{argv[0] if argv else 'numpyvae'}: {e}") from None
    except SystemExit as e:  # --help (0), or a usage error argparse reports itself
        if e.code in (0, None):
            return 0
        raise ValueError(f"not a valid command: {argv!r} (argparse's message above)") from None
    if args.command is None:
        raise ValueError(f"expected a command, one of {', '.join(VERBS)}")
    return VERBS[args.command](args)


def main(argv: list[str] | None = None) -> int:
    """Run the ``numpyvae`` command with `argv` (default sys.argv[1:]).

    Returns the exit status: 0 on success, 2 for a usage or numpyvae
    error (message on stderr), 130 when interrupted. From a script,
    `run` raises the errors instead.

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
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return VERBS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as e:
        print(f"numpyvae: error: {e}", file=sys.stderr)
        return 2
    except MemoryError as e:  # beyond the estimate of run_trainer.check_memory
        print(f"numpyvae: error: out of memory ({e or 'an allocation failed'}); choose "
              "smaller sizes", file=sys.stderr)
        return 2
