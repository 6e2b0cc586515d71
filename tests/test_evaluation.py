"""numpyvae.evaluation and `numpyvae evaluate`."""

import json
import math
import sys

import numpy as np
import pytest

from numpyvae import VAE, Adam, fit
from numpyvae.app.cli import main
from numpyvae.estimators import elbo, exact_log_likelihood
from numpyvae.evaluation import active_units, evaluate


def _linear_gaussian():
    """A briefly trained linear-Gaussian VAE, so q(z|x) is a fair proposal."""
    model = VAE(4, 2, hidden=(), likelihood="gaussian", dtype="float64", rng=0)
    x = np.random.default_rng(1).standard_normal((40, 4))
    fit(model, x, epochs=300, batch_size=40, optimizer=Adam(1e-2), rng=0)
    return model, x


def test_evaluation_brackets_the_exact_log_likelihood():
    model, x = _linear_gaussian()
    result = evaluate(model, x, k=5000, rng=0, batch_size=16)
    exact = float(np.mean(exact_log_likelihood(model, x)))
    assert result["test_elbo"] < result["test_iwae_k"] <= exact + 0.02
    assert abs(result["test_iwae_k"] - exact) < 0.1
    assert result["test_nll"] == -result["test_iwae_k"]
    assert result["test_gap"] == pytest.approx(result["test_iwae_k"] - result["test_elbo"])
    assert result["test_bits_per_dim"] == pytest.approx(result["test_nll"] / (4 * math.log(2)))
    assert result["test_bits_per_dim_se"] == pytest.approx(
        result["test_iwae_se"] / (4 * math.log(2)))
    assert result["n"] == 40 and result["k"] == 5000


def test_evaluation_reports_the_standard_error_of_each_mean():
    model, x = _linear_gaussian()
    result = evaluate(model, x, k=10, rng=5, batch_size=16)
    # the ELBO is drawn first from the same generator: the same 40 estimates
    elbos = elbo(model, x, np.random.default_rng(5)).astype(np.float64)
    assert result["test_elbo"] == pytest.approx(elbos.mean(), rel=1e-12)
    assert result["test_elbo_se"] == pytest.approx(elbos.std(ddof=1) / math.sqrt(40), rel=1e-12)
    assert 0 < result["test_gap_se"] and 0 < result["test_iwae_se"] < 10
    # the SE falls like 1/sqrt(n): 4 copies of the data halve it (the draws differ)
    quad = evaluate(model, np.tile(x, (4, 1)), k=10, rng=5, batch_size=160)
    assert 0.35 < quad["test_elbo_se"] / result["test_elbo_se"] < 0.65


def test_evaluation_is_reproducible_and_reports_progress_lines(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # lines, as without tqdm
    model, x = _linear_gaussian()
    lines = []
    a = evaluate(model, x, k=10, rng=3, batch_size=15, progress=True, log=lines.append)
    b = evaluate(model, x, k=10, rng=3, batch_size=15, log=lines.append)
    assert {k: v for k, v in a.items() if k != "seconds"} == \
        {k: v for k, v in b.items() if k != "seconds"}
    assert len(lines) == 3 and lines[-1].startswith("iwae k=10: 40/40 examples")
    assert "left" in lines[0]


def test_evaluation_progress_is_a_bar_with_tqdm(capsys):
    pytest.importorskip("tqdm")
    model, x = _linear_gaussian()
    lines = []
    evaluate(model, x, k=10, rng=3, batch_size=15, progress=True, log=lines.append)
    err = capsys.readouterr().err
    assert lines == [] and "IWAE k=10" in err and "40/40" in err


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
    assert main(["train", "--epochs", "2", "--out", str(run), "--no-plots", "--quiet"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.update(eval_test_elbo=-1.0, eval_test_log_likelihood=-1.0, eval_k=3)  # older keys
    (run / "metrics.json").write_text(json.dumps(metrics))
    capsys.readouterr()
    args = ["evaluate", str(run), "--k", "20", "--limit", "50", "--quiet"]
    assert main(args) == 2  # an evaluation is there (older names): kept unless --overwrite
    assert "already holds an evaluation" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet: no bar
    summary, rest = captured.out.split("\n", 1)
    assert summary.startswith("test ELBO ") and " ± " in summary and "NLL" in summary
    printed = json.loads(rest)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["eval_k"] == 20 and metrics["eval_n"] == 50 and metrics["eval_seed"] == 0
    assert not [key for key in metrics if key.startswith("eval_test")]
    assert metrics["test_iwae_k"] >= metrics["test_elbo"] - 1.0
    assert printed == {key: metrics[key] for key in printed}  # the names stored are printed
    assert printed["eval_k"] == 20 and "k" not in printed
    for key in ("test_elbo", "test_iwae", "test_gap", "test_bits_per_dim"):
        assert metrics[f"{key}_se"] > 0, key
    # the run's own val_elbo: another single-sample draw, with its SE
    assert metrics["val_elbo_se"] > 0


def test_evaluate_command_prints_progress_lines_without_tqdm(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--hidden", "8", "--out", str(run), "--no-plots",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--k", "5", "--limit", "40", "--block-size", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines[:2]] == ["iwae k=5: 20/40 examples",
                                                          "iwae k=5: 40/40 examples"]


def test_evaluate_command_needs_a_run_folder(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "absent")]) == 2
    assert "numpyvae: error:" in capsys.readouterr().err


def test_evaluation_works_for_the_two_layer_model_through_the_protocol():
    from numpyvae import HierarchicalVAE
    from numpyvae.estimators import iwae_bound
    model = HierarchicalVAE(6, (3, 2), hidden=(5,), hidden2=(4,), dtype="float64", rng=0)
    x = (np.random.default_rng(0).random((20, 6)) < 0.4).astype(np.float64)
    result = evaluate(model, x, k=50, rng=1, batch_size=20)
    assert len(result["test_active_units_per_layer"]) == 2
    assert result["test_active_units"] == sum(result["test_active_units_per_layer"])
    assert result["test_elbo"] < result["test_iwae_k"] < 0
    # the ELBO is drawn first; the IWAE-k estimate is iwae_bound's on the same stream
    rng = np.random.default_rng(1)
    model.elbo(x, rng)
    assert result["test_iwae_k"] == pytest.approx(float(np.mean(iwae_bound(model, x, 50, rng))),
                                                  rel=1e-12)


def test_evaluation_refuses_a_point_mass_posterior_and_bad_data():
    point = VAE(4, 2, hidden=(), posterior="fixed", delta=0.0, rng=0)
    x = np.random.default_rng(0).random((5, 4))
    with pytest.raises(ValueError, match="delta=0"):
        evaluate(point, x, k=3)
    model = VAE(4, 2, hidden=(), rng=0)
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="^x: expected finite values"):
        evaluate(model, x, k=3)
    with pytest.raises(ValueError, match="^k:"):
        evaluate(model, np.zeros((5, 4)), k=0)
