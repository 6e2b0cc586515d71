"""Tests for numpyvae/app/sklearn_estimator.py (with its input and random-stream
helpers, estimator_input.py): VAEEstimator's scikit-learn conventions
(parameters, fitted state, errors, warm start, randomness,
persistence), scikit-learn's own estimator checks, and the example of
docs/sklearn.md run as written. Tests that need scikit-learn skip
cleanly without it."""

import ast
import json
import math
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from numpyvae import VAE, HierarchicalVAE
from numpyvae.app.sklearn_estimator import NotFittedError, VAEEstimator
from numpyvae.datasets import load_digits

try:
    from sklearn.utils.estimator_checks import parametrize_with_checks
except ImportError:
    parametrize_with_checks = None

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sklearn.md"
NEEDS_SKLEARN = "scikit-learn is not installed (pip install scikit-learn)"
NOT_FITTED = ("This VAEEstimator instance is not fitted yet. Call 'fit' with appropriate "
              "arguments before using this estimator.")


def data(n=40, d=6, seed=0):
    return np.random.default_rng(seed).random((n, d))  # float64 in [0, 1]


def small(**kwargs):
    return VAEEstimator(**{"hidden": (8,), "epochs": 2, "batch_size": 16,
                           "random_state": 0, **kwargs})


# ------------------------------------------------- parameters

def test_init_stores_arguments_unchanged_and_validates_nothing():
    est = VAEEstimator(latent_dim="three", hidden=[5], beta=-1)
    assert est.latent_dim == "three" and est.hidden == [5] and est.beta == -1
    with pytest.raises(TypeError, match="latent_dim: expected an integer"):
        est.fit(data())


def test_get_params_lists_every_init_argument():
    params = VAEEstimator().get_params()
    assert params == {"latent_dim": 2, "hidden": (128,), "activation": "relu",
                      "likelihood": "bernoulli", "sigma": None, "posterior": "diagonal",
                      "delta": None, "beta": 1.0, "epochs": 20, "batch_size": 128,
                      "learning_rate": 1e-3, "random_state": None, "dtype": "float32",
                      "score_k": 1, "latent_dims": None, "hidden2": None}
    assert VAEEstimator().get_params(deep=False) == params


def test_set_params_returns_self_and_takes_effect_at_fit():
    est = small()
    assert est.set_params(latent_dim=3, beta=0.5) is est
    assert est.get_params()["latent_dim"] == 3
    assert est.fit(data()).transform(data()).shape == (40, 3)


def test_set_params_rejects_unknown_names():
    with pytest.raises(ValueError, match="Invalid parameter 'latent' for estimator VAEEstimator"):
        VAEEstimator().set_params(latent=3)


def test_repr_shows_the_changed_parameters():
    assert repr(VAEEstimator()) == "VAEEstimator()"
    assert repr(VAEEstimator(latent_dim=8, hidden=(64,))) == \
        "VAEEstimator(latent_dim=8, hidden=(64,))"


def test_clone_gives_an_unfitted_copy_with_equal_params():
    clone = pytest.importorskip("sklearn.base", reason=NEEDS_SKLEARN).clone
    est = small(latent_dim=3).fit(data())
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "model_")


# ------------------------------------------------- fitting and outputs

def test_fit_sets_fitted_attributes_and_returns_self():
    est = small()
    assert est.fit(data(), y=np.zeros(40)) is est
    assert isinstance(est.model_, VAE) and est.n_features_in_ == 6
    assert [row["epoch"] for row in est.history_] == [1, 2]
    assert est.trainer_.epochs_done == 2


def test_output_shapes_and_dtypes():
    est = small(latent_dim=3).fit(data())
    z = est.transform(data(5))
    assert z.shape == (5, 3) and z.dtype == np.float32
    x = est.inverse_transform(z)
    assert x.shape == (5, 6) and ((x >= 0) & (x <= 1)).all()  # Bernoulli means
    assert est.score_samples(data(5)).shape == (5,)
    assert isinstance(est.score(data(5)), float)
    assert est.sample(4).shape == (4, 6)
    assert list(est.get_feature_names_out()) == ["vaeestimator0", "vaeestimator1",
                                                "vaeestimator2"]


