"""Allocation-light codecs for the frames of every packet, used by both directions of the connection.

The connection reads the frame type itself, then calls the ``pull_*`` body readers here; the send
path writes with the ``push_*`` writers. Every ``pull_*`` raises
``QuicConnectionError(FRAME_ENCODING_ERROR, frame_type, reason)`` for a truncated or invalid frame.
"""

from __future__ import annotations

from ...wire.buffer import Buffer, BufferReadError, size_uint_var
from ...wire.rangeset import RangeSet
from .types import (
    MAX_STREAM_OFFSET,
    STREAM_FLAG_FIN,
    STREAM_FLAG_LEN,
    STREAM_FLAG_OFF,
    FrameType,
    frame_encoding_error,
)


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
            raise frame_encoding_error(frame_type, "first ACK range below zero")
        ranges = [range(smallest, largest + 1)]
        for _ in range(range_count):
            largest = smallest - buf.pull_uint_var() - 2
            smallest = largest - buf.pull_uint_var()
            if smallest < 0:
                raise frame_encoding_error(frame_type, "ACK range below zero")
            ranges.append(range(smallest, largest + 1))
        if has_ecn:
            buf.pull_uint_var()
            buf.pull_uint_var()
            buf.pull_uint_var()
    except BufferReadError:
        raise frame_encoding_error(frame_type, "truncated ACK frame") from None
    rangeset = RangeSet()
    for r in reversed(ranges):
        rangeset.add(r.start, r.stop)
    return rangeset, ack_delay


def pull_ecn_counts(buf: Buffer) -> tuple[int, int, int]:
    """Read the ECN Counts of an ACK_ECN frame: ``(ect0, ect1, ce)`` (RFC 9000 §19.3.2)."""
    try:
        return buf.pull_uint_var(), buf.pull_uint_var(), buf.pull_uint_var()
    except BufferReadError:
        raise frame_encoding_error(FrameType.ACK_ECN, "truncated ECN counts") from None


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
            raise frame_encoding_error(frame_type, "stream offset + length exceeds 2^62-1")
        data = buf.pull_bytes(length)
    except BufferReadError:
        raise frame_encoding_error(frame_type, "truncated STREAM frame") from None
    return stream_id, offset, data, bool(frame_type & STREAM_FLAG_FIN)


def pull_crypto_frame(buf: Buffer) -> tuple[int, bytes]:
    """Read the body of a CRYPTO frame (type already read): ``(offset, data)`` (RFC 9000 §19.6)."""
    try:
        offset = buf.pull_uint_var()
        length = buf.pull_uint_var()
        if offset + length > MAX_STREAM_OFFSET:
            raise frame_encoding_error(FrameType.CRYPTO, "crypto offset + length exceeds 2^62-1")
        return offset, buf.pull_bytes(length)
    except BufferReadError:
        raise frame_encoding_error(FrameType.CRYPTO, "truncated CRYPTO frame") from None


def stream_frame_header_size(stream_id: int, offset: int, length: int) -> int:
    """Bytes of a STREAM frame's type, Stream ID, Offset (omitted when 0) and Length fields
    (RFC 9000 §19.8)."""
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


def skip_padding(buf: Buffer) -> int:
    """Skip the run of PADDING bytes after a PADDING frame type (RFC 9000 §19.1); returns its length."""
    start = buf.tell()
    raw = buf.view()
    end = buf.capacity
    if start >= end or raw[start]:
        return 0
    # One C scan instead of a Python loop per byte (an Initial carries ~1000 bytes of PADDING).
    pos = end - len(raw[start:end].lstrip(b"\x00"))
    buf.seek(pos)
    return pos - start


def pull_datagram_frame(buf: Buffer, frame_type: int) -> bytes:
    """Read the body of a DATAGRAM frame (type already read): its data (RFC 9221 §4)."""
    try:
        length = buf.pull_uint_var() if frame_type == FrameType.DATAGRAM_WITH_LENGTH else buf.remaining()
        return buf.pull_bytes(length)
    except BufferReadError:
        raise frame_encoding_error(frame_type, "truncated DATAGRAM frame") from None


def datagram_frame_size(length: int) -> int:
    """Bytes of a DATAGRAM frame with a Length field carrying ``length`` bytes (RFC 9221 §4)."""
    return 1 + size_uint_var(length) + length


