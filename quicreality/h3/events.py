"""Events produced by :meth:`quicreality.h3.connection.H3Connection.handle_event`.

Headers are lists of ``(name, value)`` byte pairs, pseudo-headers first (RFC 9114 §4.3).
"""

from __future__ import annotations

from dataclasses import dataclass

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class HeadersReceived:
    """A HEADERS frame (request/response head, or trailers) was decoded on ``stream_id``."""

    stream_id: int
    headers: Headers
    stream_ended: bool


@dataclass(frozen=True, slots=True)
class DataReceived:
    """Content bytes from DATA frames on ``stream_id``; ``data`` may be empty when only the FIN arrived."""

    stream_id: int
    data: bytes
    stream_ended: bool


@dataclass(frozen=True, slots=True)
class GoawayReceived:
    """The peer sent GOAWAY (RFC 9114 §5.2).

    From a server ``stream_id`` is the first client request stream it will not process; from a
    client it is a push ID.
    """

    stream_id: int


@dataclass(frozen=True, slots=True)
class SettingsReceived:
    """The peer's SETTINGS frame arrived (RFC 9114 §7.2.4)."""

    settings: dict[int, int]


@dataclass(frozen=True, slots=True)
class StreamResetReceived:
    """The peer reset a request stream (QUIC RESET_STREAM) before its message completed."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """We refused the peer's message on request stream ``stream_id``; no more events follow for it.

    The message was malformed (RFC 9114 §4.1.2) or its field section exceeded our
    ``SETTINGS_MAX_FIELD_SECTION_SIZE`` (RFC 9114 §4.2.2). ``error_code`` is what the stream was
    aborted with; H3_NO_ERROR when a server answered a too-large request head with 431 itself.
    """

    stream_id: int
    error_code: int
    reason: str


H3Event = (
    HeadersReceived
    | DataReceived
    | GoawayReceived
    | SettingsReceived
    | StreamResetReceived
    | MessageRejected
)
