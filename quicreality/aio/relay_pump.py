"""The relay's asyncio pumps shared by both ends: one TCP connection <-> one QUIC stream.

:class:`TcpBridge` is the ``asyncio.Protocol`` of the TCP socket (the accepted local connection
on the client, the destination connection on the server) and also receives its stream's QUIC
events from the :class:`RelayLink` of the connection. Mapping (see :mod:`quicreality.relay.protocol`):

* TCP data -> STREAM data; TCP FIN -> stream FIN (``eof_received`` keeps the socket open for
  writing, so half-close works); stream FIN -> ``write_eof`` (shutdown SHUT_WR) once the buffer
  is flushed; when both directions are finished the socket is closed.
* TCP RST or socket error -> RESET_STREAM + STOP_SENDING (TCP_RESET / TCP_ERROR); a peer
  RESET_STREAM or STOP_SENDING, or the QUIC connection going away -> the TCP socket is closed
  with SO_LINGER 0, i.e. an RST: a truncated stream is never reported as a clean end.
* Backpressure, end to end and bounded: reading the socket pauses while the stream holds more
  than ``send_high_water`` unacknowledged bytes (``stream_send_buffered``), resuming below
  ``send_low_water``; the stream's delivery pauses (``pause_stream_reading``, so QUIC flow
  control stops the peer) while the socket's user-space buffer exceeds ``write_high_water``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

from ..metrics import RelayMetrics
from ..quic.connection import QuicConnection
from ..quic.errors import LocalProtocolError
from ..relay.config import RelayConfig
from ..relay.protocol import RelayErrorCode, describe_error_code

log = logging.getLogger("quicreality.relay")

_LINGER_RST = struct.pack("ii", 1, 0)
#: 1-RTT packet overhead around a DATAGRAM frame: short header (1 + CID up to 20 + packet number
#: 4, RFC 9000 §17.3.1), AEAD tag 16, frame type 1 and length varint up to 4 (RFC 9221 §4).
DATAGRAM_PACKET_OVERHEAD = 1 + 20 + 4 + 16 + 1 + 4


def abort_with_rst(transport: asyncio.Transport | None) -> None:
    """Close a TCP transport with an RST (SO_LINGER 0) instead of a FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        except OSError:
            pass
    transport.abort()


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
    """The relay metrics of one side (client or server), with the hot children looked up once."""

    def __init__(self, metrics: RelayMetrics, side: str) -> None:
        self.metrics = metrics
        self.side = side
        self.bytes_up = metrics.bytes_total.labels(side, "up")
        self.bytes_down = metrics.bytes_total.labels(side, "down")
        self.tcp_active = metrics.streams_active.labels(side, "tcp")
        self.udp_active = metrics.udp_flows_active.labels(side)
        self.udp_up = metrics.udp_datagrams_total.labels(side, "up")
        self.udp_down = metrics.udp_datagrams_total.labels(side, "down")

    def reset(self, cause: str) -> None:
        """Count a stream or flow that ended with a reset."""
        self.metrics.resets_total.labels(self.side, cause).inc()

    def stream_opened(self, kind: str, outcome: str) -> None:
        """Count a stream by the outcome of its status answer."""
        self.metrics.streams_total.labels(self.side, kind, outcome).inc()

    def udp_dropped(self, reason: str) -> None:
        """Count a dropped UDP datagram."""
        self.metrics.udp_dropped_total.labels(self.side, reason).inc()


class RelayLink:
    """What the bridges of one QUIC connection share: the connection, settings, bookkeeping.

    Subclasses (client and server sides) route QUIC events to bridges; this base keeps the
    stream table, the set of bridges paused for send backpressure and the metrics children.
    """

    def __init__(self, conn: QuicConnection, config: RelayConfig, wake: Callable[[], None],
                 metrics: SideMetrics) -> None:
        self.conn = conn
        self.config = config
        self.wake = wake
        self.metrics = metrics
        self.side = metrics.side
        self.streams: dict[int, TcpBridge] = {}
        self.send_paused: set[TcpBridge] = set()
        #: Largest relay datagram (flow id + UDP payload) that fits one QUIC packet: a DATAGRAM
        #: frame is never split (RFC 9221 §5), the connection would drop it silently.
        self.max_datagram = conn.configuration.max_datagram_size - DATAGRAM_PACKET_OVERHEAD

    def pump(self) -> None:
        """Resume reading sockets whose streams drained below the low-water mark."""
        if not self.send_paused:
            return
        low = self.config.send_low_water
        buffered = self.conn.stream_send_buffered
        for bridge in list(self.send_paused):
            sid = bridge.stream_id
            if sid is None or buffered(sid) <= low:
                self.send_paused.discard(bridge)
                bridge.resume_local_reading()

    def bridge_finished(self, bridge: TcpBridge) -> None:
        """A bridge is done: forget it."""
        self.send_paused.discard(bridge)
        if bridge.stream_id is not None and self.streams.get(bridge.stream_id) is bridge:
            del self.streams[bridge.stream_id]

    def abort_all(self, cause: str) -> None:
        """The connection is gone: reset every local socket."""
        for bridge in list(self.streams.values()):
            bridge.abort(cause, reset_stream=False)
        self.streams.clear()
        self.send_paused.clear()


