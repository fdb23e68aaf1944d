"""Per-stream receive state of :class:`~quicreality.h3.connection.H3Connection`, and the QUIC seam.

:class:`QuicTransport` is the slice of the QUIC connection API that HTTP/3 uses (the real
``QuicConnection`` and the tests' fake both satisfy it).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Protocol

from quicreality.h3.events import DataReceived, H3Event, HeadersReceived
from quicreality.h3.frames import (
    RESERVED_HTTP2_FRAME_TYPES,
    FrameType,
    H3ConnectionError,
    H3ErrorCode,
    StreamType,
)
from quicreality.wire.buffer import encode_uint_var


class QuicTransport(Protocol):
    """The part of :class:`~quicreality.quic.connection.QuicConnection` HTTP/3 uses."""

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        """Return the next stream ID we may open."""
        ...

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue ``data`` on a stream."""
        ...

    def stream_send_buffered(self, stream_id: int, *, unsent: bool = False) -> int:
        """Bytes queued on a stream but not yet acknowledged, or with ``unsent`` never sent."""
        ...

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """Abandon the send side of a stream (RESET_STREAM)."""
        ...

    def stop_stream(self, stream_id: int, error_code: int) -> None:
        """Ask the peer to stop sending on a stream (STOP_SENDING)."""
        ...

    def close(
        self, error_code: int = 0, frame_type: int | None = None, reason_phrase: str = ""
    ) -> None:
        """Close the connection (CONNECTION_CLOSE)."""
        ...


class StreamKind(IntEnum):
    """What a receiving stream carries."""

    REQUEST = 0
    UNI_UNKNOWN = 1  # unidirectional, stream type not read yet
    CONTROL = 2
    QPACK_ENCODER = 3
    QPACK_DECODER = 4
    DISCARD = 5  # unknown uni type, rejected request, or failed stream: input ignored


class MessageState(IntEnum):
    """Position in the HTTP message on a request stream (RFC 9114 §4.1)."""

    EXPECT_HEADERS = 0
    BODY = 1  # after the head: DATA or trailers
    TRAILERS_DONE = 2


#: Largest non-DATA frame we buffer (HEADERS, SETTINGS, ...); larger is H3_EXCESSIVE_LOAD.
MAX_BUFFERED_FRAME_SIZE = 1 << 20

NO_FRAME = -1
DATA_FRAME = 0  # FrameType.DATA as a plain int for the hot path
CRITICAL_KINDS = (StreamKind.CONTROL, StreamKind.QPACK_ENCODER, StreamKind.QPACK_DECODER)


class RecvStream:
    """Receive-side parsing state for one stream."""

    __slots__ = (
        "blocked",
        "ended",
        "frame_type",
        "kind",
        "msg",
        "parked",
        "parked_fin",
        "partial",
        "payload",
        "remaining",
        "settings_seen",
        "skip",
        "stream_id",
    )

    def __init__(self, stream_id: int, kind: StreamKind):
        self.stream_id = stream_id
        self.kind = kind
        self.msg = MessageState.EXPECT_HEADERS
        self.frame_type = NO_FRAME  # frame whose payload is being read
        self.remaining = 0  # payload bytes of that frame still to come
        self.skip = False  # payload of an unknown frame: drop it
        self.partial = b""  # incomplete varint prefix (stream type or frame header)
        self.payload = bytearray()  # collected payload of a non-DATA frame
        self.blocked = False  # a HEADERS frame waits for QPACK encoder-stream data
        self.parked = bytearray()  # bytes received while blocked
        self.parked_fin = False
        self.ended = False
        self.settings_seen = False  # control stream only


def open_uni_stream(quic: QuicTransport, stream_type: StreamType) -> int:
    """Open a unidirectional stream and write its type (RFC 9114 §6.2); return its ID."""
    stream_id = quic.get_next_available_stream_id(is_unidirectional=True)
    quic.send_stream_data(stream_id, encode_uint_var(stream_type))
    return stream_id


def is_client_initiated(stream_id: int) -> bool:
    """True for client-initiated stream IDs (RFC 9000 §2.1)."""
    return stream_id & 1 == 0


