"""The relay client: local TCP/UDP listeners carried over one pooled QUIC connection.

``RAW -> QUIC -> RAW``: every accepted TCP connection becomes a new bidirectional stream on the
one QUIC connection to the relay server (plain TLS or REALITY); every local UDP sender becomes a
flow whose datagrams ride in QUIC DATAGRAM frames. Streams are opened only after the handshake
completed (so no 1-RTT stream data precedes the client Finished).

If the connection dies, every stream open on it is reset locally (an RST, never a FIN: nothing
half-written is reported as success), UDP flows are forgotten, and a new connection is made after
a backoff that doubles from ``backoff_min`` to ``backoff_max`` (reset by a successful handshake).
Connections accepted while there is no connection wait, unread, for up to ``wait_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..metrics import RelayMetrics, relay_metrics
from ..quic import events
from ..quic.config import QuicConfiguration
from ..quic.connection import QuicConnection
from ..quic.errors import LocalProtocolError
from ..relay.config import RelayConfig
from ..relay.flows import FlowTable
from ..relay.protocol import (
    INCOMPLETE,
    STATUS_ERROR_CODE,
    Destination,
    Kind,
    Preface,
    RelayErrorCode,
    StatusAnswer,
    StatusReader,
    decode_datagram,
    describe_error_code,
    encode_preface,
    flow_id_of_stream,
)
from .driver import Driver
from .relay_pump import RelayLink, SideMetrics, TcpBridge, Waker
from .relay_udp import ClientUdpFlow, UdpListener, queue_udp_datagram
from .udp import open_udp_socket

log = logging.getLogger("quicreality.relay")

#: The status a server's reset code stands for (REFUSED, UNREACHABLE, ...).
STATUS_OF_ERROR_CODE = {int(code): status for status, code in STATUS_ERROR_CODE.items()}
#: Datagrams a new UDP flow keeps while waiting for the server's status answer.
UDP_OPENING_QUEUE = 64


@dataclass(frozen=True, slots=True)
class Forward:
    """One ``--tcp-listen``/``--udp-listen`` plus ``--forward`` pair."""

    kind: Kind
    listen: tuple[str, int]
    destination: Destination


# --------------------------------------------------------------------------------- TCP side


class ClientTcpBridge(TcpBridge):
    """An accepted local TCP connection; its stream starts with the status answer."""

    inbound_direction = "up"

    def __init__(self, client: RelayClient, forward: Forward) -> None:
        super().__init__(client.config, client.side_metrics)
        self.client = client
        self.forward = forward
        self.status: StatusAnswer | None = None
        self._status_reader = StatusReader()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.client.accept(self)

    def stream_data(self, data: bytes, end_stream: bool) -> None:
        if self.status is None:
            try:
                got = self._status_reader.feed(data, end_stream)
            except ValueError as exc:
                log.warning("relay: stream %s to %s: %s", self.stream_id,
                            self.forward.destination, exc)
                self.abort("bad_status", reset_stream=True, code=RelayErrorCode.ERROR)
                return
            if got is INCOMPLETE:
                return
            answer, data = got  # type: ignore[misc]
            self.status = answer
            outcome = answer.status.name.lower()
            self.metrics.stream_opened("tcp", outcome)
            if not answer.ok:
                log.warning("relay: stream %s to %s %s by the server: %s", self.stream_id,
                            self.forward.destination, outcome, answer.reason)
                self.abort(outcome, reset_stream=True,
                           code=answer.error_code or RelayErrorCode.ERROR)
                return
            if not data and not end_stream:
                return
        super().stream_data(data, end_stream)

    def stop_sending(self, error_code: int) -> None:
        if self._refused_early(error_code):
            return
        super().stop_sending(error_code)

    def stream_reset(self, error_code: int) -> None:
        if self._refused_early(error_code):
            return
        super().stream_reset(error_code)

    def _refused_early(self, error_code: int) -> bool:
        """The server's STOP_SENDING can overtake its status answer: the code says it all."""
        status = STATUS_OF_ERROR_CODE.get(error_code)
        if self.status is not None or status is None or self.finished:
            return False
        self.status = StatusAnswer(status)
        outcome = status.name.lower()
        self.metrics.stream_opened("tcp", outcome)
        log.warning("relay: stream %s to %s %s by the server", self.stream_id,
                    self.forward.destination, outcome)
        self.abort(outcome, reset_stream=True, code=error_code)
        return True

    def on_finished(self) -> None:
        self.client.bridge_done(self)


