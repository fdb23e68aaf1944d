"""Frame types, their limits and RFC 9000 §12.4 Table 3 (which packet types may carry each frame).

The table is written once, here: :data:`FRAME_PACKET_TYPES` is a bitmask of ``1 << packet_type`` per
frame type, indexed by the frame type (a tuple, so no hashing on the hot path); the connection's
receive dispatch and the REALITY gate both read it through :func:`frame_allowed` or directly.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from ..errors import QuicConnectionError, QuicErrorCode
from ..packet import (
    CONNECTION_ID_MAX_SIZE,
    PACKET_TYPE_HANDSHAKE,
    PACKET_TYPE_INITIAL,
    PACKET_TYPE_ONE_RTT,
    PACKET_TYPE_ZERO_RTT,
    STATELESS_RESET_TOKEN_SIZE,
)

__all__ = [
    "CONNECTION_ID_MAX_SIZE",
    "FRAME_PACKET_TYPES",
    "MAX_STREAMS_LIMIT",
    "MAX_STREAM_OFFSET",
    "NON_ACK_ELICITING_FRAME_TYPES",
    "NOT_IN_FLIGHT_FRAME_TYPES",
    "PATH_CHALLENGE_DATA_SIZE",
    "PROBING_FRAME_TYPES",
    "STATELESS_RESET_TOKEN_SIZE",
    "STREAM_FLAG_FIN",
    "STREAM_FLAG_LEN",
    "STREAM_FLAG_OFF",
    "FrameType",
    "frame_allowed",
    "frame_encoding_error",
]


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
STREAM_FLAG_FIN: Final = 0x01
STREAM_FLAG_LEN: Final = 0x02
STREAM_FLAG_OFF: Final = 0x04
#: Largest stream offset + length (RFC 9000 §19.8) and CRYPTO offset + length (§19.6).
MAX_STREAM_OFFSET: Final = (1 << 62) - 1
#: Largest MAX_STREAMS / STREAMS_BLOCKED value (RFC 9000 §19.11, §19.14).
MAX_STREAMS_LIMIT: Final = 1 << 60
#: PATH_CHALLENGE / PATH_RESPONSE data length (RFC 9000 §19.17).
PATH_CHALLENGE_DATA_SIZE: Final = 8

_I: Final = 1 << PACKET_TYPE_INITIAL
_H: Final = 1 << PACKET_TYPE_HANDSHAKE
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
NON_ACK_ELICITING_FRAME_TYPES: Final = frozenset({0x00, 0x02, 0x03, 0x1C, 0x1D})
#: Frames not counted in bytes in flight (RFC 9002 §2): ACK, CONNECTION_CLOSE.
NOT_IN_FLIGHT_FRAME_TYPES: Final = frozenset({0x02, 0x03, 0x1C, 0x1D})
#: Probing frames (RFC 9000 §9.1).
PROBING_FRAME_TYPES: Final = frozenset({0x00, 0x18, 0x1A, 0x1B})


def frame_allowed(frame_type: int, packet_type: int) -> bool:
    """True when ``frame_type`` may appear in ``packet_type`` (RFC 9000 §12.4 Table 3).

    Unknown frame types are not allowed anywhere (RFC 9000 §12.4: FRAME_ENCODING_ERROR); a known frame in the
    wrong packet type is a PROTOCOL_VIOLATION (RFC 9000 §12.4).
    """
    return frame_type < len(FRAME_PACKET_TYPES) and bool(
        (FRAME_PACKET_TYPES[frame_type] >> packet_type) & 1
    )


def frame_encoding_error(frame_type: int, reason: str) -> QuicConnectionError:
    """A FRAME_ENCODING_ERROR for ``frame_type`` (what every ``pull_*`` raises)."""
    return QuicConnectionError(QuicErrorCode.FRAME_ENCODING_ERROR, frame_type, reason)
