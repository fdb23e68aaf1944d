"""The relay server side: relay streams and UDP flows of one server connection.

:class:`ServerLink` sits between a server :class:`~quicreality.quic.connection.QuicConnection`
and its HTTP/3 session. :meth:`ServerLink.filter_event` looks at the first bytes of every
client-initiated bidirectional stream: a stream that starts with the relay magic is the relay's,
every other stream (and every other event) is handed back for HTTP/3, unchanged.

For a relay stream the server reads the preface, checks the destination against the allow-list
(deny by default; a host name is resolved and only allowed addresses are used), connects, and
answers with a status. A refused or failed stream gets the status, a FIN and STOP_SENDING with
the matching reset code, plus one log line. Payload then flows through a
:class:`~quicreality.aio.relay_pump.TcpBridge`. UDP flows get a connected UDP socket each, expire
after ``udp_idle_timeout`` without traffic, and are capped at ``max_udp_flows``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

from ..metrics import RelayMetrics, relay_metrics
from ..quic import events
from ..quic.connection import QuicConnection
from ..quic.errors import LocalProtocolError
from ..relay.allow import Allowed, Denied, ResolveFirst
from ..relay.config import RelayConfig
from ..relay.flows import FlowTable
from ..relay.protocol import (
    INCOMPLETE,
    Destination,
    Kind,
    Preface,
    PrefaceError,
    PrefaceReader,
    Status,
    StatusAnswer,
    decode_datagram,
    encode_status,
    flow_id_of_stream,
    starts_like_preface,
)
from ..wire.rangeset import RangeSet
from .relay_pump import RelayLink, SideMetrics, TcpBridge
from .relay_udp import ServerUdpFlow, queue_udp_datagram

log = logging.getLogger("quicreality.relay")

_OK = encode_status(StatusAnswer(Status.OK))


class RelayRefused(Exception):
    """Setting up a relay stream failed; carries the status to answer."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _status_of_error(exc: BaseException) -> Status:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Status.TIMEOUT
    if isinstance(exc, (ConnectionRefusedError, socket.gaierror, OSError)):
        return Status.UNREACHABLE
    return Status.ERROR


class ServerTcpBridge(TcpBridge):
    """The server's TCP connection to a destination."""

    inbound_direction = "down"

    def __init__(self, link: ServerLink, stream_id: int, destination: Destination) -> None:
        super().__init__(link.config, link.metrics, link, stream_id)
        self.server_link = link
        self.destination = destination

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self.finished:  # the client gave up while we were connecting
            transport.abort()
            return
        link = self.server_link
        link.conn.send_stream_data(self.stream_id, _OK)  # type: ignore[arg-type]
        link.metrics.stream_opened("tcp", "ok")
        super().connection_made(transport)
        link.conn.resume_stream_reading(self.stream_id)  # type: ignore[arg-type]
        link.wake()


