"""run_matrix's orchestration with fake runs: outcomes in run order, analysis in the
background but drained before every measured run, a topology per link group."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from quicreality.interop import runner
from quicreality.interop.cases import by_name
from quicreality.interop.runner import Levers, MatrixOptions, Outcome
from quicreality.interop.verdicts import Verdict


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    log: dict[str, Any] = {"started": [], "analysed": [], "pending_at_measured": [],
                           "built": 0}
    state = {"running": 0}
    lock = threading.Lock()

    def start_pair(env: Any, s: str, c: str, rep: int, d: Path, seed: int
                   ) -> Callable[[], Outcome]:
        assert env.topo is not None and env.www.is_dir()
        if env.case.measurement:
            log["pending_at_measured"].append(state["running"])
        log["started"].append((env.case.name, s, c, rep))
        with lock:
            state["running"] += 1

        def analyse() -> Outcome:
            time.sleep(0.05 if rep % 2 else 0.0)
            assert env.www.is_dir(), "served files removed before the analysis"
            log["analysed"].append((env.case.name, s, c, rep))
            with lock:
                state["running"] -= 1
            v = Verdict("succeeded", "fake")
            return Outcome(env.case, s, c, rep, v, v.reason, 0.0, {})
        return analyse

    @contextlib.contextmanager
    def factory(link: Any, workdir: Path) -> Iterator[Any]:
        log["built"] += 1

        class T:
            run_id = f"t{log['built']}"
            seed = 1
        yield T()

    real_cache = runner.LinkCache
    monkeypatch.setattr(runner, "start_pair", start_pair)
    monkeypatch.setattr(runner, "LinkCache",
                        lambda seed: real_cache(seed, factory=factory, probe=lambda t: ""))
    monkeypatch.setattr(runner, "make_certs", lambda d, big: d)
    monkeypatch.setattr(runner, "missing_peer", lambda p: "")
    monkeypatch.setattr(runner, "learn_support", lambda *a: None)
    return log


def test_outcomes_in_run_order_and_measurements_run_alone(fakes: dict[str, Any],
                                                         tmp_path: Path) -> None:
    cases = (by_name("handshake"), by_name("longrtt"), by_name("transfer"), by_name("goodput"))
    opts = MatrixOptions(cases=cases, servers=("ours", "ngtcp2"), clients=("ours",),
                         results=tmp_path, reps=2)
    seen: list[Outcome] = []
    out = runner.run_matrix(opts, tmp_path / "run", seen.append, Levers(analysis_workers=1))
    order = [(o.case.name, o.server, o.client, o.rep) for o in out]
    assert order == fakes["started"] == [(o.case.name, o.server, o.client, o.rep) for o in seen]
    assert [k[0] for k in order[::4]] == ["handshake", "transfer", "goodput", "longrtt"]
    assert fakes["built"] == 2  # p2p (handshake, transfer, goodput), then longrtt
    assert fakes["pending_at_measured"] == [0, 0, 0, 0]  # drained before each goodput run
    assert sorted(fakes["analysed"]) == sorted(order)


def test_levers_off_run_in_qir_order_with_a_topology_per_case(fakes: dict[str, Any],
                                                              tmp_path: Path) -> None:
    cases = (by_name("handshake"), by_name("longrtt"), by_name("transfer"))
    opts = MatrixOptions(cases=cases, servers=("ours",), clients=("ours",), results=tmp_path)
    out = runner.run_matrix(opts, tmp_path / "run", lambda o: None,
                            Levers(analysis_workers=0, check_support=False, reuse_links=False))
    assert [o.case.name for o in out] == ["handshake", "longrtt", "transfer"]
    assert fakes["built"] == 3


def test_nothing_runnable_builds_nothing_and_still_writes_its_notes(
        fakes: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "missing_peer", lambda p: f"{p} not installed")
    opts = MatrixOptions(cases=(by_name("handshake"),), servers=("quicgo",), clients=("curl",),
                         results=tmp_path)
    out = runner.run_matrix(opts, tmp_path / "run", lambda o: None)
    assert [o.verdict for o in out] == [None] and fakes["built"] == 0
    assert (tmp_path / "run" / "emulator" / "topologies.json").is_file()
