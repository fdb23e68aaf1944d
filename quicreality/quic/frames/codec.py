"""One frozen dataclass per frame, with :func:`pull_frame` / :func:`push_frame` (type included).

Used by tests, qlog, the REALITY gate and for rarely seen frames; the bodies are read and written
with the same field order and checks as the fast paths of :mod:`.fast`, which they call for ACK,
STREAM, CRYPTO and PADDING.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from ...wire.buffer import Buffer, BufferReadError
from ...wire.rangeset import RangeSet
from .fast import (
    pull_ack_frame,
    pull_crypto_frame,
    pull_datagram_frame,
    pull_ecn_counts,
    pull_stream_frame,
    push_ack_frame,
    push_connection_close_frame,
    push_crypto_frame_header,
    push_datagram_frame,
    push_handshake_done_frame,
    push_max_data_frame,
    push_max_stream_data_frame,
    push_max_streams_frame,
    push_new_connection_id_frame,
    push_ping_frame,
    push_reset_stream_frame,
    push_retire_connection_id_frame,
    push_stop_sending_frame,
    push_stream_frame_header,
    skip_padding,
)
from .types import (
    CONNECTION_ID_MAX_SIZE,
    MAX_STREAM_OFFSET,
    MAX_STREAMS_LIMIT,
    PATH_CHALLENGE_DATA_SIZE,
    STATELESS_RESET_TOKEN_SIZE,
    STREAM_FLAG_LEN,
    FrameType,
    frame_encoding_error,
)


@dataclass(frozen=True, slots=True)
class PaddingFrame:
    """A run of PADDING frames (RFC 9000 §19.1), ``length`` bytes long."""

    length: int = 1


@dataclass(frozen=True, slots=True)
class PingFrame:
    """PING (RFC 9000 §19.2)."""


@dataclass(frozen=True, slots=True)
class AckFrame:
    """ACK / ACK_ECN (RFC 9000 §19.3).

    Attributes:
        ranges: acknowledged packet numbers, ascending ``range`` objects.
        ack_delay: the encoded ACK Delay (scaled by the peer's ack_delay_exponent, RFC 9000 §19.3).
        ecn_counts: ``(ect0, ect1, ce)`` for ACK_ECN, else ``None`` (RFC 9000 §19.3.2).
    """

    ranges: tuple[range, ...]
    ack_delay: int
    ecn_counts: tuple[int, int, int] | None = None


@dataclass(frozen=True, slots=True)
class ResetStreamFrame:
    """RESET_STREAM (RFC 9000 §19.4)."""

    stream_id: int
    error_code: int
    final_size: int


@dataclass(frozen=True, slots=True)
class StopSendingFrame:
    """STOP_SENDING (RFC 9000 §19.5)."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class CryptoFrame:
    """CRYPTO (RFC 9000 §19.6)."""

    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class NewTokenFrame:
    """NEW_TOKEN (RFC 9000 §19.7); the token is non-empty."""

    token: bytes


@dataclass(frozen=True, slots=True)
class StreamFrame:
    """STREAM (RFC 9000 §19.8). ``has_length=False`` omits the Length field (data runs to the packet end)."""

    stream_id: int
    offset: int
    data: bytes
    fin: bool = False
    has_length: bool = True


@dataclass(frozen=True, slots=True)
class MaxDataFrame:
    """MAX_DATA (RFC 9000 §19.9)."""

    maximum: int


@dataclass(frozen=True, slots=True)
class MaxStreamDataFrame:
    """MAX_STREAM_DATA (RFC 9000 §19.10)."""

    stream_id: int
    maximum: int


@dataclass(frozen=True, slots=True)
class MaxStreamsFrame:
    """MAX_STREAMS bidirectional (0x12) or unidirectional (0x13) (RFC 9000 §19.11)."""

    bidirectional: bool
    maximum: int


@dataclass(frozen=True, slots=True)
class DataBlockedFrame:
    """DATA_BLOCKED (RFC 9000 §19.12)."""

    limit: int


@dataclass(frozen=True, slots=True)
class StreamDataBlockedFrame:
    """STREAM_DATA_BLOCKED (RFC 9000 §19.13)."""

    stream_id: int
    limit: int


@dataclass(frozen=True, slots=True)
class StreamsBlockedFrame:
    """STREAMS_BLOCKED bidirectional (0x16) or unidirectional (0x17) (RFC 9000 §19.14)."""

    bidirectional: bool
    limit: int


@dataclass(frozen=True, slots=True)
class NewConnectionIdFrame:
    """NEW_CONNECTION_ID (RFC 9000 §19.15)."""

    sequence_number: int
    retire_prior_to: int
    connection_id: bytes
    stateless_reset_token: bytes


@dataclass(frozen=True, slots=True)
class RetireConnectionIdFrame:
    """RETIRE_CONNECTION_ID (RFC 9000 §19.16)."""

    sequence_number: int


@dataclass(frozen=True, slots=True)
class PathChallengeFrame:
    """PATH_CHALLENGE (RFC 9000 §19.17); 8 bytes of data."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PathResponseFrame:
    """PATH_RESPONSE (RFC 9000 §19.18); 8 bytes of data."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionCloseFrame:
    """CONNECTION_CLOSE (RFC 9000 §19.19): transport (0x1c, with ``frame_type``) or application (0x1d).

    ``frame_type`` is ``None`` for application closes (0x1d); for transport closes it defaults to 0 on the
    wire ("unknown"). The reason phrase is decoded as UTF-8 with replacement
    (RFC 9000 §19.19: SHOULD be UTF-8).
    """

    error_code: int
    frame_type: int | None
    reason_phrase: str = ""
    application: bool = False


@dataclass(frozen=True, slots=True)
class HandshakeDoneFrame:
    """HANDSHAKE_DONE (RFC 9000 §19.20)."""


@dataclass(frozen=True, slots=True)
class DatagramFrame:
    """DATAGRAM (RFC 9221 §4): 0x31 carries a Length, 0x30 runs to the end of the packet."""

    data: bytes
    has_length: bool = True


Frame: TypeAlias = (
    PaddingFrame
    | PingFrame
    | AckFrame
    | ResetStreamFrame
    | StopSendingFrame
    | CryptoFrame
    | NewTokenFrame
    | StreamFrame
    | MaxDataFrame
    | MaxStreamDataFrame
    | MaxStreamsFrame
    | DataBlockedFrame
    | StreamDataBlockedFrame
    | StreamsBlockedFrame
    | NewConnectionIdFrame
    | RetireConnectionIdFrame
    | PathChallengeFrame
    | PathResponseFrame
    | ConnectionCloseFrame
    | HandshakeDoneFrame
    | DatagramFrame
)



def pull_frame(buf: Buffer) -> Frame:
    """Read one frame, type included (RFC 9000 §12.4, §19).

    Raises:
        QuicConnectionError: FRAME_ENCODING_ERROR for unknown types, truncated or invalid frames.
    """
    try:
        frame_type = buf.pull_uint_var()
    except BufferReadError:
        raise frame_encoding_error(0, "truncated frame type") from None
    return pull_frame_body(buf, frame_type)


def pull_frame_body(buf: Buffer, frame_type: int) -> Frame:
    """Read the fields of a frame whose type was already read; see :func:`pull_frame`."""
    try:
        return _pull_body(buf, frame_type)
    except BufferReadError:
        raise frame_encoding_error(frame_type, "truncated frame") from None


def _pull_cid_frame(buf: Buffer) -> NewConnectionIdFrame:
    """NEW_CONNECTION_ID body with its RFC 9000 §19.15 checks."""
    ft = FrameType.NEW_CONNECTION_ID
    sequence_number = buf.pull_uint_var()
    retire_prior_to = buf.pull_uint_var()
    if retire_prior_to > sequence_number:
        raise frame_encoding_error(ft, "retire_prior_to greater than sequence number")
    length = buf.pull_uint8()
    if length < 1 or length > CONNECTION_ID_MAX_SIZE:
        raise frame_encoding_error(ft, "connection ID length must be 1 to 20")
    connection_id = buf.pull_bytes(length)
    return NewConnectionIdFrame(
        sequence_number, retire_prior_to, connection_id, buf.pull_bytes(STATELESS_RESET_TOKEN_SIZE)
    )


def _pull_body(buf: Buffer, frame_type: int) -> Frame:
    """Dispatch on the frame type; BufferReadError escapes to the caller."""
    if frame_type == FrameType.PADDING:
        return PaddingFrame(1 + skip_padding(buf))
    if frame_type == FrameType.PING:
        return PingFrame()
    if frame_type == FrameType.ACK or frame_type == FrameType.ACK_ECN:
        has_ecn = frame_type == FrameType.ACK_ECN
        rangeset, ack_delay = pull_ack_frame(buf, False)
        ecn = pull_ecn_counts(buf) if has_ecn else None
        return AckFrame(tuple(rangeset), ack_delay, ecn)
    if 0x08 <= frame_type <= 0x0F:
        stream_id, offset, data, fin = pull_stream_frame(buf, frame_type)
        return StreamFrame(stream_id, offset, data, fin, bool(frame_type & STREAM_FLAG_LEN))
    if frame_type == FrameType.CRYPTO:
        return CryptoFrame(*pull_crypto_frame(buf))
    if frame_type == FrameType.RESET_STREAM:
        return ResetStreamFrame(buf.pull_uint_var(), buf.pull_uint_var(), buf.pull_uint_var())
    if frame_type == FrameType.STOP_SENDING:
        return StopSendingFrame(buf.pull_uint_var(), buf.pull_uint_var())
    if frame_type == FrameType.NEW_TOKEN:
        token = buf.pull_bytes(buf.pull_uint_var())
        if not token:
            raise frame_encoding_error(frame_type, "empty NEW_TOKEN")
        return NewTokenFrame(token)
    if frame_type == FrameType.MAX_DATA:
        return MaxDataFrame(buf.pull_uint_var())
    if frame_type == FrameType.MAX_STREAM_DATA:
        return MaxStreamDataFrame(buf.pull_uint_var(), buf.pull_uint_var())
    if frame_type == FrameType.MAX_STREAMS_BIDI or frame_type == FrameType.MAX_STREAMS_UNI:
        maximum = buf.pull_uint_var()
        if maximum > MAX_STREAMS_LIMIT:
            raise frame_encoding_error(frame_type, "MAX_STREAMS above 2^60")
        return MaxStreamsFrame(frame_type == FrameType.MAX_STREAMS_BIDI, maximum)
    if frame_type == FrameType.DATA_BLOCKED:
        return DataBlockedFrame(buf.pull_uint_var())
    if frame_type == FrameType.STREAM_DATA_BLOCKED:
        return StreamDataBlockedFrame(buf.pull_uint_var(), buf.pull_uint_var())
    if frame_type == FrameType.STREAMS_BLOCKED_BIDI or frame_type == FrameType.STREAMS_BLOCKED_UNI:
        limit = buf.pull_uint_var()
        if limit > MAX_STREAMS_LIMIT:
            raise frame_encoding_error(frame_type, "STREAMS_BLOCKED above 2^60")
        return StreamsBlockedFrame(frame_type == FrameType.STREAMS_BLOCKED_BIDI, limit)
    if frame_type == FrameType.NEW_CONNECTION_ID:
        return _pull_cid_frame(buf)
    if frame_type == FrameType.RETIRE_CONNECTION_ID:
        return RetireConnectionIdFrame(buf.pull_uint_var())
    if frame_type == FrameType.PATH_CHALLENGE:
        return PathChallengeFrame(buf.pull_bytes(PATH_CHALLENGE_DATA_SIZE))
    if frame_type == FrameType.PATH_RESPONSE:
        return PathResponseFrame(buf.pull_bytes(PATH_CHALLENGE_DATA_SIZE))
    if frame_type == FrameType.TRANSPORT_CLOSE or frame_type == FrameType.APPLICATION_CLOSE:
        application = frame_type == FrameType.APPLICATION_CLOSE
        error_code = buf.pull_uint_var()
        offending = None if application else buf.pull_uint_var()
        reason = buf.pull_bytes(buf.pull_uint_var()).decode("utf-8", errors="replace")
        return ConnectionCloseFrame(error_code, offending, reason, application)
    if frame_type == FrameType.HANDSHAKE_DONE:
        return HandshakeDoneFrame()
    if frame_type == FrameType.DATAGRAM or frame_type == FrameType.DATAGRAM_WITH_LENGTH:
        return DatagramFrame(pull_datagram_frame(buf, frame_type),
                             has_length=frame_type == FrameType.DATAGRAM_WITH_LENGTH)
    raise frame_encoding_error(frame_type, "unknown frame type")


def push_frame(buf: Buffer, frame: Frame) -> None:
    """Write one complete frame, type included (RFC 9000 §19).

    Raises:
        ValueError: the frame is not encodable (e.g. PATH_CHALLENGE data not 8 bytes, empty NEW_TOKEN, a
            connection ID of length 0 or > 20, offsets past 2^62-1).
        BufferWriteError: the buffer is full.
    """
    push = buf.push_uint_var
    match frame:
        case PaddingFrame(length):
            buf.push_bytes(bytes(length))
        case PingFrame():
            push_ping_frame(buf)
        case AckFrame(ranges, ack_delay, ecn_counts):
            if push_ack_frame(buf, RangeSet(ranges), ack_delay, ecn_counts) != len(ranges):
                raise ValueError("ACK frame does not fit")
        case ResetStreamFrame(stream_id, error_code, final_size):
            push_reset_stream_frame(buf, stream_id, error_code, final_size)
        case StopSendingFrame(stream_id, error_code):
            push_stop_sending_frame(buf, stream_id, error_code)
        case CryptoFrame(offset, data):
            if offset + len(data) > MAX_STREAM_OFFSET:
                raise ValueError("crypto offset + length exceeds 2^62-1")
            push_crypto_frame_header(buf, offset, len(data))
            buf.push_bytes(data)
        case NewTokenFrame(token):
            if not token:
                raise ValueError("NEW_TOKEN must carry a token")
            buf.push_uint8(FrameType.NEW_TOKEN)
            push(len(token))
            buf.push_bytes(token)
        case StreamFrame(stream_id, offset, data, fin, has_length):
            if offset + len(data) > MAX_STREAM_OFFSET:
                raise ValueError("stream offset + length exceeds 2^62-1")
            push_stream_frame_header(buf, stream_id, offset, len(data), fin, has_length)
            buf.push_bytes(data)
        case MaxDataFrame(maximum):
            push_max_data_frame(buf, maximum)
        case MaxStreamDataFrame(stream_id, maximum):
            push_max_stream_data_frame(buf, stream_id, maximum)
        case MaxStreamsFrame(bidirectional, maximum):
            push_max_streams_frame(buf, not bidirectional, maximum)
        case DataBlockedFrame(limit):
            buf.push_uint8(FrameType.DATA_BLOCKED)
            push(limit)
        case StreamDataBlockedFrame(stream_id, limit):
            buf.push_uint8(FrameType.STREAM_DATA_BLOCKED)
            push(stream_id)
            push(limit)
        case StreamsBlockedFrame(bidirectional, limit):
            buf.push_uint8(
                FrameType.STREAMS_BLOCKED_BIDI if bidirectional else FrameType.STREAMS_BLOCKED_UNI
            )
            push(limit)
        case NewConnectionIdFrame(sequence_number, retire_prior_to, connection_id, token):
            if not 1 <= len(connection_id) <= CONNECTION_ID_MAX_SIZE:
                raise ValueError("connection ID length must be 1 to 20")
            if len(token) != STATELESS_RESET_TOKEN_SIZE or retire_prior_to > sequence_number:
                raise ValueError("invalid NEW_CONNECTION_ID")
            push_new_connection_id_frame(buf, sequence_number, retire_prior_to, connection_id, token)
        case RetireConnectionIdFrame(sequence_number):
            push_retire_connection_id_frame(buf, sequence_number)
        case PathChallengeFrame(data) | PathResponseFrame(data):
            if len(data) != PATH_CHALLENGE_DATA_SIZE:
                raise ValueError("PATH_CHALLENGE/PATH_RESPONSE data must be 8 bytes")
            challenge = isinstance(frame, PathChallengeFrame)
            buf.push_uint8(FrameType.PATH_CHALLENGE if challenge else FrameType.PATH_RESPONSE)
            buf.push_bytes(data)
        case ConnectionCloseFrame(error_code, offending, reason_phrase, application):
            push_connection_close_frame(buf, error_code, offending, reason_phrase.encode("utf-8"),
                                        application)
        case HandshakeDoneFrame():
            push_handshake_done_frame(buf)
        case DatagramFrame(data, has_length):
            push_datagram_frame(buf, data, has_length)
        case _:
            raise TypeError(f"not a frame: {frame!r}")
