"""The relay client session: the streams and UDP flows of one client connection (sans-IO).

Theory of operation. The edge accepts local TCP connections and UDP datagrams and calls
:meth:`ClientRelaySession.open_tcp` / :meth:`ClientRelaySession.udp_from_local`; each opens a new
client-initiated bidirectional stream that starts with the preface (TCP may pipeline what the
socket already sent). The server's first bytes on it are the status answer:

* OK: the destination's bytes follow and are written to the socket (TCP), or the flow's queued
  datagrams (at most :data:`UDP_OPENING_QUEUE`) go out as DATAGRAM frames (UDP);
* anything else: the stream is reset both ways with the status's code and the socket gets an
  RST (TCP), or the flow is closed (UDP); one log line says why. The server's STOP_SENDING may
  overtake its answer: its code alone says the status (:data:`STATUS_OF_ERROR_CODE`).

Idle UDP flows close after ``udp_idle_timeout`` (:meth:`ClientRelaySession.handle_timer`). When
the connection dies, :meth:`ClientRelaySession.close` resets every socket and forgets the flows.
"""

from __future__ import annotations

from ..quic import events
from ..quic.events import QuicEvent
from .actions import (
    Action,
    Answered,
    FlowAnswered,
    FlowEnded,
    ResumeTcpReading,
    SendOnStream,
    SendUdpTo,
    SockAddr,
)
from .config import RelayConfig
from .flows import FlowTable
from .ports import NULL_OBSERVER, QuicView, RelayObserver
from .protocol import (
    INCOMPLETE,
    STATUS_ERROR_CODE,
    Destination,
    Kind,
    Preface,
    RelayErrorCode,
    Status,
    StatusAnswer,
    StatusReader,
    decode_datagram,
    describe_error_code,
    encode_preface,
    flow_id_of_stream,
)
from .session import RelaySession, TcpLeg

#: The status a server's reset code stands for (REFUSED, UNREACHABLE, ...).
STATUS_OF_ERROR_CODE = {int(code): status for status, code in STATUS_ERROR_CODE.items()}
#: Datagrams a new UDP flow keeps while waiting for the server's status answer.
UDP_OPENING_QUEUE = 64


class ClientFlow:
    """One local UDP sender (a route's listener and the sender's address) relayed as a flow."""

    __slots__ = ("address", "bridged", "destination", "flow_id", "queue", "reader", "route",
                 "status", "stream_id")

    def __init__(self, route: int, address: SockAddr, destination: Destination,
                 stream_id: int, *, bridged: bool = False) -> None:
        self.route = route
        self.bridged = bridged  #: a middle relay's leg: its answer and end are reported
        self.address = address
        self.destination = destination
        self.stream_id = stream_id
        self.flow_id = flow_id_of_stream(stream_id)
        self.status: StatusAnswer | None = None
        self.queue: list[bytes] = []
        self.reader = StatusReader()

    @property
    def key(self) -> tuple[int, SockAddr]:
        """The flow table key."""
        return (self.route, self.address)


