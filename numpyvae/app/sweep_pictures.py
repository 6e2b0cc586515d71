"""The pictures of a sweep folder (`PICTURES`): the rate-distortion
curve across beta (`plot_rate_distortion`) and the ELBO against the
latent size (`plot_elbo_vs_latent`), each a line per group of runs
through the means over seeds; `draw_pictures` draws those that the
grid allows. Imports numpy, sweep_spec.py and, inside the functions,
plots.py (matplotlib).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .sweep_spec import value_text

PICTURES = {"rate_distortion": "rate_distortion.png", "elbo_vs_latent": "elbo_vs_latent.png"}


def _groups(rows: list[dict], grid_keys: list[str], across: tuple) -> list[tuple[str, list]]:
    """Rows grouped by their grid values other than those in `across`."""
    keys = [key for key in grid_keys if key not in across]
    groups: dict[str, list] = {}
    for row in rows:
        label = ", ".join(f"{key}={value_text(row[key])}" for key in keys) or "all runs"
        groups.setdefault(label, []).append(row)
    return list(groups.items())


def _over_seeds(rows: list[dict], x_key: str, y_key: str, sign: float = 1.0):
    """Sorted values of `x_key`; mean, min and max of sign * y over the rows at each."""
    xs = sorted({row[x_key] for row in rows})
    ys = [[sign * row[y_key] for row in rows if row[x_key] == x] for x in xs]
    return (np.array(xs), np.array([np.mean(y) for y in ys]),
            np.array([min(y) for y in ys]), np.array([max(y) for y in ys]))


def plot_rate_distortion(rows: list[dict], grid_keys: list[str], path) -> Path:
    """Distortion (-val_log_lik) against rate (val_kl) of finished runs.

    One line per group of runs that differ only in beta and seed,
    through the means over seeds, each point labelled with its beta;
    every run is a faint dot.

    Examples
    --------
    >>> import tempfile
    >>> rows = [{"beta": b, "seed": 0, "val_kl": 8.0 / b, "val_log_lik": -20.0 - 4 * b}
    ...         for b in (0.5, 1.0, 2.0)]
    >>> path = Path(tempfile.mkdtemp()) / "rate_distortion.png"
    >>> plot_rate_distortion(rows, ["beta", "seed"], path).name
    'rate_distortion.png'
    """
    from .plots import pyplot, save_figure
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    points: list[tuple[float, float, float]] = []  # (rate, distortion, beta) of every line
    for label, group in _groups(rows, grid_keys, ("beta", "seed")):
        betas, rate, _, _ = _over_seeds(group, "beta", "val_kl")
        _, distortion, _, _ = _over_seeds(group, "beta", "val_log_lik", -1.0)
        (line,) = ax.plot(rate, distortion, marker="o", label=label)
        ax.scatter([r["val_kl"] for r in group], [-r["val_log_lik"] for r in group], s=10,
                   alpha=0.4, color=line.get_color())
        points += zip(rate, distortion, betas, strict=True)
    for (x, y), betas in _merge_close(points).items():
        ax.annotate("\u03b2=" + ", ".join(f"{b:g}" for b in betas), (x, y), xytext=(4, 3),
                    textcoords="offset points", fontsize=8)
    ax.set_xlabel("rate: KL(q(z|x) || N(0, I)) on the test split (nats per example)")
    ax.set_ylabel("distortion: -E_q log p(x|z) on the test split (nats)")
    ax.set_title("rate-distortion across beta (line: mean over seeds, dots: runs)")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(plt, fig, path)


def _merge_close(points: list) -> dict:
    """(x, y) -> sorted betas of the points within 2% of the plot's span of
    it: one label for points that lie on top of each other."""
    xy = np.array([(x, y) for x, y, _ in points])  # (n, 2)
    span = np.ptp(xy, axis=0) + 1e-12
    labels: dict = {}
    for x, y, beta in points:
        near = [p for p in labels if np.all(np.abs(np.subtract(p, (x, y))) < 0.02 * span)]
        key = near[0] if near else (x, y)
        labels[key] = sorted({*labels.get(key, []), beta})
    return labels


def plot_elbo_vs_latent(rows: list[dict], grid_keys: list[str], path) -> Path:
    """val_elbo of finished runs against latent_dim (log scale).

    One line per group of runs that differ only in latent_dim and seed:
    the mean over seeds, in a band from their min to their max.

    Examples
    --------
    >>> import tempfile
    >>> rows = [{"latent_dim": d, "seed": s, "val_elbo": -30.0 + d + s}
    ...         for d in (2, 4, 8) for s in (0, 1)]
    >>> path = Path(tempfile.mkdtemp()) / "elbo_vs_latent.png"
    >>> plot_elbo_vs_latent(rows, ["latent_dim", "seed"], path).name
    'elbo_vs_latent.png'
    """
    from .plots import pyplot, save_figure
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    for label, group in _groups(rows, grid_keys, ("latent_dim", "seed")):
        dims, mean, low, high = _over_seeds(group, "latent_dim", "val_elbo")
        (line,) = ax.plot(dims, mean, marker="o", label=label)
        ax.fill_between(dims, low, high, alpha=0.2, color=line.get_color())
    dims = sorted({row["latent_dim"] for row in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.set_xlabel("latent_dim")
    ax.set_ylabel("ELBO on the test split (nats per example, higher is better)")
    ax.set_title("ELBO against latent size (line: mean over seeds, band: min to max)")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save_figure(plt, fig, path)


def draw_pictures(rows: list[dict], grid: dict, out: Path, log) -> list[Path]:
    """The pictures that apply: beta or latent_dim must be in the grid.

    Skipped, with a line to `log`, without matplotlib; returns the
    paths written into `out`."""
    from .plots import require_matplotlib
    try:
        require_matplotlib()
    except ImportError as e:
        log(f"pictures skipped: {e}")
        return []
    done = [row for row in rows if row["status"] == "done"]
    written = []
    if "beta" in grid and done:
        written.append(plot_rate_distortion(done, list(grid), out / PICTURES["rate_distortion"]))
    if "latent_dim" in grid and done:
        written.append(plot_elbo_vs_latent(done, list(grid), out / PICTURES["elbo_vs_latent"]))
    return written
