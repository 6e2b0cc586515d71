"""Tests for numpyvae/reference/kl.py: every backward (the two KLs and the sampled
log-ratio) against central differences, with and without a leading
sample axis, the closed forms against Monte Carlo and against
scipy.stats densities, known values, dtypes and input errors."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.stats import multivariate_normal, norm

from numpyvae.reference.kl import (
    kl_backward,
    kl_fixed_backward,
    kl_fixed_forward,
    kl_forward,
    log_ratio_backward,
    log_ratio_forward,
)
from numpyvae.testing import assert_vjp_close

TOL = dict(rtol=1e-6, atol=1e-9)  # float64 and a smooth function

batch = st.integers(1, 8)
features = st.integers(1, 16)
seeds = st.integers(0, 2**32 - 1)
deltas = st.floats(0.1, 3.0)


def posterior(rng, n, d_z):
    return rng.uniform(-2.0, 2.0, (n, d_z)), rng.uniform(-2.0, 2.0, (n, d_z))


# ---------------------------------------------------- finite differences

@given(n=batch, d_z=features, seed=seeds)
def test_kl_backward_matches_finite_differences(n, d_z, seed):
    rng = np.random.default_rng(seed)
    mu, log_var = posterior(rng, n, d_z)
    assert_vjp_close(kl_forward, [mu, log_var], kl_backward, rng, names=["mu", "log_var"])


@given(n=batch, d_z=features, seed=seeds, delta=deltas)
def test_kl_fixed_backward_matches_finite_differences(n, d_z, seed, delta):
    rng = np.random.default_rng(seed)
    mu = rng.uniform(-2.0, 2.0, (n, d_z))
    assert_vjp_close(lambda v: kl_fixed_forward(v, delta), mu, kl_fixed_backward, rng,
                     names=["mu"])


@given(k=st.integers(1, 4), n=batch, d_z=features, seed=seeds)
def test_kl_backward_with_a_leading_sample_axis(k, n, d_z, seed):
    rng = np.random.default_rng(seed)
    mu, log_var = rng.uniform(-2.0, 2.0, (2, k, n, d_z))
    assert_vjp_close(kl_forward, [mu, log_var], kl_backward, rng, names=["mu", "log_var"],
                     **TOL)
    assert_vjp_close(lambda v: kl_fixed_forward(v, 0.7), mu, kl_fixed_backward, rng,
                     names=["mu"], **TOL)


@given(k=st.integers(1, 4), n=batch, d_z=features, seed=seeds)
def test_kl_with_a_sample_axis_is_each_slab_on_its_own(k, n, d_z, seed):
    mu, log_var = np.random.default_rng(seed).uniform(-2.0, 2.0, (2, k, n, d_z))
    kl, _ = kl_forward(mu, log_var)
    assert kl.shape == (k, n)
    for i in range(k):
        np.testing.assert_array_equal(kl[i], kl_forward(mu[i], log_var[i])[0])
        np.testing.assert_array_equal(kl_fixed_forward(mu, 0.7)[0][i],
                                      kl_fixed_forward(mu[i], 0.7)[0])


def sampled_posterior(rng, shape, log_var_range=(-2.0, 2.0)):
    """mu, log_var, eps and z = mu + exp(0.5 log_var) eps, each of `shape`."""
    mu = rng.uniform(-2.0, 2.0, shape)
    log_var = rng.uniform(*log_var_range, shape)
    eps = rng.standard_normal(shape)
    return mu, log_var, eps, mu + np.exp(0.5 * log_var) * eps


@given(lead=st.sampled_from([(), (1,), (3,)]), n=batch, d_z=features, seed=seeds)
def test_log_ratio_backward_matches_finite_differences(lead, n, d_z, seed):
    # eps is held fixed: the gradient flows to z and log_var only.
    rng = np.random.default_rng(seed)
    _, log_var, eps, z = sampled_posterior(rng, (*lead, n, d_z))
    assert_vjp_close(lambda z_, lv: log_ratio_forward(z_, eps, lv), [z, log_var],
                     log_ratio_backward, rng, names=["z", "log_var"], **TOL)


def test_log_ratio_backward_planted_error_is_caught():
    rng = np.random.default_rng(0)
    _, log_var, eps, z = sampled_posterior(rng, (3, 4, 2))

    def planted(dout, cache):  # d/dlog_var = 0.5 * 1.001
        dz, dlog_var = log_ratio_backward(dout, cache)
        return dz, dlog_var * 1.001

    with pytest.raises(AssertionError, match="log_var"):
        assert_vjp_close(lambda z_, lv: log_ratio_forward(z_, eps, lv), [z, log_var], planted,
                         rng, names=["z", "log_var"], **TOL)


def test_log_ratio_is_zero_when_q_is_the_prior_at_zero():
    zeros = np.zeros((2, 3, 4))
    log_ratio, _ = log_ratio_forward(zeros, zeros, zeros)
    assert log_ratio.shape == (2, 3)
    np.testing.assert_array_equal(log_ratio, 0.0)
    # q = r anywhere (mu = 0, log_var = 0, so z = eps): still exactly 0
    eps = np.random.default_rng(0).standard_normal((2, 3, 4))
    np.testing.assert_array_equal(log_ratio_forward(eps, eps, zeros)[0], 0.0)


def test_log_ratio_known_value():
    z, eps = np.array([[1.0, -2.0]]), np.array([[0.5, 1.0]])
    log_var = np.array([[math.log(4.0), 0.0]])
    # -0.5 [(1 - 0.25 - log 4) + (4 - 1 - 0)]
    expected = -0.5 * (0.75 - math.log(4.0) + 3.0)
    np.testing.assert_allclose(log_ratio_forward(z, eps, log_var)[0], [expected], **TOL)
    dz, dlog_var = log_ratio_backward(np.array([2.0]), log_ratio_forward(z, eps, log_var)[1])
    np.testing.assert_allclose(dz, [[-2.0, 4.0]], **TOL)        # -g z
    np.testing.assert_allclose(dlog_var, [[1.0, 1.0]], **TOL)   # 0.5 g


@given(lead=st.sampled_from([(), (3,)]), n=batch, d_z=features, seed=seeds)
def test_log_ratio_is_log_r_minus_log_q_by_scipy(lead, n, d_z, seed):
    mu, log_var, eps, z = sampled_posterior(np.random.default_rng(seed), (*lead, n, d_z))
    expected = (norm.logpdf(z) - norm.logpdf(z, mu, np.exp(0.5 * log_var))).sum(axis=-1)
    np.testing.assert_allclose(log_ratio_forward(z, eps, log_var)[0], expected,
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_of_minus_log_ratio_is_the_analytic_kl(seed):
    # E_eps[log q(z|x) - log r(z)] = KL(q || r): the sampled KL of the bounds.
    rng = np.random.default_rng(seed)
    mu, log_var = posterior(rng, 2, 3)
    m = 200_000
    eps = rng.standard_normal((m, 2, 3))
    z = mu + np.exp(0.5 * log_var) * eps
    sampled = -log_ratio_forward(z, eps, np.broadcast_to(log_var, eps.shape))[0]  # (m, 2)
    stderr = sampled.std(axis=0, ddof=1) / math.sqrt(m)
    assert np.all(stderr < 0.02)
    assert np.all(np.abs(sampled.mean(axis=0) - kl_forward(mu, log_var)[0]) < 4.0 * stderr)


@pytest.mark.parametrize("delta", [0.3, 0.7, 2.5])
def test_mean_of_minus_log_ratio_is_the_fixed_kl(delta):
    rng = np.random.default_rng(4)
    mu = rng.uniform(-2.0, 2.0, (2, 3))
    m = 200_000
    eps = rng.standard_normal((m, 2, 3))
    log_var = np.full(eps.shape, 2.0 * math.log(delta))
    sampled = -log_ratio_forward(mu + delta * eps, eps, log_var)[0]
    stderr = sampled.std(axis=0, ddof=1) / math.sqrt(m)
    assert np.all(stderr < 0.05)  # log(delta) for 2 log(delta): off by 1.5 log(delta)
    assert np.all(np.abs(sampled.mean(axis=0) - kl_fixed_forward(mu, delta)[0])
                  < 4.0 * stderr)


# ------------------------------------------------------------ references

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kl_matches_monte_carlo(seed):
    rng = np.random.default_rng(seed)
    mu, log_var = posterior(rng, 1, 3)
    kl = kl_forward(mu, log_var)[0][0]
    std = np.exp(0.5 * log_var)
    z = mu + std * rng.standard_normal((200_000, 3))  # z ~ q
    log_ratio = (norm.logpdf(z, mu, std) - norm.logpdf(z)).sum(axis=1)  # log q - log r
    estimate = log_ratio.mean()
    stderr = log_ratio.std(ddof=1) / math.sqrt(len(log_ratio))
    assert stderr < 0.02  # tight enough that a wrong formula cannot hide
    assert abs(estimate - kl) < 4.0 * stderr


@pytest.mark.parametrize("delta", [0.3, 1.0, 2.5])
def test_kl_fixed_matches_monte_carlo(delta):
    rng = np.random.default_rng(3)
    mu = rng.uniform(-2.0, 2.0, (1, 3))
    kl = kl_fixed_forward(mu, delta)[0][0]
    z = mu + delta * rng.standard_normal((200_000, 3))
    log_ratio = (norm.logpdf(z, mu, delta) - norm.logpdf(z)).sum(axis=1)
    stderr = log_ratio.std(ddof=1) / math.sqrt(len(log_ratio))
    assert stderr < 0.02
    assert abs(log_ratio.mean() - kl) < 4.0 * stderr


@pytest.mark.parametrize("seed", [0, 1])
def test_kl_matches_integral_of_scipy_densities(seed):
    # KL = sum_j integral q_j(z) (log q_j(z) - log r(z)) dz, coordinate by coordinate.
    rng = np.random.default_rng(seed)
    mu, log_var = posterior(rng, 1, 4)
    std = np.exp(0.5 * log_var[0])
    total = 0.0
    for m, s in zip(mu[0], std, strict=True):
        def integrand(z, m=m, s=s):
            return norm.pdf(z, m, s) * (norm.logpdf(z, m, s) - norm.logpdf(z))
        total += quad(integrand, m - 15 * s, m + 15 * s, epsabs=1e-13, epsrel=1e-12)[0]
    np.testing.assert_allclose(kl_forward(mu, log_var)[0], [total], **TOL)


@given(n=batch, d_z=features, seed=seeds)
def test_kl_matches_scipy_entropy_and_cross_entropy(n, d_z, seed):
    # KL(q || r) = -H(q) - E_q[log r(z)], with E_q[log r] in closed form.
    rng = np.random.default_rng(seed)
    mu, log_var = posterior(rng, n, d_z)
    var = np.exp(log_var)
    expected = [
        -multivariate_normal(mean=mu[i], cov=np.diag(var[i])).entropy()
        + 0.5 * d_z * math.log(2 * math.pi) + 0.5 * (mu[i] ** 2 + var[i]).sum()
        for i in range(n)
    ]
    np.testing.assert_allclose(kl_forward(mu, log_var)[0], expected, **TOL)


# ----------------------------------------------------------- known values

def test_kl_is_zero_when_q_is_the_prior():
    kl, _ = kl_forward(np.zeros((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(kl, [0.0, 0.0])
    kl, _ = kl_fixed_forward(np.zeros((2, 3)), 1.0)
    np.testing.assert_array_equal(kl, [0.0, 0.0])


def test_kl_known_values():
    mu = np.array([[1.0, 0.0]])
    log_var = np.array([[0.0, math.log(2.0)]])
    # 0.5 * [(1 + 1 - 0 - 1) + (0 + 2 - log 2 - 1)]
    np.testing.assert_allclose(kl_forward(mu, log_var)[0], [1.0 - 0.5 * math.log(2.0)], **TOL)
    # 0.5 * ||mu||^2 + (d_z / 2) (delta^2 - log delta^2 - 1) with delta = 2, d_z = 2
    np.testing.assert_allclose(kl_fixed_forward(mu, 2.0)[0], [0.5 + 3.0 - math.log(4.0)], **TOL)


@given(n=batch, d_z=features, seed=seeds)
def test_kl_is_nonnegative(n, d_z, seed):
    mu, log_var = posterior(np.random.default_rng(seed), n, d_z)
    assert (kl_forward(mu, log_var)[0] >= 0).all()


@given(n=batch, d_z=features, seed=seeds, delta=deltas)
def test_kl_fixed_is_kl_with_constant_log_var(n, d_z, seed, delta):
    mu = np.random.default_rng(seed).uniform(-2.0, 2.0, (n, d_z))
    log_var = np.full_like(mu, math.log(delta * delta))
    np.testing.assert_allclose(kl_fixed_forward(mu, delta)[0], kl_forward(mu, log_var)[0],
                               **TOL)


# ------------------------------------------------------------------ dtype

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved_forward_and_backward(dtype):
    rng = np.random.default_rng(0)
    mu, log_var = (a.astype(dtype) for a in posterior(rng, 3, 4))
    dkl = rng.standard_normal(3).astype(dtype)
    kl, cache = kl_forward(mu, log_var)
    assert kl.dtype == dtype
    dmu, dlog_var = kl_backward(dkl, cache)
    assert dmu.dtype == dtype and dlog_var.dtype == dtype
    kl, cache = kl_fixed_forward(mu, 0.5)
    assert kl.dtype == dtype
    assert kl_fixed_backward(dkl, cache).dtype == dtype


@pytest.mark.parametrize("delta", [0.3, 1.0, 2.5])
def test_kl_fixed_agrees_in_float32_and_float64_away_from_delta_1(delta):
    # log(delta^2), not log(delta): only visible at delta != 1.
    rng = np.random.default_rng(4)
    mu, dkl = rng.uniform(-2.0, 2.0, (3, 4)), rng.standard_normal(3)
    kl64, cache64 = kl_fixed_forward(mu, delta)
    kl32, cache32 = kl_fixed_forward(mu.astype(np.float32), delta)
    assert kl32.dtype == np.float32
    np.testing.assert_allclose(kl32, kl64, rtol=1e-6)
    np.testing.assert_allclose(kl_fixed_backward(dkl.astype(np.float32), cache32),
                               kl_fixed_backward(dkl, cache64), rtol=1e-6)
    const = 0.5 * 4 * (delta ** 2 - math.log(delta ** 2) - 1.0)
    np.testing.assert_allclose(kl64 - 0.5 * (mu * mu).sum(axis=1), const, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kl_agrees_with_float64_away_from_log_var_0(dtype):
    rng = np.random.default_rng(5)
    mu, log_var = posterior(rng, 3, 4)
    dkl = rng.standard_normal(3)
    kl, cache = kl_forward(mu.astype(dtype), log_var.astype(dtype))
    grads = kl_backward(dkl.astype(dtype), cache)
    kl64, cache64 = kl_forward(mu, log_var)
    np.testing.assert_allclose(kl, kl64, rtol=1e-5 if dtype == np.float32 else 1e-12)
    for g, g64 in zip(grads, kl_backward(dkl, cache64), strict=True):
        np.testing.assert_allclose(g, g64, rtol=1e-5, atol=1e-6)


# -------------------------------------------------------------- bad input

def test_wrong_shapes_name_the_argument():
    mu, log_var = posterior(np.random.default_rng(0), 3, 4)
    with pytest.raises(ValueError, match="^log_var:"):
        kl_forward(mu, log_var[:, :2])
    with pytest.raises(ValueError, match=r"^log_var: expected shape \(4,\) like mu"):
        kl_forward(mu[0], log_var)
    with pytest.raises(ValueError, match=r"^log_var: expected shape \(1, 3, 4\)"):
        kl_forward(mu[None], log_var)  # no broadcasting over a sample axis


def test_log_ratio_wrong_shapes_and_dtypes_name_the_argument():
    _, log_var, eps, z = sampled_posterior(np.random.default_rng(0), (2, 3, 4))
    with pytest.raises(ValueError, match="^eps:"):
        log_ratio_forward(z, eps[:, :, :3], log_var)
    with pytest.raises(ValueError, match="^log_var:"):
        log_ratio_forward(z, eps, log_var[0])  # the caller broadcasts, not the kernel
    with pytest.raises(TypeError, match="^eps:"):
        log_ratio_forward(z, eps.astype(np.float32), log_var)
    with pytest.raises(TypeError, match="^log_var:"):
        log_ratio_forward(z, eps, log_var.astype(np.float32))
    with pytest.raises(TypeError, match="^z:"):
        log_ratio_forward(z.astype(np.int64), eps, log_var)
    with pytest.raises(TypeError, match="^eps:"):
        log_ratio_forward(z, eps.tolist(), log_var)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_ratio_keeps_its_dtype(dtype):
    rng = np.random.default_rng(1)
    _, log_var, eps, z = (a.astype(dtype) for a in sampled_posterior(rng, (2, 3, 4)))
    log_ratio, cache = log_ratio_forward(z, eps, log_var)
    assert log_ratio.dtype == dtype
    dz, dlog_var = log_ratio_backward(rng.standard_normal((2, 3)).astype(dtype), cache)
    assert dz.dtype == dlog_var.dtype == dtype and dz.shape == dlog_var.shape == z.shape


def test_mismatched_dtypes_name_the_argument():
    mu, log_var = posterior(np.random.default_rng(0), 3, 4)
    with pytest.raises(TypeError, match="^log_var:"):
        kl_forward(mu, log_var.astype(np.float32))
    with pytest.raises(TypeError, match="^log_var:"):
        kl_forward(mu.astype(np.float32), log_var)


def test_int_arrays_are_refused():
    mu, log_var = posterior(np.random.default_rng(0), 3, 4)
    ints = np.zeros((3, 4), dtype=np.int64)
    with pytest.raises(TypeError, match="^mu:"):
        kl_forward(ints, log_var)
    with pytest.raises(TypeError, match="^log_var:"):
        kl_forward(mu, ints)
    with pytest.raises(TypeError, match="^mu:"):
        kl_fixed_forward(ints, 1.0)


@pytest.mark.parametrize("delta", [0.0, -0.5, np.inf, np.nan])
def test_kl_fixed_refuses_non_positive_delta(delta):
    with pytest.raises(ValueError, match="^delta:"):
        kl_fixed_forward(np.zeros((2, 3)), delta)


def test_kl_fixed_refuses_delta_that_is_not_a_number():
    with pytest.raises(TypeError, match="^delta:"):
        kl_fixed_forward(np.zeros((2, 3)), "1")
