"""Data sets: the embedded digits, MNIST from disk or a checksummed
download, a user's own .npz, and Bernoulli binarization of images.

Every loader returns ``(x_train, y_train), (x_test, y_test)`` with images
flattened to rows (n, d) of floats in [0, 1] and labels int64. Files are
read with ``allow_pickle=False``. See docs/data.md.

This module holds the digits, a user's own .npz and binarization; MNIST
(its layout, checksum, loading and download) lives in mnist.py and the
.npz reading all loaders share in npz_files.py. `load_mnist`,
`download_mnist`, `mnist_content_sha256` and the MNIST constants stay
importable from here.
"""

from __future__ import annotations

import hashlib
import io
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ._validation import check_float_dtype, check_int, check_unit_interval

# MNIST lives in mnist.py; its public names stay importable as
# numpyvae.datasets.<name>, where docs/data.md documents them.
from .mnist import (  # noqa: F401
    DEFAULT_MNIST_URL,
    MNIST_CONTENT_SHA256,
    MNIST_KEYS,
    download_mnist,
    load_mnist,
    mnist_content_sha256,
)
from .npz_files import Split, read_npz, scale_uint8
from .reference.arrays import check_float_array, describe

Array = NDArray[np.floating]

DIGITS_SHA256 = "b2dab7b501728c22e9119ad76740b2e17c77a231e42d1e592380d90886f1a05e"
DIGITS_N_TRAIN = 1437  # the first 1437 of 1797 images train, the last 360 test
BINARIZE_MODES = ("none", "dynamic", "static")
NPZ_DATASET_KEYS = "x_train and optionally x_test, y_train, y_test (see docs/data.md)"


def load_digits(dtype="float32") -> tuple[Split, Split]:
    """The 1,797 8x8 handwritten digits shipped with numpyvae.

    The UCI optdigits test set (Alpaydin and Kaynak, 1998; CC BY 4.0, see
    numpyvae/data/NOTICE.md). Fixed split: the first 1437 examples are the
    training set, the last 360 the test set (about 36 per class).

    Parameters
    ----------
    dtype : {"float32", "float64"}, default "float32"
        dtype of the images.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        x_train : ndarray, shape (1437, 64), dtype `dtype`, values in [0, 1]
            (the stored counts 0..16 divided by 16).
        y_train : ndarray, shape (1437,), int64, digits 0..9.
        x_test, y_test : the same for the last 360 examples.

    Raises
    ------
    TypeError
        If `dtype` is not float32 or float64.
    ValueError
        If the embedded file's SHA-256 is not `DIGITS_SHA256` (corrupt
        install; reinstall numpyvae).

    Examples
    --------
    >>> (x_train, y_train), (x_test, y_test) = load_digits()
    >>> x_train.shape, x_test.shape, x_train.dtype, y_test.dtype
    ((1437, 64), (360, 64), dtype('float32'), dtype('int64'))
    """
    dt = check_float_dtype(dtype)
    resource = resources.files("numpyvae").joinpath("data").joinpath("digits.npz")
    raw = resource.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != DIGITS_SHA256:
        raise ValueError(f"{resource}: SHA-256 is {digest}, expected {DIGITS_SHA256}; "
                         "the installed copy of numpyvae is corrupt, reinstall it")
    with np.load(io.BytesIO(raw), allow_pickle=False) as f:
        x = scale_uint8(f["images"], dt, 16.0)  # (1797, 64)
        y = f["labels"].astype(np.int64)  # (1797,)
    n = DIGITS_N_TRAIN
    return (x[:n], y[:n]), (x[n:], y[n:])


def _images(a: np.ndarray, name: str, label: str, dt: np.dtype) -> Array:
    """uint8 -> /255; float -> as is; flattened to (n, d) of dtype `dt`."""
    if a.ndim < 2 or len(a) == 0:
        raise ValueError(f"{label}: {name}: expected an array of shape (n, ...) with "
                         f"n >= 1, got {describe(a)}")
    if a.dtype == np.uint8:
        return scale_uint8(a, dt, 255.0)
    if a.dtype.kind != "f":
        raise ValueError(f"{label}: {name}: expected uint8 images (0..255) or floats, "
                         f"got dtype {a.dtype}")
    x = a.reshape(len(a), -1).astype(dt)  # (n, d)
    if not np.isfinite(x).all():
        raise ValueError(f"{label}: {name}: expected finite values")
    return x


def _labels(arrays: dict, name: str, n: int, label: str):
    if name not in arrays:
        return None
    y = arrays[name]
    if y.dtype.kind not in "iu" or y.shape != (n,):
        raise ValueError(f"{label}: {name}: expected integer labels of shape ({n},), "
                         f"got {describe(y)}")
    return y.astype(np.int64)


