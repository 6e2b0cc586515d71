"""The two-stochastic-layer VAE and its gradient, as the chain of the kernels.

The second architecture of the IWAE paper (Burda, Grosse and
Salakhutdinov, 2016, Appendix) puts a second latent z2 above z1:

    generative:  r(z2) = N(0, I)
                 p(z1|z2) = N(mu_p1(z2), diag(exp(log_var_p1(z2))))
                 p(x|z1) = Bernoulli(sigmoid(logits(z1)))
    inference:   q(z1|x) = N(mu1(x), diag(exp(log_var1(x))))
                 q(z2|z1) = N(mu2(z1), diag(exp(log_var2(z1))))

One sample is z1 = mu1(x) + std1 * eps1, then z2 = mu2(z1) + std2 * eps2
(the reparameterization twice; z2 depends on z1), and its log-weight is

    log w = log p(x|z1) + log p(z1|z2) + log r(z2)
            - log q(z1|x) - log q(z2|z1),

five sampled log-densities (likelihoods.py): with p(z1|z2) learned,
the KL of the one-layer model is no longer a closed form. The ELBO is
the mean of log w over k samples (k = 1 in training); the IWAE bound is
L_k = log (1/k) sum_i w_i, whose gradient weighs each sample's by its
softmax weight w~_i, as in bounds.py. `log_weights_forward` computes log w
one kernel call per equation; `log_weights_backward` walks the same
calls in reverse. docs/derivations.md ("Two stochastic layers") derives
every step. The noise eps = [eps1 | eps2], shape (k, n, d_z1 + d_z2), is
an argument, so the loss is a deterministic function of the parameters;
the bounds are the heads of bounds.py over these log-weights, as for the
one-layer model (model.py), whose pattern this module follows.

Parameter names, in forward order (each network is dense layers with an
activation, then one or two linear heads):
``q1.h0 ..`` ``q1.mu``, ``q1.log_var``   q(z1|x)
``q2.h0 ..`` ``q2.mu``, ``q2.log_var``   q(z2|z1)
``p1.h0 ..`` ``p1.mu``, ``p1.log_var``   p(z1|z2)
``px.h0 ..`` ``out``                     p(x|z1), logits
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from . import bounds
from .config import layer_scheme
from .layers import dense_backward, dense_forward, init_dense, mlp_backward, mlp_forward
from .likelihoods import (
    bernoulli_log_lik_backward,
    bernoulli_log_lik_forward,
    gaussian_log_density_backward,
    gaussian_log_density_forward,
)
from .sampling import reparameterize_backward, reparameterize_forward

Array = NDArray[np.floating]


@dataclass(frozen=True)
class HierarchyConfig:
    """The two-layer model's architecture (validated by `HierarchicalVAE`).

    hidden: widths of the deterministic layers between x and z1 (in
    q(z1|x) and, mirrored, in p(x|z1)); hidden2: between z1 and z2 (in
    q(z2|z1) and p(z1|z2)). The paper: hidden (100, 100), hidden2 (50, 50).

    Examples
    --------
    >>> config = HierarchyConfig(6, (3, 2), hidden=(5,), hidden2=(4,))
    >>> config.layer_names()
    ['q1.h0', 'q1.mu', 'q1.log_var', 'q2.h0', 'q2.mu', 'q2.log_var', 'p1.h0', 'p1.mu', \
'p1.log_var', 'px.h0', 'out']
    >>> config.param_shapes()["p1.mu.W"], config.latent_dim
    ((4, 3), 3)
    """

    input_dim: int
    latent_dims: tuple = (100, 50)
    hidden: tuple = (100, 100)
    hidden2: tuple = (50, 50)
    activation: str = "tanh"
    likelihood: str = "bernoulli"
    dtype: str = "float32"

    @property
    def latent_dim(self) -> int:
        """d_z1, the size of the latent the decoder p(x|z1) reads."""
        return self.latent_dims[0]

    @property
    def noise_dim(self) -> int:
        """d_z1 + d_z2: one sample's noise [eps1 | eps2]."""
        return self.latent_dims[0] + self.latent_dims[1]

    def to_dict(self) -> dict:
        """JSON-ready; ``model`` says which class a checkpoint rebuilds."""
        d = asdict(self)
        for key in ("latent_dims", "hidden", "hidden2"):
            d[key] = list(d[key])
        return {"model": "hierarchical", **d}

    def layer_shapes(self) -> dict[str, tuple[int, int]]:
        """(d_in, d_out) of every dense layer, in forward order."""
        d1, d2 = self.latent_dims
        shapes: dict[str, tuple[int, int]] = {}
        for net, d_in, widths, d_out in (("q1", self.input_dim, self.hidden, d1),
                                         ("q2", d1, self.hidden2, d2),
                                         ("p1", d2, tuple(reversed(self.hidden2)), d1)):
            dims = [d_in, *widths]
            shapes.update({f"{net}.h{i}": (dims[i], dims[i + 1]) for i in range(len(widths))})
            shapes[f"{net}.mu"] = shapes[f"{net}.log_var"] = (dims[-1], d_out)
        dims = [d1, *reversed(self.hidden)]
        shapes.update({f"px.h{i}": (dims[i], dims[i + 1]) for i in range(len(self.hidden))})
        shapes["out"] = (dims[-1], self.input_dim)
        return shapes

    def layer_names(self) -> list[str]:
        return list(self.layer_shapes())

    def param_shapes(self) -> dict[str, tuple]:
        """Shape of every parameter array, in forward order."""
        out: dict[str, tuple] = {}
        for name, (d_in, d_out) in self.layer_shapes().items():
            out[f"{name}.W"], out[f"{name}.b"] = (d_in, d_out), (d_out,)
        return out


