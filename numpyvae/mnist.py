"""MNIST: the mnist.npz layout, its content checksum, loading and download.

`load_mnist` reads a local mnist.npz (path=, ``$NUMPYVAE_DATA`` or the
user cache) and never downloads; `download_mnist` fetches one, checks
its content checksum (`mnist_content_sha256`, over the arrays rather
than the zip bytes) and only then moves it into place, failing with a
message that says what to do offline. Every public name here stays
importable as ``numpyvae.datasets.<name>``, where docs/data.md documents
it. Imports numpy, the standard library, _validation and npz_files.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from ._validation import check_float_dtype
from .npz_files import Split, read_npz, scale_uint8
from .reference.arrays import describe

MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
MNIST_CONTENT_SHA256 = "4fd73b54a84cf3532d0ba97db295783acd04e6ce7cce1e89750f05dc51d3ea1d"
DEFAULT_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"


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
        h.update(a.data.cast("B"))
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
    arrays = read_npz(Path(path), str(path))
    _check_mnist_arrays(arrays, str(path))
    return _content_sha256(arrays)


def _check_sha256(value, name: str) -> str:
    if not (isinstance(value, str) and len(value) == 64
            and all(c in "0123456789abcdef" for c in value.lower())):
        raise ValueError(f"{name}: expected 64 hex digits, got {value!r}")
    return value.lower()


def _load_checked_mnist(path: Path, label: str, expected: str | None) -> dict:
    """Read and validate an mnist.npz file; compare its content checksum."""
    arrays = read_npz(path, label)
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
    return ((scale_uint8(arrays["x_train"], dt, 255.0), arrays["y_train"].astype(np.int64)),
            (scale_uint8(arrays["x_test"], dt, 255.0), arrays["y_test"].astype(np.int64)))


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
