"""The background analysis pool: bounded, niced, results in submission order."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from quicreality.interop.pool import OrderedPool


def test_results_come_back_in_submission_order() -> None:
    with OrderedPool[int](workers=2, max_pending=3) as pool:
        gate = threading.Event()
        pool.submit(lambda: (gate.wait(5), 1)[1])  # the first finishes last
        pool.submit(lambda: 2)
        time.sleep(0.1)
        assert pool.ready() == []  # 2 is done but waits behind 1
        gate.set()
        assert pool.drain() == [1, 2]
        assert pool.pending == 0


def test_submit_blocks_beyond_max_pending() -> None:
    with OrderedPool[int](workers=1, max_pending=1) as pool:
        gate = threading.Event()
        pool.submit(lambda: (gate.wait(5), 1)[1])
        blocked = threading.Thread(target=lambda: pool.submit(lambda: 2))
        blocked.start()
        time.sleep(0.2)
        assert blocked.is_alive()  # the second job waits for a slot
        gate.set()
        blocked.join(5)
        assert not blocked.is_alive()
        assert pool.drain() == [1, 2]
        assert pool.waited_s >= 0.0


def test_a_jobs_exception_is_raised_where_its_result_is_taken() -> None:
    def boom() -> int:
        raise ValueError("bad capture")

    with OrderedPool[int]() as pool:
        pool.submit(boom)
        with pytest.raises(ValueError, match="bad capture"):
            pool.drain()


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="Linux nice values")
def test_processes_a_job_starts_run_niced_and_the_caller_does_not() -> None:
    def child_nice() -> int:
        out = subprocess.run([sys.executable, "-c", "import os; print(os.nice(0))"],
                             capture_output=True, text=True, check=True, timeout=60).stdout
        return int(out)

    base = os.nice(0)
    with OrderedPool[int](nice=7) as pool:
        pool.submit(child_nice)
        (got,) = pool.drain()
    assert got == min(19, base + 7)
    assert os.nice(0) == base  # only the worker thread was lowered


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        OrderedPool[int](workers=0)
