"""The training step made fast: the same contract as the reference, fused.

`loss_forward` / `loss_backward` equal `model.loss_forward` /
`model.loss_backward`, `iwae_loss_forward` / `iwae_loss_backward` equal
`model.bound_loss_forward` / `model.bound_loss_backward` with the IWAE
head (`forward_backward` runs a pair, whole or in two halves), and
`adam_step` equals `optim.Adam.step`: same inputs, same outputs, to rounding
(tests/fast/test_fused_step.py holds them equal for every configuration and
dtype). Read the reference first; this module is the same math
rearranged for speed, and only `trainer.Trainer` uses it. The small
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

from ..reference import bounds
from ..reference.kl import (
    kl_backward,
    kl_fixed_backward,
    kl_fixed_forward,
    kl_forward,
    log_ratio_backward,
    log_ratio_forward,
)
from ..reference.sampling import reparameterize_backward, reparameterize_fixed_forward, reparameterize_forward
from ..reference.vae import VAEConfig, posterior_log_var
from .fused_layers import (
    dense_backward_into,
    dense_into,
    heads_backward,
    heads_forward,
    hidden_backward,
    hidden_forward,
    log_lik_backward_into,
    log_lik_into,
    scratch,
)

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
    >>> from numpyvae.reference import vae as model
    >>> config = model.VAEConfig(3, 2, hidden=(4,), dtype="float64")
    >>> params = model.init_params(config, np.random.default_rng(0))
    >>> x, eps = np.full((5, 3), 0.5), np.ones((5, 2))
    >>> fast = loss_forward(params, x, eps, config, 1.0, {})[0]
    >>> bool(np.isclose(fast, model.loss_forward(params, x, eps, config)[0]))
    True
    """
    ws = workspace
    h, enc_layers = hidden_forward(params, x, "enc", config, ws)
    mu, log_var, heads_W = heads_forward(params, h, config, ws)
    z, kl, z_kl_cache = _sample_and_kl(mu, log_var, eps, config)
    h_dec, dec_layers = hidden_forward(params, z, "dec", config, ws)
    out = dense_into(h_dec, params["out.W"], params["out.b"], ws, "out")  # (n, d_x)
    log_lik, ll_cache = log_lik_into(x, out, config, ws)
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
    dout = log_lik_backward_into(cache["ll_cache"], 1.0 / n, config, ws)  # (n, d_x)
    dh = dense_backward_into(dout, cache["h_dec"], cache["out_W"], grads, "out", ws,
                              need_dx=True)
    dz = hidden_backward(dh, cache["dec_layers"], config, grads, ws, need_dx=True)
    dheads = scratch(ws, "dheads", (n, cache["heads_W"].shape[1]), dtype)
    _sample_and_kl_backward(dz, beta / n, cache["z_kl_cache"], config, dheads)
    dh_enc = heads_backward(dheads, cache["h_enc"], cache["heads_W"], config, grads, ws,
                             need_dx=bool(config.hidden))
    if dh_enc is not None:  # the encoder has hidden layers
        hidden_backward(dh_enc, cache["enc_layers"], config, grads, ws, need_dx=False)
    return grads