def load_npz_dataset(path, dtype="float32") -> tuple[Split, Split]:
    """Your own data set from an .npz file, in the same form as MNIST.

    Parameters
    ----------
    path : str or Path
        An .npz file (read with allow_pickle=False) with key ``x_train``
        and optionally ``x_test``, ``y_train``, ``y_test``. Images are
        (n, ...) arrays: uint8 arrays are taken as 0..255 pixels and
        divided by 255; float arrays are used as stored, so scale them
        yourself (a Bernoulli VAE needs [0, 1]).
    dtype : {"float32", "float64"}, default "float32"

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        x_* : ndarray, shape (n, d), dtype `dtype`, flattened images.
        y_* : ndarray, shape (n,), int64, or None without labels.
        Without ``x_test``, the last ``n // 5`` rows of x_train (and of
        y_train) are split off as the test set, in file order.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        If the file is not an .npz archive (a CSV or other text, a single
        .npy, an empty file), ``x_train`` is missing, an array has the
        wrong shape or dtype, ``y_test`` comes without ``x_test``, or
        x_train has fewer than 5 rows to split. The message names the
        file.
    TypeError
        If `dtype` is not float32 or float64.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "mine.npz"
    >>> images = np.random.default_rng(0).integers(0, 256, (10, 3, 3), dtype=np.uint8)
    >>> np.savez(path, x_train=images)
    >>> (x_train, y_train), (x_test, y_test) = load_npz_dataset(path)
    >>> x_train.shape, x_test.shape, x_train.dtype, y_train
    ((8, 9), (2, 9), dtype('float32'), None)
    """
    dt, path = check_float_dtype(dtype), Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no file at {path}")
    label = str(path)
    arrays = read_npz(path, label, NPZ_DATASET_KEYS)
    if "x_train" not in arrays:
        raise ValueError(f"{label}: missing key 'x_train'; found {sorted(arrays)}")
    x_train = _images(arrays["x_train"], "x_train", label, dt)  # (n, d)
    y_train = _labels(arrays, "y_train", len(x_train), label)
    if "x_test" not in arrays:
        if "y_test" in arrays:
            raise ValueError(f"{label}: y_test given without x_test")
        n_test = len(x_train) // 5
        if n_test == 0:
            raise ValueError(f"{label}: x_train: need at least 5 rows to split off a "
                             f"test set, got {len(x_train)}; add x_test to the file")
        n = len(x_train) - n_test
        y_test = None if y_train is None else y_train[n:]
        y_train = None if y_train is None else y_train[:n]
        return (x_train[:n], y_train), (x_train[n:], y_test)
    x_test = _images(arrays["x_test"], "x_test", label, dt)
    if x_test.shape[1] != x_train.shape[1]:
        raise ValueError(f"{label}: x_test: expected {x_train.shape[1]} features per row "
                         f"like x_train, got {x_test.shape[1]}")
    return (x_train, y_train), (x_test, _labels(arrays, "y_test", len(x_test), label))


def static_binarize(x: Array, seed: int) -> Array:
    """One fixed Bernoulli(x) draw: the same output for the same x and seed.

    Apply it once to the whole data set before training (per minibatch
    the same example would get a different draw in each batch).

    Parameters
    ----------
    x : ndarray, shape (n, d), float32 or float64, values in [0, 1]
    seed : int >= 0

    Returns
    -------
    ndarray, shape (n, d), dtype of x, values 0 or 1.

    Examples
    --------
    >>> x = np.full((2, 3), 0.5)
    >>> bool((static_binarize(x, 1) == static_binarize(x, 1)).all())
    True
    """
    check_float_array(x, "x")
    check_unit_interval(x, "x")
    seed = check_int(seed, "seed", 0)
    u = np.random.default_rng(seed).random(x.shape, dtype=x.dtype)
    return (u < x).astype(x.dtype)


def binarize(x: Array, mode: str, rng: np.random.Generator | int | None = None) -> Array:
    """Binarize images in [0, 1]: not at all, afresh each call, or once.

    Parameters
    ----------
    x : ndarray, shape (n, d), float32 or float64, values in [0, 1]
    mode : {"none", "dynamic", "static"}
        "none" returns `x` itself. "dynamic" draws a fresh Bernoulli(x)
        sample each call (pixel = 1 with probability x), from `rng`.
        "static" returns ``static_binarize(x, rng)``: one fixed draw.
    rng : numpy.random.Generator or int
        "dynamic" needs a Generator (reuse it so calls differ; an int
        would repeat one draw); "static" needs an int seed; "none"
        ignores it.

    Returns
    -------
    ndarray, shape (n, d), dtype of x; values 0 or 1 unless mode="none".

    Raises
    ------
    ValueError
        For an unknown mode, or x outside [0, 1].
    TypeError
        If x is not a float array or `rng` is the wrong kind for `mode`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> xb = binarize(np.full((4, 5), 0.5, dtype=np.float32), "dynamic", rng)
    >>> xb.dtype, sorted(set(xb.ravel().tolist())) <= [0.0, 1.0]
    (dtype('float32'), True)
    """
    if mode == "none":
        return x
    if mode == "static":
        if not isinstance(rng, (int, np.integer)) or isinstance(rng, bool):
            raise TypeError(f"rng: mode='static' needs an int seed (the draw is fixed "
                            f"by it), got {describe(rng)}")
        return static_binarize(x, int(rng))
    if mode == "dynamic":
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: mode='dynamic' needs a numpy.random.Generator, reused "
                            f"across calls, e.g. np.random.default_rng(0); got {describe(rng)}")
        check_float_array(x, "x")
        check_unit_interval(x, "x")
        return (rng.random(x.shape, dtype=x.dtype) < x).astype(x.dtype)
    raise ValueError(f"mode: expected one of {BINARIZE_MODES}, got {mode!r}")
