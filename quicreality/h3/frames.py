"""HTTP/3 frames, stream types, settings and error codes (RFC 9114, QPACK codes from RFC 9204).

Wire formats are frozen dataclasses with ``pull_frame(buf)`` / ``push_frame(buf, frame)``.
Every frame is ``type (varint) | length (varint) | payload`` (RFC 9114 §7.1). Peer violations
found while decoding raise :class:`H3ConnectionError` carrying the RFC 9114 §8.1 error code; the
connection turns it into a QUIC CONNECTION_CLOSE in one place.

The request-stream hot path does not use :func:`pull_frame` (it would copy DATA payloads into a
:class:`~quicreality.wire.buffer.Buffer`); it uses :func:`peek_uint_var` to read frame headers
in place and slices DATA payloads straight out of the received chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from quicreality.wire.buffer import Buffer, BufferReadError, encode_uint_var, size_uint_var


class FrameType(IntEnum):
    """HTTP/3 frame types (RFC 9114 §7.2, §11.2.1)."""

    DATA = 0x0
    HEADERS = 0x1
    CANCEL_PUSH = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    GOAWAY = 0x7
    MAX_PUSH_ID = 0xD


#: HTTP/2 frame types reserved in HTTP/3; receiving one is H3_FRAME_UNEXPECTED (RFC 9114 §7.2.8).
RESERVED_HTTP2_FRAME_TYPES = frozenset({0x2, 0x6, 0x8, 0x9})


class StreamType(IntEnum):
    """Unidirectional stream types (RFC 9114 §6.2, RFC 9204 §4.2)."""

    CONTROL = 0x00
    PUSH = 0x01
    QPACK_ENCODER = 0x02
    QPACK_DECODER = 0x03


class Setting(IntEnum):
    """SETTINGS identifiers (RFC 9114 §7.2.4.1, RFC 9204 §5, RFC 9220 §3, RFC 9297 §2.1.1)."""

    QPACK_MAX_TABLE_CAPACITY = 0x1
    MAX_FIELD_SECTION_SIZE = 0x6
    QPACK_BLOCKED_STREAMS = 0x7
    ENABLE_CONNECT_PROTOCOL = 0x8
    H3_DATAGRAM = 0x33


#: HTTP/2 settings reserved in HTTP/3; receiving one is H3_SETTINGS_ERROR (RFC 9114 §7.2.4.1, §11.2.2).
RESERVED_HTTP2_SETTINGS = frozenset({0x0, 0x2, 0x3, 0x4, 0x5})


class H3ErrorCode(IntEnum):
    """HTTP/3 error codes (RFC 9114 §8.1) and QPACK error codes (RFC 9204 §6)."""

    H3_NO_ERROR = 0x100
    H3_GENERAL_PROTOCOL_ERROR = 0x101
    H3_INTERNAL_ERROR = 0x102
    H3_STREAM_CREATION_ERROR = 0x103
    H3_CLOSED_CRITICAL_STREAM = 0x104
    H3_FRAME_UNEXPECTED = 0x105
    H3_FRAME_ERROR = 0x106
    H3_EXCESSIVE_LOAD = 0x107
    H3_ID_ERROR = 0x108
    H3_SETTINGS_ERROR = 0x109
    H3_MISSING_SETTINGS = 0x10A
    H3_REQUEST_REJECTED = 0x10B
    H3_REQUEST_CANCELLED = 0x10C
    H3_REQUEST_INCOMPLETE = 0x10D
    H3_MESSAGE_ERROR = 0x10E
    H3_CONNECT_ERROR = 0x10F
    H3_VERSION_FALLBACK = 0x110
    QPACK_DECOMPRESSION_FAILED = 0x200
    QPACK_ENCODER_STREAM_ERROR = 0x201
    QPACK_DECODER_STREAM_ERROR = 0x202


class H3ConnectionError(Exception):
    """The peer violated HTTP/3; the connection must close with ``error_code`` (RFC 9114 §8)."""

    def __init__(self, error_code: int, reason_phrase: str):
        super().__init__(f"{error_code:#x}: {reason_phrase}")
        self.error_code = error_code
        self.reason_phrase = reason_phrase


def is_reserved_frame_type(frame_type: int) -> bool:
    """True for the greasing frame types ``0x1f * N + 0x21`` (RFC 9114 §7.2.8)."""
    return frame_type >= 0x21 and (frame_type - 0x21) % 0x1F == 0


# --- frames -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataFrame:
    """DATA (RFC 9114 §7.2.1): a chunk of message content."""

    data: bytes


@dataclass(frozen=True, slots=True)
class HeadersFrame:
    """HEADERS (RFC 9114 §7.2.2): a QPACK-encoded field section."""

    block: bytes


@dataclass(frozen=True, slots=True)
class CancelPushFrame:
    """CANCEL_PUSH (RFC 9114 §7.2.3)."""

    push_id: int


@dataclass(frozen=True, slots=True)
class SettingsFrame:
    """SETTINGS (RFC 9114 §7.2.4): ``(identifier, value)`` pairs in wire order."""

    settings: tuple[tuple[int, int], ...]

    def as_dict(self) -> dict[int, int]:
        """Return the settings as a dict (identifiers are unique once parsed)."""
        return dict(self.settings)


@dataclass(frozen=True, slots=True)
class PushPromiseFrame:
    """PUSH_PROMISE (RFC 9114 §7.2.5). We never enable push, so receiving one is an error."""

    push_id: int
    block: bytes


@dataclass(frozen=True, slots=True)
class GoawayFrame:
    """GOAWAY (RFC 9114 §7.2.6): a stream ID (from servers) or push ID (from clients)."""

    id: int


@dataclass(frozen=True, slots=True)
class MaxPushIdFrame:
    """MAX_PUSH_ID (RFC 9114 §7.2.7)."""

    push_id: int


@dataclass(frozen=True, slots=True)
class UnknownFrame:
    """A frame of an unknown or reserved type; its payload is ignored (RFC 9114 §9)."""

    frame_type: int
    payload: bytes


H3Frame = (
    DataFrame
    | HeadersFrame
    | CancelPushFrame
    | SettingsFrame
    | PushPromiseFrame
    | GoawayFrame
    | MaxPushIdFrame
    | UnknownFrame
)


# --- helpers ----------------------------------------------------------------------------------


def peek_uint_var(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int] | None:
    """Decode a varint (RFC 9000 §16) at ``data[pos]`` without copying.

    Returns:
        ``(value, next_pos)``, or ``None`` when ``data`` ends before the varint does.
    """
    end = len(data)
    if pos >= end:
        return None
    first = data[pos]
    size = 1 << (first >> 6)
    if pos + size > end:
        return None
    value = first & 0x3F
    for i in range(pos + 1, pos + size):
        value = (value << 8) | data[i]
    return value, pos + size


def frame_header(frame_type: int, length: int) -> bytes:
    """Encode the ``type | length`` prefix of a frame (RFC 9114 §7.1)."""
    return encode_uint_var(frame_type) + encode_uint_var(length)


def encode_frame(frame_type: int, payload: bytes) -> bytes:
    """Encode a whole frame from its type and payload."""
    return encode_uint_var(frame_type) + encode_uint_var(len(payload)) + payload


def _pull_varint_payload(frame_type: int, payload: bytes) -> int:
    """Parse a payload that must be exactly one varint (CANCEL_PUSH, GOAWAY, MAX_PUSH_ID)."""
    parsed = peek_uint_var(payload, 0)
    if parsed is None or parsed[1] != len(payload):
        raise H3ConnectionError(H3ErrorCode.H3_FRAME_ERROR, f"malformed frame {frame_type:#x}")
    return parsed[0]


def parse_settings(payload: bytes) -> SettingsFrame:
    """Parse a SETTINGS payload, rejecting duplicates and HTTP/2 settings (RFC 9114 §7.2.4)."""
    pos = 0
    seen: set[int] = set()
    pairs: list[tuple[int, int]] = []
    while pos < len(payload):
        ident = peek_uint_var(payload, pos)
        if ident is None:
            raise H3ConnectionError(H3ErrorCode.H3_FRAME_ERROR, "truncated SETTINGS")
        value = peek_uint_var(payload, ident[1])
        if value is None:
            raise H3ConnectionError(H3ErrorCode.H3_FRAME_ERROR, "truncated SETTINGS")
        pos = value[1]
        setting_id = ident[0]
        if setting_id in seen:
            raise H3ConnectionError(
                H3ErrorCode.H3_SETTINGS_ERROR, f"duplicate setting {setting_id:#x}"
            )
        if setting_id in RESERVED_HTTP2_SETTINGS:
            raise H3ConnectionError(
                H3ErrorCode.H3_SETTINGS_ERROR, f"HTTP/2 setting {setting_id:#x}"
            )
        seen.add(setting_id)
        pairs.append((setting_id, value[0]))
    return SettingsFrame(tuple(pairs))


def parse_frame_payload(frame_type: int, payload: bytes) -> H3Frame:
    """Build a frame from its type and complete payload.

    Raises:
        H3ConnectionError: H3_FRAME_ERROR for a malformed payload, H3_SETTINGS_ERROR for bad settings.
    """
    if frame_type == FrameType.DATA:
        return DataFrame(payload)
    if frame_type == FrameType.HEADERS:
        return HeadersFrame(payload)
    if frame_type == FrameType.SETTINGS:
        return parse_settings(payload)
    if frame_type == FrameType.GOAWAY:
        return GoawayFrame(_pull_varint_payload(frame_type, payload))
    if frame_type == FrameType.CANCEL_PUSH:
        return CancelPushFrame(_pull_varint_payload(frame_type, payload))
    if frame_type == FrameType.MAX_PUSH_ID:
        return MaxPushIdFrame(_pull_varint_payload(frame_type, payload))
    if frame_type == FrameType.PUSH_PROMISE:
        parsed = peek_uint_var(payload, 0)
        if parsed is None:
            raise H3ConnectionError(H3ErrorCode.H3_FRAME_ERROR, "malformed PUSH_PROMISE")
        return PushPromiseFrame(parsed[0], payload[parsed[1] :])
    return UnknownFrame(frame_type, payload)


def _frame_type_and_payload(frame: H3Frame) -> tuple[int, bytes]:
    """Return the wire type and payload of ``frame``."""
    match frame:
        case DataFrame(data):
            return FrameType.DATA, data
        case HeadersFrame(block):
            return FrameType.HEADERS, block
        case SettingsFrame(settings):
            return FrameType.SETTINGS, b"".join(
                encode_uint_var(k) + encode_uint_var(v) for k, v in settings
            )
        case GoawayFrame(ident):
            return FrameType.GOAWAY, encode_uint_var(ident)
        case CancelPushFrame(push_id):
            return FrameType.CANCEL_PUSH, encode_uint_var(push_id)
        case MaxPushIdFrame(push_id):
            return FrameType.MAX_PUSH_ID, encode_uint_var(push_id)
        case PushPromiseFrame(push_id, block):
            return FrameType.PUSH_PROMISE, encode_uint_var(push_id) + block
        case UnknownFrame(frame_type, payload):
            return frame_type, payload
    raise TypeError(f"not an H3 frame: {frame!r}")


def encode_h3_frame(frame: H3Frame) -> bytes:
    """Serialise ``frame`` to bytes."""
    frame_type, payload = _frame_type_and_payload(frame)
    return encode_frame(frame_type, payload)


def frame_size(frame: H3Frame) -> int:
    """Encoded size of ``frame`` in bytes."""
    frame_type, payload = _frame_type_and_payload(frame)
    return size_uint_var(frame_type) + size_uint_var(len(payload)) + len(payload)


def push_frame(buf: Buffer, frame: H3Frame) -> None:
    """Write ``frame`` (type, length, payload) into ``buf``."""
    frame_type, payload = _frame_type_and_payload(frame)
    buf.push_uint_var(frame_type)
    buf.push_uint_var(len(payload))
    buf.push_bytes(payload)


def pull_frame(buf: Buffer) -> H3Frame:
    """Read one whole frame from ``buf``.

    Raises:
        BufferReadError: the buffer ends inside the frame.
        H3ConnectionError: the payload is malformed.
    """
    frame_type = buf.pull_uint_var()
    length = buf.pull_uint_var()
    if length > buf.remaining():
        raise BufferReadError("Read out of bounds")
    return parse_frame_payload(frame_type, buf.pull_bytes(length))
