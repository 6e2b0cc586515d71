"""Held-out evaluation of a trained VAE, as the literature reports it.

For a test set, `evaluate` gives

* the mean ELBO with a sampled z (one reparameterized draw per example;
  the KL analytic for the one-layer model, sampled for the two-layer
  one), the bound the model was trained on;
* the IWAE-k estimate of log p(x) (`estimators.iwae_bound`), whose
  negative mean is the reported test NLL (k = 5000 in the literature);
* their gap, which measures how far q(z|x) is from the true posterior;
* bits per dimension, NLL / (d_x log 2);
* the number of active latent units (Burda et al., 2016): unit j of a
  stochastic layer is active when Var_x(E_q[z_j | x]) > 0.01, the inner
  means given by the model (`posterior_means` of the model protocol).

It works for any model of the protocol (protocol.py).
"""

from __future__ import annotations

import time

import numpy as np

from ._progress import duration, make_bar
from ._validation import check_int
from .estimators import elbo, iwae_bound, standard_error
from .protocol import Model
from .reference.measures import ACTIVE_THRESHOLD, bits_per_dim, count_active_units
from .vae import VAE, as_generator  # noqa: F401  (VAE: the doctests' model)


def active_units(model: Model, x, threshold: float = ACTIVE_THRESHOLD,
                 batch_size: int = 1000, rng=None) -> tuple[int, np.ndarray]:
    """Count latent units whose posterior mean varies across the data.

    Returns ``(count, variances)`` where ``variances[j] = Var_x(E_q[z_j|x])``
    (float64, population variance over the rows of `x`), the units of
    every stochastic layer in order (`active_units_per_layer`); for the
    one-layer model E_q[z_j|x] = mu_j(x).

    Examples
    --------
    >>> model = VAE(4, 3, hidden=(), rng=0)
    >>> count, var = active_units(model, np.random.default_rng(0).random((50, 4)))
    >>> var.shape
    (3,)
    """
    counts, variances = active_units_per_layer(model, x, rng, threshold=threshold,
                                               batch_size=batch_size)
    return sum(counts), np.concatenate(variances)


def evaluate(model: Model, x, k: int = 5000, rng=None,
                   batch_size: int = 500, progress: bool = False, log=print) -> dict:
    """Test-set ELBO, IWAE-k log-likelihood, their gap, bits/dim, active units.

    Parameters
    ----------
    model : VAE or HierarchicalVAE (any model of protocol.py)
        For the two-layer model the ELBO's KL is sampled, and
        ``test_active_units_per_layer`` is added (``test_active_units`` is
        their sum).
    x : ndarray, shape (n, d_x)
        Test data (converted once to the model's dtype).
    k : int
        Importance samples for the IWAE estimate (5000 for final numbers).
    rng : numpy.random.Generator or int, optional
        Source of every sample (None is seed 0).
    batch_size : int
        Examples per call of `iwae_bound`; memory stays bounded whatever k
        (see `estimators`), and progress is reported after each batch.
    progress : bool
        A tqdm bar over the examples when tqdm is installed, else a line
        per batch through `log`.
    log : callable
        Called with each progress line (without tqdm).

    Returns
    -------
    dict
        Nats per example, each sampled mean beside its Monte-Carlo
        standard error ``*_se`` (`estimators.standard_error`):
        ``test_elbo`` (a fresh ELBO with one z per example; the run's
        ``val_elbo`` is another such draw), ``test_iwae_k`` (the IWAE-k
        estimate of log p(x), k in ``k``), ``test_nll`` (= -test_iwae_k,
        the number to quote as a log-likelihood), ``test_gap`` (IWAE -
        ELBO per example), ``test_bits_per_dim`` (NLL / (d_x log 2)), each
        with its ``_se`` (``test_nll``'s is ``test_iwae_se``);
        ``test_active_units``, ``k``, ``n``, ``seconds``.
    """
    x = model.as_input(x)
    k = check_int(k, "k", 1)
    batch_size = check_int(batch_size, "batch_size", 1)
    rng = as_generator(rng)
    t0 = time.perf_counter()
    elbos = np.asarray(elbo(model, x, rng), dtype=np.float64)  # (n,)
    n = x.shape[0]
    bar = make_bar(n, desc=f"IWAE k={k}") if progress else None
    iwae_batches = []
    for start in range(0, n, batch_size):
        xb = x[start:start + batch_size]
        iwae_batches.append(iwae_bound(model, xb, k, rng).astype(np.float64))
        done, seconds = min(start + batch_size, n), time.perf_counter() - t0
        if bar is not None:
            bar.update(xb.shape[0])
        elif progress:
            log(f"iwae k={k}: {done}/{n} examples, {duration(seconds)}, about "
                f"{duration(seconds * (n - done) / done)} left")
    if bar is not None:
        bar.close()
    iwaes = np.concatenate(iwae_batches)  # (n,)
    counts = active_units_per_layer(model, x, rng)[0]
    count, per_layer = sum(counts), {}
    if len(counts) > 1:  # a model with several stochastic layers
        per_layer = {"test_active_units_per_layer": counts}
    iwae_se, d_x = standard_error(iwaes), model.config.input_dim
    return {**per_layer, "test_elbo": float(elbos.mean()), "test_elbo_se": standard_error(elbos),
            "test_iwae_k": float(iwaes.mean()), "test_iwae_se": iwae_se,
            "test_nll": -float(iwaes.mean()),
            "test_gap": float(np.mean(iwaes - elbos)),
            "test_gap_se": standard_error(iwaes - elbos),
            "test_bits_per_dim": bits_per_dim(-float(iwaes.mean()), d_x),
            "test_bits_per_dim_se": None if iwae_se is None else bits_per_dim(iwae_se, d_x),
            "test_active_units": count, "k": k, "n": n,
            "seconds": time.perf_counter() - t0}


def active_units_per_layer(model: Model, x, rng=None, n_samples: int = 20,
                           threshold: float = ACTIVE_THRESHOLD,
                           batch_size: int = 1000) -> tuple[list[int], list[np.ndarray]]:
    """Active units of each stochastic layer.

    Unit j of layer l is active when Var_x(E_q[z_l,j | x]) > threshold
    (Burda et al., 2016). The inner means are the model's
    `posterior_means`: mu(x) for the one-layer model; mu1(x) and the
    average of mu2(z1) over `n_samples` draws of z1 ~ q(z1|x) (from
    `rng`; None is seed 0) for the two-layer one.

    Returns ``([count per layer], [variances per layer])``.

    Examples
    --------
    >>> from numpyvae.hierarchical_vae import HierarchicalVAE
    >>> model = HierarchicalVAE(4, (3, 2), hidden=(5,), hidden2=(4,))
    >>> counts, variances = active_units_per_layer(model, np.full((6, 4), 0.5))
    >>> counts[0], [v.shape for v in variances]  # the same x six times: mu1 never varies
    (0, [(3,), (2,)])
    """
    x = model.as_input(x)
    rng = as_generator(rng)
    n_samples = check_int(n_samples, "n_samples", 1)
    layers: list[list[np.ndarray]] = []
    for i in range(0, x.shape[0], batch_size):
        means = model.posterior_means(x[i:i + batch_size], rng, n_samples)
        layers = layers or [[] for _ in means]
        for parts, m in zip(layers, means, strict=True):
            parts.append(m.astype(np.float64))
    counted = [count_active_units(np.concatenate(parts), threshold) for parts in layers]
    return [count for count, _ in counted], [variances for _, variances in counted]