def init_params(config: HierarchyConfig, rng: np.random.Generator,
                init: str = "auto") -> dict[str, Array]:
    """Initial weights as `model.init_params` draws them; biases at zero."""
    params = {}
    for name, (d_in, d_out) in config.layer_shapes().items():
        relu_network = config.activation == "relu" and bool(config.hidden or config.hidden2)
        scheme = layer_scheme(init, relu_network, ".h" in name)
        params[f"{name}.W"], params[f"{name}.b"] = init_dense(rng, d_in, d_out, config.dtype,
                                                              scheme)
    return params


def gaussian_layer_forward(params, h: Array, net: str, n_layers: int, activation: str):
    """One conditional Gaussian: hidden layers ``net.h*``, then the heads
    ``net.mu`` and ``net.log_var``. Returns ``(mu, log_var, cache)``;
    `h` may carry a leading sample axis, (k, n, d)."""
    h, mlp_cache = mlp_forward(params, h, f"{net}.h", n_layers, activation)
    mu, mu_cache = dense_forward(h, params[f"{net}.mu.W"], params[f"{net}.mu.b"])
    log_var, lv_cache = dense_forward(h, params[f"{net}.log_var.W"], params[f"{net}.log_var.b"])
    return mu, log_var, (mlp_cache, mu_cache, lv_cache)


def gaussian_layer_backward(dmu, dlog_var, cache, net: str, activation: str,
                            grads: dict) -> Array:
    """Backward of `gaussian_layer_forward`; fills its grads, returns dh."""
    mlp_cache, mu_cache, lv_cache = cache
    dh, grads[f"{net}.mu.W"], grads[f"{net}.mu.b"] = dense_backward(dmu, mu_cache)
    dh_lv, grads[f"{net}.log_var.W"], grads[f"{net}.log_var.b"] = dense_backward(dlog_var,
                                                                                lv_cache)
    return mlp_backward(dh + dh_lv, mlp_cache, activation, grads)


def decoder_forward(params, z1: Array, config: HierarchyConfig):
    """p(x|z1) before the sigmoid: ``(logits, cache)``, logits (..., d_x)."""
    h, mlp_cache = mlp_forward(params, z1, "px.h", len(config.hidden), config.activation)
    logits, out_cache = dense_forward(h, params["out.W"], params["out.b"])
    return logits, (mlp_cache, out_cache)


def decoder_backward(dlogits, cache, config: HierarchyConfig, grads: dict) -> Array:
    """Backward of `decoder_forward`; fills its grads, returns dz1."""
    mlp_cache, out_cache = cache
    dh, grads["out.W"], grads["out.b"] = dense_backward(dlogits, out_cache)
    return mlp_backward(dh, mlp_cache, config.activation, grads)


def split_noise(eps: Array, config: HierarchyConfig) -> tuple[Array, Array]:
    """eps = [eps1 | eps2] along the last axis: the noise of z1 and of z2.

    Examples
    --------
    >>> eps1, eps2 = split_noise(np.zeros((5, 6, 5)), HierarchyConfig(4, (3, 2)))
    >>> eps1.shape, eps2.shape
    ((5, 6, 3), (5, 6, 2))
    """
    d1 = config.latent_dims[0]
    return eps[..., :d1], eps[..., d1:]


