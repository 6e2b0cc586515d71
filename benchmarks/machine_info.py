"""What the benchmarks record about the machine, shared by the scripts.

Imports no NumPy: `pin_blas_threads` must run before NumPy is imported.
"""

from __future__ import annotations

import os
from pathlib import Path


def pin_blas_threads(threads: int):
    """The threadpoolctl module if installed (the caller pins threads with it
    after importing NumPy), else None after setting OPENBLAS/OMP/MKL_NUM_THREADS
    to `threads`, which only works before NumPy is imported."""
    try:
        import threadpoolctl
    except ImportError:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
        return None
    return threadpoolctl


def cpu_name(default: str = "unknown") -> str:
    """The CPU's model name from /proc/cpuinfo, or `default`."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default
