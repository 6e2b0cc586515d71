"""The notes' claims as runnable experiments, each with numbers and a figure.

``run_experiment(name, out_dir, seed=0)`` runs one of `EXPERIMENTS` and
writes ``out_dir/result.json`` (the configuration, the numbers, and the
claim checked as booleans) and the figure ``out_dir/<name>.png``. The
figure needs matplotlib (``pip install "numpyvae[viz]"``); without it
the numbers are still written and ``result["figure_note"]`` says the
figure was skipped. Each experiment is also a function, ``run_<name>``,
whose keyword arguments are its settings (the tests shrink them):

* jensen       -- log of a prior Monte-Carlo average is biased low.
* prior-bound  -- maximising E_{z~r}[log p(x|z)] learns only E[x].
* autoencoder  -- delta = 0 and no KL: the reconstruction error alone.
* kl-only      -- the KL term alone sends lambda(x) to 0 for every x.
* importance   -- ELBO <= IWAE(k) <= log p(x), tightening as k grows.
* beta-sweep   -- beta trades rate (KL) against distortion.

All randomness comes from ``numpy.random.default_rng(seed)``. See
docs/experiments.md for the figures and the numbers of the default runs;
the drawing code is in ``_experiment_figures.py``.

This module holds the dispatcher and the estimator experiments (jensen,
importance, prior-bound); the notes' extremes (autoencoder, kl-only,
beta-sweep) live in ``extremes.py`` and what every run records in
``experiment_record.py``. All six ``run_<name>`` functions stay
importable from here. The two collapsing objectives the prior-bound and
kl-only experiments train, with their gradients, are equations:
numpyvae/reference/collapse.py.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

from ..estimators import elbo, exact_log_likelihood, iwae_bound, naive_log_likelihood
from ..reference.collapse import prior_bound_loss_and_grads
from ..reference.config import VAEConfig
from ..reference.optim import Adam
from ..train import fit
from ..vae import VAE
from ._experiment_figures import draw_importance, draw_jensen, draw_prior_bound, new_figure, save_figure
from .experiment_record import finish_experiment, floats, mean_se, start_experiment

# The extremes live in extremes.py; run_experiment dispatches to them, and
# they stay importable as numpyvae.app.experiments.<name>.
from .extremes import run_autoencoder, run_beta_sweep, run_kl_only  # noqa: F401

Array = NDArray[np.floating]

EXPERIMENTS = ("jensen", "prior-bound", "autoencoder", "kl-only", "importance", "beta-sweep")


def run_experiment(name: str, out_dir, seed: int = 0) -> dict:
    """Run experiment `name` with its default settings; see the module doc.

    Parameters
    ----------
    name : str
        One of `EXPERIMENTS`.
    out_dir : str or path
        Folder for ``result.json`` and ``<name>.png`` (created if needed).
    seed : int
        Seed of the experiment's one generator, >= 0.

    Returns
    -------
    dict
        What ``result.json`` holds: ``experiment, claim, seed, config,
        results, checks`` (booleans), ``passed`` (all checks), ``figure``.

    Raises
    ------
    ValueError
        If `name` is not one of `EXPERIMENTS`.

    Examples
    --------
    >>> EXPERIMENTS
    ('jensen', 'prior-bound', 'autoencoder', 'kl-only', 'importance', 'beta-sweep')
    >>> run_experiment("no-such-claim", "unused")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: name: expected one of (...), got 'no-such-claim'
    """
    if name == "jensen":
        return run_jensen(out_dir, seed)
    elif name == "prior-bound":
        return run_prior_bound(out_dir, seed)
    elif name == "autoencoder":
        return run_autoencoder(out_dir, seed)
    elif name == "kl-only":
        return run_kl_only(out_dir, seed)
    elif name == "importance":
        return run_importance(out_dir, seed)
    elif name == "beta-sweep":
        return run_beta_sweep(out_dir, seed)
    raise ValueError(f"name: expected one of {EXPERIMENTS}, got {name!r}")


# ------------------------------------------- linear-Gaussian: jensen, importance

def _linear_gaussian_vae(rng: np.random.Generator, d_x: int, d_z: int, sigma: float,
                         n_train: int, n_eval: int, epochs: int) -> tuple[VAE, Array]:
    """A linear-Gaussian VAE (float64) fitted briefly to data of a random
    linear-Gaussian model x = z W + b + sigma * noise; and held-out x.

    Its posterior is the notes' fixed-width q = N(lambda(x), I) (delta =
    1): wider than the true posterior, so q is a good proposal but never
    the exact posterior, and the bounds have gaps to close.
    """
    W = 1.5 * rng.standard_normal((d_z, d_x))
    b = rng.standard_normal(d_x)
    z = rng.standard_normal((n_train + n_eval, d_z))
    x = z @ W + b + sigma * rng.standard_normal((n_train + n_eval, d_x))
    model = VAE(d_x, d_z, hidden=(), likelihood="gaussian", sigma=sigma, posterior="fixed",
                delta=1.0, dtype="float64", rng=rng)
    fit(model, x[:n_train], epochs=epochs, batch_size=100, optimizer=Adam(lr=1e-2), rng=rng)
    return model, x[n_train:]


def run_jensen(out_dir, seed: int = 0, *, ms=(1, 10, 100, 1000), repeats: int = 5000,
               d_x: int = 5, d_z: int = 2, sigma: float = 0.5, n_train: int = 2000,
               epochs: int = 30) -> dict:
    """The naive estimate log (1/m) sum_i p(x|z_i), z_i ~ r, is biased low.

    On a linear-Gaussian VAE (where log p(x) is exact), one held-out x is
    scored `repeats` times for each m. Checked: the mean estimate lies
    below the exact value by more than its standard error for every m,
    and the gap shrinks as m grows.

    Examples
    --------
    >>> "jensen" in EXPERIMENTS  # run_experiment("jensen", out_dir) runs this
    True
    """
    config = {"ms": list(ms), "repeats": repeats, "d_x": d_x, "d_z": d_z, "sigma": sigma,
              "n_train": n_train, "epochs": epochs}
    result, out = start_experiment("jensen", out_dir, seed, "E[log of a Monte-Carlo "
                                   "average of p(x|z), z ~ r] < log p(x), the gap "
                                   "shrinking as m grows", config)
    rng = np.random.default_rng(seed)
    model, x_eval = _linear_gaussian_vae(rng, d_x, d_z, sigma, n_train, 1, epochs)
    exact = float(exact_log_likelihood(model, x_eval)[0])
    x_rep = np.repeat(x_eval, repeats, axis=0)  # (repeats, d_x): one x, many estimates
    estimates = [naive_log_likelihood(model, x_rep, m, rng) for m in ms]
    stats = [mean_se(e) for e in estimates]
    gaps = [exact - mean for mean, _ in stats]
    results = {"exact": exact, "m": list(ms), "mean": [s[0] for s in stats],
               "standard_error": [s[1] for s in stats], "gap": gaps}
    checks = {"below_exact_by_more_than_se": all(g > se for g, (_, se) in zip(gaps, stats, strict=True)),
              "gap_shrinks_with_m": all(a > b for a, b in pairwise(gaps))}
    fig = new_figure(result, (11, 2.8))
    if fig is not None:
        draw_jensen(fig, ms, estimates, exact, gaps, [s[1] for s in stats])
        save_figure(fig, result, out)
    return finish_experiment(result, out, results, checks)


def run_importance(out_dir, seed: int = 0, *, ks=(1, 5, 50, 500), n_eval: int = 5000,
                   d_x: int = 5, d_z: int = 2, sigma: float = 0.5, n_train: int = 2000,
                   epochs: int = 30, tol: float = 0.1) -> dict:
    """ELBO <= E[IWAE_k] <= log p(x), IWAE_k rising with k to within `tol`.

    On a briefly trained linear-Gaussian VAE, averaged over `n_eval`
    held-out points. Every bound restarts the same generator, so the
    draws are nested (the k = 50 samples are the first 50 of the k = 500
    ones, and the ELBO's eps are those of k = 1): the comparisons across
    k are paired. Checked: the mean IWAE rises with k, lies below log
    p(x) and above the ELBO up to 3 standard errors, k = 1 matches the
    ELBO (the same bound with the KL sampled) within 3 standard errors
    of their paired difference, and the largest k is within `tol` nats.

    Examples
    --------
    >>> "importance" in EXPERIMENTS  # run_experiment("importance", out_dir) runs this
    True
    """
    config = {"ks": list(ks), "n_eval": n_eval, "d_x": d_x, "d_z": d_z, "sigma": sigma,
              "n_train": n_train, "epochs": epochs, "tol": tol}
    result, out = start_experiment("importance", out_dir, seed, "ELBO <= E[IWAE_k] <= "
                                   f"log p(x), rising with k to within {tol} nats", config)
    rng = np.random.default_rng(seed)
    model, x_eval = _linear_gaussian_vae(rng, d_x, d_z, sigma, n_train, n_eval, epochs)
    exact = exact_log_likelihood(model, x_eval)  # (n_eval,)
    bound = elbo(model, x_eval, np.random.default_rng([seed, 1]))
    iwae = [iwae_bound(model, x_eval, k, np.random.default_rng([seed, 1])) for k in ks]
    elbo_gap, elbo_se = mean_se(exact - bound)
    gaps = [mean_se(exact - v) for v in iwae]
    exact_mean = float(exact.mean())
    means, ses = [exact_mean - g for g, _ in gaps], [se for _, se in gaps]
    results: dict = {"exact": exact_mean, "elbo": exact_mean - elbo_gap, "elbo_standard_error":
                     elbo_se, "k": list(ks), "iwae": means, "iwae_standard_error": ses,
                     "gap": [g for g, _ in gaps]}
    checks = {
        "elbo_below_iwae": all(results["elbo"] <= m + 3 * se for m, se in zip(means, ses, strict=True)),
        "iwae_below_exact": all(g >= -3 * se for g, se in gaps),
        "iwae_increases_with_k": all(a < b for a, b in pairwise(means)),
        "iwae_within_tol_at_largest_k": gaps[-1][0] < tol,
    }
    if ks[0] == 1:
        diff_mean, diff_se = mean_se(iwae[0] - bound)
        results["iwae_1_minus_elbo"] = [diff_mean, diff_se]
        checks["iwae_1_matches_elbo"] = abs(diff_mean) <= 3 * diff_se
    fig = new_figure(result, (9, 3.2))
    if fig is not None:
        draw_importance(fig, results, tol)
        save_figure(fig, result, out)
    return finish_experiment(result, out, results, checks)


# ------------------------------------------------------------ prior-bound


def _decoder_names(config: VAEConfig) -> list[str]:
    return [k for k in config.param_shapes() if k.startswith(("dec", "out."))]


def _fit_prior_bound(model: VAE, x: Array, steps: int, batch_size: int, lr: float,
                     rng: np.random.Generator) -> None:
    """Adam on `prior_bound_loss_and_grads`, minibatches of x and fresh z."""
    decoder = {k: model.params[k] for k in _decoder_names(model.config)}  # shared arrays
    optimizer = Adam(lr=lr)
    for _ in range(steps):
        xb = x[rng.integers(0, x.shape[0], batch_size)]
        z = rng.standard_normal((batch_size, model.config.latent_dim), dtype=model.dtype)
        _, grads = prior_bound_loss_and_grads(model.params, xb, z, model.config)
        optimizer.step(decoder, grads)


def _two_clusters(rng: np.random.Generator, n: int, centers: Array, std: float) -> Array:
    """n float32 points, each from one of two Gaussian clusters (p = 1/2)."""
    which = rng.integers(0, 2, n)
    x = centers[which] + std * rng.standard_normal((n, centers.shape[1]))
    return x.astype(np.float32)


def _mass_near(samples: Array, centers: Array, radius: float) -> list[float]:
    """Fraction of samples within `radius` of each center."""
    dist = np.linalg.norm(samples[:, None, :] - centers[None], axis=2)  # (n, 2)
    return floats((dist < radius).mean(axis=0))


def _model_samples(model: VAE, n: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """Decoder means at z ~ r and samples x = mean + sigma * noise."""
    means = model.decode(rng.standard_normal((n, model.config.latent_dim), dtype=model.dtype))
    return means, means + model.config.gaussian_sigma * rng.standard_normal(means.shape)


def run_prior_bound(out_dir, seed: int = 0, *, n: int = 2000,
                    centers_1d=((-2.0,), (3.0,)), centers_2d=((-2.0, -1.0), (2.0, 2.0)),
                    cluster_std: float = 0.4, sigma: float = 0.4, hidden=(32,),
                    steps: int = 2000, batch_size: int = 200, lr: float = 3e-3,
                    vae_epochs: int = 300, vae_batch_size: int = 50, n_samples: int = 5000,
                    tol: float = 0.1) -> dict:
    """E_{z~r}[log p(x|z)] learns the data mean; the VAE learns both modes.

    For two clusters in 1-D and in 2-D, a Gaussian decoder is trained on
    the prior bound (z independent of x) and a VAE of the same shape on
    the ELBO. Checked: under the prior bound the decoder output's spread
    over z (largest std over coordinates) and its distance to the data
    mean are below `tol` times the data's std, and its samples miss both
    modes; the VAE puts >= 25% of its samples near each mode (within
    2.5 cluster stds).

    Examples
    --------
    >>> "prior-bound" in EXPERIMENTS  # run_experiment("prior-bound", out_dir) runs this
    True
    """
    config = {"n": n, "centers_1d": [list(c) for c in centers_1d],
              "centers_2d": [list(c) for c in centers_2d], "cluster_std": cluster_std,
              "sigma": sigma, "hidden": list(hidden), "steps": steps,
              "batch_size": batch_size, "lr": lr, "vae_epochs": vae_epochs,
              "vae_batch_size": vae_batch_size, "n_samples": n_samples, "tol": tol}
    result, out = start_experiment("prior-bound", out_dir, seed, "maximising E_{x, z~r}"
                                   "[log p(x|z)] makes the decoder output E[x] for every "
                                   "z; the VAE finds both modes", config)
    rng = np.random.default_rng(seed)
    results, checks, drawn = {}, {}, []
    for dim, centers in (("1d", centers_1d), ("2d", centers_2d)):
        centers = np.asarray(centers, dtype=np.float64)
        x = _two_clusters(rng, n, centers, cluster_std)
        row = {"data_mean": floats(x.mean(axis=0)), "data_std": float(x.std(axis=0).max())}
        for objective in ("prior_bound", "vae"):
            model = VAE(x.shape[1], 1, hidden=hidden, activation="tanh",
                        likelihood="gaussian", sigma=sigma, rng=rng)
            if objective == "prior_bound":
                _fit_prior_bound(model, x, steps, batch_size, lr, rng)
            else:
                fit(model, x, epochs=vae_epochs, batch_size=vae_batch_size,
                    optimizer=Adam(lr=lr), rng=rng)
            means, samples = _model_samples(model, n_samples, rng)
            row[objective] = {
                "output_mean": floats(means.mean(axis=0)),
                "output_spread": float(means.std(axis=0).max()),
                "mass_near_modes": _mass_near(samples, centers, 2.5 * cluster_std)}
            drawn.append((dim, objective, x, samples))
        checks.update(_prior_bound_checks(dim, row, tol))
        results[dim] = row
    fig = new_figure(result, (8, 6.4))
    if fig is not None:
        draw_prior_bound(fig, drawn, np.asarray(centers_1d, dtype=np.float64), cluster_std)
        save_figure(fig, result, out)
    return finish_experiment(result, out, results, checks)


def _prior_bound_checks(dim: str, row: dict, tol: float) -> dict:
    prior, vae, scale = row["prior_bound"], row["vae"], row["data_std"]
    distance = np.abs(np.subtract(prior["output_mean"], row["data_mean"])).max()
    return {f"{dim}_prior_bound_output_collapses": prior["output_spread"] < tol * scale,
            f"{dim}_prior_bound_output_is_data_mean": distance < tol * scale,
            f"{dim}_prior_bound_misses_both_modes": max(prior["mass_near_modes"]) < 0.05,
            f"{dim}_vae_finds_both_modes": min(vae["mass_near_modes"]) >= 0.25}
