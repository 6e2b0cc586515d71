"""The user-facing two-stochastic-layer VAE: a configuration, its
parameters, and methods that call the pure functions of `hierarchy.py`.

The sibling of `VAE` with the same methods where they make sense, so it
trains (`fit`, `Trainer`), saves and loads (`save`, `load`), evaluates
(`evaluation.evaluate_model`) and samples through the same entry points.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ._validation import as_data, check_float_dtype, check_int, check_positive
from .activations import ACTIVATIONS, sigmoid
from .hierarchy import (OBJECTIVES, HierarchyConfig, decoder_forward, gaussian_layer_forward,
                        init_params, loss_backward, loss_forward)
from .model import INIT_SCHEMES
from .sampling import draw_eps
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
    >>> mu1, log_var1, mu2, log_var2 = model.encode(np.full((6, 4), 0.5))
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

    def _eps(self, eps, name: str, n: int, d: int) -> Array:
        """Noise of shape (n, d) (one sample) or (k, n, d), as (k, n, d)."""
        shape = np.shape(eps)
        shape = (1, *shape) if len(shape) == 2 else shape
        if len(shape) != 3 or shape[1:] != (n, d) or shape[0] < 1:
            raise ValueError(f"{name}: expected shape ({n}, {d}) or (k, {n}, {d}), "
                             f"got {np.shape(eps)}")
        if not isinstance(eps, np.ndarray):
            raise TypeError(f"{name}: expected a numpy array, got {type(eps).__name__}")
        return as_data(eps.reshape(-1, d), name, self.dtype).reshape(shape)

    def check_beta(self, beta) -> float:
        beta = check_positive(beta, "beta", allow_zero=True)
        if beta != 1:
            raise ValueError(f"beta: the two-layer model trains the ELBO or IWAE bound "
                             f"itself; expected 1, got {beta}")
        return beta

    def loss_and_grads(self, x, eps1, eps2, objective: str = "elbo") -> tuple[float, dict]:
        """Batch-mean loss -bound(x) and its gradients.

        Parameters
        ----------
        x : ndarray, shape (n, input_dim), in [0, 1]
        eps1, eps2 : ndarray, shapes (n, d_z1), (n, d_z2) or (k, n, .)
            Standard-normal noise of z1 and z2; fixed noise makes the
            loss deterministic.
        objective : {"elbo", "iwae"}
            The mean of the k samples' log w, or log of their mean w.
        """
        if objective not in OBJECTIVES:
            raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
        x = self.as_input(x)
        d1, d2 = self.config.latent_dims
        eps1 = self._eps(eps1, "eps1", x.shape[0], d1)
        eps2 = self._eps(eps2, "eps2", x.shape[0], d2)
        loss, _, cache = loss_forward(self.params, x, eps1, eps2, self.config, objective)
        return loss, loss_backward(cache)

    def encode(self, x) -> tuple[Array, Array, Array, Array]:
        """Per-layer posterior parameters ``(mu1, log_var1, mu2, log_var2)``:
        q(z1|x), and q(z2|z1) at z1 = mu1."""
        x = self.as_input(x)
        c = self.config
        mu1, log_var1, _ = gaussian_layer_forward(self.params, x, "q1", len(c.hidden),
                                                  c.activation)
        mu2, log_var2, _ = gaussian_layer_forward(self.params, mu1, "q2", len(c.hidden2),
                                                  c.activation)
        return mu1, log_var1, mu2, log_var2

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
        z1 = mu + np.exp(0.5 * log_var) * draw_eps(rng, mu.shape, self.dtype)
        return self.decode(z1)

    def reconstruct(self, x, rng=None) -> Array:
        """decode(mu1(x)) when rng is None, else decode of a sampled z1."""
        mu1, log_var1 = self.encode(x)[:2]
        if rng is None:
            return self.decode(mu1)
        eps = draw_eps(as_generator(rng), mu1.shape, self.dtype)
        return self.decode(mu1 + np.exp(0.5 * log_var1) * eps)

    def elbo(self, x, rng=None) -> Array:
        """Per-example ELBO, mean log w of one sample (nats)."""
        terms = self.elbo_terms(x, rng)
        return terms["log_lik"] - terms["kl"]

    def elbo_terms(self, x, rng=None, k: int = 1) -> dict[str, Array]:
        """Per-example ``log_lik``, ``kl`` (sampled), ``elbo`` and ``iwae``
        of k samples of (z1, z2)."""
        x = self.as_input(x)
        rng = self.rng if rng is None else as_generator(rng)
        k, (d1, d2) = check_int(k, "k", 1), self.config.latent_dims
        eps1 = draw_eps(rng, (k, x.shape[0], d1), self.dtype)
        eps2 = draw_eps(rng, (k, x.shape[0], d2), self.dtype)
        return loss_forward(self.params, x, eps1, eps2, self.config)[1]

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