def test_fit_transform_equals_fit_then_transform():
    X = data()
    np.testing.assert_array_equal(small().fit_transform(X), small().fit(X).transform(X))


def test_transform_is_the_posterior_mean_and_inverse_the_decoder_mean():
    X = data()
    est = small().fit(X)
    mu, _ = est.model_.encode(X.astype(np.float32))
    np.testing.assert_array_equal(est.transform(X), mu)
    np.testing.assert_array_equal(est.inverse_transform(mu), est.model_.decode(mu))


def test_float64_dtype_gives_float64_outputs():
    est = small(dtype="float64", likelihood="gaussian").fit(data())
    assert est.transform(data(3).astype(np.float32)).dtype == np.float64


def test_batch_size_larger_than_the_data_is_capped():
    est = VAEEstimator(hidden=(4,), epochs=1, batch_size=128).fit(data(n=3))
    assert est.trainer_.batch_size == 3


def test_training_improves_the_score():
    X = load_digits()[0][0][:300]
    short, longer = small(epochs=1).fit(X), small(epochs=30).fit(X)
    assert longer.score(X) > short.score(X) + 0.5


# ------------------------------------------------- errors

@pytest.mark.parametrize("call", [
    lambda e: e.transform(data()), lambda e: e.inverse_transform(np.zeros((1, 2))),
    lambda e: e.score_samples(data()), lambda e: e.score(data()), lambda e: e.sample(2),
    lambda e: e.get_feature_names_out(), lambda e: e.save("unused.npz")])
def test_methods_before_fit_raise_not_fitted_error(call):
    with pytest.raises(NotFittedError) as info:
        call(VAEEstimator())
    assert str(info.value) == NOT_FITTED
    assert isinstance(info.value, ValueError) and isinstance(info.value, AttributeError)
    assert not hasattr(VAEEstimator(), "model_")


def test_feature_count_mismatch_is_reported_in_scikit_learns_words():
    est = small().fit(data())
    msg = re.escape("X has 3 features, but VAEEstimator is expecting 6 features as input.")
    for method in (est.transform, est.score_samples, est.score, est.partial_fit):
        with pytest.raises(ValueError, match=msg):
            method(data(d=3))
    with pytest.raises(ValueError, match=r"Z: expected shape \(n, 2\), got \(4, 3\)"):
        est.inverse_transform(np.zeros((4, 3)))


@pytest.mark.parametrize("X, error, match", [
    (np.array([[0.5, np.nan]]), ValueError, "NaN or infinity, got nan at index \\(0, 1\\)"),
    (np.array([[0.5, np.inf]]), ValueError, "NaN or infinity, got inf"),
    (np.array([[0.5, 1.5]]), ValueError, r"expected values in \[0, 1\]"),
    (np.array([[0.5, -0.5]]), ValueError, "Negative values in data"),
    (np.array([[0.5 + 1j]]), ValueError, "Complex data not supported"),
    (np.array(["a", "b"]).reshape(1, 2), TypeError, "expected real numbers, got dtype <U1"),
    (np.array([0.5, 0.5]), ValueError, "Reshape your data"),
    (np.zeros((0, 3)), ValueError, "at least one example"),
    (np.zeros((4, 0)), ValueError, r"0 feature\(s\) \(shape=\(4, 0\)\)"),
])
def test_bad_data_is_refused_with_a_message_naming_x(X, error, match):
    with pytest.raises(error, match=match):
        small().fit(X)


def test_sparse_input_is_refused():
    scipy_sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="X: sparse input is not supported"):
        small().fit(scipy_sparse.csr_array(data()))


