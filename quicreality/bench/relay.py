"""``python -m quicreality.bench relay``: iperf3 through RAW -> QUIC_REALITY -> RAW vs direct TCP.

One run starts a REALITY server with a ``[relay]`` table (``--plain``: plain TLS instead), a relay
client forwarding a local port to an iperf3 server, and then, interleaved round by round so that
drift on a shared machine hits both alike, for each ``-P`` value:

* ``direct``: iperf3 client -> iperf3 server over loopback TCP;
* ``relay``: iperf3 client -> relay client -> QUIC (REALITY) -> relay server -> iperf3 server.

Per relay process it also prints where its wall time went (``/proc/<pid>/task/*/schedstat``):
running, waiting in the run queue for a CPU, or idle (asleep: waiting on sockets or timers). A relay
that is slow with the run-queue share high is CPU-starved by the machine's other work, not held
back by windows or timers; only a high idle share points at those (``docs/performance.md``).

The relay runs once per QUIC datagram size (``--datagram-sizes``, default 1200 and 1452: one relay
server and client pair each), so each ``-P`` gets a row per size.
Printed per mode: receiver goodput of both (Mbit/s, median of rounds), the ratio relay/direct,
and the relay's CPU seconds per GB received (server and client processes, from
``/proc/<pid>/stat``), which is the robust number on a loaded machine. TCP runs name their
congestion controller (``-C``). Nothing here asserts a speed. ``--out DIR`` keeps every iperf3
JSON document and a ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..scenarios.peers import iperf3, paths
from ..scenarios.peers.base import Command, free_udp_port
from ..scenarios.peers.certs import make_test_cert
from ..scenarios.peers.process import PeerProcess

HOST = "127.0.0.1"
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (not its children), in seconds."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    return (int(fields[11]) + int(fields[12])) / _TICK


def sched_seconds(pid: int) -> tuple[float, float]:
    """``(running, waiting in the run queue)`` seconds of all a process's threads (schedstat)."""
    run = wait = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as f:
            fields = f.read().split()
        run += int(fields[0])
        wait += int(fields[1])
    return run / 1e9, wait / 1e9


def sched_shares(before: tuple[float, float], after: tuple[float, float],
                 wall: float) -> dict[str, float]:
    """Shares of ``wall`` spent running, waiting for a CPU, and idle (the rest)."""
    run = (after[0] - before[0]) / wall if wall > 0 else 0.0
    wait = (after[1] - before[1]) / wall if wall > 0 else 0.0
    return {"run": round(run, 3), "wait": round(wait, 3), "idle": round(max(0.0, 1 - run - wait), 3)}


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Sample:
    """One iperf3 run."""

    mode: str
    parallel: int
    mbps: float
    bytes: int
    datagram: int = 0  # the relay's QUIC datagram size (0 for direct TCP)
    cpu_server: float = 0.0
    cpu_client: float = 0.0
    doc: dict[str, Any] = field(default_factory=dict, repr=False)
    #: shares of the run's wall time per relay process ("server", "client"): run, wait, idle
    sched: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def cpu_per_gb(self) -> float:
        """Relay CPU seconds (both processes) per GB received."""
        return (self.cpu_server + self.cpu_client) / max(self.bytes / 1e9, 1e-9)


