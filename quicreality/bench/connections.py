"""``python -m quicreality.bench connections``: server memory per connection, same run.

Two measurements per server (ours, aioquic 1.7.2 and qh3 2.1.0, each its own process on loopback;
the clients are ours, in this process, one UDP socket per connection):

* **idle**: open ``--idle N`` connections one after another and keep them all open and idle (the
  handshake completed, the server's last packets acknowledged). Printed: the server's RSS growth
  divided by N, i.e. the memory of one idle connection. The connections are then closed.
* **churn**: ``--churn M`` sequential short connections (handshake, then CONNECTION_CLOSE). The
  server's RSS after ``--checkpoint K`` of them and after all M; a server that keeps something per
  closed connection grows between the two. Printed: RSS(M) / RSS(K).

RSS is ``VmRSS`` of ``/proc/PID/status`` after a short settle, so it includes allocator slack; that
is what an operator pays. Nothing here asserts a number: it reports.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..scenarios.peers import paths
from ..scenarios.peers.base import free_udp_port
from ..scenarios.peers.certs import make_test_cert
from .handshake import close_and_flush, drive, start_server_process, stop_processes

SERVERS = ("ours", "aioquic", "qh3")
_SETTLE_S = 0.5


def rss_kb(pid: int) -> int:
    """Resident set size of a process in KiB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Result:
    """One server's figures."""

    server: str
    idle_n: int
    idle_kb_per_conn: float
    churn_checkpoint: int
    churn_total: int
    rss_checkpoint_kb: int
    rss_total_kb: int

    @property
    def churn_growth(self) -> float:
        """RSS after all short connections / RSS after the checkpoint."""
        return self.rss_total_kb / self.rss_checkpoint_kb


def _client() -> Any:
    from ..quic.config import QuicConfiguration
    from ..quic.connection import QuicConnection
    from ..tls.certificates import InsecureVerifier

    cfg = QuicConfiguration(is_client=True, rng=os.urandom, wall_clock=time.time,
                            peer_verifier=InsecureVerifier(), server_name="localhost",
                            idle_timeout=300.0)
    return QuicConnection(configuration=cfg)


class Open:
    """A client connection with its own socket."""

    def __init__(self, port: int, timeout: float) -> None:
        self.addr = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.conn = _client()
        self.conn.connect(self.addr, now=time.monotonic())
        result = drive(self.conn, self.addr, sock=self.sock, timeout=timeout)
        if not result.completed:
            self.sock.close()
            why = result.terminated or ("timeout" if result.timed_out else "no handshake")
            raise RuntimeError(f"handshake to port {port} failed: {why}")

    def pump(self) -> None:
        """Read what arrived, answer it, run due timers (keeps the connection acknowledged)."""
        now = time.monotonic()
        while True:
            try:
                data, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            self.conn.receive_datagram(data, addr, now)
        timer = self.conn.get_timer()
        if timer is not None and now >= timer:
            self.conn.handle_timer(now)
        for data, _ in self.conn.datagrams_to_send(now):
            try:
                self.sock.sendto(data, self.addr)
            except OSError:
                pass
        while self.conn.next_event() is not None:
            pass

    def close(self) -> None:
        """Send CONNECTION_CLOSE and drop the socket."""
        close_and_flush(self.conn, self.addr, self.sock)
        self.sock.close()


def _pump_all(opened: list[Open], secs: float) -> None:
    end = time.monotonic() + secs
    by_fd = {o.sock.fileno(): o for o in opened}
    while (left := end - time.monotonic()) > 0:
        readable, _, _ = select.select(list(by_fd), [], [], min(left, 0.05))
        for fd in readable:
            by_fd[fd].pump()
        for o in opened:  # timers (ACK delay) of the ones that got nothing this round
            o.pump()


def measure_idle(pid: int, port: int, n: int, timeout: float) -> float:
    """KiB of server RSS per idle connection, over ``n`` connections held open."""
    for _ in range(10):  # warm-up: imports, caches, first allocations
        Open(port, timeout).close()
    time.sleep(_SETTLE_S)
    before = rss_kb(pid)
    opened: list[Open] = []
    try:
        for _ in range(n):
            opened.append(Open(port, timeout))
            if len(opened) % 50 == 0:
                _pump_all(opened, 0.02)
        _pump_all(opened, _SETTLE_S)
        after = rss_kb(pid)
    finally:
        for o in opened:
            o.close()
    return (after - before) / n


