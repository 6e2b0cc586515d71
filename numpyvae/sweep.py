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
`numpyvae.settings.SETTINGS`), each checked for its kind and range when
the spec is read (a NaN, an inf or a latent size of 0 stops the sweep
before any run); a setting given in neither keeps its default.
Each run trains with `numpyvae.runs.train_run` into ``DIR/<name>``, the
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
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import re
import shutil
import threading
import time
import traceback
from pathlib import Path

import numpy as np

from . import runs
from ._validation import check_int
from .settings import DEFAULTS, check_setting

INSTALL_HINT = 'pip install "numpyvae[sweep]"'
DASK_HINT = 'pip install "dask[distributed]"'
OPTIONS = {"iwae_k": None, "run_pictures": False, "threads_per_run": 1}
STATUS_FILE = runs.STATUS_FILE
ERROR_FILE = runs.ERROR_FILE
SUMMARY_FILE = "summary.csv"
NUMBERS = ("val_elbo", "val_log_lik", "val_kl", "val_iwae")
PICTURES = {"rate_distortion": "rate_distortion.png", "elbo_vs_latent": "elbo_vs_latent.png"}


def _read_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ValueError("spec: reading TOML on Python 3.10 needs tomli "
                             "(pip install tomli)") from None
    if not path.is_file():
        raise FileNotFoundError(f"spec: expected a TOML file, got {str(path)!r} (no such file)")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"spec: {path} is not valid TOML: {e}") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_keys(table: dict, allowed, where: str) -> None:
    unknown = [key for key in table if key not in allowed]
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")


def _table(doc: dict, name: str, path: Path) -> dict:
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise ValueError(f"spec: {path}: expected [{name}] to be a table, got {table!r}")
    return table


def load_spec(path) -> dict:
    """Read and check a sweep spec; returns {"base", "grid", "options"}.

    base: every setting (defaults filled in) except the grid's; grid:
    setting -> list of values, in the file's order; options: `OPTIONS`.
    Raises FileNotFoundError, ValueError or TypeError naming the table
    and key at fault.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "spec.toml"
    >>> _ = path.write_text("[base]\\nepochs = 2\\n[grid]\\nbeta = [0.5, 1]\\n")
    >>> spec = load_spec(path)
    >>> spec["grid"], spec["base"]["epochs"], spec["options"]["iwae_k"]
    ({'beta': [0.5, 1.0]}, 2, None)
    """
    path = Path(path)
    doc = _read_toml(path)
    _check_keys(doc, ("base", "grid", "sweep"), f"spec: {path}: top level")
    base, grid, options = (_table(doc, name, path) for name in ("base", "grid", "sweep"))
    _check_keys(base, tuple(DEFAULTS), f"spec: {path}: [base]")
    _check_keys(grid, tuple(DEFAULTS), f"spec: {path}: [grid]")
    _check_keys(options, tuple(OPTIONS), f"spec: {path}: [sweep]")
    if not grid:
        raise ValueError(f"spec: {path}: [grid]: expected at least one setting with a list "
                         "of values, such as beta = [0.5, 1, 2]")
    settings = dict(DEFAULTS)
    for key, value in base.items():
        if key in grid:
            raise ValueError(f"spec: {path}: {key} is in both [base] and [grid]; give it once")
        settings[key] = check_setting(key, value, f"spec: {path}: [base]")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"spec: {path}: [grid] {key}: expected a non-empty list of values "
                             f"to cross, such as [0.5, 1, 2], got {values!r}")
        grid[key] = [check_setting(key, v, f"spec: {path}: [grid] {key} item")
                     for v in values]
        if len(set(map(repr, grid[key]))) < len(values):
            raise ValueError(f"spec: {path}: [grid] {key}: a value is repeated in {values!r}")
    return {"base": {k: v for k, v in settings.items() if k not in grid}, "grid": grid,
            "options": _options(options, path)}


