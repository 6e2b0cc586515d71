"""Tests for numpyvae/fast/fused_eval.py: the sampled estimators' fast form
equals the reference (estimators.log_mean_weight with fast=False, block
by block estimators.block_log_weights, i.e. model.log_weights_forward)
in every configuration, whatever the chunk and block sizes; a row whose
exp overflows falls back to the reference; float32 stays float32. No
timings."""

import itertools

import numpy as np
import pytest

from numpyvae import VAE, estimators
from numpyvae.estimators import block_log_weights, log_mean_weight
from numpyvae.fast import fused_eval

ACTIVATIONS = ("relu", "tanh", "sigmoid", "softplus", "identity")
EVERY_CONFIGURATION = list(itertools.product(
    ("bernoulli", "gaussian"), ("diagonal", "fixed"), ACTIVATIONS, ((), (5,), (5, 4)),
    ("posterior", "prior"), ("float64", "float32")))
N, K = 7, 23  # 23 samples: chunks and blocks that do not divide it

# How close the fast estimate must come to the reference, in nats, per
# example. float64: the two differ in the order of roundings only (the
# bias inside the product, sum_j x_j l_j as h . (W x), log1p(exp(l)) for
# softplus, the running log-sum-exp), each a few units of 2.2e-16 on
# values of order 10, far below 1e-9. float32: the same against the
# float32 reference, u = 6e-8 per operation over sums of at most 6 terms
# and then log w of order 10: 2e-4 covers it, and a real slip (a lost
# bias, a missing log-ratio term, the wrong sample order) moves the
# estimate by 1e-2 or more.
ATOL = {"float64": 1e-9, "float32": 2e-4}


def setup_case(likelihood, posterior, activation, hidden, dtype, seed=0):
    vae = VAE(6, 3, hidden=hidden, activation=activation, likelihood=likelihood,
              sigma=0.6 if likelihood == "gaussian" else None, posterior=posterior,
              delta=0.7 if posterior == "fixed" else None, dtype=dtype, rng=seed)
    rng = np.random.default_rng(seed + 1)
    for value in vae.params.values():  # random biases too: every term shows
        value[...] = rng.normal(0.0, 0.8, value.shape)
    x = rng.random((N, 6))
    if likelihood == "bernoulli":
        x = (x < 0.5) * 1.0
    return vae, vae.as_input(x)


@pytest.mark.parametrize("likelihood,posterior,activation,hidden,proposal,dtype",
                         EVERY_CONFIGURATION)
def test_fast_estimate_equals_the_reference(likelihood, posterior, activation, hidden,
                                            proposal, dtype):
    vae, x = setup_case(likelihood, posterior, activation, hidden, dtype)
    reference = log_mean_weight(vae, x, K, np.random.default_rng(5), proposal, fast=False)
    fast = fused_eval.log_mean_weight(vae, x, K, np.random.default_rng(5), proposal,
                                      estimators.MEMORY_BUDGET)
    assert fast.dtype == reference.dtype == np.dtype(dtype)
    np.testing.assert_allclose(fast, reference, rtol=0, atol=ATOL[dtype])


@pytest.mark.parametrize("chunk_size,batch_size,block_rows",
                         [(1, 1, 1), (5, 2, 7), (23, 7, 1024), (4, 3, 2), (None, None, 3)])
def test_the_estimate_does_not_depend_on_chunk_and_block_sizes(chunk_size, batch_size,
                                                               block_rows, monkeypatch):
    vae, x = setup_case("bernoulli", "diagonal", "tanh", (5,), "float64")
    whole = fused_eval.log_mean_weight(vae, x, K, np.random.default_rng(2), "posterior",
                                       estimators.MEMORY_BUDGET, chunk_size=K, batch_size=N)
    monkeypatch.setattr(fused_eval, "BLOCK_ROWS", block_rows)
    cut = fused_eval.log_mean_weight(vae, x, K, np.random.default_rng(2), "posterior",
                                     estimators.MEMORY_BUDGET, chunk_size=chunk_size,
                                     batch_size=batch_size)
    np.testing.assert_allclose(cut, whole, rtol=0, atol=1e-10)