def log_weights_forward(params, x: Array, eps: Array, config: HierarchyConfig):
    """log w of each of k samples per example, kernel by kernel.

    Parameters
    ----------
    x : ndarray, shape (n, d_x), in [0, 1], in the parameters' dtype
        (preconditions, not checked: `HierarchicalVAE` checks them)
    eps : ndarray, shape (k, n, d_z1 + d_z2)
        Standard-normal noise [eps1 | eps2] (`split_noise`).

    Returns
    -------
    log_w : ndarray, shape (k, n)
    terms : dict of (k, n) arrays ``log_lik`` = log p(x|z1) and
        ``log_ratio`` = log p(z1|z2) + log r(z2) - log q(z1|x) - log q(z2|z1)
    cache : dict, for `log_weights_backward`

    Notes
    -----
    The pattern of `model.log_weights_forward`, one stochastic layer more:
        mu1, log_var1 = q1(x);                z1 = mu1 + std1 * eps1
        mu2, log_var2 = q2(z1);               z2 = mu2 + std2 * eps2
        mu_p1, log_var_p1 = p1(z2);           logits = px(z1)
        log w = log Bern(x; logits) + log N(z1; mu_p1, var_p1) + log N(z2; 0, I)
                - log N(z1; mu1, var1) - log N(z2; mu2, var2)

    References
    ----------
    Burda, Grosse and Salakhutdinov, "Importance Weighted Autoencoders"
    (2016), Section 2 and Appendix: the model with two stochastic layers.

    Examples
    --------
    >>> config = HierarchyConfig(4, (3, 2), hidden=(5,), hidden2=(4,), dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> rng = np.random.default_rng(1)
    >>> x, eps = rng.random((6, 4)), rng.standard_normal((5, 6, 5))  # k = 5
    >>> log_weights_forward(params, x, eps, config)[0].shape
    (5, 6)
    """
    eps1, eps2 = split_noise(eps, config)                                       # (k, n, d)
    act, n1, n2 = config.activation, len(config.hidden), len(config.hidden2)
    mu1, log_var1, q1_cache = gaussian_layer_forward(params, x, "q1", n1, act)  # (n, d1)
    mu1_k, log_var1_k = np.broadcast_to(mu1, eps1.shape), np.broadcast_to(log_var1, eps1.shape)
    z1, z1_cache = reparameterize_forward(mu1_k, log_var1_k, eps1)             # (k, n, d1)
    log_q1, lq1_cache = gaussian_log_density_forward(z1, mu1_k, log_var1_k)     # (k, n)
    mu2, log_var2, q2_cache = gaussian_layer_forward(params, z1, "q2", n2, act)  # (k, n, d2)
    z2, z2_cache = reparameterize_forward(mu2, log_var2, eps2)
    log_q2, lq2_cache = gaussian_log_density_forward(z2, mu2, log_var2)
    zeros = np.zeros_like(z2)  # r(z2) = N(0, I): mean 0, log-variance 0
    log_r2, lr2_cache = gaussian_log_density_forward(z2, zeros, zeros)
    mu_p1, log_var_p1, p1_cache = gaussian_layer_forward(params, z2, "p1", n2, act)
    log_p1, lp1_cache = gaussian_log_density_forward(z1, mu_p1, log_var_p1)
    logits, dec_cache = decoder_forward(params, z1, config)                     # (k, n, d_x)
    log_lik, ll_cache = bernoulli_log_lik_forward(x, logits)                    # (k, n)
    log_ratio = log_p1 + log_r2 - log_q1 - log_q2
    log_w = log_lik + log_ratio
    cache = {"q1": q1_cache, "z1": z1_cache, "log_q1": lq1_cache, "q2": q2_cache,
             "z2": z2_cache, "log_q2": lq2_cache, "log_r2": lr2_cache, "p1": p1_cache,
             "log_p1": lp1_cache, "dec": dec_cache, "log_lik": ll_cache, "config": config}
    return log_w, {"log_lik": log_lik, "log_ratio": log_ratio}, cache


