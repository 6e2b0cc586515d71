"""The training step made fast: the same contract as the reference, fused.

`loss_forward` / `loss_backward` equal `model.loss_forward` /
`model.loss_backward`, `iwae_loss_forward` / `iwae_loss_backward` equal
`model.bound_loss_forward` / `model.bound_loss_backward` with the IWAE
head (`forward_backward` runs a pair, whole or in two halves), and
`adam_step` equals `optim.Adam.step`: same inputs, same outputs, to rounding
(tests/test_fused_step.py holds them equal for every configuration and
dtype). Read the reference first; this module is the same math
rearranged for speed, and only `train.Trainer` uses it. The small
(n, d_z) pieces -- the sample, the KL, the log-ratio, the bound head --
are the reference's own kernels; what is fused is the work on the
(n, d_x) and (n, hidden) arrays.

What changes, and why (measurements in docs/performance.md):

* every large array is written into a buffer of a `workspace` dict that
  the caller keeps from step to step (``out=``, no temporaries);
* the relu runs in place (its backward needs only h > 0);
* the two encoder heads come from one matrix product [W_mu | W_lv];
* row and column sums are products with a vector of ones (BLAS);
* the Bernoulli term takes few passes over (n, d_x), and its gradient
  uses sigmoid(l) = (1 + tanh(l / 2)) / 2, one transcendental pass;
* the gradients are views into one flat buffer, and the parameters and
  Adam's moments are packed the same way, so each of Adam's equations
  is one pass over all parameters instead of one pass per array;
* on two cores, a step of `SPLIT_ROWS` decoder rows or more runs as two
  halves of the batch, one per thread, and Adam's slices are shared
  between the threads too (`forward_backward`, `adam_step`): NumPy's
  elementwise passes use one core per call, so one thread leaves the
  second core idle between matrix products.

With a workspace, a returned cache and the grads made from it are views
into the workspace: valid until the next call with the same workspace.
Use one workspace per model and thread. `loss` and `terms` are fresh.
"""

from __future__ import annotations

import math
import operator

import numpy as np
from numpy.typing import NDArray

from . import iwae
from ._validation import check_finite
from .activations import activation_backward, activation_forward
from .kl import kl_backward, kl_fixed_backward, kl_fixed_forward, kl_forward
from .kl import log_ratio_backward, log_ratio_forward
from .model import VAEConfig, posterior_log_var
from .sampling import (reparameterize_backward, reparameterize_fixed_forward,
                       reparameterize_forward)

Array = NDArray[np.floating]

ADAM_CHUNK = 32768  # entries: five float32 arrays of it (640 KiB) fit in 1 MiB of L2
SPLIT_ROWS = 256  # decoder rows (batch x k) from which two cores share a step


def supports(config) -> bool:
    """Whether this module has a fused step for the model of `config`:
    the one-layer VAE's (the two-layer model trains by the reference).

    Examples
    --------
    >>> supports(VAEConfig(784, 20))
    True
    """
    return isinstance(config, VAEConfig)


def loss_forward(params, x: Array, eps: Array, config: VAEConfig, beta: float,
                 workspace: dict):
    """`model.loss_forward` into the buffers of `workspace`.

    Returns ``(loss, terms, cache)`` as the reference does; see the
    module docstring for the lifetime of the cache. Unlike the
    reference it does not check its inputs (two passes over x per step):
    its caller, the Trainer, validated the data once.

    Examples
    --------
    >>> from numpyvae import model
    >>> config = model.VAEConfig(3, 2, hidden=(4,), dtype="float64")
    >>> params = model.init_params(config, np.random.default_rng(0))
    >>> x, eps = np.full((5, 3), 0.5), np.ones((5, 2))
    >>> fast = loss_forward(params, x, eps, config, 1.0, {})[0]
    >>> bool(np.isclose(fast, model.loss_forward(params, x, eps, config)[0]))
    True
    """
    ws = workspace
    h, enc_layers = _hidden_forward(params, x, "enc", config, ws)
    mu, log_var, heads_W = _heads_forward(params, h, config, ws)
    z, kl, z_kl_cache = _sample_and_kl(mu, log_var, eps, config)
    h_dec, dec_layers = _hidden_forward(params, z, "dec", config, ws)
    out = _dense_into(h_dec, params["out.W"], params["out.b"], ws, "out")  # (n, d_x)
    log_lik, ll_cache = _log_lik_into(x, out, config, ws)
    n = x.shape[0]
    loss = -float(np.add.reduce(log_lik, dtype=np.float64)) / n
    if beta != 0:
        loss += beta * float(np.add.reduce(kl, dtype=np.float64)) / n
    cache = {"enc_layers": enc_layers, "h_enc": h, "heads_W": heads_W,
             "z_kl_cache": z_kl_cache, "dec_layers": dec_layers, "h_dec": h_dec,
             "out_W": params["out.W"], "ll_cache": ll_cache, "n": n,
             "beta": float(beta), "config": config, "workspace": ws}
    return loss, {"log_lik": log_lik, "kl": kl}, cache


