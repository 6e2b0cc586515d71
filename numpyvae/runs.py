"""The run folder of ``numpyvae train``: its numbers, history and pictures.

A run folder holds

* ``config.json``: the run's settings, written before training starts
  (``numpyvae train --resume`` reads them back);
* ``checkpoint.npz``: model, optimizer and trainer state, rewritten
  after every epoch (`numpyvae.save` with ``trainer=``);
* ``history.csv``: one row per epoch, columns `numpyvae.train.HISTORY_KEYS`;
* ``metrics.json``: settings, final numbers and the mean-pixel baseline;
* the pictures listed in `PICTURES` (PNG, need matplotlib).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .train import HISTORY_KEYS

Array = NDArray[np.floating]

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.npz"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
PICTURES = {"reconstructions": "reconstructions.png", "samples": "samples.png",
            "loss_curves": "loss_curves.png", "latent": "latent.png",
            "manifold": "manifold.png", "interpolations": "interpolations.png"}


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
    """`obj` as indented JSON; NaN or inf is a ValueError."""
    path = Path(path)
    path.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def read_json(path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_history(path, history: list[dict]) -> Path:
    """One CSV row per epoch, columns `HISTORY_KEYS` (empty if absent)."""
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
    """
    from scipy.stats import norm
    z_values = norm.ppf(np.linspace(0.05, 0.95, n))  # (n,)
    z1, z2 = np.meshgrid(z_values, z_values)  # z2 constant along a row
    return z_values, np.column_stack([z1.ravel(), z2.ravel()])


def line_latents(mu_a: Array, mu_b: Array, n_steps: int) -> Array:
    """Points (1 - t) mu_a + t mu_b, t = 0 .. 1 in `n_steps` steps.

    mu_a, mu_b : (n_pairs, d_z); returns (n_pairs, n_steps, d_z).
    """
    t = np.linspace(0.0, 1.0, n_steps)[None, :, None]  # (1, n_steps, 1)
    return (1 - t) * mu_a[:, None, :] + t * mu_b[:, None, :]


def pick_examples(labels, n: int) -> np.ndarray:
    """Indices of n test examples: with labels, cycling through the classes
    (one of each class, then a second of each, ...); else the first n."""
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