def log_weights_backward(dlog_w: Array, cache) -> dict[str, Array]:
    """Gradients of sum(dlog_w * log_w) wrt every parameter.

    Notes
    -----
    With g = dlog_w (k, n), the forward's calls in reverse; z1 collects
    four gradients (p(x|z1), p(z1|z2), q(z2|z1)'s input, q(z1|x)) and z2
    three:
        dz1  = px_backward(g * (x - sigmoid(logits))) + g * dlog N(z1; mu_p1)/dz1
        dz2  = p1_backward(g * dlog N/dmu_p1, g * dlog N/dlog_var_p1)
               - g * z2 - g * dlog N(z2; mu2)/dz2
        dmu2 = dz2 - g * dlog N(z2; mu2)/dmu2
        dlog_var2 = dz2 * eps2 * 0.5 * std2 - g * dlog N(z2; mu2)/dlog_var2
        dz1 += q2_backward(dmu2, dlog_var2) - g * dlog N(z1; mu1)/dz1
        dmu1, dlog_var1 likewise, summed over the k samples; q1_backward.
    """
    config, act = cache["config"], cache["config"].activation
    grads: dict[str, Array] = {}
    g = dlog_w  # (k, n)
    dlogits = bernoulli_log_lik_backward(g, cache["log_lik"])
    dz1 = decoder_backward(dlogits, cache["dec"], config, grads)                 # (k, n, d1)
    dz1_p1, dmu_p1, dlog_var_p1 = gaussian_log_density_backward(g, cache["log_p1"])
    dz1 += dz1_p1
    dz2 = gaussian_layer_backward(dmu_p1, dlog_var_p1, cache["p1"], "p1", act, grads)
    dz2 += gaussian_log_density_backward(g, cache["log_r2"])[0]
    dz2_q2, dmu2, dlog_var2 = gaussian_log_density_backward(-g, cache["log_q2"])
    dz2 += dz2_q2
    dmu2_z2, dlog_var2_z2 = reparameterize_backward(dz2, cache["z2"])  # z2 = mu2 + std2 eps2
    dz1 += gaussian_layer_backward(dmu2 + dmu2_z2, dlog_var2 + dlog_var2_z2, cache["q2"],
                                   "q2", act, grads)
    dz1_q1, dmu1, dlog_var1 = gaussian_log_density_backward(-g, cache["log_q1"])
    dz1 += dz1_q1
    dmu1_z1, dlog_var1_z1 = reparameterize_backward(dz1, cache["z1"])  # z1 = mu1 + std1 eps1
    gaussian_layer_backward((dmu1 + dmu1_z1).sum(axis=0), (dlog_var1 + dlog_var1_z1).sum(axis=0),
                            cache["q1"], "q1", act, grads)
    return {name: grads[name] for name in config.param_shapes()}


def prior_log_weights(params, x: Array, eps: Array, config: HierarchyConfig) -> Array:
    """log w = log p(x|z1) with (z1, z2) drawn from the generative model:
    z2 = eps2 ~ r(z2), z1 = mu_p1(z2) + std_p1(z2) * eps1. Forward only
    (`estimators.naive_log_likelihood`); shapes as `log_weights_forward`.

    Examples
    --------
    >>> config = HierarchyConfig(4, (3, 2), hidden=(5,), hidden2=(4,), dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> prior_log_weights(params, np.zeros((6, 4)), np.zeros((7, 6, 5)), config).shape
    (7, 6)
    """
    eps1, z2 = split_noise(eps, config)
    mu_p1, log_var_p1, _ = gaussian_layer_forward(params, z2, "p1", len(config.hidden2),
                                                  config.activation)
    z1, _ = reparameterize_forward(mu_p1, log_var_p1, eps1)
    logits, _ = decoder_forward(params, z1, config)
    return bernoulli_log_lik_forward(x, logits)[0]


def bound_loss_forward(params, x: Array, eps: Array, config: HierarchyConfig,
                       objective: str = "elbo"):
    """loss = -mean_x bound(x): a bound head (bounds.py) over the log-weights,
    as `model.bound_loss_forward`.

    Returns
    -------
    ``(loss, terms, cache)`` as `bounds.loss_forward`: terms ``elbo``,
    ``iwae``, ``log_lik`` and ``kl`` (sampled: log_lik - elbo), each (n,).

    Examples
    --------
    >>> config = HierarchyConfig(4, (3, 2), hidden=(5,), hidden2=(4,), dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> rng = np.random.default_rng(1)
    >>> x, eps = rng.random((6, 4)), rng.standard_normal((5, 6, 5))
    >>> loss, terms, _ = bound_loss_forward(params, x, eps, config, "iwae")
    >>> bool(np.all(terms["iwae"] >= terms["elbo"])), round(loss, 6) == round(
    ...     -float(terms["iwae"].mean()), 6)
    (True, True)
    """
    return bounds.loss_over_log_weights(log_weights_forward(params, x, eps, config), objective)


def bound_loss_backward(cache) -> dict[str, Array]:
    """Gradients of `bound_loss_forward`'s loss: the head's backward, then
    `log_weights_backward`."""
    head_cache, log_w_cache = cache
    return log_weights_backward(bounds.loss_backward(head_cache), log_w_cache)
