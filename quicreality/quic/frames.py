"""QUIC frames (RFC 9000 §12.4, §19) and DATAGRAM (RFC 9221 §4).

Two layers:

* one frozen dataclass per frame with :func:`pull_frame` / :func:`push_frame` (reads/writes the type too), used by
  tests, logging and rarely sent frames;
* allocation-light fast paths for the frames seen in every packet, called by the connection after it has read
  the frame type itself: :func:`pull_ack_frame`, :func:`push_ack_frame`, :func:`pull_stream_frame`,
  :func:`pull_crypto_frame`, :func:`push_stream_frame_header`, :func:`stream_frame_header_size`.

Every ``pull_*`` raises ``QuicConnectionError(FRAME_ENCODING_ERROR, frame_type, reason)`` for a truncated or
invalid frame (RFC 9000 §12.4, §19). Every ``push_*`` writes a complete frame, type included.

:data:`FRAME_PACKET_TYPES` is RFC 9000 §12.4 Table 3: a bitmask of ``1 << packet_type`` per frame type, indexed
by the frame type (a tuple, so no hashing on the hot path).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TypeAlias

from ..wire.buffer import Buffer, BufferReadError, size_uint_var
from ..wire.rangeset import RangeSet
from .errors import QuicConnectionError, QuicErrorCode
from .packet import (
    PACKET_TYPE_HANDSHAKE,
    PACKET_TYPE_INITIAL,
    PACKET_TYPE_ONE_RTT,
    PACKET_TYPE_ZERO_RTT,
)


class FrameType(IntEnum):
    """Frame types (RFC 9000 §19, §12.4 Table 3; DATAGRAM RFC 9221 §4)."""

    PADDING = 0x00
    PING = 0x01
    ACK = 0x02
    ACK_ECN = 0x03
    RESET_STREAM = 0x04
    STOP_SENDING = 0x05
    CRYPTO = 0x06
    NEW_TOKEN = 0x07
    STREAM_BASE = 0x08  # 0x08-0x0f: OFF 0x04, LEN 0x02, FIN 0x01 (RFC 9000 §19.8)
    MAX_DATA = 0x10
    MAX_STREAM_DATA = 0x11
    MAX_STREAMS_BIDI = 0x12
    MAX_STREAMS_UNI = 0x13
    DATA_BLOCKED = 0x14
    STREAM_DATA_BLOCKED = 0x15
    STREAMS_BLOCKED_BIDI = 0x16
    STREAMS_BLOCKED_UNI = 0x17
    NEW_CONNECTION_ID = 0x18
    RETIRE_CONNECTION_ID = 0x19
    PATH_CHALLENGE = 0x1A
    PATH_RESPONSE = 0x1B
    TRANSPORT_CLOSE = 0x1C
    APPLICATION_CLOSE = 0x1D
    HANDSHAKE_DONE = 0x1E
    DATAGRAM = 0x30
    DATAGRAM_WITH_LENGTH = 0x31


#: STREAM frame type bits (RFC 9000 §19.8).
STREAM_FLAG_FIN = 0x01
STREAM_FLAG_LEN = 0x02
STREAM_FLAG_OFF = 0x04
#: Largest stream offset + length (RFC 9000 §19.8) and CRYPTO offset + length (§19.6).
MAX_STREAM_OFFSET = (1 << 62) - 1
#: Largest MAX_STREAMS / STREAMS_BLOCKED value (RFC 9000 §19.11, §19.14).
MAX_STREAMS_LIMIT = 1 << 60
#: PATH_CHALLENGE / PATH_RESPONSE data length (RFC 9000 §19.17).
PATH_CHALLENGE_DATA_SIZE = 8
#: Stateless reset token length in NEW_CONNECTION_ID (RFC 9000 §19.15).
STATELESS_RESET_TOKEN_SIZE = 16
#: Connection ID length bounds in NEW_CONNECTION_ID (RFC 9000 §19.15).
CONNECTION_ID_MAX_SIZE = 20

_I = 1 << PACKET_TYPE_INITIAL
_H = 1 << PACKET_TYPE_HANDSHAKE
_0 = 1 << PACKET_TYPE_ZERO_RTT
_1 = 1 << PACKET_TYPE_ONE_RTT


def _build_packet_type_table() -> tuple[int, ...]:
    """RFC 9000 §12.4 Table 3 (and RFC 9221 §4 for DATAGRAM) as ``1 << packet_type`` bitmasks."""
    table = [0] * (FrameType.DATAGRAM_WITH_LENGTH + 1)
    allowed: dict[int, int] = {
        FrameType.PADDING: _I | _H | _0 | _1,
        FrameType.PING: _I | _H | _0 | _1,
        FrameType.ACK: _I | _H | _1,
        FrameType.ACK_ECN: _I | _H | _1,
        FrameType.RESET_STREAM: _0 | _1,
        FrameType.STOP_SENDING: _0 | _1,
        FrameType.CRYPTO: _I | _H | _1,
        FrameType.NEW_TOKEN: _1,
        FrameType.MAX_DATA: _0 | _1,
        FrameType.MAX_STREAM_DATA: _0 | _1,
        FrameType.MAX_STREAMS_BIDI: _0 | _1,
        FrameType.MAX_STREAMS_UNI: _0 | _1,
        FrameType.DATA_BLOCKED: _0 | _1,
        FrameType.STREAM_DATA_BLOCKED: _0 | _1,
        FrameType.STREAMS_BLOCKED_BIDI: _0 | _1,
        FrameType.STREAMS_BLOCKED_UNI: _0 | _1,
        FrameType.NEW_CONNECTION_ID: _0 | _1,
        FrameType.RETIRE_CONNECTION_ID: _1,
        FrameType.PATH_CHALLENGE: _0 | _1,
        FrameType.PATH_RESPONSE: _1,
        FrameType.TRANSPORT_CLOSE: _I | _H | _0 | _1,
        FrameType.APPLICATION_CLOSE: _0 | _1,
        FrameType.HANDSHAKE_DONE: _1,
        FrameType.DATAGRAM: _0 | _1,
        FrameType.DATAGRAM_WITH_LENGTH: _0 | _1,
    }
    for frame_type, mask in allowed.items():
        table[frame_type] = mask
    for frame_type in range(0x08, 0x10):
        table[frame_type] = _0 | _1
    return tuple(table)


#: Allowed packet types per frame type (RFC 9000 §12.4 Table 3), indexed by frame type.
FRAME_PACKET_TYPES: tuple[int, ...] = _build_packet_type_table()

#: Frames that are not ack-eliciting (RFC 9000 §13.2.1): PADDING, ACK, CONNECTION_CLOSE.
NON_ACK_ELICITING_FRAME_TYPES = frozenset({0x00, 0x02, 0x03, 0x1C, 0x1D})
#: Frames not counted in bytes in flight (RFC 9002 §2): ACK, CONNECTION_CLOSE.
NOT_IN_FLIGHT_FRAME_TYPES = frozenset({0x02, 0x03, 0x1C, 0x1D})
#: Probing frames (RFC 9000 §9.1).
PROBING_FRAME_TYPES = frozenset({0x00, 0x18, 0x1A, 0x1B})


def frame_allowed(frame_type: int, packet_type: int) -> bool:
    """True when ``frame_type`` may appear in ``packet_type`` (RFC 9000 §12.4 Table 3).

    Unknown frame types are not allowed anywhere (RFC 9000 §12.4: FRAME_ENCODING_ERROR); a known frame in the
    wrong packet type is a PROTOCOL_VIOLATION (RFC 9000 §12.4).
    """
    return frame_type < len(FRAME_PACKET_TYPES) and bool(
        (FRAME_PACKET_TYPES[frame_type] >> packet_type) & 1
    )


def _encoding_error(frame_type: int, reason: str) -> QuicConnectionError:
    """A FRAME_ENCODING_ERROR for ``frame_type``."""
    return QuicConnectionError(QuicErrorCode.FRAME_ENCODING_ERROR, frame_type, reason)


# --- frame dataclasses ---------------------------------------------------------------------------------------------


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
    wire ("unknown"). The reason phrase is decoded as UTF-8 with replacement (RFC 9000 §19.19: SHOULD be UTF-8).
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


# --- fast paths ----------------------------------------------------------------------------------------------------


def pull_ack_frame(buf: Buffer, has_ecn: bool) -> tuple[RangeSet, int]:
    """Read the body of an ACK frame (type already read) (RFC 9000 §19.3).

    Args:
        has_ecn: True for ACK_ECN (0x03): the three ECN counts are read and discarded. To get them, pass
            False and call :func:`pull_ecn_counts` right after.

    Returns:
        ``(acknowledged packet numbers, encoded ack delay)``.

    Raises:
        QuicConnectionError: FRAME_ENCODING_ERROR if truncated or a range goes below zero (RFC 9000 §19.3.1).
    """
    frame_type = 0x03 if has_ecn else 0x02
    try:
        largest = buf.pull_uint_var()
        ack_delay = buf.pull_uint_var()
        range_count = buf.pull_uint_var()
        smallest = largest - buf.pull_uint_var()
        if smallest < 0:
            raise _encoding_error(frame_type, "first ACK range below zero")
        ranges = [range(smallest, largest + 1)]
        for _ in range(range_count):
            largest = smallest - buf.pull_uint_var() - 2
            smallest = largest - buf.pull_uint_var()
            if smallest < 0:
                raise _encoding_error(frame_type, "ACK range below zero")
            ranges.append(range(smallest, largest + 1))
        if has_ecn:
            buf.pull_uint_var()
            buf.pull_uint_var()
            buf.pull_uint_var()
    except BufferReadError:
        raise _encoding_error(frame_type, "truncated ACK frame") from None
    rangeset = RangeSet()
    for r in reversed(ranges):
        rangeset.add(r.start, r.stop)
    return rangeset, ack_delay


def pull_ecn_counts(buf: Buffer) -> tuple[int, int, int]:
    """Read the ECN Counts of an ACK_ECN frame: ``(ect0, ect1, ce)`` (RFC 9000 §19.3.2)."""
    try:
        return buf.pull_uint_var(), buf.pull_uint_var(), buf.pull_uint_var()
    except BufferReadError:
        raise _encoding_error(FrameType.ACK_ECN, "truncated ECN counts") from None


def push_ack_frame(
    buf: Buffer,
    rangeset: RangeSet,
    ack_delay_encoded: int,
    ecn_counts: tuple[int, int, int] | None = None,
    max_ranges: int | None = None,
) -> int:
    """Write a complete ACK (or ACK_ECN) frame, largest range first (RFC 9000 §19.3, §19.3.1).

    When the buffer cannot hold every range (or more than ``max_ranges`` are given), the oldest (lowest)
    ranges are left out: they were acknowledged before or will be again (RFC 9000 §13.2.4).

    Returns:
        the number of ranges written (0 when not even the first range fits; nothing is written then).
    """
    n = len(rangeset)
    if n == 0:
        raise ValueError("cannot send an ACK frame without ranges")
    if max_ranges is not None and max_ranges < n:
        n = max_ranges
    top = rangeset[-1]
    largest = top.stop - 1
    first_range = largest - top.start
    ecn_size = 0
    if ecn_counts is not None:
        ecn_size = (
            size_uint_var(ecn_counts[0])
            + size_uint_var(ecn_counts[1])
            + size_uint_var(ecn_counts[2])
        )
    # Fixed part: type(1), Largest Acknowledged, ACK Delay, ACK Range Count (<= 2 bytes), First ACK Range.
    used = (
        1
        + size_uint_var(largest)
        + size_uint_var(ack_delay_encoded)
        + size_uint_var(first_range)
        + ecn_size
    )
    available = buf.remaining()
    count_size = size_uint_var(n - 1)
    if used + count_size > available:
        return 0
    used += count_size
    # Decide how many more ranges fit.
    written = 1
    smallest = top.start
    index = len(rangeset) - 2
    while written < n:
        r = rangeset[index]
        cost = size_uint_var(smallest - r.stop - 1) + size_uint_var(r.stop - 1 - r.start)
        if used + cost > available:
            break
        used += cost
        smallest = r.start
        written += 1
        index -= 1
    buf.push_uint8(0x03 if ecn_counts is not None else 0x02)
    buf.push_uint_var(largest)
    buf.push_uint_var(ack_delay_encoded)
    buf.push_uint_var(written - 1)
    buf.push_uint_var(first_range)
    smallest = top.start
    for index in range(len(rangeset) - 2, len(rangeset) - 1 - written, -1):
        r = rangeset[index]
        # Gap: packets between this range and the previous one, minus one (RFC 9000 §19.3.1).
        buf.push_uint_var(smallest - r.stop - 1)
        buf.push_uint_var(r.stop - 1 - r.start)
        smallest = r.start
    if ecn_counts is not None:
        buf.push_uint_var(ecn_counts[0])
        buf.push_uint_var(ecn_counts[1])
        buf.push_uint_var(ecn_counts[2])
    return written


def pull_stream_frame(buf: Buffer, frame_type: int) -> tuple[int, int, bytes, bool]:
    """Read the body of a STREAM frame 0x08-0x0f (type already read) (RFC 9000 §19.8).

    Without the LEN bit the data runs to the end of ``buf`` (the packet payload).

    Returns:
        ``(stream_id, offset, data, fin)``.

    Raises:
        QuicConnectionError: FRAME_ENCODING_ERROR if truncated or offset + length exceeds 2^62-1.
    """
    try:
        stream_id = buf.pull_uint_var()
        offset = buf.pull_uint_var() if frame_type & STREAM_FLAG_OFF else 0
        length = buf.pull_uint_var() if frame_type & STREAM_FLAG_LEN else buf.remaining()
        if offset + length > MAX_STREAM_OFFSET:
            raise _encoding_error(frame_type, "stream offset + length exceeds 2^62-1")
        data = buf.pull_bytes(length)
    except BufferReadError:
        raise _encoding_error(frame_type, "truncated STREAM frame") from None
    return stream_id, offset, data, bool(frame_type & STREAM_FLAG_FIN)


def pull_crypto_frame(buf: Buffer) -> tuple[int, bytes]:
    """Read the body of a CRYPTO frame (type already read): ``(offset, data)`` (RFC 9000 §19.6)."""
    try:
        offset = buf.pull_uint_var()
        length = buf.pull_uint_var()
        if offset + length > MAX_STREAM_OFFSET:
            raise _encoding_error(FrameType.CRYPTO, "crypto offset + length exceeds 2^62-1")
        return offset, buf.pull_bytes(length)
    except BufferReadError:
        raise _encoding_error(FrameType.CRYPTO, "truncated CRYPTO frame") from None


def stream_frame_header_size(stream_id: int, offset: int, length: int) -> int:
    """Bytes of a STREAM frame's type, Stream ID, Offset (omitted when 0) and Length fields (RFC 9000 §19.8)."""
    return (
        1
        + size_uint_var(stream_id)
        + (size_uint_var(offset) if offset else 0)
        + size_uint_var(length)
    )