class ClientRelaySession(RelaySession):
    """The relay streams and flows of one client connection (see the module docstring)."""

    side = "client"

    def __init__(self, view: QuicView, config: RelayConfig, *, max_datagram_size: int,
                 observer: RelayObserver = NULL_OBSERVER) -> None:
        super().__init__(view, config, max_datagram_size=max_datagram_size, observer=observer)
        self.flows: FlowTable[tuple[int, SockAddr], ClientFlow] = FlowTable(
            idle_timeout=config.udp_idle_timeout, max_flows=config.max_udp_flows)
        self._flow_ids: dict[int, ClientFlow] = {}

    # ------------------------------------------------------------------------- TCP

    def open_tcp(self, destination: Destination, now: float, *, pending: bytes = b"",
                 eof: bool = False, hop_limit: int | None = None) -> tuple[int, list[Action]]:
        """Open a stream for an accepted local connection; returns its stream ID and actions.

        ``pending`` is what the socket sent before the stream existed, ``eof`` whether it has
        already sent its FIN. The socket is read from now on (unless it sent FIN).
        ``hop_limit`` goes into the preface (None: none is sent; a relay forwarding a stream
        of its own client sends what is left of that stream's limit).
        """
        sid = self.view.get_next_available_stream_id()
        leg = TcpLeg(sid, destination, connected=True, status_reader=StatusReader())
        leg.local_eof = eof
        self.streams[sid] = leg
        self.observer.tcp_active(1)
        preface = Preface(Kind.TCP, destination, hop_limit=hop_limit)
        out: list[Action] = [SendOnStream(sid, encode_preface(preface) + pending,
                                          end_stream=eof)]
        if not eof:
            out.append(ResumeTcpReading(sid))
        return sid, out

    # ------------------------------------------------------------------ QUIC events

    def handle_event(self, event: QuicEvent, now: float) -> list[Action]:
        """Route one QUIC event to its stream or flow (other events are not the relay's)."""
        out: list[Action] = []
        if isinstance(event, events.StreamDataReceived):
            sid = event.stream_id
            leg = self.streams.get(sid)
            if leg is not None:
                self._tcp_stream_data(leg, event.data, event.end_stream, out)
                return out
            flow = self._flow_ids.get(flow_id_of_stream(sid)) if sid & 3 == 0 else None
            if flow is not None:
                self._flow_stream_data(flow, event.data, event.end_stream, out)
        elif isinstance(event, events.DatagramFrameReceived):
            try:
                flow_id, payload = decode_datagram(event.data)
            except ValueError:
                self.observer.udp_dropped("malformed")
                return out
            flow = self._flow_ids.get(flow_id)
            if flow is None or flow.status is None:
                self.observer.udp_dropped("unknown_flow")
                return out
            self.flows.touch(flow.key, now)
            self.observer.udp_relayed("down")
            out.append(SendUdpTo(flow.route, flow.address, payload))
        elif isinstance(event, (events.StreamReset, events.StopSendingReceived)):
            self._stream_reset(event.stream_id, event.error_code,
                               isinstance(event, events.StopSendingReceived), out)
        return out

    def _tcp_stream_data(self, leg: TcpLeg, data: bytes, end_stream: bool,
                         out: list[Action]) -> None:
        reader = leg.status_reader
        if reader is not None and not leg.finished:
            try:
                got = reader.feed(data, end_stream)
            except ValueError as exc:
                self.observer.note("warning", f"relay: stream {leg.stream_id} to "
                                              f"{leg.destination}: {exc}")
                self._abort(leg, "bad_status", reset_stream=True, code=RelayErrorCode.ERROR,
                            out=out)
                return
            if got is INCOMPLETE:
                return
            assert isinstance(got, tuple)
            answer, data = got
            leg.status_reader = None
            outcome = answer.status.name.lower()
            self.observer.stream_opened("tcp", outcome)
            out.append(Answered(leg.stream_id, answer))
            if not answer.ok:
                self.observer.note("warning", f"relay: stream {leg.stream_id} to "
                                              f"{leg.destination} {outcome} by the server: "
                                              f"{answer.reason}")
                self._abort(leg, outcome, reset_stream=True,
                            code=answer.error_code or RelayErrorCode.ERROR, out=out)
                return
            if not data and not end_stream:
                return
        self._stream_data(leg, data, end_stream, out)

    def _stream_reset(self, sid: int, error_code: int, stop_sending: bool,
                      out: list[Action]) -> None:
        leg = self.streams.get(sid)
        if leg is not None:
            if not self._refused_early(leg, error_code, out):
                self._peer_reset(leg, error_code, stop_sending=stop_sending, out=out)
            return
        flow = self._flow_ids.get(flow_id_of_stream(sid)) if sid & 3 == 0 else None
        if flow is None:
            return
        status = STATUS_OF_ERROR_CODE.get(error_code)
        if flow.status is None and status is not None:
            self._flow_refused(flow, StatusAnswer(status), out)  # it overtook the answer
            return
        self.observer.reset("peer_reset")
        self.close_flow(flow, send_fin=False, reason=f"reset ({describe_error_code(error_code)})",
                        out=out)

    def _refused_early(self, leg: TcpLeg, error_code: int, out: list[Action]) -> bool:
        """The server's STOP_SENDING can overtake its status answer: the code says it all."""
        status = STATUS_OF_ERROR_CODE.get(error_code)
        if leg.status_reader is None or status is None or leg.finished:
            return False
        leg.status_reader = None
        outcome = status.name.lower()
        self.observer.stream_opened("tcp", outcome)
        out.append(Answered(leg.stream_id, StatusAnswer(status)))
        self.observer.note("warning", f"relay: stream {leg.stream_id} to {leg.destination} "
                                      f"{outcome} by the server")
        self._abort(leg, outcome, reset_stream=True, code=error_code, out=out)
        return True

    # ------------------------------------------------------------------------- UDP

    def udp_from_local(self, route: int, destination: Destination, address: SockAddr,
                       data: bytes, now: float) -> list[Action]:
        """A datagram from a local sender on ``route``'s listener (forwarded to ``destination``)."""
        out: list[Action] = []
        key = (route, address)
        flow = self.flows.get(key)
        if flow is None:
            flow = self._new_flow(route, destination, address, None, False, now, out)
            if flow is None:
                self.observer.udp_dropped("too_many_flows")
                return out
        self.flows.touch(key, now)
        if flow.status is None:
            if len(flow.queue) < UDP_OPENING_QUEUE:
                flow.queue.append(data)
            else:
                self.observer.udp_dropped("opening_queue_full")
            return out
        self._queue_datagrams(flow.flow_id, [data], "up", out)
        return out

    def open_udp_flow(self, route: int, destination: Destination, address: SockAddr,
                      now: float, *, hop_limit: int | None = None) -> list[Action]:
        """Open a flow before any datagram (a middle relay's leg of a downstream flow): its
        status answer comes back as :class:`~.actions.FlowAnswered` and its end as
        :class:`~.actions.FlowEnded`; datagrams go through :meth:`udp_from_local` as usual."""
        out: list[Action] = []
        if self.flows.get((route, address)) is not None:
            return out
        if self._new_flow(route, destination, address, hop_limit, True, now, out) is None:
            out.append(FlowAnswered(route, address,
                                    StatusAnswer(Status.BUSY, "too many UDP flows upstream")))
        return out

    def _new_flow(self, route: int, destination: Destination, address: SockAddr,
                  hop_limit: int | None, bridged: bool, now: float,
                  out: list[Action]) -> ClientFlow | None:
        if self.flows.full or self.closed:
            return None
        sid = self.view.get_next_available_stream_id()
        flow = ClientFlow(route, address, destination, sid, bridged=bridged)
        preface = Preface(Kind.UDP, destination, hop_limit=hop_limit)
        out.append(SendOnStream(sid, encode_preface(preface)))
        self.flows.add((route, address), flow, now)
        self._flow_ids[flow.flow_id] = flow
        self.observer.udp_flow_opened()
        return flow

    def _flow_stream_data(self, flow: ClientFlow, data: bytes, end_stream: bool,
                          out: list[Action]) -> None:
        if flow.status is None:
            try:
                got = flow.reader.feed(data, end_stream)
            except ValueError as exc:
                self.observer.note("warning", f"relay: UDP flow {flow.flow_id}: {exc}")
                self.close_flow(flow, send_fin=True, reason="bad status", out=out)
                return
            if got is INCOMPLETE:
                return
            assert isinstance(got, tuple)
            answer = got[0]
            if not answer.ok:
                self._flow_refused(flow, answer, out)
                return
            flow.status = answer
            self.observer.stream_opened("udp", "ok")
            if flow.bridged:
                out.append(FlowAnswered(flow.route, flow.address, answer))
            queued, flow.queue = flow.queue, []
            self._queue_datagrams(flow.flow_id, queued, "up", out)
        if end_stream:
            self.close_flow(flow, send_fin=True, reason="closed by the server", out=out)

    def close_udp_flow(self, route: int, address: SockAddr, reason: str) -> list[Action]:
        """The local side of a flow is done (a bridged flow's downstream ended): FIN."""
        out: list[Action] = []
        flow = self.flows.get((route, address))
        if flow is not None:
            self.close_flow(flow, send_fin=not self.closed, reason=reason, out=out)
        return out

    def _flow_refused(self, flow: ClientFlow, answer: StatusAnswer, out: list[Action]) -> None:
        flow.status = answer
        if flow.bridged:
            out.append(FlowAnswered(flow.route, flow.address, answer))
        outcome = answer.status.name.lower()
        self.observer.stream_opened("udp", outcome)
        self.observer.note("warning", f"relay: UDP flow from {flow.address} to "
                                      f"{flow.destination} {outcome} by the server"
                                      + (f": {answer.reason}" if answer.reason else ""))
        self.observer.reset(outcome)
        self.close_flow(flow, send_fin=True, reason=outcome, out=out)

    def close_flow(self, flow: ClientFlow, *, send_fin: bool, reason: str, out: list[Action],
                   expired: bool = False) -> None:
        """Forget a flow; optionally end its stream."""
        if self._flow_ids.pop(flow.flow_id, None) is None:
            return
        self.flows.remove(flow.key)
        self.observer.udp_flow_closed(expired)
        self.observer.note("debug", f"relay: client UDP flow {flow.flow_id} from {flow.address} "
                                    f"closed ({reason})")
        if flow.bridged:
            out.append(FlowEnded(flow.route, flow.address, reason))
        if send_fin:
            out.append(SendOnStream(flow.stream_id, b"", end_stream=True))

    # ---------------------------------------------------------------------- timers

    def get_timer(self) -> float | None:
        """When the oldest UDP flow expires if nothing happens."""
        return self.flows.next_expiry()

    def handle_timer(self, now: float) -> list[Action]:
        """Close the UDP flows idle for ``udp_idle_timeout`` (each with a FIN)."""
        out: list[Action] = []
        for _, flow in self.flows.expire(now):
            self.close_flow(flow, send_fin=True, reason="idle", out=out, expired=True)
        return out

    # ------------------------------------------------------------------------- end

    def close(self, cause: str, now: float) -> list[Action]:
        """The connection is gone: reset every socket, forget every flow."""
        out: list[Action] = []
        if self.closed:
            return out
        self.closed = True
        self._abort_all(cause, out)
        for flow in list(self._flow_ids.values()):
            self.close_flow(flow, send_fin=False, reason=cause, out=out)
        return out