def iwae_loss_forward(params, x: Array, eps: Array, config: VAEConfig, workspace: dict):
    """`model.bound_loss_forward(..., "iwae")` with the network's passes
    in buffers.

    The k samples of each example go through the decoder as one batch of
    k * n rows. Inputs are not checked (see `loss_forward`), except that
    a delta = 0 posterior has no density.
    """
    if config.posterior == "fixed" and not config.fixed_delta > 0:
        raise ValueError("delta: the IWAE objective needs a posterior density; delta=0 is a "
                         "point mass")
    ws = workspace
    k, n, d_z = eps.shape
    h, enc_layers = hidden_forward(params, x, "enc", config, ws)
    mu, log_var, heads_W = heads_forward(params, h, config, ws)
    log_var_k = np.broadcast_to(posterior_log_var(mu, log_var, config), eps.shape)
    mu_k = np.broadcast_to(mu, eps.shape)
    z_cache: tuple | None  # None: the fixed width's sample keeps no cache
    if config.posterior == "diagonal":
        z, z_cache = reparameterize_forward(mu_k, log_var_k, eps)  # (k, n, d_z)
    else:
        z, z_cache = reparameterize_fixed_forward(mu_k, config.fixed_delta, eps)
    log_ratio, ratio_cache = log_ratio_forward(z, eps, log_var_k)  # (k, n)
    h_dec, dec_layers = hidden_forward(params, z.reshape(k * n, d_z), "dec", config, ws)
    out = dense_into(h_dec, params["out.W"], params["out.b"], ws, "out")  # (k n, d_x)
    x_rep = x
    if k > 1:
        x_rep = scratch(ws, "x_rep", (k, n, x.shape[1]), x.dtype)
        x_rep[...] = x
        x_rep = x_rep.reshape(k * n, x.shape[1])
    log_lik, ll_cache = log_lik_into(x_rep, out, config, ws)
    log_lik = log_lik.reshape(k, n)
    log_w = log_lik + log_ratio
    loss, terms, head_cache = bounds.loss_forward(log_w, log_lik, "iwae")
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
    dlog_w = bounds.loss_backward(cache["head"])  # (k, n) = -w~ / n
    # A weight below sqrt(tiny) (1e-19 in float32) adds less than k * 1e-19
    # of the gradient's size, far under the dtype's resolution, but its
    # products with the network's numbers are subnormal, which the CPU
    # multiplies a hundred times slower: such weights count as 0.
    dlog_w[dlog_w > -math.sqrt(np.finfo(z.dtype).tiny) / n] = 0
    dout = log_lik_backward_into(cache["ll_cache"], -dlog_w.reshape(k * n, 1), config, ws)
    dh = dense_backward_into(dout, cache["h_dec"], cache["out_W"], grads, "out", ws,
                              need_dx=True)
    dz = hidden_backward(dh, cache["dec_layers"], config, grads, ws, need_dx=True)
    dz_ratio, dlog_var_ratio = log_ratio_backward(dlog_w, cache["log_ratio"])
    dz = dz.reshape(k, n, d_z) + dz_ratio
    dheads = scratch(ws, "dheads", (n, cache["heads_W"].shape[1]), z.dtype)
    if config.posterior == "diagonal":
        dmu_k, dlog_var_k = reparameterize_backward(dz, cache["z"])
        dmu_k.sum(axis=0, out=dheads[:, :d_z])
        (dlog_var_k + dlog_var_ratio).sum(axis=0, out=dheads[:, d_z:])
    else:
        dz.sum(axis=0, out=dheads[:, :d_z])  # dmu: z = mu + delta * eps
    dh_enc = heads_backward(dheads, cache["h_enc"], cache["heads_W"], config, grads, ws,
                             need_dx=bool(config.hidden))
    if dh_enc is not None:  # the encoder has hidden layers
        hidden_backward(dh_enc, cache["enc_layers"], config, grads, ws, need_dx=False)
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
    buf = scratch(workspace, "adam.buf", p.shape, p.dtype)
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
    if log_var is not None:  # the diagonal posterior
        z, z_cache = reparameterize_forward(mu, log_var, eps)
        kl, kl_cache = kl_forward(mu, log_var)
        return z, kl, (z_cache, kl_cache)
    z, _ = reparameterize_fixed_forward(mu, config.fixed_delta, eps)
    if config.fixed_delta > 0:
        kl, kl_fixed_cache = kl_fixed_forward(mu, config.fixed_delta)
    else:  # a point mass: the KL is infinite and must carry weight 0
        kl, kl_fixed_cache = np.full(mu.shape[0], np.inf, dtype=mu.dtype), mu
    return z, kl, (None, kl_fixed_cache)


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