def loss_backward(cache) -> dict[str, Array]:
    """`model.loss_backward`, the gradients views into one flat buffer.

    The first layer's dx is not computed (nothing needs it).
    """
    config, ws, n, beta = cache["config"], cache["workspace"], cache["n"], cache["beta"]
    dtype = cache["h_dec"].dtype
    grads = _grad_arrays(ws, config, dtype)
    dout = _log_lik_backward_into(cache["ll_cache"], 1.0 / n, config, ws)  # (n, d_x)
    dh = _dense_backward_into(dout, cache["h_dec"], cache["out_W"], grads, "out", ws,
                              need_dx=True)
    dz = _hidden_backward(dh, cache["dec_layers"], config, grads, ws, need_dx=True)
    dheads = _scratch(ws, "dheads", (n, cache["heads_W"].shape[1]), dtype)
    _sample_and_kl_backward(dz, beta / n, cache["z_kl_cache"], config, dheads)
    dh = _heads_backward(dheads, cache["h_enc"], cache["heads_W"], config, grads, ws,
                         need_dx=bool(config.hidden))
    _hidden_backward(dh, cache["enc_layers"], config, grads, ws, need_dx=False)
    return grads


def iwae_loss_forward(params, x: Array, eps: Array, config: VAEConfig, workspace: dict):
    """`model.bound_loss_forward(..., "iwae")` with the network's passes
    in buffers.

    The k samples of each example go through the decoder as one batch of
    k * n rows. Inputs are not checked (see `loss_forward`), except that
    a delta = 0 posterior has no density.
    """
    if config.posterior == "fixed" and not config.delta > 0:
        raise ValueError("delta: the IWAE objective needs a posterior density; delta=0 is a "
                         "point mass")
    ws = workspace
    k, n, d_z = eps.shape
    h, enc_layers = _hidden_forward(params, x, "enc", config, ws)
    mu, log_var, heads_W = _heads_forward(params, h, config, ws)
    log_var_k = np.broadcast_to(posterior_log_var(mu, log_var, config), eps.shape)
    mu_k = np.broadcast_to(mu, eps.shape)
    if config.posterior == "diagonal":
        z, z_cache = reparameterize_forward(mu_k, log_var_k, eps)  # (k, n, d_z)
    else:
        z, z_cache = reparameterize_fixed_forward(mu_k, config.delta, eps)
    log_ratio, ratio_cache = log_ratio_forward(z, eps, log_var_k)  # (k, n)
    h_dec, dec_layers = _hidden_forward(params, z.reshape(k * n, d_z), "dec", config, ws)
    out = _dense_into(h_dec, params["out.W"], params["out.b"], ws, "out")  # (k n, d_x)
    x_rep = x
    if k > 1:
        x_rep = _scratch(ws, "x_rep", (k, n, x.shape[1]), x.dtype)
        x_rep[...] = x
        x_rep = x_rep.reshape(k * n, x.shape[1])
    log_lik, ll_cache = _log_lik_into(x_rep, out, config, ws)
    log_lik = log_lik.reshape(k, n)
    log_w = log_lik + log_ratio
    loss, terms, head_cache = iwae.loss_forward(log_w, log_lik, "iwae")
    cache = {"enc_layers": enc_layers, "h_enc": h, "heads_W": heads_W, "dec_layers": dec_layers,
             "h_dec": h_dec, "out_W": params["out.W"], "ll_cache": ll_cache,
             "head": head_cache, "z": z_cache, "log_ratio": ratio_cache, "config": config,
             "workspace": ws}
    return loss, terms, cache


