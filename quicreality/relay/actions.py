"""What a relay session asks its edge to do: frozen action values.

A session (:mod:`.server_session`, :mod:`.client_session`) never touches a socket or the QUIC
connection. Each of its driving calls returns a list of actions; the caller carries them out,
in order, before it makes the next call (``aio/relay_*.py`` on real sockets, the tests on
fakes). Results of carrying them out (a connection made, a resolution, a refused QUIC call) come
back as further driving calls.

There are three families:

* **QUIC actions** (:data:`QUIC_ACTIONS`) act on the session's connection;
  :func:`quicreality.relay.ports.apply_quic_action` carries one out on any
  :class:`~quicreality.relay.ports.QuicPort`.
* **Socket actions** act on the TCP socket of a stream (keyed by its stream ID), a UDP flow's
  socket (keyed by flow ID) or a local UDP listener (keyed by its route number).
* :class:`Deliver` hands a QUIC event that is not the relay's to the application (HTTP/3).

Addresses stay opaque here: a :data:`Candidate` is ``(address family, socket address)`` as the
edge's resolver returned it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..quic.events import QuicEvent
from .protocol import Destination, Kind, StatusAnswer

#: A socket address as the resolver returns it: ``(host, port)`` or ``(host, port, flow, scope)``.
SockAddr = tuple[str, int] | tuple[str, int, int, int]
#: ``(address family, socket address)``; the family is the resolver's integer, opaque here.
Candidate = tuple[int, SockAddr]


# ----------------------------------------------------------------------------- QUIC actions


@dataclass(frozen=True, slots=True)
class SendOnStream:
    """Queue ``data`` (and the FIN if ``end_stream``) on a stream, opening it if it is new."""

    stream_id: int
    data: bytes
    end_stream: bool = False


@dataclass(frozen=True, slots=True)
class ResetStream:
    """Abandon our sending side of a stream (RESET_STREAM, RFC 9000 §19.4)."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class StopSending:
    """Ask the peer to stop sending on a stream (STOP_SENDING, RFC 9000 §19.5)."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class PauseStreamReading:
    """Hold a stream's received data back, unconsumed (its flow-control window stays closed)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class ResumeStreamReading:
    """Deliver a stream's data again (and credit its window as it is consumed)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class SendDatagram:
    """Queue one QUIC DATAGRAM frame (RFC 9221), already framed with its flow ID."""

    data: bytes


@dataclass(frozen=True, slots=True)
class AnswerStatus:
    """Send the server's OK status answer on a relay stream; the destination's bytes follow."""

    stream_id: int
    answer: StatusAnswer


@dataclass(frozen=True, slots=True)
class Refuse:
    """Refuse a relay stream: the non-OK status answer (with its reason) and a FIN, then
    STOP_SENDING with the status's reset code (see :mod:`.protocol`)."""

    stream_id: int
    answer: StatusAnswer


# --------------------------------------------------------------------------- socket actions


@dataclass(frozen=True, slots=True)
class WriteTcp:
    """Write stream bytes to the stream's TCP socket."""

    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ShutdownTcpWrite:
    """Shut the socket down for writing (a TCP FIN after the buffered bytes); keep reading."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class CloseTcp:
    """Both directions are finished: close the socket normally."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class AbortTcp:
    """Close the socket with an RST (SO_LINGER 0): a cut-short stream is never a clean FIN."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class PauseTcpReading:
    """Stop reading the socket (the stream holds ``send_high_water`` unacknowledged bytes)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class ResumeTcpReading:
    """Read the socket again."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class Resolve:
    """Resolve ``host`` for a stream being set up; answer with ``resolved`` or
    ``connect_failed`` (the session times the whole set-up out by itself)."""

    stream_id: int
    kind: Kind
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ConnectTcp:
    """Connect the stream's TCP socket to the first candidate that answers, in order; answer
    with ``tcp_connected`` or ``connect_failed``."""

    stream_id: int
    destination: Destination
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True, slots=True)
class ConnectUpstream:
    """Open the stream's leg through the upstream relay (``[relay.upstream]``): a stream on the
    pooled upstream connection whose preface names ``destination`` and carries ``hop_limit``.
    Answer with ``tcp_connected`` (the upstream said OK) or ``connect_failed`` (its status)."""

    stream_id: int
    kind: Kind
    destination: Destination
    hop_limit: int


@dataclass(frozen=True, slots=True)
class Answered:
    """Client: the server's status answer for a TCP stream arrived (OK or not). A local socket
    needs nothing; a leg bridged to a downstream relay stream passes the answer on."""

    stream_id: int
    answer: StatusAnswer


@dataclass(frozen=True, slots=True)
class CancelConnect:
    """Give a pending resolution or connect of the stream up (the stream is gone)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class OpenUdpFlow:
    """Open a connected UDP socket for a flow; answer with ``udp_flow_opened`` or
    ``connect_failed``."""

    stream_id: int
    flow_id: int
    candidate: Candidate


@dataclass(frozen=True, slots=True)
class SendUdp:
    """Send one payload on a flow's UDP socket (server: towards the destination)."""

    flow_id: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class SendUdpTo:
    """Send one payload from a local UDP listener to a local sender (client side)."""

    route: int
    address: SockAddr
    payload: bytes


@dataclass(frozen=True, slots=True)
class FlowAnswered:
    """Client: the server's status answer for a bridged UDP flow (one opened with
    ``open_udp_flow``, a middle relay's leg): the downstream flow is answered the same."""

    route: int
    address: SockAddr
    answer: StatusAnswer


@dataclass(frozen=True, slots=True)
class FlowEnded:
    """Client: a bridged UDP flow is gone (FIN, reset, idle, connection lost): the downstream
    flow ends too."""

    route: int
    address: SockAddr
    reason: str


@dataclass(frozen=True, slots=True)
class CloseUdpFlow:
    """Close a flow's UDP socket."""

    flow_id: int


# ----------------------------------------------------------------------------- application


@dataclass(frozen=True, slots=True)
class Deliver:
    """A QUIC event that is not the relay's: hand it to the application (HTTP/3) unchanged."""

    event: QuicEvent


QuicAction = (SendOnStream | ResetStream | StopSending | PauseStreamReading | ResumeStreamReading
              | SendDatagram | AnswerStatus | Refuse)
SocketAction = (WriteTcp | ShutdownTcpWrite | CloseTcp | AbortTcp | PauseTcpReading
                | ResumeTcpReading | Resolve | ConnectTcp | ConnectUpstream | Answered
                | CancelConnect | OpenUdpFlow | SendUdp | SendUdpTo | FlowAnswered | FlowEnded
                | CloseUdpFlow)
Action = QuicAction | SocketAction | Deliver

#: The action types that act on the QUIC connection.
QUIC_ACTIONS: frozenset[type] = frozenset({
    SendOnStream, ResetStream, StopSending, PauseStreamReading, ResumeStreamReading,
    SendDatagram, AnswerStatus, Refuse})