class ServerLink(RelayLink):
    """Relay state of one server connection (see the module docstring)."""

    def __init__(self, conn: QuicConnection, config: RelayConfig, wake: Callable[[], None], *,
                 loop: asyncio.AbstractEventLoop | None = None,
                 metrics: RelayMetrics | None = None) -> None:
        super().__init__(conn, config, wake, SideMetrics(metrics or relay_metrics(), "server"))
        self.loop = loop or asyncio.get_event_loop()
        self.flows: FlowTable[int, ServerUdpFlow] = FlowTable(
            idle_timeout=config.udp_idle_timeout, max_flows=config.max_udp_flows)
        self._pending: dict[int, PrefaceReader] = {}  # relay streams whose preface is incomplete
        self._undecided: dict[int, bytes] = {}  # streams shorter than the magic so far
        self._relay_ids = RangeSet()  # quarter stream ids that are (or were) the relay's
        self._other_ids = RangeSet()  # quarter stream ids handed to HTTP/3
        self._tasks: set[asyncio.Task[None]] = set()
        self._expiry: asyncio.TimerHandle | None = None
        self.closed = False

    # ----------------------------------------------------------------- routing

    def filter_event(self, event: Any) -> list[Any]:
        """Consume the relay's events; return what HTTP/3 should see (usually ``[event]``)."""
        etype = type(event)
        if etype is events.StreamDataReceived:
            sid = event.stream_id
            if sid & 3:
                return [event]  # not client-initiated bidirectional: never the relay's
            bridge = self.streams.get(sid)
            if bridge is not None:
                bridge.stream_data(event.data, event.end_stream)
                return []
            return self._other_stream_data(event)
        if etype is events.DatagramFrameReceived:
            self._datagram(event.data)
            return []
        if etype is events.StreamReset or etype is events.StopSendingReceived:
            sid = event.stream_id
            bridge = self.streams.get(sid)
            if bridge is not None:
                if etype is events.StreamReset:
                    bridge.stream_reset(event.error_code)
                else:
                    bridge.stop_sending(event.error_code)
                return []
            quarter = flow_id_of_stream(sid)
            flow = self.flows.get(quarter) if not sid & 3 else None
            if flow is not None:
                self.metrics.reset("peer_reset")
                self._close_flow(flow, send_fin=False, reason="reset by the client")
                return []
            if self._pending.pop(sid, None) is not None or quarter in self._relay_ids:
                return []
            self._undecided.pop(sid, None)
            return [event]
        if etype is events.ConnectionTerminated:
            self.close()
        return [event]

    def _other_stream_data(self, event: events.StreamDataReceived) -> list[Any]:
        sid = event.stream_id
        quarter = flow_id_of_stream(sid)
        flow = self.flows.get(quarter)
        if flow is not None:
            if event.end_stream:
                self._close_flow(flow, send_fin=True, reason="closed by the client")
            return []
        reader = self._pending.get(sid)
        if reader is not None:
            self._feed_preface(sid, reader, event.data, event.end_stream)
            return []
        if quarter in self._relay_ids:
            return []  # late data of a finished relay stream
        if quarter in self._other_ids:
            return [event]
        data = self._undecided.pop(sid, b"") + event.data
        verdict = starts_like_preface(data)
        if verdict is None and not event.end_stream:
            self._undecided[sid] = data
            return []
        if not verdict:
            self._other_ids.add(quarter)
            if data is event.data:
                return [event]
            return [events.StreamDataReceived(stream_id=sid, data=data, end_stream=event.end_stream)]
        self._relay_ids.add(quarter)
        reader = PrefaceReader()
        self._pending[sid] = reader
        self._feed_preface(sid, reader, data, event.end_stream)
        return []

    def _feed_preface(self, sid: int, reader: PrefaceReader, data: bytes, end_stream: bool) -> None:
        try:
            got = reader.feed(data, end_stream)
        except PrefaceError as exc:
            del self._pending[sid]
            self._refuse(sid, "?", None, exc.status, exc.reason)
            return
        if got is INCOMPLETE:
            return
        del self._pending[sid]
        preface, rest = got  # type: ignore[misc]
        self._start(sid, preface, rest, end_stream)

    # --------------------------------------------------------------- set-up

    def _start(self, sid: int, preface: Preface, rest: bytes, end_stream: bool) -> None:
        dest = preface.destination
        kind = preface.kind.name.lower()
        if self.closed:
            return
        decision = self.config.allow.decide(dest)
        if isinstance(decision, Denied):
            self._refuse(sid, kind, dest, Status.REFUSED, decision.reason)
            return
        if preface.kind == Kind.UDP and self.flows.full:
            self._refuse(sid, kind, dest, Status.BUSY, "too many UDP flows")
            return
        self.conn.pause_stream_reading(sid)  # until the destination is connected
        if preface.kind == Kind.TCP:
            bridge = ServerTcpBridge(self, sid, dest)
            if rest or end_stream:
                bridge.stream_data(rest, end_stream)
            self._spawn(self._connect_tcp(bridge, decision))
        else:
            self._spawn(self._open_udp(sid, dest, decision))

    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _addresses(self, dest: Destination, decision: Allowed | ResolveFirst,
                         kind: int) -> list[tuple[int, Any]]:
        """(family, sockaddr) candidates the allow-list permits, in resolver order."""
        infos = await self.loop.getaddrinfo(
            decision.host if isinstance(decision, Allowed) else decision.name, dest.port,
            type=kind)
        if isinstance(decision, Allowed):
            return [(i[0], i[4]) for i in infos]
        allowed = set(self.config.allow.permitted_addresses([str(i[4][0]) for i in infos],
                                                            dest.port))
        out: list[tuple[int, Any]] = [(i[0], i[4]) for i in infos if str(i[4][0]) in allowed]
        if not out:
            raise RelayRefused(Status.REFUSED, f"{dest} resolves to no allowed address")
        return out

    async def _connect_tcp(self, bridge: ServerTcpBridge,
                           decision: Allowed | ResolveFirst) -> None:
        dest = bridge.destination
        sid = bridge.stream_id
        assert sid is not None
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                candidates = await self._addresses(dest, decision, socket.SOCK_STREAM)
                last: BaseException | None = None
                for family, addr in candidates:
                    if bridge.finished:
                        return
                    try:
                        await self.loop.create_connection(lambda: bridge, addr[0], addr[1],
                                                          family=family)
                        return
                    except OSError as exc:
                        last = exc
                assert last is not None
                raise last
        except RelayRefused as exc:
            status, reason = exc.status, exc.reason
        except asyncio.CancelledError:
            bridge.abort("cancelled", reset_stream=True)
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            status = _status_of_error(exc)
            reason = f"connect to {dest}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__}"
        if bridge.finished:
            return
        bridge.finished = True  # not via _finish: no RST for a socket that never existed
        self.metrics.tcp_active.dec()
        self.bridge_finished(bridge)
        self._refuse(sid, "tcp", dest, status, reason)

    async def _open_udp(self, sid: int, dest: Destination, decision: Allowed | ResolveFirst) -> None:
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                family, addr = (await self._addresses(dest, decision, socket.SOCK_DGRAM))[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.connect(addr)
            except OSError:
                sock.close()
                raise
        except RelayRefused as exc:
            self._refuse(sid, "udp", dest, exc.status, exc.reason)
            return
        except Exception as exc:  # noqa: BLE001
            self._refuse(sid, "udp", dest, _status_of_error(exc), f"{dest}: {exc}")
            return
        if self.closed or not self.flows.add(flow_id_of_stream(sid), ServerUdpFlow(
                self, sid, dest, sock), self.loop.time()):
            sock.close()
            self._refuse(sid, "udp", dest, Status.BUSY, "too many UDP flows")
            return
        self.conn.send_stream_data(sid, _OK)
        self.conn.resume_stream_reading(sid)
        self.metrics.stream_opened("udp", "ok")
        self.metrics.udp_active.inc()
        self.metrics.metrics.udp_flows_total.labels("server").inc()
        self._arm_expiry()
        self.wake()

    def _refuse(self, sid: int, kind: str, dest: Destination | None, status: Status,
                reason: str) -> None:
        """Answer a non-OK status, end our side, ask the client to stop, log once."""
        answer = StatusAnswer(status, reason)
        outcome = status.name.lower()
        log.warning("relay: %s stream %d to %s %s: %s", kind, sid, dest or "?", outcome, reason)
        self.metrics.stream_opened(kind, outcome)
        self.metrics.reset(outcome)
        if self.closed:
            return
        conn = self.conn
        try:
            conn.send_stream_data(sid, encode_status(answer), end_stream=True)
            conn.stop_stream(sid, answer.error_code or 0)
        except LocalProtocolError:
            pass
        conn.resume_stream_reading(sid)  # late client data is consumed and dropped
        self.wake()

    # ------------------------------------------------------------------- UDP

    def _datagram(self, data: bytes) -> None:
        try:
            flow_id, payload = decode_datagram(data)
        except ValueError:
            self.metrics.udp_dropped("malformed")
            return
        flow = self.flows.get(flow_id)
        if flow is None:
            self.metrics.udp_dropped("unknown_flow")
            return
        self.flows.touch(flow_id, self.loop.time())
        self.metrics.udp_up.inc()
        flow.send(payload)

    def send_udp(self, flow: ServerUdpFlow, payload: bytes) -> None:
        """Carry a datagram from the destination to the client."""
        if queue_udp_datagram(self.conn, flow.flow_id, payload,
                              queue_limit=self.config.udp_queue_limit,
                              max_datagram=self.max_datagram, metrics=self.metrics):
            self.metrics.udp_down.inc()

    def _close_flow(self, flow: ServerUdpFlow, *, send_fin: bool, reason: str) -> None:
        self.flows.remove(flow.flow_id)
        flow.close()
        self.metrics.udp_active.dec()
        log.debug("relay: UDP flow %d to %s closed (%s)", flow.flow_id, flow.destination, reason)
        if send_fin and not self.closed:
            try:
                self.conn.send_stream_data(flow.stream_id, b"", end_stream=True)
            except LocalProtocolError:
                pass
            self.wake()

    def _arm_expiry(self) -> None:
        if self._expiry is None and not self.closed:
            due = self.flows.next_expiry()
            if due is not None:
                self._expiry = self.loop.call_at(due + 0.05, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        for _, flow in self.flows.expire(self.loop.time()):
            self.metrics.metrics.udp_flows_expired.labels("server").inc()
            self._close_flow(flow, send_fin=True, reason="idle")
        self._arm_expiry()

    # ------------------------------------------------------------------- end

    def bridge_finished(self, bridge: TcpBridge) -> None:
        super().bridge_finished(bridge)
        if bridge.stream_id is not None and not self.closed:
            self.conn.resume_stream_reading(bridge.stream_id)

    def close(self) -> None:
        """The connection is gone: reset every destination socket, close every flow."""
        if self.closed:
            return
        self.closed = True
        self.abort_all("connection_lost")
        for task in list(self._tasks):
            task.cancel()
        for flow in self.flows.values():
            self.flows.remove(flow.flow_id)
            flow.close()
            self.metrics.udp_active.dec()
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._pending.clear()
        self._undecided.clear()
