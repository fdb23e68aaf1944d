"""A Dask worker probes the host's features/tools once, not once per unit (issue 16 run).

The 60-unit loss-sweep run spent about 15 s of every unit (of ~60 s per unit at load 15-20)
in ``probe_features`` (four ``python -m quicreality ... --help`` processes); the unit process
now reads the worker process's probe from ``PROBES.json``.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from quicreality.scenarios import points
from quicreality.scenarios.catalog import parse_scenario
from quicreality.scenarios.executors import unit

DOC = """
[scenario]
name = "pr"
[link]
rate_mbit = 20
delay_ms = 5
[[workload]]
name = "dl"
kind = "download"
client = "ours"
server = "ours"
size = "1MB"
"""


def test_new_run_info_uses_given_probes_without_probing(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def no(*a: Any) -> Any:
        raise AssertionError("probed although probes were given")

    monkeypatch.setattr(points, "probe_features", no)
    monkeypatch.setattr(points, "tool_versions", no)
    sc = parse_scenario(tomllib.loads(DOC), source="pr.toml")
    info = points.new_run_info(sc, tmp_path / "r", "userspace", "test", {"kind": "dask"},
                               {"features": ["reality"], "tools": {"iperf3": "3.x"}})
    assert info["features"] == ["reality"] and info["tools"] == {"iperf3": "3.x"}
    monkeypatch.setattr(points, "probe_features", lambda: frozenset({"relay", "reality"}))
    monkeypatch.setattr(points, "tool_versions", lambda: {"t": "1"})
    info = points.new_run_info(sc, tmp_path / "r", "userspace", "test", {"kind": "local"})
    assert info["features"] == ["reality", "relay"] and info["tools"] == {"t": "1"}


class _Proc:
    """Stands in for the unit process: writes unit.json, records its argv."""

    argvs: list[list[str]] = []  # noqa: RUF012 - a test's record

    def __init__(self, argv: list[str], **kw: Any) -> None:
        self.argvs.append(list(argv))
        self.pid = 999_999_999
        out = Path(argv[-2])
        self.probes = json.loads(Path(argv[-1]).read_text())
        (out / "unit.json").write_text(json.dumps({"key": "k", "probes": self.probes}))

    def wait(self, timeout: float | None = None) -> int:
        return 0


def test_worker_probes_once_and_hands_them_to_every_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def probe() -> dict[str, Any]:
        calls.append(1)
        return {"features": ["reality"], "tools": {"qrgo": "0.29"}}

    monkeypatch.setattr(points, "host_probes", probe)
    monkeypatch.setattr(unit, "_PROBES", None)
    monkeypatch.setattr(unit.subprocess, "Popen", _Proc)
    _Proc.argvs = []
    spec = unit.UnitSpec(doc=tomllib.loads(DOC), source="pr.toml", default_name="pr", seed=1,
                         transforms=(), point="pr", workload="dl", rep=1, reps=1, run="r",
                         backend="auto", topo_id="abc123", executor={"kind": "dask"})
    results = [unit.run_unit_process(spec) for _ in range(3)]
    assert len(calls) == 1  # once per worker process
    assert len(_Proc.argvs) == 3
    assert all(a[-1].endswith("probes.json") and a[-3].endswith("spec.json") for a in _Proc.argvs)
    assert all(r["probes"] == {"features": ["reality"], "tools": {"qrgo": "0.29"}}
               for r in results)
