"""How much memory this process may still allocate, for the checks that
refuse a run or a checkpoint too large for it before allocating."""

from __future__ import annotations

import contextlib
import os


def available_memory() -> int | None:
    """Bytes this process may still allocate, or None when unknown.

    The system's available memory (MemAvailable of /proc/meminfo, else
    the physical memory), or the address-space limit (``ulimit -v``) when
    that is lower.

    Examples
    --------
    >>> n = available_memory()
    >>> n is None or n > 0
    True
    """
    sizes = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            sizes += [int(line.split()[1]) * 1024 for line in f
                      if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        with contextlib.suppress(ValueError, OSError, AttributeError):
            sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            sizes.append(soft)
    return min(sizes) if sizes else None


def size_text(n_bytes: float) -> str:
    """Bytes as GiB or MiB, three significant digits.

    Examples
    --------
    >>> size_text(3 * 2**30), size_text(5 * 2**20)
    ('3 GiB', '5 MiB')
    """
    return f"{n_bytes / 2**30:.3g} GiB" if n_bytes >= 2**28 else f"{n_bytes / 2**20:.3g} MiB"