# ------------------------------------------------------------------------- one connection


class ClientLink(RelayLink):
    """The relay streams and flows of one client connection."""

    def __init__(self, conn: QuicConnection, client: RelayClient, wake: Callable[[], None]) -> None:
        super().__init__(conn, client.config, wake, client.side_metrics)
        self.client = client
        self.flows: FlowTable[tuple[int, Any], ClientUdpFlow] = FlowTable(
            idle_timeout=client.config.udp_idle_timeout, max_flows=client.config.max_udp_flows)
        self.flow_ids: dict[int, ClientUdpFlow] = {}
        self.closed = False

    def open_tcp(self, bridge: ClientTcpBridge) -> None:
        """Open a stream for an accepted connection."""
        sid = self.conn.get_next_available_stream_id()
        bridge.attach(self, sid, encode_preface(Preface(Kind.TCP, bridge.forward.destination)))

    def open_udp(self, listener: UdpListener, addr: Any, now: float) -> ClientUdpFlow | None:
        """Open a flow for a new local sender (None if the flow table is full)."""
        if self.flows.full:
            return None
        sid = self.conn.get_next_available_stream_id()
        flow = ClientUdpFlow(listener, addr, self, sid)
        self.conn.send_stream_data(sid, encode_preface(Preface(Kind.UDP, listener.forward.destination)))
        self.flows.add(flow.key, flow, now)
        self.flow_ids[flow.flow_id] = flow
        self.metrics.udp_active.inc()
        self.metrics.metrics.udp_flows_total.labels("client").inc()
        self.wake()
        return flow

    def send_udp(self, flow: ClientUdpFlow, payload: bytes) -> None:
        """Send one datagram of an open flow (dropped when the QUIC queue is full)."""
        if queue_udp_datagram(self.conn, flow.flow_id, payload,
                              queue_limit=self.config.udp_queue_limit,
                              max_datagram=self.max_datagram, metrics=self.metrics):
            self.metrics.udp_up.inc()
        self.wake()

    def close_flow(self, flow: ClientUdpFlow, *, send_fin: bool, reason: str) -> None:
        """Forget a flow; optionally end its stream."""
        if self.flow_ids.pop(flow.flow_id, None) is None:
            return
        self.flows.remove(flow.key)
        self.metrics.udp_active.dec()
        log.debug("relay: client UDP flow %d from %s closed (%s)", flow.flow_id, flow.addr, reason)
        if send_fin:
            try:
                self.conn.send_stream_data(flow.stream_id, b"", end_stream=True)
            except LocalProtocolError:
                pass
            self.wake()

    def expire_flows(self, now: float) -> None:
        """Close idle flows."""
        for _, flow in self.flows.expire(now):
            self.metrics.metrics.udp_flows_expired.labels("client").inc()
            self.close_flow(flow, send_fin=True, reason="idle")

    def handle_event(self, event: Any, now: float) -> None:
        """Route one QUIC event to its bridge or flow."""
        etype = type(event)
        if etype is events.StreamDataReceived:
            sid = event.stream_id
            bridge = self.streams.get(sid)
            if bridge is not None:
                bridge.stream_data(event.data, event.end_stream)
                return
            flow = self.flow_ids.get(flow_id_of_stream(sid)) if sid & 3 == 0 else None
            if flow is not None:
                self._flow_stream_data(flow, event.data, event.end_stream, now)
        elif etype is events.DatagramFrameReceived:
            try:
                flow_id, payload = decode_datagram(event.data)
            except ValueError:
                self.metrics.udp_dropped("malformed")
                return
            flow = self.flow_ids.get(flow_id)
            if flow is None or flow.status is None:
                self.metrics.udp_dropped("unknown_flow")
                return
            self.flows.touch(flow.key, now)
            self.metrics.udp_down.inc()
            flow.listener.send(payload, flow.addr)
        elif etype is events.StreamReset or etype is events.StopSendingReceived:
            sid = event.stream_id
            bridge = self.streams.get(sid)
            if bridge is not None:
                if etype is events.StreamReset:
                    bridge.stream_reset(event.error_code)
                else:
                    bridge.stop_sending(event.error_code)
                return
            flow = self.flow_ids.get(flow_id_of_stream(sid)) if sid & 3 == 0 else None
            if flow is not None:
                status = STATUS_OF_ERROR_CODE.get(event.error_code)
                if flow.status is None and status is not None:
                    self._flow_refused(flow, StatusAnswer(status))  # it overtook the answer
                    return
                self.metrics.reset("peer_reset")
                self.close_flow(flow, send_fin=False,
                                reason=f"reset ({describe_error_code(event.error_code)})")

    def _flow_stream_data(self, flow: ClientUdpFlow, data: bytes, end_stream: bool,
                          now: float) -> None:
        if flow.status is None:
            try:
                got = flow._reader.feed(data, end_stream)
            except ValueError as exc:
                log.warning("relay: UDP flow %d: %s", flow.flow_id, exc)
                self.close_flow(flow, send_fin=True, reason="bad status")
                return
            if got is INCOMPLETE:
                return
            answer, _ = got  # type: ignore[misc]
            if not answer.ok:
                self._flow_refused(flow, answer)
                return
            flow.status = answer
            self.metrics.stream_opened("udp", "ok")
            queued, flow.queue = flow.queue, []
            for payload in queued:
                self.send_udp(flow, payload)
        if end_stream:
            self.close_flow(flow, send_fin=True, reason="closed by the server")

    def _flow_refused(self, flow: ClientUdpFlow, answer: StatusAnswer) -> None:
        flow.status = answer
        outcome = answer.status.name.lower()
        self.metrics.stream_opened("udp", outcome)
        log.warning("relay: UDP flow from %s to %s %s by the server%s", flow.addr,
                    flow.listener.forward.destination, outcome,
                    f": {answer.reason}" if answer.reason else "")
        self.metrics.reset(outcome)
        self.close_flow(flow, send_fin=True, reason=outcome)

    def close(self, cause: str) -> None:
        """The connection is gone: reset every socket, forget every flow."""
        if self.closed:
            return
        self.closed = True
        self.abort_all(cause)
        for flow in list(self.flow_ids.values()):
            self.close_flow(flow, send_fin=False, reason=cause)