def push_stream_frame_header(
    buf: Buffer, stream_id: int, offset: int, length: int, fin: bool, has_length: bool = True
) -> None:
    """Write a STREAM frame's type and fields up to the data (RFC 9000 §19.8); the caller writes the data."""
    frame_type = 0x08
    if offset:
        frame_type |= STREAM_FLAG_OFF
    if has_length:
        frame_type |= STREAM_FLAG_LEN
    if fin:
        frame_type |= STREAM_FLAG_FIN
    buf.push_uint8(frame_type)
    buf.push_uint_var(stream_id)
    if offset:
        buf.push_uint_var(offset)
    if has_length:
        buf.push_uint_var(length)


def crypto_frame_header_size(offset: int, length: int) -> int:
    """Bytes of a CRYPTO frame's type, Offset and Length fields (RFC 9000 §19.6)."""
    return 1 + size_uint_var(offset) + size_uint_var(length)


def push_crypto_frame_header(buf: Buffer, offset: int, length: int) -> None:
    """Write a CRYPTO frame's type, Offset and Length (RFC 9000 §19.6); the caller writes the data."""
    buf.push_uint8(FrameType.CRYPTO)
    buf.push_uint_var(offset)
    buf.push_uint_var(length)


# --- generic codec -------------------------------------------------------------------------------------------------