def iwae_loss_backward(cache) -> dict[str, Array]:
    """`model.bound_loss_backward` of the IWAE head, the gradients views
    into one flat buffer."""
    config, ws = cache["config"], cache["workspace"]
    (z,) = cache["log_ratio"]
    k, n, d_z = z.shape
    grads = _grad_arrays(ws, config, z.dtype)
    dlog_w = iwae.loss_backward(cache["head"])  # (k, n) = -w~ / n
    # A weight below sqrt(tiny) (1e-19 in float32) adds less than k * 1e-19
    # of the gradient's size, far under the dtype's resolution, but its
    # products with the network's numbers are subnormal, which the CPU
    # multiplies a hundred times slower: such weights count as 0.
    dlog_w[dlog_w > -math.sqrt(np.finfo(z.dtype).tiny) / n] = 0
    dout = _log_lik_backward_into(cache["ll_cache"], -dlog_w.reshape(k * n, 1), config, ws)
    dh = _dense_backward_into(dout, cache["h_dec"], cache["out_W"], grads, "out", ws,
                              need_dx=True)
    dz = _hidden_backward(dh, cache["dec_layers"], config, grads, ws, need_dx=True)
    dz_ratio, dlog_var_ratio = log_ratio_backward(dlog_w, cache["log_ratio"])
    dz = dz.reshape(k, n, d_z) + dz_ratio
    dheads = _scratch(ws, "dheads", (n, cache["heads_W"].shape[1]), z.dtype)
    if config.posterior == "diagonal":
        dmu_k, dlog_var_k = reparameterize_backward(dz, cache["z"])
        dmu_k.sum(axis=0, out=dheads[:, :d_z])
        (dlog_var_k + dlog_var_ratio).sum(axis=0, out=dheads[:, d_z:])
    else:
        dz.sum(axis=0, out=dheads[:, :d_z])  # dmu: z = mu + delta * eps
    dh = _heads_backward(dheads, cache["h_enc"], cache["heads_W"], config, grads, ws,
                         need_dx=bool(config.hidden))
    _hidden_backward(dh, cache["enc_layers"], config, grads, ws, need_dx=False)
    return grads


def adam_step(adam, params: dict, grads: dict, workspace: dict, helper=None) -> None:
    """`optim.Adam.step(params, grads)`, each equation one pass over all.

    `params` and ``adam.m`` / ``adam.v`` are packed on first use: each
    dict's arrays are copied into one flat buffer and the dict's entries
    rebound to views of it (same values, same shapes). The packing is
    kept while the dicts hold the same arrays, and redone when an entry
    is replaced (a loaded state, say). `grads` must come from this
    module's backward with the same workspace.

    Notes
    -----
    Algorithm 1 with both bias corrections folded into scalars, epsilon
    scaled too, so that the update is algebraically the reference's:
        lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
        theta = theta - lr_t * m / (sqrt(v) + epsilon * sqrt(1 - beta2^t))
    (multiply m_hat / (sqrt(v_hat) + epsilon) through by
    sqrt(1 - beta2^t)); it saves two passes. NumPy has no fused
    multiply-add, so the update is 12 passes over memory into one scratch
    buffer, run over slices of `ADAM_CHUNK` entries so that a slice's
    five arrays stay in the core's cache through its 12 passes
    (docs/performance.md: 5 to 12 % of a whole step at 652,824
    parameters, on an Intel Xeon with 2 MiB of L2 per core). With
    `helper` (see `forward_backward`) the second half of the slices runs
    on it: the same bits.
    """
    if not adam.m:
        adam.m = {k: np.zeros_like(p) for k, p in params.items()}
        adam.v = {k: np.zeros_like(p) for k, p in params.items()}
    p = _packed(workspace, "params", params)
    g = _packed(workspace, "grads", grads)
    m = _packed(workspace, "adam.m", adam.m)
    v = _packed(workspace, "adam.v", adam.v)
    buf = _scratch(workspace, "adam.buf", p.shape, p.dtype)
    adam.t += 1
    c2 = math.sqrt(1.0 - adam.beta2 ** adam.t)
    lr_t = adam.lr * c2 / (1.0 - adam.beta1 ** adam.t)

    def update(part: slice) -> None:
        for start in range(part.start, part.stop, ADAM_CHUNK):  # 12 passes while in cache
            sl = slice(start, min(start + ADAM_CHUNK, part.stop))
            _adam_passes(p[sl], g[sl], m[sl], v[sl], buf[sl], adam.beta1, adam.beta2, lr_t,
                         adam.epsilon * c2)

    _in_two(update, p.size, helper)


