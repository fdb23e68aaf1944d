"""Malformed input from a peer never crashes an endpoint: it closes with the right error code, or
the datagram is dropped where the RFC says to drop (RFC 9000 §11, §12.4, §19; RFC 9001 §4.8)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simpair import CLIENT_ADDR, SimPair

from quicreality.quic import events
from quicreality.quic.connection import ConnectionState, QuicConnection
from quicreality.quic.errors import QuicErrorCode
from quicreality.quic.packet import PACKET_TYPE_ONE_RTT
from quicreality.quic.packet_builder import seal_packet
from quicreality.wire.buffer import Buffer


def established() -> SimPair:
    pair = SimPair(seed=11)
    pair.connect()
    pair.run(lambda: pair.server is not None and pair.server.state == ConnectionState.CONNECTED
             and pair.client.state == ConnectionState.CONNECTED, max_time=10)
    pair.run(lambda: pair.client._handshake_confirmed, max_time=10)
    return pair


def forge(client: QuicConnection, payload: bytes) -> bytes:
    """A 1-RTT packet protected with the client's real keys, carrying ``payload``."""
    space = client._spaces[2]
    pn = space.next_pn
    space.next_pn += 1
    if len(payload) < 8:
        payload = payload + bytes(8 - len(payload)) if payload else payload
    return seal_packet(client._cryptos[2], PACKET_TYPE_ONE_RTT, version=1,
                       dcid=client._peer_cids.current.cid, scid=client.host_cid,
                       token=None, packet_number=pn, payload=payload)


def varint(v: int) -> bytes:
    b = Buffer(capacity=8)
    b.push_uint_var(v)
    return b.data


def close_code(conn: QuicConnection) -> int | None:
    frame = conn._close_frame
    return None if frame is None else frame[0]


