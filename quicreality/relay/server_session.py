"""The relay server session: routing, prefaces, allow-list decisions, status answers, UDP flows.

Theory of operation. One :class:`ServerRelaySession` sits between a server connection and its
HTTP/3 session. :meth:`~ServerRelaySession.handle_event` looks at the first bytes of every
client-initiated bidirectional stream: one that starts with the relay magic is the relay's, every
other stream (and every other event) comes back as :class:`~.actions.Deliver`, unchanged. Bytes
shorter than the magic are held until they decide (a stream that ends first goes to HTTP/3).

A relay stream is set up in steps, each an action the edge carries out and answers:

1. the preface is read (split across frames or not; malformed -> BAD_REQUEST/UNSUPPORTED);
2. the allow-list decides (:meth:`~quicreality.relay.allow.AllowList.decide`): denied ->
   :class:`~.actions.Refuse` (REFUSED); otherwise the stream's data is held back
   (:class:`~.actions.PauseStreamReading`) and :class:`~.actions.Resolve` asked for;
3. :meth:`~ServerRelaySession.resolved`: for a name without a name rule only the addresses the
   network rules allow are kept (none -> REFUSED); then :class:`~.actions.ConnectTcp` or
   :class:`~.actions.OpenUdpFlow`;
4. :meth:`~ServerRelaySession.tcp_connected` / :meth:`~ServerRelaySession.udp_flow_opened`:
   the OK answer, the stream's data flows; :meth:`~ServerRelaySession.connect_failed` or the
   ``connect_timeout`` (a timer of the session) -> the matching non-OK status.

Every refusal gets a status, a FIN, STOP_SENDING with the status's reset code and one log line.
UDP flows expire after ``udp_idle_timeout`` without traffic and are capped at ``max_udp_flows``.

**Chains.** With ``[relay.upstream]`` the allowed destinations are reached through the next
relay: instead of :class:`~.actions.Resolve` / :class:`~.actions.ConnectTcp` the session asks for
:class:`~.actions.ConnectUpstream` with the preface's hop limit minus one, and the upstream's
status answer comes back through ``tcp_connected`` / ``connect_failed``. A stream whose hop limit
is 0 is refused (HOP_LIMIT); a name without a name rule is resolved here first and its allowed
address is sent upstream. A UDP flow goes upstream the same way: ``ConnectUpstream`` with
kind UDP, answered by ``udp_flow_opened`` / ``connect_failed``; its datagrams then travel as
``SendUdp`` / ``udp_from_destination`` as with a socket, and :meth:`udp_flow_lost` ends it when
the upstream flow ends.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..quic import events
from ..quic.events import QuicEvent
from ..wire.rangeset import RangeSet
from .actions import (
    AbortTcp,
    Action,
    AnswerStatus,
    CancelConnect,
    Candidate,
    CloseUdpFlow,
    ConnectTcp,
    ConnectUpstream,
    Deliver,
    OpenUdpFlow,
    PauseStreamReading,
    Refuse,
    Resolve,
    ResumeStreamReading,
    SendOnStream,
    SendUdp,
)
from .allow import Allowed, Denied, ResolveFirst
from .config import RelayConfig
from .flows import FlowTable
from .ports import NULL_OBSERVER, QuicView, RelayObserver
from .protocol import (
    INCOMPLETE,
    Destination,
    Kind,
    Preface,
    PrefaceError,
    PrefaceReader,
    Status,
    StatusAnswer,
    decode_datagram,
    flow_id_of_stream,
    starts_like_preface,
)
from .session import RelaySession, TcpLeg

_OK = StatusAnswer(Status.OK)


class Setup:
    """A relay stream between its preface and its destination's answer."""

    __slots__ = ("deadline", "decision", "destination", "hop_limit", "kind", "stream_id")

    def __init__(self, stream_id: int, kind: Kind, destination: Destination,
                 decision: Allowed | ResolveFirst, deadline: float, hop_limit: int) -> None:
        self.stream_id = stream_id
        self.kind = kind
        self.destination = destination
        self.decision = decision
        self.deadline = deadline
        self.hop_limit = hop_limit  #: as the preface said (the default when it said nothing)