def test_the_public_estimators_run_the_fast_form():
    vae, x = setup_case("bernoulli", "diagonal", "relu", (5,), "float64")
    for public, proposal in ((estimators.iwae_bound, "posterior"),
                             (estimators.naive_log_likelihood, "prior")):
        got = public(vae, x, K, np.random.default_rng(9))
        fast = fused_eval.log_mean_weight(vae, x, K, np.random.default_rng(9), proposal,
                                          estimators.MEMORY_BUDGET)
        np.testing.assert_array_equal(got, fast)
        reference = public(vae, x, K, np.random.default_rng(9), fast=False)
        np.testing.assert_array_equal(
            reference, log_mean_weight(vae, x, K, np.random.default_rng(9), proposal,
                                       fast=False))
        assert not np.array_equal(reference, fast)  # two different sums, equal to rounding
        np.testing.assert_allclose(reference, fast, rtol=0, atol=ATOL["float64"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_overflowing_exp_falls_back_to_the_reference(dtype):
    # An output bias of 1000 overflows exp(l) in either dtype; the true
    # log-likelihood stays finite (softplus(l) = l for large l).
    vae, x = setup_case("bernoulli", "diagonal", "tanh", (5,), dtype)
    vae.params["out.b"][:3] = 1000.0
    reference = log_mean_weight(vae, x, K, np.random.default_rng(4), "posterior", fast=False)
    fast = fused_eval.log_mean_weight(vae, x, K, np.random.default_rng(4), "posterior",
                                      estimators.MEMORY_BUDGET)
    assert np.isfinite(reference).all()
    np.testing.assert_allclose(fast, reference, rtol=1e-5)
    # what the fallback repairs: the fast block alone is -inf there
    eps = np.random.default_rng(4).standard_normal((K, N, 3), dtype=vae.dtype)
    mu, std, log_var = fused_eval._encode(vae.params, x, vae.config, "posterior", 64)
    decoder = fused_eval._Decoder(vae.params, vae.config, x)
    assert np.isneginf(fused_eval._block(decoder, eps, 0, N, mu, std, log_var)).all()


def test_block_rows_shrink_with_the_budget():
    config = VAE(784, 20, hidden=(400,)).config
    assert fused_eval.block_rows(config, 2**28) == fused_eval.BLOCK_ROWS
    small = fused_eval.block_rows(config, 2**22)
    assert 1 <= small < fused_eval.BLOCK_ROWS
    chunk, batch = fused_eval.block_plan(config, n=10_000, k=5000, budget=2**28)
    assert 4 * chunk * 10_000 * 20 <= 2**28 // 8 and chunk * batch <= fused_eval.BLOCK_ROWS


@pytest.mark.parametrize("activation,hidden", [("relu", (400,)), ("tanh", (200, 200))])
def test_float32_at_mnist_width_stays_near_the_float64_reference(activation, hidden):
    # The two MNIST benchmark models, untrained: the same float32 weights
    # scored by the fast float32 form and by the float64 reference on the
    # same noise. A float32 log-weight is a sum over 784 pixels of terms
    # of order 1-10, each rounded at u = 6e-8: about 784 * 10 * u = 5e-4
    # if every rounding fell the same way; 1e-3 bounds it, and a
    # systematic slip (a shifted bias, the softplus constant off by an
    # ulp per pixel) shows as several 1e-3.
    m32 = VAE(784, 20, hidden=hidden, activation=activation, rng=0)
    m64 = VAE(784, 20, hidden=hidden, activation=activation, dtype="float64", rng=0)
    for name, value in m32.params.items():
        m64.params[name][...] = value
    x = (np.random.default_rng(0).random((12, 784)) < 0.3) * 1.0
    eps = np.random.default_rng(1).standard_normal((9, 12, 20))
    reference = block_log_weights(m64, x, eps, "posterior")  # (s, b)
    x32, eps32 = x.astype(np.float32), eps.astype(np.float32)
    mu, std, log_var = fused_eval._encode(m32.params, x32, m32.config, "posterior", 64)
    decoder = fused_eval._Decoder(m32.params, m32.config, x32)
    fast = fused_eval._block(decoder, eps32, 0, 12, mu, std, log_var).T
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-3)


def test_two_workers_give_the_same_bits_and_restore_blas(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    vae, x = setup_case("bernoulli", "diagonal", "tanh", (5,), "float32")
    x = np.concatenate([x] * 9)  # 63 images: many blocks of 4
    vae.params["out.b"][:2] = 1000.0  # overflowing rows: the reference fallback, in a thread
    kwargs = dict(batch_size=4, chunk_size=5)

    def run():
        return fused_eval.log_mean_weight(vae, x, K, np.random.default_rng(3), "posterior",
                                          estimators.MEMORY_BUDGET, **kwargs)
    monkeypatch.setattr(fused_eval, "PARALLEL_ROWS", 10**12)
    assert fused_eval.worker_threads(16, 63 * K) == 1
    one = run()
    monkeypatch.setattr(fused_eval, "PARALLEL_ROWS", 0)
    if not fused_eval.threads.two_cores():
        pytest.skip("one core: the estimator keeps one worker")
    assert fused_eval.worker_threads(16, 63 * K) == 2
    before = [d["num_threads"] for d in threadpoolctl.threadpool_info()]
    two = run()
    assert [d["num_threads"] for d in threadpoolctl.threadpool_info()] == before
    np.testing.assert_array_equal(two, one)
    assert np.isfinite(one).all()


def test_one_worker_without_threadpoolctl(monkeypatch):
    monkeypatch.setattr(fused_eval.threads, "threadpoolctl", lambda: None)
    monkeypatch.setattr(fused_eval, "PARALLEL_ROWS", 0)
    assert fused_eval.worker_threads(16, 10**9) == 1
