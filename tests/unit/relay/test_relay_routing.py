"""ServerLink.filter_event: relay-preface streams go to the relay, everything else to HTTP/3.

A fake connection records what the link does; the allow-list is empty, so every relay stream is
refused without any socket being opened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from quicreality.aio.relay_server import ServerLink
from quicreality.metrics import RelayMetrics
from quicreality.quic import events
from quicreality.quic.config import QuicConfiguration
from quicreality.relay.config import RelayConfig
from quicreality.relay.protocol import (
    INCOMPLETE,
    Destination,
    Kind,
    Preface,
    RelayErrorCode,
    Status,
    StatusReader,
    encode_preface,
)


class FakeConn:
    """The part of QuicConnection the link uses."""

    def __init__(self) -> None:
        self.configuration = QuicConfiguration()
        self.sent: dict[int, bytearray] = {}
        self.fins: set[int] = set()
        self.stopped: dict[int, int] = {}
        self.paused: set[int] = set()

    def send_stream_data(self, sid: int, data: bytes, end_stream: bool = False) -> None:
        self.sent.setdefault(sid, bytearray()).extend(data)
        if end_stream:
            self.fins.add(sid)

    def stop_stream(self, sid: int, code: int) -> None:
        self.stopped[sid] = code

    def pause_stream_reading(self, sid: int) -> None:
        self.paused.add(sid)

    def resume_stream_reading(self, sid: int) -> None:
        self.paused.discard(sid)

    def stream_send_buffered(self, sid: int) -> int:
        return 0


@pytest.fixture
def link() -> Iterator[tuple[ServerLink, FakeConn]]:
    loop = asyncio.new_event_loop()
    conn = FakeConn()
    wakes: list[int] = []
    metrics = RelayMetrics(CollectorRegistry())
    try:
        yield ServerLink(conn, RelayConfig(), lambda: wakes.append(1), loop=loop,  # type: ignore[arg-type]
                         metrics=metrics), conn
    finally:
        loop.close()


def data(sid: int, payload: bytes, fin: bool = False) -> events.StreamDataReceived:
    return events.StreamDataReceived(stream_id=sid, data=payload, end_stream=fin)


PREFACE = encode_preface(Preface(Kind.TCP, Destination("127.0.0.1", 5201)))


def answer(conn: FakeConn, sid: int) -> Status:
    got = StatusReader().feed(bytes(conn.sent[sid]))
    assert got is not INCOMPLETE
    return got[0].status  # type: ignore[index]


def test_http3_streams_and_other_events_pass_through(link: tuple[ServerLink, FakeConn]) -> None:
    server, conn = link
    h3 = data(0, b"\x01\x10headers...")
    assert server.filter_event(h3) == [h3]
    later = data(0, b"more")
    assert server.filter_event(later) == [later]  # decided once, per stream
    uni = data(2, PREFACE)  # client uni stream (e.g. H3 control): never the relay's
    assert server.filter_event(uni) == [uni]
    for ev in (events.HandshakeCompleted(alpn_protocol="h3", cipher_suite=0x1301),
               events.StreamReset(stream_id=0, error_code=1)):
        assert server.filter_event(ev) == [ev]
    assert conn.sent == {}


def test_relay_stream_is_consumed_and_refused_by_default(link: tuple[ServerLink, FakeConn]) -> None:
    server, conn = link
    assert server.filter_event(data(4, PREFACE + b"payload")) == []
    assert answer(conn, 4) == Status.REFUSED
    assert 4 in conn.fins and conn.stopped[4] == RelayErrorCode.REFUSED
    assert 4 not in conn.paused  # late data is consumed and dropped, not left in the window
    assert server.filter_event(data(4, b"late")) == []
    assert server.filter_event(events.StreamReset(stream_id=4, error_code=7)) == []


def test_split_magic_is_buffered_then_decided(link: tuple[ServerLink, FakeConn]) -> None:
    server, conn = link
    assert server.filter_event(data(8, PREFACE[:2])) == []
    assert server.filter_event(data(8, PREFACE[2:5])) == []
    assert server.filter_event(data(8, PREFACE[5:])) == []
    assert answer(conn, 8) == Status.REFUSED
    # Not the magic after all: HTTP/3 gets the buffered bytes in one event.
    assert server.filter_event(data(12, b"QR")) == []
    out = server.filter_event(data(12, b"x-not-relay"))
    assert out == [data(12, b"QRx-not-relay")]
    # A stream that ends before it could be decided goes to HTTP/3 too.
    assert server.filter_event(data(16, b"Q", fin=True)) == [data(16, b"Q", fin=True)]


def test_malformed_preface_gets_bad_request(link: tuple[ServerLink, FakeConn]) -> None:
    server, conn = link
    assert server.filter_event(data(20, b"QRLY\x01\x07" + bytes(10))) == []
    assert answer(conn, 20) == Status.UNSUPPORTED
    assert conn.stopped[20] == RelayErrorCode.UNSUPPORTED
    assert server.filter_event(data(24, PREFACE[:-1], fin=True)) == []
    assert answer(conn, 24) == Status.BAD_REQUEST


def test_datagrams_never_reach_http3(link: tuple[ServerLink, FakeConn]) -> None:
    server, _ = link
    assert server.filter_event(events.DatagramFrameReceived(data=b"\x05hello")) == []
    assert server.filter_event(events.DatagramFrameReceived(data=b"")) == []


def test_connection_end_closes_the_link(link: tuple[ServerLink, FakeConn]) -> None:
    server, _ = link
    end = events.ConnectionTerminated(error_code=0, frame_type=None, reason_phrase="bye")
    assert server.filter_event(end) == [end]
    assert server.closed
