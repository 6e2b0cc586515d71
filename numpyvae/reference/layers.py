"""The dense (fully connected) layer and its initializers.

Every network in numpyvae -- the encoder lambda_phi(x) and the decoder
mu_theta(z) of the notes -- is a stack of dense layers ``h = x W + b``
with an activation between them (`mlp_forward`). A leading sample axis
is allowed: x of shape (k, n, d_in) maps each of its k * n rows, which
is how k samples of z per example go through the decoder at once.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from .activations import activation_backward, activation_forward
from .arrays import check_float_array, check_same_dtype

Array = NDArray[np.floating]


def dense_forward(x: Array, W: Array, b: Array) -> tuple[Array, tuple[Array, Array]]:
    """Affine map of a batch of row vectors.

    Parameters
    ----------
    x : ndarray, shape (..., d_in)
        Rows (n, d_in), or with leading sample axes (k, n, d_in).
    W : ndarray, shape (d_in, d_out)
    b : ndarray, shape (d_out,)
        All three of one dtype, float32 or float64.

    Returns
    -------
    h : ndarray, shape (..., d_out)
    cache : tuple ``(x, W)``, exactly what `dense_backward` needs.

    Raises
    ------
    TypeError
        If an argument is not a float array, or the dtypes differ.
    ValueError
        If the shapes do not chain.

    Notes
    -----
    Forward:   h[i, j] = sum_k x[i, k] W[k, j] + b[j]
    Backward:  dx = dh W^T,   dW = x^T dh,   db[j] = sum_i dh[i, j]
    where i runs over every row (all leading axes together).

    Examples
    --------
    >>> x = np.ones((2, 3)); W = np.ones((3, 1)); b = np.zeros(1)
    >>> dense_forward(x, W, b)[0]
    array([[3.],
           [3.]])
    """
    check_float_array(x, "x")
    check_float_array(W, "W", ndim=2)
    check_float_array(b, "b", ndim=1)
    check_same_dtype(x=x, W=W, b=b)
    if x.ndim < 2:
        raise ValueError(f"x: expected shape (n, d_in) or (k, n, d_in), got {x.shape}")
    if W.shape[0] != x.shape[-1]:
        raise ValueError(
            f"W: expected shape ({x.shape[-1]}, d_out) to match x of shape (..., n, d_in) "
            f"{x.shape}, got {W.shape}"
        )
    if b.shape != (W.shape[1],):
        raise ValueError(f"b: expected shape ({W.shape[1]},) like W's columns, got {b.shape}")
    h = x @ W + b  # (..., d_out)
    return h, (x, W)


def dense_backward(dh: Array, cache: tuple[Array, Array]) -> tuple[Array, Array, Array]:
    """Gradients of `dense_forward` given ``dh = dloss/dh``; see its Notes.

    Returns
    -------
    dx : ndarray, shape (..., d_in), like x
    dW : ndarray, shape (d_in, d_out)
    db : ndarray, shape (d_out,)

    Examples
    --------
    >>> from numpyvae.gradcheck import numerical_vjp
    >>> rng = np.random.default_rng(0)
    >>> x, W, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 4)), np.zeros(4)
    >>> h, cache = dense_forward(x, W, b)
    >>> dx, dW, db = dense_backward(np.ones((2, 4)), cache)
    >>> dx.shape, dW.shape, db
    ((2, 3), (3, 4), array([2., 2., 2., 2.]))
    >>> f = lambda v: dense_forward(v, W, b)[0]
    >>> np.allclose(dx, numerical_vjp(f, x, np.ones((2, 4))))
    True
    """
    x, W = cache
    rows_x = x.reshape(-1, x.shape[-1])     # (rows, d_in): every leading axis
    rows_dh = dh.reshape(-1, dh.shape[-1])  # (rows, d_out)
    return dh @ W.T, rows_x.T @ rows_dh, rows_dh.sum(axis=0)


def mlp_forward(params: dict, h: Array, prefix: str, n_layers: int,
                activation: str) -> tuple[Array, list]:
    """Hidden layers ``prefix0 .. prefix{n-1}``: each dense, then the activation.

    Parameters
    ----------
    params : dict of name -> ndarray
        Holds ``{prefix}{i}.W`` and ``{prefix}{i}.b`` for each layer i.
    h : ndarray, shape (..., d_in)
    prefix : str
        The layers' name before the index, e.g. "enc" or "q1.h".
    n_layers : int
        How many layers; 0 returns `h` itself.
    activation : str
        One of `activations.ACTIVATIONS`.

    Returns
    -------
    h : ndarray, shape (..., d_last)
    caches : list, what `mlp_backward` needs.

    Notes
    -----
    Forward:   a_i = h_{i-1} W_i + b_i,   h_i = act(a_i)
    Backward:  da_i = dh_i * act'(a_i), then `dense_backward` of each layer
               in reverse order.

    Examples
    --------
    >>> params = {"enc0.W": np.ones((3, 2)), "enc0.b": np.zeros(2)}
    >>> h, caches = mlp_forward(params, np.ones((4, 3)), "enc", 1, "relu")
    >>> h.shape, len(caches)
    ((4, 2), 1)
    """
    caches = []
    for i in range(n_layers):
        name = f"{prefix}{i}"
        a, dense_cache = dense_forward(h, params[f"{name}.W"], params[f"{name}.b"])
        h, act_cache = activation_forward(activation, a)
        caches.append((name, dense_cache, act_cache))
    return h, caches


def mlp_backward(dh: Array, caches: list, activation: str, grads: dict) -> Array:
    """Reverse of `mlp_forward`: writes ``grads[name.W]`` and
    ``grads[name.b]`` of each layer, returns d loss / d input.

    Examples
    --------
    >>> params = {"enc0.W": np.ones((3, 2)), "enc0.b": np.zeros(2)}
    >>> h, caches = mlp_forward(params, np.ones((4, 3)), "enc", 1, "relu")
    >>> grads = {}
    >>> mlp_backward(np.ones((4, 2)), caches, "relu", grads).shape, sorted(grads)
    ((4, 3), ['enc0.W', 'enc0.b'])
    """
    for name, dense_cache, act_cache in reversed(caches):
        da = activation_backward(activation, dh, act_cache)
        dh, grads[f"{name}.W"], grads[f"{name}.b"] = dense_backward(da, dense_cache)
    return dh


def init_dense(rng: np.random.Generator, d_in: int, d_out: int,
               dtype="float32", scheme: str = "glorot") -> tuple[Array, Array]:
    """Draw the weights of a dense layer; the bias starts at zero.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness.
    d_in, d_out : int
        Fan-in and fan-out.
    dtype : str or numpy dtype
        float32 or float64; the draw itself is made in this dtype.
    scheme : {"glorot", "he", "lecun"}
        "glorot": W ~ U(-a, a) with a = sqrt(6 / (d_in + d_out)), which
        keeps the variance of activations and gradients near 1 for tanh
        and linear layers (Glorot & Bengio, 2010).
        "he": W ~ N(0, 2 / d_in), the right scale before a relu
        (He et al., 2015).
        "lecun": W ~ U(-a, a) with a = 1 / sqrt(d_in), variance
        1 / (3 d_in): the smaller scale of PyTorch's nn.Linear default.

    Returns
    -------
    W : ndarray, shape (d_in, d_out)
    b : ndarray, shape (d_out,)

    Examples
    --------
    >>> W, b = init_dense(np.random.default_rng(0), 3, 2, dtype="float64")
    >>> W.shape, b.dtype
    ((3, 2), dtype('float64'))
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
    if scheme == "glorot":
        limit = math.sqrt(6.0 / (d_in + d_out))
        W = rng.random((d_in, d_out), dtype=dtype) * (2 * limit) - limit
    elif scheme == "he":
        W = rng.standard_normal((d_in, d_out), dtype=dtype) * math.sqrt(2.0 / d_in)
    elif scheme == "lecun":
        limit = 1.0 / math.sqrt(d_in)
        W = rng.random((d_in, d_out), dtype=dtype) * (2 * limit) - limit
    else:
        raise ValueError(f"scheme: expected 'glorot', 'he' or 'lecun', got {scheme!r}")
    return W.astype(dtype, copy=False), np.zeros(d_out, dtype=dtype)
