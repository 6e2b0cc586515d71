"""numpyvae.evaluation and `numpyvae evaluate`."""

import json
import math

import numpy as np
import pytest

from numpyvae import VAE, Adam, fit
from numpyvae.cli import main
from numpyvae.estimators import exact_log_likelihood
from numpyvae.evaluation import active_units, evaluate_model


def _linear_gaussian():
    """A briefly trained linear-Gaussian VAE, so q(z|x) is a fair proposal."""
    model = VAE(4, 2, hidden=(), likelihood="gaussian", dtype="float64", rng=0)
    x = np.random.default_rng(1).standard_normal((40, 4))
    fit(model, x, epochs=300, batch_size=40, optimizer=Adam(1e-2), rng=0)
    return model, x


def test_evaluation_brackets_the_exact_log_likelihood():
    model, x = _linear_gaussian()
    result = evaluate_model(model, x, k=5000, rng=0, batch_size=16)
    exact = float(np.mean(exact_log_likelihood(model, x)))
    assert result["test_elbo"] < result["test_log_likelihood"] <= exact + 0.02
    assert abs(result["test_log_likelihood"] - exact) < 0.1
    assert result["test_nll"] == -result["test_log_likelihood"]
    assert result["gap"] == pytest.approx(result["test_log_likelihood"] - result["test_elbo"])
    assert result["bits_per_dim"] == pytest.approx(result["test_nll"] / (4 * math.log(2)))
    assert result["n"] == 40 and result["k"] == 5000


def test_evaluation_is_reproducible_and_reports_progress():
    model, x = _linear_gaussian()
    lines = []
    a = evaluate_model(model, x, k=10, rng=3, batch_size=15, log=lines.append)
    b = evaluate_model(model, x, k=10, rng=3, batch_size=15)
    assert {k: v for k, v in a.items() if k != "seconds"} == \
        {k: v for k, v in b.items() if k != "seconds"}
    assert len(lines) == 3 and lines[-1].startswith("iwae k=10: 40/40")


def test_active_units_counts_only_units_whose_mean_varies():
    model = VAE(4, 3, hidden=(), dtype="float64", rng=0)
    model.params["mu.W"][:, 1] = 0.0          # unit 1 ignores x
    model.params["mu.W"][:, 2] *= 1e-3        # unit 2 barely varies
    model.params["mu.W"][:, 0] = 5.0          # unit 0 varies a lot
    x = np.random.default_rng(0).random((200, 4))
    count, variances = active_units(model, x)
    assert count == 1
    assert variances[1] == 0.0 and variances[2] < 1e-2 < variances[0]


def test_evaluate_command_adds_its_numbers_to_metrics(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--epochs", "2", "--out", str(run), "--no-plots"]) == 0
    assert main(["evaluate", str(run), "--k", "20", "--limit", "50"]) == 0
    out = capsys.readouterr().out
    printed = json.loads(out[out.index("{"):])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["eval_k"] == 20 and metrics["eval_n"] == 50
    assert metrics["eval_test_log_likelihood"] >= metrics["eval_test_elbo"] - 1.0
    assert printed["k"] == 20 and metrics["eval_test_nll"] == printed["test_nll"]


def test_evaluate_command_needs_a_run_folder(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "absent")]) == 2
    assert "numpyvae: error:" in capsys.readouterr().err
