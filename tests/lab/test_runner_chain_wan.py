"""End to end: ``python -m quicreality.scenarios run chain-wan --quick`` (root, ~70 s here).

The chain topology (a middle namespace and a second emulated link) runs iperf3 through two
REALITY hops, one hop and direct TCP. Every repetition must pass, every link must have been
emulated (both emulators' counters), the relays' byte counters must cover what iperf3 moved,
and no namespace of the run may be left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from quicreality.scenarios.catalog import find_scenario

REPO = Path(__file__).resolve().parents[2]
BUDGET_S = 240


def _netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_chain_wan_quick_end_to_end(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "lab tests run as root (network namespaces, TUN)"
    scenario = find_scenario("chain-wan").quickened()
    r = subprocess.run([sys.executable, "-m", "quicreality.scenarios", "run", "chain-wan",
                        "--quick", "--results", str(tmp_path)], cwd=REPO, capture_output=True,
                       text=True, timeout=BUDGET_S, check=False)
    print(r.stdout[-5000:], r.stderr[-2000:], sep="\n")
    (run,) = list((tmp_path / "runs").iterdir())
    info = json.loads((run / "run.json").read_text())
    assert not any(ns.startswith(f"qr-{info['topology_run_id']}-") for ns in _netns())
    assert info["not_run"] == []
    for w in scenario.workloads:
        rep = run / "chain-wan" / w.name / w.pair / "rep-1"
        check = json.loads((rep / "check.json").read_text())
        manifest = json.loads((rep / "manifest.json").read_text())
        assert check["ok"], f"{w.name}: {check['reason']}"
        assert set(manifest["topology"]["namespaces"]) == {"client", "middle", "server", "target"}
        counters = manifest["link"]["emulator_counters_this_rep"]
        for link in (counters, counters["link2"]):  # both links carried this repetition
            assert link["to_server"]["packets_out"] > 100 and link["to_client"]["packets_out"] > 100
        d = check["details"]
        assert d["hops"] == w.hops and d["parallel"] == w.parallel
        moved = d["iperf3"]["bytes"]
        direction = "down" if w.reverse else "up"
        assert moved > 0
        for hop, counts in d["relay_bytes"].items():  # each relay carried at least what arrived
            assert counts[direction] >= moved, (w.name, hop, counts, moved)
        assert sorted(d["relay_bytes"]) == sorted(["middle", "server"][2 - w.hops:])
        if w.hops == 0:
            assert d["iperf3"]["sender_tcp_congestion"] == "cubic"
    assert "two-hops-p4" in r.stdout and "tcp-fwd (baseline)" in r.stdout
