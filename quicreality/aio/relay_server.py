"""The relay server's asyncio edge: carries out the server session's actions.

:class:`ServerLink` sits between a server :class:`~quicreality.quic.connection.QuicConnection`
and its HTTP/3 session. Every decision (which streams are the relay's, prefaces, the allow-list,
status answers, half-close and reset mapping, UDP flow limits and expiry, set-up timeouts) is
the sans-IO :class:`~quicreality.relay.server_session.ServerRelaySession`'s. This edge only:

* hands the session the connection's events and gives HTTP/3 what comes back as ``Deliver``;
* resolves names, connects TCP sockets to the candidates in order, opens connected UDP sockets,
  and reports each result back;
* moves bytes on the sockets (:class:`~quicreality.aio.relay_pump.TcpSocket`,
  :class:`~quicreality.aio.relay_udp.UdpFlowSocket`);
* arms one timer at the session's ``get_timer()``;
* in a chain (``[relay.upstream]``), carries ``ConnectUpstream`` out on the process's pooled
  upstream connection (:mod:`quicreality.aio.relay_upstream`).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from functools import partial
from typing import cast

from ..metrics import RelayMetrics, relay_metrics
from ..quic.connection import QuicConnection
from ..quic.events import QuicEvent
from ..relay.actions import (
    Action,
    CancelConnect,
    CloseUdpFlow,
    ConnectTcp,
    ConnectUpstream,
    Deliver,
    OpenUdpFlow,
    Resolve,
    SendUdp,
    SockAddr,
)
from ..relay.config import RelayConfig
from ..relay.protocol import Kind, Status, StatusAnswer, flow_id_of_stream
from ..relay.server_session import ServerRelaySession
from .relay_pump import RelayEdge, SideMetrics, TcpSocket
from .relay_udp import UdpFlowSocket
from .relay_upstream import BridgeEnd, UpstreamUdpLeg, bridge_pair, upstream_pool

#: The session's timers fire this much late, so that what is due has surely expired.
TIMER_SLACK = 0.05


def status_of_error(exc: BaseException) -> Status:
    """The status answer for a failed resolution or connect."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Status.TIMEOUT
    if isinstance(exc, OSError):  # connection refused, no route, name not known
        return Status.UNREACHABLE
    return Status.ERROR


