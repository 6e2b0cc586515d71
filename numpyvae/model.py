"""The VAE's loss and its gradient: the kernels chained, forward then backward.

The notes' bound for one example x, with z = mu + sigma * eps a sample
of q_phi(z|x) (the reparameterization), is

    elbo(x) = log p_theta(x|z) - KL(q_phi(.|x) || r),

reconstruction minus KL. Training minimises the batch mean of

    loss = mean_i [ -log p_theta(x_i|z_i) + beta * KL_i ],

which for beta = 1 is the negative ELBO (beta != 1 weighs the two terms
as in the beta-VAE). This module holds the configuration, the parameter
initialisation, and `loss_forward` / `loss_backward`, which apply the
chain rule through every layer in reverse. The noise `eps` is an
argument, so the loss is a deterministic function of the parameters and
can be checked by finite differences.

Every training step goes through `loss_forward` / `loss_backward`, so
they are the fast form of the chain: buffers reused through an optional
workspace, no temporaries, no float64 (their Notes, and
docs/performance.md for the measurements). `encoder_forward`,
`decoder_forward`, `log_lik_forward` and their backwards are the same
chain written kernel by kernel, for the other callers and for reading.

Parameter names, in forward order:
``enc0.W, enc0.b, ...`` (encoder hidden layers), ``mu.W, mu.b`` and, for
the diagonal posterior, ``log_var.W, log_var.b`` (the heads),
``dec0.W, dec0.b, ...`` (decoder hidden layers), ``out.W, out.b``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from ._validation import (check_dtype_like_params, check_finite, check_float_array,
                          check_unit_interval)
from .activations import activation_backward, activation_forward
from .kl import kl_backward, kl_fixed_backward, kl_fixed_forward, kl_forward
from .layers import dense_backward, dense_forward, init_dense
from .likelihoods import (bernoulli_log_lik_backward, bernoulli_log_lik_forward,
                          gaussian_log_lik_backward, gaussian_log_lik_forward)
from .sampling import (reparameterize_backward, reparameterize_fixed_backward,
                       reparameterize_fixed_forward, reparameterize_forward)

Array = NDArray[np.floating]


@dataclass(frozen=True)
class VAEConfig:
    """Everything that defines a VAE's architecture (validated by `VAE`).

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,))
    >>> config.layer_names()
    ['enc0', 'mu', 'log_var', 'dec0', 'out']
    >>> config.param_shapes()["enc0.W"], config.param_shapes()["out.W"]
    ((3, 4), (4, 3))
    """

    input_dim: int
    latent_dim: int
    hidden: tuple = (400,)
    activation: str = "relu"
    likelihood: str = "bernoulli"
    sigma: float | None = None
    posterior: str = "diagonal"
    delta: float | None = None
    dtype: str = "float32"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    def layer_names(self) -> list[str]:
        """Dense layers in forward order."""
        n = len(self.hidden)
        heads = ["mu", "log_var"] if self.posterior == "diagonal" else ["mu"]
        return ([f"enc{i}" for i in range(n)] + heads
                + [f"dec{i}" for i in range(n)] + ["out"])

    def layer_shapes(self) -> dict[str, tuple[int, int]]:
        """(d_in, d_out) of every dense layer; the decoder mirrors the encoder."""
        enc = [self.input_dim, *self.hidden]
        dec = [self.latent_dim, *reversed(self.hidden), self.input_dim]
        shapes = {f"enc{i}": (enc[i], enc[i + 1]) for i in range(len(self.hidden))}
        shapes["mu"] = (enc[-1], self.latent_dim)
        if self.posterior == "diagonal":
            shapes["log_var"] = (enc[-1], self.latent_dim)
        for i in range(len(self.hidden)):
            shapes[f"dec{i}"] = (dec[i], dec[i + 1])
        shapes["out"] = (dec[-2], dec[-1])
        return shapes

    def param_shapes(self) -> dict[str, tuple]:
        """Shape of every parameter array, in forward order."""
        out = {}
        for name, (d_in, d_out) in self.layer_shapes().items():
            out[f"{name}.W"] = (d_in, d_out)
            out[f"{name}.b"] = (d_out,)
        return out


INIT_SCHEMES = ("he", "lecun")


def init_params(config: VAEConfig, rng: np.random.Generator,
                init: str = "he") -> dict[str, Array]:
    """Draw initial parameters; biases start at zero.

    init="he": He init before a relu, Glorot elsewhere (the default).
    init="lecun": every weight U(-1/sqrt(d_in), 1/sqrt(d_in)), the scale
    of PyTorch's nn.Linear, used by the pytorch-examples MNIST protocol
    (docs/results.md).

    Each parameter is its own array of its own shape, but all are views
    into one contiguous buffer, in `config.param_shapes()` order, so that
    Adam can update them all in one pass (it checks, and falls back to one
    pass per array for parameters laid out any other way, such as loaded
    ones). Replacing an array in the dict is fine; the values drawn do not
    depend on the layout.

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,), dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> params["enc0.W"].shape, params["enc0.b"].dtype
    ((3, 4), dtype('float64'))
    >>> bool(np.all(params["out.b"] == 0))
    True
    """
    shapes = config.param_shapes()
    params = _views(np.empty(sum(math.prod(s) for s in shapes.values()), config.dtype), config)
    for name, (d_in, d_out) in config.layer_shapes().items():
        hidden_layer = name.startswith(("enc", "dec"))
        scheme = "he" if hidden_layer and config.activation == "relu" else "glorot"
        if init == "lecun":
            scheme = "lecun"
        W, b = init_dense(rng, d_in, d_out, config.dtype, scheme)
        params[f"{name}.W"][...], params[f"{name}.b"][...] = W, b
    return params


def _mlp_forward(params, h, prefix: str, n_layers: int, activation: str):
    """Hidden layers ``prefix0 .. prefix{n-1}``, each dense then activation."""
    caches = []
    for i in range(n_layers):
        name = f"{prefix}{i}"
        a, dense_cache = dense_forward(h, params[f"{name}.W"], params[f"{name}.b"])
        h, act_cache = activation_forward(activation, a)
        caches.append((name, dense_cache, act_cache))
    return h, caches


def _mlp_backward(dh, caches, activation: str, grads: dict):
    """Reverse of `_mlp_forward`; writes ``grads[name.W]``, ``grads[name.b]``."""
    for name, dense_cache, act_cache in reversed(caches):
        da = activation_backward(activation, dh, act_cache)
        dh, grads[f"{name}.W"], grads[f"{name}.b"] = dense_backward(da, dense_cache)
    return dh


def encoder_forward(params, x: Array, config: VAEConfig):
    """lambda_phi(x): returns ``(mu, log_var, cache)``.

    For the fixed-width posterior, log_var is None (the width is delta).

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> mu, log_var, cache = encoder_forward(params, np.zeros((5, 3)), config)
    >>> mu.shape, log_var.shape
    ((5, 2), (5, 2))
    """
    h, mlp_cache = _mlp_forward(params, x, "enc", len(config.hidden), config.activation)
    mu, mu_cache = dense_forward(h, params["mu.W"], params["mu.b"])  # (n, d_z)
    log_var, lv_cache = None, None
    if config.posterior == "diagonal":
        log_var, lv_cache = dense_forward(h, params["log_var.W"], params["log_var.b"])
    return mu, log_var, (mlp_cache, mu_cache, lv_cache)


def encoder_backward(dmu, dlog_var, cache, config: VAEConfig, grads: dict) -> Array:
    """Backward of `encoder_forward`; fills the encoder's grads, returns dx.

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> mu, log_var, cache = encoder_forward(params, np.zeros((5, 3)), config)
    >>> grads = {}
    >>> dx = encoder_backward(np.ones((5, 2)), np.ones((5, 2)), cache, config, grads)
    >>> dx.shape, sorted(grads)
    ((5, 3), ['enc0.W', 'enc0.b', 'log_var.W', 'log_var.b', 'mu.W', 'mu.b'])
    """
    mlp_cache, mu_cache, lv_cache = cache
    dh, grads["mu.W"], grads["mu.b"] = dense_backward(dmu, mu_cache)
    if config.posterior == "diagonal":
        dh_lv, grads["log_var.W"], grads["log_var.b"] = dense_backward(dlog_var, lv_cache)
        dh = dh + dh_lv
    return _mlp_backward(dh, mlp_cache, config.activation, grads)


def decoder_forward(params, z: Array, config: VAEConfig):
    """mu_theta(z) before the output nonlinearity: logits (Bernoulli) or
    the mean itself (Gaussian). Returns ``(out, cache)``.

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> out, cache = decoder_forward(params, np.zeros((5, 2)), config)
    >>> out.shape
    (5, 3)
    """
    h, mlp_cache = _mlp_forward(params, z, "dec", len(config.hidden), config.activation)
    out, out_cache = dense_forward(h, params["out.W"], params["out.b"])  # (n, d_x)
    return out, (mlp_cache, out_cache)


def decoder_backward(dout, cache, config: VAEConfig, grads: dict) -> Array:
    """Backward of `decoder_forward`; fills the decoder's grads, returns dz.

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> out, cache = decoder_forward(params, np.zeros((5, 2)), config)
    >>> grads = {}
    >>> dz = decoder_backward(np.ones((5, 3)), cache, config, grads)
    >>> dz.shape, sorted(grads)
    ((5, 2), ['dec0.W', 'dec0.b', 'out.W', 'out.b'])
    """
    mlp_cache, out_cache = cache
    dh, grads["out.W"], grads["out.b"] = dense_backward(dout, out_cache)
    return _mlp_backward(dh, mlp_cache, config.activation, grads)


def log_lik_forward(x: Array, out: Array, config: VAEConfig):
    """log p_theta(x|z) per example from the decoder output.

    Examples
    --------
    >>> config = VAEConfig(2, 1, dtype="float64")  # Bernoulli
    >>> x, logits = np.array([[1.0, 0.0]]), np.zeros((1, 2))
    >>> log_lik, cache = log_lik_forward(x, logits, config)
    >>> log_lik  # 2 * log(1/2)
    array([-1.38629436])
    """
    if config.likelihood == "bernoulli":
        return bernoulli_log_lik_forward(x, out)
    return gaussian_log_lik_forward(x, out, config.sigma)


def log_lik_backward(dlog_lik: Array, cache, config: VAEConfig) -> Array:
    """Gradient of `log_lik_forward` wrt the decoder output.

    Examples
    --------
    >>> config = VAEConfig(2, 1, dtype="float64")  # Bernoulli
    >>> _, cache = log_lik_forward(np.array([[1.0, 0.0]]), np.zeros((1, 2)), config)
    >>> log_lik_backward(np.ones(1), cache, config)  # x - sigmoid(logits)
    array([[ 0.5, -0.5]])
    """
    if config.likelihood == "bernoulli":
        return bernoulli_log_lik_backward(dlog_lik, cache)
    return gaussian_log_lik_backward(dlog_lik, cache)


def loss_forward(params, x: Array, eps: Array, config: VAEConfig, beta: float = 1.0,
                 workspace: dict | None = None):
    """The training loss and its per-example terms.

    Parameters
    ----------
    params : dict of name -> ndarray
    x : ndarray, shape (n, d_x)
        In the parameters' dtype (no conversion here).
    eps : ndarray, shape (n, d_z)
        Standard-normal noise; z = mu + sigma * eps.
    config : VAEConfig
    beta : float
        Weight of the KL term (1 for the ELBO).
    workspace : dict, optional
        Scratch arrays reused from call to call (a `Trainer` keeps one).
        Without it every call allocates its arrays and the function is
        pure. With it, the returned `cache`, and the grads that
        `loss_backward` makes from it, are views into the workspace: they
        stay valid until the next call with the same workspace (a cache
        passed to `loss_backward` after that gives wrong gradients). Use
        one workspace per model and thread. `loss` and `terms` are always
        fresh.

    Returns
    -------
    loss : float
        mean_i [ -log_lik_i + beta * kl_i ], nats per example.
    terms : dict
        ``log_lik`` (n,) and ``kl`` (n,); elbo = log_lik - kl.
    cache : dict, for `loss_backward` (which only reads it).

    Raises
    ------
    TypeError
        If x or eps is not a float array of the parameters' dtype.
    ValueError
        If a shape is wrong, x is outside [0, 1] for a Bernoulli decoder,
        or the decoder output is not finite.

    Notes
    -----
    Forward, per example:
        mu, log_var = encoder(x)
        z = mu + exp(0.5 * log_var) * eps        (or mu + delta * eps)
        out = decoder(z)                        (logits or the mean)
        loss_i = -log p(x|z) + beta * KL(q || r)
    Backward (chain rule, reverse order), with n the batch size:
        dlog_lik_i = -1 / n,   dkl_i = beta / n
        dout = dlog_lik * dlog_lik/dout
        dz = decoder_backward(dout)
        dmu = dz + dkl * dKL/dmu
        dlog_var = dz * eps * 0.5 * std + dkl * dKL/dlog_var
        dx-side: encoder_backward(dmu, dlog_var)

    That chain, written with the kernels, is `encoder_forward`,
    `decoder_forward`, `log_lik_forward` and their backwards. The code
    here is the same math in its fast form, because this is the training
    step: every large array is written into a preallocated buffer with
    ``out=`` (no temporaries), the relu runs in place, both encoder heads
    come from one matrix product, the Bernoulli term takes few passes
    over (n, d_x), and nothing is ever cast to float64. The small (n, d_z)
    steps in the middle still call the kernels of sampling.py and kl.py.

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> rng = np.random.default_rng(1)
    >>> x, eps = rng.random((5, 3)), rng.standard_normal((5, 2))
    >>> loss, terms, cache = loss_forward(params, x, eps, config, beta=1.0)
    >>> bool(np.isclose(loss, np.mean(terms["kl"] - terms["log_lik"])))
    True
    """
    _check_batch(params, x, eps, config)
    ws = {} if workspace is None else workspace
    h, enc_layers = _hidden_forward(params, x, "enc", config, ws)
    mu, log_var, heads_W = _heads_forward(params, h, config, ws)
    if config.posterior == "diagonal":
        z, z_cache = reparameterize_forward(mu, log_var, eps)
        kl, kl_cache = kl_forward(mu, log_var)
    else:
        z, z_cache = reparameterize_fixed_forward(mu, config.delta, eps)
        if config.delta > 0:
            kl, kl_cache = kl_fixed_forward(mu, config.delta)
        else:  # a point mass: the KL is infinite and must carry weight 0
            kl, kl_cache = np.full(x.shape[0], np.inf, dtype=x.dtype), None
    h_dec, dec_layers = _hidden_forward(params, z, "dec", config, ws)
    out = _dense_into(h_dec, params["out.W"], params["out.b"], ws, "out")  # (n, d_x)
    log_lik, ll_cache = _log_lik_into(x, out, config, ws)
    loss = -float(np.mean(log_lik, dtype=np.float64))  # a scalar summary; arrays stay in dtype
    if beta != 0:
        loss += beta * float(np.mean(kl, dtype=np.float64))
    cache = {"enc_layers": enc_layers, "h_enc": h, "heads_W": heads_W, "z_cache": z_cache,
             "kl_cache": kl_cache, "dec_layers": dec_layers, "h_dec": h_dec,
             "out_W": params["out.W"], "ll_cache": ll_cache, "n": x.shape[0],
             "beta": float(beta), "config": config, "workspace": ws}
    return loss, {"log_lik": log_lik, "kl": kl}, cache


def loss_backward(cache) -> dict[str, Array]:
    """Gradients of `loss_forward`'s loss wrt every parameter; see its Notes.

    Reads the cache and never writes it, so it may be called again on the
    same cache. The first layer's dx is not computed (nothing needs it).
    With a workspace, the grads are views into one flat buffer of it (one
    array per name, in `config.param_shapes()` order), overwritten by the
    next backward through the same workspace.

    Examples
    --------
    >>> from numpyvae.gradcheck import numerical_gradient
    >>> config = VAEConfig(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> rng = np.random.default_rng(1)
    >>> x, eps = rng.random((5, 3)), rng.standard_normal((5, 2))
    >>> grads = loss_backward(loss_forward(params, x, eps, config)[2])
    >>> list(grads) == list(config.param_shapes())
    True
    >>> f = lambda b: loss_forward({**params, "out.b": b}, x, eps, config)[0]
    >>> np.allclose(grads["out.b"], numerical_gradient(f, params["out.b"]))
    True
    """
    config, ws, n, beta = cache["config"], cache["workspace"], cache["n"], cache["beta"]
    dtype = cache["h_dec"].dtype
    grads = _grad_arrays(ws, config, dtype)
    dout = _log_lik_backward_into(cache["ll_cache"], n, config, ws)  # (n, d_x)
    dh = _dense_backward_into(dout, cache["h_dec"], cache["out_W"], grads, "out", ws,
                              need_dx=True)
    dz = _hidden_backward(dh, cache["dec_layers"], config, grads, ws, need_dx=True)
    dkl = np.full(n, beta / n, dtype=dtype)  # d loss / d kl_i
    dheads = _scratch(ws, "dheads", (n, cache["heads_W"].shape[1]), dtype)
    d_z = config.latent_dim
    if config.posterior == "diagonal":
        dmu, dlog_var = reparameterize_backward(dz, cache["z_cache"])
        dmu_kl, dlog_var_kl = kl_backward(dkl, cache["kl_cache"])
        np.add(dmu, dmu_kl, out=dheads[:, :d_z])
        np.add(dlog_var, dlog_var_kl, out=dheads[:, d_z:])
    else:
        dheads[...] = reparameterize_fixed_backward(dz, cache["z_cache"])
        if beta != 0:
            dheads += kl_fixed_backward(dkl, cache["kl_cache"])
    dh = _heads_backward(dheads, cache["h_enc"], cache["heads_W"], config, grads, ws,
                         need_dx=bool(config.hidden))
    _hidden_backward(dh, cache["enc_layers"], config, grads, ws, need_dx=False)
    return grads


# --- the fast path's pieces -------------------------------------------------
# Each is the named kernel's math, writing into workspace buffers.

def _check_batch(params, x, eps, config: VAEConfig) -> None:
    """The checks that the kernels would make, done once per call."""
    check_float_array(x, "x", ndim=2)
    check_float_array(eps, "eps", ndim=2)
    check_dtype_like_params(params["mu.W"].dtype, x=x, eps=eps)
    if x.shape[1] != config.input_dim:
        raise ValueError(f"x: expected shape (n, {config.input_dim}), got {x.shape}")
    if eps.shape != (x.shape[0], config.latent_dim):
        raise ValueError(f"eps: expected shape ({x.shape[0]}, {config.latent_dim}) like "
                         f"x's batch, got {eps.shape}")
    if config.likelihood == "bernoulli":
        check_unit_interval(x, "x")
    else:
        check_finite(x, "x")


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
    """One gradient array per name, all views into one flat buffer.

    One buffer lets the optimizer update every parameter in one pass
    when the parameters are packed the same way (see `init_params`).
    """
    key = ("grads", config, dtype)
    if key not in ws:
        flat = np.empty(sum(math.prod(s) for s in config.param_shapes().values()), dtype)
        ws[key] = _views(flat, config)
    return dict(ws[key])  # a new dict of the same arrays: the caller may rebind names


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
    """`_mlp_forward` into workspace buffers. The relu runs in place:
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


def _log_lik_backward_into(ll_cache, n: int, config: VAEConfig, ws: dict) -> Array:
    """d loss / d out for dlog_lik_i = -1/n, into one buffer.

    Bernoulli: dout = (sigmoid(l) - x) / n, with
    sigmoid(l) = (1 + tanh(l/2)) / 2: one transcendental pass that
    cannot overflow. Gaussian: dout = -diff / (n sigma^2).
    """
    if config.likelihood == "bernoulli":
        x, logits = ll_cache
        dout = np.multiply(logits, 0.5, out=_scratch(ws, "dout", x.shape, x.dtype))
        np.tanh(dout, out=dout)
        dout += 1.0
        dout *= 0.5
        dout -= x
        dout *= 1.0 / n
        return dout
    (diff,) = ll_cache
    sigma = config.sigma
    return np.multiply(diff, -1.0 / (n * sigma * sigma),
                       out=_scratch(ws, "dout", diff.shape, diff.dtype))
