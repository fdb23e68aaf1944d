"""HTTP/3 frame codecs (RFC 9114 §7)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quicreality.h3.frames import (
    CancelPushFrame,
    DataFrame,
    GoawayFrame,
    H3ConnectionError,
    H3ErrorCode,
    HeadersFrame,
    MaxPushIdFrame,
    PushPromiseFrame,
    SettingsFrame,
    UnknownFrame,
    encode_h3_frame,
    frame_size,
    is_reserved_frame_type,
    parse_frame_payload,
    peek_uint_var,
    pull_frame,
    push_frame,
)
from quicreality.wire.buffer import Buffer, BufferReadError, encode_uint_var

varints = st.integers(min_value=0, max_value=(1 << 62) - 1)
payloads = st.binary(max_size=300)
settings = st.dictionaries(
    varints.filter(lambda k: k not in (0, 2, 3, 4, 5)), varints, max_size=8
).map(lambda d: SettingsFrame(tuple(d.items())))
unknown_types = varints.filter(lambda t: t > 0xD)
frames = st.one_of(
    payloads.map(DataFrame),
    payloads.map(HeadersFrame),
    varints.map(CancelPushFrame),
    settings,
    st.builds(PushPromiseFrame, varints, payloads),
    varints.map(GoawayFrame),
    varints.map(MaxPushIdFrame),
    st.builds(UnknownFrame, unknown_types, payloads),
)


@given(frames)
def test_frame_round_trip(frame) -> None:
    size = frame_size(frame)
    buf = Buffer(capacity=size)
    push_frame(buf, frame)
    assert buf.data == encode_h3_frame(frame)
    assert pull_frame(Buffer(data=buf.data)) == frame


@given(st.lists(frames, max_size=6))
def test_concatenated_frames_parse_in_sequence(frame_list) -> None:
    wire = b"".join(encode_h3_frame(f) for f in frame_list)
    buf = Buffer(data=wire)
    out = []
    while not buf.eof():
        out.append(pull_frame(buf))
    assert out == frame_list


@given(frames, st.data())
def test_truncated_frame_raises_read_error(frame, data) -> None:
    wire = encode_h3_frame(frame)
    cut = data.draw(st.integers(min_value=0, max_value=len(wire) - 1))
    with pytest.raises(BufferReadError):
        pull_frame(Buffer(data=wire[:cut]))


@given(varints)
def test_peek_uint_var_matches_buffer(value: int) -> None:
    enc = encode_uint_var(value)
    assert peek_uint_var(b"xx" + enc, 2) == (value, 2 + len(enc))
    assert peek_uint_var(enc[:-1], 0) is None


def test_duplicate_setting_is_settings_error() -> None:
    payload = encode_uint_var(1) + encode_uint_var(10) + encode_uint_var(1) + encode_uint_var(20)
    with pytest.raises(H3ConnectionError) as exc:
        parse_frame_payload(0x4, payload)
    assert exc.value.error_code == H3ErrorCode.H3_SETTINGS_ERROR


@pytest.mark.parametrize("ident", [0x0, 0x2, 0x3, 0x4, 0x5])
def test_http2_settings_are_settings_error(ident: int) -> None:
    with pytest.raises(H3ConnectionError) as exc:
        parse_frame_payload(0x4, encode_uint_var(ident) + encode_uint_var(1))
    assert exc.value.error_code == H3ErrorCode.H3_SETTINGS_ERROR


@pytest.mark.parametrize("frame_type", [0x3, 0x7, 0xD])
def test_single_varint_frames_reject_trailing_bytes(frame_type: int) -> None:
    with pytest.raises(H3ConnectionError) as exc:
        parse_frame_payload(frame_type, encode_uint_var(5) + b"\x00")
    assert exc.value.error_code == H3ErrorCode.H3_FRAME_ERROR


def test_truncated_settings_is_frame_error() -> None:
    with pytest.raises(H3ConnectionError) as exc:
        parse_frame_payload(0x4, encode_uint_var(1))
    assert exc.value.error_code == H3ErrorCode.H3_FRAME_ERROR


def test_reserved_frame_types() -> None:
    assert is_reserved_frame_type(0x21)
    assert is_reserved_frame_type(0x21 + 0x1F * 7)
    assert not is_reserved_frame_type(0x22)
    assert not is_reserved_frame_type(0x4)
