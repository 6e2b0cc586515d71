"""Sweeps: one training run per point of a grid of settings.

``numpyvae sweep SPEC.toml --out DIR`` reads a TOML spec::

    [base]                  # settings shared by every run
    epochs = 100
    hidden = [128]

    [grid]                  # lists crossed into runs, the last key fastest
    beta = [0.5, 1, 2, 4]
    latent_dim = [2, 8]
    seed = [0, 1]

    [sweep]                 # options of the sweep itself, all optional
    iwae_k = 100            # IWAE bound on the test split with k samples
    run_pictures = false    # each run's own pictures (need matplotlib)
    threads_per_run = 1     # BLAS threads inside each run

[base] and [grid] take the settings of ``numpyvae train`` (the names of
`numpyvae.app.settings.SETTINGS`), each checked for its kind and range when
the spec is read (a NaN, an inf or a latent size of 0 stops the sweep
before any run); a setting given in neither keeps its default.
Each run trains with `numpyvae.app.runs.train_run` into ``DIR/<name>``, the
name made of its grid values (``beta=0.5,latent_dim=2,seed=0``), and
writes status.json last: a run whose status is done and whose
metrics.json is there is skipped when the sweep is started again; an
unfinished run continues from its checkpoint, a failed one (its error
in status.json and error.txt) is tried again. Then ``DIR/summary.csv``
has one row per run in grid order, and two pictures show the
rate-distortion curve across beta and the ELBO against the latent size.

A run draws all its randomness from its own seed setting (weights,
data order, eps, the IWAE samples) and uses `threads_per_run` BLAS
threads wherever it runs, so its numbers do not depend on the worker
or on the number of workers. Runs go through joblib (the ``sweep``
extra): on local processes (loky) or on a Dask cluster.

This module runs the grid: the workers, their BLAS threads, the
summary. The spec is read in sweep_spec.py and the pictures are drawn
in sweep_pictures.py; their public names stay importable from here
(``numpyvae.app.sweep`` is a public API, docs/sweeps.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
import traceback
from pathlib import Path

import numpy as np

from .._atomic import write_text_atomic
from .._validation import check_int
from . import run_folder, run_trainer, runs
from .settings import DEFAULTS  # noqa: F401  (run_one's doctest)

# The spec and the pictures stay importable as numpyvae.app.sweep.<name>.
from .sweep_pictures import PICTURES, draw_pictures, plot_elbo_vs_latent, plot_rate_distortion  # noqa: F401
from .sweep_spec import OPTIONS, grid_points, load_spec, run_name  # noqa: F401

INSTALL_HINT = 'pip install "numpyvae[sweep]"'
DASK_HINT = 'pip install "dask[distributed]"'
STATUS_FILE = run_folder.STATUS_FILE
ERROR_FILE = run_folder.ERROR_FILE
SUMMARY_FILE = "summary.csv"
NUMBERS = ("val_elbo", "val_log_lik", "val_kl", "val_iwae")


def _blas_threads(threads: int):
    """Limit BLAS to `threads` threads in this process, if threadpoolctl is there."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # loky workers still get OMP/OPENBLAS_NUM_THREADS
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def _read_status(folder: Path) -> dict | None:
    try:
        return run_folder.new_names(run_folder.read_json(folder / STATUS_FILE))
    except (OSError, ValueError):
        return None


def _is_finished(folder: Path, settings: dict, iwae_k: int | None) -> bool:
    status = _read_status(folder) or {}
    return (status.get("status") == "done" and status.get("settings") == settings
            and (folder / run_folder.METRICS_FILE).is_file()
            and (iwae_k is None or status.get("iwae_k") == iwae_k))


