"""The relay session core shared by both ends: one TCP socket <-> one QUIC stream (sans-IO).

Theory of operation. A session belongs to one QUIC connection. It keeps a :class:`TcpLeg` per
relayed TCP connection, keyed by stream ID, and turns what happens on either side into
actions (:mod:`.actions`) that its edge carries out:

==========================================  ===================================================
input                                       actions
==========================================  ===================================================
TCP data                                    :class:`SendOnStream` (+ :class:`PauseTcpReading` once
                                            the stream holds ``send_high_water`` unacked bytes)
TCP FIN (``tcp_eof``)                       stream FIN; the socket stays open for writing
stream data                                 :class:`WriteTcp`
stream FIN                                  :class:`ShutdownTcpWrite` (a TCP FIN after the data)
both directions finished                    :class:`CloseTcp`
TCP RST / socket error (``tcp_closed``)     :class:`ResetStream` + :class:`StopSending`
                                            (TCP_RESET / TCP_ERROR)
peer RESET_STREAM or STOP_SENDING           both ways reset, :class:`AbortTcp` (an RST)
the QUIC connection went away (``close``)   :class:`AbortTcp` for every socket
socket write buffer above / below its mark  :class:`PauseStreamReading` /
                                            :class:`ResumeStreamReading`
==========================================  ===================================================

A stream cut short is never turned into a clean FIN. :meth:`RelaySession.pump`, called after a
batch of QUIC events, resumes reading the sockets whose streams drained below
``send_low_water``. Metrics and log lines go to the session's
:class:`~quicreality.relay.ports.RelayObserver`.

The server (:mod:`.server_session`) and the client (:mod:`.client_session`) add what only they
do: routing, prefaces, status answers, allow-list decisions, UDP flows.
"""

from __future__ import annotations

from enum import Enum

from .actions import (
    AbortTcp,
    Action,
    CloseTcp,
    PauseStreamReading,
    PauseTcpReading,
    ResetStream,
    ResumeStreamReading,
    ResumeTcpReading,
    SendDatagram,
    SendOnStream,
    ShutdownTcpWrite,
    StopSending,
    WriteTcp,
)
from .config import RelayConfig
from .ports import NULL_OBSERVER, QuicView, RelayObserver
from .protocol import (
    Destination,
    RelayErrorCode,
    StatusReader,
    describe_error_code,
    encode_datagram,
)

#: 1-RTT packet overhead around a DATAGRAM frame: short header (1 + CID up to 20 + packet number
#: 4, RFC 9000 §17.3.1), AEAD tag 16, frame type 1 and length varint up to 4 (RFC 9221 §4).
DATAGRAM_PACKET_OVERHEAD = 1 + 20 + 4 + 16 + 1 + 4


class TcpLoss(Enum):
    """How a TCP socket failed (the edge classifies its exception)."""

    RESET = "tcp_reset"  #: ECONNRESET, EPIPE: the other end reset the connection
    ERROR = "tcp_error"  #: any other socket error


#: ``(metrics cause, reset code)`` for a socket that went away before both directions finished:
#: ``None`` is a close without an error.
LOSS_OUTCOME: dict[TcpLoss | None, tuple[str, RelayErrorCode]] = {
    None: ("tcp_closed", RelayErrorCode.TCP_ERROR),
    TcpLoss.RESET: ("tcp_reset", RelayErrorCode.TCP_RESET),
    TcpLoss.ERROR: ("tcp_error", RelayErrorCode.TCP_ERROR),
}


class TcpLeg:
    """The state of one relayed TCP connection (one stream)."""

    __slots__ = ("closing", "connected", "destination", "early", "early_fin", "finished",
                 "local_eof", "read_paused", "remote_fin", "status_reader", "stream_id")

    def __init__(self, stream_id: int, destination: Destination, *, connected: bool,
                 status_reader: StatusReader | None = None) -> None:
        self.stream_id = stream_id
        self.destination = destination
        #: The TCP socket exists (server: the destination answered).
        self.connected = connected
        self.local_eof = False  #: the socket sent FIN (and we sent the stream FIN)
        self.remote_fin = False  #: the stream ended (and we shut the socket down for writing)
        self.closing = False  #: :class:`CloseTcp` was asked for
        self.finished = False
        self.read_paused = False  #: reading paused for send backpressure
        self.early: list[bytes] = []  # stream data that arrived before the socket existed
        self.early_fin = False
        #: Client: reads the server's status answer until it is complete (then None).
        self.status_reader = status_reader


