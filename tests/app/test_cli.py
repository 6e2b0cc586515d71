"""Tests of numpyvae/app/cli.py, numpyvae/__main__.py and numpyvae/app/runs.py: the
``numpyvae train`` job end to end, its errors, interrupt and resume."""

import csv
import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import numpyvae
from numpyvae.app import run_folder, run_pictures, runs
from numpyvae.app.cli import PICTURES_SKIPPED, main
from numpyvae.checkpoint import load_checkpoint
from numpyvae.train import HISTORY_KEYS, Trainer

FAST = ["--hidden", "16", "--batch-size", "128"]  # 12 steps an epoch on the digits
METRIC_KEYS = ("config", "epochs", "seconds", "train_elbo", "val_elbo", "val_elbo_se",
               "val_log_lik", "val_kl", "baseline_mean_pixel")


def read_history(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_numbers(out: Path, epochs: int) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(METRIC_KEYS) <= set(metrics)
    for key in METRIC_KEYS[2:]:
        assert math.isfinite(metrics[key]), key
    assert metrics["epochs"] == epochs
    assert metrics["val_elbo"] == pytest.approx(metrics["val_log_lik"] - metrics["val_kl"])
    rows = read_history(out / "history.csv")
    assert len(rows) == epochs and tuple(rows[0]) == HISTORY_KEYS
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    assert float(rows[-1]["val_elbo"]) == metrics["val_elbo"]
    assert load_checkpoint(out / "checkpoint.npz").trainer_state["epoch"] == epochs
    return metrics


def test_train_writes_numbers_checkpoint_and_pictures(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason='needs matplotlib: pip install "numpyvae[viz]"')
    out = tmp_path / "run"
    assert main(["train", "--epochs", "3", "--out", str(out), *FAST]) == 0
    metrics = check_numbers(out, 3)
    assert metrics["config"]["latent_dim"] == 2 and metrics["config"]["hidden"] == [16]
    # the trained model beats nothing-learned noise but not the entropy floor
    assert -60 < metrics["val_elbo"] < -13
    for name in run_folder.PICTURES.values():
        data = (out / name).read_bytes()
        assert data[:4] == b"\x89PNG" and len(data) > 1000, name
    printed = capsys.readouterr().out
    assert "val ELBO" in printed and str(out) in printed


def test_python_dash_m_entry_point_with_no_plots(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(Path(numpyvae.__file__).parents[1]))
    done = subprocess.run([sys.executable, "-m", "numpyvae", "train", "--epochs", "2",
                           "--out", str(out), "--no-plots", *FAST],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    check_numbers(out, 2)
    assert not list(out.glob("*.png"))
    assert "pictures skipped" not in done.stdout


def test_missing_matplotlib_still_writes_numbers(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--out", str(out), *FAST]) == 0
    check_numbers(out, 1)
    assert not list(out.glob("*.png"))
    lines = capsys.readouterr().out.splitlines()
    assert lines.count(PICTURES_SKIPPED) == 1
    assert PICTURES_SKIPPED == ('pictures skipped: matplotlib is not installed '
                                '(pip install "numpyvae[viz]")')


def test_own_npz_gaussian_float64_linear_latent_3(tmp_path):
    (x_train, _), (x_test, _) = numpyvae.datasets.load_digits()
    data = tmp_path / "mine.npz"
    np.savez(data, x_train=x_train[:300], x_test=x_test[:60])  # no labels
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--epochs", "2", "--out", str(out), "--hidden", "",
            "--latent-dim", "3", "--likelihood", "gaussian", "--sigma", "0.5",
            "--dtype", "float64", "--batch-size", "50", "--no-plots"]
    assert main(args) == 0
    metrics = check_numbers(out, 2)
    assert metrics["model"]["dtype"] == "float64" and metrics["model"]["hidden"] == []
    assert metrics["n_train"] == 300 and metrics["n_test"] == 60
    assert metrics["baseline_mean_pixel"] == pytest.approx(
        runs.mean_pixel_baseline(x_train[:300], x_test[:60], "gaussian", 0.5))


def state_of(out: Path):
    """Everything a run leaves behind, except wall-clock seconds."""
    ckpt = load_checkpoint(out / "checkpoint.npz")
    history = [{k: v for k, v in row.items() if k != "seconds"}
               for row in ckpt.trainer_state["history"]]
    metrics = json.loads((out / "metrics.json").read_text())
    metrics.pop("seconds")
    return ckpt.arrays, ckpt.trainer_state["rng"], history, metrics


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, capsys, monkeypatch):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    args = ["train", "--epochs", "3", *FAST, "--no-plots", "--seed", "7"]
    assert main([*args, "--out", str(whole)]) == 0

    original_step = Trainer.train_step

    def interrupt_in_epoch_2(self, xb):
        if self.epochs_done == 1 and self.steps_done == 5:
            raise KeyboardInterrupt
        return original_step(self, xb)

    monkeypatch.setattr(Trainer, "train_step", interrupt_in_epoch_2)
    assert main([*args, "--out", str(parts)]) == 130
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "checkpoint saved at epoch 1, step 5" in message
    assert not (parts / "metrics.json").exists()
    monkeypatch.setattr(Trainer, "train_step", original_step)

    command = shlex.split(message.split("resume with: ")[1])
    assert command[:2] == ["numpyvae", "train"]
    assert main(command[1:]) == 0
    arrays_w, rng_w, history_w, metrics_w = state_of(whole)
    arrays_p, rng_p, history_p, metrics_p = state_of(parts)
    assert sorted(arrays_w) == sorted(arrays_p)
    for name in arrays_w:
        np.testing.assert_array_equal(arrays_p[name], arrays_w[name], err_msg=name)
    assert (rng_p, history_p, metrics_p) == (rng_w, history_w, metrics_w)
    check_numbers(parts, 3)


def test_resume_to_more_epochs_continues_the_history(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", *FAST, "--no-plots", "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "--epochs", "2", "--no-plots"]) == 0
    check_numbers(out, 2)