def test_numeric_int_and_list_input_is_converted_like_scikit_learn():
    X = (data() > 0.5).astype(np.int64)
    expected = small().fit(X.astype(np.float64)).transform(X.astype(np.float64))
    np.testing.assert_array_equal(small().fit(X).transform(X), expected)
    np.testing.assert_array_equal(small().fit(X.tolist()).transform(X.tolist()), expected)
    with pytest.raises(TypeError, match="expected floating-point data"):  # VAE's own rule
        VAE(6, 2, hidden=(4,)).encode(X)


def test_gaussian_likelihood_accepts_any_real_data():
    X = 10 * np.random.default_rng(1).standard_normal((30, 4))
    est = small(likelihood="gaussian", sigma=2.0).fit(X)
    assert np.isfinite(est.score_samples(X)).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unscaled_gaussian_data_fits_in_either_dtype_without_warnings(dtype):
    """Raw features around 100 (what scikit-learn's checks feed): the
    features are standardized first, so nothing overflows float32
    (a RuntimeWarning is an error in this suite)."""
    rng = np.random.default_rng(2)
    X = 100.0 + 3.0 * rng.standard_normal((40, 5)) * np.arange(1, 6)
    est = small(likelihood="gaussian", dtype=dtype).fit(X)
    np.testing.assert_allclose(est.mean_, X.mean(axis=0))
    np.testing.assert_allclose(est.scale_, X.std(axis=0))
    scores = est.score_samples(X)
    assert scores.dtype == np.dtype(dtype) and np.isfinite(scores).all()
    # outputs come back in the data's units, around 100
    assert abs(float(est.sample(200).mean()) - 100.0) < 20.0
    assert abs(float(est.inverse_transform(est.transform(X)).mean()) - 100.0) < 5.0


def test_gaussian_score_is_in_the_original_units():
    """Scaling the data by c shifts each score by -d log c: the density of
    x = c u is p(u) / c^d. With c = 4 (exact in binary) the standardized
    data, the model and the noise are the same bits."""
    X = np.random.default_rng(3).standard_normal((30, 4))
    a = small(likelihood="gaussian", dtype="float64").fit(X)
    b = small(likelihood="gaussian", dtype="float64").fit(4.0 * X)
    np.testing.assert_allclose(b.score_samples(4.0 * X),
                               a.score_samples(X) - 4 * math.log(4.0), rtol=1e-12)


@pytest.mark.parametrize("likelihood,score_k", [("bernoulli", 1), ("bernoulli", 5),
                                                ("gaussian", 1), ("gaussian", 5)])
def test_an_example_scores_the_same_alone_in_any_order_and_subset(likelihood, score_k):
    X = data(n=30) if likelihood == "bernoulli" else np.random.default_rng(4).normal(
        size=(30, 6))
    est = small(likelihood=likelihood, score_k=score_k).fit(X)
    full = est.score_samples(X)
    perm = np.random.default_rng(5).permutation(30)
    np.testing.assert_array_equal(est.score_samples(X[perm]), full[perm])
    np.testing.assert_array_equal(est.score_samples(X[7:8]), full[7:8])
    np.testing.assert_array_equal(est.score_samples(X[10:20]), full[10:20])
    # the noise still varies from example to example and with the seed
    other = small(likelihood=likelihood, score_k=score_k, random_state=1)
    other.model_, other.n_features_in_ = est.model_, est.n_features_in_
    other.mean_, other.scale_ = est.mean_, est.scale_
    assert not np.array_equal(other.score_samples(X), full)


def test_save_and_load_keep_the_gaussian_scaling(tmp_path):
    X = 50.0 + 5.0 * np.random.default_rng(6).standard_normal((30, 4))
    est = small(likelihood="gaussian").fit(X)
    est.save(tmp_path / "est.npz")
    back = VAEEstimator.load(tmp_path / "est.npz")
    np.testing.assert_array_equal(back.mean_, est.mean_)
    np.testing.assert_array_equal(back.scale_, est.scale_)
    np.testing.assert_array_equal(back.score_samples(X), est.score_samples(X))