class ClientSession(Driver):
    """One QUIC connection attempt to the relay server, on its own UDP socket."""

    def __init__(self, sock: socket.socket, conn: QuicConnection, client: RelayClient) -> None:
        super().__init__(sock, client.loop)
        self.conn = conn
        self.client = client
        self.link: ClientLink | None = None
        self.gone = False
        self.started_at = 0.0
        self.close_reason = "connection closed"
        idle = conn.configuration.idle_timeout
        #: PING this often so that an idle pooled connection stays up (idle timeout / 3).
        self.keepalive = client.keepalive or (max(1.0, idle / 3) if idle else 10.0)
        self.last_ping = 0.0
        self._wake = Waker(self.service, client.loop)

    def datagram_received(self, data: bytes, addr: Any, now: float) -> Any:
        self.conn.receive_datagram(data, addr, now)
        return (self.conn,)

    def connections(self) -> Any:
        return () if self.conn.is_terminated or self.gone else (self.conn,)

    def start(self, addr: Any) -> None:
        """Send the first flight."""
        now = self.now()
        self.started_at = self.last_ping = now
        self.conn.connect(addr, now)
        self.service([self.conn], now)

    def handle_events(self, conn: QuicConnection, now: float) -> None:
        link = self.link
        while (event := conn.next_event()) is not None:
            if link is not None:
                link.handle_event(event, now)
            if isinstance(event, events.HandshakeCompleted):
                link = self.link = ClientLink(conn, self.client, lambda: self._wake(conn))
                self.client.session_ready(self, now - self.started_at)
            elif isinstance(event, events.ConnectionTerminated):
                self.close_reason = (f"{event.reason_phrase or 'closed'} "
                                     f"(code {event.error_code:#x}{', by peer' if event.by_peer else ''})")
                self.abandon(self.close_reason, send_close=False)
                return
        if link is not None:
            link.pump()

    def connection_gone(self, conn: QuicConnection) -> None:
        self.abandon(self.close_reason, send_close=False)

    def abandon(self, reason: str, *, send_close: bool = True) -> None:
        """Give the connection up (closing it if asked) and tell the client once."""
        if self.gone:
            return
        if send_close and not self.conn.is_terminated:
            self.conn.close(0, None, reason)
            try:
                self.io.send(self.conn.datagrams_to_send(self.now()))
            except OSError:
                pass
        self.gone = True
        if self.link is not None:
            self.link.close("connection_lost")
        self.client.loop.call_soon(self._dispose)
        self.client.session_lost(self, reason)

    def _dispose(self) -> None:
        self.close()
        self.sock.close()


