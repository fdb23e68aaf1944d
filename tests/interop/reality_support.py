"""Shared pieces of the REALITY interop tests: a target + our REALITY listener, metrics scraping,
loopback captures parsed into UDP datagrams, and an in-process client.

A :class:`RealityLab` starts a real QUIC server as the *target* (serving ``target.html``, a page
our server does not have) and our REALITY listener in front of it (serving the ``www`` fixture,
``10M.bin`` among others), both through a :class:`PeerHarness`, so they are stopped whatever happens.
"""

from __future__ import annotations

import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peers_harness import PeerHarness, Pki, WwwDir

from quicreality.bench.handshake import DriveResult, close_and_flush, drive
from quicreality.metrics import scrape_metrics
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.reality.keys import X25519KeyPair, generate_key_pair, parse_short_id
from quicreality.reality.seal import reality_client_configuration
from quicreality.scenarios.peers import ServeRequest
from quicreality.scenarios.peers import paths as peer_paths
from quicreality.scenarios.peers.base import Command, free_udp_port, url_for
from quicreality.scenarios.peers.process import Finished, PeerProcess

#: The target's page: 40 KB so a transfer takes many datagrams each way.
TARGET_PAGE = (b"<!doctype html><title>the target</title><p>only the target has this page</p>\n"
               + random.Random(3).randbytes(40_000).hex().encode()[:40_000])
SNI = "localhost"
SHORT_ID = "c0ffee0123"


def free_tcp_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    """``{"name{label=value}": value}`` of every sample at http://127.0.0.1:PORT/metrics."""
    return scrape_metrics(port)


