"""Tests of numpyvae.app.experiments, numpyvae.app.extremes and
numpyvae.app.experiment_record: each claim of the notes asserted with numbers
on small settings, the hand-written gradients of the two partial
objectives against finite differences, and the run_experiment plumbing."""

import json
import sys

import numpy as np
import pytest

from numpyvae.app import experiments, extremes
from numpyvae.app.experiments import (
    EXPERIMENTS,
    run_experiment,
    run_importance,
    run_jensen,
    run_prior_bound,
)
from numpyvae.app.extremes import run_autoencoder, run_beta_sweep, run_kl_only

TOL = dict(rtol=1e-6, atol=1e-9)


def read_result(out):
    with open(out / "result.json", encoding="utf-8") as f:
        return json.load(f)


def test_jensen_naive_estimate_is_biased_low_and_the_gap_shrinks(tmp_path):
    r = run_jensen(tmp_path, ms=(1, 10, 100), repeats=1000, n_train=500, epochs=5)
    res = r["results"]
    for mean, se in zip(res["mean"], res["standard_error"], strict=True):
        assert res["exact"] - mean > 2 * se
    assert res["gap"][0] > res["gap"][1] > res["gap"][2] > 0
    assert r["passed"] and read_result(tmp_path) == r


def test_importance_bounds_are_ordered_and_tighten_with_k(tmp_path):
    r = run_importance(tmp_path, n_eval=2000)
    res = r["results"]
    iwae, se = np.array(res["iwae"]), np.array(res["iwae_standard_error"])
    assert np.all(np.diff(iwae) > 0)                        # rising in k = 1, 5, 50, 500
    assert np.all(iwae <= res["exact"] + 3 * se)            # below log p(x)
    assert np.all(iwae[1:] > res["elbo"])                   # above the ELBO
    diff, diff_se = res["iwae_1_minus_elbo"]  # the same eps: a paired difference
    assert abs(diff) < 3 * diff_se
    assert res["exact"] - iwae[-1] < 0.1
    assert r["passed"]


def test_prior_bound_learns_the_mean_and_the_vae_both_modes(tmp_path):
    r = run_prior_bound(tmp_path, n=1000, steps=600, vae_epochs=150, n_samples=2000)
    for dim in ("1d", "2d"):
        row = r["results"][dim]
        prior, vae = row["prior_bound"], row["vae"]
        assert prior["output_spread"] < 0.1 * row["data_std"]
        np.testing.assert_allclose(prior["output_mean"], row["data_mean"],
                                   atol=0.1 * row["data_std"])
        assert max(prior["mass_near_modes"]) < 0.05
        assert min(vae["mass_near_modes"]) > 0.25
        assert vae["output_spread"] > 0.5 * row["data_std"]
    assert r["passed"]


def test_autoencoder_reconstructs_far_better_than_the_vae(tmp_path):
    r = run_autoencoder(tmp_path, epochs=8, hidden=(64,))
    ae, vae = r["results"]["autoencoder"], r["results"]["vae"]
    assert ae["train"]["squared_error"] < 0.75 * vae["train"]["squared_error"]
    assert ae["test"]["squared_error"] < vae["test"]["squared_error"]
    assert ae["train"]["neg_log_lik"] < vae["train"]["neg_log_lik"]
    assert r["passed"]


def test_kl_only_sends_every_encoder_mean_to_zero(tmp_path):
    r = run_kl_only(tmp_path, steps=250, hidden=(64,), record_every=50)
    start, end = r["results"]["start"], r["results"]["end"]
    assert start["mean_abs_mu"] > 0.1 and start["kl"] > 0.1
    assert end["mean_abs_mu"] < 0.01 and end["kl"] < 1e-3
    assert end["max_abs_mu"] < 0.2 * start["max_abs_mu"]
    assert r["passed"]


def test_beta_sweep_trades_rate_for_distortion(tmp_path):
    r = run_beta_sweep(tmp_path, betas=(0.25, 1.0, 4.0), epochs=5, hidden=(32,),
                       eval_repeats=2)
    rate, distortion = r["results"]["rate"], r["results"]["distortion"]
    assert rate[0] > rate[1] > rate[2]
    assert distortion[0] < distortion[1] < distortion[2]
    assert r["passed"]


def test_run_experiment_dispatches_every_name(monkeypatch, tmp_path):
    for name in EXPERIMENTS:
        func = "run_" + name.replace("-", "_")
        monkeypatch.setattr(experiments, func,
                            lambda out_dir, seed, func=func: {"ran": func, "seed": seed})
        assert run_experiment(name, tmp_path, seed=3) == {"ran": func, "seed": 3}


def test_the_extremes_stay_importable_from_experiments():
    for name in ("run_autoencoder", "run_kl_only", "run_beta_sweep"):
        assert getattr(experiments, name) is getattr(extremes, name)


def test_unknown_experiment_lists_the_choices(tmp_path):
    with pytest.raises(ValueError, match="name: expected one of .*'jensen'.*got 'jensn'"):
        run_experiment("jensn", tmp_path)


def test_bad_arguments_raise_errors_naming_them(tmp_path):
    with pytest.raises(TypeError, match="out_dir"):
        run_jensen(3)
    with pytest.raises(ValueError, match="seed"):
        run_jensen(tmp_path, seed=-1)


def test_without_matplotlib_the_numbers_are_written_and_the_figure_skipped(
        monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    r = run_jensen(tmp_path, ms=(1, 10), repeats=50, n_train=200, epochs=1)
    assert r["figure"] is None and "numpyvae[viz]" in r["figure_note"]
    assert not list(tmp_path.glob("*.png"))
    assert read_result(tmp_path)["results"]["m"] == [1, 10]


def test_with_matplotlib_the_figure_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    r = run_importance(tmp_path, ks=(1, 5), n_eval=20, n_train=200, epochs=1)
    assert r["figure"] == "importance.png"
    assert (tmp_path / "importance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