def pull_frame(buf: Buffer) -> Frame:
    """Read one frame, type included (RFC 9000 §12.4, §19).

    Raises:
        QuicConnectionError: FRAME_ENCODING_ERROR for unknown types, truncated or invalid frames.
    """
    try:
        frame_type = buf.pull_uint_var()
    except BufferReadError:
        raise _encoding_error(0, "truncated frame type") from None
    return pull_frame_body(buf, frame_type)


def pull_frame_body(buf: Buffer, frame_type: int) -> Frame:
    """Read the fields of a frame whose type was already read; see :func:`pull_frame`."""
    try:
        return _pull_body(buf, frame_type)
    except BufferReadError:
        raise _encoding_error(frame_type, "truncated frame") from None


def _pull_cid_frame(buf: Buffer) -> NewConnectionIdFrame:
    """NEW_CONNECTION_ID body with its RFC 9000 §19.15 checks."""
    ft = FrameType.NEW_CONNECTION_ID
    sequence_number = buf.pull_uint_var()
    retire_prior_to = buf.pull_uint_var()
    if retire_prior_to > sequence_number:
        raise _encoding_error(ft, "retire_prior_to greater than sequence number")
    length = buf.pull_uint8()
    if length < 1 or length > CONNECTION_ID_MAX_SIZE:
        raise _encoding_error(ft, "connection ID length must be 1 to 20")
    connection_id = buf.pull_bytes(length)
    return NewConnectionIdFrame(
        sequence_number, retire_prior_to, connection_id, buf.pull_bytes(STATELESS_RESET_TOKEN_SIZE)
    )


