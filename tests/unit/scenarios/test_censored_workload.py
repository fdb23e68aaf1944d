"""The censored workload's pure parts: following the censor log while the client runs, waiting
for the prober's verdict, and turning decision records into samples (no sockets, no peers)."""

from __future__ import annotations

import json
from pathlib import Path

from quicreality.scenarios.workloads.censored import (
    BlockWatch,
    censor_records,
    censor_samples,
    probe_pending,
)

CLIENT = "10.99.1.2"


def rec(action: str, policy: str = "gfw-2025", client: str = CLIENT, flow: str = "f1",
        **extra: object) -> dict:
    return {"client": client, "flow": flow, "action": action, "policy": policy,
            "reason": f"{policy} said {action}", "flow_age_ms": 0.0, "packet": 1, **extra}


def write(path: Path, records: list[dict], partial: str = "") -> None:
    with open(path, "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
        f.write(partial)


def test_block_watch_fires_grace_seconds_after_this_clients_block(tmp_path: Path) -> None:
    log = tmp_path / "censor.jsonl"
    write(log, [rec("block", client="10.99.9.9")])  # an earlier repetition's client
    offset = log.stat().st_size
    clock = [100.0]
    watch = BlockWatch(str(log), offset, CLIENT, grace_s=2.0, clock=lambda: clock[0])
    write(log, [rec("pass"), rec("block", client="10.99.9.9")], partial='{"client": "10.99')
    assert not watch() and watch.blocked_at is None
    write(log, [], partial='.1.2", "flow": "f1", "action": "block"}\n')  # the line completes
    clock[0] = 101.0
    assert not watch() and watch.blocked_at == 101.0
    clock[0] = 102.9
    assert not watch()
    clock[0] = 103.0
    assert watch() and watch.fired


def test_block_watch_without_a_censor_never_fires() -> None:
    watch = BlockWatch(None, 0, CLIENT)
    assert not watch() and not watch.fired


def test_probe_pending_until_every_probed_flow_has_its_verdict(tmp_path: Path) -> None:
    log = tmp_path / "censor.jsonl"
    write(log, [rec("pass"), rec("probe", "active-probe"), rec("probe", "active-probe", flow="f2")])
    assert probe_pending(censor_records(str(log), 0, CLIENT))
    write(log, [rec("pass", "active-probe", probe_verdict="target-like")])
    assert probe_pending(censor_records(str(log), 0, CLIENT))  # f2 still waits
    write(log, [rec("block", "active-probe", flow="f2", probe_verdict="distinct")])
    assert not probe_pending(censor_records(str(log), 0, CLIENT))
    assert not probe_pending([rec("pass")])  # never probed


def test_samples_of_a_blocked_and_probed_repetition() -> None:
    records = [rec("pass", "gfw-2025"), rec("probe", "active-probe"),
               rec("block", "active-probe", flow_age_ms=2500.4, packet=13,
                   probe_verdict="distinct")]
    metrics, summary = censor_samples(records)
    m = {name: (value, unit) for name, value, unit, _ in metrics}
    assert m["blocked"] == (1.0, "bool") and m["censor_reason"] == (1.0, "active-probe")
    assert m["time_to_block_ms"] == (2500.4, "ms") and m["blocked_on_packet"] == (13.0, "packets")
    assert m["probe_verdict"] == (0.0, "target-like=1")
    assert {src for *_, src in metrics} == {"censor"}
    assert summary["blocked_by"] == "active-probe" and summary["probe_verdict"] == "distinct"


def test_samples_of_a_repetition_that_passed_unprobed() -> None:
    metrics, summary = censor_samples([rec("pass"), rec("pass", "fingerprint")])
    m = {name: (value, unit) for name, value, unit, _ in metrics}
    assert m == {"blocked": (0.0, "bool"), "censor_reason": (1.0, "none")}
    assert summary["blocked"] is False and summary["probe_verdict"] is None
