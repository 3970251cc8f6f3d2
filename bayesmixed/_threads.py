"""BLAS thread counts chosen per operation, so that a busy machine does not slow fits tenfold.

OpenBLAS's worker threads spin while they wait for work. When other processes hold the
cores, a multi-threaded factorization spends most of its time in threads that wait for a
core (InstEval's ML fit: 109 s under load with the default threads, 6.7 s with one). The
engines therefore run with one BLAS thread and ask for more only around an operation that
is large enough to gain from them, and only when cores are idle right now: the number of
runnable tasks is read from ``/proc/loadavg`` (its fourth field, ``running/total``), at
most a few times a second.

Bottom layer: imports nothing from the package but the standard library and threadpoolctl.
"""

from __future__ import annotations

import contextlib
import os
import time

from threadpoolctl import ThreadpoolController

MIN_PARALLEL_FLOPS = 2e8      # BLAS: below this, thread start-up and synchronisation cost more than they save
MIN_KERNEL_FLOPS = 2e7        # the package's own threaded kernels (a persistent pool, no spinning)
CACHE_SECONDS = 0.25          # how long a reading of the run queue is trusted

_CONTROLLER: ThreadpoolController | None = None
_RUNNING = {"t": -1.0, "others": 0}
_CAPS: list[int] = []         # the BLAS thread setting each engine block found on entry


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):      # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _read_others() -> int:
    """Runnable tasks other than this one, from /proc/loadavg (the 1-minute load where absent)."""
    try:
        with open("/proc/loadavg") as fh:
            running = int(fh.read().split()[3].split("/")[0])
        return max(running - 1, 0)          # the reading process is itself running
    except (OSError, IndexError, ValueError):   # pragma: no cover - not Linux
        try:
            return int(round(os.getloadavg()[0]))
        except OSError:
            return 0


def other_runnable() -> int:
    """Runnable tasks besides this process right now (cached for ``CACHE_SECONDS``)."""
    now = time.monotonic()
    if now - _RUNNING["t"] > CACHE_SECONDS:
        _RUNNING["others"] = _read_others()
        _RUNNING["t"] = now
    return _RUNNING["others"]


def choose_threads(flops: float, cores: int, others: int, max_threads: int | None = None, *,
                   min_flops: float = MIN_PARALLEL_FLOPS) -> int:
    """BLAS threads for an operation of ``flops`` on ``cores`` cores with ``others`` runnable tasks.

    One thread for small operations or when the other tasks fill the cores; otherwise one
    per idle core (this process's own core included), capped by ``max_threads``.

    Examples
    --------
    >>> choose_threads(1e6, cores=4, others=0)          # small: never worth threads
    1
    >>> choose_threads(5e8, cores=4, others=0)          # large, machine idle
    4
    >>> choose_threads(5e8, cores=4, others=2)          # two cores busy elsewhere
    2
    >>> choose_threads(5e8, cores=2, others=2)          # every core busy: never spin against them
    1
    >>> choose_threads(5e7, cores=2, others=0, min_flops=2e7)
    2
    """
    if flops < min_flops or cores <= 1:
        return 1
    n = cores - others
    if max_threads is not None:
        n = min(n, max_threads)
    return max(1, min(n, cores))


def controller() -> ThreadpoolController:
    """One threadpoolctl controller for the process (its library scan is not free)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def blas_limit(n: int):
    """Context manager: BLAS libraries limited to ``n`` threads inside the block."""
    return controller().limit(limits=int(n), user_api="blas")


def current_blas_threads() -> int:
    """The BLAS libraries' thread setting now (the largest, 1 when none is loaded)."""
    return max([lib.num_threads for lib in controller().lib_controllers if lib.user_api == "blas"] or [1])


@contextlib.contextmanager
def single_blas_thread():
    """Context manager: one BLAS thread (what the engines run with between large operations).

    The setting found on entry (the user's, e.g. ``OPENBLAS_NUM_THREADS`` or an outer
    ``threadpool_limits``) caps what :func:`threads_for` may choose inside the block.

    Examples
    --------
    >>> import numpy as np
    >>> with single_blas_thread():
    ...     float(np.ones((3, 3)).sum()), current_blas_threads()
    (9.0, 1)
    """
    _CAPS.append(current_blas_threads())
    try:
        with blas_limit(1):
            yield
    finally:
        _CAPS.pop()


def thread_cap() -> int:
    """Most threads the user allows: the setting outside the engines' blocks."""
    return _CAPS[0] if _CAPS else current_blas_threads()


def threads_for(flops: float, min_flops: float = MIN_PARALLEL_FLOPS) -> int:
    """Threads worth using now for an operation of ``flops`` (see :func:`choose_threads`).

    Never more than :func:`thread_cap`: a user's one-thread setting stays one thread.

    Examples
    --------
    >>> threads_for(10.0)
    1
    """
    if flops < min_flops:
        return 1
    return choose_threads(flops, available_cores(), other_runnable(), thread_cap(), min_flops=min_flops)


def blas_threads_for(flops: float):
    """Context manager giving an operation of ``flops`` the threads :func:`threads_for` chooses.

    A no-op (``contextlib.nullcontext``) for operations below ``MIN_PARALLEL_FLOPS`` (BLAS
    libraries run those on one thread anyway); a limit to the chosen count, one included,
    for larger ones, so that they never spin against busy processes.

    Examples
    --------
    >>> import numpy as np
    >>> with single_blas_thread(), blas_threads_for(1e3):
    ...     float(np.eye(2).trace())
    2.0
    """
    if flops < MIN_PARALLEL_FLOPS:
        return contextlib.nullcontext()
    return blas_limit(threads_for(flops))
