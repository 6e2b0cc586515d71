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
_controller = None  # threadpoolctl's controller of the BLAS libraries, made once


def threadpoolctl():
    """The optional threadpoolctl module (imported on first need), or None."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl


def two_cores() -> bool:
    """True when a second thread can have a core of its own: two cores or
    more, threadpoolctl installed to pin BLAS to one thread per caller,
    and BLAS allowed two threads or more as things stand (a caller that
    limited BLAS to one thread, as a sweep does for one-thread runs, keeps
    to one core)."""
    if (os.cpu_count() or 1) < 2 or threadpoolctl() is None:
        return False
    return max((lib.num_threads for lib in _blas().lib_controllers), default=1) >= 2


def one_blas_thread(active: bool):
    """A context in which BLAS runs on one thread (restored after), when
    `active`; else nothing changes."""
    if not active:
        return contextlib.nullcontext()
    return _blas().limit(limits=1)


def _blas():
    """threadpoolctl's controller of the BLAS libraries loaded, made once
    (finding them takes a while)."""
    global _controller
    with _lock:
        if _controller is None:
            _controller = threadpoolctl().ThreadpoolController().select(user_api="blas")
        return _controller


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