class Bench:
    """The processes of one benchmark run."""

    def __init__(self, workdir: Path, *, plain: bool, extra: list[str]) -> None:
        self.workdir = workdir
        self.plain = plain
        self.extra = extra
        self.procs: list[PeerProcess] = []
        self.iperf_port = _free_tcp_port()
        self.listen_port = _free_tcp_port()
        self.server: PeerProcess | None = None
        self.client: PeerProcess | None = None

    def _start(self, argv: list[str], name: str) -> PeerProcess:
        proc = PeerProcess(Command(argv=tuple(argv)), name=name, log_dir=self.workdir / "logs")
        self.procs.append(proc)
        return proc.start()

    def start(self) -> None:
        """iperf3 server, relay server, relay client (connected)."""
        py = str(paths.python())
        iperf = self._start(list(iperf3.server(HOST, self.iperf_port, one_off=False).argv), "iperf3-server")
        iperf.wait_tcp_ready(self.iperf_port)
        config = self.workdir / "server.toml"
        relay = f'[relay]\nallow = ["{HOST}:{self.iperf_port}"]\n'
        server_argv = [py, "-m", "quicreality", "server", "--listen", f"{HOST}:0", *self.extra]
        client_argv = [py, "-m", "quicreality", "relay-client", *self.extra]
        if self.plain:
            cert, key, ca = make_test_cert(self.workdir)
            config.write_text(relay)
            server_argv += ["--cert", str(cert), "--key", str(key), "--relay-config", str(config)]
            client_argv += ["--ca", str(ca), "--server-name", "localhost"]
        else:
            from ..reality.keys import generate_key_pair, generate_short_id

            pair = generate_key_pair(os.urandom)
            short_id = generate_short_id(os.urandom)
            config.write_text(
                f'[reality]\nprivate_key = "{pair.private_key_text}"\n'
                f'server_names = ["www.example.com"]\nshort_ids = ["{short_id}"]\n'
                f'target = "{HOST}:{free_udp_port()}"\n\n{relay}')
            server_argv += ["--reality-config", str(config)]
            client_argv += [f"--reality-public-key={pair.public_key_text}", "--short-id", short_id,
                            "--server-name", "www.example.com"]
        self.server = server = self._start(server_argv, "relay-server")
        _wait(lambda: "listening on" in server.stdout() or not server.running(), 30, "the server")
        match = re.search(r"listening on [\d.]+:(\d+)", server.stdout())
        if not match:
            raise RuntimeError(server.describe())
        client_argv += ["--server", f"{HOST}:{match.group(1)}",
                        "--tcp-listen", f"{HOST}:{self.listen_port}",
                        "--forward", f"{HOST}:{self.iperf_port}"]
        self.client = client = self._start(client_argv, "relay-client")
        _wait(lambda: "connected to" in client.stdout() or not client.running(), 30,
              "the relay client's handshake")
        if not client.running():
            raise RuntimeError(client.describe())

    def run(self, mode: str, parallel: int, seconds: float, congestion: str, datagram: int = 0) -> Sample:
        """One iperf3 client run, direct or through the relay."""
        port = self.iperf_port if mode == "direct" else self.listen_port
        req = iperf3.IperfRequest(host=HOST, port=port, seconds=seconds, congestion=congestion)
        argv = [*iperf3.client(req).argv, "-P", str(parallel)]
        assert self.server is not None and self.client is not None
        cpu0 = (cpu_seconds(self.server.pid), cpu_seconds(self.client.pid))
        sched0 = (sched_seconds(self.server.pid), sched_seconds(self.client.pid))
        t0 = time.monotonic()
        proc = self._start(argv, f"iperf3-{mode}-P{parallel}-{len(self.procs)}")
        done = proc.wait(seconds + 60)
        cpu1 = (cpu_seconds(self.server.pid), cpu_seconds(self.client.pid))
        sched1 = (sched_seconds(self.server.pid), sched_seconds(self.client.pid))
        wall = time.monotonic() - t0
        doc = json.loads(done.stdout)
        if done.returncode != 0 or doc.get("error"):
            raise RuntimeError(f"iperf3 {mode} -P {parallel}: {doc.get('error')}\n{proc.describe()}")
        received = doc["end"]["sum_received"]
        sample = Sample(mode, parallel, received["bits_per_second"] / 1e6, int(received["bytes"]),
                        datagram if mode == "relay" else 0, doc=doc)
        if mode == "relay":
            sample.cpu_server, sample.cpu_client = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
            sample.sched = {"server": sched_shares(sched0[0], sched1[0], wall),
                            "client": sched_shares(sched0[1], sched1[1], wall)}
        return sample

    def close(self) -> None:
        """Stop everything (newest first)."""
        for proc in reversed(self.procs):
            try:
                proc.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others anyway
                print(f"warning: could not stop {proc.name}: {exc}", file=sys.stderr)


def summarize(samples: list[Sample], parallels: list[int],
              sizes: list[int] | None = None) -> list[dict[str, Any]]:
    """Medians per -P value and relay datagram size (``sizes``: those of the relay samples)."""
    rows = []
    sizes = sizes or sorted({s.datagram for s in samples if s.mode == "relay"})
    for p, size in ((p, size) for p in parallels for size in sizes):
        direct = [s for s in samples if s.parallel == p and s.mode == "direct"]
        relay = [s for s in samples if s.parallel == p and s.mode == "relay" and s.datagram == size]
        if not direct or not relay:
            continue
        d = statistics.median(s.mbps for s in direct)
        r = statistics.median(s.mbps for s in relay)
        rows.append({
            "parallel": p, "datagram": size, "direct_mbps": round(d, 1), "relay_mbps": round(r, 1),
            "ratio": round(r / d, 4) if d else None,
            "relay_cpu_s_per_gb": round(statistics.median(s.cpu_per_gb for s in relay), 2),
            "relay_server_cpu_s_per_gb": round(statistics.median(
                s.cpu_server / max(s.bytes / 1e9, 1e-9) for s in relay), 2),
            "relay_client_cpu_s_per_gb": round(statistics.median(
                s.cpu_client / max(s.bytes / 1e9, 1e-9) for s in relay), 2),
            "relay_sched": {side: {k: round(statistics.median(s.sched[side][k] for s in relay), 3)
                                   for k in ("run", "wait", "idle")}
                            for side in ("server", "client") if all(side in s.sched for s in relay)},
            "rounds": len(relay),
            "relay_per_round_mbps": [round(s.mbps, 1) for s in relay],
            "direct_per_round_mbps": [round(s.mbps, 1) for s in direct],
        })
    return rows


