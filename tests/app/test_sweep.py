"""Tests of numpyvae/app/sweep.py, sweep_spec.py, sweep_pictures.py and
``numpyvae sweep``: the grid and its folders, the same numbers on one
process, on two and on a Dask cluster, resuming an interrupted sweep,
failed runs and spec errors.

One small spec (2 x 2 x 2 runs of 2 epochs on the digits, 12 steps an
epoch) is shared; its sweep in this process is the reference.
"""

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from numpyvae.app import run_folder, sweep, sweep_pictures, sweep_spec
from numpyvae.app.cli import main
from numpyvae.train import Trainer

SPEC = """\
[base]
epochs = 2
hidden = [16]
batch_size = 128

[grid]
beta = [0.5, 2]
latent_dim = [2, 3]
seed = [0, 1]

[sweep]
iwae_k = 10
"""
NAMES = [f"beta={b},latent_dim={d},seed={s}" for b in ("0.5", "2.0") for d in (2, 3)
         for s in (0, 1)]
STEPS_PER_RUN = 2 * 12


def quiet(line: str) -> None:
    pass


def numbers(out) -> list[dict]:
    """summary.csv's rows without the wall-clock seconds."""
    with open(out / "summary.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "small.toml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def reference(spec, tmp_path_factory):
    """The spec's sweep, one run after the other in this process."""
    out = tmp_path_factory.mktemp("sweep") / "jobs1"
    return out, sweep.run_sweep(spec, out, pictures=False, log=quiet)


def test_sweep_writes_a_folder_per_run_and_the_summary(reference):
    out, result = reference
    assert result["executed"] == NAMES and result["pictures"] == []
    rows = numbers(out)
    assert [row["run"] for row in rows] == NAMES
    assert list(rows[0]) == ["run", "beta", "latent_dim", "seed", "status", "val_elbo",
                             "val_log_lik", "val_kl", "val_iwae", "error"]
    for row, name in zip(rows, NAMES, strict=True):
        metrics = run_folder.read_json(out / name / "metrics.json")
        assert row["status"] == "done" and row["error"] == ""
        assert float(row["val_elbo"]) == metrics["val_elbo"]  # bit for bit through the CSV
        assert float(row["val_kl"]) == metrics["val_kl"]
        assert metrics["config"]["epochs"] == 2 and metrics["config"]["hidden"] == [16]
        assert metrics["config"]["beta"] == float(row["beta"])
        assert metrics["config"]["latent_dim"] == int(row["latent_dim"])
        assert (out / name / "history.csv").is_file() and (out / name / "checkpoint.npz").is_file()
        # importance weighting tightens the bound (k = 10, 360 test digits)
        assert math.isfinite(float(row["val_iwae"]))
        assert float(row["val_iwae"]) > float(row["val_elbo"])
    assert len({row["val_elbo"] for row in rows}) == len(rows)  # every run its own numbers


def test_a_sweep_run_equals_numpyvae_train_with_the_same_flags(reference, tmp_path):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    out, _ = reference
    with threadpoolctl.threadpool_limits(1, user_api="blas"):  # as in the sweep
        assert main(["train", "--epochs", "2", "--hidden", "16", "--batch-size", "128",
                     "--beta", "2", "--latent-dim", "3", "--seed", "1", "--no-plots",
                     "--out", str(tmp_path / "run")]) == 0
    trained = run_folder.read_json(tmp_path / "run" / "metrics.json")
    swept = run_folder.read_json(out / NAMES[-1] / "metrics.json")
    trained.pop("seconds"), swept.pop("seconds")
    assert trained == swept


def test_two_local_processes_give_the_same_summary(spec, reference, tmp_path, capsys):
    pytest.importorskip("joblib")
    pytest.importorskip("matplotlib")
    out = tmp_path / "jobs2"
    assert main(["sweep", str(spec), "--out", str(out), "--jobs", "2"]) == 0
    assert numbers(out) == numbers(reference[0])
    printed = capsys.readouterr().out
    assert "on 2 local processes" in printed and "8 of 8 runs done" in printed
    for name in ("rate_distortion.png", "elbo_vs_latent.png"):
        data = (out / name).read_bytes()
        assert data[:4] == b"\x89PNG" and len(data) > 1000, name


def test_a_dask_cluster_gives_the_same_summary(spec, reference, tmp_path):
    pytest.importorskip("joblib")
    distributed = pytest.importorskip("distributed",
                                      reason='needs pip install "dask[distributed]"')
    out = tmp_path / "dask"
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        result = sweep.run_sweep(spec, out, dask_scheduler=cluster.scheduler_address,
                                 pictures=False, timeout=120, log=quiet)
    assert result["executed"] == NAMES
    assert numbers(out) == numbers(reference[0])


def test_an_interrupted_sweep_runs_only_the_missing_runs(spec, reference, tmp_path,
                                                          monkeypatch):
    out = tmp_path / "sweep"
    original_step = Trainer.train_step
    steps = []

    def interrupt_inside_the_fourth_run(self, xb):
        steps.append(None)
        if len(steps) == 3 * STEPS_PER_RUN + 17:  # epoch 2, step 5 of run 4
            raise KeyboardInterrupt
        return original_step(self, xb)

    monkeypatch.setattr(Trainer, "train_step", interrupt_inside_the_fourth_run)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(spec, out, pictures=False, log=quiet)
    monkeypatch.setattr(Trainer, "train_step", original_step)
    assert [(out / n / "status.json").is_file() for n in NAMES] == [True] * 3 + [False] * 5
    assert (out / NAMES[3] / "checkpoint.npz").is_file()  # saved at the interrupt
    assert not (out / NAMES[4]).exists()
    (out / NAMES[1] / "metrics.json").unlink()  # a run that lost its numbers is run again
    kept = (out / NAMES[0] / "status.json").stat().st_mtime_ns

    result = sweep.run_sweep(spec, out, pictures=False, log=quiet)
    assert result["executed"] == [NAMES[1]] + NAMES[3:]
    assert (out / NAMES[0] / "status.json").stat().st_mtime_ns == kept
    assert numbers(out) == numbers(reference[0])  # the resumed run too, bit for bit
    assert sweep.run_sweep(spec, out, pictures=False, log=quiet)["executed"] == []


def test_a_failed_run_records_its_error_and_the_others_complete(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text('[base]\nepochs = 1\nhidden = [8]\nbatch_size = 256\n'
                    '[grid]\nlr = [-1, 0.003]\n')  # of the right kind; Adam refuses it
    out = tmp_path / "sweep"
    assert main(["sweep", str(spec), "--out", str(out), "--no-plots"]) == 1
    failed, done = numbers(out)
    assert failed["status"] == "failed" and failed["val_elbo"] == ""
    assert failed["error"].startswith("ValueError: lr: expected")
    assert "Traceback" in (out / "lr=-1.0" / "error.txt").read_text()
    status = json.loads((out / "lr=-1.0" / "status.json").read_text())
    assert status["status"] == "failed" and status["error"] == failed["error"]
    assert done["status"] == "done" and math.isfinite(float(done["val_elbo"]))
    assert not (out / "lr=0.003" / "error.txt").exists()
    assert "1 of 2 runs done; failed (see their error.txt): lr=-1.0" in capsys.readouterr().out
    # started again, the failed run is tried again and the finished one kept
    result = sweep.run_sweep(spec, out, pictures=False, log=quiet)
    assert result["executed"] == ["lr=-1.0"]


def test_missing_joblib_is_one_line_and_jobs_1_needs_no_joblib(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "spec.toml"
    spec.write_text('[base]\nepochs = 1\nhidden = [8]\nbatch_size = 256\n[grid]\nseed = [3]\n')
    monkeypatch.setitem(sys.modules, "joblib", None)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "a"), "--jobs", "2"]) == 2
    err = capsys.readouterr().err
    assert err == 'numpyvae: error: joblib is not installed (pip install "numpyvae[sweep]")\n'
    assert not (tmp_path / "a").exists()
    assert main(["sweep", str(spec), "--out", str(tmp_path / "b"), "--no-plots"]) == 0
    assert numbers(tmp_path / "b")[0]["status"] == "done"