@pytest.mark.parametrize("flags, named", [
    (["--epochs", "-3"], "--epochs"),
    (["--likelihood", "poisson"], "--likelihood"),
    (["--hidden", "128,x"], "--hidden"),
    (["--data", "MISSING"], "--data"),
    (["--lr", "-1"], "lr"),
    (["--sigma", "0.5"], "sigma"),  # only for the gaussian decoder
    (["--resume", "MISSING"], "--resume"),
])
def test_bad_flags_exit_2_naming_the_argument(tmp_path, capsys, flags, named):
    flags = [str(tmp_path / "nothing.npz") if f == "MISSING" else f for f in flags]
    assert main(["train", "--out", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err
    assert named in err and "error" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_resume_refuses_a_changed_setting(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", *FAST, "--no-plots", "--out", str(out)]) == 0
    capsys.readouterr()  # the training's own output (a tqdm bar on stderr, if installed)
    assert main(["train", "--resume", str(out), "--latent-dim", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("numpyvae: error: --latent-dim: the run in") and err.count("\n") == 1


def test_mean_pixel_baseline_known_values():
    x = np.full((4, 3), 0.5)
    assert runs.mean_pixel_baseline(x, x) == pytest.approx(3 * math.log(0.5))
    # Gaussian at the mean: only the normaliser is left
    assert runs.mean_pixel_baseline(x, x, "gaussian", 2.0) == pytest.approx(
        -1.5 * math.log(2 * math.pi * 4.0))
    # a pixel never inked in training is clipped, not -inf
    assert math.isfinite(runs.mean_pixel_baseline(np.zeros((2, 3)), np.ones((1, 3))))


def test_latent_grid_and_lines():
    z_values, z = run_pictures.latent_grid(3)
    np.testing.assert_allclose(z_values, [-1.6448536, 0.0, 1.6448536], atol=1e-6)
    np.testing.assert_array_equal(z[:3, 1], z_values[0])  # z_1 varies fastest
    np.testing.assert_array_equal(z[:3, 0], z_values)
    a, b = np.zeros((2, 2)), np.array([[1.0, 2.0], [-4.0, 0.0]])
    line = run_pictures.line_latents(a, b, 5)
    assert line.shape == (2, 5, 2)
    np.testing.assert_allclose(line[:, 0], a)
    np.testing.assert_allclose(line[:, -1], b)
    np.testing.assert_allclose(line[1, 2], [-2.0, 0.0])


def test_pick_examples_cycles_through_classes():
    labels = np.array([3, 1, 1, 3, 2, 1])
    np.testing.assert_array_equal(run_pictures.pick_examples(labels, 5), [1, 4, 0, 2, 3])
    np.testing.assert_array_equal(run_pictures.pick_examples(None, 3), [0, 1, 2])


def test_version_prints_the_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"numpyvae {numpyvae.__version__}\n"


def test_train_without_tqdm_prints_a_few_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    out = tmp_path / "run"
    assert main(["train", "--epochs", "41", "--hidden", "8", "--batch-size", "256",
                 "--no-plots", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    # epoch 1, every ceil(41 / 20) = 3 epochs, the last; then the summary
    assert [line.split(":")[0] for line in lines[:-2]] == \
        ["epoch 1/41"] + [f"epoch {e}/41" for e in range(3, 41, 3)] + ["epoch 41/41"]
    assert len(lines) == 17 <= 40
    metrics = check_numbers(out, 41)
    assert lines[-2].startswith(f"val ELBO {metrics['val_elbo']:.2f} ± "
                                f"{metrics['val_elbo_se']:.2f} nats per example")


@pytest.mark.parametrize("tqdm_installed", [True, False])
def test_train_quiet_prints_only_the_summary(tmp_path, capsys, monkeypatch, tqdm_installed):
    if not tqdm_installed:
        monkeypatch.setitem(sys.modules, "tqdm", None)
    out = tmp_path / "run"
    assert main(["train", "--epochs", "2", *FAST, "--no-plots", "--quiet",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert captured.err == "" and len(lines) == 2
    assert lines[0].startswith("val ELBO ") and lines[1].startswith(f"wrote {out}/")
