"""Frame codecs (RFC 9000 §19, RFC 9221 §4): round trips, fast paths and FRAME_ENCODING_ERROR cases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quicreality.quic.errors import QuicConnectionError, QuicErrorCode
from quicreality.quic.frames import (
    FRAME_PACKET_TYPES,
    AckFrame,
    ConnectionCloseFrame,
    CryptoFrame,
    DataBlockedFrame,
    DatagramFrame,
    FrameType,
    HandshakeDoneFrame,
    MaxDataFrame,
    MaxStreamDataFrame,
    MaxStreamsFrame,
    NewConnectionIdFrame,
    NewTokenFrame,
    PaddingFrame,
    PathChallengeFrame,
    PathResponseFrame,
    PingFrame,
    ResetStreamFrame,
    RetireConnectionIdFrame,
    StopSendingFrame,
    StreamDataBlockedFrame,
    StreamFrame,
    StreamsBlockedFrame,
    frame_allowed,
    pull_ack_frame,
    pull_crypto_frame,
    pull_ecn_counts,
    pull_frame,
    pull_stream_frame,
    push_ack_frame,
    push_frame,
    push_stream_frame_header,
    skip_padding,
    stream_frame_header_size,
)
from quicreality.quic.packet import (
    PACKET_TYPE_HANDSHAKE,
    PACKET_TYPE_INITIAL,
    PACKET_TYPE_ONE_RTT,
    PACKET_TYPE_ZERO_RTT,
)
from quicreality.wire.buffer import Buffer, encode_uint_var
from quicreality.wire.rangeset import RangeSet

varint = st.integers(min_value=0, max_value=(1 << 62) - 1)
small = st.integers(min_value=0, max_value=1 << 40)
cid = st.binary(min_size=1, max_size=20)


@st.composite
def ack_ranges(draw: st.DrawFn) -> tuple[range, ...]:
    start = draw(st.integers(0, 1 << 40))
    ranges = []
    for _ in range(draw(st.integers(1, 20))):
        length = draw(st.integers(1, 1000))
        ranges.append(range(start, start + length))
        start += length + draw(st.integers(1, 1000))  # gaps of at least one packet
    return tuple(ranges)


frames = st.one_of(
    st.builds(PaddingFrame, st.integers(1, 100)),
    st.just(PingFrame()),
    st.builds(AckFrame, ack_ranges(), small, st.none() | st.tuples(small, small, small)),
    st.builds(ResetStreamFrame, varint, varint, varint),
    st.builds(StopSendingFrame, varint, varint),
    st.builds(CryptoFrame, small, st.binary(max_size=300)),
    st.builds(NewTokenFrame, st.binary(min_size=1, max_size=100)),
    st.builds(StreamFrame, varint, small, st.binary(max_size=300), st.booleans(), st.just(True)),
    st.builds(MaxDataFrame, varint),
    st.builds(MaxStreamDataFrame, varint, varint),
    st.builds(MaxStreamsFrame, st.booleans(), st.integers(0, 1 << 60)),
    st.builds(DataBlockedFrame, varint),
    st.builds(StreamDataBlockedFrame, varint, varint),
    st.builds(StreamsBlockedFrame, st.booleans(), st.integers(0, 1 << 60)),
    st.integers(0, 1 << 40).flatmap(
        lambda seq: st.builds(
            NewConnectionIdFrame,
            st.just(seq),
            st.integers(0, seq),
            cid,
            st.binary(min_size=16, max_size=16),
        )
    ),
    st.builds(RetireConnectionIdFrame, varint),
    st.builds(PathChallengeFrame, st.binary(min_size=8, max_size=8)),
    st.builds(PathResponseFrame, st.binary(min_size=8, max_size=8)),
    st.builds(ConnectionCloseFrame, varint, varint, st.text(max_size=50), st.just(False)),
    st.builds(ConnectionCloseFrame, varint, st.none(), st.text(max_size=50), st.just(True)),
    st.just(HandshakeDoneFrame()),
    st.builds(DatagramFrame, st.binary(max_size=300), st.just(True)),
)


@given(frame=frames)
def test_frame_round_trip(frame: object) -> None:
    buf = Buffer(capacity=2000)
    push_frame(buf, frame)  # type: ignore[arg-type]
    encoded = buf.data
    assert pull_frame(Buffer(data=encoded)) == frame
    # Frames followed by more frames (here PING) stop at their own end.
    reader = Buffer(data=encoded + b"\x01")
    if not isinstance(frame, PaddingFrame):
        assert pull_frame(reader) == frame
        assert pull_frame(reader) == PingFrame() and reader.eof()


@given(frame=frames)
def test_truncated_frames_raise_frame_encoding_error(frame: object) -> None:
    buf = Buffer(capacity=2000)
    push_frame(buf, frame)  # type: ignore[arg-type]
    encoded = buf.data
    if isinstance(frame, (PaddingFrame, PingFrame, HandshakeDoneFrame)):
        return
    for cut in {1, len(encoded) // 2, len(encoded) - 1}:
        if cut < 1:
            continue
        with pytest.raises(QuicConnectionError) as info:
            pull_frame(Buffer(data=encoded[:cut]))
        assert info.value.error_code == QuicErrorCode.FRAME_ENCODING_ERROR


@given(data=st.binary(max_size=300))
def test_stream_and_datagram_without_length_run_to_the_end(data: bytes) -> None:
    buf = Buffer(capacity=400)
    push_frame(buf, StreamFrame(4, 0, data, fin=True, has_length=False))
    assert pull_frame(Buffer(data=buf.data)) == StreamFrame(4, 0, data, True, False)
    buf = Buffer(capacity=400)
    push_frame(buf, DatagramFrame(data, has_length=False))
    assert pull_frame(Buffer(data=buf.data)) == DatagramFrame(data, False)


def test_padding_run_is_one_frame() -> None:
    reader = Buffer(data=bytes(37) + b"\x01")
    assert pull_frame(reader) == PaddingFrame(37)
    assert pull_frame(reader) == PingFrame()


@pytest.mark.parametrize(("data", "start", "skipped"), [
    (b"", 0, 0), (bytes(5), 0, 5), (bytes(5), 5, 0), (b"\x00\x00\x01\x00", 0, 2),
    (b"\x01\x00\x00\x00\x02", 1, 3), (b"\x01\x00\x00", 1, 2), (b"\x01", 0, 0),
    (bytes(1199) + b"\x06", 3, 1196),
])
def test_skip_padding_stops_at_the_first_other_byte_or_the_end(
        data: bytes, start: int, skipped: int) -> None:
    buf = Buffer(data=data)
    buf.seek(start)
    assert skip_padding(buf) == skipped
    assert buf.tell() == start + skipped


# --- fast paths ---------------------------------------------------------------------------------------------


@given(ranges=ack_ranges(), delay=small)
def test_ack_fast_paths_round_trip(ranges: tuple[range, ...], delay: int) -> None:
    rangeset = RangeSet(ranges)
    buf = Buffer(capacity=2000)
    assert push_ack_frame(buf, rangeset, delay) == len(ranges)
    reader = Buffer(data=buf.data)
    assert reader.pull_uint_var() == FrameType.ACK
    assert pull_ack_frame(reader, False) == (rangeset, delay)
    assert reader.eof()


def test_ack_ecn_counts() -> None:
    buf = Buffer(capacity=100)
    push_ack_frame(buf, RangeSet([range(5)]), 3, ecn_counts=(1, 2, 3))
    reader = Buffer(data=buf.data)
    assert reader.pull_uint_var() == FrameType.ACK_ECN
    assert pull_ack_frame(reader, False) == (RangeSet([range(5)]), 3)
    assert pull_ecn_counts(reader) == (1, 2, 3)
    reader = Buffer(data=buf.data)
    reader.pull_uint_var()
    pull_ack_frame(reader, True)
    assert reader.eof()


def test_ack_is_capped_to_fit_keeping_the_newest_ranges() -> None:
    rangeset = RangeSet(range(i * 10, i * 10 + 2) for i in range(200))
    buf = Buffer(capacity=60)
    written = push_ack_frame(buf, rangeset, 0)
    assert 1 < written < 200
    reader = Buffer(data=buf.data)
    reader.pull_uint_var()
    received, _ = pull_ack_frame(reader, False)
    assert list(received) == list(rangeset)[-written:]
    capped = Buffer(capacity=2000)
    assert push_ack_frame(capped, rangeset, 0, max_ranges=3) == 3
    assert push_ack_frame(Buffer(capacity=2), rangeset, 0) == 0


@pytest.mark.parametrize(
    "body",
    [
        "0a00010b",  # first range below zero: largest 10, first range 11
        "0a0001020008",  # second range: largest 8 - 0 - 2 = 6, length 8 -> smallest -2
        "050001000103",  # second range length takes it below zero
    ],
)
def test_ack_range_underflow_is_frame_encoding_error(body: str) -> None:
    with pytest.raises(QuicConnectionError) as info:
        pull_ack_frame(Buffer(data=bytes.fromhex(body)), False)
    assert info.value.error_code == QuicErrorCode.FRAME_ENCODING_ERROR


@given(stream_id=varint, offset=small, data=st.binary(max_size=200), fin=st.booleans())
def test_stream_fast_path(stream_id: int, offset: int, data: bytes, fin: bool) -> None:
    buf = Buffer(capacity=400)
    push_stream_frame_header(buf, stream_id, offset, len(data), fin)
    assert buf.tell() == stream_frame_header_size(stream_id, offset, len(data))
    buf.push_bytes(data)
    reader = Buffer(data=buf.data)
    frame_type = reader.pull_uint_var()
    assert 0x08 <= frame_type <= 0x0F
    assert pull_stream_frame(reader, frame_type) == (stream_id, offset, data, fin)


def test_crypto_fast_path() -> None:
    buf = Buffer(capacity=100)
    push_frame(buf, CryptoFrame(1000, b"hello"))
    reader = Buffer(data=buf.data)
    assert reader.pull_uint_var() == FrameType.CRYPTO
    assert pull_crypto_frame(reader) == (1000, b"hello")


# --- validation ---------------------------------------------------------------------------------------------


def encoding_error(hex_frame: str | bytes) -> QuicConnectionError:
    data = bytes.fromhex(hex_frame) if isinstance(hex_frame, str) else hex_frame
    with pytest.raises(QuicConnectionError) as info:
        pull_frame(Buffer(data=data))
    assert info.value.error_code == QuicErrorCode.FRAME_ENCODING_ERROR
    return info.value


def test_new_connection_id_validation() -> None:
    token = "00" * 16
    assert encoding_error("18010000" + token).frame_type == 0x18  # zero-length CID
    encoding_error("18010015" + "01" * 21 + token)  # 21-byte CID
    encoding_error("18010204" + "01" * 4 + token)  # retire_prior_to > sequence


def test_stream_offset_limit() -> None:
    too_far = b"\x0e\x00" + encode_uint_var((1 << 62) - 2) + b"\x02ab"
    assert encoding_error(too_far).frame_type == 0x0E
    crypto = b"\x06" + encode_uint_var((1 << 62) - 1) + b"\x01a"
    encoding_error(crypto)


def test_stream_limits_above_2_to_the_60() -> None:
    encoding_error(b"\x12" + encode_uint_var((1 << 60) + 1))
    encoding_error(b"\x17" + encode_uint_var((1 << 60) + 1))


def test_other_malformed_frames() -> None:
    encoding_error("1a01020304")  # PATH_CHALLENGE shorter than 8 bytes
    encoding_error("0700")  # empty NEW_TOKEN
    assert encoding_error("1f").reason_phrase == "unknown frame type"
    encoding_error("4020")  # unknown type 0x20 (two-byte varint)


def test_push_refuses_unencodable_frames() -> None:
    buf = Buffer(capacity=100)
    for frame in (
        PathChallengeFrame(b"1234567"),
        NewTokenFrame(b""),
        NewConnectionIdFrame(1, 0, b"", bytes(16)),
        NewConnectionIdFrame(1, 2, b"1", bytes(16)),
        StreamFrame(0, (1 << 62) - 1, b"x"),
    ):
        with pytest.raises(ValueError):
            push_frame(buf, frame)


# --- packet type table (RFC 9000 §12.4 Table 3) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame_type", "allowed"),
    [
        (0x00, "IH01"),
        (0x01, "IH01"),
        (0x02, "IH_1"),
        (0x03, "IH_1"),
        (0x04, "__01"),
        (0x06, "IH_1"),
        (0x07, "___1"),
        (0x08, "__01"),
        (0x0F, "__01"),
        (0x18, "__01"),
        (0x19, "___1"),
        (0x1A, "__01"),
        (0x1B, "___1"),
        (0x1C, "IH01"),
        (0x1D, "__01"),
        (0x1E, "___1"),
        (0x30, "__01"),
        (0x31, "__01"),
        (0x1F, "____"),
        (0x40, "____"),
    ],
)
def test_frame_packet_type_table(frame_type: int, allowed: str) -> None:
    types = (PACKET_TYPE_INITIAL, PACKET_TYPE_HANDSHAKE, PACKET_TYPE_ZERO_RTT, PACKET_TYPE_ONE_RTT)
    assert [frame_allowed(frame_type, t) for t in types] == [c != "_" for c in allowed]
    assert len(FRAME_PACKET_TYPES) == 0x32


# --- varints (RFC 9000 §16) ---------------------------------------------------------------------------------


@given(value=varint)
def test_varint_round_trip_uses_the_shortest_encoding(value: int) -> None:
    encoded = encode_uint_var(value)
    expected_size = 1 if value < 1 << 6 else 2 if value < 1 << 14 else 4 if value < 1 << 30 else 8
    assert len(encoded) == expected_size
    assert encoded[0] >> 6 == {1: 0, 2: 1, 4: 2, 8: 3}[expected_size]
    assert Buffer(data=encoded).pull_uint_var() == value


def test_varint_rfc9000_a1_examples() -> None:
    for hex_value, value in (
        ("c2197c5eff14e88c", 151288809941952652),
        ("9d7f3e7d", 494878333),
        ("7bbd", 15293),
        ("25", 37),
        ("4025", 37),  # non-minimal encodings are still decoded
    ):
        assert Buffer(data=bytes.fromhex(hex_value)).pull_uint_var() == value
