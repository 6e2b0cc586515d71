"""The user-facing two-stochastic-layer VAE: a configuration, its
parameters, and methods that call the pure functions of `hierarchy.py`.

The sibling of `VAE` with the same methods where they make sense, so it
trains (`fit`, `Trainer`), saves and loads (`save`, `load`), evaluates
(`evaluation.evaluate`) and samples through the same entry points:
both satisfy the model protocol (protocol.py).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ._validation import as_data, as_noise, check_float_dtype, check_int
from .reference.activations import ACTIVATIONS, sigmoid
from .reference.arrays import check_positive
from .reference.bounds import OBJECTIVES
from .reference.config import INIT_SCHEMES
from .reference.hierarchical_vae import (
    HierarchyConfig,
    bound_loss_backward,
    bound_loss_forward,
    decoder_forward,
    gaussian_layer_forward,
    init_params,
    log_weights_backward,
    log_weights_forward,
    prior_log_weights,
)
from .reference.sampling import draw_eps, reparameterize_forward
from .vae import as_generator

Array = NDArray[np.floating]


def _widths(value, name: str) -> tuple:
    if isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected a sequence of layer widths such as (100, 100), "
                        f"got {value}")
    return tuple(check_int(w, name, 1) for w in value)


def make_hierarchy_config(input_dim, latent_dims=(100, 50), hidden=(100, 100),
                          hidden2=(50, 50), activation="tanh", likelihood="bernoulli",
                          dtype="float32") -> HierarchyConfig:
    """Validate the constructor's arguments into a `HierarchyConfig`.

    Examples
    --------
    >>> make_hierarchy_config(784).latent_dims
    (100, 50)
    """
    input_dim = check_int(input_dim, "input_dim", 1)
    latent_dims = _widths(latent_dims, "latent_dims")
    if len(latent_dims) != 2:
        raise ValueError(f"latent_dims: expected two sizes (d_z1, d_z2), got {latent_dims}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
    if likelihood != "bernoulli":
        raise ValueError(f"likelihood: the two-layer model has a Bernoulli decoder; expected "
                         f"'bernoulli', got {likelihood!r}")
    return HierarchyConfig(input_dim, latent_dims, _widths(hidden, "hidden"),
                           _widths(hidden2, "hidden2"), activation, likelihood,
                           check_float_dtype(dtype).name)


class HierarchicalVAE:
    """A VAE with two stochastic layers (Burda et al., 2016), hand-written gradients.

    Parameters
    ----------
    input_dim : int
    latent_dims : (int, int)
        Sizes of z1 (next to x) and z2 (top; prior N(0, I)).
    hidden, hidden2 : sequence of int
        Deterministic widths between x and z1, and between z1 and z2; the
        generative networks mirror them. The paper: (100, 100), (50, 50).
    activation : {"tanh", "relu", "sigmoid", "softplus", "identity"}
    dtype : {"float32", "float64"}
    rng : numpy.random.Generator or int, optional
        Initial weights (None is seed 0), and the default of methods that draw.
    init : {"auto", "he", "lecun"}
        As for `VAE`.

    Examples
    --------
    >>> model = HierarchicalVAE(4, (3, 2), hidden=(5,), hidden2=(4,), rng=0)
    >>> mu1, log_var1, mu2, log_var2 = model.encode_layers(np.full((6, 4), 0.5))
    >>> mu1.shape, mu2.shape, model.sample(2, rng=1).shape
    ((6, 3), (6, 2), (2, 4))
    """

    def __init__(self, input_dim: int, latent_dims=(100, 50), hidden=(100, 100),
                 hidden2=(50, 50), activation="tanh", likelihood="bernoulli",
                 dtype="float32", rng=None, init="auto"):
        self.config = make_hierarchy_config(input_dim, latent_dims, hidden, hidden2,
                                            activation, likelihood, dtype)
        if init not in INIT_SCHEMES:
            raise ValueError(f"init: expected one of {INIT_SCHEMES}, got {init!r}")
        self.rng = as_generator(rng)
        self.params: dict[str, Array] = init_params(self.config, self.rng, init)

    @classmethod
    def from_config(cls, config: dict, params: dict | None = None) -> "HierarchicalVAE":
        """Rebuild a model from `config.to_dict()` (and optional params)."""
        cfg = {k: v for k, v in config.items() if k != "model"}
        model = cls(**cfg, rng=0)
        if params is not None:
            model.params = {k: params[k] for k in model.config.param_shapes()}
        return model

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.config.dtype)

    def as_input(self, x, name="x") -> Array:
        return as_data(x, name, self.dtype, self.config.input_dim, unit_interval=True)

    def as_noise(self, eps, name="eps") -> Array:
        """`eps` = [eps1 | eps2] validated: shape (n, d_z1 + d_z2) (one
        sample) or (k, n, d_z1 + d_z2), returned as (k, n, d_z1 + d_z2)
        in the model's dtype."""
        return as_noise(eps, name, self.dtype, self.config.noise_dim)

    def check_beta(self, beta) -> float:
        beta = check_positive(beta, "beta", allow_zero=True)
        if beta != 1:
            raise ValueError(f"beta: the two-layer model trains the ELBO or IWAE bound "
                             f"itself; expected 1, got {beta}")
        return beta

    def loss_and_grads(self, x, eps, beta: float = 1.0,
                       objective: str = "elbo") -> tuple[float, dict]:
        """Batch-mean loss -bound(x) and its gradients.

        Parameters
        ----------
        x : ndarray, shape (n, input_dim), in [0, 1]
        eps : ndarray, shape (n, d_z1 + d_z2) or (k, n, d_z1 + d_z2)
            Standard-normal noise [eps1 | eps2] of z1 and z2; fixed noise
            makes the loss deterministic.
        beta : float
            Must be 1: the two-layer model's KL is not a separate term.
        objective : {"elbo", "iwae"}
            The mean of the k samples' log w, or log of their mean w.
        """
        if objective not in OBJECTIVES:
            raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
        x = self.as_input(x)
        eps = self.as_noise(eps)
        beta = self.check_beta(beta)
        if eps.shape[1] != x.shape[0]:
            raise ValueError(f"eps: expected {x.shape[0]} rows per sample like x's batch, "
                             f"got shape {eps.shape}")
        loss, _, grads = self.forward_backward(x, eps, beta, objective)
        return loss, grads

    def forward_backward(self, x: Array, eps: Array, beta: float = 1.0,
                         objective: str = "elbo") -> tuple[float, dict, dict]:
        """``(loss, terms, grads)`` of `loss_and_grads`, inputs trusted
        (as `as_input` and `as_noise` return them, or eps (n, noise_dim)
        for one sample); beta is 1."""
        eps = eps if eps.ndim == 3 else eps[None]
        loss, terms, cache = bound_loss_forward(self.params, x, eps, self.config, objective)
        return loss, terms, bound_loss_backward(cache)

    def log_weights(self, x: Array, eps: Array):
        """`hierarchy.log_weights_forward` on this model (inputs trusted)."""
        return log_weights_forward(self.params, x, eps, self.config)

    def log_weights_backward(self, dlog_w: Array, cache) -> dict:
        """`hierarchy.log_weights_backward`."""
        return log_weights_backward(dlog_w, cache)

    def prior_log_weights(self, x: Array, eps: Array) -> Array:
        """`hierarchy.prior_log_weights`: log p(x|z1) with (z1, z2) drawn
        from the generative model (inputs trusted)."""
        return prior_log_weights(self.params, x, eps, self.config)

    def check_density(self, what: str) -> None:
        """Both posteriors are Gaussian densities: nothing to refuse."""

    def encode(self, x) -> tuple[Array, Array]:
        """``(mu1, log_var1)`` of q(z1|x): the latent the decoder reads."""
        x = self.as_input(x)
        c = self.config
        mu1, log_var1, _ = gaussian_layer_forward(self.params, x, "q1", len(c.hidden),
                                                  c.activation)
        return mu1, log_var1

    def encode_layers(self, x) -> tuple[Array, Array, Array, Array]:
        """Per-layer posterior parameters ``(mu1, log_var1, mu2, log_var2)``:
        q(z1|x), and q(z2|z1) at z1 = mu1."""
        x = self.as_input(x)
        c = self.config
        mu1, log_var1, _ = gaussian_layer_forward(self.params, x, "q1", len(c.hidden),
                                                  c.activation)
        mu2, log_var2, _ = gaussian_layer_forward(self.params, mu1, "q2", len(c.hidden2),
                                                  c.activation)
        return mu1, log_var1, mu2, log_var2

    def posterior_means(self, x, rng=None, n_samples: int = 20) -> list[Array]:
        """``[E_q[z1|x], E_q[z2|x]]``: mu1(x), and the mean of mu2(z1) over
        `n_samples` draws z1 ~ q(z1|x) from `rng` (None: the model's)."""
        mu1, log_var1 = self.encode(x)
        rng = self.rng if rng is None else as_generator(rng)
        n_samples = check_int(n_samples, "n_samples", 1)
        eps = draw_eps(rng, (n_samples, *mu1.shape), self.dtype)
        mu1_k = np.broadcast_to(mu1, eps.shape)
        z1, _ = reparameterize_forward(mu1_k, np.broadcast_to(log_var1, eps.shape), eps)
        c = self.config
        mu2, _, _ = gaussian_layer_forward(self.params, z1, "q2", len(c.hidden2), c.activation)
        return [mu1, mu2.mean(axis=0, dtype=np.float64).astype(self.dtype)]

    def decode(self, z1) -> Array:
        """Mean of p(x|z1): the Bernoulli probabilities."""
        z1 = as_data(z1, "z1", self.dtype, self.config.latent_dims[0])
        return sigmoid(decoder_forward(self.params, z1, self.config)[0])

    def sample(self, n: int, rng=None) -> Array:
        """n decoded means of z2 ~ r(z2) = N(0, I), z1 ~ p(z1|z2)."""
        n = check_int(n, "n", 1)
        rng = self.rng if rng is None else as_generator(rng)
        c = self.config
        z2 = draw_eps(rng, (n, c.latent_dims[1]), self.dtype)
        mu, log_var, _ = gaussian_layer_forward(self.params, z2, "p1", len(c.hidden2),
                                                c.activation)
        z1, _ = reparameterize_forward(mu, log_var, draw_eps(rng, mu.shape, self.dtype))
        return self.decode(z1)

    def reconstruct(self, x, rng=None) -> Array:
        """decode(mu1(x)) when rng is None, else decode of a sampled z1."""
        mu1, log_var1 = self.encode(x)
        if rng is None:
            return self.decode(mu1)
        eps = draw_eps(as_generator(rng), mu1.shape, self.dtype)
        return self.decode(reparameterize_forward(mu1, log_var1, eps)[0])

    def elbo(self, x, rng=None) -> Array:
        """Per-example ELBO, mean log w of one sample (nats)."""
        terms = self.elbo_terms(x, rng)
        return terms["log_lik"] - terms["kl"]

    def elbo_terms(self, x, rng=None, k: int = 1, eps=None) -> dict[str, Array]:
        """Per-example ``log_lik``, ``kl`` (sampled), ``elbo`` and ``iwae``
        of k samples of (z1, z2): of `eps`, shape (n, noise_dim) or (k, n,
        noise_dim), when given (`rng` and `k` unused), else drawn from `rng`."""
        x = self.as_input(x)
        if eps is None:
            rng = self.rng if rng is None else as_generator(rng)
            k = check_int(k, "k", 1)
            eps = draw_eps(rng, (k, x.shape[0], self.config.noise_dim), self.dtype)
        else:
            eps = self.as_noise(eps)  # (k, n, noise_dim)
            if eps.shape[1] != x.shape[0]:
                raise ValueError(f"eps: expected {x.shape[0]} rows per sample like x's "
                                 f"batch, got shape {eps.shape}")
        return bound_loss_forward(self.params, x, eps, self.config)[1]

    def init_output_bias(self, x_train) -> None:
        """Start p(x|z1) at the data's mean: out.b = logit of the mean pixel
        (clipped to [1e-3, 1 - 1e-3]), as `VAE.init_output_bias`."""
        x = self.as_input(x_train, "x_train")
        m = np.clip(x.mean(axis=0, dtype=np.float64), 1e-3, 1.0 - 1e-3)
        self.params["out.b"][...] = (np.log(m) - np.log1p(-m)).astype(self.dtype)

    def __repr__(self) -> str:
        c = self.config
        return (f"HierarchicalVAE(input_dim={c.input_dim}, latent_dims={c.latent_dims}, "
                f"hidden={c.hidden}, hidden2={c.hidden2}, dtype={c.dtype!r})")
