"""The dask coordinator handles SIGTERM as Ctrl-C: tasks cancelled, workers cleaned, exit 130.

Found by the 150-unit loss-sweep run (issue 16): a SIGTERM killed the coordinator with the
default action (exit 143), left ``run.json`` at ``status: running`` and never asked the workers
to stop their units. The scheduler is a stand-in here (the lab test runs a real one); what is
tested is the coordinator's own signal path.
"""

from __future__ import annotations

import io
import json
import os
import signal
import time
import tomllib
from pathlib import Path
from typing import Any, ClassVar

import distributed
import pytest
from rich.console import Console

from quicreality.scenarios.catalog import parse_scenario
from quicreality.scenarios.executors import daskexec

DOC = """
[scenario]
name = "sig"
seed = 3
[link]
rate_mbit = 20
delay_ms = 5
[[workload]]
name = "dl"
kind = "download"
client = "ours"
server = "ours"
size = "1MB"
[sweep]
loss = ["0%", "1%"]
"""


class _FakeClient:
    """What run_dask calls on a Client; records the cancel and the clean."""

    calls: ClassVar[list[tuple[str, Any]]] = []

    def __init__(self, address: str, timeout: float = 0) -> None:
        self.address = address

    def run_on_scheduler(self, fn: Any, *args: Any) -> None:
        self.calls.append(("run_on_scheduler", args))

    def cancel(self, futures: list[Any]) -> None:
        self.calls.append(("cancel", list(futures)))

    def run(self, fn: Any, ids: list[str], wait: bool = True) -> dict[str, Any]:
        self.calls.append(("run", (fn.__name__, list(ids))))
        return {"tcp://w1": {"stopped": ["u1"], "namespaces": ["qr-x-client"]}}

    def close(self, timeout: float = 0) -> None:
        self.calls.append(("close", None))


def test_sigterm_cancels_cleans_and_exits_130(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    sc = parse_scenario(tomllib.loads(DOC), source="sig.toml")
    _FakeClient.calls = []
    monkeypatch.setattr(distributed, "Client", _FakeClient)
    reached: list[bool] = []

    def submit_all(client: Any, specs: Any, futures: dict[Any, Any], *rest: Any) -> None:
        futures["f1"] = (specs[0], 1)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        reached.append(True)

    monkeypatch.setattr(daskexec, "_submit_all", submit_all)
    before = signal.getsignal(signal.SIGTERM)
    state = daskexec.run_dask(sc, tmp_path, "auto", Console(width=120, file=io.StringIO()),
                              scheduler="tcp://127.0.0.1:1")
    assert not reached
    assert state.exit_code == 130
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the caller's again
    names = [c[0] for c in _FakeClient.calls]
    assert names == ["run_on_scheduler", "cancel", "run", "close"]
    assert _FakeClient.calls[1][1] == ["f1"]
    assert _FakeClient.calls[2][1][0] == "_stop_and_clean"
    assert len(_FakeClient.calls[2][1][1]) == sc.total_reps() == 6  # every unit's topology id
    run = json.loads(next(tmp_path.glob("runs/*/run.json")).read_text())
    assert run["status"] == "interrupted" and run["exit_code"] == 130
    assert "1 running unit(s) stopped and 1 leftover namespace(s) removed" in run["note"]


def test_plain_progress_lines_are_not_wrapped() -> None:
    """The loss-sweep run's log had unit lines split at column 170 ("... on the\\nwire")."""
    buf = io.StringIO()
    line = "[loss-sweep 3/60] OK      loss-0pct.delay_ms-10/ours ours__ours rep 1 " + "x" * 200
    daskexec._plain_line(Console(width=80, file=buf), line)
    assert buf.getvalue() == line + "\n"
