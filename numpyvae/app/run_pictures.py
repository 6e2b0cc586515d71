"""The pictures of a run folder (`numpyvae.app.run_folder.PICTURES`).

`write_pictures` draws them with `numpyvae.app.plots` (matplotlib, imported
only when drawing) from a trained model and its test split; the grid of
the 2-d latent space (`latent_grid`), the lines between two codes
(`line_latents`) and the examples shown (`pick_examples`) are its
helpers. Imports numpy, scipy, plots.py and run_folder.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..protocol import Model
from .run_folder import PICTURES

Array = NDArray[np.floating]


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


def write_pictures(model: Model, x_test: Array, y_test, history: list[dict], baseline: float,
                   out, rng: np.random.Generator) -> list[Path]:
    """Draw every picture of `PICTURES` that applies into folder `out`.

    Image pictures need square images; the manifold needs latent_dim 2.
    Raises ImportError (one line, with the install command) without
    matplotlib, before anything is drawn.

    Examples
    --------
    >>> import tempfile
    >>> from numpyvae import VAE
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
