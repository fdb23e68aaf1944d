"""HTTP/3 over two real QUIC connections in memory, on virtual time, with no loss (test-only).

The client is a bare :class:`QuicConnection` (tests write raw HTTP/3 bytes on it, or wrap it);
the server side is an :class:`H3ServerSession` behind a :class:`QuicServerEndpoint`, fed the way
the asyncio edge feeds it (events, then ``pump()``). Any exception escapes to the test.
"""

from __future__ import annotations

import datetime
import random
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from quicreality.h3.connection import H3Connection
from quicreality.h3.server import H3FileServer, H3ServerSession
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import ConnectionState, QuicConnection
from quicreality.quic.endpoint import QuicServerEndpoint
from quicreality.quic.packet import PACKET_TYPE_ONE_RTT
from quicreality.quic.packet_builder import seal_packet
from quicreality.tls.certificates import InsecureVerifier, StaticCertificateSource

CLIENT_ADDR = ("10.0.0.1", 40000)
SERVER_ADDR = ("10.0.0.2", 443)
WALL = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC).timestamp()


def _credentials() -> StaticCertificateSource:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return StaticCertificateSource([cert.public_bytes(Encoding.DER)], key)


class QuicH3Pair:
    """A connected client and an HTTP/3 server session; :meth:`exchange` moves everything."""

    def __init__(self, seed: int = 1):
        rng = random.Random(seed)
        self.now = 0.0
        creds = _credentials()

        def server_config() -> QuicConfiguration:
            return QuicConfiguration(
                is_client=False,
                rng=rng.randbytes,
                wall_clock=lambda: WALL,
                certificate_source=creds,
            )

        self.endpoint = QuicServerEndpoint(server_config, rng=rng.randbytes)
        self.client = QuicConnection(
            configuration=QuicConfiguration(
                is_client=True,
                server_name="localhost",
                rng=rng.randbytes,
                wall_clock=lambda: WALL,
                peer_verifier=InsecureVerifier(),
            )
        )
        self.server: QuicConnection | None = None
        self.session: H3ServerSession | None = None
        self.client_events: list[Any] = []
        self.client.connect(SERVER_ADDR, self.now)
        self.exchange()
        assert self.server is not None and self.server.state == ConnectionState.CONNECTED

    def exchange(self, rounds: int = 50) -> None:
        """Deliver datagrams both ways (1 ms per round) until both sides are quiet."""
        for _ in range(rounds):
            self.now += 0.001
            moved = False
            for data, _addr in self.client.datagrams_to_send(self.now):
                moved = True
                self._to_server(data)
            if self.server is not None:
                self._serve()
                for data, _addr in self.server.datagrams_to_send(self.now):
                    moved = True
                    self.client.receive_datagram(data, SERVER_ADDR, self.now)
            while (ev := self.client.next_event()) is not None:
                self.client_events.append(ev)
            if not moved:
                return

    def inject(self, payload: bytes) -> None:
        """Deliver a 1-RTT packet protected with the client's keys and carrying ``payload``."""
        client = self.client
        space = client._spaces[2]  # forging needs the live keys
        pn = space.next_pn
        space.next_pn += 1
        packet = seal_packet(
            client._cryptos[2],
            PACKET_TYPE_ONE_RTT,
            version=1,
            dcid=client._peer_cids.current.cid,
            scid=client.host_cid,
            token=None,
            packet_number=pn,
            payload=payload,
        )
        self._to_server(packet)
        self._serve()

    def _to_server(self, data: bytes) -> None:
        got = self.endpoint.receive_datagram(data, CLIENT_ADDR, self.now)
        if got.connection is not None and self.server is None:
            self.server = got.connection
            self.session = H3ServerSession(
                H3Connection(self.server, is_client=False), H3FileServer(None)
            )

    def _serve(self) -> None:
        """What the asyncio edge does after a batch: events to the session, then ``pump()``."""
        assert self.server is not None and self.session is not None
        while (ev := self.server.next_event()) is not None:
            self.session.handle_event(ev)
        self.session.pump()
