"""A client with the chrome Initial layout (and a zero-length SCID) against our server, on virtual time."""

from __future__ import annotations

from typing import Any

import pytest
from simpair import SimPair

from quicreality.quic import events
from quicreality.quic.packet import PACKET_TYPE_INITIAL, pull_quic_header
from quicreality.wire.buffer import Buffer

REQUEST = b"GET /"
RESPONSE_SIZE = 200_000


class LayoutPair(SimPair):
    """Records the client's datagrams, drops chosen ones, and answers one request."""

    drop_client_datagrams: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        super().__post_init__()
        self.client_datagrams: list[bytes] = []
        self.received = bytearray()
        self.finished = False

    def _transmit(self, direction: str, data: bytes, ecn: int = 0) -> None:
        if direction == "to_server":
            index = len(self.client_datagrams)
            self.client_datagrams.append(data)
            if index in self.drop_client_datagrams:
                self.datagrams[direction] += 1
                self.dropped[direction] += 1
                return
        super()._transmit(direction, data, ecn)

    def on_server_event(self, event: Any) -> None:
        if isinstance(event, events.StreamDataReceived) and event.end_stream:
            assert self.server is not None
            self.server.send_stream_data(event.stream_id, bytes(RESPONSE_SIZE), True)

    def on_client_event(self, event: Any) -> None:
        if isinstance(event, events.HandshakeCompleted):
            sid = self.client.get_next_available_stream_id()
            self.client.send_stream_data(sid, REQUEST, end_stream=True)
        elif isinstance(event, events.StreamDataReceived):
            self.received += event.data
            self.finished = self.finished or event.end_stream

    def handshaken(self) -> bool:
        return any(isinstance(e, events.HandshakeCompleted) for e in self.client_events) and any(
            isinstance(e, events.HandshakeCompleted) for e in self.server_events)


def chrome_pair(seed: int = 1, drop: frozenset[int] = frozenset(), **kw: Any) -> LayoutPair:
    pair = LayoutPair(seed=seed, client_overrides={"initial_layout": "chrome"}, **kw)
    pair.drop_client_datagrams = drop
    return pair


def initial_headers(datagrams: list[bytes]) -> list[Any]:
    out = []
    for d in datagrams:
        header = pull_quic_header(Buffer(data=d), host_cid_length=0)
        if header.is_long_header and header.packet_type == PACKET_TYPE_INITIAL:
            out.append(header)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chrome_layout_client_completes_handshake_and_download(seed: int) -> None:
    pair = chrome_pair(seed)
    pair.connect()
    pair.run(lambda: pair.finished, max_time=30)
    assert len(pair.received) == RESPONSE_SIZE
    assert [len(d) for d in pair.client_datagrams[:2]] == [1250, 1250]
    first = initial_headers(pair.client_datagrams[:2])
    assert [len(h.destination_cid) for h in first] == [8, 8]
    assert [h.source_cid for h in first] == [b"", b""]
    assert pair.client.host_cids == [b""]


@pytest.mark.parametrize("lost", [0, 1])
def test_chrome_layout_handshake_survives_loss_of_either_first_initial(lost: int) -> None:
    pair = chrome_pair(4, drop=frozenset({lost}))
    pair.connect()
    pair.run(lambda: pair.finished, max_time=30)
    assert len(pair.received) == RESPONSE_SIZE
    assert pair.dropped["to_server"] == 1
    # The lost hello bytes went again chaos-shaped, as Chromium's: a 1250-byte Initial datagram.
    assert any(len(d) == 1250 and h.packet_type == PACKET_TYPE_INITIAL
               for d, h in zip(pair.client_datagrams[2:],
                               initial_headers(pair.client_datagrams[2:]), strict=False))


def test_chrome_layout_handshake_survives_loss_of_both_first_initials() -> None:
    pair = chrome_pair(5, drop=frozenset({0, 1}))
    pair.connect()
    pair.run(lambda: pair.finished, max_time=30)
    assert len(pair.received) == RESPONSE_SIZE


def test_zero_length_scid_client_issues_no_connection_ids() -> None:
    """RFC 9000 §5.1.1: an endpoint using a zero-length connection ID sends no NEW_CONNECTION_ID."""
    pair = chrome_pair(6)
    pair.connect()
    pair.run(lambda: pair.finished, max_time=30)
    assert not [e for e in pair.client_events if isinstance(e, events.ConnectionIdIssued)]
    assert not [e for e in pair.client_events if isinstance(e, events.ConnectionTerminated)]
    # The server's CIDs still reach the client (it stores them for later use).
    assert [e for e in pair.server_events if isinstance(e, events.ConnectionIdIssued)]


def test_chrome_layout_client_after_retry_resends_chaos_shaped() -> None:
    """The hello after a Retry is a hello-only Initial again: 1250 bytes, as quiche sends it."""
    pair = chrome_pair(7, retry=True)
    pair.connect()
    pair.run(lambda: pair.finished, max_time=30)
    assert len(pair.received) == RESPONSE_SIZE
    assert [len(d) for d in pair.client_datagrams[:3]] == [1250, 1250, 1250]
