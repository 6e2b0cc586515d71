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

Parameter names, in forward order:
``enc0.W, enc0.b, ...`` (encoder hidden layers), ``mu.W, mu.b`` and, for
the diagonal posterior, ``log_var.W, log_var.b`` (the heads),
``dec0.W, dec0.b, ...`` (decoder hidden layers), ``out.W, out.b``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

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
    """Everything that defines a VAE's architecture (validated by `VAE`)."""

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


def init_params(config: VAEConfig, rng: np.random.Generator) -> dict[str, Array]:
    """Draw initial parameters: He init before a relu, Glorot elsewhere."""
    params = {}
    for name, (d_in, d_out) in config.layer_shapes().items():
        hidden_layer = name.startswith(("enc", "dec"))
        scheme = "he" if hidden_layer and config.activation == "relu" else "glorot"
        params[f"{name}.W"], params[f"{name}.b"] = init_dense(
            rng, d_in, d_out, config.dtype, scheme)
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
    """
    h, mlp_cache = _mlp_forward(params, x, "enc", len(config.hidden), config.activation)
    mu, mu_cache = dense_forward(h, params["mu.W"], params["mu.b"])  # (n, d_z)
    log_var, lv_cache = None, None
    if config.posterior == "diagonal":
        log_var, lv_cache = dense_forward(h, params["log_var.W"], params["log_var.b"])
    return mu, log_var, (mlp_cache, mu_cache, lv_cache)


def encoder_backward(dmu, dlog_var, cache, config: VAEConfig, grads: dict) -> Array:
    """Backward of `encoder_forward`; fills the encoder's grads, returns dx."""
    mlp_cache, mu_cache, lv_cache = cache
    dh, grads["mu.W"], grads["mu.b"] = dense_backward(dmu, mu_cache)
    if config.posterior == "diagonal":
        dh_lv, grads["log_var.W"], grads["log_var.b"] = dense_backward(dlog_var, lv_cache)
        dh = dh + dh_lv
    return _mlp_backward(dh, mlp_cache, config.activation, grads)


def decoder_forward(params, z: Array, config: VAEConfig):
    """mu_theta(z) before the output nonlinearity: logits (Bernoulli) or
    the mean itself (Gaussian). Returns ``(out, cache)``."""
    h, mlp_cache = _mlp_forward(params, z, "dec", len(config.hidden), config.activation)
    out, out_cache = dense_forward(h, params["out.W"], params["out.b"])  # (n, d_x)
    return out, (mlp_cache, out_cache)


def decoder_backward(dout, cache, config: VAEConfig, grads: dict) -> Array:
    """Backward of `decoder_forward`; fills the decoder's grads, returns dz."""
    mlp_cache, out_cache = cache
    dh, grads["out.W"], grads["out.b"] = dense_backward(dout, out_cache)
    return _mlp_backward(dh, mlp_cache, config.activation, grads)


def log_lik_forward(x: Array, out: Array, config: VAEConfig):
    """log p_theta(x|z) per example from the decoder output."""
    if config.likelihood == "bernoulli":
        return bernoulli_log_lik_forward(x, out)
    return gaussian_log_lik_forward(x, out, config.sigma)


def log_lik_backward(dlog_lik: Array, cache, config: VAEConfig) -> Array:
    """Gradient of `log_lik_forward` wrt the decoder output."""
    if config.likelihood == "bernoulli":
        return bernoulli_log_lik_backward(dlog_lik, cache)
    return gaussian_log_lik_backward(dlog_lik, cache)


def loss_forward(params, x: Array, eps: Array, config: VAEConfig, beta: float = 1.0):
    """The training loss and its per-example terms.

    Parameters
    ----------
    params : dict of name -> ndarray
    x : ndarray, shape (n, d_x)
    eps : ndarray, shape (n, d_z)
        Standard-normal noise; z = mu + sigma * eps.
    config : VAEConfig
    beta : float
        Weight of the KL term (1 for the ELBO).

    Returns
    -------
    loss : float
        mean_i [ -log_lik_i + beta * kl_i ], nats per example.
    terms : dict
        ``log_lik`` (n,) and ``kl`` (n,); elbo = log_lik - kl.
    cache : tuple, for `loss_backward`.

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
    """
    mu, log_var, enc_cache = encoder_forward(params, x, config)
    if config.posterior == "diagonal":
        z, z_cache = reparameterize_forward(mu, log_var, eps)
        kl, kl_cache = kl_forward(mu, log_var)
    else:
        z, z_cache = reparameterize_fixed_forward(mu, config.delta, eps)
        if config.delta > 0:
            kl, kl_cache = kl_fixed_forward(mu, config.delta)
        else:  # a point mass: the KL is infinite and must carry weight 0
            kl, kl_cache = np.full(x.shape[0], np.inf, dtype=x.dtype), None
    out, dec_cache = decoder_forward(params, z, config)
    log_lik, ll_cache = log_lik_forward(x, out, config)
    n = x.shape[0]
    loss = -float(np.mean(log_lik, dtype=np.float64))
    if beta != 0:
        loss += beta * float(np.mean(kl, dtype=np.float64))
    cache = (enc_cache, z_cache, kl_cache, dec_cache, ll_cache, n, float(beta), config)
    return loss, {"log_lik": log_lik, "kl": kl}, cache


def loss_backward(cache) -> dict[str, Array]:
    """Gradients of `loss_forward`'s loss wrt every parameter; see its Notes."""
    enc_cache, z_cache, kl_cache, dec_cache, ll_cache, n, beta, config = cache
    grads: dict[str, Array] = {}
    dtype = dec_cache[1][0].dtype
    dlog_lik = np.full(n, -1.0 / n, dtype=dtype)  # d loss / d log_lik_i
    dkl = np.full(n, beta / n, dtype=dtype)       # d loss / d kl_i
    dout = log_lik_backward(dlog_lik, ll_cache, config)
    dz = decoder_backward(dout, dec_cache, config, grads)
    if config.posterior == "diagonal":
        dmu, dlog_var = reparameterize_backward(dz, z_cache)
        dmu_kl, dlog_var_kl = kl_backward(dkl, kl_cache)
        dmu, dlog_var = dmu + dmu_kl, dlog_var + dlog_var_kl
    else:
        dmu, dlog_var = reparameterize_fixed_backward(dz, z_cache), None
        if beta != 0:
            dmu = dmu + kl_fixed_backward(dkl, kl_cache)
    encoder_backward(dmu, dlog_var, enc_cache, config, grads)
    return {name: grads[name] for name in config.param_shapes()}
