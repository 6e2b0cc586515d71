"""Tests for numpyvae/reference/layers.py: dense_backward (dx, dW, db) and
mlp_backward against central differences, with and without a leading
sample axis, known values, dtypes, input errors and init_dense."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyvae.reference.activations import ACTIVATIONS
from numpyvae.reference.layers import dense_backward, dense_forward, init_dense, mlp_backward, mlp_forward
from numpyvae.testing import KINK_MARGIN, assert_vjp_close

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


@given(k=st.integers(1, 4), n=batch, d_in=features, d_out=features, seed=seeds)
def test_dense_backward_with_a_leading_sample_axis(k, n, d_in, d_out, seed):
    # x (k, n, d_in): dW and db sum over every row of every sample.
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((k, n, d_in))
    W, b = rng.standard_normal((d_in, d_out)), rng.standard_normal(d_out)
    assert_vjp_close(dense_forward, [x, W, b], dense_backward, rng, names=["x", "W", "b"],
                     **TOL)


@given(k=st.integers(1, 4), n=batch, d_in=features, d_out=features, seed=seeds)
def test_dense_with_a_sample_axis_is_each_slab_on_its_own(k, n, d_in, d_out, seed):
    rng = np.random.default_rng(seed)
    x, W, b, _ = dense_inputs(rng, n, d_in, d_out)
    xs = np.stack([x + rng.standard_normal(x.shape) for _ in range(k)])  # (k, n, d_in)
    dh = rng.standard_normal((k, n, d_out))
    h, cache = dense_forward(xs, W, b)
    dx, dW, db = dense_backward(dh, cache)
    assert h.shape == (k, n, d_out) and dx.shape == xs.shape
    parts = [dense_backward(dh[i], dense_forward(xs[i], W, b)[1]) for i in range(k)]
    for i in range(k):
        np.testing.assert_allclose(h[i], dense_forward(xs[i], W, b)[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx[i], parts[i][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dW, sum(p[1] for p in parts), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(db, sum(p[2] for p in parts), rtol=1e-10, atol=1e-12)


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
    with pytest.raises(ValueError, match="^W:"):
        dense_forward(x[None], W[:3], b)  # a sample axis does not hide a bad d_in
    with pytest.raises(ValueError, match="^b:"):
        dense_forward(x, W, np.zeros(3))
    with pytest.raises(ValueError, match="^b:"):
        dense_forward(x, W, b[None, :])
    with pytest.raises(ValueError, match="^W:"):
        dense_forward(x, W[None], b)


def test_a_one_dimensional_x_is_refused_naming_x():
    x, W, b, _ = dense_inputs(np.random.default_rng(0), 3, 4, 2)
    with pytest.raises(ValueError, match="^x:"):
        dense_forward(x[0], W, b)


@pytest.mark.parametrize("bad", ["x", "W", "b"])
def test_mismatched_dtypes_name_the_argument(bad):
    args = dict(zip("xWb", dense_inputs(np.random.default_rng(0), 3, 4, 2)[:3], strict=True))
    args[bad] = args[bad].astype(np.float32)
    # The first array fixes the dtype, so a float32 x is reported against W.
    expected = "W" if bad == "x" else bad
    with pytest.raises(TypeError, match=f"^{expected}:"):
        dense_forward(args["x"], args["W"], args["b"])


@pytest.mark.parametrize("bad", ["x", "W", "b"])
def test_int_arrays_are_refused(bad):
    args = dict(zip("xWb", dense_inputs(np.random.default_rng(0), 3, 4, 2)[:3], strict=True))
    args[bad] = np.ones(args[bad].shape, dtype=np.int64)
    with pytest.raises(TypeError, match=f"^{bad}:"):
        dense_forward(args["x"], args["W"], args["b"])


# ------------------------------------------------------------- mlp

WIDTHS = (5, 4)  # hidden widths of depth 2; depth 1 uses the first


def mlp_point(rng, activation, depth, lead, d_in=3):
    """h (lead + (n, d_in)) and params, every relu input off its kink."""
    n = 4
    for _ in range(100):
        h = rng.standard_normal((*lead, n, d_in))
        dims = [d_in, *WIDTHS[:depth]]
        params = {}
        for i in range(depth):
            W = rng.standard_normal((dims[i], dims[i + 1])) / math.sqrt(dims[i])
            params[f"enc{i}.W"] = W
            params[f"enc{i}.b"] = rng.uniform(-0.5, 0.5, dims[i + 1])
        _, caches = mlp_forward(params, h, "enc", depth, activation)
        # a relu's cache is its input a = h W + b
        if activation != "relu" or all(np.abs(a).min() > KINK_MARGIN for _, _, a in caches):
            return h, params
    raise AssertionError("no draw keeps every relu input off its kink")


@pytest.mark.parametrize("lead", [(), (3,)], ids=["rows", "samples"])
@pytest.mark.parametrize("depth", [0, 1, 2])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_mlp_backward_matches_finite_differences(activation, depth, lead):
    rng = np.random.default_rng(depth + 10 * len(lead))
    h, params = mlp_point(rng, activation, depth, lead)
    names = list(params)

    def forward(h, *arrays):
        return mlp_forward(dict(zip(names, arrays, strict=True)), h, "enc", depth, activation)

    def backward(dout, caches):
        grads = {}
        dh = mlp_backward(dout, caches, activation, grads)
        assert sorted(grads) == sorted(names)
        return [dh] + [grads[k] for k in names]

    assert_vjp_close(forward, [h] + [params[k] for k in names], backward, rng,
                     names=["h"] + names, **TOL)


def test_mlp_without_layers_is_the_identity():
    h = np.random.default_rng(0).standard_normal((2, 4, 3))
    out, caches = mlp_forward({}, h, "enc", 0, "tanh")
    assert out is h and caches == []
    grads = {}
    dh = np.ones_like(h)
    assert mlp_backward(dh, caches, "tanh", grads) is dh and grads == {}


def test_mlp_is_dense_then_activation_layer_by_layer():
    rng = np.random.default_rng(1)
    h, params = mlp_point(rng, "tanh", 2, (2,))
    out, caches = mlp_forward(params, h, "enc", 2, "tanh")
    expected = np.tanh(np.tanh(h @ params["enc0.W"] + params["enc0.b"]) @ params["enc1.W"]
                       + params["enc1.b"])
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)
    assert [name for name, _, _ in caches] == ["enc0", "enc1"]


def test_mlp_backward_planted_error_is_caught():
    rng = np.random.default_rng(2)
    h, params = mlp_point(rng, "softplus", 2, (3,))
    names = list(params)

    def forward(h, *arrays):
        return mlp_forward(dict(zip(names, arrays, strict=True)), h, "enc", 2, "softplus")

    def planted(dout, caches):
        grads = {}
        dh = mlp_backward(dout, caches, "softplus", grads)
        grads["enc0.W"] = grads["enc0.W"] * 1.001  # a 0.1% error
        return [dh] + [grads[k] for k in names]

    with pytest.raises(AssertionError, match="enc0.W"):
        assert_vjp_close(forward, [h] + [params[k] for k in names], planted, rng,
                         names=["h"] + names, **TOL)


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
