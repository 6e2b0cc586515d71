"""The one streaming estimator (estimators.log_mean_weight) for any
model of the protocol: it is the bound heads of bounds.py over the model's
log-weights, streamed in chunks; the result does not depend on the
chunks (k need not be a multiple of them), on `fast`, or on the model."""

import math
import tracemalloc

import numpy as np
import pytest

from numpyvae import VAE, HierarchicalVAE, estimators
from numpyvae.estimators import iwae_bound, log_mean_weight, naive_log_likelihood, sampled_elbo
from numpyvae.reference import bounds

K = 23  # a prime: no chunk size below it divides it


def one_layer(dtype="float64"):
    return VAE(6, 3, hidden=(5,), activation="tanh", dtype=dtype, rng=0)


def two_layers(dtype="float64"):
    return HierarchicalVAE(6, (3, 2), hidden=(5,), hidden2=(4,), dtype=dtype, rng=0)


MODELS = {"one layer": one_layer, "two layers": two_layers}


def data(n=9, seed=1):
    return (np.random.default_rng(seed).random((n, 6)) < 0.5) * 1.0


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
@pytest.mark.parametrize("bound,head", [("iwae", bounds.iwae_bound_forward),
                                        ("elbo", bounds.elbo_bound_forward)])
def test_the_stream_is_the_head_over_the_models_log_weights(make, bound, head):
    model, x = make(), data()
    eps = np.random.default_rng(3).standard_normal((K, 9, model.config.noise_dim))
    direct = head(model.log_weights(x, eps)[0])[0]  # one call, all k samples at once
    for chunk_size, batch_size in ((K, 9), (5, 4), (7, 1), (1, 9), (None, None)):
        streamed = log_mean_weight(model, x, K, np.random.default_rng(3), "posterior", bound,
                                   chunk_size, batch_size, fast=False)
        np.testing.assert_allclose(streamed, direct, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_the_prior_estimate_is_the_mean_prior_weight(make):
    model, x = make(), data()
    eps = np.random.default_rng(4).standard_normal((K, 9, model.config.noise_dim))
    log_w = model.prior_log_weights(x, eps)  # (k, n)
    direct = np.log(np.exp(log_w).mean(axis=0))
    for chunk_size in (K, 5, 7):
        got = naive_log_likelihood(model, x, K, np.random.default_rng(4), chunk_size=chunk_size)
        np.testing.assert_allclose(got, direct, rtol=1e-12)


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_a_k_that_is_not_a_multiple_of_the_chunk_subtracts_log_k(make):
    # The last chunk holds 3 of the 23 samples; subtracting log 3 instead
    # of log 23 would shift every estimate by log(23 / 3) = 2.04 nats.
    model, x = make(), data()
    whole = iwae_bound(model, x, K, np.random.default_rng(5), chunk_size=K, fast=False)
    cut = iwae_bound(model, x, K, np.random.default_rng(5), chunk_size=5, fast=False)
    np.testing.assert_allclose(cut, whole, rtol=1e-12)
    eps = np.random.default_rng(5).standard_normal((K, 9, model.config.noise_dim))
    log_w = model.log_weights(x, eps)[0]
    np.testing.assert_allclose(whole, np.log(np.exp(log_w).sum(axis=0)) - math.log(K),
                               rtol=1e-12)


def test_fast_and_reference_agree_for_both_models():
    vae, hvae, x = one_layer(), two_layers(), data()
    fast = iwae_bound(vae, x, K, np.random.default_rng(6))
    reference = iwae_bound(vae, x, K, np.random.default_rng(6), fast=False)
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-9)
    # the two-layer model has no fast form: fast=True runs the reference
    np.testing.assert_array_equal(iwae_bound(hvae, x, K, np.random.default_rng(6)),
                                  iwae_bound(hvae, x, K, np.random.default_rng(6), fast=False))


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_the_sampled_elbo_lies_below_the_iwae_bound_on_the_same_noise(make):
    # Same seed, same samples: Jensen per example, not only on average.
    model, x = make(), data(40)
    lower = sampled_elbo(model, x, K, np.random.default_rng(7))
    upper = iwae_bound(model, x, K, np.random.default_rng(7), fast=False)
    assert np.all(lower <= upper + 1e-12) and np.any(upper - lower > 1e-3)


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_float32_models_give_float32_estimates(make):
    model, x = make("float32"), data()
    for estimate in (iwae_bound(model, x, 5, 0), naive_log_likelihood(model, x, 5, 0),
                     sampled_elbo(model, x, 5, 0), estimators.elbo(model, x, 0)):
        assert estimate.dtype == np.float32 and estimate.shape == (9,)
        assert np.isfinite(estimate).all()


def test_the_two_layer_estimate_stays_within_the_memory_budget(monkeypatch):
    monkeypatch.setattr(estimators, "MEMORY_BUDGET", 4 * 2**20)
    model = HierarchicalVAE(784, (20, 10), hidden=(100,), hidden2=(50,), rng=0)
    x = (np.random.default_rng(0).random((200, 784)) < 0.3).astype(np.float32)
    tracemalloc.start()
    try:
        iwae_bound(model, x, 30, np.random.default_rng(1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 4 * 2**20


def test_bad_arguments_name_themselves():
    model, x = one_layer(), data()
    with pytest.raises(ValueError, match="proposal: expected 'posterior' or 'prior'"):
        log_mean_weight(model, x, 3, 0, proposal="q")
    with pytest.raises(ValueError, match="bound: expected 'iwae' or 'elbo'"):
        log_mean_weight(model, x, 3, 0, bound="cubo")
    with pytest.raises(TypeError, match="model: expected a numpyvae model"):
        log_mean_weight(object(), x, 3, 0)
    with pytest.raises(ValueError, match="x: expected shape"):
        iwae_bound(two_layers(), x[:, :4], 3, 0)
    with pytest.raises(ValueError, match="x: .*\\[0, 1\\]"):
        iwae_bound(two_layers(), x + 2.0, 3, 0)
