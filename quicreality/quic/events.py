"""Events emitted by :class:`~quicreality.quic.connection.QuicConnection` via ``next_event()``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..tls.resumption import SessionTicket


@dataclass(frozen=True, slots=True)
class ProtocolNegotiated:
    """ALPN was negotiated."""

    alpn_protocol: str | None


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    """The TLS handshake completed (client: server Finished verified; server: client Finished)."""

    alpn_protocol: str | None
    cipher_suite: int
    session_resumed: bool = False


@dataclass(frozen=True, slots=True)
class StreamDataReceived:
    """In-order data arrived on a stream. ``end_stream`` marks the FIN."""

    stream_id: int
    data: bytes
    end_stream: bool


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The peer sent RESET_STREAM."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class StopSendingReceived:
    """The peer sent STOP_SENDING; the local send side has been reset in answer."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class DatagramFrameReceived:
    """A DATAGRAM frame arrived (RFC 9221)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PingAcknowledged:
    """A PING sent via ``send_ping(uid)`` was acknowledged."""

    uid: int


@dataclass(frozen=True, slots=True)
class ConnectionIdIssued:
    """We issued a new connection ID (the endpoint must route it to this connection)."""

    connection_id: bytes


@dataclass(frozen=True, slots=True)
class ConnectionIdRetired:
    """A connection ID we issued was retired (the endpoint may forget it)."""

    connection_id: bytes


@dataclass(frozen=True, slots=True)
class ConnectionTerminated:
    """The connection is closed (by us, by the peer, by idle timeout or stateless reset)."""

    error_code: int
    frame_type: int | None
    reason_phrase: str
    by_peer: bool = False


@dataclass(frozen=True, slots=True)
class SessionTicketReceived:
    """Client: the server issued a session ticket (RFC 8446 §4.6.1); store it to resume."""

    ticket: SessionTicket


@dataclass(frozen=True, slots=True)
class EarlyDataResult:
    """0-RTT was accepted or rejected (RFC 9001 §4.6.2); when rejected, the client resends what
    0-RTT carried in 1-RTT. ``resumed``: the server accepted the ticket's PSK."""

    accepted: bool
    resumed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class KeyUpdated:
    """1-RTT keys moved to the next phase (RFC 9001 §6); ``initiated``: by us."""

    generation: int
    initiated: bool


QuicEvent = (
    ProtocolNegotiated
    | HandshakeCompleted
    | StreamDataReceived
    | StreamReset
    | StopSendingReceived
    | DatagramFrameReceived
    | PingAcknowledged
    | ConnectionIdIssued
    | ConnectionIdRetired
    | ConnectionTerminated
    | SessionTicketReceived
    | EarlyDataResult
    | KeyUpdated
)