def _adam_passes(p, g, m, v, buf, beta1: float, beta2: float, lr_t: float,
                 eps_t: float) -> None:
    """The folded update over flat arrays (any slice of them works)."""
    dt = p.dtype.type
    np.subtract(g, m, out=buf)           # m = beta1 m + (1 - beta1) g,
    buf *= dt(1.0 - beta1)               # as m += (1 - beta1) (g - m)
    m += buf
    np.multiply(g, g, out=buf)           # v = beta2 v + (1 - beta2) g^2
    buf *= dt(1.0 - beta2)
    v *= dt(beta2)
    v += buf
    np.sqrt(v, out=buf)                  # theta -= lr_t m / (sqrt(v) + eps_t)
    buf += dt(eps_t)
    np.divide(m, buf, out=buf)
    buf *= dt(lr_t)
    p -= buf


# --- the pieces -------------------------------------------------------------
# Each is a named piece of the reference's math, writing into workspace
# buffers.

def _sample_and_kl(mu: Array, log_var: Array | None, eps: Array, config: VAEConfig):
    """z and the KL per example by the reference's kernels
    (`sampling.reparameterize_forward` and `kl.kl_forward`, or their
    fixed-width forms). Returns ``(z, kl, cache)``."""
    if config.posterior == "diagonal":
        z, z_cache = reparameterize_forward(mu, log_var, eps)
        kl, kl_cache = kl_forward(mu, log_var)
        return z, kl, (z_cache, kl_cache)
    z, _ = reparameterize_fixed_forward(mu, config.delta, eps)
    if config.delta > 0:
        kl, kl_cache = kl_fixed_forward(mu, config.delta)
    else:  # a point mass: the KL is infinite and must carry weight 0
        kl, kl_cache = np.full(mu.shape[0], np.inf, dtype=mu.dtype), mu
    return z, kl, (None, kl_cache)


def _sample_and_kl_backward(dz: Array, dkl: float, cache, config: VAEConfig,
                            dheads: Array) -> None:
    """[dmu | dlog_var] into `dheads`, for d loss / d kl_i = dkl (beta / n):
    `reparameterize_backward` plus `kl_backward` (the fixed width has
    only dmu = dz + dkl * mu, and no KL term when beta is 0)."""
    d_z = dz.shape[1]
    z_cache, kl_cache = cache
    dkl_i = np.full(dz.shape[0], dkl, dtype=dz.dtype)
    if config.posterior == "diagonal":
        dmu, dlog_var = reparameterize_backward(dz, z_cache)
        dmu_kl, dlog_var_kl = kl_backward(dkl_i, kl_cache)
        np.add(dmu, dmu_kl, out=dheads[:, :d_z])
        np.add(dlog_var, dlog_var_kl, out=dheads[:, d_z:])
    elif dkl != 0:
        np.add(dz, kl_fixed_backward(dkl_i, kl_cache), out=dheads)
    else:
        dheads[...] = dz


def splits(n: int, k: int = 1) -> bool:
    """Whether a step of n examples, k samples each, is large enough to
    run as two halves of the batch on two cores (`forward_backward`):
    `SPLIT_ROWS` decoder rows or more (docs/performance.md measures where
    that pays)."""
    return n >= 2 and n * k >= SPLIT_ROWS