def _options(options: dict, path: Path) -> dict:
    checked = dict(OPTIONS, **options)
    for key in ("iwae_k", "threads_per_run"):
        value = checked[key]
        if value is not None and not (_is_int(value) and value >= 1):
            raise ValueError(f"spec: {path}: [sweep] {key}: expected an integer >= 1, "
                             f"got {value!r}")
    if not isinstance(checked["run_pictures"], bool):
        raise TypeError(f"spec: {path}: [sweep] run_pictures: expected true or false, "
                        f"got {checked['run_pictures']!r}")
    return checked


def _value_text(value) -> str:
    if isinstance(value, list):
        return "-".join(map(str, value)) or "linear"
    return repr(value) if isinstance(value, float) else str(value)


def run_name(values: dict) -> str:
    """Folder name of a grid point: ``key=value`` joined by commas, with
    every character but letters, digits and ``. _ + -`` turned into ``_``.

    Examples
    --------
    >>> run_name({"beta": 0.5, "hidden": [256, 128], "data": "a/b.npz"})
    'beta=0.5,hidden=256-128,data=a_b.npz'
    """
    return ",".join(f"{key}={re.sub(r'[^A-Za-z0-9._+-]', '_', _value_text(value))}"
                    for key, value in values.items())


def grid_points(spec: dict) -> list[tuple[str, dict, dict]]:
    """(name, grid values, settings) of every run, in grid order.

    Examples
    --------
    >>> spec = {"base": {"epochs": 1}, "grid": {"beta": [0.5, 1.0], "seed": [0, 1]}}
    >>> [name for name, values, settings in grid_points(spec)]
    ['beta=0.5,seed=0', 'beta=0.5,seed=1', 'beta=1.0,seed=0', 'beta=1.0,seed=1']
    >>> grid_points(spec)[1][2]
    {'epochs': 1, 'beta': 0.5, 'seed': 1}
    """
    keys = list(spec["grid"])
    points = []
    for combination in itertools.product(*spec["grid"].values()):
        values = dict(zip(keys, combination))
        points.append((run_name(values), values, dict(spec["base"], **values)))
    names = [name for name, _, _ in points]
    if len(set(names)) < len(names) or max(map(len, names)) > 200:
        raise ValueError("spec: [grid]: its values do not give distinct folder names of at "
                         "most 200 characters; use shorter, distinct values")
    return points


