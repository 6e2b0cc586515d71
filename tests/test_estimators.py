"""Tests of numpyvae.estimators: the bounds' order, their limits, the
closed form of the linear-Gaussian VAE, chunking, dtypes and errors."""

import tracemalloc

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from numpyvae import VAE, estimators
from numpyvae.estimators import (
    chunk_plan,
    elbo,
    exact_log_likelihood,
    iwae_bound,
    log_mean_exp,
    naive_log_likelihood,
)


def linear_gaussian(seed=0, d_x=4, d_z=2, sigma=0.5, dtype="float64", **kw):
    """A linear-Gaussian VAE whose p(x) is N(b, W^T W + sigma^2 I)."""
    return VAE(d_x, d_z, hidden=(), likelihood="gaussian", sigma=sigma, dtype=dtype,
               rng=seed, **kw)


def sample_x(model, n, seed):
    """n draws of x from the model itself: x = z W + b + sigma * noise."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, model.config.latent_dim))
    noise = rng.standard_normal((n, model.config.input_dim))
    return model.decode(z.astype(model.dtype)) + model.config.sigma * noise


def match_posterior(model, inflate=1.0):
    """Set the linear encoder to the exact posterior's mean and marginal
    variances (times `inflate`): q = p(z|x) exactly when d_z = 1.

    p(z|x) = N((x - b) W^T S / sigma^2, S),  S = (I + W W^T / sigma^2)^-1.
    """
    W, b = model.params["out.W"], model.params["out.b"]
    s2 = model.config.sigma ** 2
    S = np.linalg.inv(np.eye(W.shape[0]) + W @ W.T / s2)  # (d_z, d_z)
    model.params["mu.W"] = (W.T @ S / s2).astype(model.dtype)  # (d_x, d_z)
    model.params["mu.b"] = (-b @ model.params["mu.W"]).astype(model.dtype)
    if model.config.posterior == "diagonal":
        model.params["log_var.W"] = np.zeros_like(model.params["log_var.W"])
        model.params["log_var.b"] = np.log(inflate * np.diag(S)).astype(model.dtype)
    return model


def small_bernoulli(seed=0, dtype="float64"):
    model = VAE(6, 2, hidden=(8,), dtype=dtype, rng=seed)
    x = np.random.default_rng(seed + 1).random((200, 6))
    return model, x


def test_log_mean_exp_matches_the_direct_formula():
    a = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_allclose(log_mean_exp(a, axis=0), np.log(np.exp(a).mean(axis=0)),
                               rtol=1e-12)


def test_exact_log_likelihood_matches_scipy_multivariate_normal():
    model = linear_gaussian(seed=3, d_x=5, d_z=3, sigma=0.7)
    x = sample_x(model, 20, seed=4)
    W, b = model.params["out.W"], model.params["out.b"]
    expected = multivariate_normal(mean=b, cov=W.T @ W + 0.49 * np.eye(5)).logpdf(x)
    np.testing.assert_allclose(exact_log_likelihood(model, x), expected, rtol=1e-10)


def test_exact_log_likelihood_changes_when_a_weight_changes():
    model = linear_gaussian()
    x = sample_x(model, 3, seed=1)
    before = exact_log_likelihood(model, x)
    model.params["out.W"][0, 0] += 0.1
    assert np.all(np.abs(exact_log_likelihood(model, x) - before) > 1e-6)


def test_iwae_with_the_exact_posterior_is_exact_for_every_k():
    # d_z = 1: q(z|x) = p(z|x), so every weight p(x|z) r(z) / q(z|x) is p(x).
    model = match_posterior(linear_gaussian(seed=2, d_z=1))
    x = sample_x(model, 10, seed=3)
    exact = exact_log_likelihood(model, x)
    for k in (1, 3):
        np.testing.assert_allclose(iwae_bound(model, x, k, 0), exact, rtol=1e-10)
    # The ELBO's one-sample reconstruction term is still random; its
    # mean is log p(x) - KL(q || p(z|x)) = log p(x).
    bound = elbo(model, np.repeat(x[:1], 4000, axis=0), 0)
    assert abs(bound.mean() - exact[0]) < 4 * bound.std() / np.sqrt(bound.size)


def test_iwae_at_large_k_approaches_the_exact_log_likelihood():
    model = match_posterior(linear_gaussian(seed=1), inflate=1.5)
    x = sample_x(model, 10, seed=2)
    exact = exact_log_likelihood(model, x)
    x_rep, exact_rep = np.repeat(x, 200, axis=0), np.repeat(exact, 200)
    gaps = [np.mean(exact_rep - iwae_bound(model, x_rep, k, np.random.default_rng(0)))
            for k in (1, 100)]  # mean gaps to log p(x) over 200 repeats per x
    assert gaps[0] > 0.1 > gaps[1] > 0
    np.testing.assert_allclose(iwae_bound(model, x, 2000, 1), exact, atol=0.05)


def test_iwae_with_a_fixed_width_posterior_approaches_the_exact_value():
    model = match_posterior(linear_gaussian(seed=1, posterior="fixed", delta=0.6))
    x = sample_x(model, 10, seed=2)
    bound = iwae_bound(model, x, 2000, np.random.default_rng(0))
    np.testing.assert_allclose(bound, exact_log_likelihood(model, x), atol=0.1)


def test_iwae_exceeds_the_elbo_on_average_and_grows_with_k():
    model, x = small_bernoulli()
    rng = np.random.default_rng(0)
    means = [iwae_bound(model, x, k, rng).mean() for k in (1, 5, 50)]
    assert np.mean(elbo(model, x, rng)) < means[1] < means[2]
    assert means[0] < means[1]


def test_iwae_with_k_1_is_the_elbo_in_expectation():
    # Same seed -> same eps, so the log p(x|z) terms agree and the two
    # differ by KL - (log q - log r), whose mean over eps is zero.
    model, x = small_bernoulli(seed=2)
    x = np.repeat(x, 20, axis=0)  # (4000, 6)
    one = iwae_bound(model, x, 1, np.random.default_rng(7))
    bound = elbo(model, x, np.random.default_rng(7))
    diff = one - bound
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(diff.size)
    assert diff.std() > 0  # the KL really is sampled in one and exact in the other


def test_naive_estimate_is_biased_low():
    model = linear_gaussian(seed=0, sigma=0.3)
    x = np.repeat(sample_x(model, 1, seed=5), 2000, axis=0)  # 2000 repeats of one x
    est = naive_log_likelihood(model, x, 10, np.random.default_rng(0))
    exact = exact_log_likelihood(model, x[:1])[0]
    standard_error = est.std() / np.sqrt(est.size)
    assert est.mean() < exact - 3 * standard_error


def test_naive_estimate_is_consistent_as_m_grows():
    model = linear_gaussian(seed=0, d_z=1, sigma=1.0)
    x = sample_x(model, 5, seed=1)
    est = naive_log_likelihood(model, x, 20_000, np.random.default_rng(0))
    np.testing.assert_allclose(est, exact_log_likelihood(model, x), atol=0.05)


@pytest.mark.parametrize("chunk_size, batch_size", [(7, None), (1, 1), (30, 3), (None, 4)])
def test_chunking_does_not_change_the_result(chunk_size, batch_size):
    model, x = small_bernoulli(seed=4)
    x = x[:11]
    whole = iwae_bound(model, x, 30, np.random.default_rng(3), chunk_size=30, batch_size=11)
    chunked = iwae_bound(model, x, 30, np.random.default_rng(3), chunk_size=chunk_size,
                         batch_size=batch_size)
    np.testing.assert_allclose(chunked, whole, rtol=1e-12)
    naive = naive_log_likelihood(model, x, 30, np.random.default_rng(3), chunk_size=30)
    naive_chunked = naive_log_likelihood(model, x, 30, np.random.default_rng(3),
                                         chunk_size=chunk_size, batch_size=batch_size)
    np.testing.assert_allclose(naive_chunked, naive, rtol=1e-12)


def test_chunk_plan_fits_mnist_with_k_5000_in_the_budget():
    model = VAE(784, 20, hidden=(400,))
    chunk, batch = chunk_plan(model, n=10_000, k=5000)
    eps_bytes = 4 * chunk * 10_000 * 20
    widths = 400 + 20 + 20 + 400 + 784  # every dense layer's output
    row_bytes = 4 * (8 * 784 + 4 * widths + 4 * 20)
    assert eps_bytes + chunk * batch * row_bytes <= estimators.MEMORY_BUDGET < 2**30
    assert chunk >= 1 and batch >= 1


def test_peak_memory_stays_within_the_budget(monkeypatch):
    monkeypatch.setattr(estimators, "MEMORY_BUDGET", 4 * 2**20)
    model = VAE(784, 20, hidden=(400,), rng=0)
    x = (np.random.default_rng(0).random((300, 784)) < 0.3).astype(np.float32)
    rng = np.random.default_rng(1)
    tracemalloc.start()
    try:
        iwae_bound(model, x, 40, rng)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 4 * 2**20


@pytest.mark.parametrize("kw", [{}, dict(posterior="fixed", delta=0.6)],
                         ids=["diagonal", "fixed-delta-0.6"])
@pytest.mark.parametrize("estimator", ["naive", "elbo", "iwae"])
def test_float32_and_float64_agree_and_keep_their_dtype(estimator, kw):
    # sigma = 0.5 (and delta = 0.6): away from 1, where sigma-for-sigma^2
    # and log-delta-for-2-log-delta slips would not show.
    model64 = match_posterior(linear_gaussian(seed=2, **kw))
    model32 = linear_gaussian(seed=2, dtype="float32", **kw)
    model32.params = {k: v.astype(np.float32) for k, v in model64.params.items()}
    x = sample_x(model64, 2000, seed=3)
    out = {}
    for model in (model32, model64):
        rng = np.random.default_rng(0)
        if estimator == "naive":
            out[model.dtype] = naive_log_likelihood(model, x, 20, rng)
        elif estimator == "elbo":
            out[model.dtype] = elbo(model, x, rng)
        else:
            out[model.dtype] = iwae_bound(model, x, 20, rng)
    assert out[np.dtype("float32")].dtype == np.float32
    assert out[np.dtype("float64")].dtype == np.float64
    # Different noise streams per dtype: compare averages, not draws.
    a, b = out[np.dtype("float32")], out[np.dtype("float64")]
    assert abs(a.mean() - b.mean()) < 4 * np.sqrt((a.var() + b.var()) / x.shape[0])
    assert a.std() > 0.01
    np.testing.assert_allclose(exact_log_likelihood(model32, x),
                               exact_log_likelihood(model64, x), rtol=1e-5)


def test_estimators_are_reproducible_from_a_seed():
    model, x = small_bernoulli()
    np.testing.assert_array_equal(iwae_bound(model, x, 5, 3), iwae_bound(model, x, 5, 3))


def test_bad_inputs_raise_errors_naming_the_argument():
    model = linear_gaussian()
    x = sample_x(model, 3, seed=0)
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="model"):
        iwae_bound("vae", x, 5, rng)
    with pytest.raises(ValueError, match="k: expected an integer >= 1"):
        iwae_bound(model, x, 0, rng)
    with pytest.raises(TypeError, match="m: expected an integer"):
        naive_log_likelihood(model, x, 2.5, rng)
    with pytest.raises(ValueError, match="chunk_size"):
        iwae_bound(model, x, 5, rng, chunk_size=0)
    with pytest.raises(ValueError, match="x: expected shape"):
        elbo(model, x[:, :2], rng)
    with pytest.raises(TypeError, match="x: expected floating-point"):
        iwae_bound(model, np.ones((2, 4), dtype=int), 5, rng)
    with pytest.raises(TypeError, match="rng"):
        iwae_bound(model, x, 5, "seed")
    with pytest.raises(ValueError, match="x: expected finite"):
        naive_log_likelihood(model, np.full((1, 4), np.nan), 5, rng)


def test_point_mass_posterior_is_refused_by_the_bounds():
    model = linear_gaussian(posterior="fixed", delta=0.0)
    x = sample_x(model, 2, seed=0)
    for estimator in (lambda: iwae_bound(model, x, 5, 0), lambda: elbo(model, x, 0)):
        with pytest.raises(ValueError, match="delta=0"):
            estimator()
    assert np.all(np.isfinite(naive_log_likelihood(model, x, 5, 0)))  # needs no q


@pytest.mark.parametrize("kw", [dict(hidden=(4,), likelihood="gaussian"),
                                dict(hidden=(), likelihood="bernoulli")])
def test_exact_log_likelihood_refuses_other_models(kw):
    model = VAE(4, 2, **kw)
    with pytest.raises(ValueError, match="linear-Gaussian"):
        exact_log_likelihood(model, np.full((1, 4), 0.5, dtype=np.float32))


def test_standard_error_is_the_spread_of_the_mean():
    assert estimators.standard_error(np.array([1.0, 3.0])) == pytest.approx(1.0)  # sqrt(2)/sqrt(2)
    assert estimators.standard_error(np.full(10, -24.0)) == 0.0
    assert estimators.standard_error(np.array([5.0])) is None
    assert estimators.standard_error(np.array([1.0, -np.inf])) is None
    rng = np.random.default_rng(0)
    draws = rng.normal(0.0, 2.0, size=(400, 100))  # 400 means of 100 draws of sd 2
    ses = [estimators.standard_error(row) for row in draws]
    assert np.mean(ses) == pytest.approx(0.2, rel=0.05)
    assert draws.mean(axis=1).std() == pytest.approx(0.2, rel=0.15)
