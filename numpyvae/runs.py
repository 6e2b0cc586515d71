"""The run folder of ``numpyvae train``: its numbers, history and pictures.

A run folder holds

* ``config.json``: the run's settings (`numpyvae.settings`), written
  before training starts;
* ``checkpoint.npz``: model, optimizer and trainer state, rewritten
  after every epoch (`numpyvae.save` with ``trainer=``), with the run's
  settings stored inside it (``extra["settings"]``);
* ``history.csv``: one row per epoch, columns `numpyvae.train.HISTORY_KEYS`;
* ``metrics.json``: settings, final numbers and the mean-pixel baseline;
* the pictures listed in `PICTURES` (PNG, need matplotlib);
* ``.lock`` while a process writes the folder (its pid inside).

A folder belongs to one run. `lock_folder` keeps a second writer out;
`claim_folder` refuses to start a new run where one lives, unless asked
to replace it (then the old run's files go first); `resume_settings`
makes sure config.json says what the checkpoint holds. config.json,
history.csv, metrics.json and the pictures always describe the model in
the checkpoint: the three records are removed before a run trains
further and written again when it stops.

`train_run` writes one such folder from a settings dict; ``numpyvae
train`` and ``numpyvae sweep`` (one call per grid point) both use it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shlex
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ._memory import available_memory, size_text
from .checkpoint import model_kind
from .hierarchical_vae import HierarchicalVAE
from .hierarchy import HierarchyConfig
from .model import VAEConfig
from .optim import Adam
from .protocol import Model
from .settings import DEFAULTS, check_settings
from .train import HISTORY_KEYS, Trainer, TrainingDiverged, train
from .vae import VAE

try:
    import fcntl
except ImportError:  # not POSIX: a lock file created exclusively, its pid checked
    fcntl = None

Array = NDArray[np.floating]

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.npz"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
STATUS_FILE = "status.json"  # a sweep's record of the run
ERROR_FILE = "error.txt"  # a sweep's record of a failed run
LOCK_FILE = ".lock"
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


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


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


def _in_use(folder: Path, pid: int | None, name: str) -> ValueError:
    owner = f"process {pid}" if pid is not None else "another process"
    return ValueError(f"{name}: {folder} is in use by {owner}, which is writing a run there; "
                      f"wait for it to finish, or use another folder")


def _lock_fd(path: Path, name: str) -> int:
    """An open descriptor of the lock file `path`, held exclusively."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _in_use(path.parent, _pid_in(path), name) from None
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
            pid = _pid_in(path)
            if _alive(pid):
                raise _in_use(path.parent, pid, name) from None
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def lock_folder(folder, name: str = "--out"):
    """Hold `folder` (created if missing) for this process while in the block.

    The lock is ``folder/.lock`` with this process's pid inside, held with
    ``flock`` (released by the system when the process dies, however it
    dies). A lock left by a process that died (its pid inside) is stale
    and taken over; a live one is a ValueError naming its pid. The file is
    removed when the block ends.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with lock_folder(folder):
    ...     int((folder / LOCK_FILE).read_text()) == os.getpid()
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
        os.write(fd, f"{os.getpid()}\n".encode())
        yield folder
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def describe_run(folder) -> str | None:
    """What run `folder` holds ("a finished run of 3 epochs", ...), or None.

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
    pid = _pid_in(folder / LOCK_FILE)
    if pid != os.getpid() and _alive(pid):  # a run being written says so first
        raise _in_use(folder, pid, name)
    what = describe_run(folder)
    if what is None:
        return
    if not overwrite:
        quoted = shlex.quote(str(folder))
        raise ValueError(f"{name}: {folder} already holds {what}; continue it with "
                         f"--resume {quoted}, start the new run in another folder with "
                         f"{name}, or replace it with --overwrite")
    remove_files(folder, RUN_FILES)


