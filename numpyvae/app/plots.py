"""Pictures of a trained VAE, one function per picture (optional matplotlib).

Every function takes arrays, never the model, and writes one PNG to
`path`. matplotlib (the ``viz`` extra) is imported inside the functions,
with the non-interactive Agg backend, so ``import numpyvae`` never needs
it; `require_matplotlib` raises an ImportError saying what to install.

Images are rows of length d = side * side (8x8 digits, 28x28 MNIST),
drawn with a grey colormap, ink bright on a dark background, row 0 of
each image at the top.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]

INSTALL_HINT = 'pip install "numpyvae[viz]"'


def require_matplotlib() -> None:
    """Raise ImportError with the install command if matplotlib is missing.

    Examples
    --------
    >>> require_matplotlib()  # silent when matplotlib is installed
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(f"matplotlib is not installed ({INSTALL_HINT})") from None


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend, imported on
    first need (ImportError naming the extra if matplotlib is missing).

    Every picture of the package draws through it: this module's and
    the sweep's (sweep.py).
    """
    require_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def image_side(d: int) -> int:
    """side such that side * side == d; ValueError otherwise.

    Examples
    --------
    >>> image_side(64)
    8
    >>> image_side(10)
    Traceback (most recent call last):
        ...
    ValueError: images: expected rows of side * side pixels, got 10 per row
    """
    side = math.isqrt(d)
    if side * side != d:
        raise ValueError(f"images: expected rows of side * side pixels, got {d} per row")
    return side


def tile(images: Array, n_cols: int, pad: int = 1) -> np.ndarray:
    """Arrange (n, side * side) rows into one 2-d picture, n_cols a row.

    Pixel values are clipped to [0, 1]; cells are separated by `pad`
    pixels of mid grey, and empty cells stay mid grey.

    Examples
    --------
    >>> canvas = tile(np.ones((3, 4)), n_cols=2)  # three 2x2 images, two a row
    >>> # image 2 at row 1, column 0; the cell beside it is empty
    >>> canvas.shape
    (7, 7)
    >>> canvas[1:3, 1:3].tolist(), float(canvas[4, 1]), float(canvas[4, 4])
    ([[1.0, 1.0], [1.0, 1.0]], 1.0, 0.5)
    """
    n, d = images.shape
    side = image_side(d)
    n_rows = math.ceil(n / n_cols)
    cell = side + pad
    canvas = np.full((n_rows * cell + pad, n_cols * cell + pad), 0.5)
    for k in range(n):
        r, c = divmod(k, n_cols)
        top, left = pad + r * cell, pad + c * cell
        canvas[top:top + side, left:left + side] = images[k].reshape(side, side)
    return np.clip(canvas, 0.0, 1.0)


def _show(plt, canvas: np.ndarray, title: str, side: int, cell_px: int = 64):
    """One figure holding `canvas`, about `cell_px` screen pixels per image."""
    height, width = canvas.shape
    scale = cell_px / (side + 1)  # screen pixels per canvas pixel
    fig, ax = plt.subplots(figsize=(max(4.0, width * scale / 100), height * scale / 100 + 0.8),
                           dpi=100)
    ax.imshow(canvas, cmap="gray", vmin=0.0, vmax=1.0, origin="upper",
              interpolation="nearest")
    ax.set_title(title)
    return fig, ax


def save_figure(plt, fig, path) -> Path:
    """Write `fig` to `path` as a PNG (making its folder), close it, and
    return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_reconstructions(x: Array, recon: Array, path, n_cols: int = 10) -> Path:
    """Inputs and their reconstructions, each input directly above its own.

    x, recon : ndarray, shape (n, d); rows alternate input / reconstruction
    in blocks of `n_cols` examples.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> x = np.random.default_rng(0).random((3, 4))  # three 2x2 images
    >>> plot_reconstructions(x, 0.9 * x, Path(tempfile.mkdtemp()) / "recon.png").name
    'recon.png'
    """
    plt = pyplot()
    n = x.shape[0]
    rows = []
    for start in range(0, n, n_cols):
        block_x, block_r = x[start:start + n_cols], recon[start:start + n_cols]
        fill = np.full((n_cols - len(block_x), x.shape[1]), 0.5)
        rows += [np.vstack([block_x, fill]), np.vstack([block_r, fill])]
    canvas = tile(np.vstack(rows), n_cols)
    side = image_side(x.shape[1])
    fig, ax = _show(plt, canvas, "test digits and their reconstructions", side)
    ax.set_xticks([])
    cell = side + 1
    ax.set_yticks([1 + cell * (k + 0.5) for k in range(len(rows))])
    ax.set_yticklabels(["input", "recon"] * (len(rows) // 2))
    return save_figure(plt, fig, path)


def plot_samples(samples: Array, path, n_cols: int = 10, title: str | None = None) -> Path:
    """Decoded means of z ~ N(0, I); samples : ndarray, shape (n, d).

    `title` replaces the default "samples: decoder mean at z ~ N(0, I)".

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> samples = np.random.default_rng(0).random((4, 4))  # four 2x2 images
    >>> plot_samples(samples, Path(tempfile.mkdtemp()) / "samples.png").name
    'samples.png'
    """
    plt = pyplot()
    fig, ax = _show(plt, tile(samples, n_cols),
                    title or "samples: decoder mean at z ~ N(0, I)", image_side(samples.shape[1]))
    ax.set_axis_off()
    return save_figure(plt, fig, path)


def plot_loss_curves(epochs, train_elbo, val_elbo, path, baseline: float | None = None) -> Path:
    """Train and validation ELBO (nats per example) against the epoch.

    The y-range starts at the 5th percentile of the curves (or at
    `baseline`, if lower) so the first epochs' very low ELBO does not
    flatten the rest; `baseline` draws a dashed reference line (e.g. the
    mean-pixel model).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "loss.png"
    >>> plot_loss_curves([1, 2, 3], [-50.0, -40.0, -38.0], [-52.0, -42.0, -41.0], path,
    ...                  baseline=-45.0).name
    'loss.png'
    """
    plt = pyplot()
    epochs = np.asarray(epochs)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    ax.plot(epochs, train_elbo, label="train ELBO (running mean over the epoch)")
    ax.plot(epochs, val_elbo, label="validation ELBO (test split, end of epoch)")
    values = np.concatenate([np.asarray(train_elbo), np.asarray(val_elbo)])
    low, high = np.percentile(values, 5), values.max()
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", label="mean-pixel baseline")
        low, high = min(low, baseline), max(high, baseline)
    margin = 0.05 * (high - low) + 1e-6
    ax.set_ylim(low - margin, high + margin)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("ELBO (nats per example, higher is better)")
    ax.set_title("loss curves")
    ax.grid(alpha=0.3)
    ax.legend(loc="center right")
    return save_figure(plt, fig, path)


def pca_2d(z: Array) -> tuple[Array, Array]:
    """Project rows of `z` onto their first two principal axes (numpy SVD).

    Returns ``(proj, explained)``: proj (n, 2), and the fraction of the
    variance each of the two axes explains.

    Examples
    --------
    >>> z = np.random.default_rng(0).standard_normal((50, 3)) * [3.0, 1.0, 0.1]
    >>> proj, explained = pca_2d(z)
    >>> proj.shape, bool(explained[0] > explained[1]), bool(explained.sum() > 0.99)
    ((50, 2), True, True)
    """
    centred = z - z.mean(axis=0)  # (n, d_z)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    var = s ** 2
    return centred @ vt[:2].T, var[:2] / var.sum()


MAX_LEGEND_CLASSES = 10  # tab10's distinct colours; more labels get a colour bar


def _scatter_by_label(plt, fig, ax, xy: Array, labels: np.ndarray, size: float,
                      alpha: float) -> str:
    """Points coloured by label: a legend of at most MAX_LEGEND_CLASSES
    entries, else one colour bar (a legend of 1000 labels made the
    picture 21,000 pixels tall). Returns the note the title then needs
    ('' with a legend)."""
    classes, index = np.unique(labels, return_inverse=True)  # index: (n,)
    if len(classes) <= MAX_LEGEND_CLASSES:
        for k, label in enumerate(classes):
            keep = index == k
            ax.scatter(xy[keep, 0], xy[keep, 1], s=size, alpha=alpha,
                       color=plt.cm.tab10(k), label=str(label))
        ax.legend(title="digit", markerscale=10 / np.sqrt(size), loc="center left",
                  bbox_to_anchor=(1.0, 0.5))
        return ""
    numeric = labels.dtype.kind in "iuf"
    points = ax.scatter(xy[:, 0], xy[:, 1], c=labels if numeric else index, cmap="viridis",
                        s=size, alpha=alpha)
    fig.colorbar(points, ax=ax, label="label" if numeric else "label, in sorted order")
    return f"\n({len(classes)} labels: colour bar instead of a legend)"


def plot_latent(mu: Array, labels, path) -> Path:
    """Latent means of q(z|x) coloured by label (`labels` may be None).

    With latent_dim 2 the means themselves are drawn; with latent_dim 1,
    each mean against its row of the test split; otherwise their 2-d PCA
    projection (`pca_2d`). Up to `MAX_LEGEND_CLASSES` distinct labels get
    a legend; more get a colour bar (the label's value, or for labels
    that are not numbers its rank in sorted order), which the title
    says, so the picture keeps its size whatever the number of labels.

    Raises
    ------
    ValueError
        If `labels` is not one label per row of `mu`.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> rng = np.random.default_rng(0)
    >>> mu, labels = rng.standard_normal((20, 3)), rng.integers(0, 3, 20)
    >>> plot_latent(mu, labels, Path(tempfile.mkdtemp()) / "latent.png").name
    'latent.png'
    >>> plot_latent(mu[:, :1], labels, Path(tempfile.mkdtemp()) / "latent.png").name
    'latent.png'
    >>> plot_latent(mu, np.arange(20), Path(tempfile.mkdtemp()) / "latent.png").name
    'latent.png'
    """
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(mu),):
            raise ValueError(f"labels: expected shape ({len(mu)},), one per row of mu, "
                             f"got {labels.shape}")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=100)
    names: tuple[str, ...]  # the axes' labels
    if mu.shape[1] == 2:
        xy, names = mu, ("z_1", "z_2")
        title = "latent means mu(x) of the test split"
    elif mu.shape[1] == 1:
        xy, names = np.column_stack([np.arange(len(mu)), mu[:, 0]]), ("test example", "z_1")
        title = "latent means mu(x) of the test split (latent_dim 1)"
    else:
        xy, explained = pca_2d(mu)
        names = tuple(f"PC {k + 1} ({100 * explained[k]:.0f}% of variance)" for k in range(2))
        title = f"latent means of the test split, PCA of {mu.shape[1]} dims"
    size, alpha = (8, 0.8) if len(mu) <= 2000 else (2, 0.5)  # MNIST: 10,000 points
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=alpha)
    else:
        title += _scatter_by_label(plt, fig, ax, xy, labels, size, alpha)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(title)
    return save_figure(plt, fig, path)


