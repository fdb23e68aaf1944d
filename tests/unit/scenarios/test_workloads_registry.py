"""The workload registry and :func:`run_rep`'s failure handling (no root, no processes)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from quicreality.scenarios import workloads
from quicreality.scenarios.catalog import KINDS, Workload
from quicreality.scenarios.peers.base import Unsupported
from quicreality.scenarios.peers.paths import PeerNotInstalled
from quicreality.scenarios.peers.process import PeerFailed
from quicreality.scenarios.results import Check
from quicreality.scenarios.workloads import (
    Assets,
    RepContext,
    RepOutcome,
    WorkloadSpec,
    get_workload,
    register_workload,
    run_rep,
    workload_kinds,
)


@dataclass
class _Ctx(RepContext):
    """A context that records that the dispatcher closed it."""

    closed: int = 0

    def close(self) -> None:
        self.closed += 1
        super().close()


def _ctx(tmp_path: Path, kind: str = "download") -> _Ctx:
    assets = Assets(dir=tmp_path, www=tmp_path, cert=tmp_path / "c", key=tmp_path / "k",
                    ca=tmp_path / "ca")
    return _Ctx(topo=cast(Any, None), scenario=cast(Any, None),
                workload=Workload(name="w", kind=kind, client="ours", server="ours"),
                rep=1, dir=tmp_path, assets=assets)


@pytest.fixture
def swap_download() -> Iterator[None]:
    """Put the real ``download`` spec back after a test replaced it."""
    original = get_workload("download")
    try:
        yield
    finally:
        register_workload(original)


def test_every_catalog_kind_has_a_workload_module() -> None:
    assert sorted(workload_kinds()) == sorted(KINDS)
    for kind in KINDS:
        spec = get_workload(kind)
        assert spec.kind == kind
        assert spec.run.__module__ == f"quicreality.scenarios.workloads.{kind.replace('-', '_')}"


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown workload kind 'nope'; known: censored, chain, download, "):
        get_workload("nope")


def test_run_rep_dispatches_on_kind_and_closes(tmp_path: Path, swap_download: None) -> None:
    seen: list[str] = []

    def run(ctx: RepContext) -> RepOutcome:
        seen.append(ctx.workload.name)
        return RepOutcome(Check(True, "fine", {}), (("ok", 1.0, "bool", "runner"),))

    register_workload(WorkloadSpec(kind="download", run=run))
    ctx = _ctx(tmp_path)
    out = run_rep(ctx)
    assert seen == ["w"] and out.check.ok and out.metrics == (("ok", 1.0, "bool", "runner"),)
    assert ctx.closed == 1


@pytest.mark.parametrize(("exc", "reason", "details"), [
    (Unsupported("no server"), "unsupported: no server", {"unsupported": True}),
    (PeerNotInstalled("quicgo", "missing"),
     "peer quicgo not installed (missing): run scripts/setup.sh", {"not_installed": "quicgo"}),
    (PeerFailed("client hung\nstderr line"), "client hung", {"peer": "stderr line"}),
    (OSError("disk full"), "OSError: disk full", {}),
    (ValueError("bad json"), "ValueError: bad json", {}),
])
def test_run_rep_turns_failures_into_failed_checks(tmp_path: Path, swap_download: None,
                                                   exc: Exception, reason: str,
                                                   details: dict[str, Any]) -> None:
    def run(ctx: RepContext) -> RepOutcome:
        raise exc

    register_workload(WorkloadSpec(kind="download", run=run))
    ctx = _ctx(tmp_path)
    out = run_rep(ctx)
    assert (out.check.ok, out.check.reason, out.check.details) == (False, reason, details)
    assert out.metrics == () and ctx.closed == 1


def test_run_rep_lets_ctrl_c_through_and_still_closes(tmp_path: Path, swap_download: None) -> None:
    def run(ctx: RepContext) -> RepOutcome:
        raise KeyboardInterrupt

    register_workload(WorkloadSpec(kind="download", run=run))
    ctx = _ctx(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_rep(ctx)
    assert ctx.closed == 1


def test_shared_helpers_are_public(tmp_path: Path) -> None:
    log = tmp_path / "x.stderr"
    log.write_text("".join(f"line {i}\n" for i in range(20)))
    assert workloads.tail(log, 2) == "line 18\nline 19"
    assert workloads.tail(tmp_path / "missing") == ""
    assert callable(workloads.finish_keys) and callable(workloads.merge_client_first)