def _blas_threads(threads: int):
    """Limit BLAS to `threads` threads in this process, if threadpoolctl is there."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # loky workers still get OMP/OPENBLAS_NUM_THREADS
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def _read_status(folder: Path) -> dict | None:
    try:
        return runs.new_names(runs.read_json(folder / STATUS_FILE))
    except (OSError, ValueError):
        return None


def _is_finished(folder: Path, settings: dict, iwae_k: int | None) -> bool:
    status = _read_status(folder) or {}
    return (status.get("status") == "done" and status.get("settings") == settings
            and (folder / runs.METRICS_FILE).is_file()
            and (iwae_k is None or status.get("iwae_k") == iwae_k))


def _train(settings: dict, folder: Path, run_pictures: bool, notes: list) -> dict:
    """metrics.json's numbers: read back if complete, else trained (continuing
    from the folder's checkpoint, if any). A checkpoint that cannot be read
    (empty, corrupt) is removed and the run started again, with a line in
    `notes`; one of other settings is an error."""
    from .checkpoint import CheckpointError, load_checkpoint
    try:
        metrics = runs.new_names(runs.read_json(folder / runs.METRICS_FILE))
        if metrics["config"] == settings and metrics["epochs"] == settings["epochs"]:
            return metrics
    except (OSError, ValueError, KeyError):
        pass
    trainer = None
    if (folder / runs.CHECKPOINT_FILE).is_file():
        try:
            ckpt = load_checkpoint(folder / runs.CHECKPOINT_FILE)
        except CheckpointError as e:
            notes.append(f"started again from epoch 0: its checkpoint was unreadable ({e})")
            runs.remove_files(folder, runs.RUN_FILES)
        else:
            stored = runs.stored_settings(ckpt)
            if stored is not None and stored != settings:
                key = next(k for k in settings if stored[k] != settings[k])
                raise ValueError(f"{folder / runs.CHECKPOINT_FILE} holds a run with {key} = "
                                 f"{stored[key]!r}, this spec gives {settings[key]!r}")
            trainer = runs.resume_trainer(ckpt)
    data = runs.load_run_data(settings, name="data")
    return runs.train_run(settings, folder, data, trainer, pictures=run_pictures)[0]


def _iwae(settings: dict, folder: Path, k: int) -> float:
    """Mean IWAE bound (k samples) of the test split, seeded by the run's
    seed (a fourth SeedSequence child, after `runs.generators`' three)."""
    from .checkpoint import load
    from .estimators import iwae_bound
    model = load(folder / runs.CHECKPOINT_FILE)
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
    is held (`runs.lock_folder`) meanwhile. With `owner`, the pid of the
    process that started this worker process, the worker ends itself as
    soon as its owner is gone (`_die_with`).

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
    with runs.lock_folder(folder, "run folder"):
        (folder / STATUS_FILE).unlink(missing_ok=True)
        status = {"status": "done", "settings": settings, "iwae_k": iwae_k, "error": None,
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
            (folder / ERROR_FILE).write_text(traceback.format_exc(), encoding="utf-8")
        status["seconds"] = time.perf_counter() - start
        runs.write_json(folder / STATUS_FILE, status)
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
        config = out / name / runs.CONFIG_FILE
        saved = runs.read_json(config) if config.is_file() else settings
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
    _check_folders(out, points)
    with runs.lock_folder(out, "--out"):  # one sweep at a time in a sweep folder
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
                                                            threads, timeout), todo)):
        result = (f"val ELBO {status['val_elbo']:.2f}" if status["status"] == "done"
                  else f"FAILED, {status['error']}")
        notes = "".join(f"; {note}" for note in status.get("notes", []))
        log(f"[{i + 1}/{len(todo)}] {name}: {result} ({status['seconds']:.1f} s){notes}")
    rows = [_row(name, values, _read_status(out / name)) for name, values, _ in points]
    summary = write_summary(out / SUMMARY_FILE, rows, list(spec["grid"]), k is not None)
    return {"rows": rows, "executed": [name for name, _, _ in todo], "summary": summary,
            "pictures": _draw(rows, spec["grid"], out, log) if pictures else []}


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
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: json.dumps(value) if isinstance(value, list) else value
                             for key, value in row.items()})
    return Path(path)


def _groups(rows: list[dict], grid_keys: list[str], across: tuple) -> list[tuple[str, list]]:
    """Rows grouped by their grid values other than those in `across`."""
    keys = [key for key in grid_keys if key not in across]
    groups: dict[str, list] = {}
    for row in rows:
        label = ", ".join(f"{key}={_value_text(row[key])}" for key in keys) or "all runs"
        groups.setdefault(label, []).append(row)
    return list(groups.items())


def _over_seeds(rows: list[dict], x_key: str, y_key: str, sign: float = 1.0):
    """Sorted values of `x_key`; mean, min and max of sign * y over the rows at each."""
    xs = sorted({row[x_key] for row in rows})
    ys = [[sign * row[y_key] for row in rows if row[x_key] == x] for x in xs]
    return (np.array(xs), np.array([np.mean(y) for y in ys]),
            np.array([min(y) for y in ys]), np.array([max(y) for y in ys]))


