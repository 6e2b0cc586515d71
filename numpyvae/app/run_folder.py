"""A run folder: its files, who owns it, and its records.

A run folder holds

* ``config.json``: the run's settings (`numpyvae.app.settings`), written
  before training starts;
* ``checkpoint.npz``: model, optimizer and trainer state, rewritten
  after every epoch (`numpyvae.save` with ``trainer=``), with the run's
  settings stored inside it (``extra["settings"]``);
* ``history.csv``: one row per epoch, columns `numpyvae.trainer.HISTORY_KEYS`;
* ``metrics.json``: settings, final numbers and the mean-pixel baseline;
* the pictures listed in `PICTURES` (PNG, need matplotlib;
  `numpyvae.app.run_pictures`);
* ``.lock`` while a process writes the folder (its pid inside).

A folder belongs to one run. `lock_folder` keeps a second writer out;
`claim_folder` refuses to start a new run where one lives, unless asked
to replace it (then the old run's files go first). The records are
written and read here (`write_json`, `read_json`, `write_history`, and
`new_names` for the metric names of older runs); what a run writes and
when is `numpyvae.app.runs.train_run`. Imports the standard library, and
train.py for the history's columns.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shlex
from pathlib import Path

from .._atomic import write_text_atomic
from ..trainer import HISTORY_KEYS

try:
    import fcntl
except ImportError:  # not POSIX: a lock file created exclusively, its pid checked
    fcntl = None  # type: ignore[assignment]  # None: no fcntl, tested before each use

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.npz"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
STATUS_FILE = "status.json"  # a sweep's record of the run
ERROR_FILE = "error.txt"  # a sweep's record of a failed run
LOCK_FILE = ".lock"
SWEEP_FILES = ("spec.toml", "summary.csv")  # a sweep folder's own files
RESULT_FILE = "result.json"  # an experiment's record
PICTURES = {"reconstructions": "reconstructions.png", "samples": "samples.png",
            "loss_curves": "loss_curves.png", "latent": "latent.png",
            "manifold": "manifold.png", "interpolations": "interpolations.png"}
RECORDS = (METRICS_FILE, HISTORY_FILE, *PICTURES.values())
RUN_FILES = (CONFIG_FILE, CHECKPOINT_FILE, *RECORDS, STATUS_FILE, ERROR_FILE)
OLD_NAMES = {"train_recon": "train_log_lik", "val_recon": "val_log_lik",
             # metrics.json keys of `numpyvae evaluate` before the rename
             "eval_test_elbo": "test_elbo", "eval_test_log_likelihood": "test_iwae_k",
             "eval_test_nll": "test_nll", "eval_gap": "test_gap",
             "eval_bits_per_dim": "test_bits_per_dim",
             "eval_active_units": "test_active_units"}


def default_out(data: str) -> Path:
    """The run folder when --out is not given: runs/ and the data's name.

    Examples
    --------
    >>> str(default_out("digits")), str(default_out("mnist")), str(default_out("a/b.npz"))
    ('runs/digits', 'runs/mnist', 'runs/b')
    """
    return Path("runs") / (data if data in ("digits", "mnist") else Path(data).stem)


def check_out(text: str | None, data: str, name: str = "--out") -> Path:
    """The run folder named by `text` (`default_out` when None); '' is refused.

    Examples
    --------
    >>> str(check_out(None, "mnist")), str(check_out("mine", "digits"))
    ('runs/mnist', 'mine')
    >>> check_out("", "digits")
    Traceback (most recent call last):
        ...
    ValueError: --out: expected a folder, got '' (use . for the current folder)
    """
    if text is None:
        return default_out(data)
    if not text.strip():
        raise ValueError(f"{name}: expected a folder, got {text!r} (use . for the current "
                         "folder)")
    return Path(text)


def _owner_in(path: Path) -> tuple[int | None, str]:
    """The pid and the verb written in lock file `path` ("123 evaluate")."""
    try:
        words = path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return None, ""
    try:
        pid = int(words[0])
    except (IndexError, ValueError):
        return None, ""
    return pid, " ".join(words[1:2])


def _alive(pid: int | None) -> bool:
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _held(path: Path) -> bool:
    """Whether some process holds the lock file `path` now.

    With fcntl, whether its ``flock`` is taken (the system releases it
    when its holder dies, so a file left by ``kill -9`` is not held,
    whatever pid it names); without, whether the pid inside is alive.
    """
    if fcntl is None:
        return _alive(_owner_in(path)[0])
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file: nobody holds it
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock just taken
    return False


def owner(folder) -> str | None:
    """Who holds `folder` ("process 123 (numpyvae train)"), or None.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / LOCK_FILE).write_text("1 train")  # left behind: not held
    >>> owner(folder) is None
    True
    """
    path = Path(folder) / LOCK_FILE
    if not _held(path):
        return None
    pid, verb = _owner_in(path)
    who = f"process {pid}" if pid is not None else "another process"
    return who + (f" (numpyvae {verb})" if verb else "")


def _in_use(folder: Path, who: str | None, name: str) -> ValueError:
    return ValueError(f"{name}: {folder} is in use by {who or 'another process'}; wait for "
                      "it to finish, or use another folder")


def _lock_fd(path: Path, name: str) -> int:
    """An open descriptor of the lock file `path`, held exclusively."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _in_use(path.parent, owner(path.parent), name) from None
        try:  # the owner before us may have removed the file between open and flock
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _lock_fd_portable(path: Path, name: str) -> int:
    """Without fcntl: create the file exclusively; a dead owner's file is stale."""
    while True:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            if _held(path):
                raise _in_use(path.parent, owner(path.parent), name) from None
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def lock_folder(folder, name: str = "--out", verb: str = "train"):
    """Hold `folder` (created if missing) for this process while in the block.

    The lock is ``folder/.lock``, held with ``flock`` (released by the
    system when the process dies, however it dies), with this process's
    pid and `verb` inside for the message of whoever finds it held. A
    lock file nobody holds (left by a killed process) is taken over; a
    held one is a ValueError naming its holder. The file is removed when
    the block ends.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with lock_folder(folder, verb="evaluate"):
    ...     (folder / LOCK_FILE).read_text() == f"{os.getpid()} evaluate\\n"
    True
    >>> (folder / LOCK_FILE).exists()
    False
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = _lock_fd(path, name) if fcntl is not None else _lock_fd_portable(path, name)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {verb}\n".encode())
        yield folder
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def refuse_if_held(folder, name: str) -> None:
    """A ValueError when another process holds `folder` (`owner`).

    Examples
    --------
    >>> import tempfile
    >>> refuse_if_held(tempfile.mkdtemp(), "RUN_DIR")
    """
    folder = Path(folder)
    if _owner_in(folder / LOCK_FILE)[0] == os.getpid():
        return  # this process's own lock
    who = owner(folder)
    if who is not None:
        raise _in_use(folder, who, name)


def describe_run(folder) -> str | None:
    """What `folder` holds ("a finished run of 3 epochs", "a sweep", ...),
    or None when it holds no run, sweep or experiment.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> describe_run(folder) is None
    True
    >>> _ = write_json(folder / METRICS_FILE, {"epochs": 3})
    >>> describe_run(folder)
    'a finished run of 3 epochs'
    """
    folder = Path(folder)
    if (folder / METRICS_FILE).is_file():
        try:
            return f"a finished run of {int(read_json(folder / METRICS_FILE)['epochs'])} epochs"
        except (ValueError, KeyError, TypeError):
            return "a finished run"
    if (folder / CHECKPOINT_FILE).is_file():
        return "an unfinished run"
    if any((folder / name).is_file() for name in RUN_FILES):
        return "the files of a run"
    if any((folder / name).is_file() for name in SWEEP_FILES):
        return "a sweep"
    if (folder / RESULT_FILE).is_file():
        return "an experiment's result"
    return None


def remove_files(folder, names) -> None:
    """Remove the files `names` of `folder` (and half-written checkpoints)."""
    folder = Path(folder)
    for name in names:
        (folder / name).unlink(missing_ok=True)
    for tmp in folder.glob(f".{CHECKPOINT_FILE}.*.tmp"):
        tmp.unlink(missing_ok=True)


def claim_folder(folder, overwrite: bool = False, name: str = "--out") -> None:
    """Make `folder` the home of a new run: refuse it when it holds a run,
    unless `overwrite`, which removes that run's files (`RUN_FILES`).

    Call it holding the folder (`lock_folder`). Other files are kept.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = write_json(folder / METRICS_FILE, {"epochs": 3})
    >>> claim_folder(folder)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: --out: ... already holds a finished run of 3 epochs; continue it with ...
    >>> claim_folder(folder, overwrite=True)
    >>> describe_run(folder) is None
    True
    """
    folder = Path(folder)
    refuse_if_held(folder, name)  # a folder in use says so first
    what = describe_run(folder)
    if what is None:
        return
    if what in ("a sweep", "an experiment's result"):
        raise ValueError(f"{name}: {folder} holds {what}, not a run; --overwrite replaces "
                         f"only a run, so choose another folder with {name}")
    if not overwrite:
        quoted = shlex.quote(str(folder))
        raise ValueError(f"{name}: {folder} already holds {what}; continue it with "
                         f"--resume {quoted}, start the new run in another folder with "
                         f"{name}, or replace it with --overwrite")
    remove_files(folder, RUN_FILES)


def new_names(row: dict) -> dict:
    """A record with the metric names of numpyvae before the renames
    (``train_recon``, ``val_recon``; ``eval_test_elbo``,
    ``eval_test_log_likelihood``, ...) under today's (`OLD_NAMES`).

    Examples
    --------
    >>> new_names({"epoch": 1, "val_recon": -20.0})
    {'epoch': 1, 'val_log_lik': -20.0}
    >>> new_names({"eval_test_log_likelihood": -22.0, "eval_k": 5000})
    {'test_iwae_k': -22.0, 'eval_k': 5000}
    """
    return {OLD_NAMES.get(key, key): value for key, value in row.items()}


def write_json(path, obj: dict) -> Path:
    """`obj` as indented JSON; NaN or inf is a ValueError naming the file.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> path = write_json(folder / "metrics.json", {"val_elbo": -30.5})
    >>> path.name, read_json(path)
    ('metrics.json', {'val_elbo': -30.5})
    >>> write_json(path, {"val_elbo": float("nan")})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: .../metrics.json: Out of range float values are not JSON compliant...
    """
    path = Path(path)
    try:
        text = json.dumps(obj, indent=2, allow_nan=False)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return write_text_atomic(path, text + "\n")


def read_json(path) -> dict:
    """The dict stored as JSON in file `path` (as `write_json` writes it).

    Raises ValueError naming the file for text that is not JSON, holds
    NaN or inf, or is not an object.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = write_json(Path(tempfile.mkdtemp()) / "config.json", {"seed": 0})
    >>> read_json(path)
    {'seed': 0}
    >>> _ = path.write_text('{"lr": NaN}')
    >>> read_json(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: .../config.json: holds NaN; expected finite numbers
    """
    path = Path(path)

    def refuse(constant):
        raise ValueError(f"{path}: holds {constant}; expected finite numbers")

    try:
        obj = json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def write_history(path, history: list[dict]) -> Path:
    """One CSV row per epoch, columns `HISTORY_KEYS` (empty if absent).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = write_history(Path(tempfile.mkdtemp()) / "history.csv",
    ...                      [{"epoch": 1, "train_elbo": -40.0, "val_elbo": -41.5}])
    >>> with open(path, newline="") as f:
    ...     row = next(csv.DictReader(f))
    >>> row["epoch"], row["val_elbo"], row["val_kl"]
    ('1', '-41.5', '')
    """
    rows = [{k: row[k] for k in HISTORY_KEYS if k in row} for row in history]
    return write_csv(path, HISTORY_KEYS, rows)


def write_csv(path, columns, rows: list[dict]) -> Path:
    """A CSV file of `rows` under `columns` (empty where a row has none;
    other keys ignored), written atomically (`write_text_atomic`).

    Examples
    --------
    >>> import tempfile
    >>> path = write_csv(Path(tempfile.mkdtemp()) / "summary.csv", ["run", "lr"],
    ...                  [{"run": "a", "lr": 0.1, "seed": 0}])
    >>> path.read_text().splitlines()
    ['run,lr', 'a,0.1']
    """
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="",
                            extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buffer.getvalue())