def _detail(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class ServerLink(RelayEdge):
    """The relay edge of one server connection (see the module docstring).

    Args:
        conn: the server connection.
        config: the ``[relay]`` settings (allow-list, limits, timeouts).
        wake: asks for the connection's send path to run soon.
        loop: the event loop (default: the current one).
        metrics: the process's relay metrics (default: :func:`~quicreality.metrics.relay_metrics`).
    """

    def __init__(self, conn: QuicConnection, config: RelayConfig, wake: Callable[[], None], *,
                 loop: asyncio.AbstractEventLoop | None = None,
                 metrics: RelayMetrics | None = None) -> None:
        side = SideMetrics(metrics or relay_metrics(), "server")
        self.server_session = ServerRelaySession(
            conn, config, max_datagram_size=conn.configuration.max_datagram_size, observer=side)
        super().__init__(conn, self.server_session, side, wake, loop or asyncio.get_event_loop(),
                         inbound="down")
        self._tasks: dict[int, asyncio.Task[None]] = {}  # resolutions and connects, by stream
        self._flows: dict[int, UdpFlowSocket] = {}
        self._legs: dict[int, UpstreamUdpLeg] = {}  # UDP flows carried on upstream, by flow id
        self._delivered: list[QuicEvent] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    @property
    def closed(self) -> bool:
        """True once the connection is gone."""
        return self.server_session.closed

    def reconfigure(self, config: RelayConfig) -> None:
        """A reloaded ``[relay]``: its allow-list, timeouts and upstream decide every new
        stream of this connection (windows and water marks stay as the connection began)."""
        self.config = config
        self.server_session.config = config

    # ----------------------------------------------------------------- routing

    def filter_event(self, event: QuicEvent) -> list[QuicEvent]:
        """Consume the relay's events; return what HTTP/3 should see (usually ``[event]``)."""
        session = self.server_session
        actions = session.handle_event(event, self.loop.time())
        if len(actions) == 1 and not session.closed:
            only = actions[0]
            if type(only) is Deliver:
                return [only.event]  # the common case: not the relay's
        delivered: list[QuicEvent] = []
        self._delivered = delivered
        self.run(actions)
        if session.closed:
            self.close()
        return delivered

    def pump(self) -> None:
        """After a batch of events: resume drained sockets, re-arm the timer."""
        super().pump()
        self._arm_timer()

    # ------------------------------------------------------------ carrying out

    def _carry_out(self, action: Action) -> None:
        match action:
            case SendUdp(flow_id=flow_id, payload=payload):
                flow = self._flows.get(flow_id)
                if flow is not None:
                    flow.send(payload)
                elif (leg := self._legs.get(flow_id)) is not None:
                    leg.send_up(payload)
            case Deliver(event=event):
                self._delivered.append(event)
            case Resolve():
                self._spawn(action.stream_id, self._resolve(action))
            case ConnectTcp(stream_id=sid):
                sock = TcpSocket(self, self.config, stream_id=sid)
                self.sockets[sid] = sock
                self._spawn(sid, self._connect(action, sock))
            case ConnectUpstream(stream_id=sid):
                self._connect_upstream(action)
            case OpenUdpFlow():
                self._open_udp(action)
            case CloseUdpFlow(flow_id=flow_id):
                flow = self._flows.pop(flow_id, None)
                if flow is not None:
                    flow.close()
                if (leg := self._legs.pop(flow_id, None)) is not None:
                    leg.close_up()
            case CancelConnect(stream_id=sid):
                if (leg := self._legs.pop(flow_id_of_stream(sid), None)) is not None:
                    leg.close_up()
                task = self._tasks.pop(sid, None)
                if task is not None:
                    task.cancel()
                waiting = self.sockets.pop(sid, None)
                if waiting is not None:
                    waiting.abort()
            case _:
                super()._carry_out(action)

    def _after(self, actions: list[Action]) -> None:
        """Carry out the actions of a result that came back, then re-arm the timer."""
        self.run(actions)
        self._arm_timer()

    def _spawn(self, sid: int, coro: Coroutine[object, object, None]) -> None:
        task = self.loop.create_task(coro)
        self._tasks[sid] = task
        task.add_done_callback(partial(self._task_done, sid))

    def _task_done(self, sid: int, task: asyncio.Task[None]) -> None:
        if self._tasks.get(sid) is task:
            del self._tasks[sid]

    async def _resolve(self, action: Resolve) -> None:
        kind = socket.SOCK_STREAM if action.kind == Kind.TCP else socket.SOCK_DGRAM
        sid = action.stream_id
        try:
            infos = await self.loop.getaddrinfo(action.host, action.port, type=kind)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            self._tasks.pop(sid, None)
            self._after(self.server_session.connect_failed(sid, status_of_error(exc),
                                                           _detail(exc), self.loop.time()))
            return
        self._tasks.pop(sid, None)
        candidates = [(int(i[0]), cast(SockAddr, i[4])) for i in infos]
        self._after(self.server_session.resolved(sid, candidates, self.loop.time()))

    async def _connect(self, action: ConnectTcp, sock: TcpSocket) -> None:
        """Try the candidates in order; success is reported by the socket (``tcp_made``)."""
        sid = action.stream_id
        last: OSError | None = None
        for family, addr in action.candidates:
            try:
                await self.loop.create_connection(lambda: sock, addr[0], addr[1], family=family)
            except OSError as exc:
                last = exc
                continue
            return
        self._tasks.pop(sid, None)
        if self.sockets.get(sid) is sock:
            del self.sockets[sid]
        sock.done = True
        assert last is not None
        self._after(self.server_session.connect_failed(sid, status_of_error(last),
                                                       _detail(last), self.loop.time()))

    def _connect_upstream(self, action: ConnectUpstream) -> None:
        upstream = self.config.upstream
        assert upstream is not None
        sid = action.stream_id
        pool = upstream_pool(upstream, self.config)
        if action.kind == Kind.UDP:
            flow_id = flow_id_of_stream(sid)
            leg = UpstreamUdpLeg(
                pool, sid, action.destination, action.hop_limit,
                on_datagram=lambda payload: self._from_destination(flow_id, [payload]),
                on_answer=partial(self._upstream_flow_answered, flow_id),
                on_end=partial(self._upstream_flow_ended, flow_id))
            self._legs[flow_id] = leg
            pool.open_udp(leg)
            return
        s_end, c_end = bridge_pair(self, self.config, pool, pool.config, self.loop,
                                   stream_id=sid, destination=action.destination,
                                   hop_limit=action.hop_limit, on_answer=self._upstream_answered)
        self.sockets[sid] = s_end
        pool.open(c_end)

    def _upstream_answered(self, s_end: BridgeEnd, answer: StatusAnswer) -> None:
        """The upstream relay's answer for a leg: the downstream stream's answer."""
        sid = s_end.stream_id
        if s_end.done or sid is None or self.sockets.get(sid) is not s_end:
            return
        if answer.ok:
            self.tcp_made(s_end)
            return
        del self.sockets[sid]
        s_end.done = True
        upstream = self.config.upstream
        via = f"via {upstream.server}" if upstream is not None else "via the upstream"
        self._after(self.server_session.connect_failed(
            sid, answer.status, f"{via}: {answer.reason or answer.status.name.lower()}",
            self.loop.time()))

    def _upstream_flow_answered(self, flow_id: int, answer: StatusAnswer) -> None:
        leg = self._legs.get(flow_id)
        if leg is None:
            return
        now = self.loop.time()
        if answer.ok:
            self._after(self.server_session.udp_flow_opened(leg.stream_id, now))
            return
        del self._legs[flow_id]
        upstream = self.config.upstream
        via = f"via {upstream.server}" if upstream is not None else "via the upstream"
        self._after(self.server_session.connect_failed(
            leg.stream_id, answer.status, f"{via}: {answer.reason or answer.status.name.lower()}",
            now))

    def _upstream_flow_ended(self, flow_id: int, reason: str) -> None:
        if self._legs.pop(flow_id, None) is not None:
            self._after(self.server_session.udp_flow_lost(flow_id, f"upstream: {reason}",
                                                          self.loop.time()))

    def tcp_made(self, sock: TcpSocket) -> None:
        """A destination socket is connected: the session answers OK."""
        sid = sock.stream_id
        if sock.done or sid is None or self.sockets.get(sid) is not sock:
            sock.abort()  # the client gave up while we were connecting
            return
        self._tasks.pop(sid, None)
        self._after(self.server_session.tcp_connected(sid, self.loop.time()))

    def _open_udp(self, action: OpenUdpFlow) -> None:
        family, addr = action.candidate
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.connect(addr)
            except OSError:
                sock.close()
                raise
        except OSError as exc:
            self._after(self.server_session.connect_failed(action.stream_id, status_of_error(exc),
                                                           _detail(exc), self.loop.time()))
            return
        self._flows[action.flow_id] = UdpFlowSocket(
            self.loop, sock, partial(self._from_destination, action.flow_id),
            self.metrics.udp_dropped)
        self._after(self.server_session.udp_flow_opened(action.stream_id, self.loop.time()))

    def _from_destination(self, flow_id: int, payloads: list[bytes]) -> None:
        self.run(self.server_session.udp_from_destination(flow_id, payloads, self.loop.time()))

    # ------------------------------------------------------------------ timer

    def _arm_timer(self) -> None:
        due = self.server_session.get_timer()
        if due == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = due
        if due is not None:
            self._timer = self.loop.call_at(due + TIMER_SLACK, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._after(self.server_session.handle_timer(self.loop.time()))

    # -------------------------------------------------------------------- end

    def close(self) -> None:
        """The connection is gone: reset every destination socket, close every flow."""
        self.run(self.server_session.close(self.loop.time()))  # nothing the second time
        for task in list(self._tasks.values()):
            task.cancel()
        self._tasks.clear()
        for flow in list(self._flows.values()):
            flow.close()
        self._flows.clear()
        for leg in list(self._legs.values()):
            leg.close_up()
        self._legs.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None