def main(argv: list[str]) -> int:
    """Entry point of ``python -m quicreality.bench relay``."""
    ap = argparse.ArgumentParser(prog="python -m quicreality.bench relay", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="iperf3 -t per run (default 10)")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds (default 1)")
    ap.add_argument("--parallel", default="1,4", help="iperf3 -P values (default 1,4)")
    ap.add_argument("--congestion", default="cubic", help="iperf3 -C for the TCP legs (default cubic)")
    ap.add_argument("--plain", action="store_true", help="plain TLS instead of REALITY")
    ap.add_argument("--datagram-sizes", "--max-datagram-size", default="1200,1452", metavar="LIST",
                    help="QUIC datagram sizes for both relay ends, one relay pair each "
                         "(default 1200,1452)")
    ap.add_argument("--out", help="keep iperf3 JSON documents and summary.json here")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    try:
        parallels = [int(x) for x in args.parallel.split(",") if x]
        sizes = [int(x) for x in args.datagram_sizes.split(",") if x]
    except ValueError:
        print("error: --parallel and --datagram-sizes take comma-separated integers", file=sys.stderr)
        return 2
    if not parallels or not sizes or min(parallels) < 1 or min(sizes) < 1200 or max(sizes) > 65527:
        print("error: --parallel needs values >= 1, --datagram-sizes values in 1200..65527",
              file=sys.stderr)
        return 2
    if shutil.which(str(paths.iperf3())) is None and not Path(str(paths.iperf3())).exists():
        print("error: iperf3 not found (scripts/setup.sh installs it)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="qr-bench-relay-"))
    benches = {size: Bench(workdir / f"d{size}", plain=args.plain,
                           extra=["--max-datagram-size", str(size)]) for size in sizes}
    samples: list[Sample] = []
    try:
        for bench in benches.values():
            bench.start()
        for rnd in range(args.rounds):
            for p in parallels:
                runs = [("direct", sizes[0])] + [("relay", size) for size in sizes]
                for mode, size in (runs if rnd % 2 == 0 else runs[::-1]):
                    s = benches[size].run(mode, p, args.seconds, args.congestion, size)
                    samples.append(s)
                    label = f"relay {size:5d}" if mode == "relay" else "direct    "
                    print(f"round {rnd + 1} -P {p} {label} {s.mbps:8.1f} Mbit/s"
                          + (f"  relay CPU {s.cpu_per_gb:.2f} s/GB  {_sched_text(s.sched)}"
                             if mode == "relay" else ""),
                          file=sys.stderr, flush=True)
    finally:
        for bench in benches.values():
            bench.close()
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            for i, s in enumerate(samples):
                (out / f"{i:02d}-{s.mode}{s.datagram or ''}-P{s.parallel}.json").write_text(
                    json.dumps(s.doc))
        shutil.rmtree(workdir, ignore_errors=True)
    rows = summarize(samples, parallels, sizes)
    meta = {"transport": "plain TLS" if args.plain else "REALITY", "seconds": args.seconds,
            "congestion": args.congestion, "iperf3": "3.12", "rows": rows}
    if args.out:
        (Path(args.out) / "summary.json").write_text(json.dumps(meta, indent=2))
    if args.json:
        print(json.dumps(meta))
        return 0
    print(f"relay bench ({meta['transport']}, iperf3 -t {args.seconds:g} -C {args.congestion}, "
          f"median of {args.rounds} round(s))")
    print(f"{'-P':>3} {'datagram':>8} {'direct Mbit/s':>14} {'relay Mbit/s':>13} {'ratio':>7} "
          f"{'relay CPU s/GB':>15} {'(server':>8} {'client)':>8}")
    for r in rows:
        print(f"{r['parallel']:>3} {r['datagram']:>8} {r['direct_mbps']:>14.1f} {r['relay_mbps']:>13.1f} "
              f"{r['ratio']:>7.4f} {r['relay_cpu_s_per_gb']:>15.2f} "
              f"{r['relay_server_cpu_s_per_gb']:>8.2f} {r['relay_client_cpu_s_per_gb']:>8.2f}")
    print("relay processes' wall time (medians): run / waiting for a CPU / idle")
    for r in rows:
        print(f"{r['parallel']:>3} {r['datagram']:>8}  {_sched_text(r['relay_sched'])}")
    return 0


def _sched_text(sched: dict[str, dict[str, float]]) -> str:
    """``server run 12% wait 80% idle 8% | client ...``."""
    return " | ".join(f"{side} run {v['run']:.0%} wait {v['wait']:.0%} idle {v['idle']:.0%}"
                      for side, v in sched.items())
