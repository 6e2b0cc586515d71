"""Tests for numpyvae/layers.py: dense_backward (dx, dW, db) against
central differences, known values, dtypes, input errors and init_dense."""

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from numpyvae.layers import dense_backward, dense_forward, init_dense
from numpyvae.testing import assert_vjp_close

TOL = dict(rtol=1e-6, atol=1e-9)  # float64 and a smooth function

batch = st.integers(1, 8)
features = st.integers(1, 16)
seeds = st.integers(0, 2**32 - 1)


def dense_inputs(rng, n, d_in, d_out, dtype=np.float64):
    x = rng.standard_normal((n, d_in)).astype(dtype)
    W = rng.standard_normal((d_in, d_out)).astype(dtype)
    b = rng.standard_normal(d_out).astype(dtype)
    dh = rng.standard_normal((n, d_out)).astype(dtype)  # random upstream grad
    return x, W, b, dh


@given(n=batch, d_in=features, d_out=features, seed=seeds)
def test_dense_backward_matches_finite_differences(n, d_in, d_out, seed):
    rng = np.random.default_rng(seed)
    x, W, b, _ = dense_inputs(rng, n, d_in, d_out)
    assert_vjp_close(dense_forward, [x, W, b], dense_backward, rng, names=["x", "W", "b"])


def test_dense_forward_known_values():
    x = np.array([[1.0, 2.0], [0.0, -1.0]])
    W = np.array([[1.0, 0.0, 2.0], [3.0, -1.0, 0.5]])
    b = np.array([0.5, 0.0, -1.0])
    h, _ = dense_forward(x, W, b)
    np.testing.assert_allclose(h, [[7.5, -2.0, 2.0], [-2.5, 1.0, -1.5]], **TOL)


def test_dense_backward_known_values():
    x = np.array([[1.0, 2.0]])
    W = np.array([[1.0, 0.0], [3.0, -1.0]])  # not symmetric
    dh = np.array([[1.0, 2.0]])
    dx, dW, db = dense_backward(dh, dense_forward(x, W, np.zeros(2))[1])
    np.testing.assert_allclose(dx, [[1.0, 1.0]], **TOL)  # dh W^T
    np.testing.assert_allclose(dW, [[1.0, 2.0], [2.0, 4.0]], **TOL)  # x^T dh
    np.testing.assert_allclose(db, [1.0, 2.0], **TOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved_forward_and_backward(dtype):
    x, W, b, dh = dense_inputs(np.random.default_rng(0), 3, 4, 2, dtype)
    h, cache = dense_forward(x, W, b)
    assert h.dtype == dtype
    for grad in dense_backward(dh, cache):
        assert grad.dtype == dtype


def test_wrong_shapes_name_the_argument():
    x, W, b, _ = dense_inputs(np.random.default_rng(0), 3, 4, 2)
    with pytest.raises(ValueError, match="^W:"):
        dense_forward(x, W[:3], b)
    with pytest.raises(ValueError, match="^b:"):
        dense_forward(x, W, np.zeros(3))
    with pytest.raises(ValueError, match="^x:"):
        dense_forward(x[0], W, b)
    with pytest.raises(ValueError, match="^b:"):
        dense_forward(x, W, b[None, :])


@pytest.mark.parametrize("bad", ["x", "W", "b"])
def test_mismatched_dtypes_name_the_argument(bad):
    args = dict(zip("xWb", dense_inputs(np.random.default_rng(0), 3, 4, 2)))
    args[bad] = args[bad].astype(np.float32)
    # The first array fixes the dtype, so a float32 x is reported against W.
    expected = "W" if bad == "x" else bad
    with pytest.raises(TypeError, match=f"^{expected}:"):
        dense_forward(args["x"], args["W"], args["b"])


@pytest.mark.parametrize("bad", ["x", "W", "b"])
def test_int_arrays_are_refused(bad):
    args = dict(zip("xWb", dense_inputs(np.random.default_rng(0), 3, 4, 2)))
    args[bad] = np.ones(args[bad].shape, dtype=np.int64)
    with pytest.raises(TypeError, match=f"^{bad}:"):
        dense_forward(args["x"], args["W"], args["b"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scheme", ["glorot", "he"])
def test_init_dense_shapes_dtype_and_zero_bias(dtype, scheme):
    W, b = init_dense(np.random.default_rng(0), 5, 3, dtype=dtype, scheme=scheme)
    assert W.shape == (5, 3) and b.shape == (3,)
    assert W.dtype == dtype and b.dtype == dtype
    np.testing.assert_array_equal(b, 0.0)


def test_init_dense_glorot_bound_and_he_scale():
    d_in, d_out = 300, 200
    W, _ = init_dense(np.random.default_rng(0), d_in, d_out, "float64", "glorot")
    limit = math.sqrt(6.0 / (d_in + d_out))
    assert np.abs(W).max() <= limit
    assert np.abs(W).max() > 0.99 * limit  # fills the interval
    W, _ = init_dense(np.random.default_rng(0), d_in, d_out, "float64", "he")
    # 60,000 draws: the sample std is within 1% of sqrt(2 / d_in).
    np.testing.assert_allclose(W.std(), math.sqrt(2.0 / d_in), rtol=0.01)


def test_init_dense_is_reproducible_with_the_same_seed():
    W1, _ = init_dense(np.random.default_rng(7), 4, 3)
    W2, _ = init_dense(np.random.default_rng(7), 4, 3)
    W3, _ = init_dense(np.random.default_rng(8), 4, 3)
    np.testing.assert_array_equal(W1, W2)
    assert not np.array_equal(W1, W3)


def test_init_dense_bad_arguments_name_themselves():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="^scheme:"):
        init_dense(rng, 2, 2, scheme="xavier")
    with pytest.raises(TypeError, match="^dtype:"):
        init_dense(rng, 2, 2, dtype="int32")
    with pytest.raises(TypeError, match="^rng:"):
        init_dense(0, 2, 2)
