"""0-RTT and session tickets at the QUIC layer (RFC 9001 §4.6, RFC 9000 §7.4.1, §12.3).

:class:`EarlyData` owns the 0-RTT packet protection (one :class:`CryptoPair`: the client's send
key, the server's receive key) and the connection's 0-RTT status. 0-RTT packets (long header type
0x1) share the application packet number space with 1-RTT (RFC 9000 §12.3), so the send path numbers
them from that space and recovery tracks them there, with packet type ``"0RTT"``.

The client applies the server's remembered transport parameters (those RFC 9000 §7.4.1 lists)
before it sends 0-RTT, so 0-RTT stays within the limits the server had announced. When the server
rejects 0-RTT, every 0-RTT packet in flight is abandoned and its frames are owed again, so the data
goes out in 1-RTT (RFC 9001 §4.6.2). The server's remembered parameters are the
``early_data_context`` it seals into its tickets: 0-RTT is refused when they changed.
"""

from __future__ import annotations

from collections import deque

from ...tls.outputs import EarlyDataOutcome, NewTicket
from ...tls.resumption import SessionTicket
from ...wire.buffer import Buffer, BufferReadError
from .. import events
from ..crypto import CryptoPair
from ..errors import QuicConnectionError
from ..events import QuicEvent
from ..recovery.loss import SPACE_APPLICATION, LossRecovery
from ..transport_params import (
    QuicTransportParameters,
    pull_transport_parameters,
    push_transport_parameters,
)
from .streams import StreamManager

#: Transport parameters a 0-RTT client remembers and a server must not reduce (RFC 9000 §7.4.1).
REMEMBERED_PARAMETERS = (
    "active_connection_id_limit",
    "initial_max_data",
    "initial_max_stream_data_bidi_local",
    "initial_max_stream_data_bidi_remote",
    "initial_max_stream_data_uni",
    "initial_max_streams_bidi",
    "initial_max_streams_uni",
    "max_datagram_frame_size",  # RFC 9221 §3
)

#: qlog/recovery packet type of 0-RTT packets.
ZERO_RTT_QLOG_TYPE = "0RTT"


def remembered_parameters(params: QuicTransportParameters) -> QuicTransportParameters:
    """Only the parameters of :data:`REMEMBERED_PARAMETERS`, the rest left at their defaults."""
    return QuicTransportParameters(**{name: getattr(params, name)
                                      for name in REMEMBERED_PARAMETERS})


def early_data_context(params: QuicTransportParameters, alpn_protocols: list[str]) -> bytes:
    """What a server seals into its tickets for the 0-RTT check: the remembered parameters it
    announces and its ALPN list (0-RTT is refused when either changed, RFC 9001 §4.6.2)."""
    buf = Buffer(capacity=512)
    push_transport_parameters(buf, remembered_parameters(params))
    return buf.data + b"\x00" + ",".join(alpn_protocols).encode()


class EarlyData:
    """The connection's 0-RTT keys and status, and the session tickets it receives."""

    __slots__ = ("_events", "_is_client", "_recovery", "_streams", "crypto", "status",
                 "ticket")

    def __init__(self, *, is_client: bool, events: deque[QuicEvent], recovery: LossRecovery,
                 streams: StreamManager) -> None:
        self._is_client = is_client
        self._events = events
        self._recovery = recovery
        self._streams = streams
        #: 0-RTT packet protection: client send, server receive (RFC 9001 §5.1)
        self.crypto = CryptoPair()
        #: "none", "offered" (client, 0-RTT key installed), "accepted" or "rejected"
        self.status = "none"
        #: the latest ticket the server issued (client)
        self.ticket: SessionTicket | None = None

    @property
    def can_send(self) -> bool:
        """True while the client may send 0-RTT packets."""
        return self._is_client and self.crypto.send.is_valid()

    def prepare_client(self, ticket: SessionTicket | None) -> None:
        """Before the first flight: take the ticket's remembered transport parameters.

        Raises:
            QuicConnectionError: the ticket's parameters do not parse.
        """
        if ticket is None or not ticket.max_early_data_size or not ticket.transport_parameters:
            return
        try:
            params = pull_transport_parameters(Buffer(data=ticket.transport_parameters))
        except (BufferReadError, QuicConnectionError, ValueError) as exc:
            raise ValueError("the session ticket's transport parameters do not parse") from exc
        self._streams.apply_peer_params(remembered_parameters(params))

    def on_key_installed(self) -> None:
        """The 0-RTT key is in place (client: right after the ClientHello)."""
        if self._is_client:
            self.status = "offered"

    def apply(self, step: NewTicket | EarlyDataOutcome) -> None:
        """A TLS step: a new ticket, or the server's 0-RTT decision."""
        if isinstance(step, NewTicket):
            self.ticket = step.ticket
            self._events.append(events.SessionTicketReceived(ticket=step.ticket))
            return
        self.status = "accepted" if step.accepted else "rejected"
        self._events.append(events.EarlyDataResult(accepted=step.accepted, resumed=step.resumed,
                                                   reason=step.reason))
        if not step.accepted:
            self.crypto.teardown()
            if self._is_client:
                # RFC 9001 §4.6.2: what 0-RTT carried is sent again in 1-RTT.
                self._recovery.abandon_packets(SPACE_APPLICATION, ZERO_RTT_QLOG_TYPE)

    def discard(self) -> None:
        """Drop the 0-RTT keys (RFC 9001 §4.9.3: the client once it has 1-RTT keys, the server
        once the handshake is complete)."""
        self.crypto.teardown()
