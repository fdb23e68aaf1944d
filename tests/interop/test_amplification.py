"""Anti-amplification with real sockets (RFC 9000 §8.1): a client's first flight from a source that
never answers gets at most 3x its bytes back, over the whole retransmission schedule.

Each source is a UDP socket on loopback that sends one real client first flight and then only
receives, for longer than the server's idle timeout (30 s), so every PTO retransmission the server
would make falls inside the window. Three servers: our plain server, our REALITY listener on its
accepted path (a genuine REALITY hello) and on its fallback path (an unlisted short ID, relayed to
an ngtcp2 target, whose replies the listener relays back).

After Retry: a Retry token validates the address it was issued to (the limit is lifted, RFC 9000
§8.1.2) and only that one (replayed from another port it gets nothing). After migration: a NAT
rebinding and an active migration of an established connection to an address that never
answers, against our plain server and the REALITY listener's accepted path: at most 3x to the new
address over the whole path validation, then back to the old path.
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

from quicreality.bench.handshake import drive
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
    #: the local address to send from (another loopback address: a new IP address)
    bind: str = "127.0.0.1"
    listen: float = LISTEN_SECONDS
    #: send from (and listen on) this socket instead of a new one; it is closed at the end
    sock: socket.socket | None = None

    def run(self) -> None:
        sock = self.sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sock as s:
            if self.sock is None:
                s.bind((self.bind, 0))
            s.setblocking(True)
            start = time.monotonic()
            for d in self.flight:
                s.sendto(d, self.dest)
                self.sent += len(d)
            while (left := start + self.listen - time.monotonic()) > 0:
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


# --- after Retry --------------------------------------------------------------------------------


@dataclass
class RetryExchange:
    """A client's first flight sent from ``sock``, the server's Retry, and the Initial flight the
    client built with the Retry's token (not sent yet)."""

    sock: socket.socket
    first_sent: int
    retry: bytes
    flight: list[bytes]


