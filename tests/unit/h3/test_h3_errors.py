"""HTTP/3 protocol violations close the connection with the RFC 9114 §8.1 code."""

from __future__ import annotations

import pylsqpack
import pytest
from h3fake import FakeQuic

from quicreality.h3.connection import H3Connection
from quicreality.h3.events import DataReceived, GoawayReceived, HeadersReceived, StreamResetReceived
from quicreality.h3.frames import H3ErrorCode, encode_frame
from quicreality.quic.errors import LocalProtocolError
from quicreality.quic.events import StreamDataReceived, StreamReset
from quicreality.wire.buffer import encode_uint_var

SETTINGS = encode_frame(0x4, encode_uint_var(1) + encode_uint_var(0))
REQUEST = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"x"), (b":path", b"/")]


def headers_frame(headers=REQUEST, stream_id: int = 0) -> bytes:
    _enc, block = pylsqpack.Encoder().encode(stream_id, headers)
    return encode_frame(0x1, block)


def feed(h3: H3Connection, stream_id: int, data: bytes, fin: bool = False) -> list:
    """Deliver ``data`` one byte at a time (then the FIN)."""
    out: list = []
    for i in range(len(data)):
        out += h3.handle_event(StreamDataReceived(stream_id, data[i : i + 1], False))
    if fin:
        out += h3.handle_event(StreamDataReceived(stream_id, b"", True))
    return out


def server() -> tuple[H3Connection, FakeQuic]:
    quic = FakeQuic(is_client=False)
    return H3Connection(quic, is_client=False), quic


def client() -> tuple[H3Connection, FakeQuic]:
    quic = FakeQuic(is_client=True)
    return H3Connection(quic, is_client=True), quic


def code(quic: FakeQuic) -> int | None:
    return None if quic.closed is None else quic.closed[0]


def test_creation_opens_three_uni_streams_and_sends_settings() -> None:
    _h3, quic = server()
    assert sorted(quic.queues) == [3, 7, 11]
    assert bytes(quic.queues[3].data[:2]) == b"\x00\x04"  # control type, SETTINGS frame
    assert bytes(quic.queues[7].data) == b"\x02"
    assert bytes(quic.queues[11].data) == b"\x03"


def test_data_before_headers_is_frame_unexpected() -> None:
    h3, quic = server()
    feed(h3, 0, encode_frame(0x0, b"abc"))
    assert code(quic) == H3ErrorCode.H3_FRAME_UNEXPECTED


def test_second_settings_is_frame_unexpected() -> None:
    h3, quic = server()
    feed(h3, 2, b"\x00" + SETTINGS + SETTINGS)
    assert code(quic) == H3ErrorCode.H3_FRAME_UNEXPECTED


def test_missing_settings_first() -> None:
    h3, quic = server()
    feed(h3, 2, b"\x00" + encode_frame(0x7, encode_uint_var(0)))
    assert code(quic) == H3ErrorCode.H3_MISSING_SETTINGS


@pytest.mark.parametrize("frame_type", [0x0, 0x1, 0x5, 0x2, 0x6])
def test_wrong_frame_on_control_stream(frame_type: int) -> None:
    h3, quic = server()
    feed(h3, 2, b"\x00" + SETTINGS + encode_frame(frame_type, b"x"))
    assert code(quic) == H3ErrorCode.H3_FRAME_UNEXPECTED


def test_max_push_id_from_server_is_frame_unexpected() -> None:
    h3, quic = client()
    feed(h3, 3, b"\x00" + SETTINGS + encode_frame(0xD, encode_uint_var(3)))
    assert code(quic) == H3ErrorCode.H3_FRAME_UNEXPECTED


@pytest.mark.parametrize("stream_id", [2, 6, 10])
def test_closing_a_critical_stream(stream_id: int) -> None:
    h3, quic = server()
    feed(h3, 2, b"\x00" + SETTINGS, fin=stream_id == 2)
    feed(h3, 6, b"\x02", fin=stream_id == 6)
    feed(h3, 10, b"\x03", fin=stream_id == 10)
    assert code(quic) == H3ErrorCode.H3_CLOSED_CRITICAL_STREAM


def test_resetting_the_control_stream() -> None:
    h3, quic = server()
    feed(h3, 2, b"\x00" + SETTINGS)
    h3.handle_event(StreamReset(2, 0))
    assert code(quic) == H3ErrorCode.H3_CLOSED_CRITICAL_STREAM


def test_second_control_stream_is_stream_creation_error() -> None:
    h3, quic = server()
    feed(h3, 2, b"\x00" + SETTINGS)
    feed(h3, 6, b"\x00" + SETTINGS)
    assert code(quic) == H3ErrorCode.H3_STREAM_CREATION_ERROR


def test_unknown_uni_stream_type_is_stopped_and_ignored() -> None:
    h3, quic = server()
    feed(h3, 2, b"\x00" + SETTINGS)
    feed(h3, 6, encode_uint_var(0x21 + 0x1F) + b"garbage", fin=True)
    assert code(quic) is None
    assert quic.stops == [(6, H3ErrorCode.H3_STREAM_CREATION_ERROR)]


def test_push_stream_to_a_client_without_max_push_id() -> None:
    h3, quic = client()
    feed(h3, 3, b"\x01\x00")
    assert code(quic) == H3ErrorCode.H3_ID_ERROR


def test_push_stream_from_a_client() -> None:
    h3, quic = server()
    feed(h3, 2, b"\x01\x00")
    assert code(quic) == H3ErrorCode.H3_STREAM_CREATION_ERROR