def forward_backward(params, x: Array, eps: Array, config: VAEConfig, objective: str,
                     beta: float, workspaces: tuple[dict, dict], helper=None):
    """``(loss, terms, grads)`` of one step: the fused forward and backward.

    `objective` is "elbo" (eps (n, d_z), weight `beta` on the KL) or
    "iwae" (eps (k, n, d_z)). Without `helper`, or for a small batch
    (`splits` false), it is one `loss_forward` / `loss_backward` (or the
    IWAE pair) in ``workspaces[0]``. Given `helper`, an executor
    (`threads.helper`, with BLAS pinned to one thread), a large batch
    runs as two halves, rows [0, h) and [h, n) with h = n // 2: the second
    on the helper, each in its own workspace. The loss and every gradient
    are batch means, so the halves join as

        loss = (h / n) loss_0 + ((n - h) / n) loss_1,  the same for grads,

    and the terms (per example) are the halves' joined. The halves round
    differently from the whole batch, and the same whoever runs them: the
    result does not depend on the helper's timing. The grads are views
    into ``workspaces[0]``, as `loss_backward`'s.
    """
    n = x.shape[0]
    if helper is None or not splits(n, eps.shape[0] if objective == "iwae" else 1):
        return _forward_backward(params, x, eps, config, objective, beta, workspaces[0])
    h = n // 2
    rows = (slice(0, h), slice(h, n))

    def half(i: int):
        e = eps[:, rows[i]] if objective == "iwae" else eps[rows[i]]
        return _forward_backward(params, x[rows[i]], e, config, objective, beta,
                                 workspaces[i])

    other = helper.submit(half, 1)
    first = half(0)
    second = other.result()
    w0, w1 = h / n, (n - h) / n
    g0, g1 = (ws[("packed", "grads")][0] for ws in workspaces)
    dt = g0.dtype.type

    def join(part: slice) -> None:  # g0 = w0 g0 + w1 g1 over a part of the buffer
        a, b = g0[part], g1[part]
        a *= dt(w0)
        b *= dt(w1)
        a += b

    _in_two(join, g0.size, helper)
    terms = {key: np.concatenate([first[1][key], second[1][key]]) for key in first[1]}
    return w0 * first[0] + w1 * second[0], terms, first[2]


def _forward_backward(params, x, eps, config, objective, beta, ws):
    """One pass of the fused forward and backward in workspace `ws`."""
    if objective == "iwae":
        loss, terms, cache = iwae_loss_forward(params, x, eps, config, ws)
        return loss, terms, iwae_loss_backward(cache)
    loss, terms, cache = loss_forward(params, x, eps, config, beta, ws)
    return loss, terms, loss_backward(cache)