def _train(settings: dict, folder: Path, run_pictures: bool, notes: list) -> dict:
    """metrics.json's numbers: read back if complete, else trained (continuing
    from the folder's checkpoint, if any). A checkpoint that cannot be read
    (empty, corrupt) is removed and the run started again, with a line in
    `notes`; one of other settings is an error."""
    from ..checkpoint import CheckpointError, load_checkpoint
    try:
        metrics = run_folder.new_names(run_folder.read_json(folder / run_folder.METRICS_FILE))
        if metrics["config"] == settings and metrics["epochs"] == settings["epochs"]:
            return metrics
    except (OSError, ValueError, KeyError):
        pass
    trainer = None
    if (folder / run_folder.CHECKPOINT_FILE).is_file():
        try:
            ckpt = load_checkpoint(folder / run_folder.CHECKPOINT_FILE)
        except CheckpointError as e:
            notes.append(f"started again from epoch 0: its checkpoint was unreadable ({e})")
            run_folder.remove_files(folder, run_folder.RUN_FILES)
        else:
            stored = run_trainer.stored_settings(ckpt)
            if stored is not None and stored != settings:
                key = next(k for k in settings if stored[k] != settings[k])
                raise ValueError(f"{folder / run_folder.CHECKPOINT_FILE} holds a run with {key} = "
                                 f"{stored[key]!r}, this spec gives {settings[key]!r}")
            trainer = run_trainer.resume_trainer(ckpt)
    data = runs.load_run_data(settings, name="data")
    return runs.train_run(settings, folder, data, trainer, pictures=run_pictures)[0]


def _iwae(settings: dict, folder: Path, k: int) -> float:
    """Mean IWAE bound (k samples) of the test split, seeded by the run's
    seed (a fourth SeedSequence child, after `run_trainer.generators`'
    three)."""
    from ..checkpoint import load
    from ..estimators import iwae_bound
    model = load(folder / run_folder.CHECKPOINT_FILE)
    x_test = runs.load_run_data(settings, name="data")[1][0]
    rng = np.random.default_rng(np.random.SeedSequence(settings["seed"]).spawn(4)[3])
    return float(np.mean(iwae_bound(model, x_test, k, rng), dtype=np.float64))


def run_one(settings: dict, folder, iwae_k: int | None = None, run_pictures: bool = False,
            threads: int = 1, owner: int | None = None) -> dict:
    """Train one run into `folder` and write its status.json, which is returned.

    Status: "done" with val_elbo, val_log_lik, val_kl (and val_iwae), or
    "failed" with the error (its traceback in error.txt); seconds is the
    wall-clock time of this call; notes lists what was done on the way
    (a run started again). Only KeyboardInterrupt propagates. The folder
    is held (`run_folder.lock_folder`) meanwhile. With `owner`, the pid
    of the process that started this worker process, the worker ends itself
    as soon as its owner is gone (`_die_with`).

    Examples
    --------
    >>> import tempfile
    >>> settings = dict(DEFAULTS, epochs=1, hidden=[4], batch_size=256)
    >>> status = run_one(settings, tempfile.mkdtemp())
    >>> status["status"], status["error"], sorted(k for k in status if k[:4] == "val_")
    ('done', None, ['val_elbo', 'val_kl', 'val_log_lik'])
    """
    if owner is not None:
        _die_with(owner)
    folder = Path(folder)
    start = time.perf_counter()
    with run_folder.lock_folder(folder, "run folder"):
        (folder / STATUS_FILE).unlink(missing_ok=True)
        status: dict = {"status": "done", "settings": settings, "iwae_k": iwae_k, "error": None,
                        "notes": []}
        try:
            with _blas_threads(threads):
                metrics = _train(settings, folder, run_pictures, status["notes"])
                status.update({key: metrics[key] for key in NUMBERS[:3]})
                if iwae_k is not None:
                    status["val_iwae"] = _iwae(settings, folder, iwae_k)
            (folder / ERROR_FILE).unlink(missing_ok=True)
        except Exception as e:  # recorded; the other runs go on
            status.update(status="failed", error=f"{type(e).__name__}: {e}")
            write_text_atomic(folder / ERROR_FILE, traceback.format_exc())
        status["seconds"] = time.perf_counter() - start
        run_folder.write_json(folder / STATUS_FILE, status)
    return status


_WATCHED: list = []  # the owner this worker process already watches


