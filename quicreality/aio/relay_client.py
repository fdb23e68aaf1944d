"""The relay client: local TCP/UDP listeners carried over one pooled QUIC connection.

``RAW -> QUIC -> RAW``: every accepted TCP connection becomes a new bidirectional stream on the
one QUIC connection to the relay server (plain TLS or REALITY); every local UDP sender becomes a
flow whose datagrams ride in QUIC DATAGRAM frames. Streams are opened only after the handshake
completed (so no 1-RTT stream data precedes the client Finished).

What happens on the streams and flows is decided by the sans-IO
:class:`~quicreality.relay.client_session.ClientRelaySession` of each connection; this module
keeps the sockets, the connection attempts and the timers:

* :class:`RelayClient`: the listeners, the connections that wait for a QUIC connection, and the
  reconnect policy. If the connection dies, every stream open on it is reset locally (an RST,
  never a FIN), UDP flows are forgotten, and a new connection is made after a backoff that
  doubles from ``backoff_min`` to ``backoff_max`` (reset by a successful handshake). Accepted
  connections wait, unread, for up to ``wait_timeout``.
* :class:`RelayConnection`: one connection attempt on its own UDP socket (a ``Driver``).
* :class:`ClientLink`: carries out the session's actions for one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import cast

from ..metrics import RelayMetrics, relay_metrics
from ..quic import events
from ..quic.config import QuicConfiguration
from ..quic.connection import QuicConnection
from ..relay.actions import Action, FlowAnswered, FlowEnded, SendUdpTo, SockAddr
from ..relay.client_session import ClientRelaySession
from ..relay.config import RelayConfig
from ..relay.protocol import Destination, Kind
from ..relay.session import LOSS_OUTCOME
from .driver import Driver
from .relay_pump import RelayEdge, SideMetrics, TcpSocket, Waker, tcp_loss
from .relay_udp import UdpListener, UdpRoute
from .udp import open_udp_socket

log = logging.getLogger("quicreality.relay")


@dataclass(frozen=True, slots=True)
class Forward:
    """One ``--tcp-listen``/``--udp-listen`` plus ``--forward`` pair."""

    kind: Kind
    listen: tuple[str, int]
    destination: Destination


# ------------------------------------------------------------------------- one connection


class ClientLink(RelayEdge):
    """The relay streams and flows of one client connection: the session's actions carried out.

    Args:
        conn: the connection (its handshake is complete).
        config: windows, water marks and UDP limits.
        metrics: the client's metrics.
        wake: asks for the connection's send path to run soon.
        loop: the event loop.
        listeners: the UDP routes by number (``SendUdpTo.route``): local listeners, or a
            middle relay's bridged legs.
    """

    def __init__(self, conn: QuicConnection, config: RelayConfig, metrics: SideMetrics,
                 wake: Callable[[], None], loop: asyncio.AbstractEventLoop,
                 listeners: dict[int, UdpRoute]) -> None:
        self.client_session = ClientRelaySession(
            conn, config, max_datagram_size=conn.configuration.max_datagram_size,
            observer=metrics)
        super().__init__(conn, self.client_session, metrics, wake, loop, inbound="up")
        self._listeners = listeners

    @property
    def closed(self) -> bool:
        """True once the connection is gone."""
        return self.client_session.closed

    def open_tcp(self, sock: TcpSocket, destination: Destination) -> None:
        """Give an accepted connection its stream (with what it sent while it waited)."""
        pending, sock.pending = b"".join(sock.pending), []
        sid, actions = self.client_session.open_tcp(destination, self.loop.time(),
                                                    pending=pending, eof=sock.eof,
                                                    hop_limit=sock.hop_limit)
        sock.stream_id = sid
        sock.sink = self
        self.sockets[sid] = sock
        self.run(actions)

    def udp_datagram(self, route: int, destination: Destination, data: bytes,
                     addr: SockAddr) -> None:
        """A datagram from a local sender on ``route``."""
        self.run(self.client_session.udp_from_local(route, destination, addr, data,
                                                    self.loop.time()))

    def open_udp_flow(self, route: int, destination: Destination, addr: SockAddr,
                      hop_limit: int | None) -> None:
        """Open a bridged flow now (a middle relay's leg; its answer goes to the route)."""
        self.run(self.client_session.open_udp_flow(route, destination, addr, self.loop.time(),
                                                   hop_limit=hop_limit))

    def close_udp_flow(self, route: int, addr: SockAddr, reason: str) -> None:
        """End a flow from the local side (FIN)."""
        self.run(self.client_session.close_udp_flow(route, addr, reason))

    def handle_event(self, event: events.QuicEvent, now: float) -> None:
        """Route one QUIC event to its stream or flow."""
        self.run(self.client_session.handle_event(event, now))

    def expire_flows(self, now: float) -> None:
        """Close idle flows."""
        self.run(self.client_session.handle_timer(now))

    def close(self, cause: str) -> None:
        """The connection is gone: reset every socket, forget every flow."""
        self.run(self.client_session.close(cause, self.loop.time()))

    def _carry_out(self, action: Action) -> None:
        if isinstance(action, SendUdpTo):
            listener = self._listeners.get(action.route)
            if listener is not None:
                listener.send(action.payload, action.address)
        elif isinstance(action, FlowAnswered):
            route = self._listeners.get(action.route)
            if route is not None:
                route.flow_answered(action.address, action.answer)
        elif isinstance(action, FlowEnded):
            route = self._listeners.get(action.route)
            if route is not None:
                route.flow_ended(action.address, action.reason)
        else:
            super()._carry_out(action)


class RelayConnection(Driver):
    """One QUIC connection attempt to the relay server, on its own UDP socket.

    Args:
        sock: the attempt's UDP socket (closed with the attempt).
        conn: a fresh client connection.
        loop: the event loop.
        keepalive: PING this often (None: a third of the idle timeout).
        make_link: builds the relay edge once the handshake completed.
        on_ready: ``(attempt, handshake seconds)`` after the handshake.
        on_lost: ``(attempt, reason)`` once, when the connection is given up or dies.
    """

    def __init__(self, sock: socket.socket, conn: QuicConnection,
                 loop: asyncio.AbstractEventLoop, *, keepalive: float | None,
                 make_link: Callable[[QuicConnection, Callable[[], None]], ClientLink],
                 on_ready: Callable[[RelayConnection, float], None],
                 on_lost: Callable[[RelayConnection, str], None]) -> None:
        super().__init__(sock, loop)
        self.conn = conn
        self.link: ClientLink | None = None
        self.gone = False
        self.started_at = 0.0
        self.close_reason = "connection closed"
        idle = conn.configuration.idle_timeout
        #: PING this often so that an idle pooled connection stays up (idle timeout / 3).
        self.keepalive = keepalive or (max(1.0, idle / 3) if idle else 10.0)
        self.last_ping = 0.0
        self._make_link = make_link
        self._on_ready = on_ready
        self._on_lost = on_lost
        self._wake = Waker(self.service, loop)

    def datagram_received(self, data: bytes, addr: SockAddr, now: float,
                          ecn: int = 0) -> Iterable[QuicConnection]:
        self.conn.receive_datagram(data, addr, now, ecn)
        return (self.conn,)

    def connections(self) -> Iterable[QuicConnection]:
        return () if self.conn.is_terminated or self.gone else (self.conn,)

    def start(self, addr: SockAddr) -> None:
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
                link = self.link = self._make_link(conn, lambda: self._wake(conn))
                self._on_ready(self, now - self.started_at)
            elif isinstance(event, events.ConnectionTerminated):
                by_peer = ", by peer" if event.by_peer else ""
                self.close_reason = (f"{event.reason_phrase or 'closed'} "
                                     f"(code {event.error_code:#x}{by_peer})")
                self.abandon(self.close_reason, send_close=False)
                return
        if link is not None:
            link.pump()

    def connection_gone(self, conn: QuicConnection) -> None:
        self.abandon(self.close_reason, send_close=False)

    def ping(self, now: float) -> None:
        """Keep an idle connection up."""
        self.last_ping = now
        self.conn.send_ping(0)
        self._wake(self.conn)

    def abandon(self, reason: str, *, send_close: bool = True) -> None:
        """Give the connection up (closing it if asked) and report it once."""
        if self.gone:
            return
        if send_close and not self.conn.is_terminated:
            self.conn.close(0, None, reason)
            with contextlib.suppress(OSError):
                self.send(self.conn.datagrams_to_send(self.now()))
        self.gone = True
        if self.link is not None:
            self.link.close("connection_lost")
        self.loop.call_soon(self._dispose)
        self._on_lost(self, reason)

    def _dispose(self) -> None:
        self.close()
        self.sock.close()


# ------------------------------------------------------------------------------ the client


class RelayClient:
    """Listeners plus a self-healing pooled connection (see the module docstring).

    It is also the :class:`~quicreality.aio.relay_pump.TcpSink` of accepted connections until
    they get a stream.

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
        self.session: RelayConnection | None = None
        self.ready: ClientLink | None = None
        self.bound: list[tuple[Kind, str, int]] = []
        self.connections_made = 0
        self._servers: list[asyncio.AbstractServer] = []
        self._udp: dict[int, UdpRoute] = {}
        self._waiting: dict[TcpSocket, float] = {}
        self._backoff = backoff_min
        self._server_addr: SockAddr | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._closed = False
        self._tick_handle: asyncio.TimerHandle | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open the listeners and start connecting."""
        self.loop = asyncio.get_running_loop()
        infos = await self.loop.getaddrinfo(self.server[0], self.server[1], type=socket.SOCK_DGRAM)
        self._server_addr = cast(SockAddr, infos[0][4])
        try:
            for route, fwd in enumerate(self.forwards):
                host, port = fwd.listen
                if fwd.kind == Kind.TCP:
                    srv = await self.loop.create_server(
                        partial(TcpSocket, self, self.config, read_at_start=False, route=route),
                        host, port, reuse_address=True)
                    self._servers.append(srv)
                    name = srv.sockets[0].getsockname()
                else:
                    sock = open_udp_socket(host, port)
                    self._udp[route] = UdpListener(self.loop, sock,
                                                   partial(self.udp_datagram, route),
                                                   self.side_metrics.udp_dropped)
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
        for listener in self._udp.values():
            listener.close()
        for sock in list(self._waiting):
            self._give_up(sock, "client_closed")
        session = self.session
        if session is not None:
            session.abandon("relay client stopped")
        for srv in self._servers:
            await srv.wait_closed()
        await asyncio.sleep(0)

    def _connect(self) -> None:
        if self._closed or self._server_addr is None:
            return
        sock = open_udp_socket("::" if ":" in self._server_addr[0] else "0.0.0.0", 0)
        cfg = self.make_config()
        cfg.is_client = True
        session = RelayConnection(sock, QuicConnection(configuration=cfg), self.loop,
                                  keepalive=self.keepalive, make_link=self._make_link,
                                  on_ready=self.session_ready, on_lost=self.session_lost)
        self.session = session
        session.start(self._server_addr)
        self._timers.append(self.loop.call_later(self.handshake_timeout, self._check_handshake,
                                                 session))

    def _make_link(self, conn: QuicConnection, wake: Callable[[], None]) -> ClientLink:
        return ClientLink(conn, self.config, self.side_metrics, wake, self.loop, self._udp)

    def _check_handshake(self, session: RelayConnection) -> None:
        if session is self.session and session.link is None and not session.gone:
            session.abandon(f"no handshake within {self.handshake_timeout:g} s")

    def session_ready(self, session: RelayConnection, handshake_secs: float) -> None:
        """The handshake completed: open the streams of waiting connections."""
        self.ready = session.link
        self.connections_made += 1
        self._backoff = self.backoff_min
        self.on_status(f"connected to {self.server[0]}:{self.server[1]} "
                       f"(handshake {handshake_secs * 1000:.1f} ms)")
        link = session.link
        assert link is not None
        waiting, self._waiting = self._waiting, {}
        for sock in waiting:
            if not sock.done:
                link.open_tcp(sock, self.destination_of(sock))

    def session_lost(self, session: RelayConnection, reason: str) -> None:
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
        for sock, since in list(self._waiting.items()):
            if now - since >= self.wait_timeout:
                log.warning("relay: no connection to the server within %.0f s; resetting %s",
                            self.wait_timeout, self.destination_of(sock))
                self._give_up(sock, "no_connection")
        link = self.ready
        session = self.session
        if link is not None and session is not None:
            link.expire_flows(now)
            if now - session.last_ping >= session.keepalive:
                session.ping(now)
        if not self._closed:
            self._tick_handle = self.loop.call_later(1.0, self._tick)

    def _give_up(self, sock: TcpSocket, cause: str) -> None:
        """A waiting connection is reset (RST)."""
        self._waiting.pop(sock, None)
        if not sock.done:
            self.side_metrics.reset(cause)
            sock.abort()

    def destination_of(self, sock: TcpSocket) -> Destination:
        """Where an accepted connection goes: its own destination, or its route's forward."""
        return sock.destination or self.forwards[sock.route].destination

    # ----------------------------------------------- waiting connections (TcpSink)

    def tcp_made(self, sock: TcpSocket) -> None:
        """A local TCP connection arrived: give it a stream, or let it wait (unread)."""
        if self.ready is not None:
            self.ready.open_tcp(sock, self.destination_of(sock))
        else:
            self._waiting[sock] = self.loop.time()

    def tcp_data(self, sock: TcpSocket, data: bytes) -> None:
        """Bytes before the stream exists: kept, and the socket paused."""
        self.side_metrics.bytes_up.inc(len(data))
        if not sock.done:
            sock.pending.append(data)
            sock.pause_reading()

    def tcp_eof(self, sock: TcpSocket) -> bool:
        """FIN before the stream exists: it goes out with the preface."""
        if sock.done:
            return False
        sock.eof = True
        return True

    def tcp_lost(self, sock: TcpSocket, exc: Exception | None) -> None:
        """A waiting connection went away."""
        self._waiting.pop(sock, None)
        if sock.done:
            return
        sock.done = True
        cause = LOSS_OUTCOME[tcp_loss(exc)][0]
        log.info("relay: client stream None: TCP %s (%s)", cause.replace("_", " "),
                 exc or "closed")
        self.side_metrics.reset(cause)

    def tcp_write_paused(self, sock: TcpSocket) -> None:
        """Nothing to hold back yet."""

    def tcp_write_resumed(self, sock: TcpSocket) -> None:
        """Nothing to resume yet."""

    def udp_datagram(self, route: int, data: bytes, addr: SockAddr) -> None:
        """A datagram from a local UDP sender."""
        link = self.ready
        if link is None:
            self.side_metrics.udp_dropped("no_connection")
            return
        link.udp_datagram(route, self.forwards[route].destination, data, addr)
