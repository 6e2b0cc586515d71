"""The run folder of ``numpyvae train``: its numbers, history and pictures.

A run folder holds

* ``config.json``: the run's settings, written before training starts
  (``numpyvae train --resume`` reads them back);
* ``checkpoint.npz``: model, optimizer and trainer state, rewritten
  after every epoch (`numpyvae.save` with ``trainer=``);
* ``history.csv``: one row per epoch, columns `numpyvae.train.HISTORY_KEYS`;
* ``metrics.json``: settings, final numbers and the mean-pixel baseline;
* the pictures listed in `PICTURES` (PNG, need matplotlib).

`train_run` writes one such folder from a settings dict; ``numpyvae
train`` and ``numpyvae sweep`` (one call per grid point) both use it.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .hierarchical_vae import HierarchicalVAE
from .optim import Adam
from .train import HISTORY_KEYS, Trainer, train
from .vae import VAE

Array = NDArray[np.floating]

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.npz"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
PICTURES = {"reconstructions": "reconstructions.png", "samples": "samples.png",
            "loss_curves": "loss_curves.png", "latent": "latent.png",
            "manifold": "manifold.png", "interpolations": "interpolations.png"}


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
    >>> from numpyvae.cli import DEFAULTS
    >>> settings = dict(DEFAULTS, hidden=[8], latent_dim=3)
    >>> x_train = np.random.default_rng(0).random((20, 64)).astype("float32")
    >>> trainer = new_trainer(settings, x_train)
    >>> trainer.model.config.latent_dim, trainer.model.config.hidden
    (3, (8,))
    """
    init_rng, train_rng, _ = generators(settings["seed"])
    latent_dims = settings.get("latent_dims")
    if latent_dims:  # two stochastic layers
        hidden2 = settings.get("hidden2") or [latent_dims[1]] * 2
        model = HierarchicalVAE(x_train.shape[1], latent_dims, hidden=settings["hidden"],
                                hidden2=hidden2, activation=settings["activation"],
                                likelihood=settings["likelihood"], dtype=settings["dtype"],
                                rng=init_rng, init=settings["init"])
    else:
        model = VAE(x_train.shape[1], settings["latent_dim"], hidden=settings["hidden"],
                    activation=settings["activation"], likelihood=settings["likelihood"],
                    sigma=settings["sigma"], dtype=settings["dtype"],
                    rng=init_rng, init=settings["init"])
    if settings["init_output_bias"]:
        model.init_output_bias(x_train)
    optimizer = Adam(lr=settings["lr"], epsilon=settings["adam_epsilon"])
    return Trainer(model, optimizer, beta=settings["beta"], batch_size=settings["batch_size"],
                   rng=train_rng, objective=settings["objective"], k=settings["k"],
                   binarize="dynamic" if settings["binarize"] == "dynamic" else "none",
                   lr_schedule=settings["lr_schedule"])


def load_run_data(settings: dict, name: str = "--data"):
    """The run's data, loaded and binarized as its settings say.

    Examples
    --------
    >>> from numpyvae.cli import DEFAULTS
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
    >>> from numpyvae.cli import DEFAULTS
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
            "val_recon": last["val_recon"], "val_kl": last["val_kl"],
            "baseline_mean_pixel": baseline, "n_train": n_train, "n_test": n_test}


def train_run(settings: dict, out, data=None, trainer: Trainer | None = None,
              pictures: bool = True, progress: bool = False) -> tuple[dict, list[str], bool]:
    """Train one run into folder `out` and write its files.

    Parameters
    ----------
    settings : dict
        Every key of ``numpyvae.cli.DEFAULTS`` (data, epochs, latent_dim,
        hidden, activation, likelihood, sigma, beta, batch_size, lr, seed,
        dtype). All randomness comes from settings["seed"].
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
        Report every epoch (`numpyvae.train.train`).

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
    config.json is written before training starts, metrics.json after
    history.csv. A KeyboardInterrupt leaves the checkpoint of the last
    completed step (see `numpyvae.train.train`) and propagates.

    Examples
    --------
    >>> import tempfile
    >>> from numpyvae.cli import DEFAULTS
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
    write_json(out / CONFIG_FILE, settings)
    train(trainer, x_train, settings["epochs"], x_val=x_test, progress=progress,
          checkpoint_path=out / CHECKPOINT_FILE)
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
    """`obj` as indented JSON; NaN or inf is a ValueError.

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
    ValueError: Out of range float values are not JSON compliant...
    """
    path = Path(path)
    path.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def read_json(path) -> dict:
    """The dict stored as JSON in file `path` (as `write_json` writes it).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = write_json(Path(tempfile.mkdtemp()) / "config.json", {"seed": 0})
    >>> read_json(path)
    {'seed': 0}
    """
    return json.loads(Path(path).read_text(encoding="utf-8"))


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
