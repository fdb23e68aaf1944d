"""A client/server pair on virtual time with a seeded lossy link (no sockets, no clock)."""

from __future__ import annotations

import datetime
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.quic.endpoint import QuicServerEndpoint
from quicreality.tls.certificates import InsecureVerifier, StaticCertificateSource

CLIENT_ADDR = ("10.0.0.1", 40000)
SERVER_ADDR = ("10.0.0.2", 443)
WALL = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC).timestamp()


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    """Deterministic byte source."""
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


_CREDS: StaticCertificateSource | None = None


def test_credentials() -> StaticCertificateSource:
    """A self-signed Ed25519 certificate for localhost from a fixed key (made once per process).

    Ed25519 signatures are deterministic and always 64 bytes; an ECDSA signature is 70-72 bytes
    at random, which moved the handshake's packet boundaries, so that the seeded link's losses fell
    on other packets from one run to the next and a seeded transfer was not reproducible.
    """
    global _CREDS
    if _CREDS is None:
        key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, None)
        )
        from cryptography.hazmat.primitives.serialization import Encoding

        _CREDS = StaticCertificateSource([cert.public_bytes(Encoding.DER)], key)
    return _CREDS


@dataclass
class LinkModel:
    """Per-direction impairments (probabilities are per datagram).

    ``mtu`` is the IP MTU: a datagram whose UDP payload plus ``overhead`` exceeds it is dropped
    silently, as a path that drops instead of fragmenting (DF set, RFC 8899 §1) would.

    With ``rate_bps`` set, each direction also has a bottleneck: datagrams that survive the random
    loss wait in a drop-tail queue of ``queue_bytes`` (``None``: unbounded) and are serialised at
    ``rate_bps``, counting ``overhead`` bytes of IP/UDP header each, before the fixed ``delay``
    (like the userspace emulator of docs/environment.md §8). Without it the link has no rate limit.

    ECN (RFC 3168): each datagram carries its sender's codepoint. ``ecn_bleach`` clears it on the
    way, ``ecn_drop_ect`` drops every ECT-marked datagram (a faulty middlebox), and with
    ``ecn_ce_backlog`` (bytes; needs ``rate_bps``) an ECT datagram that finds more than that
    queued is marked CE (the emulator's CE marking).

    ``outages`` are ``(start, end)`` spans of virtual time in which the link drops every
    datagram offered to it in both directions, as the emulator's blackhole does (datagrams
    already queued or on the wire still arrive).
    """

    delay: float = 0.010
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_extra: float = 0.005
    mtu: int = 1500
    rate_bps: float | None = None
    queue_bytes: int | None = None
    overhead: int = 28
    ecn_bleach: bool = False
    ecn_drop_ect: bool = False
    ecn_ce_backlog: int | None = None
    outages: tuple[tuple[float, float], ...] = ()


