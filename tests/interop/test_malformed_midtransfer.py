"""A malformed datagram never kills the endpoint's loop: in the middle of a 10 MB download, junk of
every kind goes to our server (and to our REALITY listener), and the download completes byte-exact.

Two kinds of junk, sent for as long as the transfer runs:

* from fresh sockets: empty, 1-byte, random, truncated Initials, a long header with a Length past
  the datagram's end, an unknown version, Version Negotiation and Retry packets (a client's
  packet types), short headers with random IDs, and 65,507-byte datagrams;
* spoofed from the downloading client's own address and port (raw socket, root): the client's
  real packets, sniffed on lo, replayed, truncated and with a flipped byte, so they reach the live
  connection's receive path and fail there (duplicate, AEAD failure, bad header).
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

import pytest
from peers_harness import PeerHarness, Pki, WwwDir
from reality_support import RealityLab, run_cli_client

from quicreality.bench.flood import InitialForge, spoofed_udp
from quicreality.quic.packet import encode_quic_retry, encode_quic_version_negotiation
from quicreality.scenarios.peers import paths as peer_paths
from quicreality.scenarios.peers.base import Command, free_udp_port
from quicreality.scenarios.peers.process import PeerProcess

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300),
              pytest.mark.skipif(os.geteuid() != 0, reason="raw and packet sockets need root")]

ETH_P_ALL = 0x0003


def junk(rng: random.Random, initial: bytes) -> list[bytes]:
    """One round of malformed datagrams (none from the client's address)."""
    r = rng.randbytes
    long_past_end = bytearray(initial[:60])  # its Length says more than the datagram holds
    return [
        b"",
        b"\xc0",
        r(20),
        r(1200),
        initial[:rng.randrange(1, len(initial))],
        bytes(long_past_end),
        bytes([0xC0]) + b"\x0a\x1a\x2a\x3a" + bytes([8]) + r(8) + bytes([8]) + r(8) + r(1180),
        encode_quic_version_negotiation(source_cid=r(8), destination_cid=r(8),
                                        supported_versions=[0x1A2A3A4A]),
        encode_quic_retry(version=1, source_cid=r(8), destination_cid=r(8),
                          original_destination_cid=r(8), retry_token=r(40)),
        bytes([0x40 | rng.randrange(64)]) + r(rng.randrange(1, 1400)),
        r(65507),
        initial + r(300),  # a valid Initial coalesced with garbage
    ]


def mutations(rng: random.Random, packet: bytes) -> list[bytes]:
    """A real client datagram replayed, truncated and with one byte flipped."""
    flipped = bytearray(packet)
    i = rng.randrange(min(len(packet) - 1, 25), len(packet))
    flipped[i] ^= 1 << rng.randrange(8)
    return [packet, packet[:rng.randrange(1, len(packet))], bytes(flipped)]


@dataclass
class Hammer:
    """Sends junk to ``port`` until stopped, and mutated copies of the client's packets."""

    port: int
    rng: random.Random = field(default_factory=lambda: random.Random(17))
    stop: threading.Event = field(default_factory=threading.Event)
    sent: dict[str, int] = field(default_factory=lambda: {"junk": 0, "spoofed": 0})
    client: tuple[str, int] | None = None
    error: BaseException | None = None
    _spoofed: set[bytes] = field(default_factory=set)  # what we sent as the client (not sniffed again)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def _run(self) -> None:
        initial = InitialForge().forge(os.urandom(8), os.urandom(8))
        sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sniff.bind(("lo", 0))
        sniff.settimeout(0.01)
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        ours: set[int] = set()
        socks = []
        try:
            for _ in range(4):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("127.0.0.1", 0))
                ours.add(s.getsockname()[1])
                socks.append(s)
            while not self.stop.is_set():
                for d in junk(self.rng, initial):
                    try:
                        self.rng.choice(socks).sendto(d, ("127.0.0.1", self.port))
                        self.sent["junk"] += 1
                    except OSError:
                        pass
                for packet in self._sniff(sniff, ours):
                    assert self.client is not None
                    for d in mutations(self.rng, packet):
                        self._spoofed.add(d)
                        raw.sendto(spoofed_udp(d, self.client, ("127.0.0.1", self.port)),
                                   ("127.0.0.1", 0))
                        self.sent["spoofed"] += 1
                time.sleep(0.01)
        finally:
            for s in socks:
                s.close()
            sniff.close()
            raw.close()

    def _sniff(self, sniff: socket.socket, ours: set[int]) -> list[bytes]:
        """A few of the client's datagrams to the server seen on lo since the last call."""
        got: list[bytes] = []
        for _ in range(64):
            try:
                frame, meta = sniff.recvfrom(70000)
            except TimeoutError:
                break
            if meta[2] == socket.PACKET_OUTGOING:
                continue  # lo shows each frame twice
            ip = frame[14:]
            if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP:
                continue
            ihl = (ip[0] & 0x0F) * 4
            sport, dport, ulen = struct.unpack("!HHH", ip[ihl:ihl + 6])
            if dport != self.port or sport in ours or ulen <= 8:
                continue
            src = (socket.inet_ntoa(ip[12:16]), sport)
            if self.client is None:
                self.client = src
            payload = bytes(ip[ihl + 8:ihl + ulen])
            if src == self.client and len(got) < 3 and len(payload) > 1 \
                    and payload not in self._spoofed:
                got.append(payload)
        return got