def _die_with(owner: int) -> None:
    """In a worker process started by process `owner`: end this process
    (os._exit) within 0.1 s of `owner`'s death, so that a killed sweep
    leaves no worker training and writing. Does nothing in `owner` itself
    or when this process already watches."""
    if owner == os.getpid() or _WATCHED or os.getppid() != owner:
        return
    _WATCHED.append(owner)

    def watch():
        while os.getppid() == owner:
            time.sleep(0.1)
        os._exit(1)

    threading.Thread(target=watch, name="numpyvae-owner-watch", daemon=True).start()


def _require(module: str, hint: str):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"{module} is not installed ({hint})") from None


def _execute(tasks: list, jobs: int, dask_scheduler: str | None, threads: int,
             timeout: float | None):
    """Yield run_one(*task) for every task, in order."""
    if jobs == 1 and dask_scheduler is None:
        for task in tasks:
            yield run_one(*task)
        return
    joblib = _require("joblib", INSTALL_HINT)
    if dask_scheduler is None:  # loky workers are this process's children
        calls = [joblib.delayed(run_one)(*task, owner=os.getpid()) for task in tasks]
        with joblib.parallel_config(backend="loky", n_jobs=jobs, inner_max_num_threads=threads):
            yield from joblib.Parallel(return_as="generator", timeout=timeout)(calls)
        return
    calls = [joblib.delayed(run_one)(*task) for task in tasks]
    distributed = _require("distributed", DASK_HINT)
    with distributed.Client(dask_scheduler, timeout=30):
        with joblib.parallel_config(backend="dask", n_jobs=-1, wait_for_workers_timeout=30):
            yield from joblib.Parallel(return_as="generator", timeout=timeout)(calls)


def _check_folders(out: Path, points: list) -> None:
    """Refuse a sweep folder whose runs were trained with other settings."""
    for name, _, settings in points:
        config = out / name / run_folder.CONFIG_FILE
        saved = run_folder.read_json(config) if config.is_file() else settings
        if saved != settings:
            key = next(k for k in sorted({*saved, *settings}) if saved.get(k) != settings.get(k))
            raise ValueError(f"--out: {out / name} holds a run with {key} = {saved.get(key)!r}, "
                             f"this spec gives {settings.get(key)!r}; use another --out")


def run_sweep(spec_path, out, jobs: int = 1, dask_scheduler: str | None = None,
              pictures: bool = True, timeout: float | None = None, log=print) -> dict:
    """Run every unfinished run of the spec, then write the summary and pictures.

    Parameters
    ----------
    spec_path : str or Path
        The TOML spec (`load_spec`).
    out : str or Path
        The sweep folder: a copy of the spec, one folder per run,
        summary.csv and the pictures.
    jobs : int
        Runs at a time on local processes (joblib's loky backend); 1
        runs them one after the other in this process, without joblib.
    dask_scheduler : str, optional
        Address of a Dask scheduler: the runs go to its workers through
        joblib's dask backend (`jobs` is then not used). `out` must be a
        folder the workers can write and this process can read.
    pictures : bool
        Draw `PICTURES` (skipped, with a line in the log, without matplotlib).
    timeout : float, optional
        Seconds a run may take on joblib's backends before the sweep stops.
    log : callable
        Receives one line per finished run.

    Returns
    -------
    dict
        rows (one dict per run in grid order, as in summary.csv),
        executed (names of the runs trained by this call), summary (path)
        and pictures (paths).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "spec.toml").write_text(
    ...     "[base]\\nepochs = 1\\nhidden = [4]\\nbatch_size = 256\\n"
    ...     "[grid]\\nseed = [0]\\n")
    >>> result = run_sweep(folder / "spec.toml", folder / "out", pictures=False,
    ...                    log=lambda line: None)
    >>> result["executed"], result["rows"][0]["status"], result["summary"].name
    (['seed=0'], 'done', 'summary.csv')
    """
    spec, out, jobs = load_spec(spec_path), Path(out), check_int(jobs, "jobs", 1)
    if jobs > 1 or dask_scheduler is not None:
        _require("joblib", INSTALL_HINT)
    points = grid_points(spec)
    what = run_folder.describe_run(out)
    if what not in (None, "a sweep"):
        raise ValueError(f"--out: {out} holds {what}, not a sweep; a sweep writes into a "
                         "folder of its own, choose another --out")
    _check_folders(out, points)
    with run_folder.lock_folder(out, "--out"):  # one sweep at a time in a sweep folder
        return _run_points(spec, spec_path, out, points, jobs, dask_scheduler, pictures,
                           timeout, log)