def extreme_gaussian_data():
    """Gaussian-likelihood data at float32's and float64's limits: wide,
    offset far beyond their spread, subnormal, beyond float32's range."""
    z = np.random.default_rng(8).standard_normal((40, 3))
    for dtype in ("float32", "float64"):
        for scale in (1e-320, 1e-44, 1e-30, 1.0, 1e30, 1e38, 3e38, 1e154, 1e300):
            yield pytest.param(dtype, scale * z, id=f"{dtype}-{scale:.0e}*z")
        # a spread below float32's spacing; an offset far beyond the spread
        yield pytest.param(dtype, 1e30 + 1e20 * z, id=f"{dtype}-1e30+1e20*z")
        yield pytest.param(dtype, 1e300 + 1e290 * z, id=f"{dtype}-1e300+1e290*z")
        yield pytest.param(dtype, np.where(z > 0, 1.7e308, -1.7e308), id=f"{dtype}-+-1.7e308")


@pytest.mark.parametrize("dtype, X", list(extreme_gaussian_data()))
def test_whatever_fit_accepts_score_accepts(dtype, X):
    """fit and score agree: on data that fit accepts, score_samples,
    transform and inverse_transform are finite (no RuntimeWarning, an
    error in this suite); what fit refuses, it refuses naming X and
    saying what to do."""
    est = small(likelihood="gaussian", dtype=dtype, epochs=1)
    try:
        est.fit(X)
    except ValueError as e:
        assert str(e).startswith("X: ") and "scale X" in str(e), str(e)
        with pytest.raises(ValueError, match="X: "):
            est.partial_fit(X)
        return
    scores = est.score_samples(X)
    assert scores.dtype == np.dtype(dtype) and np.isfinite(scores).all()
    assert np.isfinite(est.score(X))
    z = est.transform(X)
    assert np.isfinite(z).all() and np.isfinite(est.inverse_transform(z)).all()
    assert np.isfinite(est.mean_).all() and np.isfinite(est.scale_).all()


def test_data_beyond_float32_is_refused_by_fit_and_score_alike():
    """Values above float32's largest, 3.4e38, cannot reach a float32 model:
    fit refused to score what it had trained on; now both refuse, the
    message saying why and what to do, and a float64 model takes them."""
    X = 3e38 * np.random.default_rng(9).standard_normal((40, 3))  # up to 7e38
    msg = (r"X: values up to 7\.\d+e\+38 in absolute value do not fit in float32, the "
           r"estimator's dtype \(largest 3\.4e\+38\); scale X down \(e\.g\. X / "
           r"X\.std\(\)\) or use dtype='float64'")
    with pytest.raises(ValueError, match=msg):
        small(likelihood="gaussian").fit(X)
    fitted = small(likelihood="gaussian").fit(X / 1e10)
    with pytest.raises(ValueError, match=msg):
        fitted.score(X)
    est = small(likelihood="gaussian", dtype="float64").fit(X)
    assert np.isfinite(est.score_samples(X)).all()


def test_gaussian_scores_of_very_wide_data_stay_finite_in_float64():
    """Features around 1e200 (their squares overflow float64): the feature
    scaling is computed without squaring them, so scale_ is finite and
    the scores too (they were -inf, after an overflow warning)."""
    X = 1e200 * np.random.default_rng(10).standard_normal((40, 3))
    est = small(likelihood="gaussian", dtype="float64").fit(X)
    np.testing.assert_allclose(est.scale_, (X / 1e200).std(axis=0) * 1e200, rtol=1e-12)
    np.testing.assert_allclose(est.mean_, (X / 1e200).mean(axis=0) * 1e200, rtol=1e-12)
    assert np.isfinite(est.score_samples(X)).all()


def test_data_far_outside_the_training_range_is_refused_by_score():
    est = small(likelihood="gaussian").fit(1e-30 * np.random.default_rng(11).random((40, 3)))
    with pytest.raises(ValueError, match=r"X: standardized with mean_ and scale_ of fit, "
                                         r"values reach \d.*e\+\d+, beyond float32"):
        est.score(np.full((2, 3), 1e30))


# ------------------------------------------------- warm start

