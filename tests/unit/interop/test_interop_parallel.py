"""The ``--jobs`` scheduler and provenance (no root: no topology is built)."""

from __future__ import annotations

from quicreality.interop.cases import select
from quicreality.interop.parallel import Cell, Scheduler, cell_cpu, mark_overlaps


def _cell(i: int, name: str, s: str, c: str) -> Cell:
    case = select(name)[0]
    return Cell(i, case, s, c, cell_cpu(case, s, c), 10.0 * (10 - i))


def test_cells_within_the_budget_run_together_and_a_heavy_one_alone() -> None:
    heavy = _cell(0, "multiplexing", "ours", "aioquic")
    small = [_cell(i, "handshake", "quicgo", "quicgo") for i in (1, 2)]
    sched = Scheduler([heavy, *small], cpu_budget=1.0, quiet_budget=1.0)
    assert sched.take(None) is heavy  # longest first
    assert heavy.cpu > 1.0
    first = small[0]
    sched.done(heavy)
    assert sched.take(None) is first and sched.take(None) is small[1]  # 0.3 + 0.3 <= 1.0


def test_a_measurement_keeps_its_neighbours_within_the_quiet_budget() -> None:
    g = _cell(0, "goodput", "ours", "ours")  # 0.55 cores
    t = _cell(1, "transfer", "ours", "ours")  # 0.55
    h = _cell(2, "handshake", "quicgo", "quicgo")  # 0.3
    sched = Scheduler([g, t, h], cpu_budget=2.0, quiet_budget=1.0)
    assert sched.take(None) is g
    assert sched.take(None, wait=False) is h  # 0.85 <= 1.0; the transfer would be 1.1
    assert sched.take(None, wait=False) is None
    sched.done(g)
    assert sched.take(None, wait=False) is t  # no measurement: the 2.0 budget
    sched.stop()
    assert sched.take(None) is None


def test_by_default_a_measurement_runs_alone() -> None:
    g = _cell(0, "goodput", "quicgo", "quicgo")
    h = _cell(1, "handshake", "quicgo", "quicgo")
    g2 = _cell(2, "goodput", "ours", "ours")
    sched = Scheduler([g, h, g2])
    assert sched.take(None) is g
    assert sched.take(None, wait=False) is None  # neither the test nor the other measurement
    sched.done(g)
    assert sched.take(None) is h
    assert sched.take(None, wait=False) is None  # a measurement waits until h is done
    sched.done(h)
    assert sched.take(None) is g2


def test_same_link_preferred() -> None:
    a = _cell(0, "handshake", "ours", "ours")
    b = _cell(1, "longrtt", "ours", "ours")
    c = _cell(2, "retry", "ours", "ours")
    sched = Scheduler([a, b, c], cpu_budget=5.0)
    assert sched.take(None) is a
    assert sched.take(a.case.link) is c  # same link as the job's topology, before longrtt


def test_overlaps() -> None:
    s = [{"abbr": "H", "server": "x", "client": "y", "rep": 1, "wall_start": 0.0, "wall_end": 2.0},
         {"abbr": "S", "server": "x", "client": "y", "rep": 1, "wall_start": 1.0, "wall_end": 3.0},
         {"abbr": "G", "server": "x", "client": "y", "rep": 1, "wall_start": 3.0, "wall_end": 4.0}]
    mark_overlaps(s)
    assert [r["concurrent"] for r in s] == [1, 1, 0]
    assert s[0]["concurrent_with"] == ["S x<-y#1"]
