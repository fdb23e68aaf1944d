"""``python -m quicreality.bench gate-timing``: the REALITY gate's timing side channel, same run.

Time from a client's first Initial to the first datagram it gets back, for:

* ``accepted, paced``: our REALITY client -> our listener (``pace_first_reply = true``, the
  default: the accepted flow's first reply waits for the target's learned first-reply time);
* ``accepted, unpaced``: the same against a second listener with ``pace_first_reply = false``;
* ``rejected -> target``: our plain client (no REALITY seal) -> the listener -> relayed to the
  target;
* ``target direct``: our plain client -> the target, on the same path the listener reaches it by.

Every client sends the Chrome-shaped first flight (``fingerprint="chrome"``). The target is an
ngtcp2 server (gtlsserver) behind a userspace delay relay on loopback that holds every datagram
``--delay-ms`` in each direction (``--delay-ms 0``: the relay forwards at once), so the target is as
far from the listener as from a direct client, and its typical answer is not ~0 ms. Both listeners
reach the target through that relay and learn its shape, and first-reply time, through it. The
four kinds are interleaved sample by sample (a fresh UDP socket each; the connection is dropped
after its first reply datagram). Printed: median, p10, p90 and N per kind, and each median over
the direct target's. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import os
import select
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..scenarios.peers import paths
from ..scenarios.peers.base import free_udp_port
from ..scenarios.peers.certs import make_test_cert
from .handshake import start_server_process, stop_processes

SNI = "localhost"
SHORT_ID = "0a0b"


class DelayRelay:
    """A UDP relay on loopback that delivers every datagram ``delay`` seconds late, both ways.

    Each client address gets its own upstream socket (the target sees one peer per client).
    Runs in a daemon thread until :meth:`close`.
    """

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target = target
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self._up: dict[Any, socket.socket] = {}
        self._client_of: dict[socket.socket, Any] = {}
        self._due: list[tuple[float, int, socket.socket, bytes, Any]] = []
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _queue(self, sock: socket.socket, data: bytes, addr: Any) -> None:
        heapq.heappush(self._due, (time.monotonic() + self.delay, next(self._seq), sock, data, addr))

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                _, _, sock, data, addr = heapq.heappop(self._due)
                try:
                    sock.sendto(data, addr)
                except OSError:
                    pass
            wait = min(0.05, max(0.0, self._due[0][0] - now)) if self._due else 0.05
            readable, _, _ = select.select([self.sock, *self._client_of], [], [], wait)
            for sock in readable:
                try:
                    data, addr = sock.recvfrom(65536)
                except OSError:
                    continue
                if sock is self.sock:
                    up = self._up.get(addr)
                    if up is None:
                        up = self._up[addr] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        up.bind(("127.0.0.1", 0))
                        up.setblocking(False)
                        self._client_of[up] = addr
                    self._queue(up, data, self.target)
                else:
                    self._queue(self.sock, data, self._client_of[sock])

    def close(self) -> None:
        """Stop the thread and close every socket."""
        self._stop.set()
        self._thread.join(5)
        for sock in (self.sock, *self._client_of):
            sock.close()


def first_reply_time(make: Callable[[], Any], port: int, timeout: float = 5.0) -> float | None:
    """Seconds from our client's first datagram to the first one back from 127.0.0.1:``port``."""
    addr = ("127.0.0.1", port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        conn = make()
        conn.connect(addr, time.monotonic())
        datagrams = conn.datagrams_to_send(time.monotonic())
        t0 = time.perf_counter()
        for data, _ in datagrams:
            sock.sendto(data, addr)
        readable, _, _ = select.select([sock], [], [], timeout)
        if not readable:
            return None
        sock.recv(65536)
        return time.perf_counter() - t0
    finally:
        sock.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _listener(workdir: Path, name: str, relay_port: int, private_key: str, pace: bool,
              procs: list[Any]) -> int:
    port = free_udp_port()
    cfg = workdir / f"{name}.toml"
    cfg.write_text("[reality]\n"
                   f'private_key = "{private_key}"\n'
                   f'server_names = ["{SNI}"]\nshort_ids = ["{SHORT_ID}"]\n'
                   f'target = "127.0.0.1:{relay_port}"\nmax_time_diff_ms = 60000\n'
                   f"pace_first_reply = {'true' if pace else 'false'}\n")
    log = workdir / f"{name}.log"
    procs.append(start_server_process(
        [str(paths.python()), "-m", "quicreality", "server", "--listen", f"127.0.0.1:{port}",
         "--reality-config", str(cfg)], port, log))
    deadline = time.monotonic() + 30
    while "target shape for" not in log.read_text():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not learn the target's shape: {log.read_text()[-500:]}")
        time.sleep(0.1)
    return port


def main(argv: list[str]) -> int:
    """Run the benchmark and print the distributions."""
    p = argparse.ArgumentParser(prog="python -m quicreality.bench gate-timing",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=40, help="samples per kind (40)")
    p.add_argument("--delay-ms", type=float, default=25.0,
                   help="one-way delay between the target and everyone else (25)")
    args = p.parse_args(argv)
    if args.samples < 1 or args.delay_ms < 0:
        print("error: --samples must be >= 1 and --delay-ms >= 0", file=sys.stderr)
        return 2
    from ..quic.config import QuicConfiguration
    from ..quic.connection import QuicConnection
    from ..quic.fingerprint import apply_fingerprint
    from ..reality.keys import generate_key_pair, parse_short_id
    from ..reality.seal import reality_client_configuration
    from ..scenarios.peers import get_peer
    from ..scenarios.peers.base import ServeRequest
    from ..tls.certificates import InsecureVerifier

    pair = generate_key_pair(os.urandom)

    def plain() -> Any:
        cfg = QuicConfiguration(is_client=True, rng=os.urandom, wall_clock=time.time,
                                peer_verifier=InsecureVerifier(), server_name=SNI)
        return QuicConnection(configuration=apply_fingerprint(cfg, "chrome"))

    def reality() -> Any:
        base = QuicConfiguration(is_client=True, rng=os.urandom, wall_clock=time.time)
        return QuicConnection(configuration=reality_client_configuration(
            base, server_public_key=pair.public_key, short_id=parse_short_id(SHORT_ID),
            server_name=SNI, fingerprint="chrome"))

    procs: list[Any] = []
    relay: DelayRelay | None = None
    times: dict[str, list[float]] = {}
    lost: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="qr-gtiming-") as d:
        workdir = Path(d)
        (workdir / "www").mkdir()
        try:
            cert, key, _ = make_test_cert(workdir)
            target_port = free_udp_port()
            spec = get_peer("ngtcp2")
            assert spec.serve is not None
            cmd = spec.serve(ServeRequest(www=workdir / "www", port=target_port, cert=cert,
                                          key=key))
            procs.append(start_server_process(list(cmd.argv), target_port, workdir / "target.log",
                                              env=dict(cmd.env)))
            relay = DelayRelay(("127.0.0.1", target_port), args.delay_ms / 1000)
            paced = _listener(workdir, "paced", relay.port, pair.private_key_text, True, procs)
            unpaced = _listener(workdir, "unpaced", relay.port, pair.private_key_text, False, procs)
            kinds: list[tuple[str, Callable[[], Any], int]] = [
                ("accepted, paced", reality, paced),
                ("accepted, unpaced", reality, unpaced),
                ("rejected -> target", plain, paced),
                ("target direct", plain, relay.port),
            ]
            for _ in range(args.samples):
                for name, make, port in kinds:
                    t = first_reply_time(make, port)
                    if t is None:
                        lost[name] = lost.get(name, 0) + 1
                    else:
                        times.setdefault(name, []).append(t)
                    time.sleep(0.02)
            learned = [line for line in (workdir / "paced.log").read_text().splitlines()
                       if "first reply after" in line]
        finally:
            if relay is not None:
                relay.close()
            stop_processes(procs)
    load = os.getloadavg()
    print(f"one-way delay to the target {args.delay_ms:.1f} ms; load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}")
    if learned:
        print("paced listener learned: " + learned[-1].split("first reply after")[-1].strip())
    direct = statistics.median(times["target direct"]) if times.get("target direct") else None
    print(f"{'kind':22s} {'median ms':>10s} {'p10 ms':>8s} {'p90 ms':>8s} {'N':>4s}  vs direct")
    for name, _, _ in kinds:
        got = times.get(name, [])
        if not got:
            print(f"{name:22s} no reply ({lost.get(name, 0)} lost)")
            continue
        med = statistics.median(got)
        ratio = f"{med / direct:.2f}x" if direct else "-"
        extra = f" ({lost[name]} without reply)" if lost.get(name) else ""
        print(f"{name:22s} {med * 1000:10.2f} {_pct(got, 0.1) * 1000:8.2f} "
              f"{_pct(got, 0.9) * 1000:8.2f} {len(got):4d}  {ratio}{extra}")
    return 0
