"""numpyvae.reference.bounds: the bound heads over log-weights (the sampled ELBO and
the IWAE log-mean-exp) and their backwards, then the one-layer IWAE
objective they make with `model.log_weights_forward`
(`model.bound_loss_forward(..., "iwae")`), its hand-written gradient and
the checks of its public entry point, `VAE.loss_and_grads`."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import logsumexp

from numpyvae import VAE
from numpyvae.estimators import iwae_bound
from numpyvae.gradcheck import check_gradients
from numpyvae.reference.bounds import (
    OBJECTIVES,
    elbo_bound_backward,
    elbo_bound_forward,
    iwae_bound_backward,
    iwae_bound_forward,
    loss_backward,
    loss_forward,
)
from numpyvae.reference.vae import bound_loss_backward, bound_loss_forward, log_weights_forward
from numpyvae.testing import assert_grad_close, assert_vjp_close

TOL = dict(rtol=1e-6, atol=1e-9)  # float64 and a smooth function
seeds = st.integers(0, 2**32 - 1)
ks = st.integers(1, 6)
batch = st.integers(1, 5)


def random_log_w(rng, k, n, spread=3.0):
    """Log-weights of MNIST's scale (around -100), k samples of n examples."""
    return -100.0 + spread * rng.standard_normal((k, n))


# ============================================================ the heads

@given(k=ks, n=batch, seed=seeds)
def test_elbo_bound_backward_matches_finite_differences(k, n, seed):
    rng = np.random.default_rng(seed)
    assert_vjp_close(elbo_bound_forward, random_log_w(rng, k, n), elbo_bound_backward, rng,
                     names=["log_w"], **TOL)


@given(k=ks, n=batch, seed=seeds, spread=st.sampled_from([0.1, 1.0, 5.0]))
def test_iwae_bound_backward_matches_finite_differences(k, n, seed, spread):
    rng = np.random.default_rng(seed)
    assert_vjp_close(iwae_bound_forward, random_log_w(rng, k, n, spread), iwae_bound_backward,
                     rng, names=["log_w"], **TOL)


@pytest.mark.parametrize("objective", OBJECTIVES)
@given(k=ks, n=batch, seed=seeds)
def test_loss_backward_matches_finite_differences(objective, k, n, seed):
    # loss = -mean_x bound(x): the head's backward of -1/n per example.
    rng = np.random.default_rng(seed)
    log_w = random_log_w(rng, k, n)
    log_lik = log_w - rng.random((k, n))

    def loss(v):
        return loss_forward(v, log_lik, objective)[0]

    assert_grad_close(loss, lambda v: loss_backward(loss_forward(v, log_lik, objective)[2]),
                      log_w, **TOL)


def test_planted_errors_in_the_heads_are_caught():
    rng = np.random.default_rng(0)
    log_w = random_log_w(rng, 4, 3)

    def no_softmax(dbound, cache):  # the ELBO's 1/k where w~ belongs
        return np.broadcast_to(dbound / cache.shape[0], cache.shape).copy()

    with pytest.raises(AssertionError, match="log_w"):
        assert_vjp_close(iwae_bound_forward, log_w, no_softmax, rng, names=["log_w"], **TOL)

    def one_off(dbound, k):
        return elbo_bound_backward(dbound, k) * 1.001

    with pytest.raises(AssertionError, match="log_w"):
        assert_vjp_close(elbo_bound_forward, log_w, one_off, rng, names=["log_w"], **TOL)


