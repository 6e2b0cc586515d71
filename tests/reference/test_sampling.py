"""Tests for numpyvae/reference/sampling.py: both reparameterization backwards
against central differences (eps held fixed), with and without a
leading sample axis, the moments of z, the reproducibility of draw_eps,
dtypes and input errors."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyvae.reference.sampling import (
    draw_eps,
    reparameterize_backward,
    reparameterize_fixed_backward,
    reparameterize_fixed_forward,
    reparameterize_forward,
    sample_prior,
)
from numpyvae.testing import assert_vjp_close

TOL = dict(rtol=1e-6, atol=1e-9)  # float64 and a smooth function

batch = st.integers(1, 8)
features = st.integers(1, 16)
seeds = st.integers(0, 2**32 - 1)
deltas = st.floats(0.0, 3.0)


def encoder_outputs(rng, n, d_z, dtype=np.float64):
    mu = rng.uniform(-2.0, 2.0, (n, d_z)).astype(dtype)
    log_var = rng.uniform(-2.0, 2.0, (n, d_z)).astype(dtype)
    eps = draw_eps(rng, (n, d_z), dtype)
    return mu, log_var, eps


# ---------------------------------------------------- finite differences

@given(n=batch, d_z=features, seed=seeds)
def test_reparameterize_backward_matches_finite_differences(n, d_z, seed):
    rng = np.random.default_rng(seed)
    mu, log_var, eps = encoder_outputs(rng, n, d_z)
    assert_vjp_close(lambda m, lv: reparameterize_forward(m, lv, eps), [mu, log_var],
                     reparameterize_backward, rng, names=["mu", "log_var"])


@given(n=batch, d_z=features, seed=seeds, delta=deltas)
def test_reparameterize_fixed_backward_matches_finite_differences(n, d_z, seed, delta):
    rng = np.random.default_rng(seed)
    mu, _, eps = encoder_outputs(rng, n, d_z)
    assert_vjp_close(lambda m: reparameterize_fixed_forward(m, delta, eps), mu,
                     reparameterize_fixed_backward, rng, names=["mu"])


@given(k=st.integers(1, 4), n=batch, d_z=features, seed=seeds)
def test_reparameterize_backward_with_a_leading_sample_axis(k, n, d_z, seed):
    # (k, n, d_z): mu and log_var broadcast over the k samples by the caller.
    rng = np.random.default_rng(seed)
    mu, log_var = rng.uniform(-2.0, 2.0, (2, k, n, d_z))
    eps = rng.standard_normal((k, n, d_z))
    assert_vjp_close(lambda m, lv: reparameterize_forward(m, lv, eps), [mu, log_var],
                     reparameterize_backward, rng, names=["mu", "log_var"], **TOL)
    assert_vjp_close(lambda m: reparameterize_fixed_forward(m, 0.7, eps), mu,
                     reparameterize_fixed_backward, rng, names=["mu"], **TOL)


@given(k=st.integers(1, 4), n=batch, d_z=features, seed=seeds)
def test_broadcast_posterior_gives_each_sample_its_own_z(k, n, d_z, seed):
    rng = np.random.default_rng(seed)
    mu, log_var, _ = encoder_outputs(rng, n, d_z)
    eps = rng.standard_normal((k, n, d_z))
    shape = eps.shape
    z, _ = reparameterize_forward(np.broadcast_to(mu, shape), np.broadcast_to(log_var, shape),
                                  eps)
    z_fixed, _ = reparameterize_fixed_forward(np.broadcast_to(mu, shape), 0.7, eps)
    for i in range(k):
        np.testing.assert_array_equal(z[i], reparameterize_forward(mu, log_var, eps[i])[0])
        np.testing.assert_array_equal(z_fixed[i],
                                      reparameterize_fixed_forward(mu, 0.7, eps[i])[0])


# --------------------------------------------------------------- moments

def test_z_has_mean_mu_and_variance_exp_log_var():
    m = 200_000
    mu = np.array([0.5, -1.0, 2.0, 0.0])
    log_var = np.array([-2.0, 0.0, 1.0, math.log(3.0)])
    eps = draw_eps(np.random.default_rng(0), (m, 4), "float64")
    z, _ = reparameterize_forward(np.tile(mu, (m, 1)), np.tile(log_var, (m, 1)), eps)
    var = np.exp(log_var)
    # Standard errors: sqrt(var / m) for the mean, var * sqrt(2 / (m - 1)) for
    # the variance of a normal sample.
    np.testing.assert_array_less(np.abs(z.mean(axis=0) - mu), 4.0 * np.sqrt(var / m))
    np.testing.assert_array_less(np.abs(z.var(axis=0, ddof=1) - var),
                                 4.0 * var * math.sqrt(2.0 / (m - 1)))


def test_fixed_sample_has_variance_delta_squared():
    m, delta = 200_000, 0.7
    eps = draw_eps(np.random.default_rng(1), (m, 2), "float64")
    z, _ = reparameterize_fixed_forward(np.ones((m, 2)), delta, eps)
    var = delta * delta
    np.testing.assert_array_less(np.abs(z.var(axis=0, ddof=1) - var),
                                 4.0 * var * math.sqrt(2.0 / (m - 1)))


def test_reparameterize_known_values():
    mu = np.array([[1.0, -1.0]])
    log_var = np.array([[math.log(4.0), 0.0]])
    eps = np.array([[0.5, 2.0]])
    z, cache = reparameterize_forward(mu, log_var, eps)
    np.testing.assert_allclose(z, [[2.0, 1.0]], **TOL)  # mu + 2 * 0.5, mu + 1 * 2
    dmu, dlog_var = reparameterize_backward(np.ones((1, 2)), cache)
    np.testing.assert_allclose(dmu, [[1.0, 1.0]], **TOL)
    np.testing.assert_allclose(dlog_var, [[0.5, 1.0]], **TOL)  # eps * 0.5 * std


@given(n=batch, d_z=features, seed=seeds, delta=st.floats(0.1, 3.0))
def test_fixed_is_the_diagonal_sampler_with_constant_log_var(n, d_z, seed, delta):
    mu, _, eps = encoder_outputs(np.random.default_rng(seed), n, d_z)
    log_var = np.full_like(mu, math.log(delta * delta))
    np.testing.assert_allclose(reparameterize_fixed_forward(mu, delta, eps)[0],
                               reparameterize_forward(mu, log_var, eps)[0], **TOL)


def test_fixed_with_zero_delta_is_the_deterministic_autoencoder():
    mu, _, eps = encoder_outputs(np.random.default_rng(0), 3, 2)
    np.testing.assert_array_equal(reparameterize_fixed_forward(mu, 0.0, eps)[0], mu)


# -------------------------------------------------------------- draw_eps

@given(seed=seeds, n=batch, d_z=features)
def test_draw_eps_is_reproducible_with_the_same_seed(seed, n, d_z):
    a = draw_eps(np.random.default_rng(seed), (n, d_z), "float64")
    b = draw_eps(np.random.default_rng(seed), (n, d_z), "float64")
    c = draw_eps(np.random.default_rng(seed + 1), (n, d_z), "float64")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_draw_eps_is_drawn_in_its_dtype_not_cast(dtype):
    # The generator's own float32 stream, not float64 draws rounded down.
    expected = np.random.default_rng(5).standard_normal((3, 4), dtype=dtype)
    np.testing.assert_array_equal(draw_eps(np.random.default_rng(5), (3, 4), dtype), expected)


def test_draw_eps_is_standard_normal():
    eps = draw_eps(np.random.default_rng(2), (100_000,), "float64")
    assert abs(eps.mean()) < 4.0 / math.sqrt(len(eps))
    assert abs(eps.var(ddof=1) - 1.0) < 4.0 * math.sqrt(2.0 / (len(eps) - 1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_draw_eps_and_sample_prior_shape_and_dtype(dtype):
    assert draw_eps(np.random.default_rng(0), (2, 3), dtype).dtype == dtype
    assert draw_eps(np.random.default_rng(0), (2, 3), dtype).shape == (2, 3)
    z = sample_prior(np.random.default_rng(0), 5, 2, dtype)
    assert z.shape == (5, 2) and z.dtype == dtype
    assert draw_eps(np.random.default_rng(0), (4,)).dtype == np.float32  # the default


def test_draw_eps_refuses_a_legacy_generator_or_seed():
    with pytest.raises(TypeError, match="^rng:"):
        draw_eps(np.random.RandomState(0), (2, 2))
    with pytest.raises(TypeError, match="^rng:"):
        draw_eps(0, (2, 2))


# ------------------------------------------------------------------ dtype

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved_forward_and_backward(dtype):
    rng = np.random.default_rng(0)
    mu, log_var, eps = encoder_outputs(rng, 3, 4, dtype)
    dz = rng.standard_normal((3, 4)).astype(dtype)
    z, cache = reparameterize_forward(mu, log_var, eps)
    assert z.dtype == dtype
    dmu, dlog_var = reparameterize_backward(dz, cache)
    assert dmu.dtype == dtype and dlog_var.dtype == dtype
    z, cache = reparameterize_fixed_forward(mu, 0.5, eps)
    assert z.dtype == dtype
    assert reparameterize_fixed_backward(dz, cache).dtype == dtype


@pytest.mark.parametrize("delta", [0.0, 0.4, 1.0, 2.2])
def test_fixed_sampler_agrees_in_float32_and_float64_away_from_delta_1(delta):
    mu, _, eps = encoder_outputs(np.random.default_rng(3), 3, 4)
    z64, _ = reparameterize_fixed_forward(mu, delta, eps)
    z32, _ = reparameterize_fixed_forward(mu.astype(np.float32), delta,
                                          eps.astype(np.float32))
    assert z32.dtype == np.float32
    np.testing.assert_allclose(z32, z64, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(z64 - mu, delta * eps, atol=1e-15)  # delta, not delta^2


@given(n=batch, d_z=features, seed=seeds)
def test_diagonal_sampler_agrees_in_float32_and_float64(n, d_z, seed):
    rng = np.random.default_rng(seed)
    mu, log_var, eps = encoder_outputs(rng, n, d_z)
    dz = rng.standard_normal((n, d_z))
    z64, cache64 = reparameterize_forward(mu, log_var, eps)
    z32, cache32 = reparameterize_forward(*(a.astype(np.float32) for a in (mu, log_var, eps)))
    np.testing.assert_allclose(z32, z64, rtol=1e-5, atol=1e-5)
    for g32, g64 in zip(reparameterize_backward(dz.astype(np.float32), cache32),
                        reparameterize_backward(dz, cache64), strict=True):
        np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=1e-5)


# -------------------------------------------------------------- bad input

def test_wrong_shapes_name_the_argument():
    mu, log_var, eps = encoder_outputs(np.random.default_rng(0), 3, 4)
    with pytest.raises(ValueError, match="^log_var:"):
        reparameterize_forward(mu, log_var[:2], eps)
    with pytest.raises(ValueError, match="^eps:"):
        reparameterize_forward(mu, log_var, eps[:, :3])
    with pytest.raises(ValueError, match=r"^log_var: expected shape \(4,\) like mu"):
        reparameterize_forward(mu[0], log_var, eps)
    with pytest.raises(ValueError, match="^eps:"):
        reparameterize_forward(mu, log_var, eps[None].repeat(2, 0))  # caller broadcasts mu
    with pytest.raises(ValueError, match="^eps:"):
        reparameterize_fixed_forward(mu, 1.0, eps[:, :3])
    with pytest.raises(ValueError, match="^eps:"):
        reparameterize_fixed_forward(mu, 1.0, eps[None])


def test_mismatched_dtypes_name_the_argument():
    mu, log_var, eps = encoder_outputs(np.random.default_rng(0), 3, 4)
    with pytest.raises(TypeError, match="^eps:"):
        reparameterize_forward(mu, log_var, eps.astype(np.float32))
    with pytest.raises(TypeError, match="^log_var:"):
        reparameterize_forward(mu, log_var.astype(np.float32), eps)
    with pytest.raises(TypeError, match="^eps:"):
        reparameterize_fixed_forward(mu, 1.0, eps.astype(np.float32))


def test_int_arrays_are_refused():
    mu, log_var, eps = encoder_outputs(np.random.default_rng(0), 3, 4)
    ints = np.zeros((3, 4), dtype=np.int64)
    with pytest.raises(TypeError, match="^mu:"):
        reparameterize_forward(ints, log_var, eps)
    with pytest.raises(TypeError, match="^eps:"):
        reparameterize_forward(mu, log_var, ints)
    with pytest.raises(TypeError, match="^mu:"):
        reparameterize_fixed_forward(ints, 1.0, eps)


@pytest.mark.parametrize("delta", [-0.5, -1e-12, np.inf, np.nan])
def test_fixed_refuses_negative_delta(delta):
    mu, _, eps = encoder_outputs(np.random.default_rng(0), 3, 4)
    with pytest.raises(ValueError, match="^delta:"):
        reparameterize_fixed_forward(mu, delta, eps)
