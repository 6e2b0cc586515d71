"""Tests for numpyvae/reference/activations.py: each *_backward against central
differences, known values, overflow-free evaluation and dtype discipline."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import expit

from numpyvae.reference.activations import (
    ACTIVATIONS,
    activation_backward,
    activation_forward,
    identity_backward,
    identity_forward,
    relu_backward,
    relu_forward,
    sigmoid,
    sigmoid_backward,
    sigmoid_forward,
    softplus,
    softplus_backward,
    softplus_forward,
    tanh_backward,
    tanh_forward,
)
from numpyvae.testing import assert_vjp_close

TOL = dict(rtol=1e-6, atol=1e-9)  # float64 and a smooth function

PAIRS = {
    "relu": (relu_forward, relu_backward),
    "tanh": (tanh_forward, tanh_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "softplus": (softplus_forward, softplus_backward),
    "identity": (identity_forward, identity_backward),
}

batch = st.integers(1, 8)
features = st.integers(1, 16)
seeds = st.integers(0, 2**32 - 1)


def pre_activations(rng, shape, name):
    """Bounded inputs; for relu at least 1e-3 away from its kink at 0."""
    if name == "relu":
        return rng.uniform(1e-3, 3.0, shape) * rng.choice([-1.0, 1.0], shape)
    return rng.uniform(-4.0, 4.0, shape)


@pytest.mark.parametrize("name", sorted(PAIRS))
@given(n=batch, d=features, seed=seeds)
def test_backward_matches_finite_differences(name, n, d, seed):
    forward, backward = PAIRS[name]
    rng = np.random.default_rng(seed)
    a = pre_activations(rng, (n, d), name)
    assert_vjp_close(forward, a, backward, rng, names=["a"])


@pytest.mark.parametrize("name", sorted(PAIRS))
@given(k=st.integers(1, 4), n=batch, d=features, seed=seeds)
def test_backward_with_a_leading_sample_axis(name, k, n, d, seed):
    # (k, n, d): the decoder's hidden layers see k samples of z at once.
    forward, backward = PAIRS[name]
    rng = np.random.default_rng(seed)
    a = pre_activations(rng, (k, n, d), name)
    assert_vjp_close(forward, a, backward, rng, names=["a"], **TOL)
    h, _ = forward(a)
    for i in range(k):
        np.testing.assert_array_equal(h[i], forward(a[i])[0])


def test_relu_gradient_at_the_kink_is_zero():
    a = np.array([[0.0, -0.0, 1.0, -1.0]])
    dh = np.array([[3.0, 3.0, 3.0, 3.0]])
    h, cache = relu_forward(a)
    np.testing.assert_array_equal(h, [[0.0, 0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(relu_backward(dh, cache), [[0.0, 0.0, 3.0, 0.0]])


def test_known_values():
    a = np.array([-2.0, 0.0, 1.5])
    np.testing.assert_allclose(relu_forward(a)[0], [0.0, 0.0, 1.5], **TOL)
    np.testing.assert_allclose(tanh_forward(a)[0], np.tanh(a), **TOL)
    np.testing.assert_allclose(sigmoid_forward(a)[0], 1.0 / (1.0 + np.exp(-a)), **TOL)
    np.testing.assert_allclose(softplus_forward(a)[0], np.log1p(np.exp(a)), **TOL)
    np.testing.assert_array_equal(identity_forward(a)[0], a)
    assert sigmoid(np.array(0.0)) == 0.5
    np.testing.assert_allclose(softplus(np.array(0.0)), math.log(2.0), **TOL)


@given(n=batch, d=features, seed=seeds)
def test_sigmoid_and_softplus_match_scipy_references(n, d, seed):
    a = np.random.default_rng(seed).uniform(-20.0, 20.0, (n, d))
    np.testing.assert_allclose(sigmoid(a), expit(a), **TOL)
    np.testing.assert_allclose(softplus(a), np.logaddexp(0.0, a), **TOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_softplus_do_not_overflow_at_large_inputs(dtype):
    a = np.array([-1e4, -100.0, 100.0, 1e4], dtype=dtype)  # warnings are errors
    np.testing.assert_allclose(sigmoid(a), [0.0, 0.0, 1.0, 1.0], atol=1e-30)
    np.testing.assert_allclose(softplus(a), [0.0, 0.0, 100.0, 1e4], rtol=1e-6, atol=1e-30)
    assert np.isfinite(softplus_backward(np.ones_like(a), softplus_forward(a)[1])).all()
    assert np.isfinite(sigmoid_backward(np.ones_like(a), sigmoid_forward(a)[1])).all()


@pytest.mark.parametrize("name", sorted(PAIRS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved_forward_and_backward(name, dtype):
    forward, backward = PAIRS[name]
    rng = np.random.default_rng(0)
    a = pre_activations(rng, (3, 4), name).astype(dtype)
    dh = rng.standard_normal((3, 4)).astype(dtype)
    h, cache = forward(a)
    assert h.dtype == dtype
    assert backward(dh, cache).dtype == dtype


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dispatch_matches_the_named_pair(name):
    forward, backward = PAIRS[name]
    rng = np.random.default_rng(1)
    a, dh = pre_activations(rng, (2, 5), name), rng.standard_normal((2, 5))
    h, cache = activation_forward(name, a)
    np.testing.assert_array_equal(h, forward(a)[0])
    np.testing.assert_array_equal(activation_backward(name, dh, cache),
                                  backward(dh, forward(a)[1]))


def test_dispatch_rejects_an_unknown_name():
    a = np.zeros((1, 1))
    with pytest.raises(ValueError, match="^activation:"):
        activation_forward("gelu", a)
    with pytest.raises(ValueError, match="^activation:"):
        activation_backward("gelu", a, a)
