"""The user-facing VAE: a configuration, its parameters, and methods that
call the pure functions of `model.py`.

Encoder lambda_phi(x) -> q_phi(z|x) = N(mu, diag(exp(log_var))) (or the
notes' N(lambda(x), delta^2 I)); prior r(z) = N(0, I); decoder
mu_theta(z) -> p_theta(x|z), Bernoulli from logits or Gaussian with a
fixed sigma.

`VAE` satisfies the model protocol (protocol.py), as `HierarchicalVAE`
does: training, evaluation, checkpoints and the CLI use only that.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ._validation import as_data, as_noise, check_float_dtype, check_int
from .reference.activations import ACTIVATIONS, sigmoid
from .reference.arrays import check_positive, describe
from .reference.bounds import OBJECTIVES
from .reference.config import INIT_SCHEMES, VAEConfig, init_params
from .reference.sampling import draw_eps, reparameterize_fixed_forward, reparameterize_forward
from .reference.vae import (
    bound_loss_backward,
    bound_loss_forward,
    decoder_forward,
    encoder_forward,
    log_weights_backward,
    log_weights_forward,
    loss_backward,
    loss_forward,
    posterior_log_var,
    prior_log_weights,
)

Array = NDArray[np.floating]

LIKELIHOODS = ("bernoulli", "gaussian")
POSTERIORS = ("diagonal", "fixed")


def as_generator(rng, name: str = "rng") -> np.random.Generator:
    """A numpy Generator from a Generator, an int seed, or None (seed 0).

    Examples
    --------
    >>> rng = as_generator(7)
    >>> isinstance(rng, np.random.Generator)
    True
    >>> as_generator(rng) is rng
    True
    >>> float(as_generator(None).random()) == float(np.random.default_rng(0).random())
    True
    """
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise TypeError(f"{name}: expected a numpy.random.Generator or a non-negative int seed, "
                    f"got {describe(rng)}")


def _check_objective(objective: str, beta: float, eps_ndim: int) -> None:
    """The one-layer objectives: "elbo" with one sample of eps (n, d_z),
    "iwae" with beta 1 and k samples (k, n, d_z)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
    if objective == "elbo" and eps_ndim != 2:
        raise ValueError("eps: the 'elbo' objective (analytic KL) takes one sample, shape "
                         "(n, latent_dim); use objective='iwae' for k samples")
    if objective == "iwae" and beta != 1:
        raise ValueError(f"beta: the 'iwae' objective has no KL weight; expected 1, got {beta}")


def make_config(input_dim, latent_dim, hidden=(400,), activation="relu",
                likelihood="bernoulli", sigma=None, posterior="diagonal", delta=None,
                dtype="float32") -> VAEConfig:
    """Validate the constructor's arguments into a `VAEConfig`.

    Examples
    --------
    >>> config = make_config(784, 2, hidden=(16,), likelihood="gaussian")
    >>> config.latent_dim, config.hidden, config.sigma, config.dtype
    (2, (16,), 1.0, 'float32')
    """
    input_dim = check_int(input_dim, "input_dim", 1)
    latent_dim = check_int(latent_dim, "latent_dim", 1)
    if isinstance(hidden, (int, np.integer)):
        raise TypeError(f"hidden: expected a sequence of layer widths such as (400,), got {hidden}")
    hidden = tuple(check_int(h, "hidden", 1) for h in hidden)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
    if likelihood == "bernoulli":
        if sigma is not None:
            raise ValueError("sigma: only used with likelihood='gaussian'; leave it None")
    elif likelihood == "gaussian":
        sigma = 1.0 if sigma is None else check_positive(sigma, "sigma")
    else:
        raise ValueError(f"likelihood: expected one of {LIKELIHOODS}, got {likelihood!r}")
    if posterior == "diagonal":
        if delta is not None:
            raise ValueError("delta: only used with posterior='fixed'; leave it None")
    elif posterior == "fixed":
        delta = 1.0 if delta is None else check_positive(delta, "delta", allow_zero=True)
    else:
        raise ValueError(f"posterior: expected one of {POSTERIORS}, got {posterior!r}")
    dt = check_float_dtype(dtype)
    return VAEConfig(input_dim, latent_dim, hidden, activation, likelihood, sigma,
                     posterior, delta, dt.name)


