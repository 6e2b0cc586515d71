"""What a trained model gives back, written to files: samples and latent codes.

``numpyvae sample`` and ``numpyvae encode`` use these on a run folder's
checkpoint; from Python, ``numpyvae.load(path)`` gives the model, whose
`sample`, `reconstruct` and `encode` do the same in memory. Any model of
the model protocol (protocol.py) will do: `VAE` or `HierarchicalVAE`,
reached through its `sample`, `encode`, `as_input` and config alone.

A file is written atomically (a temporary file beside it, then a rename)
and never replaces an existing one unless asked to (``overwrite``): a
user's work is never lost.
"""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .._atomic import write_temporary
from .._validation import check_int
from ..protocol import Model
from ..vae import as_generator

Array = NDArray[np.floating]

SAMPLE_SUFFIXES = (".png", ".npy", ".csv")
LATENT_SUFFIXES = (".npz", ".csv")


def draw_samples(model: Model, n: int, rng=None, draws: bool = False) -> Array:
    """n decoder means at z drawn from the generative model (z ~ N(0, I);
    for two layers z2 ~ N(0, I), z1 ~ p(z1|z2)), or with `draws` x ~ p(x|z).

    Parameters
    ----------
    model : any model of the protocol (VAE, HierarchicalVAE)
    n : int
    rng : numpy.random.Generator or int, optional
        Source of z (and of x with `draws`); None is seed 0.
    draws : bool
        False: the decoder means mu_theta(z) (pixel probabilities for a
        Bernoulli decoder, smooth pictures). True: one draw of x from
        p(x|z): 0/1 pixels ~ Bernoulli(mean), or mean + sigma * N(0, I).

    Returns
    -------
    ndarray, shape (n, d_x), the model's dtype

    Examples
    --------
    >>> from numpyvae import VAE
    >>> model = VAE(4, 2, hidden=(3,), rng=0)
    >>> means = draw_samples(model, 3, rng=1)
    >>> means.shape, bool(((means > 0) & (means < 1)).all())
    ((3, 4), True)
    >>> x = draw_samples(model, 3, rng=1, draws=True)
    >>> sorted(set(x.ravel().tolist())) <= [0.0, 1.0]
    True
    """
    n = check_int(n, "n", 1)
    rng = as_generator(0 if rng is None else rng)
    means = model.sample(n, rng)  # (n, d_x)
    if not draws:
        return means
    if model.config.likelihood == "bernoulli":
        return (rng.random(means.shape, dtype=means.dtype) < means).astype(means.dtype)
    sigma = model.config.sigma
    return means + sigma * rng.standard_normal(means.shape, dtype=means.dtype)


