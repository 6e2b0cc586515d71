"""Tests for numpyvae/checks/gradcheck.py: the element-wise checker itself.

numerical_vjp and directional_derivatives on known derivatives; the gate of
compare_gradients; and, most important, that gradcheck fails on the
classic hand-written-gradient bugs planted below, while the correct
gradient passes at the same point. The checks along random directions
(numpyvae/checks/directional.py): tests/checks/test_directional.py.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyvae.gradcheck import (
    check_gradients,
    compare_gradients,
    directional_derivatives,
    numerical_gradient,
    numerical_vjp,
)
from numpyvae.reference.activations import sigmoid
from numpyvae.reference.kl import kl_backward, kl_forward
from numpyvae.reference.layers import dense_backward, dense_forward
from numpyvae.reference.likelihoods import bernoulli_log_lik_backward, bernoulli_log_lik_forward
from numpyvae.reference.sampling import reparameterize_backward, reparameterize_forward

TOL = dict(rtol=1e-6, atol=1e-9)  # float64 and a smooth function

batch = st.integers(1, 8)
features = st.integers(1, 16)
seeds = st.integers(0, 2**32 - 1)


# ------------------------------------------------ numerical_vjp, known cases

@given(n=batch, d=features, seed=seeds)
def test_numerical_vjp_of_sin_is_dout_times_cos(n, d, seed):
    rng = np.random.default_rng(seed)
    x, dout = rng.uniform(-3.0, 3.0, (n, d)), rng.standard_normal((n, d))
    np.testing.assert_allclose(numerical_vjp(np.sin, x, dout), dout * np.cos(x), **TOL)


@given(n=batch, d=features, seed=seeds)
def test_numerical_vjp_of_a_linear_map_is_the_transpose(n, d, seed):
    rng = np.random.default_rng(seed)
    A, x, dout = rng.standard_normal((n, d)), rng.standard_normal(d), rng.standard_normal(n)
    np.testing.assert_allclose(numerical_vjp(lambda v: A @ v, x, dout), A.T @ dout, **TOL)


def test_numerical_gradient_of_a_scalar_function():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    np.testing.assert_allclose(numerical_vjp(lambda v: (v ** 3).sum(), x, 1.0), 3 * x ** 2, **TOL)
    np.testing.assert_allclose(numerical_gradient(lambda v: np.exp(v).sum(), x), np.exp(x),
                               **TOL)


def test_numerical_vjp_leaves_x_unchanged():
    x = np.array([1.0, 2.0, 3.0])
    before = x.copy()

    def f(v):
        out = v * v
        v[:] = 0.0  # a careless f that writes into its argument
        return out

    numerical_vjp(f, x, np.ones(3))
    np.testing.assert_array_equal(x, before)


# -------------------------------------------------------- directional_derivatives

def cubic(v):
    return float((v ** 3).sum())


@given(n=batch, d=features, seed=seeds)
def test_directional_check_agrees_for_a_correct_gradient(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, (n, d))
    analytic, numerical = directional_derivatives(cubic, x, 3 * x ** 2, rng)
    np.testing.assert_allclose(analytic, numerical, **TOL)


def test_directional_check_disagrees_for_a_wrong_gradient():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2.0, 2.0, (4, 5))
    wrong = 3 * x ** 2
    wrong[1, 2] *= -1.0  # one sign flipped
    analytic, numerical = directional_derivatives(cubic, x, wrong, np.random.default_rng(1))
    assert abs(analytic - numerical) > 1e-3 * abs(numerical)


# ------------------------------------------------------------ float64 only

def test_float32_inputs_are_refused():
    x32 = np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="float64"):
        check_gradients(cubic, x32, 3 * x32 ** 2)
    with pytest.raises(TypeError, match="float64"):
        numerical_vjp(np.sin, x32, np.ones(3))
    with pytest.raises(TypeError, match="float64"):
        directional_derivatives(cubic, x32, 3 * x32 ** 2, np.random.default_rng(0))
    x64 = np.ones(3)
    with pytest.raises(TypeError, match="^W:.*float64"):
        check_gradients(lambda a, b: float((a * b).sum()), [x64, x32], [x32, x64], names=["x", "W"])


def test_require_float64_is_still_reached_through_gradcheck():
    # it lives in numpyvae/checks/fd_setup.py, shared with numpyvae/checks/directional.py
    import numpyvae.checks.fd_setup
    import numpyvae.gradcheck
    assert numpyvae.gradcheck.require_float64 is numpyvae.checks.fd_setup.require_float64
    with pytest.raises(TypeError, match="^v: finite differences need float64"):
        numpyvae.gradcheck.require_float64(np.ones(2, dtype=np.float32), "v")


# ------------------------------------------------------------------- report

def test_report_str_is_a_table_naming_each_input():
    x, W = np.array([1.0, -2.0]), np.array([[0.5, 1.5], [2.0, -1.0]])

    def f(x, W):
        return float(np.tanh(x @ W).sum())

    dh = 1.0 - np.tanh(x @ W) ** 2
    dW_halved = 0.5 * np.outer(x, dh)  # deliberately wrong, to get a "NO" row
    report = check_gradients(f, [x, W], [W @ dh, dW_halved], names=["x", "W"])
    lines = str(report).splitlines()
    assert len(lines) == 3  # header and one row per input
    assert lines[0].split()[0] == "input"
    assert lines[1].split()[:2] == ["x", "(2,)"] and lines[1].split()[4] == "yes"
    assert lines[2].split()[:3] == ["W", "(2,", "2)"] and lines[2].split()[5] == "NO"
    assert report.inputs[0].passed and not report.inputs[1].passed and not report.passed


def test_report_default_names_and_f_value():
    x, y = np.array([1.0, 2.0]), np.array([3.0])
    report = check_gradients(lambda a, b: float(a.sum() * b[0]), (x, y), (np.array([3.0, 3.0]),
                                                                     np.array([3.0])))
    assert [c.name for c in report.inputs] == ["x0", "x1"]
    assert report.f_value == 9.0 and report.passed
    assert "x0" in str(report) and "x1" in str(report)


def test_gradcheck_needs_one_gradient_per_input():
    x = np.ones(2)
    with pytest.raises(ValueError, match="^analytic:"):
        check_gradients(lambda a, b: float((a + b).sum()), [x, x], [x])


def test_gradcheck_leaves_inputs_unchanged():
    x = np.array([1.0, -2.0])
    before = x.copy()
    assert check_gradients(cubic, x, 3 * x ** 2).passed
    np.testing.assert_array_equal(x, before)


# ------------------------------------------------------ compare_gradients

@given(n=batch, d=features, seed=seeds, f_value=st.floats(-1e3, 1e3))
def test_compare_gradients_passes_exact_gradients(n, d, seed, f_value):
    g = np.random.default_rng(seed).standard_normal((n, d))
    check = compare_gradients("g", g, g.copy(), f_value)
    assert check.passed
    assert check.normwise_error == 0.0 and check.max_abs_error == 0.0


def test_compare_gradients_passes_a_zero_gradient():
    assert compare_gradients("g", np.zeros(3), np.zeros(3), 0.0).passed


def test_entrywise_gate_forgives_rounding_noise_on_a_zero_entry():
    # A relative error per entry would fail here (1e-9 vs 0); the gate does not.
    assert compare_gradients("g", np.array([1.0, 1e-9]), np.array([1.0, 0.0]), 1.0).passed


def test_entrywise_gate_catches_an_error_the_norm_hides():
    # Normwise error 1e-4 / 2e3 = 5e-8 passes; the small entry is 1% off and fails.
    numerical = np.array([1e3, 1e-2])
    check = compare_gradients("g", np.array([1e3, 1e-2 + 1e-4]), numerical, 1.0)
    assert check.normwise_error < 1e-7
    assert not check.passed and check.worst_index == (1,)


def test_normwise_gate_catches_a_wrong_gradient_of_a_tiny_function():
    # Every entry is within the absolute allowance 1e-6 * max(1, |f|), yet
    # the analytic gradient is twice the true one: the normwise test fails it.
    numerical = np.full(4, 1e-7)
    check = compare_gradients("g", 2 * numerical, numerical, 1e-6)
    assert check.max_abs_error < 1e-6
    assert not check.passed


def test_compare_gradients_fails_non_finite_and_refuses_shape_mismatch():
    assert not compare_gradients("g", np.array([np.nan, 1.0]), np.array([1.0, 1.0]), 1.0).passed
    with pytest.raises(ValueError, match="^dW:"):
        compare_gradients("dW", np.ones((2, 3)), np.ones((3, 2)), 1.0)


# ------------------------------------------------------------ planted bugs
# Each test computes the correct gradient and a classic buggy one at the
# same point: gradcheck must pass the first and fail the second.

@given(n=batch, d_z=features, seed=seeds)
def test_catches_kl_dlog_var_without_the_factor_half(n, d_z, seed):
    rng = np.random.default_rng(seed)
    mu, log_var = rng.uniform(-2, 2, (n, d_z)), rng.uniform(-2, 2, (n, d_z))
    dkl = rng.standard_normal(n)

    def f(mu, log_var):
        return float(np.sum(dkl * kl_forward(mu, log_var)[0]))

    dmu, dlog_var = kl_backward(dkl, kl_forward(mu, log_var)[1])
    assert check_gradients(f, [mu, log_var], [dmu, dlog_var]).passed
    buggy = dkl[:, None] * (np.exp(log_var) - 1.0)  # 0.5 dropped
    report = check_gradients(f, [mu, log_var], [dmu, buggy], names=["mu", "log_var"])
    assert not report.passed
    assert report.inputs[0].passed and not report.inputs[1].passed  # blames log_var


@given(n=batch, d=features, seed=seeds)
def test_catches_a_sign_flip_in_the_bernoulli_gradient(n, d, seed):
    rng = np.random.default_rng(seed)
    x, logits = rng.uniform(0, 1, (n, d)), rng.uniform(-4, 4, (n, d))
    dlog_lik = rng.standard_normal(n)

    def f(logits):
        return float(np.sum(dlog_lik * bernoulli_log_lik_forward(x, logits)[0]))

    dlogits = bernoulli_log_lik_backward(dlog_lik, (x, logits))
    assert check_gradients(f, logits, dlogits).passed
    buggy = dlog_lik[:, None] * (sigmoid(logits) - x)  # sign flipped
    assert not check_gradients(f, logits, buggy).passed


@given(n=batch, d=st.integers(2, 16), seed=seeds)
def test_catches_untransposed_W_in_dense_dx(n, d, seed):
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal((n, d)), rng.standard_normal((d, d)), rng.standard_normal(d)
    dh = rng.standard_normal((n, d))  # W square, so dh @ W has the right shape

    def f(x):
        return float(np.sum(dh * dense_forward(x, W, b)[0]))

    dx, _, _ = dense_backward(dh, (x, W))
    assert check_gradients(f, x, dx).passed
    assert not check_gradients(f, x, dh @ W).passed  # W, not W^T


@pytest.mark.parametrize("reduce", [lambda dh: dh[0], lambda dh: dh.mean(axis=0)],
                         ids=["first-row", "mean"])
@given(n=st.integers(2, 8), d=features, seed=seeds)
def test_catches_a_missing_bias_sum(reduce, n, d, seed):
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal((n, d)), rng.standard_normal((d, 3)), rng.standard_normal(3)
    dh = rng.standard_normal((n, 3))

    def f(b):
        return float(np.sum(dh * dense_forward(x, W, b)[0]))

    _, _, db = dense_backward(dh, (x, W))
    assert check_gradients(f, b, db).passed
    assert not check_gradients(f, b, reduce(dh)).passed


@given(n=batch, d_z=features, seed=seeds)
def test_catches_variance_used_as_std_in_the_reparameterization(n, d_z, seed):
    rng = np.random.default_rng(seed)
    mu, log_var = rng.uniform(-2, 2, (n, d_z)), rng.uniform(-2, 2, (n, d_z))
    eps, dz = rng.standard_normal((n, d_z)), rng.standard_normal((n, d_z))

    def f(log_var):
        return float(np.sum(dz * reparameterize_forward(mu, log_var, eps)[0]))

    _, dlog_var = reparameterize_backward(dz, reparameterize_forward(mu, log_var, eps)[1])
    assert check_gradients(f, log_var, dlog_var).passed
    buggy = dz * eps * 0.5 * np.exp(log_var)  # exp(log_var) is the variance
    assert not check_gradients(f, log_var, buggy).passed


@given(n=batch, d=features, seed=seeds)
def test_catches_a_planted_error_of_one_tenth_of_a_percent(n, d, seed):
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal((n, d)), rng.standard_normal((d, 4)), rng.standard_normal(4)
    dh = rng.standard_normal((n, 4))

    def f(W):
        return float(np.sum(dh * dense_forward(x, W, b)[0]))

    _, dW, _ = dense_backward(dh, (x, W))
    assert check_gradients(f, W, dW).passed
    assert not check_gradients(f, W, dW * 1.001).passed  # every entry 0.1% off
    one_entry = dW.copy()
    one_entry[np.unravel_index(np.argmax(np.abs(dW)), dW.shape)] *= 1.001
    assert not check_gradients(f, W, one_entry).passed  # only the largest entry 0.1% off
