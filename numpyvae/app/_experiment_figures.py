"""The figures of `numpyvae.app.experiments`, one drawing function per experiment.

Kept apart from the experiments so that experiments.py reads as the
numbers and the checks of each claim. Every figure is a matplotlib
`Figure` made without pyplot (no global backend is touched); when
matplotlib is missing, `new_figure` returns None and the experiment
records why in its result instead of drawing.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]
FIGURE_SKIPPED = 'figure skipped: matplotlib is not installed (pip install "numpyvae[viz]")'


def new_figure(result: dict, size: tuple[float, float]):
    """A matplotlib Figure (no pyplot, no global backend), or None with a
    note in `result` when matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        result["figure"] = None
        result["figure_note"] = FIGURE_SKIPPED
        return None
    return Figure(figsize=size, layout="constrained")


def save_figure(fig, result: dict, out: Path) -> None:
    name = f"{result['experiment']}.png"
    fig.savefig(out / name, dpi=80)
    result["figure"] = name


def draw_jensen(fig, ms, estimates, exact, gaps, ses) -> None:
    axes = fig.subplots(1, len(ms) + 1)
    for ax, m, est in zip(axes[:-1], ms, estimates, strict=True):  # the last axis: the gaps
        lo = np.quantile(est, 0.01)
        ax.hist(est, bins=40, range=(lo, max(est.max(), exact)), color="tab:purple", alpha=0.7)
        ax.axvline(exact, color="tab:red", label="exact log p(x)")
        ax.axvline(est.mean(), color="k", linestyle="--", label="mean estimate")
        ax.set_title(f"m = {m}")
        ax.set_xlabel("naive estimate")
        ax.set_yticks([])
    axes[0].legend(fontsize=7, loc="upper left")
    ax = axes[-1]
    ax.errorbar(ms, gaps, yerr=ses, marker="o", color="tab:purple")
    ax.set(xscale="log", yscale="log", xlabel="m", title="gap: exact - mean")


def draw_importance(fig, r: dict, tol: float) -> None:
    left, right = fig.subplots(1, 2)
    left.errorbar(r["k"], r["iwae"], yerr=r["iwae_standard_error"], marker="o",
                  color="tab:purple", label="IWAE bound, mean")
    left.axhline(r["exact"], color="tab:red", label="exact log p(x)")
    left.axhline(r["elbo"], color="k", linestyle=":", label="ELBO")
    left.set(xscale="log", xlabel="k (importance samples)", ylabel="nats, mean over x",
             title="bounds on log p(x)")
    left.legend(fontsize=8)
    right.errorbar(r["k"], r["gap"], yerr=r["iwae_standard_error"], marker="o",
                   color="tab:purple")
    right.axhline(tol, color="tab:gray", linestyle="--", label=f"{tol} nats")
    right.set(xscale="log", yscale="log", xlabel="k", title="exact - IWAE")
    right.legend(fontsize=8)


def draw_prior_bound(fig, drawn, centers_1d: Array, cluster_std: float) -> None:
    axes = fig.subplots(2, 2)
    titles = {"prior_bound": "max E_{z~r} log p(x|z)", "vae": "VAE (ELBO)"}
    for ax, (dim, objective, x, samples) in zip(axes.ravel(), drawn, strict=True):
        if dim == "1d":
            grid = np.linspace(x.min() - 1.5, x.max() + 1.5, 400)
            density = sum(np.exp(-0.5 * ((grid - c) / cluster_std) ** 2) for c in centers_1d[:, 0])
            density /= 2 * cluster_std * math.sqrt(2 * math.pi)
            ax.plot(grid, density, color="tab:red", label="actual")
            ax.hist(samples[:, 0], bins=80, range=(grid[0], grid[-1]), density=True,
                    color="tab:purple", alpha=0.6, label="learned (samples)")
            ax.axvline(x.mean(), color="k", linestyle="--", label="E[x]")
            ax.set(xlabel="x", ylabel="density")
        else:
            ax.scatter(x[:1000, 0], x[:1000, 1], s=3, color="tab:red", label="actual")
            ax.scatter(samples[:1000, 0], samples[:1000, 1], s=3, color="tab:purple",
                       alpha=0.6, label="learned (samples)")
            ax.plot(*x.mean(axis=0), "kx", markersize=10, label="E[x]")
            ax.set(xlabel="x1", ylabel="x2", aspect="equal")
        ax.set_title(f"{dim}: {titles[objective]}")
        ax.legend(fontsize=7, loc="upper left")


def draw_autoencoder(fig, x: Array, models: dict, results: dict) -> None:
    rows = [("data", x)] + [(name, m.reconstruct(x)) for name, m in models.items()]
    axes = fig.subplots(len(rows), x.shape[0])
    for r, (name, images) in enumerate(rows):
        for c in range(x.shape[0]):
            axes[r, c].imshow(images[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        if name != "data":
            name = f"{name}\n{results[name]['test']['squared_error']:.2f}"
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.suptitle("test digits and their reconstructions decode(mu(x)); "
                 "label: squared error per image", fontsize=9)


def draw_kl_only(fig, history: dict, mu_start: Array, mu_end: Array, tol_mu: float,
                  tol_kl: float) -> None:
    left, right = fig.subplots(1, 2)
    left.plot(history["step"], history["mean_abs_mu"], color="tab:purple", label="mean |mu|")
    left.plot(history["step"], history["kl"], color="tab:red", label="mean KL (nats)")
    left.axhline(tol_mu, color="tab:purple", linestyle=":", label=f"tolerance {tol_mu}")
    left.axhline(tol_kl, color="tab:red", linestyle=":", label=f"tolerance {tol_kl}")
    left.set(yscale="log", xlabel="Adam step on the KL alone", title="held-out digits")
    left.legend(fontsize=8)
    right.scatter(mu_start[:, 0], mu_start[:, 1], s=4, color="tab:gray", label="start")
    right.scatter(mu_end[:, 0], mu_end[:, 1], s=4, color="tab:purple", label="end")
    right.set(xlabel="mu_1(x)", ylabel="mu_2(x)", aspect="equal",
              title="encoder means of the held-out digits")
    right.legend(fontsize=8)


def draw_beta_sweep(fig, r: dict) -> None:
    left, right = fig.subplots(1, 2)
    left.plot(r["rate"], r["distortion"], "o-", color="tab:purple")
    for i, (beta, rate, dist) in enumerate(zip(r["beta"], r["rate"], r["distortion"], strict=True)):
        left.annotate(f"beta={beta:g}", (rate, dist), textcoords="offset points",
                      xytext=(6, 4 if i % 2 else -12), fontsize=8)
    left.set(xlabel="rate: mean KL (nats)", ylabel="distortion: mean -log p(x|z) (nats)",
             title="rate-distortion, test digits")
    right.plot(r["beta"], r["rate"], "o-", color="tab:red", label="rate")
    right.plot(r["beta"], r["distortion"], "s-", color="tab:purple", label="distortion")
    right.set(xscale="log", xlabel="beta", ylabel="nats", title="mean over test digits")
    right.minorticks_off()
    right.set_xticks(r["beta"], [f"{b:g}" for b in r["beta"]])
    right.legend(fontsize=8)