class RealityLab:
    """A target peer and our REALITY listener in front of it.

    Args:
        harness: starts and later stops the processes.
        pki: certificate for the target.
        www: what our server serves.
        target: peer name of the target (``ngtcp2``, ``quicgo``, ``aioquic``).
        extra_config: more ``[reality]`` keys (TOML values as text).
    """

    def __init__(self, harness: PeerHarness, pki: Pki, www: WwwDir, *, target: str = "ngtcp2",
                 extra_config: dict[str, str] | None = None, max_time_diff_ms: int = 30_000) -> None:
        self.h = harness
        self.pki = pki
        self.keys: X25519KeyPair = generate_key_pair(os.urandom)
        self.short_id = SHORT_ID
        self.target_name = target
        self.target_www = harness.path("target-www")
        self.target_www.mkdir(parents=True, exist_ok=True)
        (self.target_www / "target.html").write_bytes(TARGET_PAGE)
        self.target_port = free_udp_port()
        self.target = harness.serve(target, ServeRequest(
            www=self.target_www, port=self.target_port, cert=pki.cert, key=pki.key,
            keylog=harness.path("target.keys")))
        self.port = free_udp_port()
        self.metrics_port = free_tcp_port()
        self.qlog_dir = harness.path("qlog-reality")
        lines = [
            "[reality]",
            f'private_key = "{self.keys.private_key_text}"',
            f'server_names = ["{SNI}"]',
            f'short_ids = ["{self.short_id}", ""]',
            f'target = "127.0.0.1:{self.target_port}"',
            f"max_time_diff_ms = {max_time_diff_ms}",
            'min_client_ver = "26.0.0"',
            'max_client_ver = "26.9.9"',
        ]
        lines += [f"{k} = {v}" for k, v in (extra_config or {}).items()]
        lines += ["", "[relay]", "# another component's table: ignored by [reality]"]
        self.config_path = harness.path("reality.toml")
        self.config_path.write_text("\n".join(lines) + "\n")
        argv = [str(peer_paths.python()), "-m", "quicreality", "server",
                "--listen", f"127.0.0.1:{self.port}", "--reality-config", str(self.config_path),
                "--www", str(www.path), "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
                "--qlog-dir", str(self.qlog_dir)]
        self.server = harness.start(PeerProcess(
            Command(argv=tuple(argv), cwd=peer_paths.REPO_ROOT), name="reality-server",
            log_dir=harness.path("logs")))
        self.server.wait_udp_ready(self.port, timeout=20)
        self.wait_shape_learned()
        deadline = time.monotonic() + 10
        while True:
            try:
                self.metrics()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def wait_shape_learned(self, timeout: float = 15.0) -> None:
        """Wait until the listener has learned the target's shape (or given up on it), so that its
        own handshakes with the target are over before a test watches the target's port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.server.stderr()
            if "target shape for" in text or "cannot learn the target's shape" in text \
                    or "shape_ttl_s = 0" in self.config_path.read_text():
                return
            time.sleep(0.05)

    # --- observing --------------------------------------------------------------------------

    def metrics(self) -> dict[str, float]:
        """The listener's metrics now."""
        return scrape(self.metrics_port)

    def rejected(self, reason: str) -> float:
        """The rejected counter for ``reason`` (a Reason name)."""
        return self.metrics().get(
            f"quicreality_reality_handshakes_rejected_total{{reason={reason}}}", 0.0)

    def accepted(self) -> float:
        """Accepted handshakes so far."""
        return self.metrics().get("quicreality_reality_handshakes_accepted_total", 0.0)

    def log(self) -> str:
        """The listener's stderr (verdict lines)."""
        return self.server.stderr()

    def describe(self) -> str:
        """Both processes' logs, for assertion messages."""
        return self.server.describe() + "\n" + self.target.describe()

    # --- clients ----------------------------------------------------------------------------

    def url(self, path: str, *, direct: bool = False) -> str:
        """URL of ``path`` on the listener (or the target itself)."""
        return url_for("127.0.0.1", self.target_port if direct else self.port, path)

    def reality_cli_args(self, *, public_key: str | None = None, short_id: str | None = None,
                         server_name: str = SNI) -> list[str]:
        """``client`` options of a REALITY client for this listener."""
        # "=" form: a base64url key may start with "-", which argparse would take for an option.
        return [f"--reality-public-key={public_key or self.keys.public_key_text}",
                "--short-id", self.short_id if short_id is None else short_id,
                "--server-name", server_name]

    def client_config(self, *, public_key: bytes | None = None, short_id: str | None = None,
                      server_name: str = SNI, version: tuple[int, int, int] = (26, 3, 27),
                      clock_offset: float = 0.0, fingerprint: str = "chrome",
                      carrier: str | None = None) -> QuicConfiguration:
        """An in-process REALITY client configuration (one connection; the library's default
        fingerprint and carrier unless given)."""
        base = QuicConfiguration(is_client=True, rng=os.urandom, wall_clock=time.time)
        return reality_client_configuration(
            base, server_public_key=public_key or self.keys.public_key,
            short_id=parse_short_id(self.short_id if short_id is None else short_id),
            server_name=server_name, version=version,
            wall_clock=lambda: time.time() + clock_offset, fingerprint=fingerprint,
            carrier=carrier)


def run_cli_client(h: PeerHarness, args: list[str], *, timeout: float = 120.0) -> Finished:
    """Run ``python -m quicreality client ARGS`` to completion."""
    argv = [str(peer_paths.python()), "-m", "quicreality", "client", *args]
    proc = h.start(PeerProcess(Command(argv=tuple(argv), cwd=peer_paths.REPO_ROOT),
                               name=f"ours-client-{len(h.procs)}", log_dir=h.path("logs")))
    return proc.wait(timeout)


def handshake(config: QuicConfiguration, port: int, *, timeout: float = 10.0,
              sock: socket.socket | None = None,
              preset: QuicConnection | None = None) -> DriveResult:
    """Run one client handshake against 127.0.0.1:``port`` (closing it afterwards)."""
    own = sock is None
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
    addr = ("127.0.0.1", port)
    try:
        conn = preset
        if conn is None:
            conn = QuicConnection(configuration=config)
            conn.connect(addr, time.monotonic())
        result = drive(conn, addr, sock=sock, timeout=timeout)
        if result.completed:
            close_and_flush(conn, addr, sock)
        return result
    finally:
        if own:
            sock.close()


