"""Data sets: the embedded digits, MNIST from disk or a checksummed
download, a user's own .npz, and Bernoulli binarization of images.

Every loader returns ``(x_train, y_train), (x_test, y_test)`` with images
flattened to rows (n, d) of floats in [0, 1] and labels int64. Files are
read with ``allow_pickle=False``. See docs/data.md.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ._validation import (check_float_array, check_float_dtype, check_int,
                          check_unit_interval, describe)

Array = NDArray[np.floating]
Split = tuple[Array, "NDArray[np.int64] | None"]

DIGITS_SHA256 = "b2dab7b501728c22e9119ad76740b2e17c77a231e42d1e592380d90886f1a05e"
DIGITS_N_TRAIN = 1437  # the first 1437 of 1797 images train, the last 360 test
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
MNIST_CONTENT_SHA256 = "4fd73b54a84cf3532d0ba97db295783acd04e6ce7cce1e89750f05dc51d3ea1d"
DEFAULT_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
BINARIZE_MODES = ("none", "dynamic", "static")


def _scale_uint8(images: np.ndarray, dt: np.dtype, top: float) -> Array:
    """(n, ...) uint8 -> (n, d) of dtype `dt` in [0, 1]; dtype kept exact."""
    x = images.reshape(len(images), -1).astype(dt)  # (n, d)
    x /= top  # in place, so float32 stays float32
    return x


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
    resource = resources.files("numpyvae").joinpath("data", "digits.npz")
    raw = resource.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != DIGITS_SHA256:
        raise ValueError(f"{resource}: SHA-256 is {digest}, expected {DIGITS_SHA256}; "
                         "the installed copy of numpyvae is corrupt, reinstall it")
    with np.load(io.BytesIO(raw), allow_pickle=False) as f:
        x = _scale_uint8(f["images"], dt, 16.0)  # (1797, 64)
        y = f["labels"].astype(np.int64)  # (1797,)
    n = DIGITS_N_TRAIN
    return (x[:n], y[:n]), (x[n:], y[n:])


def _cache_path() -> Path:
    """$XDG_CACHE_HOME/numpyvae/mnist.npz, default ~/.cache/numpyvae/mnist.npz."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "numpyvae" / "mnist.npz"


def _mnist_candidates(path) -> list[tuple[Path, str]]:
    """Where to look for mnist.npz, in order, each with why it is looked at."""
    if path is not None:
        path = Path(path).expanduser()
        return [(path / "mnist.npz" if path.is_dir() else path, "path=")]
    places = []
    if os.environ.get("NUMPYVAE_DATA"):
        places.append((Path(os.environ["NUMPYVAE_DATA"]).expanduser() / "mnist.npz",
                       "$NUMPYVAE_DATA"))
    places.append((_cache_path(), "user cache"))
    return places


def _read_npz(path: Path, label: str) -> dict[str, np.ndarray]:
    """All arrays of an .npz file (no pickles); ValueError if unreadable."""
    try:
        f = np.load(path, allow_pickle=False)
    except (ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{label}: not a readable .npz file ({exc})") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(f"{label}: expected an .npz archive, got a single .npy array")
    with f:
        try:
            return {key: f[key] for key in f.files}
        except (ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"{label}: not a readable .npz file ({exc})") from None


def _check_mnist_arrays(arrays: dict, label: str) -> None:
    """ValueError naming `label` unless `arrays` has the mnist.npz layout."""
    missing = [k for k in MNIST_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{label}: missing keys {missing}; expected {list(MNIST_KEYS)}, "
                         f"found {sorted(arrays)}")
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) == 0:
            raise ValueError(f"{label}: x_{part}: expected uint8 images of shape "
                             f"(n, 28, 28) with n >= 1, got {describe(x)}")
        if y.dtype.kind not in "iu" or y.shape != (len(x),):
            raise ValueError(f"{label}: y_{part}: expected integer labels of shape "
                             f"({len(x)},) like x_{part}, got {describe(y)}")
        if y.min() < 0 or y.max() > 9:
            raise ValueError(f"{label}: y_{part}: expected digits 0..9, "
                             f"got values in [{y.min()}, {y.max()}]")


