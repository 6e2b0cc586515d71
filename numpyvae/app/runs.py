"""One run of ``numpyvae train``: its data, its training, its numbers.

`train_run` trains a run from a settings dict into its run folder
(`numpyvae.app.run_folder`) and writes its files: config.json first, the
checkpoint after every epoch, then history.csv, metrics.json (with the
mean-pixel baseline, `mean_pixel_baseline`) and the pictures
(`numpyvae.app.run_pictures`). config.json, history.csv, metrics.json and
the pictures always describe the model in the checkpoint: the three
records are removed before a run trains further and written again when
it stops. ``numpyvae train`` and ``numpyvae sweep`` (one call per grid
point) both use it, with the data `load_run_data` loads and binarizes.
The trainer comes from `numpyvae.app.run_trainer`. This module is a public
API: the names that moved to run_folder.py, run_trainer.py and
run_pictures.py stay importable from here. Imports train.py, settings.py
and those three modules.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..train import train
from ..trainer import Trainer, TrainingDiverged

# Every public name of the three modules below stays importable as numpyvae.app.runs.<name>.
from .run_folder import (  # noqa: F401
    CHECKPOINT_FILE,
    CONFIG_FILE,
    ERROR_FILE,
    HISTORY_FILE,
    LOCK_FILE,
    METRICS_FILE,
    OLD_NAMES,
    PICTURES,
    RECORDS,
    RUN_FILES,
    STATUS_FILE,
    check_out,
    claim_folder,
    default_out,
    describe_run,
    lock_folder,
    new_names,
    read_json,
    remove_files,
    write_history,
    write_json,
)
from .run_pictures import latent_grid, line_latents, pick_examples, write_pictures  # noqa: F401
from .run_trainer import (  # noqa: F401
    check_memory,
    estimate_memory,
    generators,
    model_settings,
    new_model,
    new_trainer,
    read_settings,
    resume_settings,
    resume_trainer,
    stored_settings,
    two_layer_sizes,
)
from .settings import DEFAULTS  # noqa: F401  (the doctests' settings)

Array = NDArray[np.floating]


def load_data(spec: str, dtype: str, name: str = "--data"):
    """(x_train, y_train), (x_test, y_test) for the data setting `spec`.

    Examples
    --------
    >>> (x_train, y_train), (x_test, y_test) = load_data("digits", "float32")
    >>> x_train.shape[1], x_train.dtype, len(x_train) == len(y_train)
    (64, dtype('float32'), True)
    """
    from ..datasets import load_digits, load_mnist, load_npz_dataset
    if spec == "digits":
        return load_digits(dtype)
    if spec == "mnist":
        return load_mnist(dtype=dtype)
    if not Path(spec).is_file():
        raise FileNotFoundError(f"{name}: expected 'digits', 'mnist' or the path of an .npz "
                                f"file, got {spec!r} (no such file)")
    return load_npz_dataset(spec, dtype)


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
    from ..datasets import BINARIZE_MODES, static_binarize
    mode = settings["binarize"]
    if mode not in BINARIZE_MODES:
        raise ValueError(f"binarize: expected one of {BINARIZE_MODES}, got {mode!r}")
    if mode == "none":
        return data
    (x_train, y_train), (x_test, y_test) = data
    if mode == "static":
        x_train = static_binarize(x_train, settings["seed"] + 1)
    return (x_train, y_train), (static_binarize(x_test, settings["seed"] + 2), y_test)


def data_fingerprint(data) -> dict:
    """Shape, dtype and SHA-256 of the run's training and test arrays (as
    `load_run_data` gives them): what a resumed run checks it trains on.

    Examples
    --------
    >>> x = np.zeros((3, 4), dtype=np.float32)
    >>> fp = data_fingerprint(((x, None), (x[:2], None)))
    >>> fp["train"]["shape"], fp["test"]["shape"], fp["train"]["dtype"]
    ([3, 4], [2, 4], 'float32')
    >>> fp["train"] == data_fingerprint(((x + 1, None), (x, None)))["train"]
    False
    """
    (x_train, _), (x_test, _) = data
    return {"train": _array_fingerprint(x_train), "test": _array_fingerprint(x_test)}


def _array_fingerprint(a: np.ndarray) -> dict:
    digest = hashlib.sha256(np.ascontiguousarray(a).data).hexdigest()
    return {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": digest}


def _fingerprint_text(split: dict) -> str:
    shape = " x ".join(map(str, split["shape"]))
    return f"{shape} {split['dtype']}, SHA-256 {split['sha256'][:12]}"


def check_same_data(ckpt, data, spec: str, name: str = "--resume") -> str | None:
    """Refuse (ValueError naming both) data other than the run's, as its
    checkpoint records it; returns a note when the checkpoint (of an older
    numpyvae) records none, so the data cannot be checked.

    Examples
    --------
    >>> class Ckpt:
    ...     meta = {"extra": {"data": data_fingerprint(((np.zeros((3, 2)), 0), (np.ones((1, 2)), 0)))}}
    >>> check_same_data(Ckpt(), ((np.zeros((4, 2)), 0), (np.ones((1, 2)), 0)),
    ...                 "d.npz")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: --resume: the run was trained on data 'd.npz' whose train split was 3 x 2 float64, SHA-256 ...; 'd.npz' now gives 4 x 2 float64, ...
    """
    extra = ckpt.meta.get("extra")
    recorded = extra.get("data") if isinstance(extra, dict) else None
    if recorded is None:
        return (f"note: this run's checkpoint does not record its data (written before "
                f"numpyvae recorded it), so {spec!r} cannot be checked against it")
    now = data_fingerprint(data)
    for split in ("train", "test"):
        if recorded.get(split) != now[split]:
            was = (_fingerprint_text(recorded[split]) if isinstance(recorded.get(split), dict)
                   else "not recorded")
            raise ValueError(f"{name}: the run was trained on data {spec!r} whose {split} split "
                             f"was {was}; {spec!r} now gives {_fingerprint_text(now[split])}; "
                             "restore the run's data, or start a new run")
    return None


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
            "epochs": trainer.epochs_done,
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
        Every setting of `numpyvae.app.settings.SETTINGS`, checked. All
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
    fingerprint = data_fingerprint(data)
    try:
        train(trainer, x_train, settings["epochs"], x_val=x_test, progress=progress,
              checkpoint_path=out / CHECKPOINT_FILE,
              checkpoint_extra={"settings": settings, "data": fingerprint})
    except TrainingDiverged:
        if not (out / CHECKPOINT_FILE).exists():  # nothing to continue: the folder is free
            remove_files(out, (CONFIG_FILE,))
        raise
    baseline = mean_pixel_baseline(x_train, x_test, settings["likelihood"], settings["sigma"])
    metrics = dict(run_metrics(settings, trainer, baseline, len(x_train), len(x_test)),
                   data=fingerprint)
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