# --- captures ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Udp:
    """One captured UDP datagram."""

    ts: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


def read_pcap_udp(path: str | os.PathLike[str]) -> list[Udp]:
    """IPv4/UDP datagrams of a classic pcap (Ethernet or Linux cooked link types)."""
    data = Path(path).read_bytes()
    if len(data) < 24:
        return []
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    link_len = {1: 14, 113: 16, 276: 20}.get(linktype)
    if link_len is None:
        raise ValueError(f"unsupported link type {linktype}")
    out: list[Udp] = []
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(endian + "IIII", data[pos:pos + 16])
        pos += 16
        frame = data[pos:pos + caplen]
        pos += caplen
        ip = frame[link_len:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        udp = ip[ihl:total]
        sport, dport, ulen = struct.unpack("!HHH", udp[:6])
        src = socket.inet_ntoa(ip[12:16])
        dst = socket.inet_ntoa(ip[16:20])
        out.append(Udp(sec + frac / (1e9 if nano else 1e6), (src, sport), (dst, dport),
                       bytes(udp[8:ulen])))
    return out


@contextmanager
def capture(h: PeerHarness, name: str, *ports: int) -> Iterator[list[Udp]]:
    """Capture UDP on lo for ``ports`` while the block runs; the list is filled at the end.

    tcpdump gets a 64 MiB buffer: with the default 2 MiB and full-size snaplen its packet ring has
    only a few slots, and a burst of GSO super-packets on lo overflows it.

    Raises:
        AssertionError: if the kernel dropped packets (the capture would not be evidence).
    """
    path = h.path(f"{name}.pcap")
    bpf = " or ".join(f"udp port {p}" for p in ports)
    argv = ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-n", "-s", "0", "-B", "65536",
            "-w", str(path), bpf]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + 10
    while "listening on" not in seen:
        ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
        line = proc.stderr.readline() if ready else ""
        if not line:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"tcpdump did not start: {seen}")
        seen += line
    time.sleep(0.2)
    got: list[Udp] = []
    try:
        yield got
    finally:
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err = proc.stderr.read()
        proc.stderr.close()
        got.extend(read_pcap_udp(path))
    match = re.search(r"(\d+) packets? dropped by kernel", err)
    assert match is None or match.group(1) == "0", f"capture {name} lost packets: {err}"


def flows(datagrams: list[Udp], *, to_port: int) -> dict[tuple[str, int], list[Udp]]:
    """Datagrams sent to ``to_port``, grouped by source address, in capture order."""
    out: dict[tuple[str, int], list[Udp]] = {}
    for d in datagrams:
        if d.dst[1] == to_port:
            out.setdefault(d.src, []).append(d)
    return out


def replies(datagrams: list[Udp], *, from_port: int, to: tuple[str, int]) -> list[Udp]:
    """Datagrams from ``from_port`` to ``to``."""
    return [d for d in datagrams if d.src[1] == from_port and d.dst == to]


def assert_relayed(sent: list[Udp], relayed: list[Udp]) -> None:
    """``relayed`` is ``sent`` datagram for datagram, in order, bytes untouched.

    A captured datagram may be a sender's UDP GSO super-packet (tcpdump on lo sees it before the
    kernel cuts it): it must then be relayed as its segments, all of one size except the last.
    """
    i = 0
    for n, d in enumerate(sent):
        parts: list[bytes] = []
        while sum(map(len, parts)) < len(d.payload):
            assert i < len(relayed), f"datagram {n} of {len(sent)} was not relayed"
            parts.append(relayed[i].payload)
            i += 1
        assert b"".join(parts) == d.payload, f"datagram {n} differs"
        assert len({len(p) for p in parts[:-1]}) <= 1 and len(parts[-1]) <= len(parts[0]), \
            f"datagram {n} was re-cut: {[len(p) for p in parts]}"
    assert i == len(relayed), f"{len(relayed) - i} extra datagrams relayed"


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    """Number of open file descriptors of a process."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or ``timeout``; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return bool(value)
        time.sleep(interval)