def _in_two(work, size: int, helper) -> None:
    """work(part) over [0, size) in two parts split at a multiple of
    `ADAM_CHUNK`: the second on `helper` while this thread does the
    first, or both here, in order, without a helper."""
    mid = min(size, ADAM_CHUNK * ((size // ADAM_CHUNK + 1) // 2))
    parts = (slice(0, mid), slice(mid, size))
    other = helper.submit(work, parts[1]) if helper is not None else None
    work(parts[0])
    if other is not None:
        other.result()
    else:
        work(parts[1])


def _packed(ws: dict, key: str, arrays: dict) -> Array:
    """The flat buffer whose views are the entries of `arrays`.

    On first use, or when an entry is no longer the view it was, the
    values are copied into a new flat buffer and the dict's entries
    rebound to its views, in the dict's order.
    """
    flat, keys, values = ws.get(("packed", key), (None, (), ()))
    if flat is not None and tuple(arrays) == keys and all(
            map(operator.is_, arrays.values(), values)):
        return flat  # already packed: the usual case, identity checks in C
    dtypes = {a.dtype for a in arrays.values()}
    flat = np.empty(sum(a.size for a in arrays.values()), dtypes.pop())
    views, start = {}, 0
    for k, a in arrays.items():
        views[k] = flat[start:start + a.size].reshape(a.shape)
        views[k][...] = a
        start += a.size
    arrays.update(views)
    ws[("packed", key)] = (flat, tuple(views), tuple(views.values()))
    return flat


def _scratch(ws: dict, name: str, shape: tuple, dtype) -> Array:
    """The workspace's array for `name` at this shape (contents undefined).

    Keyed by shape too, so batch sizes that alternate (a short last batch)
    each keep their own buffers instead of reallocating.
    """
    key = (name, shape, dtype)
    buf = ws.get(key)
    if buf is None:
        buf = ws[key] = np.empty(shape, dtype)
    return buf


def _ones(ws: dict, n: int, dtype) -> Array:
    """A vector of n ones: row and column sums as matrix-vector products."""
    key = ("ones", n, dtype)
    if key not in ws:
        ws[key] = np.ones(n, dtype)
    return ws[key]


def _grad_arrays(ws: dict, config: VAEConfig, dtype) -> dict[str, Array]:
    """One gradient array per name, all views into one flat buffer: the
    packed "grads" entry of the workspace, which `adam_step` reads."""
    key = ("grads", config, np.dtype(dtype))
    views = ws.get(key)
    packed = ws.get(("packed", "grads"))
    if views is None or packed is None or packed[2] is not views[1]:
        shapes = config.param_shapes()
        flat = np.empty(sum(math.prod(s) for s in shapes.values()), dtype)
        tiles = _views(flat, config)
        views = ws[key] = (tiles, tuple(tiles.values()))
        ws[("packed", "grads")] = (flat, tuple(tiles), views[1])
    return dict(views[0])  # a new dict of the same arrays: the caller may rebind names


def _views(flat: Array, config: VAEConfig) -> dict[str, Array]:
    """Arrays of `config.param_shapes()` tiling `flat` in that order."""
    views, start = {}, 0
    for name, shape in config.param_shapes().items():
        size = math.prod(shape)
        views[name] = flat[start:start + size].reshape(shape)
        start += size
    return views


def _dense_into(h: Array, W: Array, b: Array, ws: dict, name: str) -> Array:
    """`dense_forward` into the buffer `name`: a = h @ W, then a += b."""
    a = np.matmul(h, W, out=_scratch(ws, name, (h.shape[0], W.shape[1]), h.dtype))
    a += b
    return a


def _dense_backward_into(da: Array, h: Array, W: Array, grads: dict, name: str, ws: dict,
                         need_dx: bool) -> Array | None:
    """`dense_backward` writing dW and db into `grads`: dW = h^T da,
    db = ones^T da (a matrix-vector product, faster than da.sum(axis=0)),
    and dh = da W^T only when `need_dx` (the first layer's is unused)."""
    np.matmul(h.T, da, out=grads[f"{name}.W"])
    np.matmul(_ones(ws, da.shape[0], da.dtype), da, out=grads[f"{name}.b"])
    if not need_dx:
        return None
    return np.matmul(da, W.T, out=_scratch(ws, f"{name}.dx", h.shape, da.dtype))


def _hidden_forward(params, h: Array, prefix: str, config: VAEConfig, ws: dict):
    """`layers.mlp_forward` into workspace buffers. The relu runs in place:
    h = max(a, 0) overwrites a, since its backward needs only h > 0."""
    layers = []
    for i in range(len(config.hidden)):
        name = f"{prefix}{i}"
        a = _dense_into(h, params[f"{name}.W"], params[f"{name}.b"], ws, name)
        if config.activation == "relu":
            h_next = act_cache = np.maximum(a, 0, out=a)
        else:
            h_next, act_cache = activation_forward(config.activation, a)
        layers.append((name, h, params[f"{name}.W"], act_cache))
        h = h_next
    return h, layers


def _hidden_backward(dh: Array, layers: list, config: VAEConfig, grads: dict, ws: dict,
                     need_dx: bool) -> Array | None:
    """Reverse of `_hidden_forward`; fills grads, returns d loss / d input.

    `dh` is a backward buffer, so the relu's da = dh * [h > 0] is written
    over it.
    """
    for i in reversed(range(len(layers))):
        name, h_in, W, act_cache = layers[i]
        if config.activation == "relu":
            mask = np.greater(act_cache, 0, out=_scratch(ws, f"{name}.mask", dh.shape, bool))
            da = np.multiply(dh, mask, out=dh)
        else:
            da = activation_backward(config.activation, dh, act_cache)
        dh = _dense_backward_into(da, h_in, W, grads, name, ws, need_dx or i > 0)
    return dh


def _heads_forward(params, h: Array, config: VAEConfig, ws: dict):
    """mu and log_var from one product: h @ [W_mu | W_lv] + [b_mu | b_lv].

    One (d_h, 2 d_z) matrix product instead of two thin ones, split by
    views; its backward is again one product, dh = [dmu | dlog_var]
    [W_mu | W_lv]^T, with no dh_mu + dh_lv sum. Returns (mu, log_var, W),
    log_var None for the fixed posterior.
    """
    if config.posterior != "diagonal":
        return _dense_into(h, params["mu.W"], params["mu.b"], ws, "heads"), None, params["mu.W"]
    d_h, d_z = params["mu.W"].shape
    W = np.concatenate((params["mu.W"], params["log_var.W"]), axis=1,
                       out=_scratch(ws, "heads.W", (d_h, 2 * d_z), h.dtype))
    b = np.concatenate((params["mu.b"], params["log_var.b"]),
                       out=_scratch(ws, "heads.b", (2 * d_z,), h.dtype))
    a = np.matmul(h, W, out=_scratch(ws, "heads", (h.shape[0], 2 * d_z), h.dtype))
    a += b
    return a[:, :d_z], a[:, d_z:], W  # (n, d_z) views


def _heads_backward(dheads: Array, h: Array, W: Array, config: VAEConfig, grads: dict,
                    ws: dict, need_dx: bool) -> Array | None:
    """Backward of `_heads_forward`, given dheads = [dmu | dlog_var].

    [dW_mu | dW_lv] = h^T [dmu | dlog_var] is again one product (faster
    than two thin ones), its column blocks copied into the grads.
    """
    names = ["mu", "log_var"] if config.posterior == "diagonal" else ["mu"]
    d_z, width, dtype = config.latent_dim, dheads.shape[1], h.dtype
    dW = np.matmul(h.T, dheads, out=_scratch(ws, "heads.dW", (h.shape[1], width), dtype))
    db = np.matmul(_ones(ws, h.shape[0], dtype), dheads,
                   out=_scratch(ws, "heads.db", (width,), dtype))
    for k, name in enumerate(names):
        np.copyto(grads[f"{name}.W"], dW[:, k * d_z:(k + 1) * d_z])
        np.copyto(grads[f"{name}.b"], db[k * d_z:(k + 1) * d_z])
    if not need_dx:
        return None
    return np.matmul(dheads, W.T, out=_scratch(ws, "heads.dx", h.shape, h.dtype))


def _log_lik_into(x: Array, out: Array, config: VAEConfig, ws: dict):
    """`log_lik_forward` in few passes over (n, d_x); see likelihoods.py.

    Bernoulli, l = logits:
        log_lik_i = sum_j [x_ij l_ij - max(l_ij, 0) - log1p(exp(-|l_ij|))]
    with every row sum a product with a vector of ones (faster than
    .sum(axis=1)) and sum_j max(l, 0) = (sum_j l + sum_j |l|) / 2, which
    spares a pass. Gaussian: log_lik_i = -sum_j diff_ij^2 / (2 sigma^2)
    + const, diff = x - recon.
    """
    ones = _ones(ws, x.shape[1], x.dtype)
    t = _scratch(ws, "log_lik.t", x.shape, x.dtype)
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
    sigma = config.sigma
    diff = np.subtract(x, out, out=t)  # (n, d_x)
    const = -0.5 * x.shape[1] * math.log(2.0 * math.pi * sigma * sigma)
    log_lik = np.einsum("ij,ij->i", diff, diff) * (-0.5 / (sigma * sigma)) + const
    if not np.isfinite(log_lik).all():
        check_finite(out, "recon")
    return log_lik, (diff,)


def _log_lik_backward_into(ll_cache, scale, config: VAEConfig, ws: dict) -> Array:
    """d loss / d out for dlog_lik = -scale, into one buffer.

    `scale` is 1/n for the ELBO (a float) and w~ / n for the IWAE
    objective (a column, one weight per row). Bernoulli:
    dout = scale * (sigmoid(l) - x), with sigmoid(l) = (1 + tanh(l/2)) / 2:
    one transcendental pass that cannot overflow. Gaussian:
    dout = -scale * diff / sigma^2.
    """
    if config.likelihood == "bernoulli":
        x, logits = ll_cache
        dout = np.multiply(logits, 0.5, out=_scratch(ws, "dout", x.shape, x.dtype))
        np.tanh(dout, out=dout)
        dout += 1.0
        dout *= 0.5
        dout -= x
        dout *= scale
        return dout
    (diff,) = ll_cache
    sigma = config.sigma
    dout = np.multiply(diff, -1.0 / (sigma * sigma),
                       out=_scratch(ws, "dout", diff.shape, diff.dtype))
    dout *= scale
    return dout