def _run_points(spec, spec_path, out: Path, points: list, jobs: int, dask_scheduler,
                pictures: bool, timeout, log) -> dict:
    """`run_sweep` once its spec is read and its folder held."""
    if Path(spec_path).resolve() != (out / "spec.toml").resolve():
        shutil.copyfile(spec_path, out / "spec.toml")
    k, threads = spec["options"]["iwae_k"], spec["options"]["threads_per_run"]
    todo = [p for p in points if not _is_finished(out / p[0], p[2], k)]
    where = (f"the Dask cluster at {dask_scheduler}" if dask_scheduler else
             f"{jobs} local processes" if jobs > 1 else "this process")
    log(f"{len(points)} runs, {len(points) - len(todo)} already finished; running "
        f"{len(todo)} on {where}, {threads} BLAS thread(s) each")
    if dask_scheduler is None and jobs * threads > (os.cpu_count() or 1):
        log(f"note: {jobs} jobs x {threads} threads exceed the {os.cpu_count()} cores")
    tasks = [(settings, str(out / name), k, spec["options"]["run_pictures"], threads)
             for name, _, settings in todo]
    for i, (status, (name, _, _)) in enumerate(zip(_execute(tasks, jobs, dask_scheduler,
                                                            threads, timeout), todo, strict=True)):
        result = (f"val ELBO {status['val_elbo']:.2f}" if status["status"] == "done"
                  else f"FAILED, {status['error']}")
        notes = "".join(f"; {note}" for note in status.get("notes", []))
        log(f"[{i + 1}/{len(todo)}] {name}: {result} ({status['seconds']:.1f} s){notes}")
    rows = [_row(name, values, _read_status(out / name) or {}) for name, values, _ in points]
    summary = write_summary(out / SUMMARY_FILE, rows, list(spec["grid"]), k is not None)
    return {"rows": rows, "executed": [name for name, _, _ in todo], "summary": summary,
            "pictures": draw_pictures(rows, spec["grid"], out, log) if pictures else []}


def _row(name: str, values: dict, status: dict) -> dict:
    row = {"run": name, **values, "status": status["status"]}
    row.update({key: status.get(key) for key in NUMBERS})
    row.update(seconds=status["seconds"], error=status["error"])
    return row


def write_summary(path, rows: list[dict], grid_keys: list[str], iwae: bool) -> Path:
    """summary.csv: run, the grid values, status, the numbers, seconds, error.

    Floats are written with repr (they read back bit for bit); a list
    value (hidden) as JSON; a missing number as an empty field.

    Examples
    --------
    >>> import tempfile
    >>> rows = [{"run": "beta=1.0", "beta": 1.0, "status": "done", "val_elbo": -30.5,
    ...          "val_log_lik": -25.0, "val_kl": 5.5, "seconds": 2.0, "error": None}]
    >>> path = Path(tempfile.mkdtemp()) / "summary.csv"
    >>> path = write_summary(path, rows, ["beta"], False)
    >>> print(path.read_text())
    run,beta,status,val_elbo,val_log_lik,val_kl,seconds,error
    beta=1.0,1.0,done,-30.5,-25.0,5.5,2.0,
    """
    numbers = list(NUMBERS) if iwae else list(NUMBERS[:3])
    columns = ["run", *grid_keys, "status", *numbers, "seconds", "error"]
    return run_folder.write_csv(path, columns, [
        {key: json.dumps(value) if isinstance(value, list) else value
         for key, value in row.items()} for row in rows])