class TcpBridge(asyncio.Protocol):
    """One TCP socket relayed over one QUIC bidirectional stream (see the module docstring).

    The client creates it when it accepts a connection, before a stream exists: until
    :meth:`attach` the socket is not read and what it sent is kept.
    """

    #: ``up`` if this socket's bytes travel towards the destination (client side), else ``down``.
    inbound_direction = "up"

    def __init__(self, config: RelayConfig, metrics: SideMetrics, link: RelayLink | None = None,
                 stream_id: int | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self.link = link
        self.stream_id = stream_id
        self.transport: asyncio.Transport | None = None
        self.local_eof = False  #: the socket sent FIN (and we sent the stream FIN)
        self.remote_fin = False  #: the stream ended (and we shut the socket down for writing)
        self.finished = False
        self.local_read_paused = False
        self._early: list[bytes] = []  # stream data that arrived before the socket was ready
        self._early_fin = False
        self._pending_out: list[bytes] = []  # socket data read before the stream existed
        self._closing = False
        self.bytes_in = 0  #: read from the socket
        self.bytes_out = 0  #: written to the socket
        up, down = metrics.bytes_up, metrics.bytes_down
        self._m_in, self._m_out = (up, down) if self.inbound_direction == "up" else (down, up)
        if link is not None and stream_id is not None:
            link.streams[stream_id] = self
            metrics.tcp_active.inc()

    # ------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        cfg = self.config
        transport.set_write_buffer_limits(high=cfg.write_high_water, low=cfg.write_low_water)
        if self.link is None:
            self.pause_local_reading()  # nothing to send it on yet
        if self._early or self._early_fin:
            early, self._early = self._early, []
            for chunk in early:
                self._write_local(chunk)
            if self._early_fin:
                self._finish_remote()

    def data_received(self, data: bytes) -> None:
        if self.finished:
            return
        self.bytes_in += len(data)
        self._m_in.inc(len(data))
        link = self.link
        sid = self.stream_id
        if link is None or sid is None:
            self._pending_out.append(data)
            self.pause_local_reading()
            return
        conn = link.conn
        try:
            conn.send_stream_data(sid, data)
        except LocalProtocolError:
            self.abort("stream_closed", reset_stream=False)
            return
        if conn.stream_send_buffered(sid) >= self.config.send_high_water:
            self.pause_local_reading()
            link.send_paused.add(self)
        link.wake()

    def eof_received(self) -> bool:
        if self.finished:
            return False
        self.local_eof = True
        link = self.link
        if link is None or self.stream_id is None:
            return True  # the FIN goes out with attach()
        try:
            link.conn.send_stream_data(self.stream_id, b"", end_stream=True)
        except LocalProtocolError:
            pass
        link.wake()
        self._maybe_close()
        return True  # keep the socket open: the other direction may still carry data

    def connection_lost(self, exc: Exception | None) -> None:
        if self.finished:
            return
        if exc is None and (self._closing or (self.local_eof and self.remote_fin)):
            self._finish()
            return
        if exc is None:
            cause, code = "tcp_closed", RelayErrorCode.TCP_ERROR
        elif isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            cause, code = "tcp_reset", RelayErrorCode.TCP_RESET
        else:
            cause, code = "tcp_error", RelayErrorCode.TCP_ERROR
        log.info("relay: %s stream %s: TCP %s (%s)", self.metrics.side, self.stream_id,
                 cause.replace("_", " "), exc or "closed")
        self._reset_stream(code)
        self.metrics.reset(cause)
        self._finish()
        if self.link is not None:
            self.link.wake()

    def pause_writing(self) -> None:
        if self.link is not None and self.stream_id is not None:
            self.link.conn.pause_stream_reading(self.stream_id)

    def resume_writing(self) -> None:
        if self.link is not None and self.stream_id is not None and not self.finished:
            self.link.conn.resume_stream_reading(self.stream_id)
            self.link.wake()

    # ------------------------------------------------------------------ QUIC side

    def attach(self, link: RelayLink, stream_id: int, preface: bytes = b"") -> None:
        """Bind to a freshly opened stream: send ``preface``, then what the socket sent so far."""
        self.link = link
        self.stream_id = stream_id
        link.streams[stream_id] = self
        self.metrics.tcp_active.inc()
        pending, self._pending_out = self._pending_out, []
        link.conn.send_stream_data(stream_id, preface + b"".join(pending),
                                   end_stream=self.local_eof)
        link.wake()
        if not self.local_eof:
            self.resume_local_reading()

    def stream_data(self, data: bytes, end_stream: bool) -> None:
        """In-order stream data (and FIN) for the socket."""
        if self.finished:
            return
        if self.transport is None:
            if data:
                self._early.append(data)
            self._early_fin = self._early_fin or end_stream
            return
        if data:
            self._write_local(data)
        if end_stream:
            self._finish_remote()

    def stream_reset(self, error_code: int) -> None:
        """The peer reset its sending side: the socket gets an RST."""
        if self.finished:
            return
        log.info("relay: %s stream %s reset by peer (%s)", self.metrics.side, self.stream_id,
                 describe_error_code(error_code))
        self.abort("peer_reset", reset_stream=True, code=error_code)

    def stop_sending(self, error_code: int) -> None:
        """The peer will not read any more: the socket gets an RST."""
        if self.finished:
            return
        log.info("relay: %s stream %s stopped by peer (%s)", self.metrics.side, self.stream_id,
                 describe_error_code(error_code))
        self.abort("peer_stop_sending", reset_stream=True, code=error_code)

    def abort(self, cause: str, *, reset_stream: bool,
              code: int = RelayErrorCode.CANCELLED) -> None:
        """End now: RST the socket, optionally reset the stream both ways, count the cause."""
        if self.finished:
            return
        if reset_stream:
            self._reset_stream(code)
        self.metrics.reset(cause)
        transport = self.transport
        self._finish()
        abort_with_rst(transport)
        if reset_stream and self.link is not None:
            self.link.wake()

    # ------------------------------------------------------------------ helpers

    def pause_local_reading(self) -> None:
        """Stop reading the socket (send-side backpressure)."""
        if not self.local_read_paused and self.transport is not None:
            self.local_read_paused = True
            self.transport.pause_reading()

    def resume_local_reading(self) -> None:
        """Read the socket again."""
        if self.local_read_paused and self.transport is not None and not self.finished:
            self.local_read_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def _write_local(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)
        self.bytes_out += len(data)
        self._m_out.inc(len(data))

    def _finish_remote(self) -> None:
        self.remote_fin = True
        transport = self.transport
        if transport is not None and transport.can_write_eof() and not transport.is_closing():
            transport.write_eof()
        self._maybe_close()

    def _maybe_close(self) -> None:
        if self.local_eof and self.remote_fin and not self._closing and self.transport is not None:
            self._closing = True
            self.transport.close()

    def _reset_stream(self, code: int) -> None:
        sid = self.stream_id
        if sid is None or self.link is None:
            return
        conn = self.link.conn
        try:
            conn.reset_stream(sid, code)
        except LocalProtocolError:
            pass
        try:
            conn.stop_stream(sid, code)
        except LocalProtocolError:
            pass

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self._early = []
        self._pending_out = []
        if self.link is not None and self.stream_id is not None:
            self.metrics.tcp_active.dec()
            self.link.bridge_finished(self)
        self.on_finished()

    def on_finished(self) -> None:
        """Hook: the bridge has ended (either way)."""

    def info(self) -> dict[str, Any]:
        """A snapshot for logs and tests."""
        return {"stream_id": self.stream_id, "in": self.bytes_in, "out": self.bytes_out,
                "local_eof": self.local_eof, "remote_fin": self.remote_fin,
                "finished": self.finished}
