"""The relay's asyncio edge shared by both ends: TCP sockets, metrics, and carrying out actions.

The decisions live in the sans-IO sessions (:mod:`quicreality.relay.session` and its server and
client subclasses). This module only moves bytes:

* :class:`TcpSocket` is the ``asyncio.Protocol`` of one TCP socket (the accepted local
  connection on the client, the destination connection on the server). It reports what the
  socket does to its :class:`TcpSink` and carries out write / shut down / close / RST / pause.
* :class:`RelayEdge` owns a session, its QUIC connection and its sockets, feeds the session the
  socket callbacks (with ``now``) and carries out the actions it returns: QUIC actions through
  :func:`~quicreality.relay.ports.apply_quic_action`, socket actions on the :class:`TcpSocket`
  of the stream. The server and client edges add their own actions.
* :class:`SideMetrics` is the session's observer: Prometheus counters and log lines.
* :class:`Waker` runs the send path once per loop iteration, however often it is asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from typing import Protocol

from ..metrics import RelayMetrics
from ..quic.connection import QuicConnection
from ..relay.actions import (
    AbortTcp,
    Action,
    Answered,
    AnswerStatus,
    CloseTcp,
    PauseStreamReading,
    PauseTcpReading,
    Refuse,
    ResetStream,
    ResumeStreamReading,
    ResumeTcpReading,
    SendDatagram,
    SendOnStream,
    ShutdownTcpWrite,
    StopSending,
    WriteTcp,
)
from ..relay.config import RelayConfig
from ..relay.ports import apply_quic_action
from ..relay.protocol import Destination, StatusAnswer
from ..relay.session import RelaySession, TcpLoss

log = logging.getLogger("quicreality.relay")

_LINGER_RST = struct.pack("ii", 1, 0)
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def abort_with_rst(transport: asyncio.Transport | None) -> None:
    """Close a TCP transport with an RST (SO_LINGER 0) instead of a FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    transport.abort()


def tcp_loss(exc: BaseException | None) -> TcpLoss | None:
    """How a socket went away: None (no error), a reset, or another error."""
    if exc is None:
        return None
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return TcpLoss.RESET
    return TcpLoss.ERROR


class Waker:
    """Runs a driver's ``service([conn])`` once per loop iteration, however often it is asked.

    Socket callbacks (TCP data, UDP datagrams) queue stream data on a connection; the send path
    must then run, but once per batch of callbacks, not once per callback.
    """

    def __init__(self, service: Callable[[list[QuicConnection]], None],
                 loop: asyncio.AbstractEventLoop) -> None:
        self._service = service
        self._loop = loop
        self._pending: dict[int, QuicConnection] = {}
        self._scheduled = False

    def __call__(self, conn: QuicConnection) -> None:
        self._pending[id(conn)] = conn
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        conns = list(self._pending.values())
        self._pending.clear()
        self._service(conns)


class SideMetrics:
    """The relay metrics and log lines of one side (a ``RelayObserver``).

    The hot children are looked up once.
    """

    def __init__(self, metrics: RelayMetrics, side: str) -> None:
        self.metrics = metrics
        self.side = side
        self.bytes_up = metrics.bytes_total.labels(side, "up")
        self.bytes_down = metrics.bytes_total.labels(side, "down")
        self.tcp_streams = metrics.streams_active.labels(side, "tcp")
        self.udp_active = metrics.udp_flows_active.labels(side)
        self.udp_up = metrics.udp_datagrams_total.labels(side, "up")
        self.udp_down = metrics.udp_datagrams_total.labels(side, "down")

    def stream_opened(self, kind: str, outcome: str) -> None:
        """Count a stream by the outcome of its status answer."""
        self.metrics.streams_total.labels(self.side, kind, outcome).inc()

    def tcp_active(self, delta: int) -> None:
        """A TCP stream started or ended."""
        self.tcp_streams.inc(delta)

    def reset(self, cause: str) -> None:
        """Count a stream or flow that ended with a reset."""
        self.metrics.resets_total.labels(self.side, cause).inc()

    def udp_flow_opened(self) -> None:
        """A UDP flow started."""
        self.udp_active.inc()
        self.metrics.udp_flows_total.labels(self.side).inc()

    def udp_flow_closed(self, expired: bool) -> None:
        """A UDP flow ended."""
        if expired:
            self.metrics.udp_flows_expired.labels(self.side).inc()
        self.udp_active.dec()

    def udp_relayed(self, direction: str) -> None:
        """Count a relayed datagram."""
        (self.udp_up if direction == "up" else self.udp_down).inc()

    def udp_dropped(self, reason: str) -> None:
        """Count a dropped UDP datagram."""
        self.metrics.udp_dropped_total.labels(self.side, reason).inc()

    def note(self, level: str, message: str) -> None:
        """One log line."""
        log.log(_LEVELS.get(level, logging.INFO), "%s", message)


