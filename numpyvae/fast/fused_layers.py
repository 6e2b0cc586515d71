"""The fused step's layers: each a piece of the reference's math that
writes into the buffers of a workspace dict (fused_step.py uses them).

`dense_into` / `dense_backward_into` are `layers.dense_forward` /
`dense_backward` with ``out=`` and row sums as products with a vector of
ones; `hidden_forward` / `hidden_backward` the hidden-layer chain
(`layers.mlp_forward`) with the relu in place; `heads_forward` /
`heads_backward` the encoder's two heads as one product; `log_lik_into`
/ `log_lik_backward_into` the likelihoods (likelihoods.py) in few passes
over (n, d_x). `scratch` and `ones_vector` are the workspace's buffers,
keyed by name, shape and dtype. Imports numpy and the reference's
activations.
"""

from __future__ import annotations

import math
from typing import Literal, overload

import numpy as np
from numpy.typing import NDArray

from ..reference.activations import activation_backward, activation_forward
from ..reference.arrays import check_finite
from ..reference.config import VAEConfig

Array = NDArray[np.floating]


def scratch(ws: dict, name: str, shape: tuple, dtype) -> Array:
    """The workspace's array for `name` at this shape (contents undefined).

    Keyed by shape too, so batch sizes that alternate (a short last batch)
    each keep their own buffers instead of reallocating.
    """
    key = (name, shape, dtype)
    buf = ws.get(key)
    if buf is None:
        buf = ws[key] = np.empty(shape, dtype)
    return buf


def ones_vector(ws: dict, n: int, dtype) -> Array:
    """A vector of n ones: row and column sums as matrix-vector products."""
    key = ("ones", n, dtype)
    if key not in ws:
        ws[key] = np.ones(n, dtype)
    return ws[key]


def dense_into(h: Array, W: Array, b: Array, ws: dict, name: str) -> Array:
    """`dense_forward` into the buffer `name`: a = h @ W, then a += b."""
    a = np.matmul(h, W, out=scratch(ws, name, (h.shape[0], W.shape[1]), h.dtype))
    a += b
    return a


@overload
def dense_backward_into(da: Array, h: Array, W: Array, grads: dict, name: str, ws: dict,
                        need_dx: Literal[True]) -> Array: ...
@overload
def dense_backward_into(da: Array, h: Array, W: Array, grads: dict, name: str, ws: dict,
                        need_dx: bool) -> Array | None: ...
def dense_backward_into(da: Array, h: Array, W: Array, grads: dict, name: str, ws: dict,
                         need_dx: bool) -> Array | None:
    """`dense_backward` writing dW and db into `grads`: dW = h^T da,
    db = ones^T da (a matrix-vector product, faster than da.sum(axis=0)),
    and dh = da W^T only when `need_dx` (the first layer's is unused)."""
    np.matmul(h.T, da, out=grads[f"{name}.W"])
    np.matmul(ones_vector(ws, da.shape[0], da.dtype), da, out=grads[f"{name}.b"])
    if not need_dx:
        return None
    return np.matmul(da, W.T, out=scratch(ws, f"{name}.dx", h.shape, da.dtype))


def hidden_forward(params, h: Array, prefix: str, config: VAEConfig, ws: dict):
    """`layers.mlp_forward` into workspace buffers. The relu runs in place:
    h = max(a, 0) overwrites a, since its backward needs only h > 0."""
    layers = []
    for i in range(len(config.hidden)):
        name = f"{prefix}{i}"
        a = dense_into(h, params[f"{name}.W"], params[f"{name}.b"], ws, name)
        if config.activation == "relu":
            h_next = act_cache = np.maximum(a, 0, out=a)
        else:
            h_next, act_cache = activation_forward(config.activation, a)
        layers.append((name, h, params[f"{name}.W"], act_cache))
        h = h_next
    return h, layers


@overload
def hidden_backward(dh: Array, layers: list, config: VAEConfig, grads: dict, ws: dict,
                    need_dx: Literal[True]) -> Array: ...
@overload
def hidden_backward(dh: Array, layers: list, config: VAEConfig, grads: dict, ws: dict,
                    need_dx: bool) -> Array | None: ...
def hidden_backward(dh: Array, layers: list, config: VAEConfig, grads: dict, ws: dict,
                     need_dx: bool) -> Array | None:
    """Reverse of `hidden_forward`; fills grads, returns d loss / d input.

    `dh` is a backward buffer, so the relu's da = dh * [h > 0] is written
    over it.
    """
    for i in reversed(range(len(layers))):
        name, h_in, W, act_cache = layers[i]
        if config.activation == "relu":
            mask = np.greater(act_cache, 0, out=scratch(ws, f"{name}.mask", dh.shape, bool))
            da = np.multiply(dh, mask, out=dh)
        else:
            da = activation_backward(config.activation, dh, act_cache)
        dx = dense_backward_into(da, h_in, W, grads, name, ws, need_dx or i > 0)
        if dx is None:  # the first layer's, not needed
            return None
        dh = dx
    return dh


