"""Test harness for the relay: RAW -> QUIC -> RAW on loopback, with real processes.

* :class:`RelayChain` starts ``python -m quicreality server`` (plain TLS, or REALITY once
  configured with ``reality=``) with a ``[relay]`` allow-list, and ``python -m quicreality
  relay-client`` with a set of forwards; both expose Prometheus metrics.
* Destinations run in the test process on threads: :class:`EchoServer`, :class:`HalfCloseServer`
  (answers after the client's FIN), :class:`ObserverServer` (records how a connection ended),
  :class:`ResetServer` (reads a little, then RSTs).

Every process is started through a :class:`~peers_harness.PeerHarness`,
so it is stopped and its temp dir removed when the test (or module) ends, pass or fail.
"""

from __future__ import annotations

import hashlib
import re
import socket
import struct
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peers_harness import PeerHarness, Pki

from quicreality.scenarios.peers import paths
from quicreality.scenarios.peers.base import Command
from quicreality.scenarios.peers.process import PeerProcess

HOST = "127.0.0.1"
LINGER_RST = struct.pack("ii", 1, 0)


def free_tcp_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def free_tcp_udp_port() -> int:
    """A port number free for both TCP and UDP (the iperf3 forward uses both)."""
    for _ in range(100):
        port = free_tcp_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for both TCP and UDP")


