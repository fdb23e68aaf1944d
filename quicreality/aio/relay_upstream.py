"""Relay chains: a server's relay streams carried on to the next relay (``[relay.upstream]``).

``RAW -> QUIC_REALITY -> QUIC_REALITY -> RAW``. The middle relay's server session decides as
always (allow-list, hop limit); instead of connecting to the destination it asks for
:class:`~quicreality.relay.actions.ConnectUpstream`. This module carries that out:

* :class:`UpstreamPool` is a :class:`~quicreality.aio.relay_client.RelayClient` without
  listeners: one pooled QUIC (REALITY) connection to the upstream relay, with the client's
  reconnect and backoff. Every process has at most one pool per upstream
  (:func:`upstream_pool`).
* :class:`BridgeEnd` is one end of an in-memory socket pair standing in for the destination
  socket: the server edge writes to one end, the pool's client edge to the other. The two
  sessions keep all their semantics: FIN is ``shutdown_write`` (half-close both ways), an RST
  is ``abort`` (resets both ways), and the pair's buffers apply the write water marks, so a
  stalled reader at either end stops the QUIC flow control of the other connection
  (backpressure end to end). Every callback of an end runs from the event loop, as a real
  socket's would, never inside the caller.
* The upstream's status answer (``Answered``) completes the downstream set-up: OK becomes the
  downstream OK, anything else the same status with the upstream's reason.
* A UDP flow is an :class:`UpstreamUdpLeg`: a route of the pool with one bridged flow on the
  upstream connection (preface with the hop limit). Its status answer becomes the downstream
  answer, datagrams are passed on each way, and when either flow ends the other ends too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from functools import partial

from ..quic.config import QuicConfiguration
from ..relay.actions import SockAddr
from ..relay.config import RelayConfig, UpstreamConfig
from ..relay.protocol import Destination, Status, StatusAnswer
from .relay_client import RelayClient, RelayConnection
from .relay_pump import TcpSink, TcpSocket

log = logging.getLogger("quicreality.relay")


class _Lost:
    """An inbox marker: the other end went away (``exc`` None: cleanly)."""

    __slots__ = ("exc",)

    def __init__(self, exc: Exception | None) -> None:
        self.exc = exc


_EOF = object()


class BridgeEnd(TcpSocket):
    """One end of an in-memory TCP socket pair (see the module docstring).

    What the other end writes lands in this end's inbox and is handed to :attr:`sink` from the
    event loop while reading is not paused. The writer is told ``tcp_write_paused`` while the
    inbox holds more than its ``write_high_water`` and ``tcp_write_resumed`` below
    ``write_low_water``.

    Args:
        sink: who hears this end.
        config: the water marks of whoever writes into the *other* end.
        loop: the event loop.
        on_answer: the upstream's status answer for this end's stream (the client side).
    """

    def __init__(self, sink: TcpSink, config: RelayConfig, loop: asyncio.AbstractEventLoop, *,
                 stream_id: int | None = None,
                 on_answer: Callable[[StatusAnswer], None] | None = None) -> None:
        super().__init__(sink, config, stream_id=stream_id)
        self.peer: BridgeEnd | None = None
        self.loop = loop
        self.answer: StatusAnswer | None = None
        self._on_answer = on_answer
        self._inbox: deque[bytes | object] = deque()
        self._inbox_bytes = 0
        self._writer_paused = False
        self._scheduled = False
        self._high = config.write_high_water
        self._low = config.write_low_water

    # ------------------------------------------------------------------ commands

    def write(self, data: bytes) -> None:
        """Hand bytes to the other end."""
        peer = self.peer
        if peer is not None and not self.done and data:
            peer._inbox.append(data)
            peer._inbox_bytes += len(data)
            peer._schedule()

    def shutdown_write(self) -> None:
        """FIN towards the other end (after what was written)."""
        if self.peer is not None and not self.done:
            self.peer._inbox.append(_EOF)
            self.peer._schedule()

    def close(self) -> None:
        """Both directions are finished: this end closes cleanly (reported to its own sink)."""
        if self.done:
            return
        self._inbox.clear()
        self._inbox_bytes = 0
        self._inbox.append(_Lost(None))
        self._schedule()

    def abort(self) -> None:
        """RST: the other end is reset, unread data is dropped; nothing more is reported here."""
        if self.done:
            return
        self.done = True
        if self._on_answer is not None and self.answer is None:  # the upstream never answered
            self.answered(StatusAnswer(Status.UNREACHABLE, "the upstream relay connection failed"))
        peer = self.peer
        if peer is not None and not peer.done:
            peer._inbox.clear()
            peer._inbox_bytes = 0
            peer._inbox.append(_Lost(ConnectionResetError("reset by the other relay leg")))
            peer._schedule()

    def pause_reading(self) -> None:
        """Stop handing bytes to the sink."""
        self.read_paused = True

    def resume_reading(self) -> None:
        """Hand bytes to the sink again."""
        if self.read_paused:
            self.read_paused = False
            self._schedule()

    def answered(self, answer: StatusAnswer) -> None:
        """The upstream's status answer for this end's stream: passed on once."""
        if self.answer is None and self._on_answer is not None:
            self.answer = answer
            self._on_answer(answer)

    # ------------------------------------------------------------------ delivery

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        inbox = self._inbox
        while inbox and not self.done:
            item = inbox[0]
            if self.read_paused and not isinstance(item, _Lost):
                break
            inbox.popleft()
            if isinstance(item, bytes):
                self._inbox_bytes -= len(item)
                self.sink.tcp_data(self, item)
            elif isinstance(item, _Lost):
                inbox.clear()
                self._inbox_bytes = 0
                self.sink.tcp_lost(self, item.exc)
                self.done = True
            else:
                self.sink.tcp_eof(self)
        writer = self.peer
        if writer is None or writer.done:
            return
        if not self._writer_paused and self._inbox_bytes > self._high:
            self._writer_paused = True
            writer.sink.tcp_write_paused(writer)
        elif self._writer_paused and self._inbox_bytes <= self._low:
            self._writer_paused = False
            writer.sink.tcp_write_resumed(writer)


def bridge_pair(server_sink: TcpSink, server_config: RelayConfig, client_sink: TcpSink,
                client_config: RelayConfig, loop: asyncio.AbstractEventLoop, *, stream_id: int,
                destination: Destination, hop_limit: int,
                on_answer: Callable[[BridgeEnd, StatusAnswer], None]) -> tuple[BridgeEnd, BridgeEnd]:
    """``(server end, client end)`` of a new pair: the server edge's destination socket for
    ``stream_id``, and the leg the pool opens towards ``destination`` with ``hop_limit``;
    ``on_answer(server end, answer)`` hears the upstream's status answer."""
    s_end = BridgeEnd(server_sink, client_config, loop, stream_id=stream_id)
    c_end = BridgeEnd(client_sink, server_config, loop, on_answer=partial(on_answer, s_end))
    c_end.destination = destination
    c_end.hop_limit = hop_limit
    s_end.peer, c_end.peer = c_end, s_end
    return s_end, c_end


