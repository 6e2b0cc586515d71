"""The README's promises: its Python examples run, its Quickstart holds
exactly two commands, and .ci/run runs the second one verbatim."""

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str, text: str = README) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_python_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the examples write files
    for block in _blocks("python"):
        exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "digits.npz").is_file()
    # the run folder's example: a trained run loaded, sampled and encoded
    assert (tmp_path / "runs" / "small" / "checkpoint.npz").is_file()
    mu = np.load(tmp_path / "latent_means.npy")
    assert mu.shape == (360, 2) and np.isfinite(mu).all()
    assert "(64, 64) (10, 64) (360, 2)" in capsys.readouterr().out


def test_the_run_folder_example_works_twice(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    block = next(b for b in _blocks("python") if "runs/small" in b)
    for _ in range(2):  # a second run replaces the first, never goes on with it silently
        exec(compile(block, "README.md", "exec"), {})
        assert "(64, 64) (10, 64) (360, 2)" in capsys.readouterr().out


def test_quickstart_has_two_commands_and_ci_runs_the_second():
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = [line for block in _blocks("bash", quickstart)
                for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    assert "numpyvae train" in commands[0] and "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci


def test_without_mnist_the_summary_says_which_tests_skipped_and_why():
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "NUMPYVAE_DATA"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "tests/test_mnist_pipeline.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout
    assert "MNIST: not found, the MNIST tests skip; run them with NUMPYVAE_DATA=" in done.stdout
    assert "3 MNIST tests skipped: MNIST not found: set NUMPYVAE_DATA" in done.stdout
    assert "NUMPYVAE_DATA" in README.split("## What is in it")[0]  # and the README says how
