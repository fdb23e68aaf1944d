"""One topology for consecutive cases with the same link, reused only when it is clean.

Theory of operation
-------------------
Building a topology (three namespaces, TUNs, addresses and routes, sysctls, the emulator
process) and tearing it down cost about a second or two per case, and 16 of QIR's 25 cases use
the same ``simple-p2p`` link.  The runner already runs every pair of a case on one topology,
re-arming the emulator before each run (:meth:`~quicreality.scenarios.topology.Topology.rearm`:
new seed, queues, loss state, blackhole and rebinding schedules and counters reset).  Between two
cases nothing else differs when their :class:`~quicreality.scenarios.model.Link` is equal, so
:class:`LinkCache` keeps the topology for the next case if :func:`reuse_problem` finds it clean:

* the emulator is alive and acknowledges a re-arm (its counters start from zero again);
* no process is left in the client or server namespace (stragglers are killed; if one
  survives, the topology is rebuilt), so no socket of the last case is still bound;
* the namespaces hold no conntrack entries (``/proc/net/nf_conntrack``; no rule here uses
  conntrack, and no ``conntrack`` tool is installed to flush it, so entries mean: rebuild).

Captures are per run (new files), so nothing of them carries over.  Anything else makes the
cache tear the old topology down and build a new one, as before.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ..scenarios.model import Link
from ..scenarios.procutil import kill_pids
from ..scenarios.topology import Topology, TopologyError, new_run_id

__all__ = ["LinkCache", "reuse_problem"]

Factory = Callable[[Link, Path], AbstractContextManager[Topology]]


def _ns_pids(topo: Topology, host: str) -> list[int]:
    r = subprocess.run(["ip", "netns", "pids", topo.ns(host)], capture_output=True, text=True,
                       timeout=15, check=False)
    return [int(x) for x in r.stdout.split() if x.isdigit()]


def _conntrack_entries(topo: Topology, host: str) -> int:
    r = subprocess.run(topo.exec_argv(host, ["cat", "/proc/net/nf_conntrack"]),
                       capture_output=True, text=True, timeout=15, check=False)
    return len([ln for ln in r.stdout.splitlines() if ln.strip()]) if r.returncode == 0 else 0


def reuse_problem(topo: Topology) -> str:
    """Why ``topo`` must not carry another case ("" if it may; see the module docstring)."""
    try:
        if topo.rearm(topo.seed) is None:
            return "the emulator is not running"
    except TopologyError as e:
        return str(e)
    for host in ("client", "server"):
        left = _ns_pids(topo, host)
        if left:
            kill_pids(left)
            if _ns_pids(topo, host):
                return f"processes left in the {host} namespace"
        n = _conntrack_entries(topo, host)
        if n:
            return f"{n} conntrack entries in the {host} namespace"
    return ""


def _default_factory(seed: int) -> Factory:
    def make(link: Link, workdir: Path) -> AbstractContextManager[Topology]:
        return Topology.create(new_run_id(), link, "userspace", seed=seed, workdir=str(workdir))
    return make


class LinkCache:
    """The current topology (see the module docstring); :meth:`close` tears it down."""

    def __init__(self, seed: int = 1, *, factory: Factory | None = None,
                 probe: Callable[[Topology], str] = reuse_problem) -> None:
        self._factory = factory or _default_factory(seed)
        self._probe = probe
        self._cm: AbstractContextManager[Topology] | None = None
        self._topo: Topology | None = None
        self._link: Link | None = None
        self._workdir: Path | None = None
        #: one entry per get(): what was built or reused and why
        self.log: list[dict[str, Any]] = []
        #: seconds spent tearing topologies down
        self.teardown_s = 0.0

    def get(self, link: Link, workdir: Path, label: str = "") -> Topology:
        """A topology with ``link``: the current one if equal and clean, else a new one whose
        emulator files go to ``workdir`` (raises ``TopologyError`` if it cannot be built)."""
        why = "first case" if self._topo is None else "another link"
        if self._topo is not None and self._link == link:
            t0 = time.monotonic()
            why = self._probe(self._topo)
            if not why:
                self.log.append({"case": label, "reused": self._topo.run_id,
                                 "workdir": str(self._workdir),
                                 "probe_s": round(time.monotonic() - t0, 3)})
                return self._topo
        try:
            self.close()
        except TopologyError as e:  # a new topology has new names: the run can go on
            self.log.append({"case": label, "teardown_error": str(e)})
        t0 = time.monotonic()
        cm = self._factory(link, workdir)
        topo = cm.__enter__()
        self._cm, self._topo, self._link, self._workdir = cm, topo, link, workdir
        self.log.append({"case": label, "built": topo.run_id, "why": why,
                         "workdir": str(workdir), "build_s": round(time.monotonic() - t0, 3)})
        return topo

    def close(self) -> None:
        """Tear the current topology down (idempotent)."""
        cm, self._cm, self._topo, self._link = self._cm, None, None, None
        if cm is not None:
            t0 = time.monotonic()
            try:
                cm.__exit__(None, None, None)
            finally:
                self.teardown_s += time.monotonic() - t0

    def __enter__(self) -> LinkCache:
        return self

    def __exit__(self, et: object, ev: object, tb: object) -> None:
        with contextlib.suppress(TopologyError):
            self.close()