def heads_forward(params, h: Array, config: VAEConfig, ws: dict):
    """mu and log_var from one product: h @ [W_mu | W_lv] + [b_mu | b_lv].

    One (d_h, 2 d_z) matrix product instead of two thin ones, split by
    views; its backward is again one product, dh = [dmu | dlog_var]
    [W_mu | W_lv]^T, with no dh_mu + dh_lv sum. Returns (mu, log_var, W),
    log_var None for the fixed posterior.
    """
    if config.posterior != "diagonal":
        return dense_into(h, params["mu.W"], params["mu.b"], ws, "heads"), None, params["mu.W"]
    d_h, d_z = params["mu.W"].shape
    W = np.concatenate((params["mu.W"], params["log_var.W"]), axis=1,
                       out=scratch(ws, "heads.W", (d_h, 2 * d_z), h.dtype))
    b = np.concatenate((params["mu.b"], params["log_var.b"]),
                       out=scratch(ws, "heads.b", (2 * d_z,), h.dtype))
    a = np.matmul(h, W, out=scratch(ws, "heads", (h.shape[0], 2 * d_z), h.dtype))
    a += b
    return a[:, :d_z], a[:, d_z:], W  # (n, d_z) views


def heads_backward(dheads: Array, h: Array, W: Array, config: VAEConfig, grads: dict,
                    ws: dict, need_dx: bool) -> Array | None:
    """Backward of `heads_forward`, given dheads = [dmu | dlog_var].

    [dW_mu | dW_lv] = h^T [dmu | dlog_var] is again one product (faster
    than two thin ones), its column blocks copied into the grads.
    """
    names = ["mu", "log_var"] if config.posterior == "diagonal" else ["mu"]
    d_z, width, dtype = config.latent_dim, dheads.shape[1], h.dtype
    dW = np.matmul(h.T, dheads, out=scratch(ws, "heads.dW", (h.shape[1], width), dtype))
    db = np.matmul(ones_vector(ws, h.shape[0], dtype), dheads,
                   out=scratch(ws, "heads.db", (width,), dtype))
    for k, name in enumerate(names):
        np.copyto(grads[f"{name}.W"], dW[:, k * d_z:(k + 1) * d_z])
        np.copyto(grads[f"{name}.b"], db[k * d_z:(k + 1) * d_z])
    if not need_dx:
        return None
    return np.matmul(dheads, W.T, out=scratch(ws, "heads.dx", h.shape, h.dtype))


def log_lik_into(x: Array, out: Array, config: VAEConfig, ws: dict):
    """`log_lik_forward` in few passes over (n, d_x); see likelihoods.py.

    Bernoulli, l = logits:
        log_lik_i = sum_j [x_ij l_ij - max(l_ij, 0) - log1p(exp(-|l_ij|))]
    with every row sum a product with a vector of ones (faster than
    .sum(axis=1)) and sum_j max(l, 0) = (sum_j l + sum_j |l|) / 2, which
    spares a pass. Gaussian: log_lik_i = -sum_j diff_ij^2 / (2 sigma^2)
    + const, diff = x - recon.
    """
    ones = ones_vector(ws, x.shape[1], x.dtype)
    t = scratch(ws, "log_lik.t", x.shape, x.dtype)
    if config.likelihood == "bernoulli":
        sum_l = out @ ones  # (n,)
        if not np.isfinite(sum_l).all():  # rare: find and name the bad logit
            check_finite(out, "logits")
        sum_abs = np.abs(out, out=t) @ ones
        np.negative(t, out=t)
        np.exp(t, out=t)
        sum_log1p = np.log1p(t, out=t) @ ones
        sum_xl = np.multiply(x, out, out=t) @ ones
        log_lik = sum_xl - 0.5 * (sum_l + sum_abs) - sum_log1p
        return log_lik, (x, out)
    sigma = config.gaussian_sigma
    diff = np.subtract(x, out, out=t)  # (n, d_x)
    const = -0.5 * x.shape[1] * math.log(2.0 * math.pi * sigma * sigma)
    log_lik = np.einsum("ij,ij->i", diff, diff) * (-0.5 / (sigma * sigma)) + const
    if not np.isfinite(log_lik).all():
        check_finite(out, "recon")
    return log_lik, (diff,)


def log_lik_backward_into(ll_cache, scale, config: VAEConfig, ws: dict) -> Array:
    """d loss / d out for dlog_lik = -scale, into one buffer.

    `scale` is 1/n for the ELBO (a float) and w~ / n for the IWAE
    objective (a column, one weight per row). Bernoulli:
    dout = scale * (sigmoid(l) - x), with sigmoid(l) = (1 + tanh(l/2)) / 2:
    one transcendental pass that cannot overflow. Gaussian:
    dout = -scale * diff / sigma^2.
    """
    if config.likelihood == "bernoulli":
        x, logits = ll_cache
        dout = np.multiply(logits, 0.5, out=scratch(ws, "dout", x.shape, x.dtype))
        np.tanh(dout, out=dout)
        dout += 1.0
        dout *= 0.5
        dout -= x
        dout *= scale
        return dout
    (diff,) = ll_cache
    sigma = config.gaussian_sigma
    dout = np.multiply(diff, -1.0 / (sigma * sigma),
                       out=scratch(ws, "dout", diff.shape, diff.dtype))
    dout *= scale
    return dout
