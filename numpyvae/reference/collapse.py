"""Two objectives the notes study because their minimisers collapse.

* The prior-sampled bound (the notes' first lower bound): Jensen's
  inequality applied to the prior average gives
  log p(x) >= E_{z~r}[log p(x|z)]. Averaged over the data, x and z are
  drawn independently, so the best decoder mean is E[x] whatever z is:
  the decoder learns the data mean and nothing else.
* The KL term alone (the notes' KL-only extreme): minimising
  E_x[KL(q(z|x) || r)] sends the encoder's mean to 0 for every x, so
  q(z|x) = r and all information about x is compressed away.

Each is a loss with its hand-written gradient, built from the one-layer
model's pieces (numpyvae/reference/vae.py) and the kernels; the
experiments `prior-bound` and `kl-only` (numpyvae/app/) train them and
show the collapse.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .config import VAEConfig
from .kl import kl_backward, kl_fixed_backward, kl_fixed_forward, kl_forward
from .vae import (
    decoder_backward,
    decoder_forward,
    encoder_backward,
    encoder_forward,
    log_lik_backward,
    log_lik_forward,
)

Array = NDArray[np.floating]


def prior_bound_loss_and_grads(params: dict, x: Array, z: Array,
                               config: VAEConfig) -> tuple[float, dict]:
    """The notes' first, wrong bound as a loss, and its decoder gradients.

    Parameters
    ----------
    params : dict
        A model's parameters; only the decoder's are used.
    x : ndarray, shape (n, d_x)
    z : ndarray, shape (n, d_z)
        Draws of the prior r(z) = N(0, I), independent of x.
    config : VAEConfig

    Returns
    -------
    loss : float
        -mean_i log p(x_i|z_i).
    grads : dict
        Gradients of the decoder's parameters (``dec*``, ``out.*``).

    Notes
    -----
    Forward:   loss = -(1/n) sum_i log p(x_i | z_i),   z_i ~ r(z)
    Backward:  dlog_lik_i = -1/n, then through the log-likelihood and
               the decoder (`log_lik_backward`, `decoder_backward`).
    With a Gaussian decoder this is mean ||x - mu_theta(z)||^2 / (2
    sigma^2) plus a constant; as x and z are independent, the minimiser
    is mu_theta(z) = E[x] for every z.

    Examples
    --------
    >>> from numpyvae import VAE
    >>> from numpyvae.testing import assert_grad_close
    >>> model = VAE(2, 1, hidden=(3,), likelihood="gaussian", sigma=1.0,
    ...             dtype="float64", rng=0)
    >>> rng = np.random.default_rng(0)
    >>> x, z = rng.standard_normal((4, 2)), rng.standard_normal((4, 1))
    >>> loss, grads = prior_bound_loss_and_grads(model.params, x, z, model.config)
    >>> sorted(grads)
    ['dec0.W', 'dec0.b', 'out.W', 'out.b']
    >>> def loss_at(W):
    ...     params = dict(model.params, **{"out.W": W})
    ...     return prior_bound_loss_and_grads(params, x, z, model.config)[0]
    >>> assert_grad_close(loss_at, lambda W: grads["out.W"], model.params["out.W"])
    """
    n = x.shape[0]
    out, dec_cache = decoder_forward(params, z, config)
    log_lik, ll_cache = log_lik_forward(x, out, config)
    dout = log_lik_backward(np.full(n, -1.0 / n, dtype=x.dtype), ll_cache, config)
    grads: dict = {}
    decoder_backward(dout, dec_cache, config, grads)
    return -float(np.mean(log_lik, dtype=np.float64)), grads


def kl_loss_and_grads(params: dict, x: Array, config: VAEConfig) -> tuple[float, dict]:
    """The KL term alone as a loss, and its encoder gradients.

    Parameters
    ----------
    params : dict
        A model's parameters; only the encoder's are used.
    x : ndarray, shape (n, d_x)
    config : VAEConfig
        Diagonal posterior, or fixed with delta > 0.

    Returns
    -------
    loss : float
        mean_i KL(q(.|x_i) || r), nats.
    grads : dict
        Gradients of the encoder's parameters (``enc*``, ``mu.*``,
        ``log_var.*``).

    Notes
    -----
    Forward:   loss = (1/n) sum_i KL(q(.|x_i) || r); for the diagonal
               posterior KL = 0.5 sum_j (mu_j^2 + exp(log_var_j) - 1 -
               log_var_j), for the fixed one 0.5 ||mu||^2 + const.
    Backward:  dkl_i = 1/n, then `kl_backward` (or `kl_fixed_backward`)
               and `encoder_backward`. The only minimiser is mu = 0 (and
               log_var = 0) for every x: q(.|x) = r, maximal compression.

    Examples
    --------
    >>> from numpyvae import VAE
    >>> from numpyvae.testing import assert_grad_close
    >>> model = VAE(3, 2, hidden=(), dtype="float64", rng=0)
    >>> x = np.random.default_rng(0).random((4, 3))
    >>> loss, grads = kl_loss_and_grads(model.params, x, model.config)
    >>> sorted(grads)
    ['log_var.W', 'log_var.b', 'mu.W', 'mu.b']
    >>> def loss_at(W):
    ...     params = dict(model.params, **{"mu.W": W})
    ...     return kl_loss_and_grads(params, x, model.config)[0]
    >>> assert_grad_close(loss_at, lambda W: grads["mu.W"], model.params["mu.W"])
    """
    n = x.shape[0]
    mu, log_var, enc_cache = encoder_forward(params, x, config)
    dkl = np.full(n, 1.0 / n, dtype=x.dtype)
    if config.posterior == "diagonal":
        kl, kl_cache = kl_forward(mu, log_var)
        dmu, dlog_var = kl_backward(dkl, kl_cache)
    else:
        kl, kl_fixed_cache = kl_fixed_forward(mu, config.fixed_delta)
        dmu, dlog_var = kl_fixed_backward(dkl, kl_fixed_cache), None
    grads: dict = {}
    encoder_backward(dmu, dlog_var, enc_cache, config, grads)
    return float(np.mean(kl, dtype=np.float64)), grads