# ----------------------------------------------------------------------------------- pool


def upstream_quic_factory(upstream: UpstreamConfig, relay: RelayConfig,
                          **transport: object) -> Callable[[], QuicConfiguration]:
    """A fresh client configuration per connection attempt to ``upstream`` (REALITY needs one
    per connection)."""
    from ..tls.certificates import InsecureVerifier, PkiVerifier
    from .driver import edge_configuration

    base = edge_configuration(is_client=True, idle_timeout=upstream.idle_timeout,
                              **relay.quic_overrides(), **transport)
    key = upstream.public_key
    if key is not None:
        from ..reality.seal import reality_client_configuration

        def reality() -> QuicConfiguration:
            cfg: QuicConfiguration = reality_client_configuration(
                base, server_public_key=key, short_id=upstream.short_id,
                server_name=upstream.server_name, wall_clock=time.time,
                fingerprint=upstream.fingerprint, carrier=upstream.carrier)
            return cfg
        return reality
    ca = upstream.ca
    name = upstream.server_name or upstream.server.host

    def plain() -> QuicConfiguration:
        verifier = (InsecureVerifier() if ca is None
                    else PkiVerifier(ca, wall_clock=time.time, name=name))
        return base.derived(peer_verifier=verifier, server_name=upstream.server_name)
    return plain


#: The sender address of every bridged leg (each leg has a route of its own).
LEG_ADDRESS: SockAddr = ("0.0.0.0", 0)


