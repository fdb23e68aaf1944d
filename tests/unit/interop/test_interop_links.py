"""Topology reuse across cases: only for an equal link, only when the probe finds it clean."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from quicreality.interop.cases import CASES, by_name
from quicreality.interop.links import LinkCache
from quicreality.interop.runner import by_link
from quicreality.scenarios.model import Link


class FakeTopo:
    def __init__(self, n: int) -> None:
        self.run_id = f"t{n}"
        self.down = False


def _cache(problem: list[str]) -> tuple[LinkCache, list[FakeTopo]]:
    built: list[FakeTopo] = []

    @contextlib.contextmanager
    def factory(link: Link, workdir: Path) -> Iterator[Any]:
        t = FakeTopo(len(built))
        built.append(t)
        yield t
        t.down = True

    return LinkCache(factory=factory, probe=lambda t: problem[0]), built  # type: ignore[arg-type]


def test_an_equal_clean_link_is_reused_and_another_one_rebuilt(tmp_path: Path) -> None:
    problem = [""]
    cache, built = _cache(problem)
    h, dc, lr = by_name("handshake"), by_name("transfer"), by_name("longrtt")
    with cache:
        a = cache.get(h.link, tmp_path / "h", "handshake")
        b = cache.get(dc.link, tmp_path / "dc", "transfer")
        assert a is b and len(built) == 1
        c = cache.get(lr.link, tmp_path / "lr", "longrtt")
        assert c is not a and built[0].down and not c.down  # type: ignore[attr-defined]
    assert built[1].down
    assert [e.get("built") or e.get("reused") for e in cache.log] == ["t0", "t0", "t1"]
    assert cache.log[1]["workdir"] == str(tmp_path / "h")  # the stats stay in the builder's dir
    assert cache.log[2]["why"] == "another link"


def test_a_dirty_topology_is_rebuilt_even_for_the_same_link(tmp_path: Path) -> None:
    problem = ["processes left in the server namespace"]
    cache, built = _cache(problem)
    link = by_name("handshake").link
    with cache:
        cache.get(link, tmp_path / "a")
        cache.get(link, tmp_path / "b")
    assert len(built) == 2 and all(t.down for t in built)
    assert cache.log[1]["why"] == "processes left in the server namespace"


def test_by_link_groups_cases_and_keeps_qir_order_inside_a_group() -> None:
    order = by_link(CASES)
    assert sorted(c.name for c in order) == sorted(c.name for c in CASES)
    p2p = [c.name for c in order[:16]]
    assert p2p[:3] == ["versionnegotiation", "handshake", "transfer"]
    assert all(c.link == CASES[0].link for c in order[:16])
    assert order[16].name == "longrtt"
    # equal links group even when QIR's order interleaves them
    lossy = replace(CASES[0], name="x", link=by_name("handshakeloss").link)
    assert [c.name for c in by_link((lossy, CASES[1], by_name("handshakeloss")))] == \
        ["x", "handshakeloss", "handshake"]


class ProbedTopo:
    run_id = "p"
    seed = 7

    def __init__(self, rearm: Any) -> None:
        self._rearm = rearm
        self.rearmed: list[int] = []

    def rearm(self, seed: int) -> Any:
        self.rearmed.append(seed)
        return self._rearm


def test_reuse_problem_checks_emulator_processes_and_conntrack(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from quicreality.interop import links

    pids = {"client": [], "server": [4242]}
    killed: list[list[int]] = []
    conntrack = {"client": 0, "server": 0}
    monkeypatch.setattr(links, "_ns_pids", lambda t, h: list(pids[h]))
    monkeypatch.setattr(links, "_conntrack_entries", lambda t, h: conntrack[h])

    def kill(p: list[int]) -> None:
        killed.append(p)
        pids["server"] = []

    monkeypatch.setattr(links, "kill_pids", kill)
    topo = ProbedTopo({"to_server": {}})
    assert links.reuse_problem(topo) == ""  # type: ignore[arg-type]
    assert killed == [[4242]] and topo.rearmed == [7]  # the straggler was killed, then clean
    pids["server"] = [1]
    monkeypatch.setattr(links, "kill_pids", lambda p: None)  # one that survives
    assert links.reuse_problem(topo) == "processes left in the server namespace"  # type: ignore[arg-type]
    pids["server"] = []
    conntrack["client"] = 3
    assert links.reuse_problem(topo) == "3 conntrack entries in the client namespace"  # type: ignore[arg-type]
    assert links.reuse_problem(ProbedTopo(None)) == "the emulator is not running"  # type: ignore[arg-type]