@dataclass
class SimPair:
    """Drives a client connection and a server endpoint until a condition holds."""

    seed: int = 1
    link: LinkModel = field(default_factory=LinkModel)
    client_overrides: dict[str, Any] = field(default_factory=dict)
    server_overrides: dict[str, Any] = field(default_factory=dict)
    retry: bool = False

    def __post_init__(self) -> None:
        self.now = 0.0
        #: the client's address as the server sees it (a test may change it: NAT rebinding)
        self.client_addr: Any = CLIENT_ADDR
        #: the server's address as the client sees it (a test may change it: preferred address)
        self.server_addr: Any = SERVER_ADDR
        self._rand = random.Random(self.seed)
        self._queue: list[tuple[float, int, str, bytes, int]] = []
        self._seq = 0
        cfg = QuicConfiguration(
            is_client=True, server_name="localhost", rng=seeded_rng(self.seed * 2 + 1),
            wall_clock=lambda: WALL, peer_verifier=InsecureVerifier(),
        )
        for k, v in self.client_overrides.items():
            setattr(cfg, k, v)
        self.client = QuicConnection(configuration=cfg)
        server_rng = seeded_rng(self.seed * 2 + 2)

        def server_config() -> QuicConfiguration:
            scfg = QuicConfiguration(
                is_client=False, rng=server_rng, wall_clock=lambda: WALL,
                certificate_source=test_credentials(),
            )
            for k, v in self.server_overrides.items():
                setattr(scfg, k, v)
            return scfg

        self.endpoint = QuicServerEndpoint(server_config, rng=server_rng, retry=self.retry)
        self.server: QuicConnection | None = None
        self.client_events: list[Any] = []
        self.server_events: list[Any] = []
        self.datagrams = {"to_server": 0, "to_client": 0}
        self.dropped = {"to_server": 0, "to_client": 0}
        self.queue_dropped = {"to_server": 0, "to_client": 0}
        self._busy_until = {"to_server": 0.0, "to_client": 0.0}
        #: datagrams delivered per ECN codepoint (after the link's bleaching / CE marking)
        self.ecn_delivered = {"to_server": [0, 0, 0, 0], "to_client": [0, 0, 0, 0]}

    # -------------------------------------------------------------- link

    def _transmit(self, direction: str, data: bytes, ecn: int = 0) -> None:
        link = self.link
        self.datagrams[direction] += 1
        if (len(data) + link.overhead > link.mtu or self._rand.random() < link.loss
                or (ecn and link.ecn_drop_ect)
                or any(a <= self.now < b for a, b in link.outages)):
            self.dropped[direction] += 1
            return
        if link.ecn_bleach:
            ecn = 0
        departure = self.now
        if link.rate_bps is not None:
            # Drop-tail queue in front of a serialiser at rate_bps.
            start = max(self.now, self._busy_until[direction])
            size = len(data) + link.overhead
            backlog = (start - self.now) * link.rate_bps / 8
            if link.queue_bytes is not None and backlog + size > link.queue_bytes:
                self.dropped[direction] += 1
                self.queue_dropped[direction] += 1
                return
            if ecn and link.ecn_ce_backlog is not None and backlog > link.ecn_ce_backlog:
                ecn = 0b11
            departure = self._busy_until[direction] = start + size * 8 / link.rate_bps
        copies = 2 if self._rand.random() < link.duplicate else 1
        for _ in range(copies):
            t = departure + link.delay
            if self._rand.random() < link.reorder:
                t += link.reorder_extra * self._rand.random()
            self._seq += 1
            heapq.heappush(self._queue, (t, self._seq, direction, data, ecn))

    def _flush(self) -> None:
        for data, _ in self.client.datagrams_to_send(self.now):
            self._transmit("to_server", data, self.client.ecn.codepoint)
        for conn in list(self.endpoint.connections):
            for data, _ in conn.datagrams_to_send(self.now):
                self._transmit("to_client", data, conn.ecn.codepoint)
        self._drain_events()

    def _drain_events(self) -> None:
        while (ev := self.client.next_event()) is not None:
            self.client_events.append(ev)
            self.on_client_event(ev)
        if self.server is not None:
            while (ev := self.server.next_event()) is not None:
                self.server_events.append(ev)
                self.on_server_event(ev)

    def on_client_event(self, event: Any) -> None:
        """Hook for tests."""

    def on_client_datagram(self, data: bytes) -> None:
        """A datagram is about to reach the client at ``self.now`` (a hook for subclasses: a
        compiled connection's methods cannot be wrapped)."""

    def on_server_event(self, event: Any) -> None:
        """Hook for tests."""

    # -------------------------------------------------------------- loop

    def connect(self) -> None:
        """Start the client handshake."""
        self.client.connect(SERVER_ADDR, self.now)
        self._flush()

    def step(self) -> bool:
        """Advance to the next delivery or timer. Returns False when nothing is left to do."""
        timers = [t for t in [self.client.get_timer()] if t is not None]
        for conn in self.endpoint.connections:
            t = conn.get_timer()
            if t is not None:
                timers.append(t)
        next_delivery = self._queue[0][0] if self._queue else None
        candidates = timers + ([next_delivery] if next_delivery is not None else [])
        if not candidates:
            return False
        t = min(candidates)
        self.now = max(self.now, t)
        if next_delivery is not None and next_delivery <= self.now:
            batch: list[tuple[str, bytes, int]] = []
            while self._queue and self._queue[0][0] <= self.now:
                _, _, direction, data, ecn = heapq.heappop(self._queue)
                batch.append((direction, data, ecn))
            for direction, data, ecn in batch:
                self.ecn_delivered[direction][ecn] += 1
                if direction == "to_server":
                    got = self.endpoint.receive_datagram(data, self.client_addr, self.now, ecn)
                    if got.connection is not None and self.server is None:
                        self.server = got.connection
                    for reply, _ in got.replies:
                        self._transmit("to_client", reply)
                else:
                    self.on_client_datagram(data)
                    self.client.receive_datagram(data, self.server_addr, self.now, ecn)
        else:
            tc = self.client.get_timer()
            if tc is not None and tc <= self.now:
                self.client.handle_timer(self.now)
            for conn in list(self.endpoint.connections):
                ts = conn.get_timer()
                if ts is not None and ts <= self.now:
                    conn.handle_timer(self.now)
        self._flush()
        for conn in list(self.endpoint.connections):
            self.endpoint.refresh(conn)
        return True

    def run(self, until: Callable[[], bool], max_time: float = 60.0, max_steps: int = 2_000_000) -> None:
        """Step until ``until()`` holds; raise if virtual time or steps run out."""
        steps = 0
        while not until():
            if self.now > max_time or steps > max_steps:
                raise TimeoutError(f"condition not met by t={self.now:.3f}s after {steps} steps")
            if not self.step():
                raise TimeoutError(f"nothing left to do at t={self.now:.3f}s")
            steps += 1
