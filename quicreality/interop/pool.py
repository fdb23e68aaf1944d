"""A small bounded pool for the post-run analysis, delivering results in submission order.

Theory of operation
-------------------
After a run's captures stop, its verdict still needs the key merge, two ``editcap`` and two
``tshark`` passes and the file comparison: 1-4 s in which the link is idle.  The runner hands
that work (a callable returning the run's outcome) to :class:`OrderedPool` and starts the next
run.  The pool:

* runs at most ``workers`` jobs at once, in threads whose nice value is raised by ``nice``
  (on Linux the nice value is per thread and children inherit it, so the tshark and editcap
  processes a job starts run at that priority too): the live run keeps the CPU it needs;
* holds at most ``max_pending`` unfinished jobs; :meth:`submit` blocks beyond that, so a slow
  analysis can never pile up captures on disk;
* hands results back in submission order (:meth:`ready` returns the finished head, :meth:`drain`
  waits for all), so progress lines and the outcome list keep the run order.

A job's result does not depend on when it runs: it reads only its own run's files.  The caller
drains the pool before a run whose number is the measurement (goodput), so that no analysis
shares the CPU with it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

__all__ = ["OrderedPool"]

T = TypeVar("T")


def lower_priority(nice: int) -> None:
    """Thread initializer: raise this thread's nice value by ``nice`` (Linux: per thread)."""
    if nice > 0 and hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        with contextlib.suppress(OSError):
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)


class OrderedPool(Generic[T]):
    """Background jobs (see the module docstring); use as a context manager."""

    def __init__(self, workers: int = 1, max_pending: int = 2, nice: int = 10) -> None:
        if workers < 1 or max_pending < 1:
            raise ValueError("workers and max_pending must be >= 1")
        self._ex = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qr-analysis",
                                      initializer=lower_priority, initargs=(nice,))
        self._slots = threading.BoundedSemaphore(max_pending)
        self._queue: deque[Future[T]] = deque()
        #: seconds the caller spent blocked in submit/drain (analysis not hidden by a run)
        self.waited_s = 0.0

    def submit(self, job: Callable[[], T]) -> None:
        """Queue ``job``; blocks while ``max_pending`` jobs are unfinished."""
        t0 = time.monotonic()
        self._slots.acquire()
        self.waited_s += time.monotonic() - t0
        try:
            fut = self._ex.submit(job)
        except BaseException:
            self._slots.release()
            raise
        fut.add_done_callback(lambda _f: self._slots.release())
        self._queue.append(fut)

    def ready(self) -> list[T]:
        """Results of the finished jobs at the head of the queue, in submission order
        (a job's exception is raised here)."""
        out: list[T] = []
        while self._queue and self._queue[0].done():
            out.append(self._queue.popleft().result())
        return out

    def drain(self) -> list[T]:
        """Wait for every queued job; their results in submission order."""
        t0 = time.monotonic()
        out: list[T] = []
        while self._queue:
            out.append(self._queue.popleft().result())
        self.waited_s += time.monotonic() - t0
        return out

    @property
    def pending(self) -> int:
        """Jobs queued and not yet handed back."""
        return len(self._queue)

    def close(self, *, cancel: bool = False) -> None:
        """Shut the threads down (waiting for running jobs; ``cancel`` drops queued ones)."""
        self._ex.shutdown(wait=True, cancel_futures=cancel)

    def __enter__(self) -> OrderedPool[T]:
        return self

    def __exit__(self, et: object, ev: object, tb: object) -> None:
        self.close(cancel=et is not None)