class TcpSink(Protocol):
    """Who hears what a :class:`TcpSocket` does (a :class:`RelayEdge`, or the client while the
    socket waits for a connection)."""

    def tcp_made(self, sock: TcpSocket) -> None:
        """The connection is established."""

    def tcp_data(self, sock: TcpSocket, data: bytes) -> None:
        """Bytes arrived."""

    def tcp_eof(self, sock: TcpSocket) -> bool:
        """The other end sent FIN; True keeps the socket open for writing."""

    def tcp_lost(self, sock: TcpSocket, exc: Exception | None) -> None:
        """The socket is closed (``exc`` None: without an error)."""

    def tcp_write_paused(self, sock: TcpSocket) -> None:
        """The write buffer rose above its high-water mark."""

    def tcp_write_resumed(self, sock: TcpSocket) -> None:
        """The write buffer fell below its low-water mark."""


class TcpSocket(asyncio.Protocol):
    """One TCP socket: reports to :attr:`sink`, carries out what it is told.

    Args:
        sink: who hears the socket's events (can be replaced, e.g. once a stream exists).
        config: the write-buffer water marks.
        stream_id: the socket's stream, once known.
        read_at_start: False keeps the socket unread until :meth:`resume_reading`.
        route: the client's listener number (``-1`` on the server).
    """

    def __init__(self, sink: TcpSink, config: RelayConfig, *, stream_id: int | None = None,
                 read_at_start: bool = True, route: int = -1) -> None:
        self.sink = sink
        self.stream_id = stream_id
        self.route = route
        self.transport: asyncio.Transport | None = None
        self.done = False  #: closed, reset, or given up: nothing more is reported or done
        self.read_paused = False
        #: Client, before a stream exists: what the socket sent, and whether it sent FIN.
        self.pending: list[bytes] = []
        self.eof = False
        #: Client: where the stream goes when it is not the route's forward (a relay chain's
        #: leg), and the hop limit its preface carries.
        self.destination: Destination | None = None
        self.hop_limit: int | None = None
        self._limits = (config.write_high_water, config.write_low_water)
        self._read_at_start = read_at_start

    # ------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        high, low = self._limits
        transport.set_write_buffer_limits(high=high, low=low)
        if not self._read_at_start:
            self.pause_reading()
        self.sink.tcp_made(self)

    def data_received(self, data: bytes) -> None:
        self.sink.tcp_data(self, data)

    def eof_received(self) -> bool:
        return self.sink.tcp_eof(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.sink.tcp_lost(self, exc)

    def pause_writing(self) -> None:
        self.sink.tcp_write_paused(self)

    def resume_writing(self) -> None:
        self.sink.tcp_write_resumed(self)

    # --------------------------------------------------------------------- commands

    def write(self, data: bytes) -> None:
        """Write bytes."""
        if self.transport is not None:
            self.transport.write(data)

    def shutdown_write(self) -> None:
        """Send FIN once the buffer is flushed; keep reading."""
        transport = self.transport
        if transport is not None and transport.can_write_eof() and not transport.is_closing():
            transport.write_eof()

    def close(self) -> None:
        """Close normally (both directions are finished)."""
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close with an RST; nothing more is reported."""
        self.done = True
        abort_with_rst(self.transport)

    def pause_reading(self) -> None:
        """Stop reading."""
        if not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again."""
        transport = self.transport
        if self.read_paused and transport is not None and not self.done:
            self.read_paused = False
            if not transport.is_closing():
                transport.resume_reading()

    def answered(self, answer: StatusAnswer) -> None:
        """Client: the server's status answer for this socket's stream (a real socket has
        nothing to do; a chain's bridge passes it downstream)."""


class RelayEdge:
    """Carries out a session's actions on its connection and TCP sockets (module docstring).

    Subclasses add the actions only their side has (:meth:`_carry_out`).

    Args:
        conn: the QUIC connection the session belongs to.
        session: the sans-IO session.
        metrics: the session's observer; the edge counts the bytes its sockets move.
        wake: asks for the connection's send path to run soon.
        loop: the event loop (its clock is the sessions' ``now``).
        inbound: ``up`` if the sockets' bytes travel towards the destination (client), else
            ``down``.
    """

    def __init__(self, conn: QuicConnection, session: RelaySession, metrics: SideMetrics,
                 wake: Callable[[], None], loop: asyncio.AbstractEventLoop, *,
                 inbound: str) -> None:
        self.conn = conn
        self.session = session
        self.metrics = metrics
        self.wake = wake
        self.loop = loop
        self.config = session.config
        self.sockets: dict[int, TcpSocket] = {}
        up, down = metrics.bytes_up, metrics.bytes_down
        self._m_in, self._m_out = (up, down) if inbound == "up" else (down, up)

    # ---------------------------------------------------------------- carrying out

    def run(self, actions: list[Action]) -> None:
        """Carry out ``actions`` in order (results that come back are fed to the session)."""
        for action in actions:
            match action:
                case WriteTcp(stream_id=sid, data=data):
                    sock = self.sockets.get(sid)
                    if sock is not None:
                        sock.write(data)
                        self._m_out.inc(len(data))
                case SendOnStream() | SendDatagram() | ResumeStreamReading() | \
                        PauseStreamReading() | ResetStream() | StopSending() | AnswerStatus() | \
                        Refuse():
                    if not apply_quic_action(self.conn, action):
                        self.run(self.session.quic_refused(action, self.loop.time()))
                    self.wake()
                case PauseTcpReading(stream_id=sid):
                    sock = self.sockets.get(sid)
                    if sock is not None:
                        sock.pause_reading()
                case ResumeTcpReading(stream_id=sid):
                    sock = self.sockets.get(sid)
                    if sock is not None:
                        sock.resume_reading()
                case ShutdownTcpWrite(stream_id=sid):
                    sock = self.sockets.get(sid)
                    if sock is not None:
                        sock.shutdown_write()
                case CloseTcp(stream_id=sid):
                    sock = self.sockets.get(sid)
                    if sock is not None:
                        sock.close()
                case AbortTcp(stream_id=sid):
                    sock = self.sockets.pop(sid, None)
                    if sock is not None:
                        sock.abort()
                case Answered(stream_id=sid, answer=answer):
                    sock = self.sockets.get(sid)
                    if sock is not None:
                        sock.answered(answer)
                case _:
                    self._carry_out(action)

    def _carry_out(self, action: Action) -> None:
        """Hook: an action only one side has."""
        raise TypeError(f"{type(self).__name__} cannot carry out {action!r}")

    # ------------------------------------------------------------ TcpSink callbacks

    def tcp_made(self, sock: TcpSocket) -> None:
        """A socket of ours is connected (the server's destination sockets override this)."""

    def tcp_data(self, sock: TcpSocket, data: bytes) -> None:
        """Bytes from a socket: onto its stream."""
        self._m_in.inc(len(data))
        sid = sock.stream_id
        if sock.done or sid is None:
            return
        self.run(self.session.tcp_data(sid, data, self.loop.time()))

    def tcp_eof(self, sock: TcpSocket) -> bool:
        """FIN from a socket: the stream's FIN; the socket stays open for the other direction."""
        sid = sock.stream_id
        if sock.done or sid is None:
            return False
        self.run(self.session.tcp_eof(sid, self.loop.time()))
        return True

    def tcp_lost(self, sock: TcpSocket, exc: Exception | None) -> None:
        """A socket closed: a clean end, or the stream is reset both ways."""
        sid = sock.stream_id
        if sock.done or sid is None:
            return
        sock.done = True
        if self.sockets.get(sid) is sock:
            del self.sockets[sid]
        self.run(self.session.tcp_closed(sid, tcp_loss(exc), str(exc) if exc else "closed",
                                         self.loop.time()))

    def tcp_write_paused(self, sock: TcpSocket) -> None:
        """The socket buffers too much: hold the stream's data back."""
        sid = sock.stream_id
        if not sock.done and sid is not None:
            self.run(self.session.tcp_write_paused(sid, self.loop.time()))

    def tcp_write_resumed(self, sock: TcpSocket) -> None:
        """The socket drained: take the stream's data again."""
        sid = sock.stream_id
        if not sock.done and sid is not None:
            self.run(self.session.tcp_write_resumed(sid, self.loop.time()))

    # ------------------------------------------------------------------------ misc

    def pump(self) -> None:
        """After a batch of QUIC events: resume the sockets whose streams drained."""
        self.run(self.session.pump(self.loop.time()))
