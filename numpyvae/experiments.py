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
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from . import __version__
from ._experiment_figures import (draw_autoencoder, draw_beta_sweep, draw_importance,
                                  draw_jensen, draw_kl_only, draw_prior_bound,
                                  new_figure, save_figure)
from ._validation import check_int
from .datasets import load_digits
from .estimators import elbo, exact_log_likelihood, iwae_bound, naive_log_likelihood
from .kl import kl_backward, kl_fixed_backward, kl_fixed_forward, kl_forward
from .model import (VAEConfig, decoder_backward, decoder_forward, encoder_backward,
                    encoder_forward, log_lik_backward, log_lik_forward)
from .optim import Adam
from .train import evaluate, fit
from .vae import VAE

Array = NDArray[np.floating]

EXPERIMENTS = ("jensen", "prior-bound", "autoencoder", "kl-only", "importance", "beta-sweep")
INIT = "he"  # the digits models' weight scale, at which docs/experiments.md was measured


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


# ---------------------------------------------------------------- plumbing

def _start(name: str, out_dir, seed: int, claim: str, config: dict) -> tuple[dict, Path]:
    """Validate the common arguments; the result dict to fill; the folder."""
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir: expected a str or path, got {type(out_dir).__name__}")
    seed = check_int(seed, "seed", 0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {"experiment": name, "claim": claim, "seed": seed, "config": config,
              "numpyvae_version": __version__}
    return result, out


def _finish(result: dict, out: Path, results: dict, checks: dict) -> dict:
    """Record numbers and checks, write result.json, return the dict."""
    result["results"] = results
    result["checks"] = {k: bool(v) for k, v in checks.items()}
    result["passed"] = all(result["checks"].values())
    result.setdefault("figure", None)
    with open(out / "result.json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, allow_nan=False)
        f.write("\n")
    return result


def _mean_se(a: Array) -> tuple[float, float]:
    """Mean and standard error of the mean of a 1-d sample."""
    a = np.asarray(a, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size))


def _floats(a) -> list[float]:
    return [float(v) for v in np.asarray(a).ravel()]


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
    result, out = _start("jensen", out_dir, seed, "E[log of a Monte-Carlo average of "
                         "p(x|z), z ~ r] < log p(x), the gap shrinking as m grows", config)
    rng = np.random.default_rng(seed)
    model, x_eval = _linear_gaussian_vae(rng, d_x, d_z, sigma, n_train, 1, epochs)
    exact = float(exact_log_likelihood(model, x_eval)[0])
    x_rep = np.repeat(x_eval, repeats, axis=0)  # (repeats, d_x): one x, many estimates
    estimates = [naive_log_likelihood(model, x_rep, m, rng) for m in ms]
    stats = [_mean_se(e) for e in estimates]
    gaps = [exact - mean for mean, _ in stats]
    results = {"exact": exact, "m": list(ms), "mean": [s[0] for s in stats],
               "standard_error": [s[1] for s in stats], "gap": gaps}
    checks = {"below_exact_by_more_than_se": all(g > se for g, (_, se) in zip(gaps, stats)),
              "gap_shrinks_with_m": all(a > b for a, b in zip(gaps, gaps[1:]))}
    fig = new_figure(result, (11, 2.8))
    if fig is not None:
        draw_jensen(fig, ms, estimates, exact, gaps, [s[1] for s in stats])
        save_figure(fig, result, out)
    return _finish(result, out, results, checks)


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
    result, out = _start("importance", out_dir, seed, "ELBO <= E[IWAE_k] <= log p(x), "
                         f"rising with k to within {tol} nats", config)
    rng = np.random.default_rng(seed)
    model, x_eval = _linear_gaussian_vae(rng, d_x, d_z, sigma, n_train, n_eval, epochs)
    exact = exact_log_likelihood(model, x_eval)  # (n_eval,)
    bound = elbo(model, x_eval, np.random.default_rng([seed, 1]))
    iwae = [iwae_bound(model, x_eval, k, np.random.default_rng([seed, 1])) for k in ks]
    elbo_gap, elbo_se = _mean_se(exact - bound)
    gaps = [_mean_se(exact - v) for v in iwae]
    exact_mean = float(exact.mean())
    means, ses = [exact_mean - g for g, _ in gaps], [se for _, se in gaps]
    results = {"exact": exact_mean, "elbo": exact_mean - elbo_gap, "elbo_standard_error":
               elbo_se, "k": list(ks), "iwae": means, "iwae_standard_error": ses,
               "gap": [g for g, _ in gaps]}
    checks = {
        "elbo_below_iwae": all(results["elbo"] <= m + 3 * se for m, se in zip(means, ses)),
        "iwae_below_exact": all(g >= -3 * se for g, se in gaps),
        "iwae_increases_with_k": all(a < b for a, b in zip(means, means[1:])),
        "iwae_within_tol_at_largest_k": gaps[-1][0] < tol,
    }
    if ks[0] == 1:
        diff_mean, diff_se = _mean_se(iwae[0] - bound)
        results["iwae_1_minus_elbo"] = [diff_mean, diff_se]
        checks["iwae_1_matches_elbo"] = abs(diff_mean) <= 3 * diff_se
    fig = new_figure(result, (9, 3.2))
    if fig is not None:
        draw_importance(fig, results, tol)
        save_figure(fig, result, out)
    return _finish(result, out, results, checks)


# ------------------------------------------------------------ prior-bound

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
    return _floats((dist < radius).mean(axis=0))


def _model_samples(model: VAE, n: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """Decoder means at z ~ r and samples x = mean + sigma * noise."""
    means = model.decode(rng.standard_normal((n, model.config.latent_dim), dtype=model.dtype))
    return means, means + model.config.sigma * rng.standard_normal(means.shape)


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
    result, out = _start("prior-bound", out_dir, seed, "maximising E_{x, z~r}[log p(x|z)] "
                         "makes the decoder output E[x] for every z; the VAE finds both "
                         "modes", config)
    rng = np.random.default_rng(seed)
    results, checks, drawn = {}, {}, []
    for dim, centers in (("1d", centers_1d), ("2d", centers_2d)):
        centers = np.asarray(centers, dtype=np.float64)
        x = _two_clusters(rng, n, centers, cluster_std)
        row = {"data_mean": _floats(x.mean(axis=0)), "data_std": float(x.std(axis=0).max())}
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
                "output_mean": _floats(means.mean(axis=0)),
                "output_spread": float(means.std(axis=0).max()),
                "mass_near_modes": _mass_near(samples, centers, 2.5 * cluster_std)}
            drawn.append((dim, objective, x, samples))
        checks.update(_prior_bound_checks(dim, row, tol))
        results[dim] = row
    fig = new_figure(result, (8, 6.4))
    if fig is not None:
        draw_prior_bound(fig, drawn, np.asarray(centers_1d, dtype=np.float64), cluster_std)
        save_figure(fig, result, out)
    return _finish(result, out, results, checks)


def _prior_bound_checks(dim: str, row: dict, tol: float) -> dict:
    prior, vae, scale = row["prior_bound"], row["vae"], row["data_std"]
    distance = np.abs(np.subtract(prior["output_mean"], row["data_mean"])).max()
    return {f"{dim}_prior_bound_output_collapses": prior["output_spread"] < tol * scale,
            f"{dim}_prior_bound_output_is_data_mean": distance < tol * scale,
            f"{dim}_prior_bound_misses_both_modes": max(prior["mass_near_modes"]) < 0.05,
            f"{dim}_vae_finds_both_modes": min(vae["mass_near_modes"]) >= 0.25}


# ------------------------------------------------------------ autoencoder

def _reconstruction_errors(model: VAE, x: Array) -> dict:
    """Errors of the deterministic reconstruction decode(mu(x)), per image.

    squared_error = mean_i sum_j (x_ij - xhat_ij)^2 (xhat the decoder mean);
    neg_log_lik = -mean_i log p(x_i | z = mu(x_i)).
    """
    mu, _, _ = encoder_forward(model.params, x, model.config)
    out, _ = decoder_forward(model.params, mu, model.config)
    log_lik, _ = log_lik_forward(x, out, model.config)
    diff = x - model.reconstruct(x)
    return {"squared_error": float(np.mean((diff * diff).sum(axis=1), dtype=np.float64)),
            "neg_log_lik": -float(np.mean(log_lik, dtype=np.float64))}


def run_autoencoder(out_dir, seed: int = 0, *, latent_dim: int = 8, hidden=(128,),
                    epochs: int = 50, batch_size: int = 64, lr: float = 1e-3,
                    ratio: float = 0.75) -> dict:
    """delta = 0 and beta = 0: reconstruction alone, far below the VAE's.

    Two models of the same shape on the digits (Bernoulli decoder): the
    notes' Delta = 0 extreme (posterior "fixed", delta = 0, trained with
    beta = 0, i.e. an autoencoder) and a VAE (diagonal posterior, beta
    = 1), same epochs. Checked: the autoencoder's squared reconstruction
    error is below `ratio` times the VAE's on the training digits and
    below it on the test digits.

    Examples
    --------
    >>> "autoencoder" in EXPERIMENTS  # run_experiment("autoencoder", out_dir) runs this
    True
    """
    config = {"data": "digits", "latent_dim": latent_dim, "hidden": list(hidden),
              "epochs": epochs, "batch_size": batch_size, "lr": lr, "ratio": ratio}
    result, out = _start("autoencoder", out_dir, seed, "with Delta = 0 and no KL, training "
                         "minimises reconstruction error alone, reaching far below the "
                         "VAE's", config)
    rng = np.random.default_rng(seed)
    (x_train, _), (x_test, _) = load_digits()
    models = {"autoencoder": VAE(64, latent_dim, hidden, posterior="fixed", delta=0.0, rng=rng,
                                 init=INIT),
              "vae": VAE(64, latent_dim, hidden, rng=rng, init=INIT)}
    results = {}
    for name, model in models.items():
        beta = 0.0 if name == "autoencoder" else 1.0
        fit(model, x_train, epochs=epochs, batch_size=batch_size, optimizer=Adam(lr=lr),
            beta=beta, rng=rng)
        results[name] = {"train": _reconstruction_errors(model, x_train),
                         "test": _reconstruction_errors(model, x_test)}
    ae, vae = results["autoencoder"], results["vae"]
    checks = {"train_error_well_below_vae": ae["train"]["squared_error"]
              < ratio * vae["train"]["squared_error"],
              "test_error_below_vae": ae["test"]["squared_error"]
              < vae["test"]["squared_error"]}
    fig = new_figure(result, (8, 2.9))
    if fig is not None:
        draw_autoencoder(fig, x_test[:12], models, results)
        save_figure(fig, result, out)
    return _finish(result, out, results, checks)


# ------------------------------------------------------------------ kl-only

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
        kl, kl_cache = kl_fixed_forward(mu, config.delta)
        dmu, dlog_var = kl_fixed_backward(dkl, kl_cache), None
    grads: dict = {}
    encoder_backward(dmu, dlog_var, enc_cache, config, grads)
    return float(np.mean(kl, dtype=np.float64)), grads


def _encoder_names(config: VAEConfig) -> list[str]:
    return [k for k in config.param_shapes() if k.startswith(("enc", "mu.", "log_var."))]


def _posterior_stats(model: VAE, x: Array) -> dict:
    mu, log_var, _ = encoder_forward(model.params, x, model.config)
    kl, _ = kl_forward(mu, log_var)
    return {"mean_abs_mu": float(np.abs(mu).mean()), "max_abs_mu": float(np.abs(mu).max()),
            "max_abs_log_var": float(np.abs(log_var).max()), "kl": float(kl.mean())}


def run_kl_only(out_dir, seed: int = 0, *, latent_dim: int = 8, hidden=(128,),
                steps: int = 500, batch_size: int = 128, lr: float = 1e-2,
                record_every: int = 10, tol_mu: float = 0.01, tol_kl: float = 1e-3) -> dict:
    """The KL term alone drives lambda(x) = mu(x) to 0 for every x.

    A digits encoder (diagonal posterior) trained by Adam on
    `kl_loss_and_grads` only. Checked on the held-out digits: the mean
    |mu| falls below `tol_mu` and the mean KL below `tol_kl` nats (so
    log_var -> 0 too: q(.|x) = r for every x).

    Examples
    --------
    >>> "kl-only" in EXPERIMENTS  # run_experiment("kl-only", out_dir) runs this
    True
    """
    config = {"data": "digits", "latent_dim": latent_dim, "hidden": list(hidden),
              "steps": steps, "batch_size": batch_size, "lr": lr,
              "record_every": record_every, "tol_mu": tol_mu, "tol_kl": tol_kl}
    result, out = _start("kl-only", out_dir, seed, "the KL term alone sends the encoder "
                         "mean lambda(x) to 0 for every x (q = r)", config)
    rng = np.random.default_rng(seed)
    (x_train, _), (x_test, _) = load_digits()
    model = VAE(64, latent_dim, hidden, rng=rng, init=INIT)
    encoder = {k: model.params[k] for k in _encoder_names(model.config)}  # shared arrays
    optimizer = Adam(lr=lr)
    mu_start = encoder_forward(model.params, x_test, model.config)[0]
    history = {"step": [0], **{k: [v] for k, v in _posterior_stats(model, x_test).items()}}
    for step in range(1, steps + 1):
        xb = x_train[rng.integers(0, x_train.shape[0], batch_size)]
        _, grads = kl_loss_and_grads(model.params, xb, model.config)
        optimizer.step(encoder, grads)
        if step % record_every == 0 or step == steps:
            history["step"].append(step)
            for k, v in _posterior_stats(model, x_test).items():
                history[k].append(v)
    final = {k: v[-1] for k, v in history.items() if k != "step"}
    results = {"start": {k: v[0] for k, v in history.items() if k != "step"},
               "end": final}
    checks = {"mean_abs_mu_below_tol": final["mean_abs_mu"] < tol_mu,
              "kl_below_tol": final["kl"] < tol_kl}
    fig = new_figure(result, (9, 3.4))
    if fig is not None:
        mu_end = encoder_forward(model.params, x_test, model.config)[0]
        draw_kl_only(fig, history, mu_start, mu_end, tol_mu, tol_kl)
        save_figure(fig, result, out)
    return _finish(result, out, results, checks)


# --------------------------------------------------------------- beta-sweep

def run_beta_sweep(out_dir, seed: int = 0, *, betas=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
                   latent_dim: int = 8, hidden=(128,), epochs: int = 30,
                   batch_size: int = 64, lr: float = 1e-3, eval_repeats: int = 10,
                   tol: float = 0.1) -> dict:
    """Rate (KL) falls and distortion (-log p(x|z)) rises as beta grows.

    One digits VAE per beta, each from the same initial weights and data
    order; rate and distortion are the mean KL and the mean -log p(x|z),
    z ~ q(.|x), over the test digits, each drawn `eval_repeats` times.
    Checked: both move monotonically with beta up to `tol` nats per
    step, and by more than 1 nat from the first beta to the last.

    Examples
    --------
    >>> "beta-sweep" in EXPERIMENTS  # run_experiment("beta-sweep", out_dir) runs this
    True
    """
    config = {"data": "digits", "betas": list(betas), "latent_dim": latent_dim,
              "hidden": list(hidden), "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "eval_repeats": eval_repeats, "tol": tol}
    result, out = _start("beta-sweep", out_dir, seed, "as beta grows, the rate (KL) falls "
                         "and the distortion (-reconstruction term) rises", config)
    (x_train, _), (x_test, _) = load_digits()
    x_eval = np.repeat(x_test, eval_repeats, axis=0)
    rates, distortions = [], []
    for beta in betas:
        rng = np.random.default_rng(seed)  # same start and data order for every beta
        model = VAE(64, latent_dim, hidden, rng=rng, init=INIT)
        fit(model, x_train, epochs=epochs, batch_size=batch_size, optimizer=Adam(lr=lr),
            beta=beta, rng=rng)
        scores = evaluate(model, x_eval, np.random.default_rng([seed, 1]))
        rates.append(scores["kl"])
        distortions.append(-scores["log_lik"])
    results = {"beta": list(betas), "rate": rates, "distortion": distortions,
               "elbo": [-(r + d) for r, d in zip(rates, distortions)]}
    checks = {"rate_falls": all(b <= a + tol for a, b in zip(rates, rates[1:]))
              and rates[0] - rates[-1] > 1.0,
              "distortion_rises": all(b >= a - tol for a, b in zip(distortions, distortions[1:]))
              and distortions[-1] - distortions[0] > 1.0}
    fig = new_figure(result, (9, 3.4))
    if fig is not None:
        draw_beta_sweep(fig, results)
        save_figure(fig, result, out)
    return _finish(result, out, results, checks)


