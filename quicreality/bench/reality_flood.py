"""``python -m quicreality.bench reality-flood`` (root): the REALITY listener under a spoofed-source
Initial flood, and a genuine REALITY client's download during it.

An ngtcp2 target (gtlsserver) and our REALITY listener in front of it (the CLI, with a metrics
endpoint) are started; the bench sends ``--count`` valid
ClientHellos without REALITY credentials, each from its own spoofed address, at ``--rate`` per
second (prebuilt :class:`~quicreality.bench.flood.InitialForge` Initials from a raw socket); a
quarter into the flood our CLI client, a genuine REALITY client, downloads ``--download`` bytes.
Printed per listener: hellos judged (every rejected verdict the listener counted, from its
metrics) per second and the listener's CPU per hello in the first quarter (the flood alone), the
totals, hellos it shed unjudged, the kernel's drops on the listener's socket, and the genuine
client's download time.

``--compare TREE`` also runs the listener from another source tree (e.g. the main checkout, the
code before a change), alternating with this tree's for ``--rounds`` rounds, so both see the same
machine load; the ratios are of medians over the rounds of that run. Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..metrics import scrape_metrics
from ..scenarios.peers import paths
from ..scenarios.peers.base import free_udp_port
from ..scenarios.peers.certs import make_test_cert
from .flood import InitialForge, spoofed_sources, spoofed_udp
from .handshake import proc_cpu, start_server_process, stop_processes

SNI = "localhost"
SHORT_ID = "0a0b"


@dataclass
class Round:
    """One flood against one listener."""

    judged: float
    shed: float
    kernel_drops: int
    flood_s: float
    download_s: float | None
    accepted: float
    cpu_s: float
    #: the flood's first quarter, before the genuine client starts
    quarter_judged: float
    quarter_cpu_s: float
    quarter_s: float

    @property
    def rate(self) -> float:
        """Hellos judged per second in the first quarter (the flood alone)."""
        return self.quarter_judged / self.quarter_s

    @property
    def cpu_ms(self) -> float:
        """Listener CPU per hello judged in the first quarter."""
        return 1000 * self.quarter_cpu_s / max(self.quarter_judged, 1)


@dataclass
class Tree:
    """A source tree whose listener is measured."""

    name: str
    root: Path
    rounds: list[Round] = field(default_factory=list)


def _free_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _judged(m: dict[str, float]) -> float:
    return sum(v for k, v in m.items()
               if k.startswith("quicreality_reality_handshakes_rejected_total{"))


def udp_drops(port: int) -> int:
    """The kernel's drop counter of the UDP socket bound to ``port`` (/proc/net/udp), or -1."""
    with open("/proc/net/udp") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                return int(fields[-1])
    return -1


def forge_flood(count: int, port: int) -> list[bytes]:
    """``count`` spoofed IPv4/UDP packets, each a valid Initial from its own source, to ``port``."""
    forge = InitialForge(server_name=SNI)
    return [spoofed_udp(forge.forge(os.urandom(8), os.urandom(8)), src, ("127.0.0.1", port))
            for src in spoofed_sources(count)]


def send_flood(packets: list[bytes], rate: float) -> float:
    """Send prebuilt raw packets at most ``rate`` per second (root); return seconds taken."""
    import socket

    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    start = time.monotonic()
    try:
        raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        for i, packet in enumerate(packets):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                raw.sendto(packet, ("127.0.0.1", 0))
            except OSError:
                pass  # a full send buffer drops it, as the network would
    finally:
        raw.close()
    return time.monotonic() - start