def measure_churn(pid: int, port: int, checkpoint: int, total: int, timeout: float,
                  progress: bool) -> tuple[int, int]:
    """Server RSS (KiB) after ``checkpoint`` and after ``total`` sequential short connections."""
    at_checkpoint = 0
    for i in range(1, total + 1):
        Open(port, timeout).close()
        if i == checkpoint:
            time.sleep(_SETTLE_S)
            at_checkpoint = rss_kb(pid)
        if progress and i % 500 == 0:
            print(f"  churn {i}/{total}, server RSS {rss_kb(pid)} KiB", flush=True)
    time.sleep(_SETTLE_S)
    return at_checkpoint, rss_kb(pid)


def _start_server(name: str, workdir: Path, cert: Path, key: Path) -> tuple[subprocess.Popen[bytes], int]:
    py, port = str(paths.python()), free_udp_port()
    if name == "ours":
        argv = [py, "-m", "quicreality", "server", "--listen", f"127.0.0.1:{port}",
                "--cert", str(cert), "--key", str(key)]
        return start_server_process(argv, port, workdir / "ours.log"), port
    argv = [py, str(paths.aioquic_script("h3server.py")), "--host", "127.0.0.1", "--port",
            str(port), "--certificate", str(cert), "--private-key", str(key)]
    return start_server_process(argv, port, workdir / f"{name}.log", env={"QR_PEER_IMPL": name}), port


def main(argv: list[str]) -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(prog="python -m quicreality.bench connections", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--idle", type=int, default=500, help="idle connections held open at once")
    ap.add_argument("--churn", type=int, default=10_000, help="sequential short connections")
    ap.add_argument("--checkpoint", type=int, default=1_000,
                    help="RSS is also read after this many short connections")
    ap.add_argument("--servers", default=",".join(SERVERS),
                    help=f"comma separated, from {', '.join(SERVERS)} (default: all)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per handshake")
    args = ap.parse_args(argv)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    bad = [s for s in servers if s not in SERVERS]
    if bad or not servers:
        print(f"error: --servers: unknown {', '.join(bad) or '(empty)'}; choose from "
              f"{', '.join(SERVERS)}", file=sys.stderr)
        return 2
    if args.idle <= 0 or args.churn <= 0 or not 0 < args.checkpoint < args.churn:
        print("error: --idle and --churn must be positive and 0 < --checkpoint < --churn",
              file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="qr-bench-conn-"))
    procs: list[subprocess.Popen[bytes]] = []
    results: list[Result] = []
    try:
        cert, key, _ca = make_test_cert(workdir)
        for name in servers:
            proc, port = _start_server(name, workdir, cert, key)
            procs.append(proc)
            print(f"{name}: {args.idle} idle connections ...", flush=True)
            per_conn = measure_idle(proc.pid, port, args.idle, args.timeout)
            print(f"{name}: {per_conn:.1f} KiB per idle connection; {args.churn} short "
                  "connections ...", flush=True)
            rss_k, rss_m = measure_churn(proc.pid, port, args.checkpoint, args.churn, args.timeout,
                                         progress=True)
            results.append(Result(name, args.idle, per_conn, args.checkpoint, args.churn,
                                  rss_k, rss_m))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_processes(procs)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nserver memory on loopback, same run; idle: {args.idle} connections held open; churn: "
          f"{args.churn} sequential short connections (RSS after {args.checkpoint} and after all)")
    print(f"{'server':8s} {'KiB/idle conn':>13s} {'RSS@ckpt KiB':>13s} {'RSS@end KiB':>12s} "
          f"{'growth':>7s}")
    for r in results:
        print(f"{r.server:8s} {r.idle_kb_per_conn:13.1f} {r.rss_checkpoint_kb:13d} "
              f"{r.rss_total_kb:12d} {r.churn_growth:7.3f}")
    ours = next((r for r in results if r.server == "ours"), None)
    if ours is not None:
        print(f"\nours: {ours.idle_kb_per_conn:.1f} KiB per idle connection (goal <= 50 KB); "
              f"RSS after {ours.churn_total} / after {ours.churn_checkpoint} short connections = "
              f"{ours.churn_growth:.3f} (goal <= 1.05)")
        for r in results:
            if r is not ours and r.idle_kb_per_conn > 0:
                print(f"  idle memory ours / {r.server} = "
                      f"{ours.idle_kb_per_conn / r.idle_kb_per_conn:.2f}x")
    return 0
