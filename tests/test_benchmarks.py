"""benchmarks/step_time.py runs on a fresh install and reports what it says.

Smoke runs only: tiny batch, one round, no pauses. The timings themselves
are never asserted (they belong to the benchmark, not to the tests); the
tests check that every table and JSON field is there and consistent.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "step_time.py"
QUICK = ["--batch", "8", "--rounds", "3", "--pause", "0", "--no-compile"]


def run(args: list, env_data: str, tmp_path: Path) -> tuple[str, dict]:
    out = tmp_path / "result.json"
    env = {**os.environ, "NUMPYVAE_DATA": env_data}
    proc = subprocess.run([sys.executable, str(SCRIPT), *QUICK, *args, "--json", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(out.read_text())


def test_step_table_breakdown_and_json_without_mnist(tmp_path):
    stdout, result = run(["--breakdown"], str(tmp_path), tmp_path)
    steps = {r["contender"]: r for r in result["steps"]}
    assert {"numpyvae", "floor (GEMMs only)"} <= set(steps)
    for r in steps.values():
        assert r["batch"] == 8 and r["ms_per_step"] > 0 and r["samples"] > 0
        assert r["ms_per_step"] == pytest.approx(1e3 * r["median_s"])
        floor = steps["floor (GEMMs only)"]["round_medians_s"]
        assert r["vs_floor"] == pytest.approx(statistics.median(  # paired, round by round
            a / b for a, b in zip(r["round_medians_s"], floor, strict=True)))
    if "torch fused Adam" not in steps:  # PyTorch is optional: a note says it was skipped
        assert any("torch" in note.lower() for note in result["notes"]), result["notes"]
    (parts,) = result["breakdown"]
    phases = ["forward GEMMs", "forward elementwise", "backward GEMMs",
              "backward elementwise", "finite check", "Adam"]
    assert all(k in parts for k in phases)
    rest = parts["rest"]
    assert sum(parts[k] for k in phases) + rest == pytest.approx(parts["step"])
    assert parts["eps draw"] > 0  # timed alone; the other two parts are differences
    assert (parts["eps draw"] + parts["phases together"] + parts["step's own calls"]
            == pytest.approx(rest))
    assert result["epoch"] is None and result["iwae"] is None
    assert any("MNIST not found" in note for note in result["notes"])
    assert "Per-step wall time" in stdout and "Where numpyvae's step goes" in stdout
    assert "between contenders: sleep 0.0 s after each contender's block" in stdout



def test_the_iwae_objective_step_with_k_samples(tmp_path):
    stdout, result = run(["--model", "iwae", "--k", "3", "--no-epoch"], str(tmp_path), tmp_path)
    assert result["model"]["objective"] == "IWAE k=3"
    steps = {r["contender"]: r for r in result["steps"]}
    assert {"numpyvae", "floor (GEMMs only)"} <= set(steps)
    assert all(r["batch"] == 8 and r["ms_per_step"] > 0 for r in steps.values())
    assert "784-200-200-50 tanh, IWAE k=3" in stdout

def test_the_design_variants_run_the_steps_they_name(tmp_path):
    stdout, result = run(["--no-torch", "--no-epoch", "--variants", "--k", "2"], str(tmp_path),
                         tmp_path)
    names = [r["variant"] for r in result["variants"]]
    assert names[:3] == ["today", "Adam unchunked", "whole batch"]
    with_threadpoolctl = isinstance(result["machine"]["blas"], list)  # else a string says why
    assert names[3:] == (["BLAS 1 thread", "halves, two threads"] if with_threadpoolctl else [])
    assert all(r["batch"] == 8 and r["ms_per_step"] > 0 for r in result["variants"])
    assert next(r for r in result["variants"] if r["variant"] == "today")["vs_today"] == 1.0
    assert "Candidate designs" in stdout


def test_epoch_and_iwae_tables_on_mnist(mnist_file, tmp_path):
    stdout, result = run(["--no-torch", "--mnist", str(mnist_file), "--iwae",
                          "--iwae-k", "10", "--iwae-n", "50"], str(tmp_path), tmp_path)
    epoch, iwae = result["epoch"], result["iwae"]
    assert epoch["images"] == 60_000 and epoch["epoch_s"] > 0
    assert epoch["minor_faults_per_step_median"] >= 0
    assert epoch["step_alloc_peak_KiB_max"] < 1024  # a steady-state step allocates no large array
    assert (iwae["k"], iwae["images"]) == (10, 50)
    assert 0 < iwae["maxrss_MiB"] < 1024
    assert "One epoch of numpyvae.train on MNIST" in stdout and "iwae_bound, k = 10" in stdout


def test_eval_time_reports_the_fast_the_floor_and_the_reference(mnist_file, tmp_path):
    script = SCRIPT.parent / "eval_time.py"
    out = tmp_path / "eval.json"
    proc = subprocess.run([sys.executable, str(script), "--mnist", str(mnist_file), "--n", "30",
                           "--k", "17", "--rounds", "2", "--reference", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert (result["k"], result["images"]) == (17, 30)
    assert set(result["seconds"]) == {"fast", "floor", "reference"}
    assert all(len(v) == 2 and min(v) > 0 for v in result["seconds"].values())
    assert result["ratio_to_floor"]["floor"] == 1.0
    for name in ("fast", "reference"):  # paired, round by round
        assert result["ratio_to_floor"][name] == pytest.approx(statistics.median(
            a / b for a, b in zip(result["seconds"][name], result["seconds"]["floor"], strict=True)))
    assert "IWAE-17 over 30 MNIST test images" in proc.stdout