def _one_round(tree: Tree, workdir: Path, target_port: int, args: argparse.Namespace,
               public_key: str, private_key: str) -> Round:
    port, metrics_port = free_udp_port(), _free_tcp_port()
    cfg = workdir / f"reality-{tree.name}.toml"
    cfg.write_text("[reality]\n"
                   f'private_key = "{private_key}"\n'
                   f'server_names = ["{SNI}"]\nshort_ids = ["{SHORT_ID}"]\n'
                   f'target = "127.0.0.1:{target_port}"\nmax_time_diff_ms = 60000\n'
                   'min_client_ver = "26.0.0"\nmax_client_ver = "26.9.9"\n'
                   "max_fallback_flows = 2048\nfallback_idle_timeout_ms = 5000\n")
    env = {"PYTHONPATH": str(tree.root)}
    listener = start_server_process(
        [str(paths.python()), "-m", "quicreality", "server", "--listen", f"127.0.0.1:{port}",
         "--reality-config", str(cfg), "--www", str(workdir / "www"),
         "--metrics-listen", f"127.0.0.1:{metrics_port}"],
        port, workdir / f"listener-{tree.name}.log", env=env, cwd=tree.root)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                before = scrape_metrics(metrics_port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        time.sleep(2.0)  # the listener learns the target's shape first
        before = scrape_metrics(metrics_port)
        packets = forge_flood(args.count, port)
        drops0, cpu0 = udp_drops(port), proc_cpu(listener.pid)
        seconds: list[float] = []
        flooder = threading.Thread(target=lambda: seconds.append(send_flood(packets, args.rate)),
                                   daemon=True)
        flooder.start()
        time.sleep(args.count / args.rate / 4)
        quarter, cpu_q = scrape_metrics(metrics_port), proc_cpu(listener.pid) - cpu0
        out = workdir / f"out-{tree.name}"
        shutil.rmtree(out, ignore_errors=True)
        client = [str(paths.python()), "-m", "quicreality", "client",
                  f"https://127.0.0.1:{port}/bytes/{args.download}", "-o", str(out),
                  f"--reality-public-key={public_key}", "--short-id", SHORT_ID,
                  "--server-name", SNI, "--timeout", str(args.client_timeout)]
        result: list[float | None] = []

        def genuine() -> None:
            t0 = time.monotonic()
            done = subprocess.run(client, cwd=tree.root, env={**os.environ, **env},
                                  capture_output=True, timeout=args.client_timeout + 30)
            got = out / str(args.download)
            ok = done.returncode == 0 and got.exists() and got.stat().st_size == args.download
            result.append(time.monotonic() - t0 if ok else None)

        downloader = threading.Thread(target=genuine, daemon=True)
        downloader.start()
        flooder.join()
        time.sleep(2.0)  # what the kernel and the backlog hold
        after = scrape_metrics(metrics_port)  # the flood's totals, whether or not the download is over
        cpu = proc_cpu(listener.pid) - cpu0
        downloader.join()
        download_s = result[0] if result else None
        shed_key = "quicreality_reality_hellos_shed_total"
        return Round(
            judged=_judged(after) - _judged(before),
            shed=after.get(shed_key, 0.0) - before.get(shed_key, 0.0),
            kernel_drops=udp_drops(port) - drops0,
            flood_s=seconds[0],
            download_s=download_s,
            accepted=after.get("quicreality_reality_handshakes_accepted_total", 0.0)
            - before.get("quicreality_reality_handshakes_accepted_total", 0.0),
            cpu_s=cpu,
            quarter_judged=_judged(quarter) - _judged(before),
            quarter_cpu_s=cpu_q,
            quarter_s=args.count / args.rate / 4,
        )
    finally:
        stop_processes([listener])


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main(argv: list[str]) -> int:
    """Run the benchmark and print per-round lines and the same-run comparison."""
    p = argparse.ArgumentParser(prog="python -m quicreality.bench reality-flood",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=10_000, help="spoofed Initials per round (10000)")
    p.add_argument("--rate", type=float, default=1000.0, help="Initials per second (1000)")
    p.add_argument("--download", type=int, default=1_000_000,
                   help="bytes the genuine client downloads during the flood (1000000)")
    p.add_argument("--rounds", type=int, default=1, help="rounds per tree (1)")
    p.add_argument("--compare", metavar="TREE",
                   help="also measure the listener of this source tree (e.g. /work/main)")
    p.add_argument("--client-timeout", type=float, default=120.0,
                   help="the genuine client gives up after this many seconds (120)")
    args = p.parse_args(argv)
    if args.count < 1 or args.rate <= 0 or args.rounds < 1:
        print("error: --count and --rounds must be >= 1, --rate > 0", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("error: the flood needs a raw socket (run as root)", file=sys.stderr)
        return 2
    from ..reality.keys import generate_key_pair
    from ..scenarios.peers import get_peer
    from ..scenarios.peers.base import ServeRequest

    trees = [Tree("this", paths.REPO_ROOT)]
    if args.compare:
        trees.insert(0, Tree("compare", Path(args.compare).resolve()))
    pair = generate_key_pair(os.urandom)
    with tempfile.TemporaryDirectory(prefix="qr-rflood-") as d:
        workdir = Path(d)
        (workdir / "www").mkdir()
        cert, key, _ = make_test_cert(workdir)
        target_port = free_udp_port()
        spec = get_peer("ngtcp2")
        assert spec.serve is not None
        cmd = spec.serve(ServeRequest(www=workdir / "www", port=target_port, cert=cert, key=key))
        target = start_server_process(list(cmd.argv), target_port, workdir / "target.log",
                                      env=dict(cmd.env))
        try:
            for r in range(args.rounds):
                for tree in trees:
                    got = _one_round(tree, workdir, target_port, args, pair.public_key_text,
                                     pair.private_key_text)
                    tree.rounds.append(got)
                    dl = f"{got.download_s:.1f} s" if got.download_s is not None else "FAILED"
                    print(f"round {r + 1} {tree.name} ({tree.root}): {args.count} Initials in "
                          f"{got.flood_s:.1f} s; judged {got.judged:.0f} "
                          f"({got.judged / got.flood_s:.0f}/s of flood), shed {got.shed:.0f}, kernel drops "
                          f"{got.kernel_drops}; first quarter (flood only): {got.rate:.0f} judged/s, "
                          f"listener CPU {got.cpu_ms:.2f} ms per hello; genuine "
                          f"{args.download} B download: {dl}; accepted {got.accepted:.0f}",
                          flush=True)
        finally:
            stop_processes([target])
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f}")
    for tree in trees:
        per = _median([x.cpu_ms for x in tree.rounds])
        rate = _median([x.rate for x in tree.rounds])
        dls = [x.download_s for x in tree.rounds if x.download_s is not None]
        failed = sum(x.download_s is None for x in tree.rounds)
        print(f"{tree.name}: judged/s median {rate:.0f}; listener CPU ms per hello median "
              f"{per:.2f}; download median "
              f"{_median(dls):.1f} s ({failed} failed of {len(tree.rounds)})")
    if len(trees) == 2:
        old, new = trees
        r_old = _median([x.rate for x in old.rounds])
        r_new = _median([x.rate for x in new.rounds])
        print(f"judged/s this / compare: {r_new / r_old:.2f}x")
        c_old = _median([x.cpu_ms for x in old.rounds])
        c_new = _median([x.cpu_ms for x in new.rounds])
        print(f"listener CPU per hello compare / this: {c_old / c_new:.2f}x")
        d_old = [x.download_s for x in old.rounds if x.download_s is not None]
        d_new = [x.download_s for x in new.rounds if x.download_s is not None]
        if d_old and d_new:
            print(f"download time compare / this: {_median(d_old) / _median(d_new):.2f}x")
    return 0
