#!/usr/bin/env python3
"""Regenerate the small real captures in ``tests/data/scenarios/`` (needs root).

    python tests/data/scenarios/make_data.py

It runs ``tiny.toml`` (next to this script) with the scenario runner itself and keeps:

* ``quic/``: client.pcap and server.pcap (both sides of the impaired link), client.pcapng
  (keys injected), keys.log, the two qlogs, check.json, and meta.json (the numbers the unit
  tests compare against: file size, wire goodput, configured RTT, emulator drops per direction);
* ``tcp/``: headers-only client.pcap/server.pcap of a 1 s iperf3 -R test, iperf3's JSON, meta.json.

The emulator's drop counters must equal the capture difference of the workload's flow; the
script retries (new seed) until they do, so a tcpdump kernel drop cannot sneak into the data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVER, CLIENT = "10.99.2.2", "10.99.1.2"


def _count(pcap: Path, flt: str) -> dict[str, int]:
    out = subprocess.run(["tshark", "-r", str(pcap), "-n", "-T", "fields", "-e", "ip.src",
                          "-Y", flt], capture_output=True, text=True, check=True).stdout.split()
    return {a: out.count(a) for a in (CLIENT, SERVER)}


def main() -> int:
    for seed in range(11, 31):
        with tempfile.TemporaryDirectory(prefix="qr-data-") as tmp:
            r = subprocess.run([sys.executable, "-m", "quicreality.scenarios", "run",
                                str(HERE / "tiny.toml"), "--results", tmp, "--seed", str(seed),
                                "--backend", "userspace"], check=False)
            if r.returncode != 0:
                print(f"seed {seed}: run failed ({r.returncode})")
                continue
            run = next(Path(tmp, "runs").iterdir())
            q = run / "tiny" / "quic" / "ours__ours" / "rep-1"
            t = run / "tiny" / "tcp" / "iperf3__iperf3" / "rep-1"
            qm = json.loads((q / "manifest.json").read_text())
            counters = qm["link"]["emulator_counters_this_rep"]
            drops = {d: counters[d]["dropped_total"] for d in ("to_server", "to_client")}
            at_c, at_s = _count(q / "client.pcap", "udp.port == 443"), _count(
                q / "server.pcap", "udp.port == 443")
            if (at_s[SERVER] - at_c[SERVER], at_c[CLIENT] - at_s[CLIENT]) != (
                    drops["to_client"], drops["to_server"]) or not all(drops.values()):
                print(f"seed {seed}: captures {at_c} {at_s} vs emulator {drops}; again")
                continue
            check = json.loads((q / "check.json").read_text())
            out = HERE / "quic"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            for name in ("client.pcap", "server.pcap", "client.pcapng", "keys.log", "check.json"):
                shutil.copy(q / name, out / name)
            shutil.copytree(q / "qlog", out / "qlog")
            (out / "meta.json").write_text(json.dumps({
                "seed": seed, "file_bytes": check["details"]["file_bytes"],
                "goodput_mbit": check["details"]["wire"]["goodput_mbit"], "rtt_ms": 20.0,
                "emulator_drops_to_client": drops["to_client"],
                "emulator_drops_to_server": drops["to_server"]}, indent=1) + "\n")
            tout = HERE / "tcp"
            shutil.rmtree(tout, ignore_errors=True)
            tout.mkdir()
            for name in ("client.pcap", "server.pcap", "check.json"):
                shutil.copy(t / name, tout / name)
            shutil.copy(t / "client.stdout", tout / "iperf3.json")
            tcheck = json.loads((t / "check.json").read_text())
            doc = json.loads((t / "client.stdout").read_text())
            (tout / "meta.json").write_text(json.dumps({
                "seed": seed, "rate_mbit": 10, "goodput_mbit": tcheck["details"]["wire"][
                    "goodput_mbit"], "wire_bytes": tcheck["details"]["wire"]["bytes"],
                "iperf3_bytes": doc["end"]["sum_received"]["bytes"]}, indent=1) + "\n")
            print(f"seed {seed}: written to {HERE}")
            return 0
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
