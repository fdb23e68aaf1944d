"""Stop processes by pid (no process group, no ``Popen`` at hand).

Used by the topology's teardown (processes left in our namespaces) and by ``clean`` (leftovers of
runs whose owner is gone).  :class:`~.peers.process.PeerProcess` stops the peers it started
itself, by process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Sequence

__all__ = ["kill_pids", "pid_running"]


#: prctl(2) option: the signal the kernel sends this process when its parent dies.
PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def pid_running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (reads ``/proc/<pid>/stat``)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def kill_pids(pids: Sequence[int], grace: float = 2.0) -> None:
    """SIGTERM the pids, wait up to ``grace`` s, then SIGKILL the survivors."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            alive.append(pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if pid_running(p)]
        if alive:
            time.sleep(0.05)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