def plot_rate_distortion(rows: list[dict], grid_keys: list[str], path) -> Path:
    """Distortion (-val_log_lik) against rate (val_kl) of finished runs.

    One line per group of runs that differ only in beta and seed,
    through the means over seeds, each point labelled with its beta;
    every run is a faint dot.

    Examples
    --------
    >>> import tempfile
    >>> rows = [{"beta": b, "seed": 0, "val_kl": 8.0 / b, "val_log_lik": -20.0 - 4 * b}
    ...         for b in (0.5, 1.0, 2.0)]
    >>> path = Path(tempfile.mkdtemp()) / "rate_distortion.png"
    >>> plot_rate_distortion(rows, ["beta", "seed"], path).name
    'rate_distortion.png'
    """
    from .plots import pyplot, save_figure
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    points = []  # (rate, distortion, beta) of every line
    for label, group in _groups(rows, grid_keys, ("beta", "seed")):
        betas, rate, _, _ = _over_seeds(group, "beta", "val_kl")
        _, distortion, _, _ = _over_seeds(group, "beta", "val_log_lik", -1.0)
        (line,) = ax.plot(rate, distortion, marker="o", label=label)
        ax.scatter([r["val_kl"] for r in group], [-r["val_log_lik"] for r in group], s=10,
                   alpha=0.4, color=line.get_color())
        points += zip(rate, distortion, betas)
    for (x, y), betas in _merge_close(points).items():
        ax.annotate("\u03b2=" + ", ".join(f"{b:g}" for b in betas), (x, y), xytext=(4, 3),
                    textcoords="offset points", fontsize=8)
    ax.set_xlabel("rate: KL(q(z|x) || N(0, I)) on the test split (nats per example)")
    ax.set_ylabel("distortion: -E_q log p(x|z) on the test split (nats)")
    ax.set_title("rate-distortion across beta (line: mean over seeds, dots: runs)")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(plt, fig, path)


def _merge_close(points: list) -> dict:
    """(x, y) -> sorted betas of the points within 2% of the plot's span of
    it: one label for points that lie on top of each other."""
    xy = np.array([(x, y) for x, y, _ in points])  # (n, 2)
    span = np.ptp(xy, axis=0) + 1e-12
    labels: dict = {}
    for x, y, beta in points:
        near = [p for p in labels if np.all(np.abs(np.subtract(p, (x, y))) < 0.02 * span)]
        key = near[0] if near else (x, y)
        labels[key] = sorted({*labels.get(key, []), beta})
    return labels


def plot_elbo_vs_latent(rows: list[dict], grid_keys: list[str], path) -> Path:
    """val_elbo of finished runs against latent_dim (log scale).

    One line per group of runs that differ only in latent_dim and seed:
    the mean over seeds, in a band from their min to their max.

    Examples
    --------
    >>> import tempfile
    >>> rows = [{"latent_dim": d, "seed": s, "val_elbo": -30.0 + d + s}
    ...         for d in (2, 4, 8) for s in (0, 1)]
    >>> path = Path(tempfile.mkdtemp()) / "elbo_vs_latent.png"
    >>> plot_elbo_vs_latent(rows, ["latent_dim", "seed"], path).name
    'elbo_vs_latent.png'
    """
    from .plots import pyplot, save_figure
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    for label, group in _groups(rows, grid_keys, ("latent_dim", "seed")):
        dims, mean, low, high = _over_seeds(group, "latent_dim", "val_elbo")
        (line,) = ax.plot(dims, mean, marker="o", label=label)
        ax.fill_between(dims, low, high, alpha=0.2, color=line.get_color())
    dims = sorted({row["latent_dim"] for row in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.set_xlabel("latent_dim")
    ax.set_ylabel("ELBO on the test split (nats per example, higher is better)")
    ax.set_title("ELBO against latent size (line: mean over seeds, band: min to max)")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save_figure(plt, fig, path)


def _draw(rows: list[dict], grid: dict, out: Path, log) -> list[Path]:
    """The pictures that apply: beta or latent_dim must be in the grid."""
    from .plots import require_matplotlib
    try:
        require_matplotlib()
    except ImportError as e:
        log(f"pictures skipped: {e}")
        return []
    done = [row for row in rows if row["status"] == "done"]
    written = []
    if "beta" in grid and done:
        written.append(plot_rate_distortion(done, list(grid), out / PICTURES["rate_distortion"]))
    if "latent_dim" in grid and done:
        written.append(plot_elbo_vs_latent(done, list(grid), out / PICTURES["elbo_vs_latent"]))
    return written