def _content_sha256(arrays: dict) -> str:
    """SHA-256 of the MNIST arrays' content; see `mnist_content_sha256`."""
    h = hashlib.sha256()
    for key in MNIST_KEYS:
        a = np.ascontiguousarray(arrays[key])
        shape = ",".join(str(s) for s in a.shape)
        h.update(f"{key}\n{a.dtype.str}\n{shape}\n".encode("ascii"))
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def mnist_content_sha256(path) -> str:
    """SHA-256 of the arrays in an mnist.npz file, not of its zip bytes.

    Two files holding the same arrays (zipped with other settings or
    timestamps) get the same value.

    Parameters
    ----------
    path : str or Path
        An .npz file with the mnist.npz layout (see `load_mnist`).

    Returns
    -------
    str
        64 lowercase hex digits.

    Raises
    ------
    ValueError
        If the file is not an .npz archive with the mnist.npz layout.

    Notes
    -----
    One SHA-256 over, for each key in the order x_train, y_train, x_test,
    y_test: the ASCII text ``key + "\\n" + dtype.str + "\\n" + shape +
    "\\n"`` (dtype.str as NumPy writes it, e.g. ``|u1``; shape as
    comma-separated integers, e.g. ``60000,28,28``), then the array's raw
    C-contiguous bytes as stored.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> rng = np.random.default_rng(0)
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> fake = {"x_train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
    ...         "y_train": rng.integers(0, 10, 6),
    ...         "x_test": np.zeros((2, 28, 28), np.uint8), "y_test": np.array([3, 7])}
    >>> np.savez(folder / "mnist.npz", **fake)
    >>> digest = mnist_content_sha256(folder / "mnist.npz")
    >>> len(digest), digest == mnist_content_sha256(folder / "mnist.npz")
    (64, True)
    """
    arrays = _read_npz(Path(path), str(path))
    _check_mnist_arrays(arrays, str(path))
    return _content_sha256(arrays)


def _check_sha256(value, name: str) -> str:
    if not (isinstance(value, str) and len(value) == 64
            and all(c in "0123456789abcdef" for c in value.lower())):
        raise ValueError(f"{name}: expected 64 hex digits, got {value!r}")
    return value.lower()


def _load_checked_mnist(path: Path, label: str, expected: str | None) -> dict:
    """Read and validate an mnist.npz file; compare its content checksum."""
    arrays = _read_npz(path, label)
    _check_mnist_arrays(arrays, label)
    if expected is not None:
        digest = _content_sha256(arrays)
        if digest != expected:
            raise ValueError(f"{label}: content SHA-256 is {digest}, expected {expected}; "
                             "the file is corrupt or a different data set (pass "
                             "expected_sha256= for your own file, or verify=False)")
    return arrays


def load_mnist(path=None, dtype="float32", verify: bool = True,
               expected_sha256: str | None = None) -> tuple[Split, Split]:
    """MNIST from a local mnist.npz file (never downloads).

    Parameters
    ----------
    path : str or Path, optional
        The mnist.npz file, or a folder holding it. If None, the first
        existing of ``$NUMPYVAE_DATA/mnist.npz`` and the user cache
        ``$XDG_CACHE_HOME/numpyvae/mnist.npz`` (default
        ``~/.cache/numpyvae/mnist.npz``, where `download_mnist` saves).
    dtype : {"float32", "float64"}, default "float32"
    verify : bool, default True
        Compare the file's content checksum (`mnist_content_sha256`) with
        `expected_sha256`. False skips it; the layout is always checked.
    expected_sha256 : str, optional
        64 hex digits; None means `MNIST_CONTENT_SHA256`, the standard
        file. Give your own value for a custom file of the same layout.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        x_train : ndarray, shape (n_train, 784), dtype `dtype`, uint8
            pixels divided by 255, in [0, 1]; 60000 rows for real MNIST.
        y_train : ndarray, shape (n_train,), int64, digits 0..9.
        x_test, y_test : the same for the test set (10000 rows).

    Raises
    ------
    FileNotFoundError
        If no file exists; the message lists every place looked at and
        how to get the file.
    ValueError
        If the file is not an .npz with keys x_train, y_train, x_test,
        y_test (uint8 images (n, 28, 28), labels (n,) 0..9), or if the
        checksum does not match. The message names the file.
    TypeError
        If `dtype` is not float32 or float64.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> rng = np.random.default_rng(0)
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> fake = {"x_train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
    ...         "y_train": rng.integers(0, 10, 6),
    ...         "x_test": np.zeros((2, 28, 28), np.uint8), "y_test": np.array([3, 7])}
    >>> np.savez(folder / "mnist.npz", **fake)
    >>> (x_train, y_train), (x_test, y_test) = load_mnist(folder, verify=False)
    >>> x_train.shape, x_train.dtype, y_test.tolist()
    ((6, 784), dtype('float32'), [3, 7])
    >>> bool(0 <= x_train.min() and x_train.max() <= 1)
    True
    """
    dt = check_float_dtype(dtype)
    expected = None
    if verify:
        expected = MNIST_CONTENT_SHA256 if expected_sha256 is None else expected_sha256
        expected = _check_sha256(expected, "expected_sha256")
    places = _mnist_candidates(path)
    found = [p for p, _ in places if p.is_file()]
    if not found:
        looked = "\n".join(f"  {p} ({why})" for p, why in places)
        unset = "" if path is not None or os.environ.get("NUMPYVAE_DATA") \
            else "\n  ($NUMPYVAE_DATA is not set)"
        raise FileNotFoundError(
            f"MNIST not found; looked for mnist.npz at:\n{looked}{unset}\nTo get it: set "
            "NUMPYVAE_DATA to a folder holding mnist.npz, pass path=, or call "
            f"numpyvae.datasets.download_mnist() (fetches {DEFAULT_MNIST_URL} into "
            f"{_cache_path()})")
    arrays = _load_checked_mnist(found[0], str(found[0]), expected)
    return ((_scale_uint8(arrays["x_train"], dt, 255.0), arrays["y_train"].astype(np.int64)),
            (_scale_uint8(arrays["x_test"], dt, 255.0), arrays["y_test"].astype(np.int64)))