def test_partial_fit_continues_exactly_like_a_longer_fit():
    X = data()
    warm = small(epochs=2).fit(X)
    before = {k: v.copy() for k, v in warm.model_.params.items()}
    assert warm.partial_fit(X) is warm
    assert warm.trainer_.epochs_done == 3 and len(warm.history_) == 3
    assert any(not np.array_equal(before[k], warm.model_.params[k]) for k in before)
    longer = small(epochs=3).fit(X)
    for k, v in longer.model_.params.items():
        np.testing.assert_array_equal(warm.model_.params[k], v)


def test_partial_fit_on_an_unfitted_estimator_starts_a_model():
    X = data()
    est = small(epochs=5).partial_fit(X)
    assert est.trainer_.epochs_done == 1
    np.testing.assert_array_equal(est.transform(X), small(epochs=1).fit(X).transform(X))


def test_partial_fit_accepts_batches_smaller_than_batch_size():
    est = small(batch_size=16).fit(data(n=40))
    est.partial_fit(data(n=5, seed=1))
    assert est.trainer_.epochs_done == 3


# ------------------------------------------------- randomness

def test_int_random_state_is_reproducible_and_seeds_matter():
    X = data()
    a, b, c = small(random_state=3).fit(X), small(random_state=3).fit(X), small(random_state=4).fit(X)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    np.testing.assert_array_equal(a.sample(3), b.sample(3))
    assert not np.array_equal(a.transform(X), c.transform(X))


def test_repeated_scoring_and_sampling_agree():
    est = small().fit(data())
    np.testing.assert_array_equal(est.score_samples(data()), est.score_samples(data()))
    np.testing.assert_array_equal(est.sample(3), est.sample(3))


def test_generator_random_state_is_not_advanced():
    rng = np.random.default_rng(7)
    state = rng.bit_generator.state
    est = small(random_state=rng).fit(data())
    est.score(data())
    est.sample(2)
    assert rng.bit_generator.state == state


def test_bad_random_state_is_refused():
    with pytest.raises(TypeError, match="random_state: expected None, a non-negative int"):
        small(random_state=np.random.RandomState(0)).fit(data())


def test_importance_weighted_score_is_tighter_than_the_elbo():
    X = data(n=200, d=8)
    est = small(epochs=3, activation="tanh").fit(X)  # a posterior the KL has not collapsed
    elbo = est.score(X)
    est.set_params(score_k=50)
    assert est.score(X) > elbo + 0.1
    with pytest.raises(ValueError, match="score_k: expected an integer >= 1"):
        est.set_params(score_k=0).score(X)


# ------------------------------------------------- persistence

def test_pickle_round_trip_gives_the_same_outputs():
    X = data()
    est = small().fit(X)
    copy = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(copy.transform(X), est.transform(X))
    np.testing.assert_array_equal(copy.score_samples(X), est.score_samples(X))


def test_save_and_load_restore_a_fitted_estimator_that_continues(tmp_path):
    X = data()
    est = small(latent_dim=3).fit(X)
    path = est.save(tmp_path / "vae")
    loaded = VAEEstimator.load(path)
    assert loaded.get_params() == est.get_params()
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))
    est.partial_fit(X)
    loaded.partial_fit(X)
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))


def test_save_refuses_a_generator_random_state(tmp_path):
    est = small(random_state=np.random.default_rng(0)).fit(data())
    with pytest.raises(TypeError, match="random_state: a Generator cannot be saved"):
        est.save(tmp_path / "vae")


def test_importing_the_estimator_does_not_import_scikit_learn():
    code = "import sys, numpyvae.app.sklearn_estimator; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


# ------------------------------------------------- scikit-learn's checks

def check_instances():
    """Small, fast instances covering both likelihoods, both dtypes and
    both models (the two-layer one has a Bernoulli decoder)."""
    tiny = {"hidden": (4,), "epochs": 2, "batch_size": 16, "random_state": 0}
    return [VAEEstimator(likelihood="gaussian", **tiny),
            VAEEstimator(likelihood="gaussian", dtype="float64", **tiny),
            VAEEstimator(likelihood="bernoulli", **tiny),
            VAEEstimator(latent_dims=(8, 4), **tiny)]