def test_grid_order_folder_names_and_list_settings(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text('[base]\nlr = 1e-3\n[grid]\nhidden = [[16], [], [32, 8]]\n'
                    'data = ["digits", "my data/x.npz"]\n')
    loaded = sweep_spec.load_spec(spec)
    assert loaded["base"]["lr"] == 0.001 and loaded["base"]["epochs"] == 200  # train's default
    assert "hidden" not in loaded["base"] and loaded["options"]["threads_per_run"] == 1
    points = sweep_spec.grid_points(loaded)
    assert [name for name, _, _ in points] == [
        "hidden=16,data=digits", "hidden=16,data=my_data_x.npz",
        "hidden=linear,data=digits", "hidden=linear,data=my_data_x.npz",
        "hidden=32-8,data=digits", "hidden=32-8,data=my_data_x.npz"]
    assert points[4][2]["hidden"] == [32, 8] and points[4][2]["lr"] == 0.001


def test_the_spec_and_the_pictures_stay_importable_from_sweep():
    assert (sweep.load_spec, sweep.grid_points, sweep.run_name, sweep.OPTIONS) == (
        sweep_spec.load_spec, sweep_spec.grid_points, sweep_spec.run_name, sweep_spec.OPTIONS)
    assert (sweep.plot_rate_distortion, sweep.plot_elbo_vs_latent, sweep.PICTURES) == (
        sweep_pictures.plot_rate_distortion, sweep_pictures.plot_elbo_vs_latent,
        sweep_pictures.PICTURES)


BAD_SPECS = [
    ("[base]\nbta = 1\n[grid]\nseed = [0]\n",
     "[base]: unknown key 'bta'; allowed: data, epochs, latent_dim"),
    ("[grids]\nseed = [0]\n", "top level: unknown key 'grids'; allowed: base, grid, sweep"),
    ("[grid]\nbeta = 1\n", "[grid] beta: expected a non-empty list of values"),
    ("[grid]\nbeta = []\n", "[grid] beta: expected a non-empty list of values"),
    ("[grid]\nlatent_dim = ['two']\n", "[grid] latent_dim item latent_dim: expected an integer"),
    ("[grid]\nlatent_dim = [0, 2]\n", "latent_dim item latent_dim: expected an integer >= 1"),
    ("[grid]\nlr = [nan, 0.003]\n", "[grid] lr item lr: expected a finite number, got nan"),
    ("[grid]\nbeta = [1, inf]\n", "[grid] beta item beta: expected a finite number, got inf"),
    ("[base]\nlr = -inf\n[grid]\nseed = [0]\n", "[base] lr: expected a finite number"),
    ("[grid]\nactivation = ['relu', 'gelu']\n", "activation: expected one of ('relu',"),
    ("[grid]\nhidden = [16, 32]\n", "hidden: expected a list of layer widths"),
    ("[base]\nepochs = 2.5\n[grid]\nseed = [0]\n", "[base] epochs: expected an integer"),
    ("[base]\nbeta = 1\n[grid]\nbeta = [1, 2]\n", "beta is in both [base] and [grid]"),
    ("[grid]\nseed = [0, 0]\n", "[grid] seed: a value is repeated"),
    ("[base]\nepochs = 1\n", "[grid]: expected at least one setting"),
    ("[grid]\nseed = [0]\n[sweep]\niwae_k = 0\n", "[sweep] iwae_k: expected an integer >= 1"),
    ("[grid]\nseed = [0]\n[sweep]\npictures = true\n", "[sweep]: unknown key 'pictures'"),
    ("[grid\nbeta = [1", "is not valid TOML"),
    (None, "no such file"),
]


@pytest.mark.parametrize("text, message", BAD_SPECS)
def test_spec_errors_exit_2_with_a_clear_message(tmp_path, capsys, text, message):
    spec = tmp_path / "spec.toml"
    if text is not None:
        spec.write_text(text)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("numpyvae: error: spec:") and message in err, err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_a_changed_spec_does_not_reuse_the_folder(reference, tmp_path, capsys):
    out, _ = reference
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace("epochs = 2", "epochs = 3"))
    assert main(["sweep", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a run with epochs = 2, this spec gives 3; use another --out" in err


def test_pictures_of_a_sweep(reference, tmp_path):
    pytest.importorskip("matplotlib")
    rows = [row for row in reference[1]["rows"]]
    keys = ["beta", "latent_dim", "seed"]
    for plot in (sweep_pictures.plot_rate_distortion, sweep_pictures.plot_elbo_vs_latent):
        path = plot(rows, keys, tmp_path / f"{plot.__name__}.png")
        assert path.read_bytes()[:4] == b"\x89PNG"
    groups = sweep_pictures._groups(rows, keys, ("beta", "seed"))
    assert [label for label, _ in groups] == ["latent_dim=2", "latent_dim=3"]
    dims, mean, low, high = sweep_pictures._over_seeds(rows[:4], "latent_dim", "val_elbo")
    np.testing.assert_array_equal(dims, [2, 3])
    np.testing.assert_array_equal(low, [min(r["val_elbo"] for r in rows[:2]),
                                        min(r["val_elbo"] for r in rows[2:4])])
    assert np.all(low <= mean) and np.all(mean <= high)


def test_a_run_with_pictures_and_latent_dim_1(tmp_path):
    pytest.importorskip("matplotlib")
    spec = tmp_path / "spec.toml"
    spec.write_text('[base]\nepochs = 1\nhidden = [8]\nbatch_size = 256\n'
                    '[grid]\nlatent_dim = [1]\n[sweep]\nrun_pictures = true\n')
    result = sweep.run_sweep(spec, tmp_path / "out", pictures=False, log=quiet)
    assert result["rows"][0]["status"] == "done", result["rows"][0]["error"]
    assert (tmp_path / "out" / "latent_dim=1" / "latent.png").is_file()


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 not a checkpoint"], ids=["empty", "corrupt"])
def test_a_run_with_an_unreadable_checkpoint_starts_again_saying_so(tmp_path, damage):
    spec = tmp_path / "spec.toml"
    spec.write_text('[base]\nepochs = 1\nhidden = [8]\nbatch_size = 256\n[grid]\nseed = [3]\n')
    out = tmp_path / "out"
    sweep.run_sweep(spec, out, pictures=False, log=quiet)
    run = out / "seed=3"
    (run / "metrics.json").unlink()  # unfinished, as if stopped in its last epoch
    (run / "checkpoint.npz").write_bytes(damage)
    lines = []
    result = sweep.run_sweep(spec, out, pictures=False, log=lines.append)
    assert result["rows"][0]["status"] == "done"
    assert any("seed=3: val ELBO" in line and "started again from epoch 0: its checkpoint "
               "was unreadable" in line for line in lines), lines
    status = json.loads((run / "status.json").read_text())
    assert status["notes"] and "checkpoint.npz" in status["notes"][0]
    assert run_folder.read_json(run / "metrics.json")["epochs"] == 1


def test_an_old_sweep_folder_with_recon_names_still_summarises(reference, tmp_path, spec):
    import shutil
    out = tmp_path / "old"
    shutil.copytree(reference[0], out)
    for name in NAMES:  # status.json as numpyvae wrote it before the rename
        status = json.loads((out / name / "status.json").read_text())
        status["val_recon"] = status.pop("val_log_lik")
        (out / name / "status.json").write_text(json.dumps(status))
    result = sweep.run_sweep(spec, out, pictures=False, log=quiet)
    assert result["executed"] == []
    assert numbers(out) == numbers(reference[0])


KILL_SCRIPT = """
import sys
from pathlib import Path
from numpyvae.app import sweep
sweep.run_sweep(sys.argv[1], sys.argv[2], jobs=2, pictures=False)
"""


def _children(pid: int) -> set:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_killing_a_sweep_ends_its_workers(tmp_path):
    import os
    import signal
    import subprocess
    import time
    pytest.importorskip("joblib")
    spec = tmp_path / "spec.toml"
    spec.write_text('[base]\nepochs = 100000\nhidden = [8]\nbatch_size = 256\n'
                    '[grid]\nseed = [0, 1]\n')
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(Path(sweep.__file__).parents[2]))
    parent = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(spec), str(out)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):  # until both runs have written a checkpoint
            if all((out / f"seed={s}" / "checkpoint.npz").is_file() for s in (0, 1)):
                break
            time.sleep(0.05)
        workers = _children(parent.pid)
        assert workers
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    for _ in range(100):  # each worker ends itself within 0.1 s of its owner's death
        if not any(map(_running, workers)):
            break
        time.sleep(0.05)
    assert not any(map(_running, workers))
    before = _snapshot(out)
    time.sleep(0.5)
    assert _snapshot(out) == before  # nothing writes the run folders any more