# ------------------------------------------------------------------------------ the client


class RelayClient:
    """Listeners plus a self-healing pooled connection (see the module docstring).

    Args:
        server: the relay server's UDP address.
        make_config: a fresh QUIC client configuration per connection attempt (REALITY needs
            one per connection).
        forwards: what to listen on and where it goes.
        config: windows, water marks and UDP limits (``allow`` is not used here).
    """

    def __init__(self, server: tuple[str, int], make_config: Callable[[], QuicConfiguration],
                 forwards: list[Forward], config: RelayConfig | None = None, *,
                 metrics: RelayMetrics | None = None, handshake_timeout: float = 5.0,
                 wait_timeout: float = 10.0, backoff_min: float = 0.1, backoff_max: float = 5.0,
                 keepalive: float | None = None,
                 on_status: Callable[[str], None] | None = None) -> None:
        self.server = server
        self.make_config = make_config
        self.forwards = forwards
        self.config = config or RelayConfig()
        self.side_metrics = SideMetrics(metrics or relay_metrics(), "client")
        self.handshake_timeout = handshake_timeout
        self.wait_timeout = wait_timeout
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.keepalive = keepalive
        self.on_status = on_status or (lambda line: None)
        self.loop = asyncio.get_event_loop()
        self.session: ClientSession | None = None
        self.ready: ClientLink | None = None
        self.bound: list[tuple[Kind, str, int]] = []
        self.connections_made = 0
        self._servers: list[asyncio.AbstractServer] = []
        self._udp: list[UdpListener] = []
        self._waiting: dict[ClientTcpBridge, float] = {}
        self._backoff = backoff_min
        self._server_addr: Any = None
        self._timers: list[asyncio.TimerHandle] = []
        self._closed = False
        self._tick_handle: asyncio.TimerHandle | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open the listeners and start connecting."""
        self.loop = asyncio.get_running_loop()
        infos = await self.loop.getaddrinfo(self.server[0], self.server[1], type=socket.SOCK_DGRAM)
        self._server_addr = infos[0][4]
        try:
            for fwd in self.forwards:
                host, port = fwd.listen
                if fwd.kind == Kind.TCP:
                    srv = await self.loop.create_server(
                        lambda fwd=fwd: ClientTcpBridge(self, fwd), host, port,  # type: ignore[misc]
                        reuse_address=True)
                    self._servers.append(srv)
                    name = srv.sockets[0].getsockname()
                else:
                    sock = open_udp_socket(host, port)
                    self._udp.append(UdpListener(self, fwd, sock))
                    name = sock.getsockname()
                self.bound.append((fwd.kind, name[0], name[1]))
                self.on_status(f"listening {fwd.kind.name.lower()} {name[0]}:{name[1]} -> "
                               f"{fwd.destination}")
        except BaseException:
            await self.close()
            raise
        self._connect()
        self._tick_handle = self.loop.call_later(1.0, self._tick)

    async def close(self) -> None:
        """Close listeners, local connections and the QUIC connection."""
        self._closed = True
        for handle in self._timers:
            handle.cancel()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        for srv in self._servers:
            srv.close()
        for listener in self._udp:
            listener.close()
        for bridge in list(self._waiting):
            bridge.abort("client_closed", reset_stream=False)
        session = self.session
        if session is not None:
            session.abandon("relay client stopped")
        for srv in self._servers:
            await srv.wait_closed()
        await asyncio.sleep(0)

    def _connect(self) -> None:
        if self._closed:
            return
        sock = open_udp_socket("::" if ":" in self._server_addr[0] else "0.0.0.0", 0)
        cfg = self.make_config()
        cfg.is_client = True
        session = ClientSession(sock, QuicConnection(configuration=cfg), self)
        self.session = session
        session.start(self._server_addr)
        self._timers.append(self.loop.call_later(self.handshake_timeout, self._check_handshake,
                                                 session))

    def _check_handshake(self, session: ClientSession) -> None:
        if session is self.session and session.link is None and not session.gone:
            session.abandon(f"no handshake within {self.handshake_timeout:g} s")

    def session_ready(self, session: ClientSession, handshake_secs: float) -> None:
        """The handshake completed: open the streams of waiting connections."""
        self.ready = session.link
        self.connections_made += 1
        self._backoff = self.backoff_min
        self.on_status(f"connected to {self.server[0]}:{self.server[1]} "
                       f"(handshake {handshake_secs * 1000:.1f} ms)")
        assert session.link is not None
        waiting, self._waiting = self._waiting, {}
        for bridge in waiting:
            if not bridge.finished:
                session.link.open_tcp(bridge)

    def session_lost(self, session: ClientSession, reason: str) -> None:
        """The connection is gone: schedule a new one after the backoff."""
        if session is not self.session:
            return
        self.session = None
        self.ready = None
        if self._closed:
            return
        self.on_status(f"connection lost: {reason}; reconnecting in {self._backoff:.1f} s")
        log.warning("relay: connection to %s:%d lost: %s", self.server[0], self.server[1], reason)
        self._timers.append(self.loop.call_later(self._backoff, self._connect))
        self._backoff = min(self._backoff * 2, self.backoff_max)

    def _tick(self) -> None:
        """Once a second: expire waiting connections and idle flows, keep the connection alive."""
        now = self.loop.time()
        for bridge, since in list(self._waiting.items()):
            if now - since >= self.wait_timeout:
                self._waiting.pop(bridge, None)
                log.warning("relay: no connection to the server within %.0f s; resetting %s",
                            self.wait_timeout, bridge.forward.destination)
                bridge.abort("no_connection", reset_stream=False)
        link = self.ready
        session = self.session
        if link is not None and session is not None:
            link.expire_flows(now)
            if now - session.last_ping >= session.keepalive:
                session.last_ping = now
                session.conn.send_ping(0)
                link.wake()
        if not self._closed:
            self._tick_handle = self.loop.call_later(1.0, self._tick)

    # ------------------------------------------------------------------- routing

    def accept(self, bridge: ClientTcpBridge) -> None:
        """A local TCP connection arrived."""
        if self.ready is not None:
            self.ready.open_tcp(bridge)
        else:
            self._waiting[bridge] = self.loop.time()

    def bridge_done(self, bridge: ClientTcpBridge) -> None:
        """A local TCP connection ended."""
        self._waiting.pop(bridge, None)

    def udp_datagram(self, listener: UdpListener, data: bytes, addr: Any) -> None:
        """A datagram from a local UDP sender."""
        link = self.ready
        if link is None:
            self.side_metrics.udp_dropped("no_connection")
            return
        now = self.loop.time()
        flow = link.flows.get((id(listener), addr))
        if flow is None:
            flow = link.open_udp(listener, addr, now)
            if flow is None:
                self.side_metrics.udp_dropped("too_many_flows")
                return
        link.flows.touch(flow.key, now)
        if flow.status is None:
            if len(flow.queue) < UDP_OPENING_QUEUE:
                flow.queue.append(data)
            else:
                self.side_metrics.udp_dropped("opening_queue_full")
            return
        link.send_udp(flow, data)