NOT_IN_UNIT_INTERVAL = ("scikit-learn makes data non-negative for positive_only estimators "
                        "but does not bound it by 1; the Bernoulli likelihood needs X in [0, 1]")
BERNOULLI_FAILS = (
    "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self", "check_readonly_memmap_input",
    "check_n_features_in_after_fitting", "check_estimators_dtypes",
    "check_pipeline_consistency", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_transformer_data_not_an_array",
    "check_transformer_general", "check_transformer_preserve_dtypes",
    "check_fit2d_1sample", "check_fit2d_1feature", "check_dict_unchanged",
    "check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in",
    "check_fit2d_predict1d", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance")


def expected_failed_checks(estimator):
    """Only the Bernoulli likelihood's [0, 1] range (both models, the same
    checks); the Gaussian instances, float32 and float64, pass every check."""
    if estimator.likelihood == "bernoulli":
        return {name: NOT_IN_UNIT_INTERVAL for name in BERNOULLI_FAILS}
    return {}


if parametrize_with_checks is not None:
    with warnings.catch_warnings():  # by design VAEEstimator does not subclass BaseEstimator
        warnings.filterwarnings("ignore", message=".*does not inherit from.*BaseEstimator")
        sklearn_checks = parametrize_with_checks(
            check_instances(), expected_failed_checks=expected_failed_checks)

    @sklearn_checks
    def test_scikit_learn_estimator_checks(estimator, check):
        check(estimator)
else:
    def test_scikit_learn_estimator_checks():
        pytest.importorskip("sklearn", reason=NEEDS_SKLEARN)


# ------------------------------------------------- two stochastic layers

def two_layers(**kwargs):
    return small(**{"latent_dims": (3, 2), **kwargs})


def test_latent_dims_fits_a_two_layer_model_behind_the_same_methods():
    X = data()
    est = two_layers().fit(X)
    assert isinstance(est.model_, HierarchicalVAE)
    assert est.model_.config.latent_dims == (3, 2) and est.model_.config.hidden2 == (2, 2)
    z = est.transform(X[:5])  # the means of z1, the latent the decoder reads
    np.testing.assert_array_equal(z, est.model_.encode(X[:5].astype(np.float32))[0])
    assert z.shape == (5, 3) and z.dtype == np.float32
    assert est.inverse_transform(z).shape == (5, 6)
    assert est.sample(4).shape == (4, 6)
    assert list(est.get_feature_names_out()) == [f"vaeestimator{j}" for j in range(3)]
    assert np.isfinite(est.score_samples(X)).all()
    assert two_layers(hidden2=(5,)).fit(X).model_.config.hidden2 == (5,)


def test_two_layer_scores_are_per_example_and_importance_weighting_tightens_them():
    X = data(n=60)
    est = two_layers(epochs=3, activation="tanh").fit(X)
    full = est.score_samples(X)
    perm = np.random.default_rng(5).permutation(60)
    np.testing.assert_array_equal(est.score_samples(X[perm]), full[perm])
    np.testing.assert_array_equal(est.score_samples(X[7:8]), full[7:8])
    elbo = est.score(X)
    est.set_params(score_k=50)
    np.testing.assert_array_equal(est.score_samples(X[10:20]), est.score_samples(X)[10:20])
    assert est.score(X) > elbo  # IWAE-50 >= the sampled ELBO, on average


def test_two_layer_estimator_saves_loads_and_continues(tmp_path):
    X = data()
    est = two_layers(hidden2=(4,)).fit(X)
    loaded = VAEEstimator.load(est.save(tmp_path / "two"))
    assert loaded.get_params() == est.get_params()
    assert isinstance(loaded.model_, HierarchicalVAE)
    np.testing.assert_array_equal(loaded.score_samples(X), est.score_samples(X))
    est.partial_fit(X)
    loaded.partial_fit(X)
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"likelihood": "gaussian"}, ValueError, "likelihood: the two-layer model"),
    ({"beta": 0.5}, ValueError, "beta: the two-layer model"),
    ({"posterior": "fixed"}, ValueError, "posterior: the two-layer model"),
    ({"sigma": 2.0}, ValueError, "sigma: the two-layer model"),
    ({"latent_dims": 3}, TypeError, "latent_dims: expected a sequence"),
    ({"latent_dims": (3, 2, 1)}, ValueError, "latent_dims: expected two sizes"),
    ({"latent_dims": None, "hidden2": (4,)}, ValueError, "hidden2: only used with latent_dims"),
])
def test_two_layer_arguments_are_refused_at_fit_naming_them(kwargs, error, match):
    with pytest.raises(error, match=match):
        two_layers(**kwargs).fit(data())


