""".npz files: read safely, written deterministically and atomically.

`read_npz` reads all arrays of an .npz archive without pickles, turning
any file that is not one into a ValueError that names it and says what
it is instead; `scale_uint8` turns stored uint8 pixels into rows of
floats in [0, 1]; `Split` is the ``(x, y)`` pair every loader returns per
split. For checkpoints: `open_regular` (regular files only, so a FIFO
cannot block the reader), `member_names` and `read_member` (each member
within a byte budget, so a zip bomb is refused unread), and
`write_npz_atomically`; `array_sha256`, the checksum of one array.
Errors are `NpzFileError` (a ValueError) naming
the file. Used by datasets.py (the digits, a user's .npz), mnist.py and
checkpoint.py; imports numpy and _atomic.py.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ._atomic import replace_atomic

Array = NDArray[np.floating]
Split = tuple[Array, "NDArray[np.int64] | None"]  # (x, y) of one split; y None without labels
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first member; an empty zip
NPY_SIGNATURE = b"\x93NUMPY"


class NpzFileError(ValueError):
    """A file is not a readable .npz archive; the message names it."""


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


def array_sha256(a: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and C-order bytes: the checksum
    a checkpoint stores for each of its arrays, whatever their dtype.

    Examples
    --------
    >>> a = np.arange(6, dtype=np.float32).reshape(2, 3)
    >>> len(array_sha256(a))
    64
    >>> array_sha256(a) == array_sha256(a.copy()), array_sha256(a) == array_sha256(a.T)
    (True, False)
    """
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def open_regular(path: Path, label: str):
    """`path` opened for reading in binary, if it is a regular file.

    A directory, a FIFO or a device is refused from its stat, unopened
    (reading a FIFO would wait for a writer). FileNotFoundError as
    `open` gives it.

    Examples
    --------
    >>> import tempfile
    >>> open_regular(Path(tempfile.mkdtemp()), "folder")
    Traceback (most recent call last):
        ...
    numpyvae.npz_files.NpzFileError: folder: not a regular file
    (a directory)
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise _not_regular(label, mode)
    # O_NONBLOCK: should a FIFO replace the file after the stat, opening it
    # does not wait for a writer, and the fstat below refuses it
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(label, mode)
    return os.fdopen(fd, "rb")


def _not_regular(label: str, mode: int) -> NpzFileError:
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO, a named pipe"
            if stat.S_ISFIFO(mode) else "a device or socket")
    return NpzFileError(f"{label}: not a regular file ({kind})")


def _not_npz(head: bytes) -> str | None:
    """What a file starting with `head` is instead of an .npz archive."""
    if head.startswith(ZIP_SIGNATURES):
        return None
    if not head:
        return "the file is empty"
    if head.startswith(NPY_SIGNATURE):
        return "it holds a single .npy array"
    if all(b in b"\t\n\r" or 32 <= b < 127 for b in head):
        return "it is a text file, such as a CSV"
    return "it does not start with the zip signature of an .npz file"


def read_npz(path: Path, label: str, contents: str = "") -> dict[str, np.ndarray]:
    """All arrays of an .npz file (no pickles); ValueError if unreadable.

    Parameters
    ----------
    path : Path
        The file.
    label : str
        How error messages name it (the path, or where it came from).
    contents : str, optional
        What the archive should hold, for the message about a file that
        is no .npz archive ("x_train and optionally ...").

    Returns
    -------
    dict of str to ndarray
        Every array of the archive, read into memory.

    Raises
    ------
    ValueError
        If the file is not an .npz archive (text such as a CSV, a single
        .npy, an empty file, other bytes), not a regular file, or not a
        readable one (a broken zip, an archive holding pickles), naming
        `label`.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "d.csv"
    >>> _ = path.write_text("x0,x1\\n0.5,0.25\\n")
    >>> read_npz(path, "d.csv", "x_train")
    Traceback (most recent call last):
        ...
    numpyvae.npz_files.NpzFileError: d.csv: not an .npz archive (it is a
    text file, such as a CSV); expected an .npz file holding x_train
    """
    with open_regular(path, label) as f:
        instead = _not_npz(f.read(512))
        if instead is not None:
            holding = f" holding {contents}" if contents else ""
            raise NpzFileError(f"{label}: not an .npz archive ({instead}); "
                               f"expected an .npz file{holding}")
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as npz:
                return {key: npz[key] for key in npz.files}
        except (ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise NpzFileError(f"{label}: not a readable .npz file ({exc})") from None


def member_names(zf: zipfile.ZipFile, label: str) -> dict:
    """Array name -> ZipInfo of every member; anything but unique .npy is refused."""
    members = {}
    for info in zf.infolist():
        name = info.filename
        if not name.endswith(".npy") or name[:-4] in members:
            raise NpzFileError(f"{label}: unexpected archive member {name!r}")
        members[name[:-4]] = info
    return members


def _header(zf: zipfile.ZipFile, info, label: str, name: str) -> tuple:
    """(shape, dtype, header bytes) of a member's .npy header, read alone."""
    with zf.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise NpzFileError(f"{label}: {name} has .npy format version {version}; "
                               "expected 1.0 or 2.0")
        offset = member.tell()
    return shape, dtype, offset


def read_member(zf: zipfile.ZipFile, info, label: str, name: str, budget: int):
    """One array, read whole (so its CRC-32 is checked) with
    ``allow_pickle=False``, after its declared size (the zip directory's
    and its .npy header's) is checked against `budget` bytes of data."""
    header_max = 65536 + 12
    if info.file_size > budget + header_max:
        raise NpzFileError(f"{label}: {name} declares {info.file_size} bytes, more than "
                           f"the {budget} its model allows; refused before reading it")
    shape, dtype, offset = _header(zf, info, label, name)
    n_bytes = math.prod(shape) * dtype.itemsize
    if n_bytes > budget or offset + n_bytes != info.file_size:
        raise NpzFileError(f"{label}: {name} declares shape {shape} of {dtype} "
                           f"({n_bytes} bytes) in a member of {info.file_size} bytes; "
                           f"its model allows {budget}")
    return np.lib.format.read_array(io.BytesIO(zf.read(info)), allow_pickle=False)


def write_npz(f, arrays: dict) -> None:
    """Write `arrays` as an uncompressed ``.npz`` with fixed timestamps.

    Same as ``np.savez`` but deterministic: the same arrays always give
    the same bytes, so save -> load -> save is bit-identical.
    """
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, a in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(a), allow_pickle=False)


def write_npz_atomically(path: Path, arrays: dict) -> None:
    """`write_npz` to a temporary file beside `path`, synced, then renamed
    over it with ``os.replace`` (`_atomic.replace_atomic`): a crash or an
    interrupt leaves the previous file intact (and, unless the process is
    killed, no temporary file)."""
    replace_atomic(path, lambda f: write_npz(f, arrays))