def download_under_fire(h: PeerHarness, port: int, args: list[str], out: str,
                        expected_sha256: str) -> Hammer:
    hammer = Hammer(port)
    out_dir = h.path(out)
    client = h.start(PeerProcess(Command(argv=(
        str(peer_paths.python()), "-m", "quicreality", "client",
        f"https://127.0.0.1:{port}/10M.bin", "-o", str(out_dir), "--timeout", "90", *args),
        cwd=peer_paths.REPO_ROOT), name=f"client-{out}", log_dir=h.path("logs")))
    thread = threading.Thread(target=hammer.run, daemon=True)
    thread.start()
    try:
        finished = client.wait(120)
    finally:
        hammer.stop.set()
        thread.join(10)
    print(f"{out}: {hammer.sent} datagrams sent during the download of {finished.secs:.1f} s; "
          f"client {hammer.client}")
    assert hammer.error is None, repr(hammer.error)
    assert finished.returncode == 0, client.describe()
    got = hashlib.sha256((out_dir / "10M.bin").read_bytes()).hexdigest()
    assert got == expected_sha256
    assert hammer.sent["junk"] > 100 and hammer.sent["spoofed"] > 10, hammer.sent
    return hammer


def test_malformed_datagrams_mid_transfer_to_our_server(peer_harness: PeerHarness, pki: Pki,
                                                        www: WwwDir) -> None:
    h = peer_harness
    port = free_udp_port()
    server = h.start(PeerProcess(Command(argv=(
        str(peer_paths.python()), "-m", "quicreality", "server", "--listen", f"127.0.0.1:{port}",
        "--cert", str(pki.cert), "--key", str(pki.key), "--www", str(www.path)),
        cwd=peer_paths.REPO_ROOT), name="plain-server", log_dir=h.path("logs")))
    server.wait_udp_ready(port, timeout=20)
    download_under_fire(h, port, ["--ca", str(pki.ca)], "plain", www.sha256["10M.bin"])
    # The loop goes on: another connection is served afterwards.
    again = run_cli_client(h, [f"https://127.0.0.1:{port}/index.html", "--ca", str(pki.ca)])
    assert again.returncode == 0 and server.running, server.describe()
    assert "Traceback" not in server.stderr(), server.describe()


def test_malformed_datagrams_mid_transfer_to_the_reality_listener(
        peer_harness: PeerHarness, pki: Pki, www: WwwDir) -> None:
    h = peer_harness
    lab = RealityLab(h, pki, www, target="ngtcp2")
    download_under_fire(h, lab.port, lab.reality_cli_args(), "reality", www.sha256["10M.bin"])
    assert lab.accepted() >= 1
    again = run_cli_client(h, [lab.url("/index.html"), *lab.reality_cli_args()])
    assert again.returncode == 0 and lab.server.running, lab.describe()
    assert "Traceback" not in lab.log(), lab.describe()