def _pull_body(buf: Buffer, frame_type: int) -> Frame:
    """Dispatch on the frame type; BufferReadError escapes to the caller."""
    if frame_type == FrameType.PADDING:
        # Consume the whole run of PADDING bytes at once.
        raw = buf.raw
        start = pos = buf.tell()
        end = buf.capacity
        while pos < end and raw[pos] == 0:
            pos += 1
        buf.seek(pos)
        return PaddingFrame(1 + pos - start)
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
            raise _encoding_error(frame_type, "empty NEW_TOKEN")
        return NewTokenFrame(token)
    if frame_type == FrameType.MAX_DATA:
        return MaxDataFrame(buf.pull_uint_var())
    if frame_type == FrameType.MAX_STREAM_DATA:
        return MaxStreamDataFrame(buf.pull_uint_var(), buf.pull_uint_var())
    if frame_type == FrameType.MAX_STREAMS_BIDI or frame_type == FrameType.MAX_STREAMS_UNI:
        maximum = buf.pull_uint_var()
        if maximum > MAX_STREAMS_LIMIT:
            raise _encoding_error(frame_type, "MAX_STREAMS above 2^60")
        return MaxStreamsFrame(frame_type == FrameType.MAX_STREAMS_BIDI, maximum)
    if frame_type == FrameType.DATA_BLOCKED:
        return DataBlockedFrame(buf.pull_uint_var())
    if frame_type == FrameType.STREAM_DATA_BLOCKED:
        return StreamDataBlockedFrame(buf.pull_uint_var(), buf.pull_uint_var())
    if frame_type == FrameType.STREAMS_BLOCKED_BIDI or frame_type == FrameType.STREAMS_BLOCKED_UNI:
        limit = buf.pull_uint_var()
        if limit > MAX_STREAMS_LIMIT:
            raise _encoding_error(frame_type, "STREAMS_BLOCKED above 2^60")
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
    if frame_type == FrameType.DATAGRAM:
        return DatagramFrame(buf.pull_bytes(buf.remaining()), has_length=False)
    if frame_type == FrameType.DATAGRAM_WITH_LENGTH:
        return DatagramFrame(buf.pull_bytes(buf.pull_uint_var()), has_length=True)
    raise _encoding_error(frame_type, "unknown frame type")


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
            buf.push_uint8(FrameType.PING)
        case AckFrame(ranges, ack_delay, ecn_counts):
            if push_ack_frame(buf, RangeSet(ranges), ack_delay, ecn_counts) != len(ranges):
                raise ValueError("ACK frame does not fit")
        case ResetStreamFrame(stream_id, error_code, final_size):
            buf.push_uint8(FrameType.RESET_STREAM)
            push(stream_id)
            push(error_code)
            push(final_size)
        case StopSendingFrame(stream_id, error_code):
            buf.push_uint8(FrameType.STOP_SENDING)
            push(stream_id)
            push(error_code)
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
            buf.push_uint8(FrameType.MAX_DATA)
            push(maximum)
        case MaxStreamDataFrame(stream_id, maximum):
            buf.push_uint8(FrameType.MAX_STREAM_DATA)
            push(stream_id)
            push(maximum)
        case MaxStreamsFrame(bidirectional, maximum):
            buf.push_uint8(
                FrameType.MAX_STREAMS_BIDI if bidirectional else FrameType.MAX_STREAMS_UNI
            )
            push(maximum)
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
            buf.push_uint8(FrameType.NEW_CONNECTION_ID)
            push(sequence_number)
            push(retire_prior_to)
            buf.push_uint8(len(connection_id))
            buf.push_bytes(connection_id)
            buf.push_bytes(token)
        case RetireConnectionIdFrame(sequence_number):
            buf.push_uint8(FrameType.RETIRE_CONNECTION_ID)
            push(sequence_number)
        case PathChallengeFrame(data) | PathResponseFrame(data):
            if len(data) != PATH_CHALLENGE_DATA_SIZE:
                raise ValueError("PATH_CHALLENGE/PATH_RESPONSE data must be 8 bytes")
            challenge = isinstance(frame, PathChallengeFrame)
            buf.push_uint8(FrameType.PATH_CHALLENGE if challenge else FrameType.PATH_RESPONSE)
            buf.push_bytes(data)
        case ConnectionCloseFrame(error_code, offending, reason_phrase, application):
            reason = reason_phrase.encode("utf-8")
            buf.push_uint8(
                FrameType.APPLICATION_CLOSE if application else FrameType.TRANSPORT_CLOSE
            )
            push(error_code)
            if not application:
                push(offending or 0)
            push(len(reason))
            buf.push_bytes(reason)
        case HandshakeDoneFrame():
            buf.push_uint8(FrameType.HANDSHAKE_DONE)
        case DatagramFrame(data, has_length):
            if has_length:
                buf.push_uint8(FrameType.DATAGRAM_WITH_LENGTH)
                push(len(data))
            else:
                buf.push_uint8(FrameType.DATAGRAM)
            buf.push_bytes(data)
        case _:
            raise TypeError(f"not a frame: {frame!r}")