class ServerFlow:
    """One relayed UDP flow: its stream and destination (the socket is the edge's)."""

    __slots__ = ("destination", "flow_id", "stream_id")

    def __init__(self, stream_id: int, destination: Destination) -> None:
        self.stream_id = stream_id
        self.flow_id = flow_id_of_stream(stream_id)
        self.destination = destination


class ServerRelaySession(RelaySession):
    """The relay state of one server connection (see the module docstring)."""

    side = "server"

    def __init__(self, view: QuicView, config: RelayConfig, *, max_datagram_size: int,
                 observer: RelayObserver = NULL_OBSERVER) -> None:
        super().__init__(view, config, max_datagram_size=max_datagram_size, observer=observer)
        self.flows: FlowTable[int, ServerFlow] = FlowTable(
            idle_timeout=config.udp_idle_timeout, max_flows=config.max_udp_flows)
        self._pending: dict[int, PrefaceReader] = {}  # relay streams whose preface is incomplete
        self._undecided: dict[int, bytes] = {}  # streams shorter than the magic so far
        self._relay_ids = RangeSet()  # quarter stream ids that are (or were) the relay's
        self._other_ids = RangeSet()  # quarter stream ids handed to HTTP/3
        #: Streams being set up, oldest first (all share one timeout, so also by deadline).
        self._setups: dict[int, Setup] = {}
        self._flow_timer: float | None = None  # the oldest flow's expiry, when last looked at

    # ------------------------------------------------------------------ QUIC events

    def handle_event(self, event: QuicEvent, now: float) -> list[Action]:
        """Consume the relay's events; anything else comes back as :class:`Deliver`."""
        if isinstance(event, events.StreamDataReceived):
            sid = event.stream_id
            if sid & 3:
                return [Deliver(event)]  # not client-initiated bidirectional: never the relay's
            leg = self.streams.get(sid)
            if leg is not None:
                out: list[Action] = []
                self._stream_data(leg, event.data, event.end_stream, out)
                return out
            return self._other_stream_data(event, now)
        if isinstance(event, events.DatagramFrameReceived):
            return self._datagram(event.data, now)
        if isinstance(event, events.StreamReset):
            return self._stream_reset(event, stop_sending=False)
        if isinstance(event, events.StopSendingReceived):
            return self._stream_reset(event, stop_sending=True)
        if isinstance(event, events.ConnectionTerminated):
            out = self.close(now)
            out.append(Deliver(event))
            return out
        return [Deliver(event)]

    def _stream_reset(self, event: events.StreamReset | events.StopSendingReceived, *,
                      stop_sending: bool) -> list[Action]:
        sid = event.stream_id
        out: list[Action] = []
        leg = self.streams.get(sid)
        if leg is not None:
            self._peer_reset(leg, event.error_code, stop_sending=stop_sending, out=out)
            return out
        quarter = flow_id_of_stream(sid)
        flow = self.flows.get(quarter) if not sid & 3 else None
        if flow is not None:
            self.observer.reset("peer_reset")
            self._close_flow(flow, send_fin=False, reason="reset by the client", out=out)
            return out
        if self._setups.pop(sid, None) is not None:  # a UDP flow being set up
            out.append(CancelConnect(sid))
            return out
        if self._pending.pop(sid, None) is not None or quarter in self._relay_ids:
            return out
        self._undecided.pop(sid, None)
        return [Deliver(event)]

    def _other_stream_data(self, event: events.StreamDataReceived, now: float) -> list[Action]:
        sid = event.stream_id
        quarter = flow_id_of_stream(sid)
        out: list[Action] = []
        flow = self.flows.get(quarter)
        if flow is not None:
            if event.end_stream:
                self._close_flow(flow, send_fin=True, reason="closed by the client", out=out)
            return out
        reader = self._pending.get(sid)
        if reader is not None:
            self._feed_preface(sid, reader, event.data, event.end_stream, now, out)
            return out
        if quarter in self._relay_ids:
            return out  # late data of a finished relay stream (or of a UDP flow's stream)
        if quarter in self._other_ids:
            return [Deliver(event)]
        data = self._undecided.pop(sid, b"") + event.data
        verdict = starts_like_preface(data)
        if verdict is None and not event.end_stream:
            self._undecided[sid] = data
            return out
        if not verdict:
            self._other_ids.add(quarter)
            if data is event.data:
                return [Deliver(event)]
            return [Deliver(events.StreamDataReceived(stream_id=sid, data=data,
                                                      end_stream=event.end_stream))]
        self._relay_ids.add(quarter)
        reader = PrefaceReader()
        self._pending[sid] = reader
        self._feed_preface(sid, reader, data, event.end_stream, now, out)
        return out

    def _feed_preface(self, sid: int, reader: PrefaceReader, data: bytes, end_stream: bool,
                      now: float, out: list[Action]) -> None:
        try:
            got = reader.feed(data, end_stream)
        except PrefaceError as exc:
            del self._pending[sid]
            self._refuse(sid, "?", None, exc.status, exc.reason, out)
            return
        if got is INCOMPLETE:
            return
        del self._pending[sid]
        assert isinstance(got, tuple)
        preface, rest = got
        self._start(sid, preface, rest, end_stream, now, out)

    # --------------------------------------------------------------------- set-up

    def _start(self, sid: int, preface: Preface, rest: bytes, end_stream: bool, now: float,
               out: list[Action]) -> None:
        if self.closed:
            return
        dest = preface.destination
        kind = preface.kind.name.lower()
        decision = self.config.allow.decide(dest)
        if isinstance(decision, Denied):
            self._refuse(sid, kind, dest, Status.REFUSED, decision.reason, out)
            return
        if preface.kind == Kind.UDP and self.flows.full:
            self._refuse(sid, kind, dest, Status.BUSY, "too many UDP flows", out)
            return
        hop_limit = preface.effective_hop_limit
        if self.config.upstream is not None and hop_limit < 1:
            self._refuse(sid, kind, dest, Status.HOP_LIMIT,
                         "hop limit reached: the stream crossed too many relays (a loop?)",
                         out)
            return
        out.append(PauseStreamReading(sid))  # until the destination is connected
        if preface.kind == Kind.TCP:
            leg = TcpLeg(sid, dest, connected=False)
            self.streams[sid] = leg
            self.observer.tcp_active(1)
            if rest or end_stream:
                self._stream_data(leg, rest, end_stream, out)
        self._setups[sid] = Setup(sid, preface.kind, dest, decision,
                                  now + self.config.connect_timeout, hop_limit)
        if self.config.upstream is not None and isinstance(decision, Allowed):
            out.append(ConnectUpstream(sid, preface.kind, dest, hop_limit - 1))
            return
        host = decision.host if isinstance(decision, Allowed) else decision.name
        out.append(Resolve(sid, preface.kind, host, dest.port))

    def resolved(self, stream_id: int, candidates: Sequence[Candidate],
                 now: float) -> list[Action]:
        """The resolver's ``(family, sockaddr)`` answers for a :class:`Resolve`, in order."""
        setup = self._setups.get(stream_id)
        out: list[Action] = []
        if setup is None:
            return out
        dest = setup.destination
        chosen = list(candidates)
        if isinstance(setup.decision, ResolveFirst):
            allowed = set(self.config.allow.permitted_addresses(
                [str(c[1][0]) for c in chosen], dest.port))
            chosen = [c for c in chosen if str(c[1][0]) in allowed]
            if not chosen:
                self._setup_failed(stream_id, Status.REFUSED,
                                   f"{dest} resolves to no allowed address", out)
                return out
        if not chosen:
            self._setup_failed(stream_id, Status.UNREACHABLE, f"{dest} resolves to no address",
                               out)
        elif self.config.upstream is not None:
            address = Destination(str(chosen[0][1][0]), dest.port)
            out.append(ConnectUpstream(stream_id, setup.kind, address, setup.hop_limit - 1))
        elif setup.kind == Kind.TCP:
            out.append(ConnectTcp(stream_id, dest, tuple(chosen)))
        else:
            out.append(OpenUdpFlow(stream_id, flow_id_of_stream(stream_id), chosen[0]))
        return out

    def tcp_connected(self, stream_id: int, now: float) -> list[Action]:
        """The destination accepted the TCP connection of a :class:`ConnectTcp`."""
        self._setups.pop(stream_id, None)
        leg = self.streams.get(stream_id)
        if leg is None or leg.finished or self.closed:
            return [AbortTcp(stream_id)]  # the client gave up while we were connecting
        leg.connected = True
        out: list[Action] = [AnswerStatus(stream_id, _OK), ResumeStreamReading(stream_id)]
        self.observer.stream_opened("tcp", "ok")
        self._flush_early(leg, out)
        return out

    def udp_flow_opened(self, stream_id: int, now: float) -> list[Action]:
        """The UDP socket of an :class:`OpenUdpFlow` is connected."""
        setup = self._setups.pop(stream_id, None)
        flow_id = flow_id_of_stream(stream_id)
        if setup is None or self.closed:
            return [CloseUdpFlow(flow_id)]
        if not self.flows.add(flow_id, ServerFlow(stream_id, setup.destination), now):
            out: list[Action] = [CloseUdpFlow(flow_id)]
            self._refuse(stream_id, "udp", setup.destination, Status.BUSY, "too many UDP flows",
                         out)
            return out
        out = [AnswerStatus(stream_id, _OK), ResumeStreamReading(stream_id)]
        self.observer.stream_opened("udp", "ok")
        self.observer.udp_flow_opened()
        self._arm_flow_timer()
        return out

    def connect_failed(self, stream_id: int, status: Status, detail: str,
                       now: float) -> list[Action]:
        """Resolving, connecting or opening the socket failed (``detail`` for the reason)."""
        setup = self._setups.get(stream_id)
        out: list[Action] = []
        if setup is None:
            return out
        prefix = "connect to " if setup.kind == Kind.TCP else ""
        self._setup_failed(stream_id, status, f"{prefix}{setup.destination}: {detail}", out)
        return out

    def _setup_failed(self, sid: int, status: Status, reason: str, out: list[Action]) -> None:
        setup = self._setups.pop(sid)
        if setup.kind == Kind.TCP:
            leg = self.streams.get(sid)
            if leg is not None and not leg.finished:
                self._finish(leg, out)  # no RST: the socket never existed
        self._refuse(sid, setup.kind.name.lower(), setup.destination, status, reason, out)

    def _refuse(self, sid: int, kind: str, dest: Destination | None, status: Status,
                reason: str, out: list[Action]) -> None:
        """Answer a non-OK status, end our side, ask the client to stop, log once."""
        outcome = status.name.lower()
        self.observer.note("warning",
                           f"relay: {kind} stream {sid} to {dest or '?'} {outcome}: {reason}")
        self.observer.stream_opened(kind, outcome)
        self.observer.reset(outcome)
        if self.closed:
            return
        out.append(Refuse(sid, StatusAnswer(status, reason)))
        out.append(ResumeStreamReading(sid))  # late client data is consumed and dropped

    def _leg_finished(self, leg: TcpLeg, out: list[Action]) -> None:
        if self._setups.pop(leg.stream_id, None) is not None:
            out.append(CancelConnect(leg.stream_id))
        if not self.closed:
            out.append(ResumeStreamReading(leg.stream_id))

    # ------------------------------------------------------------------------- UDP

    def _datagram(self, data: bytes, now: float) -> list[Action]:
        try:
            flow_id, payload = decode_datagram(data)
        except ValueError:
            self.observer.udp_dropped("malformed")
            return []
        if self.flows.get(flow_id) is None:
            self.observer.udp_dropped("unknown_flow")
            return []
        self.flows.touch(flow_id, now)
        self.observer.udp_relayed("up")
        return [SendUdp(flow_id, payload)]

    def udp_from_destination(self, flow_id: int, payloads: list[bytes],
                             now: float) -> list[Action]:
        """Datagrams a flow's destination sent: DATAGRAM frames towards the client."""
        out: list[Action] = []
        if self.closed or self.flows.get(flow_id) is None:
            return out
        self._queue_datagrams(flow_id, payloads, "down", out)
        self.flows.touch(flow_id, now)
        return out

    def udp_flow_lost(self, flow_id: int, reason: str, now: float) -> list[Action]:
        """The flow's destination side ended (an upstream flow closed): FIN to the client."""
        out: list[Action] = []
        flow = self.flows.get(flow_id)
        if flow is not None:
            self._close_flow(flow, send_fin=True, reason=reason, out=out)
        return out

    def _close_flow(self, flow: ServerFlow, *, send_fin: bool, reason: str, out: list[Action],
                    expired: bool = False) -> None:
        self.flows.remove(flow.flow_id)
        out.append(CloseUdpFlow(flow.flow_id))
        self.observer.udp_flow_closed(expired)
        self.observer.note("debug", f"relay: UDP flow {flow.flow_id} to {flow.destination} "
                                    f"closed ({reason})")
        if send_fin and not self.closed:
            out.append(SendOnStream(flow.stream_id, b"", end_stream=True))

    def _arm_flow_timer(self) -> None:
        if self._flow_timer is None and not self.closed:
            self._flow_timer = self.flows.next_expiry()

    # ---------------------------------------------------------------------- timers

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` is due next (a set-up's timeout, a flow's idle expiry).

        The flow part may be early (traffic moved the expiry on): the timer then finds nothing
        to expire and looks again.
        """
        due = self._flow_timer
        if self._setups:
            first = next(iter(self._setups.values())).deadline
            if due is None or first < due:
                due = first
        return due

    def handle_timer(self, now: float) -> list[Action]:
        """Time set-ups out (TIMEOUT) and close idle UDP flows (with a FIN)."""
        out: list[Action] = []
        while self._setups:
            sid, setup = next(iter(self._setups.items()))
            if setup.deadline > now:
                break
            out.append(CancelConnect(sid))
            prefix = "connect to " if setup.kind == Kind.TCP else ""
            self._setup_failed(sid, Status.TIMEOUT, f"{prefix}{setup.destination}: no answer "
                               f"within {self.config.connect_timeout:g} s", out)
        if self._flow_timer is not None and now >= self._flow_timer:
            self._flow_timer = None
            for _, flow in self.flows.expire(now):
                self._close_flow(flow, send_fin=True, reason="idle", out=out, expired=True)
            self._arm_flow_timer()
        return out

    # ------------------------------------------------------------------------- end

    def close(self, now: float) -> list[Action]:
        """The connection is gone: reset every destination socket, close every flow."""
        out: list[Action] = []
        if self.closed:
            return out
        self.closed = True
        self._abort_all("connection_lost", out)
        for sid in self._setups:
            out.append(CancelConnect(sid))
        self._setups.clear()
        for flow in self.flows.values():
            self.flows.remove(flow.flow_id)
            out.append(CloseUdpFlow(flow.flow_id))
            self.observer.udp_flow_closed(False)
        self._flow_timer = None
        self._pending.clear()
        self._undecided.clear()
        return out
