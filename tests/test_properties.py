"""Properties of whole models that finite differences cannot show.

* IWAE >= ELBO on the same samples: log of a mean >= mean of the logs
  (Jensen), exactly, draw by draw, against the ELBO with the KL sampled
  on those samples (`model.log_weights_forward`, one slab at a time).
  The ELBO with the analytic KL equals it in expectation only.
* E[L_k] is non-decreasing in k (Burda et al., 2016, Theorem 1),
  checked on averages over many draws with a tolerance of 4 standard
  errors of the mean difference.
* KL(q || r) >= 0, and = 0 exactly when q is the prior.
* On the linear-Gaussian VAE, whose log p(x) is known in closed form,
  E[ELBO] <= E[IWAE_k] <= log p(x).
"""

import math
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyvae import VAE
from numpyvae.estimators import elbo, exact_log_likelihood, iwae_bound
from numpyvae.reference.layers import mlp_forward
from numpyvae.reference.vae import bound_loss_forward, log_weights_forward, loss_forward
from numpyvae.testing import batches, vae_configs, vae_models

seeds = st.integers(0, 2**32 - 1)
Z = 4.0  # standard errors allowed: a false alarm has probability 3e-5 per comparison


def iwae_terms(model, x, eps):
    """The terms of the IWAE bound of the samples eps (k, n, d_z)."""
    return bound_loss_forward(model.params, x, eps, model.config, "iwae")[1]


def log_weights(model, x, eps):
    """log w_i of each slab of eps (k, n, d_z), one call each: the one-sample
    IWAE, (k, n)."""
    return np.stack([iwae_terms(model, x, eps[i:i + 1])["iwae"] for i in range(eps.shape[0])])


def assert_non_decreasing(draws: dict, z: float = Z):
    """draws[k]: per-draw values of L_k on common noise; each step in k
    must not fall by more than z standard errors of the mean difference."""
    ks = sorted(draws)
    for k, k2 in pairwise(ks):
        diff = draws[k2] - draws[k]
        se = diff.std(ddof=1) / math.sqrt(diff.size)
        assert diff.mean() >= -z * se - 1e-12, (
            f"E[L_{k2}] < E[L_{k}]: {diff.mean():.3g} +- {se:.2g}")


# ---------------------------------------------------- IWAE >= ELBO

@given(st.data(), st.integers(2, 6), seeds)
def test_iwae_is_at_least_the_elbo_of_the_same_samples(data, k, seed):
    model = data.draw(vae_models())
    x, _ = data.draw(batches(model, max_batch=3))
    eps = np.random.default_rng(seed).standard_normal((k, *x.shape[:1],
                                                       model.config.latent_dim))
    terms = iwae_terms(model, x, eps)
    log_w = log_weights(model, x, eps)  # (k, n)
    np.testing.assert_allclose(log_weights_forward(model.params, x, eps, model.config)[0],
                               log_w, rtol=1e-12, atol=1e-12)  # k samples in one call
    sampled_elbo = log_w.mean(axis=0)
    assert np.all(terms["iwae"] >= sampled_elbo - 1e-12 * np.abs(sampled_elbo))
    spread = log_w.max(axis=0) - log_w.min(axis=0)
    strict = spread > 1e-3  # unequal weights: Jensen is strict
    assert np.all(terms["iwae"][strict] > sampled_elbo[strict])


def test_identical_samples_make_iwae_and_the_sampled_elbo_equal():
    model = VAE(4, 2, hidden=(3,), activation="tanh", dtype="float64", rng=0)
    x = np.random.default_rng(1).random((3, 4))
    eps = np.repeat(np.random.default_rng(2).standard_normal((1, 3, 2)), 5, axis=0)
    terms = iwae_terms(model, x, eps)
    np.testing.assert_allclose(terms["iwae"], log_weights(model, x, eps).mean(axis=0),
                               rtol=1e-13)


def test_analytic_and_sampled_kl_elbos_agree_only_in_expectation():
    # log w = log p(x|z) - (log q - log r); E_q[log q - log r] = KL.
    model = VAE(5, 2, hidden=(4,), activation="tanh", likelihood="gaussian", sigma=0.6,
                dtype="float64", rng=3)
    x = np.repeat(np.random.default_rng(4).standard_normal((1, 5)), 4000, axis=0)
    eps = np.random.default_rng(5).standard_normal((1, 4000, 2))
    terms = iwae_terms(model, x, eps)  # k = 1: iwae = elbo = log w, the KL sampled
    analytic = loss_forward(model.params, x, eps[0], model.config, 1.0)[1]
    np.testing.assert_allclose(terms["log_lik"], analytic["log_lik"], rtol=1e-12)  # same z
    diff = terms["iwae"] - (analytic["log_lik"] - analytic["kl"])  # KL - sampled KL
    np.testing.assert_allclose(diff, analytic["kl"] - terms["kl"], rtol=1e-9, atol=1e-9)
    assert diff.std() > 0.1  # not equal draw by draw
    assert abs(diff.mean()) < Z * diff.std(ddof=1) / math.sqrt(diff.size)


# ------------------------------------------ E[L_k] non-decreasing in k

KS = (1, 2, 4, 8)


def iwae_draws(model, x, m, seed, minus_log_k_twice=False):
    """Per draw, the batch-mean L_k for each k in KS, on common noise."""
    n = x.shape[0]
    x_rep = np.tile(x, (m, 1))  # (m n, d_x)
    eps = np.random.default_rng(seed).standard_normal((max(KS), m * n,
                                                       model.config.latent_dim))
    draws = {}
    for k in KS:
        bound = iwae_terms(model, x_rep, eps[:k])["iwae"]
        if minus_log_k_twice:  # a planted bug: -log k applied twice
            bound = bound - math.log(k)
        draws[k] = bound.reshape(m, n).mean(axis=1)
    return draws