def load_data(spec: str, dtype: str, name: str = "--data"):
    """(x_train, y_train), (x_test, y_test) for the data setting `spec`.

    Examples
    --------
    >>> (x_train, y_train), (x_test, y_test) = load_data("digits", "float32")
    >>> x_train.shape[1], x_train.dtype, len(x_train) == len(y_train)
    (64, dtype('float32'), True)
    """
    from .datasets import load_digits, load_mnist, load_npz_dataset
    if spec == "digits":
        return load_digits(dtype)
    if spec == "mnist":
        return load_mnist(dtype=dtype)
    if not Path(spec).is_file():
        raise FileNotFoundError(f"{name}: expected 'digits', 'mnist' or the path of an .npz "
                                f"file, got {spec!r} (no such file)")
    return load_npz_dataset(spec, dtype)


def generators(seed: int) -> tuple[np.random.Generator, ...]:
    """Independent generators for the weights, the training and the pictures.

    Examples
    --------
    >>> init_rng, train_rng, picture_rng = generators(0)
    >>> bool(init_rng.random() == generators(0)[0].random())
    True
    >>> bool(init_rng.random() == train_rng.random())
    False
    """
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


def new_trainer(settings: dict, x_train: Array) -> Trainer:
    """A fresh model and Adam from `settings`, seeded by settings["seed"].

    Examples
    --------
    >>> settings = dict(DEFAULTS, hidden=[8], latent_dim=3)
    >>> x_train = np.random.default_rng(0).random((20, 64)).astype("float32")
    >>> trainer = new_trainer(settings, x_train)
    >>> trainer.model.config.latent_dim, trainer.model.config.hidden
    (3, (8,))
    """
    check_memory(settings, x_train.shape[1])
    init_rng, train_rng, _ = generators(settings["seed"])
    model = new_model(settings, x_train.shape[1], init_rng)
    if settings["init_output_bias"]:
        model.init_output_bias(x_train)
    optimizer = Adam(lr=settings["lr"], epsilon=settings["adam_epsilon"])
    return Trainer(model, optimizer, beta=settings["beta"], batch_size=settings["batch_size"],
                   rng=train_rng, objective=settings["objective"], k=settings["k"],
                   binarize="dynamic" if settings["binarize"] == "dynamic" else "none",
                   lr_schedule=settings["lr_schedule"])


def two_layer_sizes(settings: dict) -> tuple[list[int], list[int]] | None:
    """``(latent_dims, hidden2)`` of a run with two stochastic layers, its
    hidden2 resolved (None: two layers of the size of z2, as in the IWAE
    paper); None for a one-layer run. Refuses what only one kind takes.

    Examples
    --------
    >>> two_layer_sizes(dict(DEFAULTS, latent_dims=[100, 50]))
    ([100, 50], [50, 50])
    >>> two_layer_sizes(DEFAULTS) is None
    True
    """
    latent_dims, hidden2 = settings.get("latent_dims"), settings.get("hidden2")
    if latent_dims is None:
        if hidden2 is not None:
            raise ValueError(f"--hidden2: only used with --latent-dims (two stochastic "
                             f"layers); leave it out, got {hidden2}")
        return None
    if len(latent_dims) != 2:
        raise ValueError(f"--latent-dims: expected the two sizes of z1 and z2, such as "
                         f"100,50; got {latent_dims}")
    if settings.get("sigma") is not None:
        raise ValueError("--sigma: the two-layer model (--latent-dims) has a Bernoulli "
                         "decoder, which has no sigma; leave it out")
    return list(latent_dims), list(hidden2) if hidden2 is not None else [latent_dims[1]] * 2


def new_model(settings: dict, input_dim: int, rng: np.random.Generator) -> Model:
    """The model `settings` describe, its weights drawn from `rng`: two
    stochastic layers (`HierarchicalVAE`) when latent_dims is set, else a
    `VAE` with latent_dim units.

    Examples
    --------
    >>> settings = dict(DEFAULTS, latent_dims=[4, 2])
    >>> model = new_model(settings, 64, np.random.default_rng(0))
    >>> model.config.latent_dims, model.config.hidden2
    ((4, 2), (2, 2))
    """
    two_layers = two_layer_sizes(settings)
    if two_layers is not None:
        latent_dims, hidden2 = two_layers
        return HierarchicalVAE(input_dim, latent_dims, hidden=settings["hidden"],
                               hidden2=hidden2, activation=settings["activation"],
                               likelihood=settings["likelihood"], dtype=settings["dtype"],
                               rng=rng, init=settings["init"])
    return VAE(input_dim, settings["latent_dim"], hidden=settings["hidden"],
               activation=settings["activation"], likelihood=settings["likelihood"],
               sigma=settings["sigma"], dtype=settings["dtype"], rng=rng,
               init=settings["init"])


