"""Tests of numpyvae/app/runs.py, run_folder.py and run_trainer.py: a run
folder belongs to one run, and its records (config.json, metrics.json,
history.csv, pictures) describe the model in its checkpoint. Through
``numpyvae train`` where a user meets it."""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import numpyvae
from numpyvae.app import run_folder, run_trainer
from numpyvae.app.cli import main
from numpyvae.app.settings import DEFAULTS
from numpyvae.checkpoint import load_checkpoint, save
from numpyvae.train import HISTORY_KEYS

FAST = ["--hidden", "16", "--batch-size", "128", "--no-plots"]


def train(capsys, *args) -> tuple[int, str]:
    """Exit status and stderr of ``numpyvae train ARGS`` (earlier output dropped)."""
    capsys.readouterr()
    code = main(["train", *args])
    return code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("numpyvae: error: "), err
    assert "Traceback" not in err
    return lines[0]


def run(tmp_path, capsys, name="run", *args) -> Path:
    out = tmp_path / name
    assert train(capsys, "--epochs", "2", *FAST, "--out", str(out), *args)[0] == 0
    return out


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


# ------------------------------------------------ 1. a run is never replaced

def test_a_finished_run_is_not_replaced(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "R"
    assert train(capsys, "--epochs", "1", "--hidden", "16", "--batch-size", "128",
                 "--out", str(out))[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, err = train(capsys, "--epochs", "1", *FAST, "--latent-dim", "8", "--out", str(out))
    assert code == 2
    line = one_error_line(err)
    assert "already holds a finished run of 1 epochs" in line
    assert f"--resume {out}" in line and "--overwrite" in line and "--out" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_overwrite_replaces_the_run_and_its_pictures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "R"
    assert train(capsys, "--epochs", "1", "--hidden", "16", "--batch-size", "128",
                 "--out", str(out))[0] == 0
    assert (out / "manifold.png").is_file()
    (out / "notes.txt").write_text("mine")  # not a file of the run: kept
    assert train(capsys, "--epochs", "1", *FAST, "--latent-dim", "3", "--out", str(out),
                 "--overwrite")[0] == 0
    assert not list(out.glob("*.png"))  # the old run's pictures went with it
    assert run_folder.read_json(out / "config.json")["latent_dim"] == 3
    assert load_checkpoint(out / "checkpoint.npz").model.config.latent_dim == 3
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / run_folder.LOCK_FILE).exists()


def test_the_default_folder_depends_on_the_data_and_is_refused_when_occupied(
        tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert train(capsys, "--epochs", "1", *FAST)[0] == 0
    assert (tmp_path / "runs" / "digits" / "metrics.json").is_file()
    code, err = train(capsys, "--epochs", "1", *FAST)
    assert code == 2 and "runs/digits already holds a finished run" in one_error_line(err)
    own = tmp_path / "mine.npz"
    (x_train, _), (x_test, _) = numpyvae.datasets.load_digits()
    np.savez(own, x_train=x_train[:200], x_test=x_test[:50])
    assert train(capsys, "--epochs", "1", *FAST, "--data", str(own))[0] == 0
    assert (tmp_path / "runs" / "mine" / "metrics.json").is_file()
    assert run_folder.default_out("mnist") == Path("runs/mnist")


def test_an_empty_out_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = train(capsys, "--epochs", "1", *FAST, "--out", "")
    assert code == 2 and "--out: expected a folder, got ''" in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------ 2. one writer at a time

def test_a_second_training_into_a_running_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "R"
    env = dict(os.environ, PYTHONPATH=str(Path(numpyvae.__file__).parents[1]),
               OPENBLAS_NUM_THREADS="1")
    first = subprocess.Popen([sys.executable, "-m", "numpyvae", "train", "--epochs", "10000",
                              *FAST, "--out", str(out)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):  # until the first one holds the folder and has a checkpoint
            if (out / "checkpoint.npz").is_file():
                break
            time.sleep(0.05)
        assert int((out / run_folder.LOCK_FILE).read_text().split()[0]) == first.pid
        for extra in ([], ["--overwrite"]):
            code, err = train(capsys, "--epochs", "1", *FAST, "--out", str(out), *extra)
            assert code == 2
            assert f"is in use by process {first.pid}" in one_error_line(err)
        code, err = train(capsys, "--resume", str(out))
        assert code == 2 and f"in use by process {first.pid}" in one_error_line(err)
        config = run_folder.read_json(out / "config.json")
        assert config["epochs"] == 10000 and config["hidden"] == [16]
    finally:
        first.kill()
        first.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    out = run(tmp_path, capsys)
    (out / run_folder.LOCK_FILE).write_text(f"{dead_pid()}\n")  # as a kill -9 leaves it
    assert train(capsys, "--resume", str(out), "--epochs", "3")[0] == 0
    assert run_folder.read_json(out / "metrics.json")["epochs"] == 3
    assert not (out / run_folder.LOCK_FILE).exists()


def test_lock_folder_refuses_a_held_folder_naming_the_pid(tmp_path):
    with run_folder.lock_folder(tmp_path):
        with pytest.raises(ValueError, match=f"in use by process {os.getpid()}"):
            with run_folder.lock_folder(tmp_path):
                pass
    with run_folder.lock_folder(tmp_path):  # released
        pass


# ------------------------------------------------ 3. records agree with the checkpoint

@pytest.mark.parametrize("key, value", [("latent_dim", 8), ("lr", 0.1), ("beta", 2.0),
                                        ("seed", 5)])
def test_resume_refuses_an_edited_config(tmp_path, capsys, key, value):
    out = run(tmp_path, capsys)
    config = run_folder.read_json(out / "config.json")
    run_folder.write_json(out / "config.json", dict(config, **{key: value}))
    code, err = train(capsys, "--resume", str(out), "--epochs", "3")
    assert code == 2
    line = one_error_line(err)
    assert "config.json does not describe the model in" in line and f"{key} (" in line
    assert load_checkpoint(out / "checkpoint.npz").trainer_state["epoch"] == 2


def test_resume_to_fewer_epochs_than_done_is_refused(tmp_path, capsys):
    out = tmp_path / "R"
    assert train(capsys, "--epochs", "3", *FAST, "--out", str(out))[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, err = train(capsys, "--resume", str(out), "--epochs", "2")
    assert code == 2 and "has done 3 epochs, got 2" in one_error_line(err)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert train(capsys, "--resume", str(out), "--epochs", "3")[0] == 0  # nothing to do
    assert run_folder.read_json(out / "config.json")["epochs"] == 3
    assert run_folder.read_json(out / "metrics.json")["epochs"] == 3


def test_the_checkpoint_stores_the_run_settings(tmp_path, capsys):
    out = run(tmp_path, capsys, "R", "--seed", "4")
    stored = run_trainer.stored_settings(load_checkpoint(out / "checkpoint.npz"))
    assert stored == run_folder.read_json(out / "config.json") and stored["seed"] == 4


def test_training_further_removes_the_records_of_the_older_model(tmp_path, capsys,
                                                                 monkeypatch):
    out = run(tmp_path, capsys)
    from numpyvae.train import Trainer
    monkeypatch.setattr(Trainer, "train_step", lambda self, xb: (_ for _ in ()).throw(
        KeyboardInterrupt))
    assert train(capsys, "--resume", str(out), "--epochs", "4")[0] == 130
    # metrics.json and history.csv said 2 epochs; they are gone until the run ends
    assert not (out / "metrics.json").exists() and not (out / "history.csv").exists()
    assert run_folder.read_json(out / "config.json")["epochs"] == 4


# ------------------------------------------------ 7. memory estimated before allocating

ABSURD = [["--hidden", "3000000000"], ["--latent-dim", "100000000000"],
          ["--objective", "iwae", "--k", "100000000"],
          ["--latent-dims", "4,2", "--hidden2", "20000000"],  # reached 22 GiB once
          ["--latent-dims", "4,2", "--hidden2", "100000000"],
          ["--latent-dims", "100000000,2"]]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM in /proc")
@pytest.mark.parametrize("flags", ABSURD, ids=["hidden", "latent-dim", "iwae-k", "hidden2",
                                               "hidden2-1e8", "latent-dims"])
def test_absurd_sizes_are_refused_with_the_number_in_bounded_memory(tmp_path, flags):
    script = ("import re, resource, sys\n"
              "resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))\n"
              "from numpyvae.app.cli import main\n"
              "code = main(sys.argv[1:])\n"  # then the peak resident KiB of this program
              "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])\n"
              "sys.exit(code)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(numpyvae.__file__).parents[1]),
               OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", script, "train", *flags, "--no-plots",
                           "--out", str(tmp_path / "R")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    line = one_error_line(done.stderr)
    assert "this run needs about" in line and "GiB" in line and "is available" in line
    sizes = [flag for flag in flags if flag.startswith("--") and flag != "--objective"]
    assert all(flag in line.split(": this run")[0] for flag in sizes), line  # the flags named
    assert int(done.stdout.split()[-1]) < 400 * 1024  # peak resident KiB
    assert not (tmp_path / "R").exists()


def test_the_estimate_counts_parameters_adam_and_activations():
    settings = dict(DEFAULTS, hidden=[100], latent_dim=10, batch_size=50, k=4,
                    objective="iwae")
    parts = run_trainer.estimate_memory(settings, 64)
    n_params = 64 * 100 + 100 + 2 * (100 * 10 + 10) + 10 * 100 + 100 + 100 * 64 + 64
    assert parts["parameters"] == 4 * n_params and parts["optimizer"] == 12 * n_params
    assert parts["activations"] == 2 * 4 * 1000 * (400 + 60 + 256)  # validation batch
    with pytest.raises(ValueError, match="needs about .* but 1 MiB is available"):
        run_trainer.check_memory(settings, 64, available=2**20)


def test_the_estimate_counts_the_parameters_of_a_two_layer_run():
    settings = dict(DEFAULTS, hidden=[10, 8], latent_dims=[6, 3], hidden2=None)
    parts = run_trainer.estimate_memory(settings, 64)
    model = numpyvae.HierarchicalVAE(64, (6, 3), hidden=(10, 8), hidden2=(3, 3))
    assert parts["parameters"] == 4 * sum(p.size for p in model.params.values())
    # per row: 4 x every hidden width, 6 x the noise of z1 and z2, 4 x the pixels
    assert parts["activations"] == 2 * 4 * 1000 * (4 * (18 + 6) + 6 * 9 + 4 * 64)


def test_the_model_settings_come_from_the_config_of_either_model():
    for model in (numpyvae.VAE(64, 3, hidden=(8,)),
                  numpyvae.HierarchicalVAE(64, (4, 2), hidden=(8,), hidden2=(5,))):
        settings = dict(DEFAULTS, activation=model.config.activation,
                        **run_trainer.model_settings(model.config.to_dict()))
        rebuilt = run_trainer.new_model(settings, 64, np.random.default_rng(0))
        assert type(rebuilt) is type(model) and rebuilt.config == model.config


# ------------------------------------------------ 10. messages name the file

@pytest.mark.parametrize("text, problem", [("{not json", "not valid JSON"),
                                           ('{"lr": NaN}', "holds NaN"),
                                           ("[1, 2]", "expected a JSON object"),
                                           ('{"lr": "fast"}', "lr: expected a finite number")])
def test_a_bad_config_json_is_named(tmp_path, capsys, text, problem):
    out = run(tmp_path, capsys)
    (out / "config.json").write_text(text)
    code, err = train(capsys, "--resume", str(out), "--epochs", "3")
    assert code == 2
    line = one_error_line(err)
    assert str(out / "config.json") in line and problem in line


def test_evaluate_reads_a_corrupt_metrics_json_first(tmp_path, capsys, monkeypatch):
    out = run(tmp_path, capsys)
    (out / "metrics.json").write_text('{"val_elbo": ')
    import numpyvae.evaluation
    monkeypatch.setattr(numpyvae.evaluation, "evaluate",
                        lambda *a, **k: pytest.fail("evaluated before reading metrics.json"))
    capsys.readouterr()
    assert main(["evaluate", str(out), "--k", "2", "--limit", "5"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(out / "metrics.json") in line and "not valid JSON" in line


# ------------------------------------------------ 11. file modes

def test_the_checkpoint_has_the_mode_of_the_other_files(tmp_path, capsys):
    out = run(tmp_path, capsys)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert modes["checkpoint.npz"] == modes["config.json"] == modes["metrics.json"], modes


# ------------------------------------------------ the metric rename

def test_an_old_run_folder_with_recon_names_still_resumes(tmp_path, capsys):
    out = run(tmp_path, capsys)
    ckpt = load_checkpoint(out / "checkpoint.npz")
    from numpyvae.train import trainer_from_checkpoint
    trainer = trainer_from_checkpoint(ckpt)
    old = {"train_log_lik": "train_recon", "val_log_lik": "val_recon"}
    trainer.history = [{old.get(k, k): v for k, v in row.items()} for row in trainer.history]
    save(trainer.model, out / "checkpoint.npz", trainer=trainer)  # an old checkpoint
    metrics = run_folder.read_json(out / "metrics.json")
    metrics["val_recon"] = metrics.pop("val_log_lik")
    run_folder.write_json(out / "metrics.json", metrics)
    assert train(capsys, "--resume", str(out), "--epochs", "3")[0] == 0
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == HISTORY_KEYS and len(rows) == 3
    assert all(row["val_log_lik"] and row["train_log_lik"] for row in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    assert "val_log_lik" in metrics and "val_recon" not in metrics
    assert run_folder.new_names({"val_recon": 1.0, "epoch": 2}) == {"val_log_lik": 1.0, "epoch": 2}


# ------------------------------------------------ 6. divergence

@pytest.mark.parametrize("lr", ["3", "10"])
def test_divergence_before_a_checkpoint_says_so_and_frees_the_folder(tmp_path, capsys, lr):
    out = tmp_path / "D"
    code, err = train(capsys, "--lr", lr, "--epochs", "30", "--no-plots", "--out", str(out))
    assert code == 2
    line = err.splitlines()[-1]  # after the progress bar, if tqdm is installed
    assert line.startswith("numpyvae: error: training diverged at epoch ")
    assert ", step " in line and "no checkpoint was written" in line
    assert "RuntimeWarning" not in err and "Traceback" not in err
    assert run_folder.describe_run(out) is None  # the next run may start there


# ------------------------------------------------ 4. latent_dim 1

def test_latent_dim_1_draws_its_pictures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "R"
    assert train(capsys, "--epochs", "1", "--hidden", "16", "--batch-size", "128",
                 "--latent-dim", "1", "--out", str(out))[0] == 0
    assert (out / "latent.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "manifold.png").exists()  # latent_dim 2 only
