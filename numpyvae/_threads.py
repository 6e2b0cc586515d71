"""A second core for one call: the helper thread and BLAS pinning that
`fused_eval` and the split training step (`fused_step.forward_backward`)
share.

NumPy releases the GIL in its loops and in BLAS, so two Python threads
can each run array work on a core of their own. That pays only when
BLAS keeps to one thread per caller for the duration: otherwise
OpenBLAS's own worker thread spins on the second core between products.
Pinning BLAS needs threadpoolctl (``pip install "numpyvae[threads]"``;
it comes with scikit-learn), imported on first need; without it, or on
one core, the callers run everything on the calling thread, and get the
same bits.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_helper: tuple[int, ThreadPoolExecutor] | None = None  # (pid that made it, executor)
_controller = None  # threadpoolctl.ThreadpoolController, made once


def threadpoolctl():
    """The optional threadpoolctl module (imported on first need), or None."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl


def two_cores() -> bool:
    """True when a second thread can have a core of its own: two cores or
    more, and threadpoolctl installed to pin BLAS to one thread each."""
    return (os.cpu_count() or 1) >= 2 and threadpoolctl() is not None


def one_blas_thread(active: bool):
    """A context in which BLAS runs on one thread (restored after), when
    `active`; else nothing changes."""
    global _controller
    if not active:
        return contextlib.nullcontext()
    with _lock:
        if _controller is None:  # finding the loaded libraries takes a while: once
            _controller = threadpoolctl().ThreadpoolController()
    return _controller.limit(limits=1)


def helper() -> ThreadPoolExecutor:
    """The one helper thread, made on first use (again in a forked child,
    where the parent's thread does not exist). Callers submit a task,
    run their own share, then wait for it; a helper task never submits
    another, so calls from several threads queue and cannot deadlock."""
    global _helper
    with _lock:
        if _helper is None or _helper[0] != os.getpid():
            _helper = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="numpyvae"))
        return _helper[1]