def download_mnist(url: str = DEFAULT_MNIST_URL, dest=None,
                   expected_sha256: str | None = MNIST_CONTENT_SHA256,
                   timeout: float = 60) -> Path:
    """Download mnist.npz, check it, and only then move it into place.

    The file is written to a temporary file in the destination folder,
    its content checksum is verified, and it is renamed onto `dest`
    (``os.replace``, atomic). On any failure the temporary file is
    removed: nothing half-written is ever left at `dest`.

    Parameters
    ----------
    url : str, default `DEFAULT_MNIST_URL`
        Any URL urllib opens (https://, http://, file://).
    dest : str or Path, optional
        Target file (replaced if it exists), or an existing folder to put
        mnist.npz in. Default: the user cache
        ``$XDG_CACHE_HOME/numpyvae/mnist.npz`` (``~/.cache/...``), where
        `load_mnist` looks. Missing parent folders are created.
    expected_sha256 : str or None, default `MNIST_CONTENT_SHA256`
        Expected `mnist_content_sha256` of the download. None skips the
        checksum (the mnist.npz layout is still checked).
    timeout : float, default 60
        Seconds to wait on the network.

    Returns
    -------
    Path
        Where the file now is.

    Raises
    ------
    ConnectionError
        If the download fails (no network, refused, HTTP error, timeout);
        the message gives the URL, the reason and what to do offline.
    ValueError
        If the downloaded file is not an mnist.npz or its checksum does
        not match.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> rng = np.random.default_rng(0)
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> fake = {"x_train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
    ...         "y_train": rng.integers(0, 10, 6),
    ...         "x_test": np.zeros((2, 28, 28), np.uint8), "y_test": np.array([3, 7])}
    >>> np.savez(folder / "mnist.npz", **fake)
    >>> source = folder / "mnist.npz"
    >>> url = source.as_uri()  # a local file:// URL, no network
    >>> dest = download_mnist(url, dest=folder / "copy",
    ...                       expected_sha256=mnist_content_sha256(source))
    >>> dest.name, len(load_mnist(dest, verify=False)[0][0])
    ('copy', 6)
    """
    if expected_sha256 is not None:
        expected_sha256 = _check_sha256(expected_sha256, "expected_sha256")
    dest = _cache_path() if dest is None else Path(dest).expanduser()
    if dest.is_dir():
        dest = dest / "mnist.npz"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=".mnist-", suffix=".part",
                                     delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, \
                    open(tmp_path, "wb") as out:
                shutil.copyfileobj(response, out)
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts
            reason = getattr(exc, "reason", None) or exc
            raise ConnectionError(
                f"could not download MNIST from {url}: {reason}; if this machine is "
                f"offline, copy mnist.npz to {dest} or set NUMPYVAE_DATA") from exc
        _load_checked_mnist(tmp_path, f"download from {url}", expected_sha256)
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)  # gone already after a successful replace
    return dest


def _images(a: np.ndarray, name: str, label: str, dt: np.dtype) -> Array:
    """uint8 -> /255; float -> as is; flattened to (n, d) of dtype `dt`."""
    if a.ndim < 2 or len(a) == 0:
        raise ValueError(f"{label}: {name}: expected an array of shape (n, ...) with "
                         f"n >= 1, got {describe(a)}")
    if a.dtype == np.uint8:
        return _scale_uint8(a, dt, 255.0)
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
        If ``x_train`` is missing, an array has the wrong shape or dtype,
        ``y_test`` comes without ``x_test``, or x_train has fewer than 5
        rows to split. The message names the file.
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
    arrays = _read_npz(path, label)
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