def test_heads_known_values():
    log_w = np.log(np.array([[1.0, 2.0], [3.0, 2.0]]))  # (k=2, n=2)
    bound, w_tilde = iwae_bound_forward(log_w)
    np.testing.assert_allclose(np.exp(bound), [2.0, 2.0], **TOL)           # the mean weights
    np.testing.assert_allclose(w_tilde, [[0.25, 0.5], [0.75, 0.5]], **TOL)
    elbo, k = elbo_bound_forward(log_w)
    assert k == 2
    np.testing.assert_allclose(elbo, [0.5 * math.log(3.0), math.log(2.0)], **TOL)
    np.testing.assert_allclose(elbo_bound_backward(np.array([1.0, -2.0]), 2),
                               [[0.5, -1.0], [0.5, -1.0]], **TOL)
    np.testing.assert_allclose(iwae_bound_backward(np.array([2.0, 1.0]), w_tilde),
                               [[0.5, 0.5], [1.5, 0.5]], **TOL)


@given(k=ks, n=batch, seed=seeds)
def test_iwae_head_is_at_least_the_elbo_head(k, n, seed):
    log_w = random_log_w(np.random.default_rng(seed), k, n)
    iwae, w_tilde = iwae_bound_forward(log_w)
    elbo, _ = elbo_bound_forward(log_w)
    assert np.all(iwae >= elbo - 1e-12 * np.abs(elbo))
    if k > 1:  # unequal weights: Jensen is strict
        assert np.all(iwae > elbo)
    np.testing.assert_allclose(w_tilde.sum(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(iwae, logsumexp(log_w, axis=0) - math.log(k), rtol=1e-13)


@given(k=ks, n=batch, seed=seeds)
def test_one_sample_or_equal_weights_make_the_heads_one(k, n, seed):
    log_w = random_log_w(np.random.default_rng(seed), 1, n)
    np.testing.assert_allclose(iwae_bound_forward(log_w)[0], elbo_bound_forward(log_w)[0],
                               rtol=1e-14)
    same = np.repeat(log_w, k, axis=0)  # -log k must cancel log(k w) exactly
    np.testing.assert_allclose(iwae_bound_forward(same)[0], log_w[0], rtol=1e-13)
    np.testing.assert_allclose(elbo_bound_forward(same)[0], log_w[0], rtol=1e-13)


def test_iwae_head_does_not_underflow():
    # exp(-1e4) is 0 in float64; the bound is still exact.
    log_w = np.array([[-1e4], [-1e4 + math.log(3.0)]])
    bound, w_tilde = iwae_bound_forward(log_w)
    np.testing.assert_allclose(bound, [-1e4 + math.log(2.0)], rtol=1e-15)
    np.testing.assert_allclose(w_tilde[:, 0], [0.25, 0.75], rtol=1e-12)


@given(k=ks, n=batch, seed=seeds, shift=st.floats(-50.0, 50.0))
def test_a_constant_shift_of_the_log_weights_shifts_both_bounds(k, n, seed, shift):
    log_w = random_log_w(np.random.default_rng(seed), k, n)
    for head in (iwae_bound_forward, elbo_bound_forward):
        np.testing.assert_allclose(head(log_w + shift)[0], head(log_w)[0] + shift,
                                   rtol=1e-12, atol=1e-12)


def test_loss_forward_terms():
    rng = np.random.default_rng(0)
    log_w = random_log_w(rng, 3, 4)
    log_lik = log_w + rng.random((3, 4))
    for objective in OBJECTIVES:
        loss, terms, _ = loss_forward(log_w, log_lik, objective)
        assert set(terms) == {"elbo", "iwae", "log_lik", "kl"}
        assert loss == pytest.approx(-terms[objective].mean(), rel=1e-14)
        np.testing.assert_allclose(terms["elbo"], log_w.mean(axis=0), rtol=1e-14)
        np.testing.assert_allclose(terms["log_lik"], log_lik.mean(axis=0), rtol=1e-14)
        np.testing.assert_allclose(terms["kl"], terms["log_lik"] - terms["elbo"], rtol=1e-12)
        assert np.all(terms["kl"] > 0)  # log_lik > log_w here, by construction
    with pytest.raises(ValueError, match="^objective:.*'elbo', 'iwae'.*'kl'"):
        loss_forward(log_w, log_lik, "kl")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_heads_keep_their_dtype(dtype, objective):
    log_w = random_log_w(np.random.default_rng(0), 3, 4).astype(dtype)
    loss, terms, cache = loss_forward(log_w, log_w, objective)
    assert type(loss) is float
    assert all(t.dtype == dtype for t in terms.values())
    dlog_w = loss_backward(cache)
    assert dlog_w.dtype == dtype and dlog_w.shape == (3, 4)
    np.testing.assert_allclose(dlog_w.sum(axis=0), -0.25, rtol=1e-6)  # -1/n per example


# ============================================= the one-layer IWAE objective

CONFIGS = list(itertools.product(["bernoulli", "gaussian"], ["diagonal", "fixed"],
                                 [(), (6, 5)], [1, 4]))


def _setup(likelihood="bernoulli", posterior="diagonal", hidden=(6, 5), k=3, dtype="float64",
           seed=0):
    model = VAE(7, 3, hidden=hidden, activation="tanh", likelihood=likelihood,
                sigma=0.6 if likelihood == "gaussian" else None, posterior=posterior,
                delta=0.7 if posterior == "fixed" else None, dtype=dtype, rng=seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.random((5, 7)).astype(dtype)
    eps = rng.standard_normal((k, 5, 3)).astype(dtype)
    return model, x, eps


def _forward(model, x, eps):
    return bound_loss_forward(model.params, x, eps, model.config, "iwae")


def _check(model, x, eps, grads):
    names = list(model.params)

    def loss(*arrays):
        return bound_loss_forward(dict(zip(names, arrays, strict=True)), x, eps, model.config, "iwae")[0]

    return check_gradients(loss, [model.params[n] for n in names], [grads[n] for n in names],
                           names=names, abs_tol=1e-9, rel_tol=1e-6)


@pytest.mark.parametrize("likelihood,posterior,hidden,k", CONFIGS)
def test_iwae_backward_matches_finite_differences(likelihood, posterior, hidden, k):
    model, x, eps = _setup(likelihood, posterior, hidden, k)
    _, _, cache = _forward(model, x, eps)
    report = _check(model, x, eps, bound_loss_backward(cache))
    assert report.passed, str(report)


def test_a_planted_error_is_caught():
    model, x, eps = _setup()
    grads = bound_loss_backward(_forward(model, x, eps)[2])
    grads["log_var.b"] = grads["log_var.b"] - 0.5 / 5  # the -0.5/n term counted twice
    report = _check(model, x, eps, grads)
    assert [c.name for c in report.inputs if not c.passed] == ["log_var.b"]


def test_k1_is_the_single_sample_bound_log_w():
    model, x, eps = _setup(k=1)
    _, terms, _ = _forward(model, x, eps)
    mu, log_var = model.encode(x)
    z = mu + np.exp(0.5 * log_var) * eps[0]
    log_r = -0.5 * (z ** 2).sum(1) - 1.5 * np.log(2 * np.pi)
    log_q = -0.5 * (eps[0] ** 2).sum(1) - 0.5 * log_var.sum(1) - 1.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(terms["iwae"], terms["log_lik"] + log_r - log_q, rtol=1e-12)
    np.testing.assert_allclose(terms["kl"], log_q - log_r, rtol=1e-10)  # sampled, at z


def test_the_bound_is_above_the_mean_log_weight_of_the_same_samples():
    model, x, eps = _setup(k=8)
    _, terms, _ = _forward(model, x, eps)
    # log mean w >= mean log w (Jensen), with the same eps
    single = [_forward(model, x, eps[i:i + 1])[1]["iwae"] for i in range(8)]
    assert np.all(terms["iwae"] >= np.mean(single, axis=0) - 1e-12)
    np.testing.assert_allclose(terms["elbo"], np.mean(single, axis=0), rtol=1e-12)
    log_w = log_weights_forward(model.params, x, eps, model.config)[0]
    np.testing.assert_allclose(iwae_bound_forward(log_w)[1].sum(axis=0), 1.0, rtol=1e-12)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
def test_matches_the_iwae_estimator_on_the_same_noise(fast):
    model, x, _ = _setup(k=1)
    eps = np.random.default_rng(9).standard_normal((6, 5, 3))
    _, terms, _ = _forward(model, x, eps)
    estimate = iwae_bound(model, x, 6, np.random.default_rng(9), chunk_size=6, batch_size=5,
                          fast=fast)
    np.testing.assert_allclose(terms["iwae"], estimate, rtol=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept(dtype):
    model, x, eps = _setup(k=2, dtype=dtype)
    loss, terms, cache = _forward(model, x, eps)
    grads = bound_loss_backward(cache)
    assert isinstance(loss, float)
    assert {g.dtype for g in grads.values()} == {np.dtype(dtype)}
    assert all(t.dtype == np.dtype(dtype) for t in terms.values())


def test_loss_and_grads_is_the_reference_bound_loss():
    model, x, eps = _setup(k=3)
    loss, grads = model.loss_and_grads(x, eps, objective="iwae")
    loss2, _, cache = _forward(model, x, eps)
    grads2 = bound_loss_backward(cache)
    assert loss == loss2 and list(grads) == list(grads2) == list(model.params)
    for name in grads:
        np.testing.assert_array_equal(grads[name], grads2[name])
    # one sample of (n, d_z) noise is k = 1
    assert model.loss_and_grads(x, eps[0], objective="iwae")[0] == _forward(model, x,
                                                                            eps[:1])[0]


def test_the_kernels_refuse_mixed_dtypes():
    model, x, eps = _setup(k=2)
    with pytest.raises(TypeError, match="float32"):
        bound_loss_forward(model.params, x.astype(np.float32), eps, model.config, "iwae")
    with pytest.raises(TypeError, match="^eps:"):
        bound_loss_forward(model.params, x, eps.astype(np.float32), model.config, "iwae")


def test_bad_inputs_name_the_argument_at_the_boundary():
    model, x, eps = _setup(k=2)
    with pytest.raises(ValueError, match=r"^eps: expected shape \(n, 3\) or \(k, n, 3\)"):
        model.loss_and_grads(x, eps[:, :, :2], objective="iwae")
    with pytest.raises(ValueError, match="^eps: expected 5 rows"):
        model.loss_and_grads(x, eps[:, :3], objective="iwae")
    with pytest.raises(ValueError, match="^eps:"):
        model.loss_and_grads(x, eps[None], objective="iwae")  # 4-d
    bad = eps.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="^eps: expected finite values"):
        model.loss_and_grads(x, bad, objective="iwae")
    with pytest.raises(TypeError, match="^eps:"):
        model.loss_and_grads(x, eps.tolist(), objective="iwae")
    with pytest.raises(TypeError, match="^eps:"):
        model.loss_and_grads(x, eps.astype(np.int64), objective="iwae")
    with pytest.raises(ValueError, match="^beta:"):
        model.loss_and_grads(x, eps, beta=0.5, objective="iwae")
    with pytest.raises(ValueError, match="^eps:.*'elbo'"):
        model.loss_and_grads(x, eps, objective="elbo")  # the analytic ELBO takes one sample
    with pytest.raises(ValueError, match="^objective:"):
        model.loss_and_grads(x, eps, objective="kl")
    x_bad = x.copy()
    x_bad[0, 0] = 1.5
    with pytest.raises(ValueError, match=r"^x: expected values in \[0, 1\]"):
        model.loss_and_grads(x_bad, eps, objective="iwae")
    point = VAE(7, 3, hidden=(), posterior="fixed", delta=0.0, dtype="float64")
    with pytest.raises(ValueError, match="delta=0"):
        point.loss_and_grads(x, eps, objective="iwae")
