"""Regression tests for the HTTP/3 findings of the security audit (issue 9).

Finding 3: a QPACK decompression bomb (a few bytes of references to one large dynamic-table
entry) is refused before it is expanded, by the SETTINGS_MAX_FIELD_SECTION_SIZE we advertise
(RFC 9114 §4.2.2). Finding 9: an unknown or GREASE unidirectional stream that arrives with its
FIN is ignored without aborting the connection (RFC 9114 §6.2, §9).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pylsqpack
import pytest
from h3fake import FakeQuic
from quicpair import QuicH3Pair

from quicreality.h3.connection import H3Connection
from quicreality.h3.events import HeadersReceived
from quicreality.h3.frames import H3ErrorCode, Setting, encode_frame
from quicreality.quic.errors import QuicErrorCode
from quicreality.quic.events import ConnectionTerminated, StreamDataReceived
from quicreality.wire.buffer import Buffer, encode_uint_var

AUDIT = Path("/work/shared/audit")
CRASH = AUDIT / "crash_events_send_timer_h3_LocalProtocolError_connection_send.py_120.bin"
#: the crash input, as found by the audit's f_conn.py (kept here so the test stands alone)
CRASH_PAYLOAD = bytes.fromhex(
    "130210bfffffff000000000b0a1ade008ef774909f7e1d70ca6c23ebfa15dba12098aaaef4694ae91904"
)

#: Set Dynamic Table Capacity 4096, then Insert With Literal Name "x-a" = 3900 x "v" (RFC 9204 §4.3)
BOMB_ENCODER = bytes([0x3F, 0xE1, 0x1F, 0x43]) + b"x-a" + bytes([0x7F, 0xBD, 0x1D]) + b"v" * 3900
#: Required Insert Count 1, Base 1, :method GET, :scheme https, :path /, :authority a (static)
BOMB_HEAD = bytes([0x02, 0x00, 0xD1, 0xD7, 0xC1, 0x50, 0x01, 0x61])
#: each 0x80 is one Indexed Field Line for the 3.9 KB entry: 5000 of them decode to 19.5 MB
BOMB_BLOCK = BOMB_HEAD + b"\x80" * 5000
SETTINGS_4K = encode_frame(0x4, encode_uint_var(1) + encode_uint_var(4096))


def deliver(h3: H3Connection, stream_id: int, data: bytes, fin: bool = False) -> list:
    return h3.handle_event(StreamDataReceived(stream_id, data, fin))


def sent_frames(quic: FakeQuic, stream_id: int) -> list[tuple[int, bytes]]:
    """The HTTP/3 frames we queued on a request stream."""
    buf = Buffer(data=bytes(quic.queues[stream_id].data))
    frames = []
    while not buf.eof():
        frame_type = buf.pull_uint_var()
        frames.append((frame_type, buf.pull_bytes(buf.pull_uint_var())))
    return frames


def bomb_server() -> tuple[H3Connection, FakeQuic]:
    quic = FakeQuic(is_client=False)
    h3 = H3Connection(quic, is_client=False)
    deliver(h3, 2, b"\x00" + SETTINGS_4K)
    return h3, quic


# --- finding 3: QPACK decompression bomb ------------------------------------------------------


def test_qpack_bomb_request_is_answered_431_without_expanding_it() -> None:
    h3, quic = bomb_server()
    deliver(h3, 6, b"\x02" + BOMB_ENCODER)
    tracemalloc.start()
    try:
        events = deliver(h3, 0, encode_frame(0x1, BOMB_BLOCK), fin=True)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not any(isinstance(e, HeadersReceived) for e in events)
    assert peak < 1_000_000  # the old code built a 19.5 MB header list here
    assert quic.closed is None  # a stream-level refusal, the connection stays up
    ((frame_type, block),) = sent_frames(quic, 0)
    assert frame_type == 0x1
    _dec, head = pylsqpack.Decoder(0, 0).feed_header(0, block)
    assert head == [(b":status", b"431")]
    assert 0 in quic.sent_fin
    # the section's reference is released with a Stream Cancellation (RFC 9204 §4.4.2)
    assert bytes(quic.queues[11].data) == b"\x03\x40"


def test_qpack_bomb_on_a_blocked_stream_is_refused_when_unblocked() -> None:
    h3, quic = bomb_server()
    assert deliver(h3, 0, encode_frame(0x1, BOMB_BLOCK), fin=True) == []  # blocked: no entry yet
    tracemalloc.start()
    try:
        events = deliver(h3, 6, b"\x02" + BOMB_ENCODER)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not any(isinstance(e, HeadersReceived) for e in events)
    assert peak < 1_000_000
    assert quic.closed is None
    assert sent_frames(quic, 0)[0][0] == 0x1  # the 431


def test_qpack_bomb_response_is_a_stream_error_on_the_client() -> None:
    quic = FakeQuic(is_client=True)
    h3 = H3Connection(quic, is_client=True)
    sid = h3.get_next_request_stream_id()
    h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")], True)
    deliver(h3, 3, b"\x00" + SETTINGS_4K)
    deliver(h3, 7, b"\x02" + BOMB_ENCODER)
    block = bytes([0x02, 0x00, 0xD9]) + b"\x80" * 5000  # :status 200, then the bomb
    events = deliver(h3, sid, encode_frame(0x1, block), fin=True)
    assert not any(isinstance(e, HeadersReceived) for e in events)
    assert quic.closed is None
    assert (sid, H3ErrorCode.H3_EXCESSIVE_LOAD) in quic.stops


def test_we_advertise_max_field_section_size() -> None:
    quic = FakeQuic(is_client=False)
    H3Connection(quic, is_client=False, max_field_section_size=12345)
    settings = bytes(quic.queues[3].data)
    assert encode_uint_var(Setting.MAX_FIELD_SECTION_SIZE) + encode_uint_var(12345) in settings


@pytest.mark.parametrize("extra", [0, 1])
def test_field_section_size_limit_is_exact(extra: int) -> None:
    """name + value + 32 per field (RFC 9114 §4.2.2): exactly the limit passes, one more fails."""
    head = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")]
    used = sum(len(n) + len(v) + 32 for n, v in head) + len(b"x-pad") + 32
    limit = 2000
    headers = [*head, (b"x-pad", b"p" * (limit - used + extra))]
    quic = FakeQuic(is_client=False)
    h3 = H3Connection(quic, is_client=False, max_field_section_size=limit)
    deliver(h3, 2, b"\x00" + SETTINGS_4K)
    _enc, block = pylsqpack.Encoder().encode(0, headers)
    events = deliver(h3, 0, encode_frame(0x1, block), fin=True)
    accepted = [e for e in events if isinstance(e, HeadersReceived)]
    assert (accepted[0].headers == headers) if extra == 0 else (accepted == [])


def test_reference_beyond_required_insert_count_is_decompression_failed() -> None:
    h3, quic = bomb_server()
    deliver(h3, 6, b"\x02" + BOMB_ENCODER)
    deliver(h3, 0, encode_frame(0x1, BOMB_HEAD + b"\x10"), fin=True)  # post-base index 0 >= RIC
    assert quic.closed is not None and quic.closed[0] == H3ErrorCode.QPACK_DECOMPRESSION_FAILED


def test_our_head_larger_than_the_peers_limit_is_not_sent() -> None:
    quic = FakeQuic(is_client=True)
    h3 = H3Connection(quic, is_client=True)
    deliver(h3, 3, b"\x00" + encode_frame(0x4, encode_uint_var(0x6) + encode_uint_var(64)))
    sid = h3.get_next_request_stream_id()
    with pytest.raises(Exception, match="SETTINGS_MAX_FIELD_SECTION_SIZE"):
        h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")])


def test_server_session_survives_a_peer_limit_too_small_for_any_response() -> None:
    """The audit fuzzer's SETTINGS carries MAX_FIELD_SECTION_SIZE = 16: no response head fits."""
    pair = QuicH3Pair()
    client = pair.client
    ctrl = client.get_next_available_stream_id(is_unidirectional=True)
    client.send_stream_data(ctrl, b"\x00" + encode_frame(0x4, b"\x06\x10"))
    _enc, block = pylsqpack.Encoder().encode(
        0, [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/bytes/10")]
    )
    client.send_stream_data(0, encode_frame(0x1, block), end_stream=True)
    pair.exchange()
    assert not any(isinstance(e, ConnectionTerminated) for e in pair.client_events)
    assert pair.server is not None and pair.server.state.name == "CONNECTED"


# --- finding 9: unknown / GREASE uni stream with FIN -------------------------------------------


def test_grease_uni_stream_with_fin_is_ignored_and_the_connection_serves_on() -> None:
    pair = QuicH3Pair()
    client = pair.client
    grease = client.get_next_available_stream_id(is_unidirectional=True)
    # reserved stream type 0x1f * 3 + 0x21 (RFC 9114 §6.2.3), whole stream in one STREAM frame
    client.send_stream_data(grease, encode_uint_var(0x1F * 3 + 0x21) + b"GREASE", end_stream=True)
    pair.exchange()
    ctrl = client.get_next_available_stream_id(is_unidirectional=True)
    client.send_stream_data(ctrl, b"\x00" + encode_frame(0x4, b""))
    _enc, block = pylsqpack.Encoder().encode(
        0, [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/bytes/100")]
    )
    client.send_stream_data(0, encode_frame(0x1, block), end_stream=True)
    pair.exchange()
    assert not any(isinstance(e, ConnectionTerminated) for e in pair.client_events)
    body = b"".join(
        e.data for e in pair.client_events if isinstance(e, StreamDataReceived) and e.stream_id == 0
    )
    assert len(body) > 100  # HEADERS frame + DATA frame of 100 bytes
    assert pair.session is not None and pair.session.requests_served == 1


def test_fuzzer_crash_input_is_ignored() -> None:
    """f_conn.py's crash: STREAM 10 (unknown uni type 0x1e00) with FIN, among other frames.

    Its last frame, RETIRE_CONNECTION_ID 4, is a genuine QUIC violation (RFC 9000 §19.16); the
    H3 part must not matter either way.
    """
    if CRASH.exists():
        assert CRASH.read_bytes() == CRASH_PAYLOAD
    assert CRASH_PAYLOAD[-2:] == b"\x19\x04"
    pair = QuicH3Pair()
    pair.inject(CRASH_PAYLOAD[:-2])  # the old code raised LocalProtocolError from stop_stream
    pair.exchange()
    assert pair.server is not None and pair.server.state.name == "CONNECTED"
    pair = QuicH3Pair()
    pair.inject(CRASH_PAYLOAD)
    pair.exchange()
    closed = [e for e in pair.client_events if isinstance(e, ConnectionTerminated)]
    assert [(e.error_code, e.frame_type) for e in closed] == [
        (QuicErrorCode.PROTOCOL_VIOLATION, 0x19)
    ]