def model_settings(config: dict) -> dict:
    """The run settings of a model's architecture, from its
    ``config.to_dict()`` (whose "model" key names the kind of model,
    `checkpoint.model_kind`).

    Examples
    --------
    >>> model_settings(VAE(64, 3, hidden=(8,)).config.to_dict())
    {'latent_dim': 3, 'hidden': [8]}
    >>> two = HierarchicalVAE(64, (4, 2), hidden=(8,), hidden2=(2,))
    >>> model_settings(two.config.to_dict())
    {'latent_dims': [4, 2], 'hidden2': [2], 'hidden': [8]}
    """
    if model_kind(config) == "hierarchical":
        sizes = {"latent_dims": list(config["latent_dims"]), "hidden2": list(config["hidden2"])}
    else:
        sizes = {"latent_dim": config["latent_dim"]}
    return {**sizes, "hidden": list(config["hidden"])}


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


def resume_trainer(ckpt) -> Trainer:
    """The trainer of checkpoint `ckpt`, its history under today's names."""
    from .train import trainer_from_checkpoint
    trainer = trainer_from_checkpoint(ckpt)
    trainer.history = [new_names(row) for row in trainer.history]
    return trainer


def stored_settings(ckpt) -> dict | None:
    """The run settings stored in checkpoint `ckpt` by `train_run`, or None
    for a checkpoint written before they were stored."""
    extra = ckpt.meta.get("extra")
    settings = extra.get("settings") if isinstance(extra, dict) else None
    return None if settings is None else check_settings(settings, "checkpoint settings")


def _trainer_view(trainer: Trainer) -> dict:
    """The settings a trainer itself holds, by setting name."""
    config = trainer.model.config
    return {**model_settings(config.to_dict()),
            "activation": config.activation, "likelihood": config.likelihood,
            "dtype": config.dtype, "beta": float(trainer.beta),
            "batch_size": trainer.batch_size, "objective": trainer.objective,
            "k": trainer.k, "lr_schedule": trainer.lr_schedule}


def _differences(a: dict, b: dict, keys) -> list[str]:
    return [f"{key} ({a[key]!r} against {b[key]!r})" for key in keys if a[key] != b[key]]


def resume_settings(folder, ckpt, trainer: Trainer, flags: dict) -> dict:
    """The settings of the run in `folder`, continued to flags["epochs"].

    The checkpoint's stored settings are the run's (for an older
    checkpoint, config.json checked against the model and trainer it
    holds). config.json must say the same, apart from epochs; a flag other
    than epochs must agree; epochs may not be fewer than those done.

    Raises ValueError naming the file and the differing settings.
    """
    folder = Path(folder)
    config = read_settings(folder / CONFIG_FILE)
    truth = stored_settings(ckpt) or config
    keys = [key for key in DEFAULTS if key != "epochs"]
    two_layers = two_layer_sizes(truth)
    resolved = truth if two_layers is None else dict(truth, hidden2=two_layers[1])
    differ = (_differences(config, truth, keys)
              or _differences(_trainer_view(trainer), resolved, _trainer_view(trainer)))
    if differ:
        raise ValueError(f"--resume: {folder / CONFIG_FILE} does not describe the model in "
                         f"{folder / CHECKPOINT_FILE}: {', '.join(differ)}, config.json "
                         "against checkpoint; restore config.json, or start a new run")
    for key, value in flags.items():
        if key != "epochs" and value != truth[key]:
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"{flag}: the run in {folder} has {truth[key]!r}, got "
                             f"{value!r}; a resumed run keeps its settings, leave {flag} out")
    epochs = flags.get("epochs", config["epochs"])
    if epochs < trainer.epoch:
        raise ValueError(f"--epochs: the run in {folder} has done {trainer.epoch} epochs, "
                         f"got {epochs}; --epochs counts all epochs, so expected at least "
                         f"{trainer.epoch}")
    return dict(truth, epochs=epochs)


