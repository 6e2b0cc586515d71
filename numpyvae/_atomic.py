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
    path = Path(path)
    fd, tmp = create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path, text: str) -> Path:
    """Replace file `path` with `text` (UTF-8), atomically (`write_atomic`)."""
    return write_atomic(path, text.encode("utf-8"))
