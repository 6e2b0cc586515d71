"""Tests of numpyvae/app/plots.py: every picture is a non-empty PNG; the
array helpers (tile, pca_2d, image_side) compute what they say."""

import sys

import numpy as np
import pytest

from numpyvae.app import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def mpl():
    """Skip a picture test when the viz extra (matplotlib) is missing."""
    pytest.importorskip("matplotlib", reason='needs matplotlib: pip install "numpyvae[viz]"')


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000


def images(n, d, seed=0):
    return np.random.default_rng(seed).random((n, d)).astype(np.float32)


@pytest.mark.parametrize("d", [64, 784])
def test_image_pictures_are_pngs(mpl, tmp_path, d):
    x = images(12, d)
    assert_png(plots.plot_reconstructions(x, x[::-1], tmp_path / "recon.png"))
    assert_png(plots.plot_samples(x, tmp_path / "samples.png"))
    paths = images(3 * 5, d).reshape(3, 5, d)
    assert_png(plots.plot_interpolations(paths, tmp_path / "interp.png", x[:3], x[3:6]))


def test_manifold_and_curves_are_pngs(mpl, tmp_path):
    z_values = np.linspace(-1.5, 1.5, 6)
    assert_png(plots.plot_manifold(images(36, 64), z_values, tmp_path / "manifold.png"))
    epochs = np.arange(1, 11)
    assert_png(plots.plot_loss_curves(epochs, -30 + np.log(epochs), -31 + np.log(epochs),
                                      tmp_path / "curves.png", baseline=-32.0))


@pytest.mark.parametrize("latent_dim, labelled", [(2, True), (5, False)])
def test_latent_picture_is_png(mpl, tmp_path, latent_dim, labelled):
    rng = np.random.default_rng(1)
    mu = rng.standard_normal((50, latent_dim))
    labels = rng.integers(0, 10, 50) if labelled else None
    assert_png(plots.plot_latent(mu, labels, tmp_path / "latent.png"))


def test_missing_matplotlib_is_one_clear_import_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "numpyvae\[viz\]"'):
        plots.require_matplotlib()
    with pytest.raises(ImportError, match="matplotlib is not installed"):
        plots.plot_samples(images(4, 64), tmp_path / "s.png")
    assert not (tmp_path / "s.png").exists()


def test_tile_places_each_image_in_its_cell():
    x = np.stack([np.full(4, k / 10) for k in range(3)])  # three 2x2 images
    canvas = plots.tile(x, n_cols=2)
    # pad 1: cells start at rows/cols 1 and 4; the empty 4th cell stays grey
    assert canvas.shape == (7, 7)
    np.testing.assert_array_equal(canvas[1:3, 1:3], 0.0)
    np.testing.assert_array_equal(canvas[1:3, 4:6], 0.1)
    np.testing.assert_array_equal(canvas[4:6, 1:3], 0.2)
    np.testing.assert_array_equal(canvas[4:6, 4:6], 0.5)
    assert canvas[0, 0] == 0.5 and canvas[3, 3] == 0.5


def test_tile_clips_to_unit_interval():
    canvas = plots.tile(np.array([[-1.0, 2.0, 0.5, 0.5]]), n_cols=1)
    assert canvas.min() == 0.0 and canvas.max() == 1.0


def test_image_side_rejects_non_square_rows():
    assert plots.image_side(784) == 28
    with pytest.raises(ValueError, match="images: expected rows of side \\* side pixels, got 60"):
        plots.image_side(60)


def test_pca_2d_recovers_a_plane():
    rng = np.random.default_rng(2)
    coords = rng.standard_normal((200, 2)) * [3.0, 1.0]  # (n, 2)
    basis = np.linalg.qr(rng.standard_normal((5, 2)))[0].T  # (2, 5), orthonormal rows
    z = coords @ basis + 7.0  # a plane in 5-d, shifted off the origin
    proj, explained = plots.pca_2d(z)
    assert proj.shape == (200, 2)
    np.testing.assert_allclose(explained.sum(), 1.0, rtol=1e-10)
    assert explained[0] > explained[1]
    # the projection keeps every pairwise distance of the plane
    d_before = np.linalg.norm(z[:, None] - z[None], axis=-1)
    d_after = np.linalg.norm(proj[:, None] - proj[None], axis=-1)
    np.testing.assert_allclose(d_after, d_before, atol=1e-9)


def png_size(path):
    """(width, height) in pixels, from the PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.parametrize("n_labels", [10, 11, 1000])
def test_latent_picture_stays_small_for_many_labels(mpl, tmp_path, n_labels):
    """Beyond MAX_LEGEND_CLASSES labels a colour bar replaces the legend (one
    entry per label made a 1000-label picture 21,326 pixels tall)."""
    rng = np.random.default_rng(3)
    mu = rng.standard_normal((2000, 2))
    labels = np.arange(2000) % n_labels  # every label present
    path = plots.plot_latent(mu, labels, tmp_path / "latent.png")
    width, height = png_size(path)
    assert width <= 1000 and height <= 700  # a 6.4 x 5.6 in figure at 100 dpi, plus its key
    _, few = png_size(plots.plot_latent(mu, labels % 3, tmp_path / "few.png"))
    assert height <= few + 50


def test_latent_picture_says_when_the_legend_is_replaced(mpl, tmp_path, monkeypatch):
    titles = []
    plt = plots.pyplot()
    monkeypatch.setattr(plt.Axes, "set_title", lambda ax, text, **kw: titles.append(text))
    mu = np.random.default_rng(4).standard_normal((100, 3))
    plots.plot_latent(mu, np.arange(100) % 50, tmp_path / "many.png")
    plots.plot_latent(mu, np.arange(100) % plots.MAX_LEGEND_CLASSES, tmp_path / "few.png")
    plots.plot_latent(mu, np.array([f"class {k % 30}" for k in range(100)]),
                      tmp_path / "names.png")
    assert "50 labels: colour bar instead of a legend" in titles[0]
    assert "colour bar" not in titles[1]
    assert "30 labels: colour bar instead of a legend" in titles[2]


def test_latent_labels_must_be_one_per_row(mpl, tmp_path):
    mu = np.zeros((5, 2))
    with pytest.raises(ValueError, match=r"labels: expected shape \(5,\), one per row of mu, "
                                         r"got \(4,\)"):
        plots.plot_latent(mu, np.arange(4), tmp_path / "latent.png")
    assert not (tmp_path / "latent.png").exists()