CASES = {
    "unknown frame type": (varint(0x40), QuicErrorCode.FRAME_ENCODING_ERROR),
    "truncated STREAM": (bytes([0x0E]) + varint(0) + varint(0) + varint(100) + b"abc",
                         QuicErrorCode.FRAME_ENCODING_ERROR),
    "STREAM on our send-only stream": (bytes([0x0B]) + varint(3) + varint(1) + b"x",
                                       QuicErrorCode.STREAM_STATE_ERROR),
    "STREAM beyond stream limit": (bytes([0x0B]) + varint(4 * 5000) + varint(1) + b"x",
                                   QuicErrorCode.STREAM_LIMIT_ERROR),
    "STREAM beyond flow control": (bytes([0x0C]) + varint(0) + varint(50 * 1024 * 1024) + b"x",
                                   QuicErrorCode.FLOW_CONTROL_ERROR),
    "HANDSHAKE_DONE from a client": (bytes([0x1E]), QuicErrorCode.PROTOCOL_VIOLATION),
    "ACK of a packet never sent": (bytes([0x02]) + varint(10**6) + varint(0) + varint(0) + varint(0),
                                   QuicErrorCode.PROTOCOL_VIOLATION),
    "ACK range underflow": (bytes([0x02]) + varint(2) + varint(0) + varint(0) + varint(5),
                            QuicErrorCode.FRAME_ENCODING_ERROR),
    "NEW_CONNECTION_ID with empty CID": (bytes([0x18]) + varint(1) + varint(0) + bytes([0]) + bytes(16),
                                         QuicErrorCode.FRAME_ENCODING_ERROR),
    "RETIRE_CONNECTION_ID unknown": (bytes([0x19]) + varint(1000), QuicErrorCode.PROTOCOL_VIOLATION),
    "MAX_STREAMS over 2^60": (bytes([0x12]) + varint((1 << 60) + 1), QuicErrorCode.FRAME_ENCODING_ERROR),
    "NEW_TOKEN from a client": (bytes([0x07]) + varint(1) + b"t", QuicErrorCode.PROTOCOL_VIOLATION),
    "final size changed": (bytes([0x0B]) + varint(0) + varint(2) + b"ab"
                           + bytes([0x0B]) + varint(0) + varint(1) + b"a",
                           QuicErrorCode.FINAL_SIZE_ERROR),
    "CRYPTO garbage in 1-RTT": (bytes([0x06]) + varint(0) + varint(8) + b"\x01\x00\x00\x04abcd",
                                None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_server_closes_with_the_right_code(name: str) -> None:
    payload, expected = CASES[name]
    pair = established()
    assert pair.server is not None
    pair.server.receive_datagram(forge(pair.client, payload), CLIENT_ADDR, pair.now)
    code = close_code(pair.server)
    if expected is None:
        assert code is not None and code >= QuicErrorCode.CRYPTO_ERROR, code
    else:
        assert code == expected, f"{name}: got {code!r}"
    # The client learns it: the CONNECTION_CLOSE goes out and the client terminates.
    pair.run(lambda: any(isinstance(e, events.ConnectionTerminated) for e in pair.client_events))
    term = next(e for e in pair.client_events if isinstance(e, events.ConnectionTerminated))
    assert term.by_peer and term.error_code == code


def test_empty_packet_is_a_protocol_violation() -> None:
    pair = established()
    assert pair.server is not None
    space = pair.client._spaces[2]
    pn = space.next_pn
    space.next_pn += 1
    # An empty payload cannot carry the HP sample; pad with nothing the parser accepts as frames.
    packet = seal_packet(pair.client._cryptos[2], PACKET_TYPE_ONE_RTT, version=1,
                         dcid=pair.client._peer_cids.current.cid, scid=b"",
                         token=None, packet_number=pn, payload=b"")
    pair.server.receive_datagram(packet, CLIENT_ADDR, pair.now)
    assert close_code(pair.server) == QuicErrorCode.PROTOCOL_VIOLATION


def test_garbage_datagrams_are_dropped_and_the_connection_lives_on() -> None:
    pair = established()
    assert pair.server is not None
    rng = random.Random(5)
    for n in (0, 1, 5, 20, 100, 1200, 1500):
        junk = rng.randbytes(n)
        pair.endpoint.receive_datagram(junk, CLIENT_ADDR, pair.now)
        pair.client.receive_datagram(junk, CLIENT_ADDR, pair.now)
    # Bit flips in a genuine packet fail authentication and are dropped silently.
    good = bytearray(forge(pair.client, bytes([0x01])))
    good[-3] ^= 0xFF
    pair.server.receive_datagram(bytes(good), CLIENT_ADDR, pair.now)
    assert close_code(pair.server) is None and close_code(pair.client) is None
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"still alive", end_stream=True)
    pair.run(lambda: any(isinstance(e, events.StreamDataReceived) and e.end_stream
                         for e in pair.server_events))


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_random_frames_never_crash_the_server(payload: bytes) -> None:
    pair = _shared_pair()
    conn = pair.server
    assert conn is not None
    # Any outcome is fine except an exception escaping the endpoint.
    conn.receive_datagram(forge(pair.client, payload), CLIENT_ADDR, pair.now)
    conn.datagrams_to_send(pair.now)
    while conn.next_event() is not None:
        pass


_PAIR: list[SimPair] = []


def _shared_pair() -> SimPair:
    if not _PAIR or _PAIR[0].server is None or close_code(_PAIR[0].server) is not None:
        _PAIR[:] = [established()]
    return _PAIR[0]


def test_malformed_client_hello_gets_crypto_error_decode_error() -> None:
    """An Initial whose CRYPTO frame carries a ClientHello with an overrunning length: TLS
    decode_error (50) becomes CONNECTION_CLOSE with CRYPTO_ERROR 0x100 + 50 (RFC 9001 §4.8),
    sent in an Initial packet that the client accepts."""
    from quicreality.quic.packet import PACKET_TYPE_INITIAL

    pair = SimPair(seed=41)
    client = pair.client
    client.connect(("10.0.0.2", 443), 0.0)
    hello = b"\x01\x00\x00\x2d" + b"\x03\x03" + bytes(32) + b"\x00" + b"\xff\xff" + bytes(8)
    payload = bytes([0x06]) + varint(0) + varint(len(hello)) + hello
    payload += bytes(1170 - len(payload))
    packet = seal_packet(client._cryptos[0], PACKET_TYPE_INITIAL, version=1,
                         dcid=client._peer_cids.current.cid, scid=client.host_cid,
                         token=b"", packet_number=0, payload=payload)
    got = pair.endpoint.receive_datagram(packet, CLIENT_ADDR, 0.0)
    assert got.connection is not None
    assert close_code(got.connection) == QuicErrorCode.CRYPTO_ERROR + 50
    for data, _ in got.connection.datagrams_to_send(0.001):
        client.receive_datagram(data, ("10.0.0.2", 443), 0.002)
    term = client.next_event()
    while term is not None and not isinstance(term, events.ConnectionTerminated):
        term = client.next_event()
    assert isinstance(term, events.ConnectionTerminated)
    assert term.by_peer and term.error_code == QuicErrorCode.CRYPTO_ERROR + 50
