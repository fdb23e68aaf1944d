"""Anti-amplification with real sockets (RFC 9000 §8.1): a client's first flight from a source that
never answers gets at most 3x its bytes back, over the whole retransmission schedule.

Each source is a UDP socket on loopback that sends one real client first flight and then only
receives, for longer than the server's idle timeout (30 s), so every PTO retransmission the server
would make falls inside the window. Three servers: our plain server, our REALITY listener on its
accepted path (a genuine REALITY hello) and on its fallback path (an unlisted short ID, relayed to
an ngtcp2 target, whose replies the listener relays back).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field

import pytest
from peers_harness import PeerHarness, Pki, WwwDir
from reality_support import SNI, RealityLab

from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.scenarios.peers import paths as peer_paths
from quicreality.scenarios.peers.base import Command, free_udp_port
from quicreality.scenarios.peers.process import PeerProcess
from quicreality.tls.certificates import InsecureVerifier

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

#: Longer than the idle timeout (30 s) of every server here: the whole PTO schedule fits.
LISTEN_SECONDS = 40.0


@dataclass
class SilentSource:
    """Sends a first flight to ``dest`` and then only listens."""

    name: str
    flight: list[bytes]
    dest: tuple[str, int]
    received: list[tuple[float, int]] = field(default_factory=list)
    sent: int = 0

    def run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            start = time.monotonic()
            for d in self.flight:
                s.sendto(d, self.dest)
                self.sent += len(d)
            while (left := start + LISTEN_SECONDS - time.monotonic()) > 0:
                s.settimeout(left)
                try:
                    data, _ = s.recvfrom(65535)
                except TimeoutError:
                    break
                self.received.append((time.monotonic() - start, len(data)))

    @property
    def bytes_received(self) -> int:
        return sum(n for _, n in self.received)

    def describe(self) -> str:
        last = self.received[-1][0] if self.received else 0.0
        return (f"{self.name}: sent {self.sent} B in {len(self.flight)} datagrams, got "
                f"{self.bytes_received} B in {len(self.received)} datagrams "
                f"(ratio {self.bytes_received / self.sent:.2f}, last at {last:.2f} s)")


def first_flight(config: QuicConfiguration, dest: tuple[str, int]) -> list[bytes]:
    """The datagrams a real client sends first (its whole first flight, before any answer)."""
    conn = QuicConnection(configuration=config)
    conn.connect(dest, time.monotonic())
    return [d for d, _ in conn.datagrams_to_send(time.monotonic())]


def test_an_unanswering_source_gets_at_most_three_times_its_bytes(
        peer_harness: PeerHarness, pki: Pki, www: WwwDir) -> None:
    h = peer_harness
    lab = RealityLab(h, pki, www, target="ngtcp2")
    port = free_udp_port()
    argv = (str(peer_paths.python()), "-m", "quicreality", "server", "--listen", f"127.0.0.1:{port}",
            "--cert", str(pki.cert), "--key", str(pki.key), "--www", str(www.path))
    plain = h.start(PeerProcess(Command(argv=argv, cwd=peer_paths.REPO_ROOT), name="plain-server",
                                log_dir=h.path("logs")))
    plain.wait_udp_ready(port, timeout=20)
    plain_cfg = QuicConfiguration(is_client=True, server_name=SNI, rng=os.urandom,
                                  wall_clock=time.time, peer_verifier=InsecureVerifier())
    reality_dest = ("127.0.0.1", lab.port)
    sources = [
        SilentSource("plain server", first_flight(plain_cfg, ("127.0.0.1", port)),
                     ("127.0.0.1", port)),
        SilentSource("REALITY accepted", first_flight(lab.client_config(), reality_dest),
                     reality_dest),
        SilentSource("REALITY fallback", first_flight(lab.client_config(short_id="0badc0de"),
                                                      reality_dest), reality_dest),
    ]
    threads = [threading.Thread(target=s.run) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join(LISTEN_SECONDS + 20)
    for s in sources:
        print(s.describe())
    by_name = {s.name: s for s in sources}
    assert lab.accepted() >= 1, lab.describe()  # the accepted path was really taken
    assert lab.rejected("UNKNOWN_SHORT_ID") >= 1, lab.metrics()  # and the fallback path
    for s in sources:
        assert s.received, f"{s.name}: no answer at all (the test would show nothing)"
        assert s.bytes_received <= 3 * s.sent, s.describe()
    assert by_name["plain server"].received[0][0] < 5.0
