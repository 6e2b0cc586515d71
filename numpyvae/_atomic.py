"""Files written whole or not at all: a temporary file beside the target,
flushed to disk, then renamed over it (``os.replace``, atomic on POSIX and
Windows). A crash, a full disk or a file-size limit in the middle leaves
the old file as it was and no temporary file behind. Checkpoints, the
records of a run folder and exported arrays are written this way.
Imports the standard library only.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def create_temporary(path: Path) -> tuple[int, Path]:
    """A new file beside `path`, opened for writing, with the mode every
    other file gets (0666 less the umask; mkstemp's would be 0600).

    Examples
    --------
    >>> import tempfile
    >>> fd, tmp = create_temporary(Path(tempfile.mkdtemp()) / "metrics.json")
    >>> os.close(fd); tmp.name.startswith(".metrics.json."), tmp.suffix
    (True, '.tmp')
    """
    path = Path(path)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def write_temporary(path, write) -> Path:
    """A finished temporary file beside `path`: `write` (called with the
    open binary file) fills it, then it is flushed to disk and closed. On
    any error it is removed and the error raised. The caller gives it its
    name (`write_atomic`) and removes it if that fails.

    Examples
    --------
    >>> import tempfile
    >>> tmp = write_temporary(Path(tempfile.mkdtemp()) / "a.txt", lambda f: f.write(b"x"))
    >>> tmp.read_bytes(), tmp.name.startswith(".a.txt.")
    (b'x', True)
    """
    fd, tmp = create_temporary(Path(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def replace_atomic(path, write) -> Path:
    """Replace file `path` with what `write` (called with the open binary
    file) writes, atomically (`write_temporary`, then ``os.replace``).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.bin"
    >>> replace_atomic(path, lambda f: f.write(b"ab")).read_bytes()
    b'ab'
    """
    path = Path(path)
    tmp = write_temporary(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_atomic(path, data: bytes) -> Path:
    """Replace file `path` with `data`, atomically; returns the path.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.txt"
    >>> write_atomic(path, b"one") == path, path.read_bytes()
    (True, b'one')
    >>> _ = write_atomic(path, b"two"); path.read_bytes(), len(list(path.parent.iterdir()))
    (b'two', 1)
    """
    return replace_atomic(path, lambda f: f.write(data))


def write_text_atomic(path, text: str) -> Path:
    """Replace file `path` with `text` (UTF-8), atomically (`write_atomic`)."""
    return write_atomic(path, text.encode("utf-8"))