def encode_all(model: Model, x, batch_size: int = 1000) -> tuple[Array, Array]:
    """``(mu, log_var)`` of q(z|x) for every row of `x`, a batch at a time:
    `model.encode`, the latent the decoder reads (z1 of a two-layer model).

    Examples
    --------
    >>> from numpyvae import VAE
    >>> model = VAE(4, 2, hidden=(3,), rng=0)
    >>> x = np.random.default_rng(0).random((5, 4))
    >>> mu, log_var = encode_all(model, x, batch_size=2)
    >>> mu.shape, bool(np.allclose(mu, model.encode(x)[0]))
    ((5, 2), True)
    """
    x = model.as_input(x)
    batch_size = check_int(batch_size, "batch_size", 1)
    parts = [model.encode(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    return (np.concatenate([mu for mu, _ in parts]),
            np.concatenate([log_var for _, log_var in parts]))


def check_target(path, suffixes: tuple[str, ...], overwrite: bool, name: str = "--out") -> Path:
    """`path` as a Path, refused when its suffix is not one of `suffixes`
    or when it exists (unless `overwrite`); checked before any work.

    Examples
    --------
    >>> check_target("samples.gif", SAMPLE_SUFFIXES, False)
    Traceback (most recent call last):
        ...
    ValueError: --out: expected a file name ending in .png, .npy or .csv, got 'samples.gif'
    """
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        allowed = ", ".join(suffixes[:-1]) + f" or {suffixes[-1]}"
        raise ValueError(f"{name}: expected a file name ending in {allowed}, got {str(path)!r}")
    if path.exists() and not overwrite:
        raise ValueError(f"{name}: {path} exists; choose another file name, or replace it "
                         "with --overwrite")
    if path.is_dir():
        raise ValueError(f"{name}: {path} is a folder; expected a file name")
    return path


def write_samples(path, samples: Array, overwrite: bool = False, title: str | None = None) -> Path:
    """`samples` (n, d) as a picture (.png, square images), .npy or .csv.

    The .png is a grid of ceil(sqrt(n)) columns (needs matplotlib); the
    .csv has one row per sample, columns ``x0, x1, ...``.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> path = write_samples(folder / "s.npy", np.zeros((2, 4)))
    >>> np.load(path).shape
    (2, 4)
    >>> write_samples(folder / "s.npy", np.ones((2, 4)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: --out: .../s.npy exists; choose another file name, or replace it with --overwrite
    """
    path = check_target(path, SAMPLE_SUFFIXES, overwrite)
    suffix = path.suffix.lower()
    if suffix == ".png":
        from . import plots
        n_cols = int(np.ceil(np.sqrt(samples.shape[0])))
        tmp = path.parent / f".{path.stem}.{secrets.token_hex(6)}.png"
        try:
            plots.plot_samples(samples, tmp, n_cols=n_cols, title=title)
            return _publish(tmp, path, overwrite)
        finally:
            tmp.unlink(missing_ok=True)
    buffer = io.BytesIO()
    if suffix == ".npy":
        np.save(buffer, samples)
    else:
        header = ",".join(f"x{j}" for j in range(samples.shape[1]))
        np.savetxt(buffer, samples, delimiter=",", header=header, comments="", fmt="%.9g")
    return _write_bytes(path, buffer.getvalue(), overwrite)


def write_latents(path, mu: Array, log_var: Array, labels=None,
                  overwrite: bool = False) -> Path:
    """Latent means and log-variances (and labels) as .npz or .csv.

    .npz: arrays ``mu``, ``log_var`` and, when given, ``labels``. .csv:
    columns ``mu_0 .. mu_{d-1}, log_var_0 .., label``, a row per example.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "z.npz"
    >>> _ = write_latents(path, np.zeros((3, 2)), np.ones((3, 2)), np.arange(3))
    >>> sorted(np.load(path).files)
    ['labels', 'log_var', 'mu']
    """
    path = check_target(path, LATENT_SUFFIXES, overwrite)
    buffer = io.BytesIO()
    if path.suffix.lower() == ".npz":
        if labels is None:
            np.savez(buffer, mu=mu, log_var=log_var)
        else:
            np.savez(buffer, mu=mu, log_var=log_var, labels=np.asarray(labels))
    else:
        d = mu.shape[1]
        columns = [f"mu_{j}" for j in range(d)] + [f"log_var_{j}" for j in range(d)]
        table = np.column_stack([mu, log_var]).astype(np.float64)
        if labels is not None:
            columns.append("label")
            table = np.column_stack([table, np.asarray(labels, dtype=np.float64)])
        np.savetxt(buffer, table, delimiter=",", header=",".join(columns), comments="",
                   fmt="%.9g")
    return _write_bytes(path, buffer.getvalue(), overwrite)


def _write_bytes(path: Path, data: bytes, overwrite: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = write_temporary(path, lambda f: f.write(data))
    try:
        return _publish(tmp, path, overwrite)
    finally:
        tmp.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path, overwrite: bool) -> Path:
    """Give the finished file `tmp` its name: replace `path` when
    `overwrite`, else a hard link, which fails if `path` appeared meanwhile."""
    if overwrite:
        os.replace(tmp, path)
        return path
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ValueError(f"--out: {path} exists; choose another file name, or replace it "
                         "with --overwrite") from None
    except OSError:  # a file system without hard links
        if path.exists():
            raise
        os.replace(tmp, path)
    return path
