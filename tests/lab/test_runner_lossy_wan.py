"""End to end: ``python -m quicreality.scenarios run lossy-wan --quick`` as a user runs it (root).

Checks the results layout and that every repetition's samples are complete.  Workloads whose
feature is missing from the checkout under test (REALITY, relay) must be reported as not run and
must leave no results behind: the runner never claims they ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from quicreality.scenarios.catalog import find_scenario
from quicreality.scenarios.results import SAMPLE_FIELDS, read_samples
from quicreality.scenarios.workloads.reality import probe_features

REPO = Path(__file__).resolve().parents[2]
QUICK_BUDGET_S = 300  # issue 5: lossy-wan --quick runs in under 5 minutes here

#: Metrics every repetition of a kind must have (besides ``ok``).
REQUIRED = {
    "download": {"goodput", "transfer_time", "handshake_ms", "rtt_median_ms",
                 "packets_lost", "file_bytes", "emulator_drops_to_client"},
    "iperf3": {"goodput", "goodput_wire", "goodput_reported", "retransmits", "rtt_mean_ms",
               "emulator_drops_to_client"},
    "relay-iperf3": {"goodput", "goodput_reported", "rtt_median_ms", "packets_lost",
                     "handshake_ms"},
    "fallback": {"handshake_ms", "client_elapsed"},
}


def _netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_lossy_wan_quick_end_to_end(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "lab tests run as root (network namespaces, TUN, tcpdump)"
    scenario = find_scenario("lossy-wan").quickened()
    features = probe_features()
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "quicreality.scenarios", "run", "lossy-wan",
                        "--quick", "--results", str(tmp_path)], cwd=REPO, capture_output=True,
                       text=True, timeout=QUICK_BUDGET_S + 120, check=False)
    wall = time.monotonic() - t0
    print(r.stdout[-6000:], r.stderr[-3000:], f"wall {wall:.0f}s", sep="\n")
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    run = runs[0]
    info = json.loads((run / "run.json").read_text())
    assert f"run directory: {run}" in r.stdout
    assert info["git"]["sha"] and isinstance(info["git"]["dirty"], bool)
    assert info["backend"] in ("userspace", "netem") and info["kernel"]
    assert info["tools"]["iperf3"] and info["tools"]["tshark"]
    assert info["link_check"] and info["link_check"][-1]["check"]["ok"], info["link_check"]
    assert not any(ns.startswith(f"qr-{info['topology_run_id']}-") for ns in _netns())

    not_run = {x["workload"] for x in info["not_run"]}
    for w in scenario.workloads:
        wdir = run / "lossy-wan" / w.name / w.pair
        if not w.requires <= features:
            assert w.name in not_run and not wdir.exists(), f"{w.name} claims to have run"
            continue
        assert w.name not in not_run
        rep = wdir / "rep-1"
        manifest = json.loads((rep / "manifest.json").read_text())
        check = json.loads((rep / "check.json").read_text())
        assert set(check) == {"ok", "reason", "details"}
        assert check["ok"], f"{w.name}: {check['reason']}"
        assert manifest["seed"] == scenario.rep_seed(1) and manifest["rep"] == 1
        assert manifest["commands"] and all(isinstance(c["argv"], list)
                                            for c in manifest["commands"])
        assert manifest["scenario"]["link"]["to_client"]["loss"] == 0.01
        assert manifest["link"]["measured"][-1]["check"]["ok"]
        assert manifest["link"]["emulator_counters_this_rep"] is not None
        rows = read_samples(rep / "samples.jsonl")
        assert all(tuple(row) == SAMPLE_FIELDS for row in rows)
        assert {(row["run"], row["scenario"], row["workload"], row["client"], row["server"],
                 row["rep"]) for row in rows} == {(run.name, "lossy-wan", w.name, w.client,
                                                   w.server, 1)}
        metrics = {row["metric"]: row["value"] for row in rows}
        need = set(REQUIRED[w.kind])
        if w.kind == "download" and w.client != "ngtcp2":  # gtlsclient prints no timing
            need.add("goodput_reported")
        missing = need - set(metrics)
        assert not missing, f"{w.name}: samples lack {missing}"
        assert metrics["ok"] == 1.0
        drops = check["details"].get("capture", {})
        if drops and not any(c.get("dropped_by_kernel") for c in drops.values()):
            # with complete captures, the packets missing between them are the emulator's drops
            # (a stray packet of the link check may also be dropped in the first repetition)
            assert abs(metrics["link_lost_to_client"] - metrics["emulator_drops_to_client"]) <= 2
            assert abs(metrics["link_lost_to_server"] - metrics["emulator_drops_to_server"]) <= 2
        for f in ("client.pcap", "server.pcap", "client.stdout", "client.stderr"):
            assert (rep / f).is_file(), f"{w.name}: no {f}"
        if w.kind in ("download", "fallback", "relay-iperf3"):
            assert (rep / "keys.log").stat().st_size > 0, w.name
            assert (rep / "client.pcapng").is_file(), w.name
            assert list((rep / "qlog" / "client").iterdir()), w.name
            assert list((rep / "qlog" / "server").iterdir()), w.name
        if w.kind == "download":
            assert metrics["file_bytes"] == w.size_bytes
            assert 0.5 < metrics["goodput"] < 50.0
            assert check["details"]["wire"]["decrypted"], "keys did not decrypt the capture"
            assert check["details"]["wire"]["method"] == "1rtt-stream", w.name
        if w.kind == "relay-iperf3":
            assert check["details"]["wire"]["decrypted"], "keys did not decrypt the capture"
    summary = json.loads((run / "summary.json").read_text())
    assert {s["workload"] for s in summary} == {w.name for w in scenario.workloads}
    assert (run / "summary.txt").read_text().count("PASS") == len(scenario.workloads) - len(
        not_run)
    assert r.returncode == (0 if not not_run else 1), r.returncode
    assert wall < QUICK_BUDGET_S, f"lossy-wan --quick took {wall:.0f}s"
