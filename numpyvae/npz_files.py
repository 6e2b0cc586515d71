"""Image data as stored in .npz files, shared by every file loader.

`read_npz` reads all arrays of an .npz archive without pickles, turning
any unreadable file into a ValueError that names it; `scale_uint8`
turns stored uint8 pixels into rows of floats in [0, 1]; `Split` is the
``(x, y)`` pair every loader returns per split. Used by datasets.py
(the digits, a user's .npz) and mnist.py; imports only numpy.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]
Split = tuple[Array, "NDArray[np.int64] | None"]  # (x, y) of one split; y None without labels


def scale_uint8(images: np.ndarray, dt: np.dtype, top: float) -> Array:
    """(n, ...) uint8 -> (n, d) of dtype `dt` in [0, 1]; dtype kept exact.

    Parameters
    ----------
    images : ndarray, shape (n, ...), uint8
    dt : numpy.dtype
        float32 or float64, the dtype of the result.
    top : float
        The stored value that means 1 (255 for pixels, 16 for the
        digits' counts).

    Returns
    -------
    ndarray, shape (n, d), dtype `dt`
        ``images / top``, each image flattened to a row.
    """
    x = images.reshape(len(images), -1).astype(dt)  # (n, d)
    x /= top  # in place, so float32 stays float32
    return x


def read_npz(path: Path, label: str) -> dict[str, np.ndarray]:
    """All arrays of an .npz file (no pickles); ValueError if unreadable.

    Parameters
    ----------
    path : Path
        The file.
    label : str
        How error messages name it (the path, or where it came from).

    Returns
    -------
    dict of str to ndarray
        Every array of the archive, read into memory.

    Raises
    ------
    ValueError
        If the file is not a readable .npz archive (a single .npy, a
        broken zip, a file holding pickles), naming `label`.
    """
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
