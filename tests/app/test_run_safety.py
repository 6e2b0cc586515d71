"""Every verb is safe on a run folder: who holds a folder is whether its
lock is held; evaluate holds it (and prints before it writes); a resumed
run checks its data; records are written whole; older records keep what
their numpyvae did; meaningless flag combinations are errors. Through
the command where a user meets it."""

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import numpyvae
from numpyvae import _progress
from numpyvae.app import run_folder
from numpyvae.app.cli import main
from numpyvae.checkpoint import load_checkpoint, save
from numpyvae.trainer import Trainer, trainer_from_checkpoint

FAST = ["--hidden", "16", "--batch-size", "128", "--no-plots", "--quiet"]
ENV = dict(os.environ, PYTHONPATH=str(Path(numpyvae.__file__).parents[1]),
           OPENBLAS_NUM_THREADS="1")


def command(capsys, *args) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``numpyvae ARGS``."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("numpyvae: error: "), err
    return lines[0]


def trained(tmp_path, capsys, *args, name="run", epochs="2") -> Path:
    out = tmp_path / name
    code, _, err = command(capsys, "train", "--epochs", epochs, *FAST, "--out", str(out), *args)
    assert code == 0, err
    return out


def files(folder: Path) -> dict:
    """Every file under `folder` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture
def training(tmp_path):
    """A `numpyvae train` in another process, holding tmp_path/R, with a checkpoint."""
    out = tmp_path / "R"
    process = subprocess.Popen([sys.executable, "-m", "numpyvae", "train", "--epochs", "100000",
                                *FAST, "--out", str(out)], env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):
            if (out / "checkpoint.npz").is_file():
                break
            time.sleep(0.05)
        assert (out / "checkpoint.npz").is_file()
        yield out, process.pid
    finally:
        process.kill()
        process.wait()


# ------------------------------------------------ 2. evaluate, sample, encode respect the owner

def test_evaluate_refuses_a_run_being_trained_and_touches_nothing(training, capsys):
    out, pid = training
    code, _, err = command(capsys, "evaluate", str(out), "--k", "5", "--limit", "20")
    line = error_line(err)
    assert code == 2 and f"in use by process {pid} (numpyvae train)" in line
    assert not (out / "metrics.json").exists()  # the run's records are its training's


def test_sample_and_encode_read_a_snapshot_of_a_run_being_trained(training, capsys, tmp_path):
    out, _ = training
    code, _, err = command(capsys, "sample", str(out), "--n", "4", "--out",
                           str(tmp_path / "s.npy"))
    assert code == 0, err
    code, _, err = command(capsys, "encode", str(out), "--out", str(tmp_path / "z.npz"))
    assert code == 0, err
    assert np.load(tmp_path / "s.npy").shape == (4, 64)


def test_training_refuses_a_run_being_evaluated(tmp_path, capsys):
    out = trained(tmp_path, capsys)
    with run_folder.lock_folder(out, "RUN_DIR", verb="evaluate"):
        code, _, err = command(capsys, "train", "--resume", str(out), "--epochs", "3")
    assert code == 2 and "(numpyvae evaluate)" in error_line(err)


def test_train_refuses_a_sweep_folder_and_sweep_refuses_a_run_folder(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text("[base]\nepochs = 1\nhidden = [8]\nbatch_size = 256\n[grid]\nseed = [0]\n")
    sweep = tmp_path / "S"
    assert command(capsys, "sweep", str(spec), "--out", str(sweep), "--no-plots",
                   "--quiet")[0] == 0
    before = files(sweep)
    for extra in ([], ["--overwrite"]):
        code, _, err = command(capsys, "train", "--epochs", "1", *FAST, "--out", str(sweep),
                               *extra)
        assert code == 2 and "holds a sweep, not a run" in error_line(err)
    assert files(sweep) == before
    run = trained(tmp_path, capsys)
    before = files(run)
    code, _, err = command(capsys, "sweep", str(spec), "--out", str(run), "--no-plots")
    assert code == 2 and "not a sweep" in error_line(err)
    assert files(run) == before


def test_experiment_refuses_a_run_folder_and_keeps_its_result_unless_overwrite(tmp_path,
                                                                                capsys):
    run = trained(tmp_path, capsys)
    before = files(run)
    code, _, err = command(capsys, "experiment", "jensen", "--out", str(run))
    assert code == 2 and "holds a finished run" in error_line(err)
    assert files(run) == before
    out = tmp_path / "E"
    assert command(capsys, "experiment", "jensen", "--out", str(out))[0] == 0
    result = (out / "result.json").read_bytes()
    code, _, err = command(capsys, "experiment", "jensen", "--out", str(out), "--seed", "1")
    assert code == 2 and "--overwrite" in error_line(err)
    assert (out / "result.json").read_bytes() == result
    assert command(capsys, "experiment", "jensen", "--out", str(out), "--seed", "1",
                   "--overwrite")[0] == 0
    assert json.loads((out / "result.json").read_text())["seed"] == 1


# ------------------------------------------------ 3. --resume is bound to its data

def write_data(path: Path, x_train: np.ndarray, x_test: np.ndarray) -> Path:
    np.savez(path, x_train=x_train, x_test=x_test)
    return path


@pytest.mark.parametrize("swap", ["fewer rows", "more rows", "same shape, other values",
                                  "other test split"])
def test_resume_refuses_other_data_naming_both(tmp_path, capsys, swap):
    rng = np.random.default_rng(0)
    x, x_test = rng.random((300, 16)), rng.random((60, 16))
    data = write_data(tmp_path / "d.npz", x, x_test)
    out = trained(tmp_path, capsys, "--data", str(data), epochs="1")
    before = files(out)
    other = {"fewer rows": (x[:250], x_test), "more rows": (np.vstack([x, x[:50]]), x_test),
             "same shape, other values": (x[::-1], x_test),
             "other test split": (x, x_test[::-1])}[swap]
    write_data(data, *other)
    code, _, err = command(capsys, "train", "--resume", str(out), "--epochs", "2")
    line = error_line(err)
    assert code == 2 and "was trained on data" in line and "now gives" in line
    assert "SHA-256" in line and str(data) in line
    assert files(out) == before
    write_data(data, x, x_test)  # the run's own data back: it resumes
    assert command(capsys, "train", "--resume", str(out), "--epochs", "2")[0] == 0


def test_a_checkpoint_records_its_data_and_metrics_say_so(tmp_path, capsys):
    out = trained(tmp_path, capsys, epochs="1")
    recorded = load_checkpoint(out / "checkpoint.npz").meta["extra"]["data"]
    assert recorded["train"]["shape"] == [1437, 64] and len(recorded["train"]["sha256"]) == 64
    assert json.loads((out / "metrics.json").read_text())["data"] == recorded


def test_an_epoch_begun_on_other_data_is_refused_by_the_trainer():
    x = np.random.default_rng(0).random((40, 4))
    trainer = Trainer(numpyvae.VAE(4, 2, hidden=(3,), dtype="float64"), batch_size=10, rng=0)

    def stop(t):
        if t.steps_done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer.run_epoch(x, on_step=stop)
    for rows in (30, 50):  # the last row repeated, or a ZeroDivisionError, before
        with pytest.raises(ValueError, match="orders 40 examples.* got " + str(rows)):
            trainer.run_epoch(x[np.arange(rows) % 40])


# ------------------------------------------------ 4, 5. records written whole; print first

def test_a_record_cut_by_a_file_size_limit_keeps_the_old_one(tmp_path, capsys):
    out = trained(tmp_path, capsys)
    metrics = (out / "metrics.json").read_bytes()
    assert len(metrics) > 1024
    script = ("import resource, sys\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))\n"
              "from numpyvae.app.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", script, "evaluate", str(out), "--k", "5",
                           "--limit", "20", "--quiet"], capture_output=True, text=True,
                          env=ENV, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "test ELBO" in done.stdout  # the numbers were shown
    assert "not saved" in done.stderr and str(out / "metrics.json") in done.stderr
    assert (out / "metrics.json").read_bytes() == metrics
    assert not list(out.glob(".*.tmp"))
    assert command(capsys, "evaluate", str(out), "--k", "5", "--limit", "20", "--quiet")[0] == 0


@pytest.mark.parametrize("writer", ["write_json", "write_history", "write_csv"])
def test_a_failed_write_leaves_the_old_record_and_no_temporary_file(tmp_path, monkeypatch,
                                                                    writer):
    path = tmp_path / "record"
    path.write_text("the old record")

    def fail(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    call = {"write_json": lambda: run_folder.write_json(path, {"a": 1}),
            "write_history": lambda: run_folder.write_history(path, [{"epoch": 1}]),
            "write_csv": lambda: run_folder.write_csv(path, ["a"], [{"a": 1}])}[writer]
    with pytest.raises(OSError, match="No space"):
        call()
    assert path.read_text() == "the old record"
    assert [p.name for p in tmp_path.iterdir()] == ["record"]


def test_evaluate_on_a_folder_it_cannot_write_prints_then_says_so(tmp_path, capsys,
                                                                  monkeypatch):
    out = trained(tmp_path, capsys)
    before = files(out)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(run_folder, "lock_folder", read_only)
    code, stdout, err = command(capsys, "evaluate", str(out), "--k", "5", "--limit", "20",
                                "--quiet")
    assert code == 1
    assert stdout.startswith("test ELBO") and '"test_iwae_k"' in stdout
    assert "not saved" in err and "Read-only file system" in err
    assert str(out / "metrics.json") in err
    assert files(out) == before


def test_evaluate_of_an_unfinished_run_prints_and_writes_no_record(tmp_path, capsys):
    out = trained(tmp_path, capsys)
    (out / "metrics.json").unlink()  # as an interrupted run leaves its folder
    before = files(out)
    code, stdout, err = command(capsys, "evaluate", str(out), "--k", "5", "--limit", "20",
                                "--quiet")
    assert code == 0 and stdout.startswith("test ELBO")
    assert "unfinished run" in err and "not saved" in err
    assert files(out) == before


# ------------------------------------------------ 6. a lock nobody holds does not block

@pytest.mark.parametrize("pid", ["1", "ppid"])
def test_a_lock_file_nobody_holds_does_not_block_whatever_pid_it_names(tmp_path, capsys, pid):
    live = str(os.getppid()) if pid == "ppid" else pid  # live processes, not the lock's holder
    out = trained(tmp_path, capsys)
    (out / run_folder.LOCK_FILE).write_text(f"{live}\n")  # as kill -9 leaves it
    code, _, err = command(capsys, "train", "--resume", str(out), "--epochs", "3")
    assert code == 0, err
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / run_folder.LOCK_FILE).write_text(f"{live}\n")
    code, _, err = command(capsys, "train", "--epochs", "1", *FAST, "--out", str(fresh))
    assert code == 0, err
    assert command(capsys, "evaluate", str(out), "--k", "3", "--limit", "10", "--quiet")[0] == 0


def test_owner_says_who_holds_a_folder(tmp_path):
    assert run_folder.owner(tmp_path) is None
    with run_folder.lock_folder(tmp_path, verb="evaluate"):
        assert run_folder.owner(tmp_path) == f"process {os.getpid()} (numpyvae evaluate)"
    assert run_folder.owner(tmp_path) is None


# ------------------------------------------------ 8. an older record keeps what its numpyvae did

def test_resuming_a_run_older_than_a_setting_records_what_that_numpyvae_did(tmp_path, capsys):
    out = trained(tmp_path, capsys, epochs="1")
    config = json.loads((out / "config.json").read_text())
    old = {k: v for k, v in config.items() if k not in ("init", "init_output_bias", "binarize")}
    run_folder.write_json(out / "config.json", old)
    ckpt = load_checkpoint(out / "checkpoint.npz")  # its stored settings as old as its config
    save(ckpt.model, out / "checkpoint.npz", trainer=trainer_from_checkpoint(ckpt),
         extra={"settings": old, "data": ckpt.meta["extra"]["data"]})
    code, _, err = command(capsys, "train", "--resume", str(out), "--epochs", "2")
    assert code == 0, err
    recorded = json.loads((out / "config.json").read_text())
    assert (recorded["init"], recorded["init_output_bias"], recorded["binarize"]) == \
        ("he", False, "none")  # before these settings, numpyvae drew He init, bias 0, grey levels
    assert load_checkpoint(out / "checkpoint.npz").meta["extra"]["settings"]["init"] == "he"


# ------------------------------------------------ 9. meaningless combinations are errors

@pytest.mark.parametrize("flags, named", [
    (["--latent-dims", "4,2", "--latent-dim", "7"], "--latent-dim:"),
    (["--hidden2", "5"], "--hidden2:"),
    (["--latent-dims", "4,2", "--sigma", "0.5"], "--sigma:"),
    (["--sigma", "0.5"], "--sigma:"),  # a Bernoulli decoder has no sigma
])
def test_train_refuses_flags_that_mean_nothing_together(tmp_path, capsys, flags, named):
    code, _, err = command(capsys, "train", "--epochs", "1", *FAST, *flags, "--out",
                           str(tmp_path / "R"))
    assert code == 2 and named in error_line(err)
    assert not (tmp_path / "R").exists()


@pytest.mark.parametrize("base", ["hidden2 = [5]", "latent_dims = [4, 2]\nlatent_dim = 7"])
def test_a_sweep_refuses_them_before_any_run(tmp_path, capsys, base):
    spec = tmp_path / "spec.toml"
    spec.write_text(f"[base]\nepochs = 1\n{base}\n[grid]\nseed = [0, 1]\n")
    code, _, err = command(capsys, "sweep", str(spec), "--out", str(tmp_path / "S"))
    assert code == 2 and "spec: run seed=0: --" in error_line(err)
    assert not (tmp_path / "S").exists()


# ------------------------------------------------ 10. the rest

def test_resume_of_a_mid_epoch_checkpoint_must_finish_its_epoch(tmp_path, capsys):
    out = trained(tmp_path, capsys, epochs="1")
    ckpt = load_checkpoint(out / "checkpoint.npz")
    trainer = trainer_from_checkpoint(ckpt)
    x = numpyvae.datasets.load_digits()[0][0]

    def stop(t):
        if t.steps_done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer.run_epoch(x, on_step=stop)
    save(trainer.model, out / "checkpoint.npz", trainer=trainer, extra=ckpt.meta["extra"])
    before = files(out)
    code, _, err = command(capsys, "train", "--resume", str(out), "--epochs", "1")
    assert code == 2 and "inside epoch 2 (step 3)" in error_line(err)
    assert files(out) == before
    assert command(capsys, "train", "--resume", str(out), "--epochs", "2")[0] == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2


def test_a_stdout_that_cannot_print_plus_minus_does_not_stop_training(tmp_path):
    done = subprocess.run([sys.executable, "-m", "numpyvae", "train", "--epochs", "3",
                           "--hidden", "16", "--batch-size", "128", "--no-plots",
                           "--out", str(tmp_path / "R")], capture_output=True, text=True,
                          env=dict(ENV, PYTHONIOENCODING="ascii"), timeout=120)
    assert done.returncode == 0, done.stderr
    assert " +- " in done.stdout and json.loads((tmp_path / "R" / "metrics.json")
                                                .read_text())["epochs"] == 3


def test_a_long_epoch_prints_lines_inside_it_without_tqdm(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setattr(_progress, "STEP_LINE_SECONDS", 0.0)  # every step is "a minute"
    code, stdout, _ = command(capsys, "train", "--epochs", "1", "--hidden", "16",
                              "--batch-size", "500", "--no-plots", "--out", str(tmp_path / "R"))
    inside = [line for line in stdout.splitlines() if "left in the epoch" in line]
    assert code == 0 and len(inside) == 3  # ceil(1437 / 500) steps
    assert inside[0].startswith("epoch 1/1: 500 of 1,437 examples, train ELBO ")


# ------------------------------------------------ one vocabulary for all verbs

def test_every_verb_takes_quiet_and_every_verb_that_rewrites_takes_overwrite():
    from numpyvae.app.cli_parser import build_parser
    parser = build_parser()
    verbs = parser._subparsers._group_actions[0].choices
    for name, sub in verbs.items():
        flags = {option for action in sub._actions for option in action.option_strings}
        assert "--quiet" in flags, name
        if name in ("train", "evaluate", "experiment", "sample", "encode"):
            assert "--overwrite" in flags, name
    evaluate = {o for a in verbs["evaluate"]._actions for o in a.option_strings}
    assert "--batch-size" not in evaluate  # train's word for examples per Adam step


def test_run_raises_what_main_reports(tmp_path, capsys):
    from numpyvae.app import cli
    out = trained(tmp_path, capsys)
    with pytest.raises(ValueError, match="already holds a finished run"):
        cli.run(["train", "--epochs", "1", *FAST, "--out", str(out)])
    with pytest.raises(ValueError, match="--epochs"):
        cli.run(["train", "--epochs", "zero"])
