"""Every verb of the ``numpyvae`` command on a run with two stochastic
layers (``--latent-dims``): train, resume, evaluate, sample, encode and
gradcheck, each through the model protocol (numpyvae/app/cli.py,
cli_gradcheck.py, runs.py, export.py, checkpoint.py). Tiny widths and
two epochs on the embedded digits keep it quick."""

import json

import numpy as np
import pytest

import numpyvae
from numpyvae import HierarchicalVAE
from numpyvae.app import run_folder
from numpyvae.app.cli import main
from numpyvae.app.cli_gradcheck import TWO_LAYER_CONFIGS
from numpyvae.checkpoint import load_checkpoint
from numpyvae.datasets import load_digits

TINY = ["--latent-dims", "4,2", "--hidden", "8", "--batch-size", "128", "--quiet"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A two-layer run folder: two epochs on the digits, hidden2 left to its default."""
    folder = tmp_path_factory.mktemp("two_layers") / "run"
    assert main(["train", "--epochs", "2", *TINY, "--no-plots", "--out", str(folder)]) == 0
    return folder


def test_train_writes_a_two_layer_run(run):
    model = numpyvae.load(run / run_folder.CHECKPOINT_FILE)
    assert isinstance(model, HierarchicalVAE)
    assert model.config.latent_dims == (4, 2) and model.config.hidden2 == (2, 2)
    metrics = json.loads((run / run_folder.METRICS_FILE).read_text())
    assert metrics["epochs"] == 2 and metrics["model"]["model"] == "hierarchical"
    assert metrics["config"]["latent_dims"] == [4, 2] and metrics["config"]["hidden2"] is None
    assert -60 < metrics["val_elbo"] < -13


def test_train_draws_the_pictures_of_a_two_layer_run(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", *TINY, "--latent-dims", "2,2", "--out",
                 str(out)]) == 0
    for name in run_folder.PICTURES.values():  # z1 of 2 units: the manifold too
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name


def test_resume_continues_a_two_layer_run_with_its_default_hidden2(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", *TINY, "--no-plots", "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "--epochs", "2", "--no-plots",
                 "--quiet"]) == 0
    assert load_checkpoint(out / run_folder.CHECKPOINT_FILE).trainer_state["epoch"] == 2
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--epochs", "3", "--hidden2", "5"]) == 2
    assert capsys.readouterr().err.startswith("numpyvae: error: --hidden2: the run in")


@pytest.mark.parametrize("flags, named", [
    (["--latent-dims", "4"], "--latent-dims: expected the two sizes"),
    (["--hidden2", "4"], "--hidden2: only used with --latent-dims"),
    (["--latent-dims", "4,2", "--sigma", "0.5"], "--sigma: the two-layer model"),
    (["--latent-dims", "4,2", "--beta", "0.5"], "beta: the two-layer model"),
    (["--latent-dims", "4,2", "--likelihood", "gaussian"], "likelihood: the two-layer model"),
])
def test_what_the_two_layer_model_cannot_do_is_refused(tmp_path, capsys, flags, named):
    assert main(["train", "--epochs", "1", "--no-plots", "--out", str(tmp_path / "R"),
                 *flags]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1
    assert not (tmp_path / "R" / run_folder.CHECKPOINT_FILE).exists()


def test_evaluate_scores_a_two_layer_run(run, capsys):
    assert main(["evaluate", str(run), "--k", "8", "--limit", "40", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("test ELBO ") and "IWAE-8 log p(x)" in out
    metrics = json.loads((run / run_folder.METRICS_FILE).read_text())
    assert metrics["eval_k"] == 8 and metrics["eval_n"] == 40
    assert metrics["test_iwae_k"] >= metrics["test_elbo"] - 1.0  # IWAE-8 near or above
    assert len(metrics["test_active_units_per_layer"]) == 2


def test_sample_writes_the_decoded_draws_of_a_two_layer_run(run, tmp_path, capsys):
    out = tmp_path / "s.npy"
    assert main(["sample", str(run), "--n", "12", "--out", str(out), "--seed", "4"]) == 0
    x = np.load(out)
    model = numpyvae.load(run / run_folder.CHECKPOINT_FILE)
    np.testing.assert_array_equal(x, model.sample(12, np.random.default_rng(4)))
    assert x.shape == (12, 64) and ((x > 0) & (x < 1)).all()
    draws = tmp_path / "d.csv"
    assert main(["sample", str(run), "--n", "5", "--out", str(draws), "--draws"]) == 0
    assert set(np.unique(np.loadtxt(draws, delimiter=",", skiprows=1))) <= {0.0, 1.0}


def test_encode_writes_q_of_z1_for_a_two_layer_run(run, tmp_path, capsys):
    out = tmp_path / "z.npz"
    assert main(["encode", str(run), "--out", str(out)]) == 0
    assert "shape (360, 4)" in capsys.readouterr().out
    (_, _), (x_test, y_test) = load_digits()
    mu1, log_var1, _, _ = numpyvae.load(run / run_folder.CHECKPOINT_FILE).encode_layers(x_test)
    with np.load(out) as saved:
        np.testing.assert_array_equal(saved["mu"], mu1)
        np.testing.assert_array_equal(saved["log_var"], log_var1)
        np.testing.assert_array_equal(saved["labels"], y_test)


def test_gradcheck_checks_the_two_layer_model(capsys):
    # the element-wise mode: tests/app/test_cli_gradcheck.py
    assert main(["gradcheck", "--latent-dims", "4,2", "--directional"]) == 0
    out = capsys.readouterr().out
    assert out.count("two layers, latent_dims=[4, 2]") == 2 * len(TWO_LAYER_CONFIGS)
    assert " NO" not in out and "all gradients pass" in out