def retry_exchange(config: QuicConfiguration, dest: tuple[str, int]) -> RetryExchange:
    conn = QuicConnection(configuration=config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    conn.connect(dest, time.monotonic())
    first = [d for d, _ in conn.datagrams_to_send(time.monotonic())]
    for d in first:
        sock.sendto(d, dest)
    sock.settimeout(10)
    retry, _ = sock.recvfrom(65535)
    assert retry[0] & 0xF0 == 0xF0, "the server's answer is not a Retry (v1 long header type 3)"
    conn.receive_datagram(retry, dest, time.monotonic())
    flight = [d for d, _ in conn.datagrams_to_send(time.monotonic())]
    assert flight, "the client did not restart with the Retry's token"
    return RetryExchange(sock, sum(map(len, first)), retry, flight)


def start_plain_server(h: PeerHarness, pki: Pki, www: WwwDir, *extra: str) -> int:
    """Our CLI server on 127.0.0.1 (``extra`` options); returns its port."""
    port = free_udp_port()
    argv = (str(peer_paths.python()), "-m", "quicreality", "server", "--listen", f"127.0.0.1:{port}",
            "--cert", str(pki.cert), "--key", str(pki.key), "--www", str(www.path), *extra)
    server = h.start(PeerProcess(Command(argv=argv, cwd=peer_paths.REPO_ROOT),
                                 name="plain-server", log_dir=h.path("logs")))
    server.wait_udp_ready(port, timeout=20)
    return port


def plain_client_config() -> QuicConfiguration:
    return QuicConfiguration(is_client=True, server_name=SNI, rng=os.urandom, wall_clock=time.time,
                             peer_verifier=InsecureVerifier())


def test_after_retry_the_token_validates_only_the_address_it_was_issued_to(
        peer_harness: PeerHarness, pki: Pki, www: WwwDir) -> None:
    """RFC 9000 §8.1.2: a Retry token returned from the address it was sent to validates that
    address, so the 3x limit no longer applies to it; what then bounds the server is congestion
    control (the initial window, then one PTO probe at a time with exponential backoff) until its
    idle timeout. A token replayed from another address (the attack: obtain a token at your own
    address, then spoof a victim's) fails to open (it binds host and port, §8.1.4) and the
    Initial is dropped (§8.1.3): the victim gets nothing."""
    port = start_plain_server(peer_harness, pki, www, "--retry")
    dest = ("127.0.0.1", port)
    genuine = retry_exchange(plain_client_config(), dest)
    stolen = retry_exchange(plain_client_config(), dest)
    stolen.sock.close()  # the address the token was issued to goes away; another port replays it
    validated = SilentSource("Retry token from its own address", genuine.flight, dest,
                             sock=genuine.sock)
    spoofed = SilentSource("Retry token from another port", stolen.flight, dest)
    threads = [threading.Thread(target=s.run) for s in (validated, spoofed)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(LISTEN_SECONDS + 20)
    for s, ex in ((validated, genuine), (spoofed, stolen)):
        print(f"{s.describe()}; before it: first flight {ex.first_sent} B, Retry {len(ex.retry)} B")
    # Before the token: the only answer is the Retry, smaller than the Initial it answers.
    assert len(genuine.retry) < genuine.first_sent
    # The replayed token validates nothing: not one byte to that address.
    assert spoofed.received == [], spoofed.describe()
    # The validated address gets the handshake (it would complete it), beyond 3x: the token lifted
    # the limit (an unvalidated path could not get past 3,600 B for its 1,200 B) ...
    assert validated.received and validated.received[0][0] < 5.0, validated.describe()
    assert validated.bytes_received > 3 * validated.sent, validated.describe()
    # ... and then at most the initial window plus one probe datagram per PTO (at most 2 per PTO,
    # RFC 9002 §6.2.4): 14,720 B + 2 x 1,452 B for each of the <= 6 PTOs a 30 s idle timeout
    # leaves room for when the PTO doubles from >= 0.333 s (0.33 + 0.67 + ... + 10.7 s = 21 s).
    assert validated.bytes_received <= 14_720 + 6 * 2 * 1452, validated.describe()
    assert validated.received[-1][0] < 31.0, validated.describe()


# --- after migration ----------------------------------------------------------------------------

#: Longer than the path validation timeout (3 x max(PTO, 3 x kInitialRtt) = 3 s here, RFC 9000
#: §8.2.4) with room for every PATH_CHALLENGE the server would resend before giving up.
MIGRATION_LISTEN_SECONDS = 12.0


def established(config: QuicConfiguration, dest: tuple[str, int]) -> tuple[QuicConnection,
                                                                          socket.socket]:
    """A client connection over a loopback socket with the handshake confirmed and a spare
    server connection ID (so it could migrate)."""
    conn = QuicConnection(configuration=config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    conn.connect(dest, time.monotonic())
    result = drive(conn, dest, sock=sock, timeout=15,
                   until=lambda _e: conn._handshake_confirmed and bool(conn._peer_cids.available))
    assert conn._handshake_confirmed, f"no handshake: {result}"
    return conn, sock


def rebinding_flight(conn: QuicConnection) -> list[bytes]:
    """NAT rebinding: the client's next packet (a PING, non-probing) leaves from another port."""
    conn.send_ping(1)
    return [d for d, _ in conn.datagrams_to_send(time.monotonic())]


def migration_flight(conn: QuicConnection) -> list[bytes]:
    """Active migration (RFC 9000 §9.2): a new connection ID and a PATH_CHALLENGE, padded."""
    verdict = conn.migrate(time.monotonic())
    assert verdict.accepted, verdict
    return [d for d, _ in conn.datagrams_to_send(time.monotonic())]


def test_after_migration_a_new_address_that_never_answers_gets_at_most_three_times_its_bytes(
        peer_harness: PeerHarness, pki: Pki, www: WwwDir) -> None:
    """RFC 9000 §8.1, §9.3: after a NAT rebinding (new port) or an active migration (new IP
    address, 127.0.0.2) of an established connection, the server sends at most 3x what came from
    the new address until it is validated, over the whole PATH_CHALLENGE schedule; the address
    never answers, so validation fails and the server goes back to the old path (§9.3.2), which
    it reaches with its next probe. Our plain server and the REALITY listener's accepted path."""
    h = peer_harness
    lab = RealityLab(h, pki, www, target="ngtcp2")
    plain = ("127.0.0.1", start_plain_server(h, pki, www))
    reality = ("127.0.0.1", lab.port)
    cases = []
    for server, dest, config in (("plain", plain, plain_client_config),
                                 ("REALITY accepted", reality, lab.client_config)):
        for how, flight, bind in (("NAT rebinding", rebinding_flight, "127.0.0.1"),
                                  ("migration to 127.0.0.2", migration_flight, "127.0.0.2")):
            conn, sock = established(config(), dest)
            new = SilentSource(f"{server}, {how}", flight(conn), dest, bind=bind,
                               listen=MIGRATION_LISTEN_SECONDS)
            old = SilentSource(f"{server}, {how}: old path", [], dest, sock=sock,
                               listen=MIGRATION_LISTEN_SECONDS)
            cases.append((new, old))
    threads = [threading.Thread(target=s.run) for case in cases for s in case]
    for t in threads:
        t.start()
    for t in threads:
        t.join(MIGRATION_LISTEN_SECONDS + 20)
    for new, old in cases:
        print(new.describe())
        print(f"  old path afterwards: {len(old.received)} datagrams, {old.bytes_received} B, at "
              + ", ".join(f"{t:.2f}" for t, _ in old.received[:8]))
    assert lab.accepted() >= 2, lab.describe()
    for new, old in cases:
        assert new.sent and new.received, f"{new.name}: no answer (the test would show nothing)"
        assert new.bytes_received <= 3 * new.sent, new.describe()
        # Validation failed: the server went back to the old path and sends there again.
        assert any(t > new.received[-1][0] for t, _ in old.received), (new.describe(), old.received)