# ------------------------------------------------- docs/sklearn.md

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
RECORD = BENCHMARKS / "results" / "sklearn-example.json"


def example_script():
    """benchmarks/sklearn_example.py, which runs the page's example and
    writes the record the page quotes."""
    sys.path.insert(0, str(BENCHMARKS))
    import sklearn_example
    return sklearn_example


def numbers_in_the_docs(text: str) -> dict:
    """What docs/sklearn.md quotes: the comments after ``best = ...``,
    ``elbo_cv = ...``, ``elbo_test = ...`` and ``accuracy = ...`` in its
    python block, and each accuracy its prose gives."""
    (block,) = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    quoted = {"best": ast.literal_eval(re.search(r"^best = .*# (\{.*\})$", block,
                                                 re.M).group(1))}
    for name in ("elbo_cv", "elbo_test", "accuracy"):
        quoted[name] = float(re.search(rf"^{name} = .*# (-?\d+\.\d+)", block, re.M).group(1))
    quoted["accuracy in the prose"] = [float(a) for a in re.findall(
        r"reaches (\d\.\d+) of the test digits", text)]
    return quoted


def test_the_numbers_in_the_docs_are_those_of_the_kept_record():
    record = json.loads(RECORD.read_text())
    quoted = numbers_in_the_docs(DOCS.read_text(encoding="utf-8"))
    assert quoted.pop("accuracy in the prose") == [record["printed"]["accuracy"]]
    assert quoted == record["printed"]
    assert record["printed"] == example_script().printed({**record["printed"],
                                                          **record["values"]})
    assert record["command"].startswith("python benchmarks/sklearn_example.py")
    assert {"platform", "cpu", "cores", "python", "numpy", "scikit-learn"} <= set(
        record["machine"])
    text = DOCS.read_text(encoding="utf-8")
    assert "benchmarks/results/sklearn-example.json" in text
    assert f"NumPy {record['machine']['numpy']}" in text and record["date"][:10] in text
    assert f"scikit-learn {record['machine']['scikit-learn']}" in text


def test_a_stale_number_in_the_docs_is_caught():
    text = DOCS.read_text(encoding="utf-8")
    quoted = numbers_in_the_docs(text)
    other = round(quoted["elbo_cv"] - 0.2, 1)
    stale = text.replace(f"# {quoted['elbo_cv']:.1f} nats", f"# {other:.1f} nats", 1)
    assert numbers_in_the_docs(stale)["elbo_cv"] == other != quoted["elbo_cv"]


def test_docs_example_reproduces_the_kept_record():
    """The page's example run as written (about 3 s) prints the record's
    numbers, to the precision the page prints."""
    pytest.importorskip("sklearn", reason=NEEDS_SKLEARN)
    script = example_script()
    record = json.loads(RECORD.read_text())
    namespace = script.run_example()
    assert script.printed(namespace) == record["printed"], (
        f"the record was made on {record['machine']}; if the code changed, rerun "
        f"{record['command']!r} and update docs/sklearn.md")
    assert namespace["best"]["vaeestimator__latent_dim"] == 8  # 1 nat ahead of 2
    assert namespace["accuracy"] > 0.5  # chance is 0.1