class VAE:
    """A variational autoencoder with hand-written gradients.

    Parameters
    ----------
    input_dim : int
        d_x, the length of one (flattened) example.
    latent_dim : int
        d_z, the size of the latent z.
    hidden : sequence of int
        Hidden widths of the encoder; the decoder mirrors them. ``()``
        gives a linear encoder and decoder.
    activation : {"relu", "tanh", "sigmoid", "softplus", "identity"}
    likelihood : {"bernoulli", "gaussian"}
        Bernoulli: the decoder outputs logits and data must lie in
        [0, 1]. Gaussian: the decoder outputs the mean of N(mean,
        sigma^2 I).
    sigma : float, optional
        The Gaussian decoder's fixed standard deviation (default 1.0).
    posterior : {"diagonal", "fixed"}
        "diagonal": q = N(mu, diag(exp(log_var))), two encoder heads.
        "fixed": q = N(lambda(x), delta^2 I), only the mean head.
    delta : float, optional
        The fixed posterior's standard deviation (default 1.0). delta = 0
        is the deterministic autoencoder; its KL is infinite, so it needs
        beta = 0.
    dtype : {"float32", "float64"}
        float32 trains fast; float64 is for gradient checks.
    rng : numpy.random.Generator or int, optional
        Source of the initial weights (an int is a seed; None is seed 0).
        Also the default generator of methods that draw.
    init : {"auto", "he", "lecun"}
        Weight initialisation (`model_config.layer_scheme`): "auto" (the
        default: U(+-1/sqrt(d_in)), PyTorch's nn.Linear scale, for a relu
        network, Glorot for the others), "he" (He before a relu, Glorot
        elsewhere) or "lecun" (U(+-1/sqrt(d_in)) everywhere).

    Examples
    --------
    >>> model = VAE(4, 2, hidden=(8,), rng=0)
    >>> x = np.full((3, 4), 0.5, dtype=np.float32)
    >>> mu, log_var = model.encode(x)
    >>> mu.shape, mu.dtype
    ((3, 2), dtype('float32'))
    """

    def __init__(self, input_dim: int, latent_dim: int, hidden=(400,), activation="relu",
                 likelihood="bernoulli", sigma=None, posterior="diagonal", delta=None,
                 dtype="float32", rng=None, init="auto"):
        self.config = make_config(input_dim, latent_dim, hidden, activation, likelihood,
                                  sigma, posterior, delta, dtype)
        if init not in INIT_SCHEMES:
            raise ValueError(f"init: expected one of {INIT_SCHEMES}, got {init!r}")
        self.rng = as_generator(rng)
        self.params: dict[str, Array] = init_params(self.config, self.rng, init)

    @classmethod
    def from_config(cls, config: dict, params: dict | None = None) -> "VAE":
        """Rebuild a model from `config.to_dict()` (and optional params)."""
        cfg = dict(config)
        model = cls(**cfg, rng=0)
        if params is not None:
            model.params = {k: params[k] for k in model.config.param_shapes()}
        return model

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.config.dtype)

    def as_input(self, x, name="x") -> Array:
        """`x` validated for this model: a real float array of shape
        (n, input_dim), finite, in [0, 1] for a Bernoulli decoder,
        converted once to the model's dtype. Errors name `name`.

        Examples
        --------
        >>> VAE(3, 2, hidden=(), rng=0).as_input([[0.0, 0.5, 1.0]]).dtype
        dtype('float32')
        """
        return as_data(x, name, self.dtype, self.config.input_dim,
                       unit_interval=self.config.likelihood == "bernoulli")

    def as_latent(self, z, name="z") -> Array:
        """`z` (or eps) validated like `as_input`, shape (n, latent_dim)."""
        return as_data(z, name, self.dtype, self.config.latent_dim)

    def check_beta(self, beta) -> float:
        """beta as a float >= 0; refused (ValueError) when positive for a
        delta = 0 posterior, whose KL is infinite."""
        beta = check_positive(beta, "beta", allow_zero=True)
        if beta > 0 and self.config.posterior == "fixed" and self.config.delta == 0:
            raise ValueError("beta: the KL of a delta=0 (point-mass) posterior is infinite; "
                             "use beta=0 with delta=0, or a delta > 0")
        return beta

    def as_noise(self, eps, name="eps") -> Array:
        """`eps` validated like `as_input`: shape (n, latent_dim) (one
        sample), or (k, n, latent_dim) for k samples per example; returned
        as (k, n, latent_dim) in the model's dtype."""
        return as_noise(eps, name, self.dtype, self.config.noise_dim)

    def loss_and_grads(self, x, eps, beta: float = 1.0,
                       objective: str = "elbo") -> tuple[float, dict]:
        """Batch-mean loss and its gradients.

        Parameters
        ----------
        x : ndarray, shape (n, input_dim)
        eps : ndarray, shape (n, latent_dim), or (k, n, latent_dim) for
            the "iwae" objective
            Standard-normal noise; z = mu + std * eps. Fixed eps makes
            the loss deterministic.
        beta : float
            KL weight, >= 0 ("elbo" only).
        objective : {"elbo", "iwae"}
            "elbo": -log p(x|z) + beta * KL with the analytic KL
            (`model.loss_forward`). "iwae": -L_k, the IWAE bound of the k
            samples (`model.bound_loss_forward`).

        Returns
        -------
        loss : float
            Nats per example.
        grads : dict
            Same keys, shapes and dtypes as `params`.
        """
        x = self.as_input(x)
        ndim = np.ndim(eps)
        eps = self.as_noise(eps)  # (k, n, d_z)
        beta = self.check_beta(beta)
        _check_objective(objective, beta, ndim)
        if eps.shape[1] != x.shape[0]:
            raise ValueError(f"eps: expected {x.shape[0]} rows per sample like x's batch, "
                             f"got shape {eps.shape}")
        if objective == "iwae":
            self.check_density("the IWAE objective")
        else:
            eps = eps[0]  # one sample, (n, d_z): the analytic-KL loss
        loss, _, grads = self.forward_backward(x, eps, beta, objective)
        return loss, grads

    def forward_backward(self, x: Array, eps: Array, beta: float = 1.0,
                         objective: str = "elbo") -> tuple[float, dict, dict]:
        """``(loss, terms, grads)`` of `loss_and_grads`, inputs trusted.

        x and eps as `as_input` and `as_noise` return them (not checked
        again): the reference step that `Trainer(fast=False)` runs.
        """
        if objective == "iwae":
            loss, terms, cache = bound_loss_forward(self.params, x, eps, self.config, "iwae")
            return loss, terms, bound_loss_backward(cache)
        loss, terms, cache = loss_forward(self.params, x, eps, self.config, beta)
        return loss, terms, loss_backward(cache)

    def log_weights(self, x: Array, eps: Array):
        """`model.log_weights_forward` on this model: log w (k, n), terms
        and cache, for eps (k, n, latent_dim). Inputs trusted, as for
        `forward_backward`; the posterior needs a density (delta > 0)."""
        return log_weights_forward(self.params, x, eps, self.config)

    def log_weights_backward(self, dlog_w: Array, cache) -> dict:
        """`model.log_weights_backward`: gradients of sum(dlog_w * log w)."""
        return log_weights_backward(dlog_w, cache)

    def prior_log_weights(self, x: Array, eps: Array) -> Array:
        """`model.prior_log_weights`: log p(x|z) (k, n) at z = eps ~ r(z)."""
        return prior_log_weights(self.params, x, eps, self.config)

    def check_density(self, what: str) -> None:
        """q(z|x) must be a density: a fixed posterior needs delta > 0."""
        if self.config.posterior == "fixed" and self.config.delta == 0:
            raise ValueError(f"model: {what} needs the density q(z|x), but this model's "
                             "posterior has delta=0 (a point mass); use a model with delta > 0")

    def encode(self, x) -> tuple[Array, Array]:
        """Parameters of q(z|x): ``(mu, log_var)``, each (n, latent_dim).

        For the fixed posterior, log_var is log(delta^2) everywhere
        (-inf for delta = 0).
        """
        x = self.as_input(x)
        mu, log_var, _ = encoder_forward(self.params, x, self.config)
        if log_var is None and self.config.delta == 0:
            return mu, np.full_like(mu, -np.inf)
        return mu, posterior_log_var(mu, log_var, self.config)

    def posterior_means(self, x, rng=None, n_samples: int = 1) -> list[Array]:
        """``[mu(x)]``: E_q[z|x] of the one stochastic layer (`rng` and
        `n_samples` unused; the mean is exact)."""
        return [self.encode(x)[0]]

    def decode(self, z) -> Array:
        """Mean of p(x|z): probabilities (Bernoulli) or the Gaussian mean."""
        z = self.as_latent(z)
        out, _ = decoder_forward(self.params, z, self.config)
        return sigmoid(out) if self.config.likelihood == "bernoulli" else out

    def _sample_z(self, x: Array, rng: np.random.Generator) -> Array:
        """One z ~ q(z|x) per example (the sampling kernels)."""
        mu, log_var = self.encode(x)
        eps = draw_eps(rng, mu.shape, self.dtype)
        if self.config.posterior == "fixed":
            return reparameterize_fixed_forward(mu, self.config.fixed_delta, eps)[0]
        return reparameterize_forward(mu, log_var, eps)[0]

    def reconstruct(self, x, rng=None) -> Array:
        """decode(mu(x)) when rng is None, else decode of a sampled z."""
        x = self.as_input(x)
        if rng is None:
            return self.decode(self.encode(x)[0])
        return self.decode(self._sample_z(x, as_generator(rng)))

    def sample(self, n: int, rng=None) -> Array:
        """n decoded means of z ~ r(z) = N(0, I)."""
        n = check_int(n, "n", 1)
        rng = self.rng if rng is None else as_generator(rng)
        z = draw_eps(rng, (n, self.config.latent_dim), self.dtype)
        return self.decode(z)

    def elbo(self, x, rng=None) -> Array:
        """Per-example ELBO log p(x|z) - KL with one reparameterized z (nats).

        The KL is analytic; the reconstruction term uses one sample.
        """
        terms = self.elbo_terms(x, rng)
        return terms["log_lik"] - terms["kl"]

    def elbo_terms(self, x, rng=None, eps=None) -> dict[str, Array]:
        """Per-example ``log_lik`` and ``kl`` of one reparameterized sample:
        of `eps`, shape (n, latent_dim), when given (`rng` unused), else
        of noise drawn from `rng`."""
        x = self.as_input(x)
        if eps is None:
            rng = self.rng if rng is None else as_generator(rng)
            eps = draw_eps(rng, (x.shape[0], self.config.latent_dim), self.dtype)
        else:
            shape = np.shape(eps)
            eps = self.as_noise(eps)  # (k, n, d_z)
            if eps.shape[:2] != (1, x.shape[0]):
                raise ValueError(f"eps: expected one sample per row of x, shape "
                                 f"({x.shape[0]}, {self.config.latent_dim}), got {shape}")
            eps = eps[0]
        _, terms, _ = loss_forward(self.params, x, eps, self.config, 0.0)
        return terms

    def init_output_bias(self, x_train) -> None:
        """Start the decoder at the data's mean: out.b = the mean pixel.

        For a Bernoulli decoder the bias is logit(m) with m the training
        mean of each pixel, clipped to [1e-3, 1 - 1e-3] (a pixel that is
        always 0 would need an infinite logit); for a Gaussian decoder it
        is m itself. The untrained decoder then already outputs the
        mean-pixel baseline instead of probabilities near 1/2.
        """
        x = self.as_input(x_train, "x_train")
        m = x.mean(axis=0, dtype=np.float64)
        if self.config.likelihood == "bernoulli":
            m = np.clip(m, 1e-3, 1.0 - 1e-3)
            m = np.log(m) - np.log1p(-m)
        self.params["out.b"][...] = m.astype(self.dtype)

    def __repr__(self) -> str:
        c = self.config
        return (f"VAE(input_dim={c.input_dim}, latent_dim={c.latent_dim}, hidden={c.hidden}, "
                f"likelihood={c.likelihood!r}, posterior={c.posterior!r}, dtype={c.dtype!r})")
