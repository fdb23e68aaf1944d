"""On virtual time: a shaped server flight whose 0.5-RTT datagram is the HTTP/3 start. With a
quic-go-like H3Profile (empty SETTINGS, no QPACK stream early) it is quic-go's 24 bytes; with our
default start (three settings, both QPACK streams) it is 42. The connection then serves requests."""

from __future__ import annotations

from typing import Any

import pytest
from simpair import SimPair

from quicreality.h3.client import H3Client
from quicreality.h3.connection import H3Connection
from quicreality.h3.profile import H3Profile, read_h3_profile
from quicreality.h3.server import H3FileServer, H3ServerSession, deterministic_bytes
from quicreality.quic import events
from quicreality.quic.flight_shape import FlightShape, FlightShaper, ShapedDatagram

#: a first flight like quic-go's three-datagram answer: the padded handshake, then 0.5-RTT data
SHAPE = FlightShape((ShapedDatagram(1252, (0, 1)), ShapedDatagram(24, (2,))))
QUIC_GO = H3Profile((), (0,))


class H3Pair(SimPair):
    """A SimPair whose server gets its HTTP/3 layer the moment the connection exists (as
    :class:`~quicreality.aio.server.QuicServer` does), and which records the server's datagrams."""

    profile: H3Profile | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.to_client: list[bytes] = []
        self.client_h3 = H3Connection(self.client, is_client=True)
        self.h3client = H3Client(self.client_h3, authority="localhost")
        self.session: H3ServerSession | None = None

    def _transmit(self, direction: str, data: bytes, ecn: int = 0) -> None:
        if direction == "to_client":
            self.to_client.append(data)
        super()._transmit(direction, data, ecn)

    def _flush(self) -> None:
        if self.server is not None and self.session is None:
            p = self.profile
            h3 = H3Connection(self.server, is_client=False) if p is None else H3Connection(
                self.server, is_client=False, settings=p.settings_to_send(),
                early_qpack_streams=p.early_qpack_streams)
            self.session = H3ServerSession(h3, H3FileServer(None), chunk_size=16384,
                                           high_water=65536)
        if self.session is not None:
            self.session.pump()
        super()._flush()

    def on_client_event(self, event: Any) -> None:
        self.h3client.handle_event(event)

    def on_server_event(self, event: Any) -> None:
        assert self.session is not None
        self.session.handle_event(event)


def run(profile: H3Profile | None) -> H3Pair:
    overrides: dict[str, Any] = {"flight_shape": FlightShaper(SHAPE)}
    pair = H3Pair(seed=7, server_overrides=overrides, client_overrides={"scid_length": 0})
    pair.profile = profile
    pair.connect()
    pair.run(lambda: any(isinstance(e, events.HandshakeCompleted) for e in pair.client_events))
    return pair


@pytest.mark.parametrize(("profile", "size"), [(QUIC_GO, 24), (None, 42)],
                         ids=["quic-go start", "our start"])
def test_half_rtt_datagram_is_the_h3_start(profile: H3Profile | None, size: int) -> None:
    pair = run(profile)
    assert [len(d) for d in pair.to_client[:2]] == [1252, size]
    assert not pair.to_client[1][0] & 0x80  # a short header: 1-RTT (0.5-RTT) data alone


def test_quic_go_start_then_requests_complete() -> None:
    pair = run(QUIC_GO)
    ids = [pair.h3client.get(f"/bytes/{n}") for n in (0, 100, 30000, 100, 100)]
    pair.run(lambda: pair.h3client.all_done)
    for sid, n in zip(ids, (0, 100, 30000, 100, 100), strict=True):
        rec = pair.h3client.responses[sid]
        assert rec.ok and rec.status == 200 and bytes(rec.body) == deterministic_bytes(0, n)
    assert pair.client_h3.peer_settings == {}
    assert read_h3_profile({3: b"\x00\x04\x00"}) == QUIC_GO