def read_settings(path) -> dict:
    """A config.json's settings, checked (`numpyvae.settings.check_settings`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; expected the config.json of a run "
                                "folder written by numpyvae train")
    return check_settings(read_json(path), str(path))


def estimate_memory(settings: dict, input_dim: int, n_val: int = 1000) -> dict:
    """Bytes a run of `settings` needs beyond its data, by part.

    parameters: the model's arrays; optimizer: their gradient and Adam's
    two moments (3x); activations: the forward caches and their gradients
    of one step, for batch_size x k rows (the IWAE decodes k samples of
    each example) or the validation batch, whichever is larger.

    Examples
    --------
    >>> parts = estimate_memory(dict(DEFAULTS, hidden=[10], latent_dim=2), 4)
    >>> parts["parameters"] == 4 * (4 * 10 + 10 + 2 * (10 * 2 + 2) + 2 * 10 + 10 + 10 * 4 + 4)
    True
    >>> parts["optimizer"] == 3 * parts["parameters"]
    True
    """
    two_layers = two_layer_sizes(settings)
    if two_layers is None:
        config = VAEConfig(input_dim, settings["latent_dim"], tuple(settings["hidden"]))
        widths = sum(settings["hidden"])
    else:
        latent_dims, hidden2 = two_layers
        config = HierarchyConfig(input_dim, tuple(latent_dims), tuple(settings["hidden"]),
                                 tuple(hidden2))
        widths = sum(settings["hidden"]) + sum(hidden2)
    itemsize = 8 if settings["dtype"] == "float64" else 4
    n_params = sum(math.prod(shape) for shape in config.param_shapes().values())
    rows = max(settings["batch_size"] * settings["k"], min(n_val, 1000))
    per_row = 4 * widths + 6 * config.noise_dim + 4 * input_dim
    return {"parameters": itemsize * n_params, "optimizer": 3 * itemsize * n_params,
            "activations": 2 * itemsize * rows * per_row}


def check_memory(settings: dict, input_dim: int, available: int | None = None) -> int:
    """Refuse (ValueError, with the numbers) a run that needs more memory
    than is available (`available_memory` by default); returns its bytes.

    Examples
    --------
    >>> check_memory(dict(DEFAULTS, hidden=[3_000_000_000]), 64)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: --hidden, --latent-dim, --batch-size, --k: this run needs about ... GiB ...
    """
    parts = estimate_memory(settings, input_dim)
    need = sum(parts.values())
    if available is None:
        available = available_memory()
    if available is not None and need > available:
        detail = ", ".join(f"{name} {size_text(n)}" for name, n in parts.items())
        raise ValueError(f"--hidden, --latent-dim, --batch-size, --k: this run needs about "
                         f"{size_text(need)} ({detail}) but {size_text(available)} is "
                         "available; choose smaller sizes")
    return need


def load_run_data(settings: dict, name: str = "--data"):
    """The run's data, loaded and binarized as its settings say.

    Examples
    --------
    >>> (x_train, _), (x_test, _) = load_run_data(dict(DEFAULTS, binarize="static"))
    >>> np.unique(x_train).tolist(), np.unique(x_test).tolist()
    ([0.0, 1.0], [0.0, 1.0])
    """
    return binarized(load_data(settings["data"], settings["dtype"], name), settings)


def binarized(data, settings: dict):
    """The data as the run's binarization protocol uses it.

    "none": grey levels. "dynamic": training batches are redrawn by the
    trainer; the test split is one fixed Bernoulli draw (seeded), so the
    validation numbers of every epoch score the same data. "static": one
    fixed draw of each split, seeded, before training.

    Examples
    --------
    >>> x = np.full((3, 4), 0.5)
    >>> data = (x, None), (x, None)
    >>> binarized(data, {"binarize": "none", "seed": 0}) is data
    True
    >>> (x_train, _), (x_test, _) = binarized(data, {"binarize": "dynamic", "seed": 0})
    >>> x_train is x, set(np.unique(x_test).tolist()) <= {0.0, 1.0}
    (True, True)
    """
    from .datasets import BINARIZE_MODES, static_binarize
    mode = settings["binarize"]
    if mode not in BINARIZE_MODES:
        raise ValueError(f"binarize: expected one of {BINARIZE_MODES}, got {mode!r}")
    if mode == "none":
        return data
    (x_train, y_train), (x_test, y_test) = data
    if mode == "static":
        x_train = static_binarize(x_train, settings["seed"] + 1)
    return (x_train, y_train), (static_binarize(x_test, settings["seed"] + 2), y_test)


def run_metrics(settings: dict, trainer: Trainer, baseline: float, n_train: int,
                n_test: int) -> dict:
    """What metrics.json holds, from the trainer's last history row.

    Examples
    --------
    >>> settings = dict(DEFAULTS, hidden=[8], epochs=1, batch_size=10)
    >>> x = np.random.default_rng(0).random((20, 64)).astype("float32")
    >>> trainer = new_trainer(settings, x)
    >>> _ = train(trainer, x, 1, x_val=x)
    >>> metrics = run_metrics(settings, trainer, -44.0, 20, 20)
    >>> metrics["epochs"], metrics["baseline_mean_pixel"], metrics["n_test"]
    (1, -44.0, 20)
    """
    last = trainer.history[-1]
    return {"config": settings, "model": trainer.model.config.to_dict(),
            "epochs": trainer.epoch,
            "seconds": sum(row["seconds"] for row in trainer.history),
            "train_elbo": last["train_elbo"], "val_elbo": last["val_elbo"],
            "val_elbo_se": last.get("val_elbo_se"),
            "val_log_lik": last["val_log_lik"], "val_kl": last["val_kl"],
            "baseline_mean_pixel": baseline, "n_train": n_train, "n_test": n_test}


def train_run(settings: dict, out, data=None, trainer: Trainer | None = None,
              pictures: bool = True, progress: bool = False) -> tuple[dict, list[str], bool]:
    """Train one run into folder `out` and write its files.

    Parameters
    ----------
    settings : dict
        Every setting of `numpyvae.settings.SETTINGS`, checked. All
        randomness comes from settings["seed"].
    out : str or Path
        The run folder, created if missing.
    data : tuple, optional
        ``(x_train, y_train), (x_test, y_test)``, as `load_run_data`
        returns for these settings (binarized); loaded when None.
    trainer : Trainer, optional
        A trainer to continue (e.g. from the folder's checkpoint); when
        None, a new one from `new_trainer`.
    pictures : bool
        Draw `PICTURES` (skipped when matplotlib is missing).
    progress : bool
        Show progress: a tqdm bar moved every step, else a line every
        twentieth of the epochs (`numpyvae.train.train`).

    Returns
    -------
    metrics : dict
        What metrics.json holds.
    written : list of str
        Names of the files written into `out`.
    pictures_skipped : bool
        True when pictures were asked for but matplotlib is missing.

    Notes
    -----
    The old metrics.json, history.csv and pictures are removed and
    config.json is written before training starts; metrics.json is
    written after history.csv, the pictures last. The settings are
    stored in every checkpoint (``extra["settings"]``). A
    KeyboardInterrupt leaves the checkpoint of the last completed step
    (see `numpyvae.train.train`) and propagates; a run that diverges
    before its first checkpoint leaves no config.json behind.

    Examples
    --------
    >>> import tempfile
    >>> settings = dict(DEFAULTS, hidden=[8], epochs=1, batch_size=10)
    >>> rng = np.random.default_rng(0)
    >>> x = rng.random((20, 64)).astype("float32")
    >>> data = (x, rng.integers(0, 10, 20)), (x, rng.integers(0, 10, 20))
    >>> metrics, written, skipped = train_run(settings, tempfile.mkdtemp(), data,
    ...                                       pictures=False)
    >>> metrics["epochs"], written, skipped
    (1, ['metrics.json', 'history.csv', 'checkpoint.npz', 'config.json'], False)
    """
    out = Path(out)
    if data is None:
        data = load_run_data(settings)
    (x_train, _), (x_test, y_test) = data
    if trainer is None:
        trainer = new_trainer(settings, x_train)
    out.mkdir(parents=True, exist_ok=True)
    remove_files(out, RECORDS)  # they describe the checkpoint as it was, not as it will be
    write_json(out / CONFIG_FILE, settings)
    try:
        train(trainer, x_train, settings["epochs"], x_val=x_test, progress=progress,
              checkpoint_path=out / CHECKPOINT_FILE, checkpoint_extra={"settings": settings})
    except TrainingDiverged:
        if not (out / CHECKPOINT_FILE).exists():  # nothing to continue: the folder is free
            remove_files(out, (CONFIG_FILE,))
        raise
    baseline = mean_pixel_baseline(x_train, x_test, settings["likelihood"], settings["sigma"])
    metrics = run_metrics(settings, trainer, baseline, len(x_train), len(x_test))
    write_history(out / HISTORY_FILE, trainer.history)
    write_json(out / METRICS_FILE, metrics)
    written = [METRICS_FILE, HISTORY_FILE, CHECKPOINT_FILE, CONFIG_FILE]
    if not pictures:
        return metrics, written, False
    try:
        paths = write_pictures(trainer.model, x_test, y_test, trainer.history, baseline, out,
                               generators(settings["seed"])[2])
    except ImportError:
        return metrics, written, True
    return metrics, written + [p.name for p in paths], False


def mean_pixel_baseline(x_train: Array, x_test: Array, likelihood: str = "bernoulli",
                        sigma: float | None = None) -> float:
    """Mean log-likelihood (nats per example) of `x_test` under independent
    pixels at the training mean: the score a VAE has to beat.

    Notes
    -----
    With p_j the mean of pixel j over `x_train`:
    Bernoulli: log p(x) = sum_j x_j log p_j + (1 - x_j) log(1 - p_j),
    p_j clipped to [1e-6, 1 - 1e-6] (a pixel never inked in training);
    Gaussian:  log p(x) = -0.5 sum_j ((x_j - p_j)^2 / sigma^2
    + log(2 pi sigma^2)), the decoder's fixed sigma (default 1).

    Examples
    --------
    >>> x = np.array([[0.0, 1.0], [1.0, 1.0]])
    >>> round(mean_pixel_baseline(x, x), 4)  # log 0.5 per example
    -0.6931
    >>> round(mean_pixel_baseline(x, x, "gaussian", 1.0), 4)
    -1.9629
    """
    p = x_train.astype(np.float64).mean(axis=0)  # (d_x,)
    x = x_test.astype(np.float64)  # (n, d_x)
    if likelihood == "gaussian":
        s2 = (1.0 if sigma is None else sigma) ** 2
        log_lik = -0.5 * np.sum((x - p) ** 2 / s2 + math.log(2 * math.pi * s2), axis=1)
    else:
        p = np.clip(p, 1e-6, 1 - 1e-6)
        log_lik = np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=1)
    return float(log_lik.mean())


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
    path.write_text(text + "\n", encoding="utf-8")
    return path


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
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_KEYS, restval="")
        writer.writeheader()
        for row in history:
            writer.writerow({k: row[k] for k in HISTORY_KEYS if k in row})
    return path


def latent_grid(n: int) -> tuple[Array, Array]:
    """An n x n grid over the 2-d prior at evenly spaced quantiles.

    Returns ``(z_values, z)``: z_values = Phi^-1(linspace(0.05, 0.95, n))
    (Phi the standard normal CDF), and z of shape (n * n, 2) with z_1
    varying fastest.

    Examples
    --------
    >>> z_values, z = latent_grid(3)
    >>> z_values.shape, np.round(z_values[[0, 2]], 3)
    ((3,), array([-1.645,  1.645]))
    >>> z.shape, bool(np.all(z[:3, 1] == z_values[0]))  # z_1 varies fastest
    ((9, 2), True)
    """
    from scipy.stats import norm
    z_values = norm.ppf(np.linspace(0.05, 0.95, n))  # (n,)
    z1, z2 = np.meshgrid(z_values, z_values)  # z2 constant along a row
    return z_values, np.column_stack([z1.ravel(), z2.ravel()])


def line_latents(mu_a: Array, mu_b: Array, n_steps: int) -> Array:
    """Points (1 - t) mu_a + t mu_b, t = 0 .. 1 in `n_steps` steps.

    mu_a, mu_b : (n_pairs, d_z); returns (n_pairs, n_steps, d_z).

    Examples
    --------
    >>> line_latents(np.zeros((1, 2)), np.ones((1, 2)), 3)
    array([[[0. , 0. ],
            [0.5, 0.5],
            [1. , 1. ]]])
    """
    t = np.linspace(0.0, 1.0, n_steps)[None, :, None]  # (1, n_steps, 1)
    return (1 - t) * mu_a[:, None, :] + t * mu_b[:, None, :]


def pick_examples(labels, n: int) -> np.ndarray:
    """Indices of n test examples: with labels, cycling through the classes
    (one of each class, then a second of each, ...); else the first n.

    Examples
    --------
    >>> pick_examples(np.array([0, 0, 1, 1, 2]), 4)
    array([0, 2, 4, 1])
    >>> pick_examples(None, 3)
    array([0, 1, 2])
    """
    if labels is None:
        return np.arange(n)
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    picked = [idx[k] for k in range(max(map(len, by_class))) for idx in by_class if k < len(idx)]
    return np.array(picked[:n])


def write_pictures(model, x_test: Array, y_test, history: list[dict], baseline: float,
                   out, rng: np.random.Generator) -> list[Path]:
    """Draw every picture of `PICTURES` that applies into folder `out`.

    Image pictures need square images; the manifold needs latent_dim 2.
    Raises ImportError (one line, with the install command) without
    matplotlib, before anything is drawn.

    Examples
    --------
    >>> import tempfile
    >>> rng = np.random.default_rng(0)
    >>> model = VAE(5, 3, hidden=(), rng=0)  # 5 pixels: not square, no image pictures
    >>> x, y = rng.random((10, 5)), rng.integers(0, 2, 10)
    >>> history = [{"epoch": e, "train_elbo": -4.0 + e, "val_elbo": -4.5 + e}
    ...            for e in (1, 2)]
    >>> paths = write_pictures(model, x, y, history, -4.0, tempfile.mkdtemp(), rng)
    >>> [p.name for p in paths]
    ['loss_curves.png', 'latent.png']
    """
    from . import plots
    plots.require_matplotlib()
    out = Path(out)
    written = [plots.plot_loss_curves([r["epoch"] for r in history],
                                      [r["train_elbo"] for r in history],
                                      [r["val_elbo"] for r in history],
                                      out / PICTURES["loss_curves"], baseline=baseline)]
    mu = model.encode(x_test)[0]  # (n, d_z)
    written.append(plots.plot_latent(mu, y_test, out / PICTURES["latent"]))
    if math.isqrt(x_test.shape[1]) ** 2 != x_test.shape[1]:
        return written
    idx = pick_examples(y_test, min(20, len(x_test)))
    written.append(plots.plot_reconstructions(x_test[idx], model.reconstruct(x_test[idx]),
                                              out / PICTURES["reconstructions"]))
    written.append(plots.plot_samples(model.sample(100, rng), out / PICTURES["samples"]))
    if model.config.latent_dim == 2:
        z_values, z = latent_grid(15)
        written.append(plots.plot_manifold(model.decode(z.astype(model.dtype)), z_values,
                                           out / PICTURES["manifold"]))
    n_pairs = min(8, len(x_test) // 2)
    if n_pairs > 0:
        pair = rng.permutation(len(x_test))[:2 * n_pairs].reshape(n_pairs, 2)
        z = line_latents(mu[pair[:, 0]], mu[pair[:, 1]], 10)  # (n_pairs, 10, d_z)
        decoded = model.decode(z.reshape(-1, z.shape[2])).reshape(n_pairs, 10, -1)
        written.append(plots.plot_interpolations(decoded, out / PICTURES["interpolations"],
                                                 x_test[pair[:, 0]], x_test[pair[:, 1]]))
    return written