def is_unidirectional(stream_id: int) -> bool:
    """True for unidirectional stream IDs (RFC 9000 §2.1)."""
    return stream_id & 2 == 2


def mark_ended(events: list[H3Event], start: int, stream_id: int) -> None:
    """Set ``stream_ended`` on this stream's last event emitted since ``start``, or add an empty one."""
    for i in range(len(events) - 1, start - 1, -1):
        ev = events[i]
        if isinstance(ev, DataReceived) and ev.stream_id == stream_id:
            events[i] = DataReceived(stream_id, ev.data, True)
            return
        if isinstance(ev, HeadersReceived) and ev.stream_id == stream_id:
            events[i] = HeadersReceived(stream_id, ev.headers, True)
            return
    events.append(DataReceived(stream_id, b"", True))


def start_frame(stream: RecvStream, frame_type: int, length: int, *, is_client: bool) -> None:
    """Check a frame header against the stream's state and prepare to read its payload.

    Raises:
        H3ConnectionError: the frame is not allowed here (RFC 9114 §7.2, §6.2.1), or a non-DATA
            frame is larger than :data:`MAX_BUFFERED_FRAME_SIZE`.
    """
    kind = stream.kind
    if kind == StreamKind.REQUEST:
        if frame_type == FrameType.DATA:
            if stream.msg != MessageState.BODY:
                raise H3ConnectionError(
                    H3ErrorCode.H3_FRAME_UNEXPECTED,
                    "DATA before HEADERS"
                    if stream.msg == MessageState.EXPECT_HEADERS
                    else "DATA after trailers",
                )
        elif frame_type == FrameType.HEADERS:
            if stream.msg == MessageState.TRAILERS_DONE:
                raise H3ConnectionError(H3ErrorCode.H3_FRAME_UNEXPECTED, "HEADERS after trailers")
        elif frame_type == FrameType.PUSH_PROMISE and is_client:
            raise H3ConnectionError(H3ErrorCode.H3_ID_ERROR, "PUSH_PROMISE without MAX_PUSH_ID")
        elif frame_type in _REQUEST_FORBIDDEN:
            raise H3ConnectionError(
                H3ErrorCode.H3_FRAME_UNEXPECTED, f"frame {frame_type:#x} on a request stream"
            )
    else:  # control stream
        if not stream.settings_seen and frame_type != FrameType.SETTINGS:
            raise H3ConnectionError(
                H3ErrorCode.H3_MISSING_SETTINGS, "first control frame is not SETTINGS"
            )
        if frame_type in _CONTROL_FORBIDDEN:
            raise H3ConnectionError(
                H3ErrorCode.H3_FRAME_UNEXPECTED, f"frame {frame_type:#x} on the control stream"
            )
        if frame_type == FrameType.SETTINGS and stream.settings_seen:
            raise H3ConnectionError(H3ErrorCode.H3_FRAME_UNEXPECTED, "second SETTINGS")
        if frame_type == FrameType.MAX_PUSH_ID and is_client:
            raise H3ConnectionError(H3ErrorCode.H3_FRAME_UNEXPECTED, "MAX_PUSH_ID from a server")
    stream.frame_type = frame_type
    stream.remaining = length
    stream.skip = frame_type not in _KNOWN_FRAME_TYPES
    if not stream.skip and frame_type != FrameType.DATA and length > MAX_BUFFERED_FRAME_SIZE:
        raise H3ConnectionError(H3ErrorCode.H3_EXCESSIVE_LOAD, f"frame of {length} bytes")


_KNOWN_FRAME_TYPES = frozenset(int(t) for t in FrameType) | RESERVED_HTTP2_FRAME_TYPES
_REQUEST_FORBIDDEN = (
    frozenset({FrameType.SETTINGS, FrameType.GOAWAY, FrameType.MAX_PUSH_ID, FrameType.CANCEL_PUSH})
    | RESERVED_HTTP2_FRAME_TYPES
)
_CONTROL_FORBIDDEN = (
    frozenset({FrameType.DATA, FrameType.HEADERS, FrameType.PUSH_PROMISE})
    | RESERVED_HTTP2_FRAME_TYPES
)
