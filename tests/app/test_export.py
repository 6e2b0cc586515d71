"""numpyvae/app/export.py and the `numpyvae sample` and `numpyvae encode` verbs."""

import sys

import numpy as np
import pytest

import numpyvae
from numpyvae.app import export
from numpyvae.app.cli import main
from numpyvae.datasets import load_digits


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder of one quick epoch on the digits."""
    folder = tmp_path_factory.mktemp("export") / "run"
    assert main(["train", "--epochs", "1", "--hidden", "8", "--no-plots", "--quiet",
                 "--out", str(folder)]) == 0
    return folder


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_sample_writes_decoder_means_seeded(run, tmp_path, capsys):
    a, b, c = tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "c.npy"
    assert main(["sample", str(run), "--n", "12", "--out", str(a)]) == 0
    assert main(["sample", str(run), "--n", "12", "--out", str(b), "--seed", "0"]) == 0
    assert main(["sample", str(run), "--n", "12", "--out", str(c), "--seed", "1"]) == 0
    x = np.load(a)
    assert x.shape == (12, 64) and x.dtype == np.float32
    assert ((x > 0) & (x < 1)).all() and len(np.unique(x)) > 2  # means, not 0/1 draws
    np.testing.assert_array_equal(x, np.load(b))
    assert not np.array_equal(x, np.load(c))
    model = numpyvae.load(run / "checkpoint.npz")
    np.testing.assert_array_equal(x, model.sample(12, np.random.default_rng(0)))
    assert f"wrote {a}" in capsys.readouterr().out and leftovers(tmp_path) == []


def test_sample_draws_binary_pixels_and_writes_csv(run, tmp_path):
    out = tmp_path / "draws.csv"
    assert main(["sample", str(run), "--n", "5", "--out", str(out), "--draws"]) == 0
    lines = out.read_text().splitlines()
    assert lines[0].split(",")[:2] == ["x0", "x1"] and len(lines) == 6
    values = np.loadtxt(out, delimiter=",", skiprows=1)
    assert values.shape == (5, 64) and set(np.unique(values)) <= {0.0, 1.0}


def test_sample_png_is_a_picture(run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "samples.png"
    assert main(["sample", str(run), "--n", "64", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and leftovers(tmp_path) == []


def test_sample_png_without_matplotlib_is_one_line(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "samples.png"
    assert main(["sample", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("numpyvae: error: --out: a .png needs matplotlib")
    assert 'pip install "numpyvae[viz]"' in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("verb, name", [("sample", "old.npy"), ("encode", "old.npz")])
def test_an_existing_file_is_kept_unless_overwrite(run, tmp_path, capsys, verb, name):
    out = tmp_path / name
    out.write_bytes(b"my work")
    assert main([verb, str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "--overwrite" in err and err.count("\n") == 1
    assert out.read_bytes() == b"my work"
    assert main([verb, str(run), "--out", str(out), "--overwrite"]) == 0
    assert out.read_bytes() != b"my work" and leftovers(tmp_path) == []


@pytest.mark.parametrize("verb, name", [("sample", "s.gif"), ("encode", "z.npy")])
def test_an_unknown_suffix_is_refused(run, tmp_path, capsys, verb, name):
    assert main([verb, str(run), "--out", str(tmp_path / name)]) == 2
    assert "expected a file name ending in" in capsys.readouterr().err


def test_encode_writes_the_latent_means_of_the_test_split(run, tmp_path):
    out = tmp_path / "z.npz"
    assert main(["encode", str(run), "--out", str(out)]) == 0
    (_, _), (x_test, y_test) = load_digits()
    mu, log_var = numpyvae.load(run / "checkpoint.npz").encode(x_test)
    with np.load(out) as saved:
        np.testing.assert_array_equal(saved["mu"], mu)
        np.testing.assert_array_equal(saved["log_var"], log_var)
        np.testing.assert_array_equal(saved["labels"], y_test)


def test_encode_train_split_as_csv(run, tmp_path):
    out = tmp_path / "z.csv"
    assert main(["encode", str(run), "--out", str(out), "--split", "train"]) == 0
    header = out.read_text().splitlines()[0]
    assert header == "mu_0,mu_1,log_var_0,log_var_1,label"
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    (x_train, y_train), _ = load_digits()
    assert table.shape == (len(x_train), 5)
    np.testing.assert_array_equal(table[:, 4], y_train)


def test_encode_all_matches_encode_in_one_batch():
    model = numpyvae.VAE(6, 3, hidden=(5,), rng=0)
    x = np.random.default_rng(1).random((7, 6))
    mu, log_var = export.encode_all(model, x, batch_size=3)
    np.testing.assert_allclose(mu, model.encode(x)[0], rtol=1e-6)
    np.testing.assert_allclose(log_var, model.encode(x)[1], rtol=1e-6)


def test_gaussian_draws_scatter_around_the_means():
    model = numpyvae.VAE(3, 2, hidden=(), likelihood="gaussian", sigma=0.5, rng=0)
    means = export.draw_samples(model, 4000, rng=2)
    x = export.draw_samples(model, 4000, rng=2, draws=True)
    assert np.std(x - means) == pytest.approx(0.5, rel=0.05)


@pytest.mark.parametrize("verb, name", [("sample", "s.npy"), ("encode", "z.npz")])
def test_a_folder_without_a_run_is_one_line(tmp_path, capsys, verb, name):
    out = tmp_path / name
    assert main([verb, str(tmp_path / "absent"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("numpyvae: error: ") and err.count("\n") == 1
    assert not out.exists()


# ------------------------------------------------ a two-layer model, through the protocol

def two_layer_model():
    return numpyvae.HierarchicalVAE(6, (3, 2), hidden=(5,), hidden2=(4,), rng=0)


def test_draw_samples_of_a_two_layer_model_are_its_seeded_means_or_draws():
    model = two_layer_model()
    means = export.draw_samples(model, 50, rng=3)
    np.testing.assert_array_equal(means, model.sample(50, np.random.default_rng(3)))
    assert means.shape == (50, 6) and means.dtype == np.float32
    assert ((means > 0) & (means < 1)).all() and len(np.unique(means)) > 2
    x = export.draw_samples(model, 50, rng=3, draws=True)
    assert x.shape == (50, 6) and set(np.unique(x)) <= {0.0, 1.0}
    np.testing.assert_array_equal(x, export.draw_samples(model, 50, rng=3, draws=True))


def test_encode_all_of_a_two_layer_model_gives_q_of_z1_in_batches():
    model = two_layer_model()
    x = np.random.default_rng(1).random((7, 6))
    mu, log_var = export.encode_all(model, x, batch_size=3)
    mu1, log_var1, _, _ = model.encode_layers(x)
    assert mu.shape == log_var.shape == (7, 3)
    np.testing.assert_allclose(mu, mu1, rtol=1e-6)
    np.testing.assert_allclose(log_var, log_var1, rtol=1e-6)


def test_two_layer_latents_and_samples_are_written(tmp_path):
    model = two_layer_model()
    mu, log_var = export.encode_all(model, np.full((4, 6), 0.5))
    path = export.write_latents(tmp_path / "z.csv", mu, log_var, labels=np.arange(4))
    assert path.read_text().splitlines()[0] == \
        "mu_0,mu_1,mu_2,log_var_0,log_var_1,log_var_2,label"
    samples = export.draw_samples(model, 3, rng=0)
    np.testing.assert_array_equal(np.load(export.write_samples(tmp_path / "s.npy", samples)),
                                  samples)