@given(st.data(), seeds)
def test_iwae_expectation_does_not_decrease_with_k(data, seed):
    model = data.draw(vae_models(vae_configs(max_input_dim=4, max_latent_dim=2)))
    x, _ = data.draw(batches(model, max_batch=2))
    assert_non_decreasing(iwae_draws(model, x, 1000, seed))


def test_non_decreasing_check_fails_on_a_planted_log_k_error():
    # With the exact posterior every weight is p(x): E[L_k] is flat, and a
    # second -log k makes it fall by log 2 per doubling.
    model = VAE(3, 1, hidden=(), likelihood="gaussian", sigma=0.8, dtype="float64", rng=0)
    W, b, s2 = model.params["out.W"], model.params["out.b"], 0.64
    S = 1.0 / (1.0 + float((W @ W.T)[0, 0]) / s2)  # d_z = 1: q = p(z|x) exactly
    model.params["mu.W"] = W.T * S / s2
    model.params["mu.b"] = -(b @ model.params["mu.W"])
    model.params["log_var.W"][:] = 0.0
    model.params["log_var.b"][:] = math.log(S)
    x = np.random.default_rng(1).standard_normal((2, 3))
    draws = iwae_draws(model, x, 200, 2)
    assert_non_decreasing(draws)
    with pytest.raises(AssertionError, match="E\\[L_2\\] < E\\[L_1\\]"):
        assert_non_decreasing(iwae_draws(model, x, 200, 2, minus_log_k_twice=True))


def test_the_bound_grows_strictly_for_an_untrained_encoder():
    model = VAE(6, 2, hidden=(5,), dtype="float64", rng=0)
    x = np.random.default_rng(0).random((3, 6))
    draws = iwae_draws(model, x, 500, 1)
    gain = draws[8] - draws[1]
    assert gain.mean() > Z * gain.std(ddof=1) / math.sqrt(gain.size)


# ------------------------------------------------------ KL >= 0

def kl_of(model, x):
    """The analytic KL per example, as the loss and the model's ELBO give it."""
    eps = np.zeros((x.shape[0], model.config.latent_dim))
    kl = loss_forward(model.params, x, eps, model.config, 1.0)[1]["kl"]
    np.testing.assert_allclose(model.elbo_terms(x, 0)["kl"], kl, rtol=1e-12, atol=1e-14)
    return kl


@given(st.data(), seeds)
def test_kl_is_non_negative_and_zero_only_at_the_prior(data, seed):
    model = data.draw(vae_models())
    x, _ = data.draw(batches(model, max_batch=3))
    c, rng = model.config, np.random.default_rng(seed)
    assert np.all(kl_of(model, x) >= 0)
    heads = ["mu.W", "mu.b"] + (["log_var.W", "log_var.b"] if c.posterior == "diagonal"
                                else [])
    for name in heads:  # mu = 0, log_var = 0: q = r when delta is 1
        model.params[name][...] = 0.0
    kl = kl_of(model, x)
    if c.posterior == "fixed" and c.delta != 1.0:
        expected = 0.5 * c.latent_dim * (c.delta ** 2 - math.log(c.delta ** 2) - 1.0)
        np.testing.assert_allclose(kl, expected, rtol=1e-12)
        assert np.all(kl > 0)
    else:
        np.testing.assert_array_equal(kl, 0.0)
    name = heads[rng.integers(len(heads))]  # move q off the prior, by a little
    index = tuple(rng.integers(s) for s in model.params[name].shape)
    model.params[name][index] = rng.choice([-1.0, 1.0]) * rng.uniform(1e-3, 1.0)
    moved = kl_of(model, x)
    # The heads read the last hidden layer h (x itself without one): a
    # weight W[i, j] moves q only for rows whose h[:, i] is nonzero (a dead
    # relu feeds none), a bias for every row. Off the prior the KL grows.
    h = mlp_forward(model.params, x, "enc", len(c.hidden), c.activation)[0]
    feed = np.ones(x.shape[0]) if name.endswith(".b") else np.abs(h[:, index[0]])
    assert np.all(moved >= kl)
    np.testing.assert_array_equal(moved[feed == 0], kl[feed == 0])
    assert np.all(moved[feed > 1e-3] > kl[feed > 1e-3])


# ---------------------------------------- bounds bracket exact log p(x)

@given(d_x=st.integers(1, 4), d_z=st.integers(1, 3), sigma=st.floats(0.3, 2.0),
       posterior=st.sampled_from(["diagonal", "fixed"]), delta=st.floats(0.3, 1.5),
       seed=seeds)
def test_elbo_and_iwae_bracket_the_exact_log_likelihood(d_x, d_z, sigma, posterior,
                                                        delta, seed):
    model = VAE(d_x, d_z, hidden=(), likelihood="gaussian", sigma=sigma,
                posterior=posterior, delta=delta if posterior == "fixed" else None,
                dtype="float64", rng=seed)
    rng = np.random.default_rng(seed)
    x = model.decode(rng.standard_normal((2, d_z))) + sigma * rng.standard_normal((2, d_x))
    m = 1000
    x_rep = np.repeat(x, m, axis=0)
    exact = exact_log_likelihood(model, x)
    lower = elbo(model, x_rep, rng).reshape(2, m)
    upper = iwae_bound(model, x_rep, 10, rng).reshape(2, m)
    for lo, hi, ex in zip(lower, upper, exact, strict=True):
        se_lo, se_hi = lo.std(ddof=1) / math.sqrt(m), hi.std(ddof=1) / math.sqrt(m)
        assert hi.mean() <= ex + Z * se_hi + 1e-12
        assert lo.mean() <= hi.mean() + Z * math.hypot(se_lo, se_hi) + 1e-12