class UpstreamUdpLeg:
    """A downstream UDP flow carried on through the upstream relay (one route of the pool).

    The server edge sends the flow's datagrams up with :meth:`send_up` and ends it with
    :meth:`close_up`; the pool's client edge calls the :class:`~.relay_udp.UdpRoute` methods:
    ``send`` (a datagram from upstream), ``flow_answered`` (the upstream's status, which
    becomes the downstream answer) and ``flow_ended`` (the upstream flow is gone).

    Args:
        pool: the upstream pool.
        stream_id: the downstream flow's stream.
        destination: where the flow goes (sent upstream in the preface).
        hop_limit: the preface's hop limit for the next relay.
        on_datagram: a datagram from upstream, for the downstream flow.
        on_answer: the upstream's status answer.
        on_end: the upstream flow ended (``reason``).
    """

    def __init__(self, pool: UpstreamPool, stream_id: int, destination: Destination,
                 hop_limit: int, *, on_datagram: Callable[[bytes], None],
                 on_answer: Callable[[StatusAnswer], None],
                 on_end: Callable[[str], None]) -> None:
        self.pool = pool
        self.stream_id = stream_id
        self.destination = destination
        self.hop_limit = hop_limit
        self.route = -1
        self.answer: StatusAnswer | None = None
        self.done = False
        self._on_datagram = on_datagram
        self._on_answer = on_answer
        self._on_end = on_end

    # ------------------------------------------------------------ downstream side

    def send_up(self, payload: bytes) -> None:
        """A datagram of the downstream flow: onto the upstream flow."""
        link = self.pool.ready
        if self.done or link is None:
            self.pool.side_metrics.udp_dropped("no_connection")
            return
        link.udp_datagram(self.route, self.destination, payload, LEG_ADDRESS)

    def close_up(self) -> None:
        """The downstream flow ended (or its set-up was cancelled): end the upstream flow."""
        if self.done:
            return
        self.done = True
        self.pool.forget_leg(self)
        link = self.pool.ready
        if link is not None:
            link.close_udp_flow(self.route, LEG_ADDRESS, "closed downstream")

    # ---------------------------------------------------------- UdpRoute (upstream side)

    def send(self, payload: bytes, addr: SockAddr) -> None:
        """A datagram from upstream."""
        if not self.done:
            self._on_datagram(payload)

    def flow_answered(self, addr: SockAddr, answer: StatusAnswer) -> None:
        """The upstream's status answer: passed on once."""
        if self.answer is None and not self.done:
            self.answer = answer
            self._on_answer(answer)

    def flow_ended(self, addr: SockAddr, reason: str) -> None:
        """The upstream flow is gone: the downstream flow ends (or its set-up fails)."""
        if self.done:
            return
        self.done = True
        self.pool.forget_leg(self)
        if self.answer is None:
            self.answer = StatusAnswer(Status.UNREACHABLE, f"upstream flow ended: {reason}")
            self._on_answer(self.answer)
        else:
            self._on_end(reason)

    def close(self) -> None:
        """The pool is closing."""
        self.flow_ended(LEG_ADDRESS, "upstream pool closed")


class UpstreamPool(RelayClient):
    """The pooled connection to one upstream relay (a relay client without listeners).

    Args:
        upstream: the next relay.
        relay: windows and water marks of the upstream connection (the server's ``[relay]``).
        on_status: one line per connect / loss.
    """

    def __init__(self, upstream: UpstreamConfig, relay: RelayConfig, *,
                 on_status: Callable[[str], None] | None = None) -> None:
        super().__init__((upstream.server.host, upstream.server.port),
                         upstream_quic_factory(upstream, relay), [], relay,
                         handshake_timeout=upstream.handshake_timeout, on_status=on_status)
        self.upstream = upstream
        self._starting: asyncio.Task[None] | None = None
        self._next_route = 0
        self._udp_waiting: list[UpstreamUdpLeg] = []

    def open(self, end: BridgeEnd) -> None:
        """Give ``end`` a stream on the upstream connection (now, or once it is up)."""
        self._ensure_started()
        self.tcp_made(end)

    def open_udp(self, leg: UpstreamUdpLeg) -> None:
        """Give ``leg`` a flow on the upstream connection (now, or once it is up)."""
        self._ensure_started()
        self._next_route += 1
        leg.route = self._next_route
        self._udp[leg.route] = leg
        if self.ready is not None:
            self.ready.open_udp_flow(leg.route, leg.destination, LEG_ADDRESS, leg.hop_limit)
        else:
            self._udp_waiting.append(leg)

    def forget_leg(self, leg: UpstreamUdpLeg) -> None:
        """``leg`` is done: its route goes."""
        if self._udp.get(leg.route) is leg:
            del self._udp[leg.route]
        if leg in self._udp_waiting:
            self._udp_waiting.remove(leg)

    def session_ready(self, session: RelayConnection, handshake_secs: float) -> None:
        """The connection is up: also open the flows of the legs that waited for it."""
        super().session_ready(session, handshake_secs)
        waiting, self._udp_waiting = self._udp_waiting, []
        link = self.ready
        for leg in waiting:
            if not leg.done and link is not None:
                link.open_udp_flow(leg.route, leg.destination, LEG_ADDRESS, leg.hop_limit)

    def _ensure_started(self) -> None:
        if self._starting is None:
            self._starting = self.loop.create_task(self.start())


_POOLS: dict[UpstreamConfig, UpstreamPool] = {}


def upstream_pool(upstream: UpstreamConfig, relay: RelayConfig,
                  on_status: Callable[[str], None] | None = None) -> UpstreamPool:
    """The process's pool for ``upstream`` (made on first use; a reload with another upstream
    gets another pool, the old one keeps serving the streams it carries)."""
    pool = _POOLS.get(upstream)
    if pool is None:
        pool = _POOLS[upstream] = UpstreamPool(upstream, relay,
                                               on_status=on_status or partial(_log_status, upstream))
    return pool


def _log_status(upstream: UpstreamConfig, line: str) -> None:
    """The default status line of a pool: ``relay upstream HOST:PORT: connected to ...``."""
    log.info("relay upstream %s: %s", upstream.server, line)


async def close_upstream_pools() -> None:
    """Close every pool (server shutdown)."""
    pools = list(_POOLS.values())
    _POOLS.clear()
    for pool in pools:
        await pool.close()