def test_push_promise_to_a_client() -> None:
    h3, quic = client()
    sid = h3.get_next_request_stream_id()
    h3.send_headers(sid, REQUEST, end_stream=True)
    feed(h3, sid, encode_frame(0x5, encode_uint_var(0) + b"\x00\x00"))
    assert code(quic) == H3ErrorCode.H3_ID_ERROR


def test_server_initiated_bidi_stream_is_stream_creation_error() -> None:
    h3, quic = client()
    feed(h3, 1, headers_frame([(b":status", b"200")]))
    assert code(quic) == H3ErrorCode.H3_STREAM_CREATION_ERROR


def test_stream_ending_inside_a_frame_is_frame_error() -> None:
    h3, quic = server()
    wire = headers_frame() + encode_frame(0x0, b"abcdef")
    feed(h3, 0, wire[:-2], fin=True)
    assert code(quic) == H3ErrorCode.H3_FRAME_ERROR


def test_reserved_http2_frame_on_request_stream() -> None:
    h3, quic = server()
    feed(h3, 0, headers_frame() + encode_frame(0x8, b"\x00"))
    assert code(quic) == H3ErrorCode.H3_FRAME_UNEXPECTED


def test_settings_on_request_stream() -> None:
    h3, quic = server()
    feed(h3, 0, SETTINGS)
    assert code(quic) == H3ErrorCode.H3_FRAME_UNEXPECTED


def test_duplicate_setting_on_control_stream() -> None:
    h3, quic = server()
    dup = encode_frame(
        0x4, encode_uint_var(6) + encode_uint_var(1) + encode_uint_var(6) + encode_uint_var(2)
    )
    feed(h3, 2, b"\x00" + dup)
    assert code(quic) == H3ErrorCode.H3_SETTINGS_ERROR


def test_garbage_header_block_is_decompression_failed() -> None:
    h3, quic = server()
    feed(h3, 0, encode_frame(0x1, b"\xff\xff\xff\xff\xff"))
    assert code(quic) == H3ErrorCode.QPACK_DECOMPRESSION_FAILED


def test_headers_after_trailers() -> None:
    h3, quic = server()
    trailers = headers_frame([(b"x-t", b"1")])
    feed(h3, 0, headers_frame() + trailers + trailers)
    assert code(quic) == H3ErrorCode.H3_FRAME_UNEXPECTED


def test_goaway_id_must_not_increase() -> None:
    h3, quic = client()
    events = feed(h3, 3, b"\x00" + SETTINGS + encode_frame(0x7, encode_uint_var(8)))
    assert GoawayReceived(8) in events
    feed(h3, 3, encode_frame(0x7, encode_uint_var(12)))
    assert code(quic) == H3ErrorCode.H3_ID_ERROR


def test_goaway_with_non_request_id_is_id_error() -> None:
    h3, quic = client()
    feed(h3, 3, b"\x00" + SETTINGS + encode_frame(0x7, encode_uint_var(2)))
    assert code(quic) == H3ErrorCode.H3_ID_ERROR


def test_nothing_is_processed_after_a_connection_error() -> None:
    h3, _quic = server()
    feed(h3, 0, encode_frame(0x0, b"abc"))
    assert h3.closed
    assert feed(h3, 4, headers_frame(stream_id=4), fin=True) == []


def test_malformed_request_is_a_stream_error_only() -> None:
    h3, quic = server()
    events = feed(h3, 0, headers_frame([(b":method", b"GET"), (b"Upper", b"x")]), fin=True)
    assert not any(isinstance(e, HeadersReceived) for e in events)
    assert code(quic) is None
    assert (0, H3ErrorCode.H3_MESSAGE_ERROR) in quic.resets
    assert (0, H3ErrorCode.H3_MESSAGE_ERROR) in quic.stops


def test_request_reset_by_peer_is_reported() -> None:
    h3, _quic = server()
    feed(h3, 0, headers_frame())
    assert h3.handle_event(StreamReset(0, 0x10C)) == [StreamResetReceived(0, 0x10C)]


def test_data_split_anywhere_is_reassembled_exactly() -> None:
    h3, _quic = server()
    wire = (
        headers_frame()
        + encode_frame(0x0, b"")
        + encode_frame(0x0, b"hello")
        + encode_frame(0x0, b"!" * 70)
    )
    events = feed(h3, 0, wire, fin=True)
    assert isinstance(events[0], HeadersReceived)
    body = b"".join(e.data for e in events if isinstance(e, DataReceived))
    assert body == b"hello" + b"!" * 70
    assert events[-1].stream_ended and sum(getattr(e, "stream_ended", False) for e in events) == 1


def test_whole_chunk_of_data_payload_is_passed_through_without_copy() -> None:
    h3, _quic = server()
    feed(h3, 0, headers_frame() + b"\x00" + encode_uint_var(100_000))
    chunk = bytes(1200)
    (event,) = h3.handle_event(StreamDataReceived(0, chunk, False))
    assert event.data is chunk


def test_local_misuse_raises() -> None:
    h3, _quic = client()
    with pytest.raises(LocalProtocolError):
        h3.send_data(0, b"x")
    with pytest.raises(LocalProtocolError):
        h3.send_headers(2, REQUEST)
    h3.send_headers(0, REQUEST, end_stream=True)
    with pytest.raises(LocalProtocolError):
        h3.send_headers(0, REQUEST)
