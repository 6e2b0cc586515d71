"""The notes' extremes of the ELBO, and the path between them.

Three experiments of `numpyvae.app.experiments` on the embedded digits:

* autoencoder  -- delta = 0 and no KL: the reconstruction error alone.
* kl-only      -- the KL term alone sends lambda(x) to 0 for every x.
* beta-sweep   -- beta trades rate (KL) against distortion.

``run_<name>`` writes ``out_dir/result.json`` and ``<name>.png`` as
described in `numpyvae.app.experiments`, whose `run_experiment` dispatches
here. The KL-only objective with its hand-written encoder gradient,
`kl_loss_and_grads`, is an equation: numpyvae/reference/collapse.py. Imports the model's pieces, training, the digits,
the figures and `numpyvae.app.experiment_record`; never
`numpyvae.app.experiments` (which imports this module).
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

from ..datasets import load_digits
from ..reference.collapse import kl_loss_and_grads
from ..reference.kl import kl_forward
from ..reference.optim import Adam
from ..reference.vae import VAEConfig, decoder_forward, encoder_forward, log_lik_forward
from ..train import fit
from ..trainer import mean_elbo_terms
from ..vae import VAE
from ._experiment_figures import draw_autoencoder, draw_beta_sweep, draw_kl_only, new_figure, save_figure
from .experiment_record import finish_experiment, start_experiment

Array = NDArray[np.floating]

INIT = "he"  # the digits models' weight scale, at which docs/experiments.md was measured


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
    >>> from numpyvae.app.experiments import EXPERIMENTS
    >>> "autoencoder" in EXPERIMENTS  # run_experiment("autoencoder", out_dir) runs this
    True
    """
    config = {"data": "digits", "latent_dim": latent_dim, "hidden": list(hidden),
              "epochs": epochs, "batch_size": batch_size, "lr": lr, "ratio": ratio}
    result, out = start_experiment("autoencoder", out_dir, seed, "with Delta = 0 and no "
                                   "KL, training minimises reconstruction error alone, "
                                   "reaching far below the VAE's", config)
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
    return finish_experiment(result, out, results, checks)


# ------------------------------------------------------------------ kl-only


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
    >>> from numpyvae.app.experiments import EXPERIMENTS
    >>> "kl-only" in EXPERIMENTS  # run_experiment("kl-only", out_dir) runs this
    True
    """
    config = {"data": "digits", "latent_dim": latent_dim, "hidden": list(hidden),
              "steps": steps, "batch_size": batch_size, "lr": lr,
              "record_every": record_every, "tol_mu": tol_mu, "tol_kl": tol_kl}
    result, out = start_experiment("kl-only", out_dir, seed, "the KL term alone sends the "
                                   "encoder mean lambda(x) to 0 for every x (q = r)", config)
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
    return finish_experiment(result, out, results, checks)


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
    >>> from numpyvae.app.experiments import EXPERIMENTS
    >>> "beta-sweep" in EXPERIMENTS  # run_experiment("beta-sweep", out_dir) runs this
    True
    """
    config = {"data": "digits", "betas": list(betas), "latent_dim": latent_dim,
              "hidden": list(hidden), "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "eval_repeats": eval_repeats, "tol": tol}
    result, out = start_experiment("beta-sweep", out_dir, seed, "as beta grows, the rate "
                                   "(KL) falls and the distortion (-reconstruction term) "
                                   "rises", config)
    (x_train, _), (x_test, _) = load_digits()
    x_eval = np.repeat(x_test, eval_repeats, axis=0)
    rates, distortions = [], []
    for beta in betas:
        rng = np.random.default_rng(seed)  # same start and data order for every beta
        model = VAE(64, latent_dim, hidden, rng=rng, init=INIT)
        fit(model, x_train, epochs=epochs, batch_size=batch_size, optimizer=Adam(lr=lr),
            beta=beta, rng=rng)
        scores = mean_elbo_terms(model, x_eval, np.random.default_rng([seed, 1]))
        rates.append(scores["kl"])
        distortions.append(-scores["log_lik"])
    results = {"beta": list(betas), "rate": rates, "distortion": distortions,
               "elbo": [-(r + d) for r, d in zip(rates, distortions, strict=True)]}
    checks = {"rate_falls": all(b <= a + tol for a, b in pairwise(rates))
              and rates[0] - rates[-1] > 1.0,
              "distortion_rises": all(b >= a - tol for a, b in pairwise(distortions))
              and distortions[-1] - distortions[0] > 1.0}
    fig = new_figure(result, (9, 3.4))
    if fig is not None:
        draw_beta_sweep(fig, results)
        save_figure(fig, result, out)
    return finish_experiment(result, out, results, checks)
