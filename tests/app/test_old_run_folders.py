"""Run folders written by numpyvae 0.1.0 before its modules moved into
subpackages still load, evaluate, sample, encode and resume.

tests/data/runs-0.1.0/ holds two such folders, written by the code of
commit 4278639 (the last flat layout) with

    numpyvae train --epochs 2 --hidden 8 --no-plots --quiet --out one
    numpyvae train --epochs 2 --hidden 8 --latent-dims 3,2 --hidden2 4 \\
        --no-plots --quiet --out two

Nothing in a checkpoint names a module: the model's kind is read from
its config. Each test works on a copy, so the kept folders stay as
they were written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import numpyvae
from numpyvae.app.cli import main

OLD = Path(__file__).resolve().parents[1] / "data" / "runs-0.1.0"
KINDS = {"one": numpyvae.VAE, "two": numpyvae.HierarchicalVAE}


@pytest.fixture(params=sorted(KINDS))
def run(request, tmp_path) -> tuple[str, Path]:
    copy = tmp_path / request.param
    shutil.copytree(OLD / request.param, copy)
    return request.param, copy


def test_the_checkpoint_loads_as_its_model(run):
    name, folder = run
    model = numpyvae.load(folder / "checkpoint.npz")
    assert type(model) is KINDS[name]
    x = np.full((3, 64), 0.5, dtype=np.float32)
    assert np.isfinite(model.elbo(x, np.random.default_rng(0))).all()


def test_evaluate_adds_test_numbers_and_keeps_the_record(run):
    _, folder = run
    before = json.loads((folder / "metrics.json").read_text())
    assert main(["evaluate", str(folder), "--k", "3", "--limit", "20", "--quiet"]) == 0
    after = json.loads((folder / "metrics.json").read_text())
    assert {k: after[k] for k in before} == before  # the training record, untouched
    assert np.isfinite(after["test_iwae_k"]) and after["eval_k"] == 3 and after["eval_n"] == 20


def test_sample_and_encode_read_the_old_folder(run, tmp_path):
    _, folder = run
    assert main(["sample", str(folder), "--n", "4", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (4, 64)
    assert main(["encode", str(folder), "--out", str(tmp_path / "z.npz")]) == 0
    with np.load(tmp_path / "z.npz", allow_pickle=False) as z:
        assert len(z.files) >= 1


def test_resume_continues_the_old_run(run):
    _, folder = run
    assert main(["train", "--resume", str(folder), "--epochs", "3", "--no-plots", "--quiet"]) == 0
    history = (folder / "history.csv").read_text().strip().splitlines()
    assert len(history) == 1 + 3  # the header, the two old epochs, the new one
