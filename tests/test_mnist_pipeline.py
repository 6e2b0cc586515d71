"""The MNIST protocols end to end on a few hundred real images: one epoch,
IWAE with k = 10 (benchmarks/mnist_quality.py --tiny). Skips without MNIST."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "mnist_quality.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("mnist_quality", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("protocol, extra", [
    ("pytorch-examples", ["--no-torch"]),
    ("iwae-dynamic", ["--objective", "iwae", "--k", "3"]),
    ("iwae-static", []),
])
def test_tiny_protocol_runs_end_to_end(mnist_file, monkeypatch, tmp_path, protocol, extra):
    monkeypatch.setenv("NUMPYVAE_DATA", str(mnist_file.parent))
    out = tmp_path / protocol
    assert _benchmark().main([protocol, "--tiny", "--out", str(out), *extra]) == 0
    result = json.loads((out / "quality.json").read_text())
    metrics = result["metrics"]
    assert metrics["eval_k"] == 10 and metrics["eval_n"] == 100 and metrics["epochs"] == 1
    assert metrics["test_iwae_k"] > metrics["test_elbo"] - 1.0
    assert 0 < result["rows"][0][1] < 800  # nats per example, finite and sane
    config = json.loads((out / "config.json").read_text())
    expected = {"pytorch-examples": "none", "iwae-dynamic": "dynamic", "iwae-static": "static"}
    assert config["binarize"] == expected[protocol]