def wait_for(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll ``cond`` until it holds; raise AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def rst_close(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
    sock.close()


# ------------------------------------------------------------------------------ destinations


class ThreadedServer:
    """A TCP listener on 127.0.0.1 that runs ``handle(conn)`` on a thread per connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(512)
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._threads: list[threading.Thread] = []
        self._stop = False
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            t = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def handle(self, conn: socket.socket) -> None:
        """Serve one connection (subclasses)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop accepting."""
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class EchoServer(ThreadedServer):
    """Echoes everything; answers the client's FIN with a FIN."""

    def handle(self, conn: socket.socket) -> None:
        while chunk := conn.recv(262144):
            conn.sendall(chunk)
        conn.shutdown(socket.SHUT_WR)


class HalfCloseServer(ThreadedServer):
    """Reads until the client's FIN, then sends ``<length> <sha256>\\n`` and ``reply`` bytes."""

    reply = bytes(range(256)) * 4096  # 1 MiB

    def handle(self, conn: socket.socket) -> None:
        h = hashlib.sha256()
        n = 0
        while chunk := conn.recv(262144):
            h.update(chunk)
            n += len(chunk)
        conn.sendall(f"{n} {h.hexdigest()}\n".encode() + self.reply)
        conn.shutdown(socket.SHUT_WR)


@dataclass
class Observation:
    """How one connection to an :class:`ObserverServer` went."""

    bytes: int = 0
    outcome: str = "open"  #: open, eof, reset, error
    done: threading.Event = field(default_factory=threading.Event)


class ObserverServer(ThreadedServer):
    """Reads until EOF or error and records which one it was."""

    def __init__(self) -> None:
        self.observations: list[Observation] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        obs = Observation()
        self.observations.append(obs)
        try:
            while chunk := conn.recv(65536):
                obs.bytes += len(chunk)
            obs.outcome = "eof"
        except ConnectionResetError:
            obs.outcome = "reset"
        except OSError:
            obs.outcome = "error"
        finally:
            obs.done.set()


class ResetServer(ThreadedServer):
    """Reads ``limit`` bytes, then closes with an RST."""

    limit = 10_000

    def handle(self, conn: socket.socket) -> None:
        got = 0
        while got < self.limit:
            chunk = conn.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)


class StallServer(ThreadedServer):
    """Accepts and does not read until :attr:`go` is set; then hashes everything until EOF."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.digests: list[tuple[int, str]] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        self.go.wait(120)
        h = hashlib.sha256()
        n = 0
        while chunk := conn.recv(1 << 20):
            h.update(chunk)
            n += len(chunk)
        self.digests.append((n, h.hexdigest()))


class UdpEchoServer:
    """Echoes UDP datagrams; counts what it saw."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port: int = self.sock.getsockname()[1]
        self.received = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                return
            self.received += 1
            self.sock.sendto(data, addr)

    def close(self) -> None:
        """Stop."""
        self.sock.close()


def rss_bytes(pid: int) -> int:
    """Resident set size of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


#: A destination process for the "killed mid-transfer" test: accepts, reads slowly (so unread
#: data sits in its receive buffer and the kernel answers its death with an RST).
SLOW_SINK = r"""
import socket, sys, threading, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
print("ready", flush=True)
def slow(c):
    while c.recv(4096):
        time.sleep(0.01)
while True:
    c, _ = s.accept()
    threading.Thread(target=slow, args=(c,), daemon=True).start()
"""


# ---------------------------------------------------------------------------------- chain


@dataclass(frozen=True)
class Fwd:
    """A relay-client forward: ``name`` -> destination port, TCP and/or UDP (same listen port
    when ``listen_port`` is given)."""

    name: str
    dest_port: int
    udp: bool = False
    listen_port: int = 0
    tcp: bool = True


@dataclass
class RealitySetup:
    """What the REALITY server and client need (keys from ``python -m quicreality keygen``)."""

    private_key: str
    public_key: str
    short_id: str
    server_name: str
    target: str


def make_reality_setup(target_port: int) -> RealitySetup:
    """Fresh REALITY keys (``python -m quicreality keygen --json``); the fallback target is a
    loopback UDP port (accepted relay clients never reach it after the verdict)."""
    import json
    import subprocess

    out = subprocess.run([str(paths.python()), "-m", "quicreality", "keygen", "--json"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    keys = json.loads(out)
    return RealitySetup(private_key=keys["private_key"], public_key=keys["public_key"],
                        short_id=keys["short_id"], server_name="www.example.com",
                        target=f"{HOST}:{target_port}")


class RelayChain:
    """The relay server and client processes for one set of forwards (see the module docstring)."""

    def __init__(self, harness: PeerHarness, pki: Pki, forwards: list[Fwd], allow: list[str], *,
                 reality: RealitySetup | None = None, client_args: tuple[str, ...] = (),
                 server_args: tuple[str, ...] = ()) -> None:
        self.harness = harness
        self.pki = pki
        self.forwards = forwards
        self.allow = allow
        self.reality = reality
        self.client_args = client_args
        self.server_args = server_args
        self.server_port = 0
        self.server_metrics = free_tcp_port()
        self.client_metrics = free_tcp_port()
        self.listen: dict[str, int] = {}
        self.listen_udp: dict[str, int] = {}
        self.server: PeerProcess | None = None
        self.client: PeerProcess | None = None
        self.config_path = harness.path("relay.toml")
        self.label = ""
        self._n = 0

    # ----------------------------------------------------------------- processes

    def _start(self, argv: list[str], name: str) -> PeerProcess:
        self._n += 1
        label = f"{self.label}-" if self.label else ""  # hops share a log dir: names must differ
        return self.harness.start(PeerProcess(Command(argv=tuple(argv)),
                                              name=f"{label}{self._n:02d}-{name}",
                                              log_dir=self.harness.path("logs")))

    def write_config(self) -> None:
        """The server's TOML: ``[relay]`` (and ``[reality]`` in REALITY mode)."""
        lines = []
        if self.reality is not None:
            r = self.reality
            lines += ["[reality]", f'private_key = "{r.private_key}"',
                      f'server_names = ["{r.server_name}"]', f'short_ids = ["{r.short_id}"]',
                      f'target = "{r.target}"', 'min_client_ver = "0.0.0"', ""]
        allow = ", ".join(f'"{a}"' for a in self.allow)
        lines += ["[relay]", f"allow = [{allow}]", "connect_timeout_ms = 3000",
                  "udp_idle_timeout_ms = 3000", ""]
        self.config_path.write_text("\n".join(lines))

    def start_server(self, port: int = 0) -> PeerProcess:
        """Start (or restart, on the same port) the relay server."""
        if not self.config_path.exists():
            self.write_config()
        argv = [str(paths.python()), "-m", "quicreality", "server", "--listen", f"{HOST}:{port}",
                "--metrics-listen", f"{HOST}:{self.server_metrics}", *self.server_args]
        if self.reality is not None:  # one file: [reality] and [relay]
            argv += ["--reality-config", str(self.config_path)]
        else:
            argv += ["--cert", str(self.pki.cert), "--key", str(self.pki.key),
                     "--relay-config", str(self.config_path)]
        proc = self._start(argv, "relay-server")
        wait_for(lambda: "listening on" in proc.stdout() or not proc.running(), 20,
                 "the relay server to listen")
        match = re.search(r"listening on [\d.]+:(\d+)", proc.stdout())
        assert match, proc.describe()
        self.server_port = int(match.group(1))
        self.server = proc
        return proc

    def start_client(self, *, wait: bool = True) -> PeerProcess:
        """Start the relay client and wait until it is connected (``wait=False``: only until it
        listens, for a client the server is expected to turn away at first)."""
        argv = [str(paths.python()), "-m", "quicreality", "relay-client",
                "--server", f"{HOST}:{self.server_port}",
                "--metrics-listen", f"{HOST}:{self.client_metrics}", *self.client_args]
        if self.reality is not None:
            r = self.reality
            # "=": a base64url key may start with "-", which argparse would take for an option
            argv += [f"--reality-public-key={r.public_key}", "--short-id", r.short_id,
                     "--server-name", r.server_name]
        else:
            argv += ["--ca", str(self.pki.ca), "--server-name", "localhost"]
        for fwd in self.forwards:
            if fwd.tcp:
                argv += ["--tcp-listen", f"{HOST}:{fwd.listen_port}",
                         "--forward", f"{HOST}:{fwd.dest_port}"]
            if fwd.udp:
                argv += ["--udp-listen", f"{HOST}:{fwd.listen_port}",
                         "--forward", f"{HOST}:{fwd.dest_port}"]
        proc = self._start(argv, "relay-client")
        self.client = proc
        if wait:
            self.wait_connected(1)
        else:
            n = len(self.forwards)
            wait_for(lambda: proc.stdout().count("listening ") >= n or not proc.running(), 20,
                     "the relay client to listen")
        tcp = re.findall(r"listening tcp [\d.]+:(\d+) ->", proc.stdout())
        udp = re.findall(r"listening udp [\d.]+:(\d+) ->", proc.stdout())
        tcp_fwds = [f for f in self.forwards if f.tcp]
        udp_fwds = [f for f in self.forwards if f.udp]
        assert (len(tcp), len(udp)) == (len(tcp_fwds), len(udp_fwds)), proc.describe()
        self.listen = {fwd.name: int(port) for fwd, port in zip(tcp_fwds, tcp, strict=False)}
        self.listen_udp = {fwd.name: int(port) for fwd, port in zip(udp_fwds, udp, strict=False)}
        return proc

    def wait_connected(self, times: int, timeout: float = 20.0) -> None:
        """Wait until the client reported ``times`` successful handshakes."""
        client = self.client
        assert client is not None
        wait_for(lambda: client.stdout().count("connected to") >= times or not client.running(),
                 timeout, f"handshake #{times} of the relay client")
        assert client.running(), client.describe()

    def start(self) -> RelayChain:
        """Server, then client."""
        self.start_server()
        self.start_client()
        return self

    def describe(self) -> str:
        """Both processes' logs, for assertion messages."""
        return "\n".join(p.describe(40) for p in (self.server, self.client) if p is not None)

    # ------------------------------------------------------------------- metrics

    def metrics(self, side: str) -> dict[str, float]:
        """The Prometheus samples of ``side`` ("server" or "client") as ``{"name{labels}": value}``."""
        port = self.server_metrics if side == "server" else self.client_metrics
        text = urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5).read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def metric(self, side: str, name: str, **labels: str) -> float:
        """One sample (0 when absent); ``side`` label added automatically."""
        want = {"side": side, **labels}
        total = 0.0
        for key, value in self.metrics(side).items():
            metric, _, rest = key.partition("{")
            if metric != name:
                continue
            got = dict(re.findall(r'(\w+)="([^"]*)"', rest))
            if all(got.get(k) == v for k, v in want.items()):
                total += value
        return total


def sha256_of_stream(seed: int, size: int, chunk: int = 1 << 20) -> tuple[Callable[[], bytes | None], Any]:
    """A generator of ``size`` seeded pseudo-random bytes in chunks, and the hash it feeds."""
    import random

    rnd = random.Random(seed)
    h = hashlib.sha256()
    remaining = [size]

    def next_chunk() -> bytes | None:
        if remaining[0] <= 0:
            return None
        n = min(chunk, remaining[0])
        remaining[0] -= n
        data = rnd.randbytes(n)
        h.update(data)
        return data

    return next_chunk, h


def results_dir(root: Path, name: str) -> Path:
    """``results/runs/<UTC time>-<git sha>-<name>/`` under ``root`` (created)."""
    import datetime
    import subprocess

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10, check=False).stdout.strip() or "nogit"
    except OSError:
        sha = "nogit"
    d = root / "results" / "runs" / f"{stamp}-{sha}-{name}"
    d.mkdir(parents=True, exist_ok=True)
    return d