def plot_manifold(images: Array, z_values: Array, path) -> Path:
    """Decoded means over a square grid of the 2-d latent plane.

    images : ndarray, shape (n * n, d), row k decoded at
        ``(z_values[k % n], z_values[k // n])``: z_1 varies fastest.
    z_values : ndarray, shape (n,), increasing grid coordinates.

    Drawn with z_1 increasing to the right and z_2 increasing upwards.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> images = np.random.default_rng(0).random((9, 4))  # a 3 x 3 grid of 2x2 images
    >>> z_values = np.array([-1.0, 0.0, 1.0])
    >>> plot_manifold(images, z_values, Path(tempfile.mkdtemp()) / "manifold.png").name
    'manifold.png'
    """
    plt = pyplot()
    n = len(z_values)
    upward = images.reshape(n, n, -1)[::-1].reshape(n * n, -1)  # top row = largest z_2
    side = image_side(images.shape[1])
    title = "decoder mean over the latent plane (5% to 95% prior quantiles)"
    fig, ax = _show(plt, tile(upward, n), title, side)
    cell = side + 1
    centres = [1 + cell * (k + 0.5) for k in range(n)]
    step = max(1, n // 5)
    ax.set_xticks(centres[::step])
    ax.set_xticklabels([f"{v:.2f}" for v in z_values[::step]])
    ax.set_yticks(centres[::step])
    ax.set_yticklabels([f"{v:.2f}" for v in z_values[::-1][::step]])
    ax.set_xlabel("z_1 (prior quantiles)")
    ax.set_ylabel("z_2 (prior quantiles)")
    return save_figure(plt, fig, path)


def plot_interpolations(paths: Array, path, starts: Array | None = None,
                        ends: Array | None = None) -> Path:
    """Decoded points on straight lines in latent space, one line a row.

    paths : ndarray, shape (n_pairs, n_steps, d); optional `starts` and
    `ends` (n_pairs, d), the two input digits, are drawn at either end
    beyond a grey gap.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> rng = np.random.default_rng(0)
    >>> paths = rng.random((2, 5, 4))  # 2 lines of 5 steps, 2x2 images
    >>> path = Path(tempfile.mkdtemp()) / "interp.png"
    >>> plot_interpolations(paths, path, paths[:, 0], paths[:, -1]).name
    'interp.png'
    """
    plt = pyplot()
    n_pairs, n_steps, d = paths.shape
    gap = np.full((n_pairs, 1, d), 0.5)
    parts = [paths]
    if starts is not None:
        parts = [starts[:, None, :], gap] + parts
    if ends is not None:
        parts = parts + [gap, ends[:, None, :]]
    rows = np.concatenate(parts, axis=1)  # (n_pairs, n_cols, d)
    title = "decoded along the line between two test digits' latent means"
    if starts is not None:
        title += "\n(inputs at either end)"
    fig, ax = _show(plt, tile(rows.reshape(-1, d), rows.shape[1]), title, image_side(d))
    ax.set_axis_off()
    return save_figure(plt, fig, path)
