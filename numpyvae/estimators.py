"""Estimators of log p_theta(x), for any model, from its log-weights.

The notes write p_theta(x) = E_{z~r}[p_theta(x|z)], an integral with no
closed form; these functions estimate its logarithm. Every sampled
estimator is one streaming loop, `log_mean_weight`, over the model's
per-sample log-weights (the model protocol's `log_weights`, or
`prior_log_weights` for z drawn from the generative model): it draws
the noise a chunk of samples at a time, scores blocks of (samples x
examples), and keeps a running logsumexp per example (the IWAE head of
iwae.py, computed a chunk at a time) or a running sum (the sampled
ELBO), so tiny likelihoods (MNIST's are near exp(-100)) never underflow
and the memory stays bounded whatever k and n are.

* `naive_log_likelihood`: the notes' plain Monte-Carlo average over z
  drawn from the prior, under a log; biased low by Jensen's inequality.
* `elbo`: the notes' lower bound, reconstruction minus the analytic KL.
* `iwae_bound`: the notes' importance-sampling identity, averaged over k
  draws of q(z|x) before the log; k = 1 is the ELBO, k -> infinity
  approaches log p(x) (Burda, Grosse and Salakhutdinov, 2016).
* `exact_log_likelihood`: the closed form of the linear-Gaussian VAE,
  the yardstick the others are tested against.

Speed. With ``fast=False`` the loop runs the reference log-weights,
as the notes write them. With ``fast=True`` (the default) the one-layer
model's IWAE and prior estimates run the same sum rearranged for speed
(fused_eval.py; for the MNIST 784-400-20 model about four times as
fast), held equal to ``fast=False`` by tests/fast/test_fused_eval.py for
every configuration; other models and the sampled ELBO always run the
reference.

Memory. Both forms keep a running sum per example in float64 and work
on a block of rows at a time, so the memory in use is bounded by
`MEMORY_BUDGET`. In the reference one row (one sample for one example)
costs at most ``itemsize * (8 d_x + 4 sum(d_out) + 4 noise_dim)`` bytes,
d_out running over every dense layer of the model: the decoder output
and up to five temporaries of the log-likelihood, and per layer its
output, activation and cache; the noise of one chunk of samples for all
n examples, (chunk, n, noise_dim), gets a quarter of the budget and the
rows the rest (`chunk_plan`). The fast form needs less: blocks of at
most `fused_eval.BLOCK_ROWS` rows and noise chunks of at most
`fused_eval.NOISE_VALUES` normals (`fused_eval.block_plan`).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.special import logsumexp

from ._validation import check_int
from .fast import fused_eval
from .protocol import Model
from .reference.linear_gaussian import log_marginal
from .vae import VAE, as_generator  # noqa: F401  (VAE: the doctests' model)

Array = NDArray[np.floating]

MEMORY_BUDGET = 256 * 2**20  # bytes for one estimator call's working arrays


def log_mean_exp(a: Array, axis: int = 0) -> Array:
    """log((1/m) sum_i exp(a_i)) along `axis`, without overflow.

    Notes
    -----
    log_mean_exp(a) = logsumexp(a) - log(m), and logsumexp subtracts the
    maximum before exponentiating. Float input keeps its dtype; integer
    or boolean input is computed in float64.

    Raises
    ------
    TypeError
        For complex or non-numeric input.

    Examples
    --------
    >>> float(log_mean_exp(np.array([-1000.0, -1000.0])))
    -1000.0
    >>> float(log_mean_exp([1, 3]))  # log((e + e^3) / 2), not truncated
    2.433780830483027
    """
    a = np.asarray(a)
    if a.dtype.kind in "iub":
        a = a.astype(np.float64)
    elif a.dtype.kind != "f":
        raise TypeError(f"a: expected real numbers, got an array of dtype {a.dtype}")
    m = a.shape[axis]
    if m == 0:
        raise ValueError(f"a: expected at least one entry along axis {axis}, got shape {a.shape}")
    out = logsumexp(a, axis=axis) - np.log(a.dtype.type(m))
    return out.astype(a.dtype, copy=False)


def _check_model(model) -> Model:
    if not isinstance(model, Model):  # the protocol, not a class
        raise TypeError(f"model: expected a numpyvae model (VAE or HierarchicalVAE), got "
                        f"{type(model).__name__}")
    return model


def _optional_size(value, name: str) -> int | None:
    return None if value is None else check_int(value, name, 1)


def chunk_plan(model: Model, n: int, k: int, chunk_size: int | None = None,
               batch_size: int | None = None) -> tuple[int, int]:
    """Samples and examples per block: ``(chunk_size, batch_size)``.

    Sizes left as None are chosen so the block fits `MEMORY_BUDGET` (see
    the module docstring for the per-row cost); given sizes are kept
    (capped at k and n).

    Examples
    --------
    >>> chunk_plan(VAE(784, 20, hidden=(400,)), n=10_000, k=5000)
    (83, 47)
    """
    c = model.config
    itemsize = np.dtype(c.dtype).itemsize
    widths = sum(d_out for _, d_out in c.layer_shapes().values())
    row_bytes = itemsize * (8 * c.input_dim + 4 * widths + 4 * c.noise_dim)
    rows = max(1, (MEMORY_BUDGET - MEMORY_BUDGET // 4) // row_bytes)
    if chunk_size is None:
        eps_cap = (MEMORY_BUDGET // 4) // (itemsize * n * c.noise_dim)
        chunk_size = max(1, min(eps_cap, rows))
    chunk_size = min(chunk_size, k)
    if batch_size is None:
        batch_size = max(1, rows // chunk_size)
    return chunk_size, min(batch_size, n)


def block_log_weights(model: Model, x: Array, eps: Array, proposal: str) -> Array:
    """The model's log w for a block: x (b, d_x), eps (s, b, noise_dim)
    -> (s, b), float64.

    "posterior": z ~ q(z|x),  log w = log p(x, z) - log q(z|x)
                 (`model.log_weights`)
    "prior":     z ~ the generative model, log w = log p(x|z)
                 (`model.prior_log_weights`)
    """
    if proposal == "prior":
        return model.prior_log_weights(x, eps).astype(np.float64)
    return model.log_weights(x, eps)[0].astype(np.float64)


def log_mean_weight(model: Model, x, k: int, rng, proposal: str = "posterior",
                    bound: str = "iwae", chunk_size: int | None = None,
                    batch_size: int | None = None, fast: bool = True) -> Array:
    """The one streaming estimator: a bound head over k log-weights each.

    Parameters
    ----------
    model : VAE or HierarchicalVAE (any model of the protocol)
    x : ndarray, shape (n, d_x)
        Converted once to the model's dtype.
    k : int
        Samples per example, >= 1.
    rng : numpy.random.Generator or int
        The noise is drawn as (chunk, n, noise_dim) arrays, sample-major,
        so the stream -- and the result, up to rounding -- does not depend
        on `chunk_size`, `batch_size` or `fast`.
    proposal : {"posterior", "prior"}
        Where z comes from (`block_log_weights`).
    bound : {"iwae", "elbo"}
        "iwae": log (1/k) sum_i w_i; "elbo": (1/k) sum_i log w_i.
    chunk_size, batch_size : int, optional
        Samples per noise draw, examples per block (`chunk_plan`).
    fast : bool
        Run fused_eval.py where it applies (the one-layer model's "iwae"
        bound); False runs the reference loop below.

    Returns
    -------
    ndarray, shape (n,), in the model's dtype (the sums are float64).

    Examples
    --------
    >>> model = VAE(3, 2, hidden=(4,), dtype="float64")
    >>> x = np.full((4, 3), 0.5)
    >>> fast = log_mean_weight(model, x, 30, np.random.default_rng(0))
    >>> ref = log_mean_weight(model, x, 30, np.random.default_rng(0), fast=False)
    >>> bool(np.allclose(fast, ref))
    True
    """
    model = _check_model(model)
    x = model.as_input(x)
    k, rng = check_int(k, "k", 1), as_generator(rng)
    if proposal not in ("posterior", "prior"):
        raise ValueError(f"proposal: expected 'posterior' or 'prior', got {proposal!r}")
    if bound not in ("iwae", "elbo"):
        raise ValueError(f"bound: expected 'iwae' or 'elbo', got {bound!r}")
    if proposal == "posterior":
        model.check_density(f"the {bound} estimate")
    chunk_size = _optional_size(chunk_size, "chunk_size")
    batch_size = _optional_size(batch_size, "batch_size")
    if fast and bound == "iwae" and fused_eval.supports(model.config):
        return fused_eval.log_mean_weight(model, x, k, rng, proposal, MEMORY_BUDGET,
                                          chunk_size, batch_size)
    n = x.shape[0]
    chunk_size, batch_size = chunk_plan(model, n, k, chunk_size, batch_size)
    total = np.full(n, -np.inf if bound == "iwae" else 0.0)  # float64
    for start in range(0, k, chunk_size):
        s = min(chunk_size, k - start)
        eps = rng.standard_normal((s, n, model.config.noise_dim), dtype=model.dtype)
        for lo in range(0, n, batch_size):
            hi = min(lo + batch_size, n)
            log_w = block_log_weights(model, x[lo:hi], eps[:, lo:hi], proposal)  # (s, b)
            if bound == "iwae":  # log sum_i w_i, a chunk at a time
                total[lo:hi] = np.logaddexp(total[lo:hi], logsumexp(log_w, axis=0))
            else:                # sum_i log w_i
                total[lo:hi] += log_w.sum(axis=0)
    estimate = total - math.log(k) if bound == "iwae" else total / k
    return estimate.astype(model.dtype)


def naive_log_likelihood(model: Model, x, m: int, rng, chunk_size: int | None = None,
                         batch_size: int | None = None, fast: bool = True) -> Array:
    """Plain Monte-Carlo estimate of log p(x), with z from the prior.

    Parameters
    ----------
    model : VAE or HierarchicalVAE
        For the two-layer model z2 ~ r(z2), then z1 ~ p(z1|z2).
    x : ndarray, shape (n, d_x)
        Converted once to the model's dtype.
    m : int
        Prior samples per example, >= 1.
    rng : numpy.random.Generator or int
    chunk_size, batch_size : int, optional
        Samples and examples per decoder block; None chooses them from
        `MEMORY_BUDGET`. The result does not depend on them.
    fast : bool
        As for `log_mean_weight`.

    Returns
    -------
    ndarray, shape (n,)
        One estimate per example, in the model's dtype.

    Notes
    -----
    log p_hat(x) = log (1/m) sum_i p(x|z_i),   z_i ~ r(z) = N(0, I),
    computed in log space as logsumexp_i log p(x|z_i) - log m. The average of p(x|z_i) is
    unbiased for p(x), but its log is not: by Jensen's inequality
    E[log p_hat(x)] <= log p(x), the gap shrinking as m grows.

    References
    ----------
    The notes, "Latent Generative Models": the Monte-Carlo estimate and
    why its log is biased.

    Examples
    --------
    >>> model = VAE(3, 2, hidden=(), likelihood="gaussian", dtype="float64")
    >>> x = np.zeros((2, 3))
    >>> naive_log_likelihood(model, x, 100, np.random.default_rng(0)).shape
    (2,)
    """
    m = check_int(m, "m", 1)
    return log_mean_weight(model, x, m, rng, "prior", "iwae", chunk_size, batch_size, fast)


def elbo(model: Model, x, rng) -> Array:
    """The evidence lower bound per example, one sample: `model.elbo`.

    Parameters
    ----------
    model : VAE or HierarchicalVAE
        Its posterior must be a density (delta > 0 if fixed). The
        one-layer model's KL is exact, the two-layer model's sampled.
    x : ndarray, shape (n, d_x)
    rng : numpy.random.Generator or int

    Returns
    -------
    ndarray, shape (n,)

    Notes
    -----
    elbo(x) = log p(x|z) - KL(q(.|x) || r),   z = mu + std * eps,
    eps ~ N(0, I), with the KL in closed form. Its expectation over eps
    is <= log p(x).

    Examples
    --------
    >>> model = VAE(3, 2, hidden=(), likelihood="gaussian", dtype="float64")
    >>> x = np.zeros((5000, 3))  # one x, 5000 draws of eps
    >>> bound = elbo(model, x, np.random.default_rng(0))
    >>> bool(bound.mean() < exact_log_likelihood(model, x[:1])[0])
    True
    """
    model = _check_model(model)
    model.check_density("elbo")
    return model.elbo(x, as_generator(rng))


def sampled_elbo(model: Model, x, k: int, rng, chunk_size: int | None = None,
                 batch_size: int | None = None) -> Array:
    """The ELBO per example as the mean of k log-weights (the KL sampled).

    Notes
    -----
    elbo_k(x) = (1/k) sum_i log w_i, z_i ~ q(z|x): the sampled-ELBO head
    of iwae.py, streamed by `log_mean_weight`. Its expectation is the
    ELBO, whatever k; k only shrinks its spread.

    Examples
    --------
    >>> model = VAE(3, 2, hidden=(), likelihood="gaussian", dtype="float64")
    >>> x = np.zeros((1, 3))
    >>> a = sampled_elbo(model, x, 20000, np.random.default_rng(0))
    >>> b = elbo(model, np.zeros((20000, 3)), np.random.default_rng(1)).mean()
    >>> bool(abs(a[0] - b) < 0.05)
    True
    """
    return log_mean_weight(model, x, k, rng, "posterior", "elbo", chunk_size, batch_size)


def iwae_bound(model: Model, x, k: int, rng, chunk_size: int | None = None,
               batch_size: int | None = None, fast: bool = True) -> Array:
    """Importance-weighted lower bound on log p(x) with k samples of q.

    Parameters
    ----------
    model : VAE or HierarchicalVAE
        Its posterior must be a density (delta > 0 if fixed).
    x : ndarray, shape (n, d_x)
        Converted once to the model's dtype.
    k : int
        Importance samples per example, >= 1.
    rng : numpy.random.Generator or int
    chunk_size, batch_size : int, optional
        Samples and examples per decoder block; None chooses them from
        `MEMORY_BUDGET` (module docstring). The noise stream, and so the
        result up to rounding, does not depend on them.
    fast : bool
        As for `log_mean_weight`.

    Returns
    -------
    ndarray, shape (n,)
        In the model's dtype; the sums are accumulated in float64.

    Raises
    ------
    ValueError
        If the model's posterior is a point mass (delta = 0), or k < 1.

    Notes
    -----
    The notes rewrite p(x) = E_{z~q(.|x)}[p(x|z) r(z) / q(z|x)]. With
    z_i ~ q(.|x) and log w_i = log p(x|z_i) + log r(z_i) - log q(z_i|x):

        iwae_k(x) = log (1/k) sum_i w_i = log_mean_exp_i log w_i

    E[iwae_k] <= log p(x) by Jensen, E[iwae_k] grows with k and tends to
    log p(x) (Burda et al., Section 3, Theorem 1). k = 1 is the ELBO
    with the KL sampled instead of exact. The log-weights are the
    model's (`model.log_weights_forward`, `hierarchy.log_weights_forward`).

    References
    ----------
    The notes, the importance-sampling step before the ELBO; Burda,
    Grosse and Salakhutdinov, "Importance Weighted Autoencoders" (2016).

    Examples
    --------
    >>> model = VAE(3, 2, hidden=(), likelihood="gaussian", dtype="float64")
    >>> x = np.zeros((2, 3))
    >>> bound = iwae_bound(model, x, 5000, np.random.default_rng(0))
    >>> np.round(bound - exact_log_likelihood(model, x), 1) + 0.0
    array([0., 0.])
    """
    k = check_int(k, "k", 1)
    return log_mean_weight(model, x, k, rng, "posterior", "iwae", chunk_size, batch_size, fast)


def exact_log_likelihood(model: Model, x) -> Array:
    """log p(x) in closed form for the linear-Gaussian VAE.

    Parameters
    ----------
    model : VAE
        A linear decoder (``hidden=()``) with ``likelihood="gaussian"``;
        the encoder plays no part.
    x : ndarray, shape (n, d_x)

    Returns
    -------
    ndarray, shape (n,)
        In the model's dtype (computed in float64).

    Raises
    ------
    ValueError
        For any other model: then p(x) has no closed form.

    Notes
    -----
    p(x) = N(x; b, W^T W + sigma^2 I) with W = params['out.W'] and
    b = params['out.b']: the equation is
    `numpyvae.reference.linear_gaussian.log_marginal`; this function
    checks the model and the data and hands it the decoder's weights.

    Examples
    --------
    >>> model = VAE(1, 1, hidden=(), likelihood="gaussian", sigma=1.0,
    ...             dtype="float64")
    >>> model.params["out.W"][:] = 0.0  # p(x) = N(x; b, 1), b = 0
    >>> exact_log_likelihood(model, np.zeros((1, 1)))  # -0.5 log(2 pi)
    array([-0.91893853])
    """
    model = _check_model(model)
    c = model.config
    if c.hidden != () or c.likelihood != "gaussian":
        raise ValueError(
            "model: exact_log_likelihood needs the linear-Gaussian VAE (hidden=() and "
            "likelihood='gaussian'), whose p(x) is Gaussian; got hidden="
            f"{c.hidden} and likelihood={c.likelihood!r}, for which p(x) has no closed form")
    x = model.as_input(x)
    log_p = log_marginal(x, model.params["out.W"], model.params["out.b"], c.gaussian_sigma)
    return log_p.astype(model.dtype)


def standard_error(estimates) -> float | None:
    """Monte-Carlo standard error of the mean of per-example `estimates`.

    Notes
    -----
    se = std(estimates, ddof=1) / sqrt(n): the spread of the mean over
    fresh draws of z and of the examples. None for a single example (no
    spread to measure) or an infinite or NaN estimate (a point-mass
    posterior's ELBO is -inf: no spread either).

    Examples
    --------
    >>> standard_error(np.array([1.0, 2.0, 3.0, 4.0]))  # std 1.29 / sqrt(4)
    0.6454972243679028
    >>> standard_error(np.array([-3.0])) is None
    True
    >>> standard_error(np.array([-np.inf, -2.0])) is None
    True
    """
    a = np.asarray(estimates, dtype=np.float64).reshape(-1)
    if a.size < 2 or not np.isfinite(a).all():
        return None
    return float(np.std(a, ddof=1) / math.sqrt(a.size))