class RelaySession:
    """The TCP-stream mapping both sessions share (see the module docstring).

    Args:
        view: the connection's read-only side (a ``QuicConnection``).
        config: water marks, limits and timeouts.
        max_datagram_size: the connection's QUIC packet size (a DATAGRAM frame cannot be split).
        observer: metrics and log lines.
    """

    #: ``client`` or ``server``, for log lines.
    side = "?"

    def __init__(self, view: QuicView, config: RelayConfig, *, max_datagram_size: int,
                 observer: RelayObserver = NULL_OBSERVER) -> None:
        self.view = view
        self.config = config
        self.observer = observer
        self.streams: dict[int, TcpLeg] = {}
        self.closed = False
        #: Largest relay datagram (flow id + UDP payload) that fits one QUIC packet: a DATAGRAM
        #: frame is never split (RFC 9221 §5), the connection would drop it silently.
        self.max_datagram = max_datagram_size - DATAGRAM_PACKET_OVERHEAD
        self._send_paused: set[int] = set()
        self._high = config.send_high_water
        self._low = config.send_low_water

    # ------------------------------------------------------------------- TCP inputs

    def tcp_data(self, stream_id: int, data: bytes, now: float) -> list[Action]:
        """Bytes read from a stream's socket."""
        leg = self.streams.get(stream_id)
        if leg is None or leg.finished:
            return []
        out: list[Action] = [SendOnStream(stream_id, data)]
        if self.view.stream_send_buffered(stream_id) + len(data) >= self._high:
            self._send_paused.add(stream_id)
            if not leg.read_paused:
                leg.read_paused = True
                out.append(PauseTcpReading(stream_id))
        return out

    def tcp_eof(self, stream_id: int, now: float) -> list[Action]:
        """The socket sent FIN: end the stream, keep relaying the other direction."""
        leg = self.streams.get(stream_id)
        if leg is None or leg.finished:
            return []
        leg.local_eof = True
        out: list[Action] = [SendOnStream(stream_id, b"", end_stream=True)]
        self._maybe_close(leg, out)
        return out

    def tcp_closed(self, stream_id: int, loss: TcpLoss | None, detail: str,
                   now: float) -> list[Action]:
        """The socket is gone (``loss`` None: without an error); ``detail`` is for the log."""
        leg = self.streams.get(stream_id)
        out: list[Action] = []
        if leg is None or leg.finished:
            return out
        if loss is None and (leg.closing or (leg.local_eof and leg.remote_fin)):
            self._finish(leg, out)
            return out
        cause, code = LOSS_OUTCOME[loss]
        self.observer.note("info", f"relay: {self.side} stream {stream_id}: TCP "
                                   f"{cause.replace('_', ' ')} ({detail})")
        out += (ResetStream(stream_id, code), StopSending(stream_id, code))
        self.observer.reset(cause)
        self._finish(leg, out)
        return out

    def tcp_write_paused(self, stream_id: int, now: float) -> list[Action]:
        """The socket's write buffer rose above ``write_high_water``: stop taking stream data."""
        leg = self.streams.get(stream_id)
        if leg is None or leg.finished:
            return []
        return [PauseStreamReading(stream_id)]

    def tcp_write_resumed(self, stream_id: int, now: float) -> list[Action]:
        """The socket's write buffer fell below ``write_low_water``: take stream data again."""
        leg = self.streams.get(stream_id)
        if leg is None or leg.finished:
            return []
        return [ResumeStreamReading(stream_id)]

    # --------------------------------------------------------------- QUIC feedback

    def quic_refused(self, action: Action, now: float) -> list[Action]:
        """The connection refused a QUIC action of ours (``apply_quic_action`` was False)."""
        out: list[Action] = []
        if isinstance(action, SendOnStream):
            leg = self.streams.get(action.stream_id)
            if leg is not None and action.data:
                self._abort(leg, "stream_closed", reset_stream=False, out=out)
        elif isinstance(action, SendDatagram):
            self.observer.udp_dropped("too_large")
        return out

    def pump(self, now: float) -> list[Action]:
        """After a batch of QUIC events: read again the sockets whose streams drained."""
        out: list[Action] = []
        if not self._send_paused:
            return out
        low = self._low
        buffered = self.view.stream_send_buffered
        for sid in list(self._send_paused):
            leg = self.streams.get(sid)
            if leg is None or leg.finished:
                self._send_paused.discard(sid)
            elif buffered(sid) <= low:
                self._send_paused.discard(sid)
                if leg.read_paused:
                    leg.read_paused = False
                    out.append(ResumeTcpReading(sid))
        return out

    # ------------------------------------------------------------- stream helpers

    def _stream_data(self, leg: TcpLeg, data: bytes, end_stream: bool, out: list[Action]) -> None:
        """In-order stream data (and FIN) for the socket."""
        if leg.finished:
            return
        if not leg.connected:
            if data:
                leg.early.append(data)
            leg.early_fin = leg.early_fin or end_stream
            return
        if data:
            out.append(WriteTcp(leg.stream_id, data))
        if end_stream:
            self._remote_fin(leg, out)

    def _flush_early(self, leg: TcpLeg, out: list[Action]) -> None:
        """The socket exists now: write what the stream sent meanwhile."""
        early, leg.early = leg.early, []
        sid = leg.stream_id
        for chunk in early:
            out.append(WriteTcp(sid, chunk))
        if leg.early_fin:
            self._remote_fin(leg, out)

    def _remote_fin(self, leg: TcpLeg, out: list[Action]) -> None:
        leg.remote_fin = True
        out.append(ShutdownTcpWrite(leg.stream_id))
        self._maybe_close(leg, out)

    def _maybe_close(self, leg: TcpLeg, out: list[Action]) -> None:
        if leg.local_eof and leg.remote_fin and not leg.closing and leg.connected:
            leg.closing = True
            out.append(CloseTcp(leg.stream_id))

    def _peer_reset(self, leg: TcpLeg, error_code: int, *, stop_sending: bool,
                    out: list[Action]) -> None:
        """The peer reset its side or asked us to stop: the socket gets an RST."""
        if leg.finished:
            return
        what = "stopped" if stop_sending else "reset"
        self.observer.note("info", f"relay: {self.side} stream {leg.stream_id} {what} by peer "
                                   f"({describe_error_code(error_code)})")
        self._abort(leg, "peer_stop_sending" if stop_sending else "peer_reset",
                    reset_stream=True, code=error_code, out=out)

    def _abort(self, leg: TcpLeg, cause: str, *, reset_stream: bool, out: list[Action],
               code: int = RelayErrorCode.CANCELLED) -> None:
        """End now: optionally reset the stream both ways, count the cause, RST the socket."""
        if leg.finished:
            return
        if reset_stream:
            out += (ResetStream(leg.stream_id, code), StopSending(leg.stream_id, code))
        self.observer.reset(cause)
        self._finish(leg, out)
        out.append(AbortTcp(leg.stream_id))

    def _finish(self, leg: TcpLeg, out: list[Action]) -> None:
        """Forget a leg (either way it ended)."""
        if leg.finished:
            return
        leg.finished = True
        leg.early = []
        sid = leg.stream_id
        self.observer.tcp_active(-1)
        self._send_paused.discard(sid)
        if self.streams.get(sid) is leg:
            del self.streams[sid]
        self._leg_finished(leg, out)

    def _leg_finished(self, leg: TcpLeg, out: list[Action]) -> None:
        """Hook: a leg has ended."""

    def _queue_datagrams(self, flow_id: int, payloads: list[bytes], direction: str,
                         out: list[Action]) -> None:
        """Frame UDP payloads into DATAGRAMs; drop (and count) what the queue or a packet cannot
        take (a DATAGRAM frame cannot be split, RFC 9221 §5)."""
        pending = self.view.datagrams_pending()
        limit = self.config.udp_queue_limit
        largest = self.max_datagram
        observer = self.observer
        for payload in payloads:
            if pending >= limit:
                observer.udp_dropped("queue_full")
                continue
            datagram = encode_datagram(flow_id, payload)
            if len(datagram) > largest:
                observer.udp_dropped("too_large")
                continue
            out.append(SendDatagram(datagram))
            pending += 1
            observer.udp_relayed(direction)

    def _abort_all(self, cause: str, out: list[Action]) -> None:
        """The connection is gone: reset every local socket."""
        for leg in list(self.streams.values()):
            self._abort(leg, cause, reset_stream=False, out=out)
        self.streams.clear()
        self._send_paused.clear()
