"""The model protocol: what training, evaluation, checkpoints and the CLI
may ask of a model.

`VAE` (one stochastic layer) and `HierarchicalVAE` (two) both satisfy
it, and every verb reaches a model through it alone, never through its
class. The seam is the per-sample log-weights

    log w = log p(x, z) - log q(z|x),   shape (k, n),

for k samples of the noise eps (shape (k, n, noise_dim)) per example:
every bound is a head over them (iwae.py) and every estimator of
log p(x) streams them (estimators.py). A new model is one log-weights
forward and backward, and everything else works for it.

Two kinds of method. The public ones (`as_input`, `loss_and_grads`,
`encode`, `decode`, `sample`, `reconstruct`, `elbo`) validate what they
are given. `log_weights`, `log_weights_backward`, `prior_log_weights`
and `forward_backward` are the reference functions on the model's own
parameters: they trust arrays that `as_input` and `as_noise` returned,
so that a caller validating a data set once (the Trainer, the
estimators) does not pay for it again at every step.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]


@runtime_checkable
class Model(Protocol):
    """A latent-variable model with hand-written gradients.

    Attributes
    ----------
    config
        Frozen architecture: ``input_dim``, ``latent_dim`` (the size of
        the latent the decoder reads), ``noise_dim`` (one sample's
        eps), ``dtype``, ``param_shapes()`` and ``to_dict()`` (JSON,
        what `from_config` rebuilds).
    params : dict of name -> ndarray
    rng : numpy.random.Generator
        The default generator of methods that draw.
    """

    config: Any
    params: dict[str, Array]
    rng: np.random.Generator

    @property
    def dtype(self) -> np.dtype: ...

    def as_input(self, x, name: str = "x") -> Array:
        """x validated and converted once to the model's dtype, (n, input_dim)."""

    def as_noise(self, eps, name: str = "eps") -> Array:
        """eps validated, as (k, n, noise_dim) ((n, noise_dim) is k = 1)."""

    def check_beta(self, beta) -> float:
        """The KL weight this model can train with."""

    def check_density(self, what: str) -> None:
        """Raise ValueError (naming `what`) unless q(z|x) is a density."""

    def log_weights(self, x: Array, eps: Array) -> tuple[Array, dict, Any]:
        """``(log_w (k, n), terms, cache)`` of the reference log-weights."""

    def log_weights_backward(self, dlog_w: Array, cache) -> dict[str, Array]:
        """Gradients of sum(dlog_w * log_w) wrt every parameter."""

    def prior_log_weights(self, x: Array, eps: Array) -> Array:
        """log p(x|z) (k, n) for z drawn from the generative model by eps."""

    def forward_backward(self, x: Array, eps: Array, beta: float,
                         objective: str) -> tuple[float, dict, dict[str, Array]]:
        """``(loss, terms, grads)`` of the reference training loss."""

    def loss_and_grads(self, x, eps, beta: float = 1.0,
                       objective: str = "elbo") -> tuple[float, dict[str, Array]]:
        """Validated `forward_backward`: the loss and its gradients."""

    def encode(self, x) -> tuple[Array, Array]:
        """``(mu, log_var)`` of q over the latent the decoder reads."""

    def posterior_means(self, x, rng: np.random.Generator,
                        n_samples: int) -> list[Array]:
        """E_q[z_l | x] (n, d_l) for each stochastic layer l (active units)."""

    def decode(self, z) -> Array:
        """The mean of p(x|z)."""

    def sample(self, n: int, rng=None) -> Array:
        """n decoded draws of the generative model."""

    def reconstruct(self, x, rng=None) -> Array:
        """decode(mu(x)), or of a sampled z given `rng`."""

    def elbo(self, x, rng=None) -> Array:
        """The per-example ELBO of one sample."""

    def elbo_terms(self, x, rng=None, *, eps=None) -> dict[str, Array]:
        """Per-example ``log_lik`` and ``kl`` of that sample (elbo = their
        difference): of `eps` (n, noise_dim) when given (by keyword: the
        two-layer model takes k before it), else drawn from `rng`."""

    def init_output_bias(self, x_train) -> None:
        """Start the decoder at the data's mean."""

    @classmethod
    def from_config(cls, config: dict, params: dict | None = None) -> Model:
        """A model of this class rebuilt from ``config.to_dict()`` (and `params`)."""
