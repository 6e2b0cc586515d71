"""Tests for numpyvae/reference/likelihoods.py: every backward against central
differences, with and without a leading sample axis (x broadcast over
the samples), the forwards against scipy.stats, Bernoulli stability at
huge logits, dtypes, and the input errors of these public kernels.

The kernels check types, dtypes and shapes only; the values (x finite,
in [0, 1] for a Bernoulli decoder) are their callers' preconditions, and
the last section shows every public entry point refusing bad values."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import expit
from scipy.stats import bernoulli, norm

from numpyvae import VAE, HierarchicalVAE, fit
from numpyvae.reference.likelihoods import (
    bernoulli_log_lik_backward,
    bernoulli_log_lik_forward,
    gaussian_log_density_backward,
    gaussian_log_density_forward,
    gaussian_log_lik_backward,
    gaussian_log_lik_forward,
)
from numpyvae.testing import assert_vjp_close

TOL = dict(rtol=1e-6, atol=1e-9)  # float64 and a smooth function

batch = st.integers(1, 8)
features = st.integers(1, 16)
seeds = st.integers(0, 2**32 - 1)
sigmas = st.floats(0.3, 3.0)


# ---------------------------------------------------------------- Bernoulli

@given(n=batch, d=features, seed=seeds)
def test_bernoulli_backward_matches_finite_differences(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (n, d))  # grey levels allowed
    logits = rng.uniform(-6.0, 6.0, (n, d))
    assert_vjp_close(lambda v: bernoulli_log_lik_forward(x, v), logits,
                     bernoulli_log_lik_backward, rng, names=["logits"])


@given(n=batch, d=features, seed=seeds)
def test_bernoulli_matches_scipy_for_binary_x(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, (n, d)).astype(np.float64)
    logits = rng.uniform(-8.0, 8.0, (n, d))
    expected = bernoulli.logpmf(x, expit(logits)).sum(axis=1)
    np.testing.assert_allclose(bernoulli_log_lik_forward(x, logits)[0], expected, **TOL)


@given(n=batch, d=features, seed=seeds)
def test_bernoulli_is_negative_cross_entropy_for_grey_x(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (n, d))
    logits = rng.uniform(-8.0, 8.0, (n, d))
    p = expit(logits)
    expected = (x * np.log(p) + (1.0 - x) * np.log1p(-p)).sum(axis=1)
    np.testing.assert_allclose(bernoulli_log_lik_forward(x, logits)[0], expected, **TOL)


def test_bernoulli_known_value_at_zero_logits():
    x = np.array([[1.0, 0.0, 0.5]])
    log_lik, _ = bernoulli_log_lik_forward(x, np.zeros((1, 3)))
    np.testing.assert_allclose(log_lik, [3 * math.log(0.5)], **TOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_is_stable_at_huge_logits(dtype):
    # One example per row: (x, logit) = (1, 1e4), (0, 1e4), (1, -1e4), (0, -1e4).
    x = np.array([[1.0], [0.0], [1.0], [0.0]], dtype=dtype)
    logits = np.array([[1e4], [1e4], [-1e4], [-1e4]], dtype=dtype)
    log_lik, cache = bernoulli_log_lik_forward(x, logits)  # warnings are errors
    assert np.isfinite(log_lik).all()
    np.testing.assert_allclose(log_lik, [0.0, -1e4, -1e4, 0.0], rtol=1e-6, atol=1e-6)
    dlogits = bernoulli_log_lik_backward(np.ones(4, dtype=dtype), cache)
    assert np.isfinite(dlogits).all()
    np.testing.assert_allclose(dlogits, [[0.0], [-1.0], [1.0], [0.0]], atol=1e-6)


# ----------------------------------------------------------------- Gaussian

@given(n=batch, d=features, seed=seeds, sigma=sigmas)
def test_gaussian_backward_matches_finite_differences(n, d, seed, sigma):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, (n, d))
    recon = rng.uniform(-2.0, 2.0, (n, d))
    assert_vjp_close(lambda v: gaussian_log_lik_forward(x, v, sigma), recon,
                     gaussian_log_lik_backward, rng, names=["recon"])


@given(n=batch, d=features, seed=seeds, sigma=sigmas)
def test_gaussian_matches_scipy_norm_logpdf(n, d, seed, sigma):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3.0, 3.0, (n, d))
    recon = rng.uniform(-3.0, 3.0, (n, d))
    expected = norm.logpdf(x, loc=recon, scale=sigma).sum(axis=1)
    np.testing.assert_allclose(gaussian_log_lik_forward(x, recon, sigma)[0], expected, **TOL)


def test_gaussian_known_value():
    x = np.array([[1.0, 2.0]])
    recon = np.array([[0.0, 0.0]])
    # -||x - recon||^2 / (2 * 4) - (2 / 2) * log(2 pi 4)
    expected = -5.0 / 8.0 - math.log(8.0 * math.pi)
    np.testing.assert_allclose(gaussian_log_lik_forward(x, recon, 2.0)[0], [expected], **TOL)


# ------------------------------------------- a leading sample axis, x broadcast

@given(k=st.integers(1, 4), n=batch, d=features, seed=seeds)
def test_bernoulli_backward_with_samples_and_broadcast_x(k, n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (n, d))      # one x for all k samples
    logits = rng.uniform(-6.0, 6.0, (k, n, d))
    assert_vjp_close(lambda v: bernoulli_log_lik_forward(x, v), logits,
                     bernoulli_log_lik_backward, rng, names=["logits"], **TOL)


@given(k=st.integers(1, 4), n=batch, d=features, seed=seeds, sigma=sigmas)
def test_gaussian_backward_with_samples_and_broadcast_x(k, n, d, seed, sigma):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, (n, d))
    recon = rng.uniform(-2.0, 2.0, (k, n, d))
    assert_vjp_close(lambda v: gaussian_log_lik_forward(x, v, sigma), recon,
                     gaussian_log_lik_backward, rng, names=["recon"], **TOL)


@pytest.mark.parametrize("kernel", ["bernoulli", "gaussian"])
@given(k=st.integers(1, 4), n=batch, d=features, seed=seeds)
def test_broadcast_x_is_x_repeated_per_sample(kernel, k, n, d, seed):
    rng = np.random.default_rng(seed)
    x, out = rng.uniform(0.0, 1.0, (n, d)), rng.uniform(-4.0, 4.0, (k, n, d))
    dlog_lik = rng.standard_normal((k, n))
    if kernel == "bernoulli":
        forward, backward = bernoulli_log_lik_forward, bernoulli_log_lik_backward
    else:
        forward = lambda a, b: gaussian_log_lik_forward(a, b, 0.6)  # noqa: E731
        backward = gaussian_log_lik_backward
    log_lik, cache = forward(x, out)
    full, full_cache = forward(np.broadcast_to(x, out.shape).copy(), out)  # x as (k, n, d)
    assert log_lik.shape == (k, n)
    np.testing.assert_array_equal(log_lik, full)
    np.testing.assert_array_equal(backward(dlog_lik, cache), backward(dlog_lik, full_cache))
    for i in range(k):
        np.testing.assert_array_equal(log_lik[i], forward(x, out[i])[0])


@pytest.mark.parametrize("lead", [(), (1,), (3,), (2, 3)], ids=str)
def test_gaussian_log_density_backward_with_leading_axes(lead):
    rng = np.random.default_rng(len(lead))
    shape = (*lead, 4, 3)
    z, mu = rng.standard_normal(shape), rng.standard_normal(shape)
    log_var = rng.uniform(-1.5, 1.5, shape)
    log_density, _ = gaussian_log_density_forward(z, mu, log_var)
    assert log_density.shape == shape[:-1]
    expected = norm.logpdf(z, mu, np.exp(0.5 * log_var)).sum(axis=-1)
    np.testing.assert_allclose(log_density, expected, rtol=1e-12, atol=1e-12)
    assert_vjp_close(gaussian_log_density_forward, [z, mu, log_var],
                     gaussian_log_density_backward, rng, names=["z", "mu", "log_var"], **TOL)


def test_gaussian_log_density_known_value_and_symmetry():
    # N(z; mu, var) depends on z - mu only: dz = -dmu.
    z, mu, log_var = np.array([[1.0]]), np.array([[-1.0]]), np.array([[math.log(4.0)]])
    log_density, cache = gaussian_log_density_forward(z, mu, log_var)
    # -0.5 (log 2 pi + log 4 + 4 / 4)
    np.testing.assert_allclose(log_density, [-0.5 * (math.log(8.0 * math.pi) + 1.0)], **TOL)
    dz, dmu, dlog_var = gaussian_log_density_backward(np.array([1.0]), cache)
    np.testing.assert_allclose(dz, [[-0.5]], **TOL)
    np.testing.assert_allclose(dmu, [[0.5]], **TOL)
    np.testing.assert_allclose(dlog_var, [[0.0]], **TOL)  # -0.5 + 0.5 * 4 / 4


# -------------------------------------------------------------------- dtype

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved_forward_and_backward(dtype):
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (3, 4)).astype(dtype)
    out = rng.standard_normal((3, 4)).astype(dtype)
    dlog_lik = rng.standard_normal(3).astype(dtype)
    log_lik, cache = bernoulli_log_lik_forward(x, out)
    assert log_lik.dtype == dtype
    assert bernoulli_log_lik_backward(dlog_lik, cache).dtype == dtype
    log_lik, cache = gaussian_log_lik_forward(x, out, 0.5)
    assert log_lik.dtype == dtype
    assert gaussian_log_lik_backward(dlog_lik, cache).dtype == dtype


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5])
def test_gaussian_agrees_in_float32_and_float64_away_from_sigma_1(sigma):
    # sigma^2 where sigma would do, or the reverse, only shows at sigma != 1.
    rng = np.random.default_rng(2)
    x, recon = rng.uniform(-2.0, 2.0, (3, 4)), rng.uniform(-2.0, 2.0, (3, 4))
    dlog_lik = rng.standard_normal(3)
    ll64, cache64 = gaussian_log_lik_forward(x, recon, sigma)
    ll32, cache32 = gaussian_log_lik_forward(x.astype(np.float32), recon.astype(np.float32),
                                             sigma)
    assert ll32.dtype == np.float32
    np.testing.assert_allclose(ll32, ll64, rtol=1e-5)
    d64 = gaussian_log_lik_backward(dlog_lik, cache64)
    d32 = gaussian_log_lik_backward(dlog_lik.astype(np.float32), cache32)
    np.testing.assert_allclose(d32, d64, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d64, dlog_lik[:, None] * (x - recon) / sigma ** 2, rtol=1e-12)


def test_bernoulli_agrees_in_float32_and_float64():
    rng = np.random.default_rng(3)
    x, logits = rng.uniform(0.0, 1.0, (3, 4)), rng.uniform(-6.0, 6.0, (3, 4))
    dlog_lik = rng.standard_normal(3)
    ll64, cache64 = bernoulli_log_lik_forward(x, logits)
    ll32, cache32 = bernoulli_log_lik_forward(x.astype(np.float32), logits.astype(np.float32))
    np.testing.assert_allclose(ll32, ll64, rtol=1e-5)
    np.testing.assert_allclose(bernoulli_log_lik_backward(dlog_lik.astype(np.float32), cache32),
                               bernoulli_log_lik_backward(dlog_lik, cache64), rtol=1e-5,
                               atol=1e-6)


# ---------------------------------------------------------------- bad input

def run_bernoulli(x, out):
    return bernoulli_log_lik_forward(x, out)


def run_gaussian(x, out):
    return gaussian_log_lik_forward(x, out, 1.0)


KERNELS = [(run_bernoulli, "logits"), (run_gaussian, "recon")]


def good_pair():
    rng = np.random.default_rng(0)
    return rng.uniform(0.0, 1.0, (3, 4)), rng.standard_normal((3, 4))


@pytest.mark.parametrize("kernel, out_name", KERNELS)
def test_wrong_shapes_name_the_argument(kernel, out_name):
    x, out = good_pair()
    with pytest.raises(ValueError, match=f"^x: .*{out_name}"):
        kernel(x, out[:, :3])
    with pytest.raises(ValueError, match=f"^x: .*{out_name}"):
        kernel(x[:2], out)
    with pytest.raises(ValueError, match=f"^x: .*{out_name}"):
        kernel(x, out[None, :2])  # samples of a different batch
    with pytest.raises(ValueError, match=f"^x: .*{out_name}"):
        kernel(x[None].repeat(2, 0), out)  # x is never broadcast up to out
    assert kernel(x, out[None].repeat(2, 0))[0].shape == (2, 3)  # samples of x's batch


@pytest.mark.parametrize("kernel, out_name", KERNELS)
def test_a_one_dimensional_x_is_refused(kernel, out_name):
    x, out = good_pair()
    with pytest.raises(ValueError, match="^x:"):
        kernel(x[0], out)


@pytest.mark.parametrize("kernel, out_name", KERNELS)
def test_mismatched_dtypes_name_the_argument(kernel, out_name):
    x, out = good_pair()
    with pytest.raises(TypeError, match=f"^{out_name}:"):
        kernel(x, out.astype(np.float32))
    with pytest.raises(TypeError, match=f"^{out_name}:"):
        kernel(x.astype(np.float32), out)


@pytest.mark.parametrize("kernel, out_name", KERNELS)
def test_int_arrays_are_refused(kernel, out_name):
    x, out = good_pair()
    with pytest.raises(TypeError, match="^x:"):
        kernel(np.ones((3, 4), dtype=np.int64), out)
    with pytest.raises(TypeError, match=f"^{out_name}:"):
        kernel(x, np.ones((3, 4), dtype=np.int32))


@pytest.mark.parametrize("sigma", [0.0, -1.0, np.inf, np.nan])
def test_gaussian_refuses_non_positive_sigma(sigma):
    x, recon = good_pair()
    with pytest.raises(ValueError, match="^sigma:"):
        gaussian_log_lik_forward(x, recon, sigma)


@pytest.mark.parametrize("sigma", ["1.0", None, np.ones(1)])
def test_gaussian_refuses_sigma_that_is_not_a_number(sigma):
    x, recon = good_pair()
    with pytest.raises(TypeError, match="^sigma:"):
        gaussian_log_lik_forward(x, recon, sigma)


@given(n=batch, d=features, seed=seeds)
def test_gaussian_log_density_backward_matches_finite_differences(n, d, seed):
    from numpyvae.reference.likelihoods import gaussian_log_density_backward, gaussian_log_density_forward
    rng = np.random.default_rng(seed)
    z, mu = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    log_var = rng.uniform(-1.5, 1.5, (n, d))
    log_density, cache = gaussian_log_density_forward(z, mu, log_var)
    expected = norm.logpdf(z, mu, np.exp(0.5 * log_var)).sum(axis=1)
    np.testing.assert_allclose(log_density, expected, rtol=1e-12, atol=1e-12)
    assert_vjp_close(gaussian_log_density_forward, [z, mu, log_var],
                     gaussian_log_density_backward, rng=seed, names=["z", "mu", "log_var"])

    def planted(dout, cache):  # a 0.1% error in dlog_var must be seen
        dz, dmu, dlog_var = gaussian_log_density_backward(dout, cache)
        return dz, dmu, dlog_var * 1.001
    with pytest.raises(AssertionError, match="log_var"):
        assert_vjp_close(gaussian_log_density_forward, [z, mu, log_var], planted, rng=seed,
                         names=["z", "mu", "log_var"])


# ------------------------------------------ values are checked at the boundary

def test_the_kernels_trust_their_callers_and_propagate_nan():
    # No value check inside: a NaN reaches the output, it is never cleaned.
    x, out = good_pair()
    x[1, 2] = np.nan
    for kernel, _ in KERNELS:
        log_lik, _ = kernel(x, out)
        assert np.isnan(log_lik[1]) and np.isfinite(log_lik[[0, 2]]).all()


def _one_layer(likelihood):
    return VAE(4, 2, hidden=(3,), likelihood=likelihood, rng=0)


def _two_layer():
    return HierarchicalVAE(4, (2, 2), hidden=(3,), hidden2=(3,), rng=0)


def _entry_points():
    """(name, call(model, x)) for every public function that takes data."""
    from numpyvae import estimators
    from numpyvae.evaluation import evaluate

    def eps_for(model, x, k=None):
        shape = (x.shape[0], model.config.noise_dim)
        return np.zeros(shape if k is None else (k, *shape), np.float32)

    return [
        ("as_input", lambda m, x: m.as_input(x)),
        ("encode", lambda m, x: m.encode(x)),
        ("elbo", lambda m, x: m.elbo(x, rng=0)),
        ("reconstruct", lambda m, x: m.reconstruct(x)),
        ("loss_and_grads", lambda m, x: m.loss_and_grads(x, eps_for(m, x))),
        ("loss_and_grads-iwae",
         lambda m, x: m.loss_and_grads(x, eps_for(m, x, 2), objective="iwae")),
        ("fit", lambda m, x: fit(m, x, epochs=1, batch_size=2, rng=0)),
        ("iwae_bound", lambda m, x: estimators.iwae_bound(m, x, 3, 0)),
        ("iwae_bound-reference", lambda m, x: estimators.iwae_bound(m, x, 3, 0, fast=False)),
        ("naive_log_likelihood", lambda m, x: estimators.naive_log_likelihood(m, x, 3, 0)),
        ("sampled_elbo", lambda m, x: estimators.sampled_elbo(m, x, 3, 0)),
        ("estimators.elbo", lambda m, x: estimators.elbo(m, x, 0)),
        ("evaluate", lambda m, x: evaluate(m, x, k=2, rng=0)),
    ]


ENTRY_POINTS = _entry_points()
MODELS = [("bernoulli", lambda: _one_layer("bernoulli")),
          ("gaussian", lambda: _one_layer("gaussian")), ("two-layer", _two_layer)]


@pytest.mark.parametrize("make", [m for _, m in MODELS], ids=[n for n, _ in MODELS])
@pytest.mark.parametrize("call", [c for _, c in ENTRY_POINTS], ids=[n for n, _ in ENTRY_POINTS])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_every_entry_point_refuses_non_finite_x(make, call, bad):
    model = make()
    x = np.random.default_rng(0).random((4, 4)).astype(np.float32)
    x[2, 1] = bad
    with pytest.raises(ValueError, match=r"^x\w*: expected finite values.*\(2, 1\)"):
        call(model, x)


@pytest.mark.parametrize("make", [MODELS[0][1], MODELS[2][1]], ids=["bernoulli", "two-layer"])
@pytest.mark.parametrize("call", [c for _, c in ENTRY_POINTS], ids=[n for n, _ in ENTRY_POINTS])
@pytest.mark.parametrize("value", [-0.1, 1.5, -1e-6, 1.0 + 1e-6])
def test_every_bernoulli_entry_point_refuses_x_outside_the_unit_interval(make, call, value):
    model = make()
    x = np.random.default_rng(0).random((4, 4)).astype(np.float32)
    x[1, 2] = value
    with pytest.raises(ValueError, match=r"^x\w*: expected values in \[0, 1\]"):
        call(model, x)


@pytest.mark.parametrize("call", [c for _, c in ENTRY_POINTS], ids=[n for n, _ in ENTRY_POINTS])
def test_a_gaussian_decoder_takes_real_x(call):
    # The [0, 1] check belongs to the Bernoulli decoder alone.
    x = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32) * 3.0
    call(_one_layer("gaussian"), x)


@pytest.mark.parametrize("make", [m for _, m in MODELS], ids=[n for n, _ in MODELS])
@pytest.mark.parametrize("call", [c for _, c in ENTRY_POINTS], ids=[n for n, _ in ENTRY_POINTS])
@pytest.mark.parametrize("bad,error,pattern", [
    (np.zeros((4, 5), np.float32), ValueError, r"expected shape \(n, 4\), got \(4, 5\)"),
    (np.zeros((2, 2, 4), np.float32), ValueError, "expected shape"),
    (np.zeros((4, 4), np.int64), TypeError, "expected floating-point data"),
    (np.zeros((4, 4), bool), TypeError, "expected floating-point data"),
    (np.zeros((4, 4), np.complex128), TypeError, "expected real floating-point"),
], ids=["features", "3d", "int", "bool", "complex"])
def test_every_entry_point_refuses_bad_shapes_and_dtypes(make, call, bad, error, pattern):
    with pytest.raises(error, match=r"^x\w*: " + pattern):
        call(make(), bad)