def push_datagram_frame(buf: Buffer, data: bytes, has_length: bool = True) -> None:
    """Write a complete DATAGRAM frame, 0x31 with a Length or 0x30 to the packet end (RFC 9221 §4)."""
    if has_length:
        buf.push_uint8(FrameType.DATAGRAM_WITH_LENGTH)
        buf.push_uint_var(len(data))
    else:
        buf.push_uint8(FrameType.DATAGRAM)
    buf.push_bytes(data)


def push_ping_frame(buf: Buffer) -> None:
    """Write PING (RFC 9000 §19.2)."""
    buf.push_uint8(FrameType.PING)


def push_handshake_done_frame(buf: Buffer) -> None:
    """Write HANDSHAKE_DONE (RFC 9000 §19.20)."""
    buf.push_uint8(FrameType.HANDSHAKE_DONE)


def push_path_challenge_frame(buf: Buffer, data: bytes) -> None:
    """Write PATH_CHALLENGE with 8 bytes of unpredictable data (RFC 9000 §19.17)."""
    buf.push_uint8(FrameType.PATH_CHALLENGE)
    buf.push_bytes(data)


def push_path_response_frame(buf: Buffer, data: bytes) -> None:
    """Write PATH_RESPONSE echoing the 8 bytes of a PATH_CHALLENGE (RFC 9000 §19.18)."""
    buf.push_uint8(FrameType.PATH_RESPONSE)
    buf.push_bytes(data)


def push_max_data_frame(buf: Buffer, maximum: int) -> None:
    """Write MAX_DATA (RFC 9000 §19.9)."""
    buf.push_uint8(FrameType.MAX_DATA)
    buf.push_uint_var(maximum)


def push_max_streams_frame(buf: Buffer, unidirectional: bool, maximum: int) -> None:
    """Write MAX_STREAMS, 0x12 bidirectional or 0x13 unidirectional (RFC 9000 §19.11)."""
    buf.push_uint8(FrameType.MAX_STREAMS_UNI if unidirectional else FrameType.MAX_STREAMS_BIDI)
    buf.push_uint_var(maximum)


def push_max_stream_data_frame(buf: Buffer, stream_id: int, maximum: int) -> None:
    """Write MAX_STREAM_DATA (RFC 9000 §19.10)."""
    buf.push_uint8(FrameType.MAX_STREAM_DATA)
    buf.push_uint_var(stream_id)
    buf.push_uint_var(maximum)


def push_reset_stream_frame(buf: Buffer, stream_id: int, error_code: int, final_size: int) -> None:
    """Write RESET_STREAM (RFC 9000 §19.4)."""
    buf.push_uint8(FrameType.RESET_STREAM)
    buf.push_uint_var(stream_id)
    buf.push_uint_var(error_code)
    buf.push_uint_var(final_size)


def push_stop_sending_frame(buf: Buffer, stream_id: int, error_code: int) -> None:
    """Write STOP_SENDING (RFC 9000 §19.5)."""
    buf.push_uint8(FrameType.STOP_SENDING)
    buf.push_uint_var(stream_id)
    buf.push_uint_var(error_code)


def push_new_connection_id_frame(buf: Buffer, sequence_number: int, retire_prior_to: int,
                                 connection_id: bytes, stateless_reset_token: bytes) -> None:
    """Write NEW_CONNECTION_ID (RFC 9000 §19.15); the caller checks the field sizes."""
    buf.push_uint8(FrameType.NEW_CONNECTION_ID)
    buf.push_uint_var(sequence_number)
    buf.push_uint_var(retire_prior_to)
    buf.push_uint8(len(connection_id))
    buf.push_bytes(connection_id)
    buf.push_bytes(stateless_reset_token)


def push_retire_connection_id_frame(buf: Buffer, sequence_number: int) -> None:
    """Write RETIRE_CONNECTION_ID (RFC 9000 §19.16)."""
    buf.push_uint8(FrameType.RETIRE_CONNECTION_ID)
    buf.push_uint_var(sequence_number)


def push_connection_close_frame(buf: Buffer, error_code: int, frame_type: int | None,
                                reason: bytes, application: bool) -> None:
    """Write CONNECTION_CLOSE: 0x1d (application) or 0x1c with the offending frame type (RFC 9000 §19.19)."""
    buf.push_uint8(FrameType.APPLICATION_CLOSE if application else FrameType.TRANSPORT_CLOSE)
    buf.push_uint_var(error_code)
    if not application:
        buf.push_uint_var(frame_type or 0)
    buf.push_uint_var(len(reason))
    buf.push_bytes(reason)
