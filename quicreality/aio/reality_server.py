"""The REALITY listener's asyncio edge: carries out the gate's decisions.

:class:`RealityServer` is a :class:`~quicreality.aio.server.QuicServer` (accepted clients get the same
HTTP/3 service as a plain server) whose endpoint has a :class:`~quicreality.reality.gate.RealityGate`.
For every gate decision it moves bytes and nothing else:

* ``Pending`` / ``Accept``: mirror the datagram to the target on the flow's own socket;
* ``Forward``: relay the datagram to the target; release held target datagrams to the client;
* a target datagram: relay it to the client, or drop it (accepted flow), as the gate says;
* timer: pending flows time out to the relay, idle relays and finished drains close their sockets.

The server is the gate's *target sink*: a datagram bound for the target is sent the moment the
gate has classified it, before the gate decrypts or verifies anything, so the target sees it
equally early whatever the gate then does (decisions that say ``sent`` are not sent again).
Target sockets are file descriptors: :func:`serve_reality` raises ``RLIMIT_NOFILE`` to its hard
limit and shrinks the gate's tables to what fits (:func:`fit_to_descriptors`); a socket that still
cannot be opened is counted (``quicreality_reality_fallback_socket_failures_total``).

Nothing of ours is ever sent to a flow the gate has not accepted: the only datagrams written to the
listener socket for such a flow are the target's, byte for byte.

Target shapes: for each configured SNI the server connects to the target itself with a
Chrome-shaped hello (:func:`learn_target_shape`: a short handshake, one PING, then a close), keeps
the target's answer in a :class:`~quicreality.reality.shape_cache.ShapeCache` for ``shape_ttl_s``
and refreshes it in the background, one SNI at a time. The gate asks it for every accept; until a
shape is known an accepted connection answers with our own flight. Each verdict gives one log line,
a metric, and a ``reality:verdict`` event in the endpoint qlog trace (and, when accepted, in the
connection's trace).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import statistics
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any

from ..h3.connection import H3Connection
from ..h3.profile import H3Profile, read_h3_profile
from ..h3.server import H3FileServer
from ..metrics import RealityMetrics, reality_metrics
from ..qlog.sink import NullSink, QlogSink
from ..quic import events as quic_events
from ..quic.config import QuicConfiguration
from ..quic.connection import QuicConnection
from ..quic.endpoint import QuicServerEndpoint, Received
from ..reality.auth import RealityVerdict
from ..reality.backlog import NewFlowBacklog
from ..reality.cert import RealityIdentity
from ..reality.config import RealityServerConfig, fit_to_descriptors
from ..reality.gate import (
    Accept,
    Decided,
    FlowClosed,
    Forward,
    GateDecision,
    Pending,
    RealityGate,
    TargetAction,
    ToTarget,
)
from ..reality.reload import ReloadPlan, plan_reload
from ..reality.shape_cache import ShapeCache
from ..reality.target_shape import (
    ShapeError,
    TargetShape,
    has_one_rtt,
    most_common,
    parse_target_flight,
)
from ..relay.config import RelayConfig
from .fallback import FallbackRelay
from .relay_upstream import close_upstream_pools
from .server import QuicServer
from .udp import UdpIO, ViaSocket

log = logging.getLogger("quicreality.reality")

#: After a gate timer callback failed, the next attempt waits at least this long (no busy loop).
_TIMER_RETRY = 0.05
#: At most one warning per this many seconds about target sockets that could not be opened.
_OPEN_WARNING_INTERVAL = 10.0
#: One learning handshake with the target gives up after this long (seconds).
LEARN_TIMEOUT = 5.0
#: Handshakes per learning round; the most common answer is kept (timing varies a little).
LEARN_SAMPLES = 3
#: Verdicts kept for the status page.
RECENT_VERDICTS = 20
#: Datagrams read from the listener socket per wake-up: more than a plain server's, so that the
#: kernel's queue is drained ahead of the gate's work and a known flow's datagram is not stuck
#: behind a flood (:mod:`quicreality.reality.backlog`).
READ_BATCH = 256
#: Rejected verdicts logged per second on average (burst: 10 s worth); the rest are counted in the
#: metrics and summed up in the next line logged. Accepted verdicts are always logged.
REJECT_LOG_RATE = 5.0
#: CONNECTION_CLOSE code of a connection whose short ID a reload removed (H3_NO_ERROR: the
#: reason phrase says why).
REVOKED_CLOSE_CODE = 0x100


async def learn_target_shape(target: tuple[int, Any], sni: str | None, *,
                             timeout: float = LEARN_TIMEOUT,
                             timing: list[float] | None = None) -> TargetShape:
    """Connect to the target as Chrome would and record its answer (see the module docstring).

    The handshake runs with our client and ``fingerprint="chrome"``; the target's certificate is
    not judged (only its shape is wanted). After the handshake one 1-RTT PING ends the flight,
    then the connection is closed. What the target sent on its unidirectional streams until then
    gives the shape's ``h3`` (its SETTINGS and the streams it opened early). ``timing`` gets the
    seconds from our first Initial to the target's first datagram appended (what the gate paces
    an accept with).

    Raises:
        ShapeError: no handshake within ``timeout``, the target refused, or unreadable packets.
    """
    from ..quic.fingerprint import apply_fingerprint
    from ..tls.certificates import InsecureVerifier
    from .driver import edge_configuration

    loop = asyncio.get_running_loop()
    family, addr = target
    cfg = apply_fingerprint(edge_configuration(is_client=True, server_name=sni,
                                               peer_verifier=InsecureVerifier()), "chrome")
    conn = QuicConnection(configuration=cfg)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    seen: list[tuple[bool, bytes]] = []
    uni: dict[int, bytes] = {}  # the target's unidirectional streams (its HTTP/3 start)
    deadline = loop.time() + timeout
    try:
        sock.setblocking(False)
        sock.connect(addr)
        conn.connect(addr, loop.time())
        completed = pinged = ended = False  # ended: we sent 1-RTT after the handshake
        first_sent: float | None = None
        replied = False
        while not ended:
            for data, _ in conn.datagrams_to_send(loop.time()):
                seen.append((False, data))
                sock.send(data)
                if first_sent is None:
                    first_sent = loop.time()
                ended = ended or (completed and has_one_rtt(data))  # the flight is over
            if ended:
                break
            now = loop.time()
            if now >= deadline:
                raise ShapeError(f"no handshake with the target within {timeout:.0f} s")
            timer = conn.get_timer()
            wait = min(deadline, timer if timer is not None else deadline) - now
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, 65535), max(wait, 0.0005))
            except TimeoutError:
                conn.handle_timer(loop.time())
            else:
                if not replied and first_sent is not None and timing is not None:
                    timing.append(loop.time() - first_sent)
                replied = True
                batch = [data]
                while True:  # all that already arrived, as the edge reads a batch
                    try:
                        batch.append(sock.recv(65535))
                    except BlockingIOError:
                        break
                for data in batch:
                    seen.append((True, data))
                    conn.receive_datagram(data, addr, loop.time())
            while (event := conn.next_event()) is not None:
                if isinstance(event, quic_events.HandshakeCompleted):
                    completed = True
                elif isinstance(event, quic_events.ConnectionTerminated):
                    raise ShapeError(f"the target closed: {event.reason_phrase}")
                elif isinstance(event, quic_events.StreamDataReceived) and event.stream_id & 3 == 3:
                    uni[event.stream_id] = uni.get(event.stream_id, b"") + event.data
            if completed and not pinged:
                conn.send_ping(0)
                pinged = True
        conn.close(0, None, "")
        for data, _ in conn.datagrams_to_send(loop.time()):
            sock.send(data)
    except OSError as exc:
        raise ShapeError(f"target unreachable: {exc}") from exc
    finally:
        sock.close()
        conn.release()
    return dataclasses.replace(parse_target_flight(seen), h3=read_h3_profile(uni))


def _attempt(data: bytes, addr: Any) -> Hashable:
    """What names a client's connection attempt: its address and its Initial's DCID (the bytes
    after a long header's DCID length; junk gets whatever is there)."""
    return addr, data[6:6 + data[5]] if len(data) > 5 else b""


class _GatedEndpoint:
    """Delegates to the endpoint and reports each gate decision to ``on_gate`` first, and each
    connection an accept created to ``on_accepted``."""

    def __init__(self, endpoint: QuicServerEndpoint,
                 on_gate: Callable[[GateDecision, float], None],
                 on_accepted: Callable[[QuicConnection, Accept, float], None]) -> None:
        self._endpoint = endpoint
        self._on_gate = on_gate
        self._on_accepted = on_accepted

    def receive_datagram(self, data: bytes, addr: Any, now: float, ecn: int = 0) -> Received:
        got = self._endpoint.receive_datagram(data, addr, now, ecn)
        if got.gate is not None:
            self._on_gate(got.gate, now)
            if got.new and got.connection is not None and isinstance(got.gate, Accept) \
                    and got.gate.verdict is not None:
                self._on_accepted(got.connection, got.gate, now)
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self._endpoint, name)


def resolve_target(host: str, port: int) -> tuple[int, Any]:
    """``(family, sockaddr)`` of the target (UDP); OSError if it does not resolve."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


class RealityServer(QuicServer):
    """A QUIC/HTTP/3 server behind a REALITY gate, with the fallback relay to the target.

    Args:
        sock: the listener socket.
        endpoint: a :class:`QuicServerEndpoint` created with ``gate=gate``.
        app: the HTTP/3 application for accepted clients.
        gate: the endpoint's gate.
        target: ``(family, sockaddr)`` of the target (see :func:`resolve_target`).
        metrics: where to count (default: the process's :class:`RealityMetrics`).
        endpoint_qlog: a sink for ``reality:verdict`` events of every flow.
        shapes: the learned target shapes the gate copies (default: none; see
            :meth:`start_learning`).
        server_options: passed on to :class:`QuicServer` (e.g. ``relay=``).
    """

    def __init__(
        self,
        sock: socket.socket,
        endpoint: QuicServerEndpoint,
        app: H3FileServer,
        gate: RealityGate,
        *,
        target: tuple[int, Any],
        metrics: RealityMetrics | None = None,
        endpoint_qlog: QlogSink | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        shapes: ShapeCache | None = None,
        **server_options: Any,
    ) -> None:
        self.gate = gate
        self.shapes = shapes
        self._learning: asyncio.Task[None] | None = None
        self.metrics = metrics or reality_metrics()
        self.endpoint_qlog: QlogSink = endpoint_qlog or NullSink()
        self._gate_timer: asyncio.TimerHandle | None = None
        self._gate_timer_at: float | None = None
        #: The short ID each accepted connection authenticated with (a reload checks them).
        self.short_ids: dict[int, tuple[QuicConnection, bytes | None]] = {}
        #: The latest verdicts, newest last (the status page shows them).
        self.recent_verdicts: deque[tuple[float, str, RealityVerdict]] = deque(
            maxlen=RECENT_VERDICTS)
        self.reloads = 0
        self.reload_failures = 0
        #: new-flow datagrams waiting for the gate (a flood is shed here, oldest first)
        self.backlog: NewFlowBacklog[tuple[bytes, Any, int]] = NewFlowBacklog()
        self._drain_handle: asyncio.Handle | None = None
        self._log_tokens = 10 * REJECT_LOG_RATE
        self._log_refilled: float | None = None
        self._unlogged = 0
        gated: Any = _GatedEndpoint(endpoint, self._on_gate_decision, self._on_accepted)
        super().__init__(sock, gated, app, loop, **server_options)
        family, sockaddr = target
        self.relay = FallbackRelay(sockaddr, family, self._on_target_datagram, self.loop)
        self._open_failures_logged_at: float | None = None
        self._open_failures_unlogged = 0
        gate.target_sink = self._to_target
        self._target = target
        #: accepted connections whose first reply waits: id -> (not before, the timer)
        self._paced: dict[int, tuple[float, asyncio.TimerHandle]] = {}
        self._h3_profiles: dict[int, H3Profile] = {}  # accepted, H3 layer not yet created
        # The gauges are read when scraped, not set after every gate event and send pass (about
        # 20 sets per accepted handshake, docs/reality.md "Handshake benchmark").
        m = self.metrics
        m.fallback_flows_active.set_function(lambda: self.gate.fallback_flows)
        m.pending_flows.set_function(lambda: self.gate.pending_flows)
        m.connections_active.set_function(lambda: len(self.endpoint.connections))
        if shapes is not None:
            gate.shape_source = self._shape_for
            gate.first_reply_source = self._first_reply_for

    # --- reading under load ----------------------------------------------------------------

    def _on_readable(self, io: UdpIO, via: int) -> None:
        """Read a large batch; known flows now, new flows through the bounded backlog."""
        batch = io.recv_batch(READ_BATCH)
        if not batch:
            return
        if via:
            batch = [(data, ViaSocket(addr, via), ecn) for data, addr, ecn in batch]
        routes, knows = self.endpoint.routes, self.gate.knows
        known = []
        backlog = self.backlog
        now = self.now()
        shed = 0
        for item in batch:
            if routes(item[0]) or knows(item[1]):
                known.append(item)
            else:
                shed += backlog.offer(item, len(item[0]), now, _attempt(item[0], item[1]))
        new, too_old = backlog.take(now)
        if shed + too_old:
            self.metrics.hellos_shed.inc(shed + too_old)
        known.extend(new)
        self.process_batch(known, now)
        self._schedule_drain()

    def _schedule_drain(self) -> None:
        if self.backlog and self._drain_handle is None:
            self._drain_handle = self.loop.call_soon(self._drain_backlog)

    def _drain_backlog(self) -> None:
        """One turn's share of the backlog (the loop polls the sockets between turns)."""
        self._drain_handle = None
        now = self.now()
        items, too_old = self.backlog.take(now)
        if too_old:
            self.metrics.hellos_shed.inc(too_old)
        if items:
            self.process_batch(items, now)
        self._schedule_drain()

    # --- target shapes --------------------------------------------------------------------

    def _shape_for(self, sni: str | None) -> TargetShape | None:
        assert self.shapes is not None
        return self.shapes.get(sni, self.now())

    def _first_reply_for(self, sni: str | None) -> float | None:
        assert self.shapes is not None
        return self.shapes.first_reply(sni, self.now())

    def start_learning(self, names: Iterable[str]) -> None:
        """Learn (and keep refreshing) the target's shape for each SNI, in a background task."""
        if self.shapes is None or self._learning is not None:
            return
        snis: list[str | None] = [n or None for n in sorted(names)] or [None]
        self._learning = self.loop.create_task(self._learn_loop(snis))

    async def _learn_loop(self, snis: list[str | None]) -> None:
        shapes = self.shapes
        assert shapes is not None
        while True:
            for sni in shapes.wanted(snis, self.now()):
                shapes.start(sni)
                timing: list[float] = []
                try:
                    samples = [await learn_target_shape(self._target, sni, timing=timing)
                               for _ in range(LEARN_SAMPLES)]
                except Exception as exc:  # noqa: BLE001 - a bad round must not end the refreshes
                    shapes.failed(sni, str(exc), self.now())
                    log.warning("cannot learn the target's shape for %s: %s", sni, exc)
                    continue
                shape = most_common(samples)
                first_reply = statistics.median(timing) if timing else None
                shapes.learned(sni, shape, self.now(), first_reply)
                log.info("target shape for %s: %s; first reply after %s", sni, shape.describe(),
                         f"{first_reply * 1000:.2f} ms" if first_reply is not None else "?")
                self.endpoint_qlog.custom(self.now(), "reality:target_shape",
                                          {"sni": sni, **shape.describe(),
                                           "first_reply_ms": None if first_reply is None
                                           else round(first_reply * 1000, 3)})
            await asyncio.sleep(max(0.05, shapes.next_due(snis, self.now()) - self.now()))

    # --- gate decisions -------------------------------------------------------------------

    def _on_gate_decision(self, decision: GateDecision, now: float) -> None:
        match decision:
            case Pending(addr=addr, mirror=data, new_flow=new_flow, sent=sent):
                if not sent:
                    self._to_target(addr, data, new_flow)
            case Accept(addr=addr, mirror=data, new_flow=new_flow, verdict=verdict, sent=sent):
                if not sent:
                    self._to_target(addr, data, new_flow)
                assert verdict is not None
                self._record_verdict(addr, verdict, now)
            case Forward(addr=addr, data=data, new_flow=new_flow, verdict=verdict,
                         release=release, sent=sent):
                if not sent:
                    self._to_target(addr, data, new_flow)
                if verdict is not None:
                    self._record_verdict(addr, verdict, now)
                for held in release:
                    self._to_client(addr, held)
        self._gate_events(now)

    def _to_target(self, addr: Any, data: bytes, new_flow: bool) -> None:
        """Send one client datagram to the target on ``addr``'s flow (the gate's target sink)."""
        if new_flow or addr not in self.relay:
            try:
                self.relay.open(addr)
            except OSError as exc:
                self._open_failed(addr, exc)
                return
        if self.relay.send(addr, data):
            self.metrics.fallback_bytes.labels(direction=RealityMetrics.CLIENT_TO_TARGET).inc(
                len(data))

    def _open_failed(self, addr: Any, exc: OSError) -> None:
        """Count a target socket that could not be opened; warn at most every 10 s."""
        self.metrics.fallback_socket_failures.inc()
        self._open_failures_unlogged += 1
        now = self.now()
        last = self._open_failures_logged_at
        if last is None or now - last >= _OPEN_WARNING_INTERVAL:
            log.warning("cannot open a fallback socket (%d dropped since the last warning; "
                        "latest for %s:%s): %s", self._open_failures_unlogged, addr[0], addr[1],
                        exc)
            self._open_failures_logged_at = now
            self._open_failures_unlogged = 0

    def _to_client(self, addr: Any, data: bytes) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError:
            return
        self.metrics.fallback_bytes.labels(direction=RealityMetrics.TARGET_TO_CLIENT).inc(len(data))

    def _on_target_datagram(self, addr: Any, data: bytes) -> None:
        now = self.now()
        action = self.gate.receive_target_datagram(addr, data, now)
        if action is TargetAction.RELAY:
            self._to_client(addr, data)
        elif action is TargetAction.DROP:
            self.metrics.target_dropped.inc()
            self._gate_events(now)  # the accepted flow's close to the target, if due

    def _on_accepted(self, conn: QuicConnection, accept: Accept, now: float) -> None:
        assert accept.verdict is not None
        self.short_ids[id(conn)] = (conn, accept.verdict.short_id)
        if accept.shape is not None and accept.shape.h3 is not None:
            self._h3_profiles[id(conn)] = accept.shape.h3
        at = accept.reply_not_before
        if at is not None and at > now:
            self._paced[id(conn)] = (at, self.loop.call_at(at, self._release_paced, conn))

    def new_h3(self, conn: QuicConnection) -> H3Connection:
        """As a plain server; an accepted connection with a learned target profile opens its
        HTTP/3 as the target did: the target's SETTINGS, and only the QPACK streams the target
        opened early (the others when first needed)."""
        profile = self._h3_profiles.pop(id(conn), None)
        if profile is None:
            return super().new_h3(conn)
        return H3Connection(conn, is_client=False, settings=profile.settings_to_send(),
                            early_qpack_streams=profile.early_qpack_streams)

    def _release_paced(self, conn: QuicConnection) -> None:
        if self._paced.pop(id(conn), None) is not None:
            self.service([conn])  # sends the held flight (or forgets a connection that ended)

    def transmit(self, conn: QuicConnection, now: float) -> None:
        """As a plain server, except that a paced accepted connection sends nothing before its
        :attr:`~quicreality.reality.gate.Accept.reply_not_before` (a timer releases it)."""
        paced = self._paced.get(id(conn))
        if paced is not None:
            if now < paced[0]:
                return
            del self._paced[id(conn)]
            paced[1].cancel()
        super().transmit(conn, now)

    def connection_gone(self, conn: QuicConnection) -> None:
        """Forget the connection's short ID, then as a plain server."""
        self.short_ids.pop(id(conn), None)
        self._h3_profiles.pop(id(conn), None)
        paced = self._paced.pop(id(conn), None)
        if paced is not None:
            paced[1].cancel()
        super().connection_gone(conn)

    # --- reload ---------------------------------------------------------------------------

    def reload(self, config: RealityServerConfig, relay: RelayConfig | None) -> ReloadPlan:
        """Swap a new configuration in (SIGHUP; see :mod:`quicreality.reality.reload`).

        New ClientHellos are judged by ``config`` at once; connections whose short ID it no
        longer has are closed with :data:`~quicreality.reality.reload.REVOKED_REASON`; the relay
        settings (allow-list, upstream, timeouts) apply to every new relay stream, on new and
        existing connections.
        """
        live = [(key, short_id) for key, (_, short_id) in self.short_ids.items()]
        conns: dict[Hashable, QuicConnection] = {key: c for key, (c, _) in self.short_ids.items()}
        plan = plan_reload(self.gate.config, config, live)
        self.gate.config = plan.config
        now = self.now()
        closing = []
        for key, reason in plan.close:
            conn = conns[key]
            if not conn.is_terminated:
                conn.close(REVOKED_CLOSE_CODE, None, reason)
                closing.append(conn)
        self.service(closing, now)
        self.set_relay_config(relay)
        self.reloads += 1
        return plan

    def set_relay_config(self, relay: RelayConfig | None) -> None:
        """New relay settings for every new relay stream (None: the relay refuses all)."""
        self.relay_config = relay or RelayConfig()
        for link in self.relays.values():
            link.reconfigure(self.relay_config)

    # --- verdicts -------------------------------------------------------------------------

    def _record_verdict(self, addr: Any, verdict: RealityVerdict, now: float) -> None:
        self.recent_verdicts.append((time.time(), f"{addr[0]}:{addr[1]}", verdict))
        self.metrics.verdict(verdict)
        info = verdict.describe()
        host, port = addr[0], addr[1]
        if self._may_log(verdict.accepted, now) and log.isEnabledFor(logging.INFO):
            extra = " ".join(f"{k}={v}" for k, v in info.items() if k not in ("accepted", "reason"))
            more = f" ({self._unlogged} rejected verdicts not logged)" if self._unlogged else ""
            self._unlogged = 0
            log.info("reality verdict %s from %s:%s %s%s", verdict.reason.name, host, port, extra,
                     more)
        self.endpoint_qlog.custom(now, "reality:verdict", {"client": f"{host}:{port}", **info})

    def _may_log(self, accepted: bool, now: float) -> bool:
        """A token bucket for rejected verdicts' log lines (a flood must not become a log flood)."""
        last = self._log_refilled
        self._log_refilled = now
        if last is not None:
            self._log_tokens = min(10 * REJECT_LOG_RATE,
                                   self._log_tokens + (now - last) * REJECT_LOG_RATE)
        if accepted:
            return True
        if self._log_tokens >= 1.0:
            self._log_tokens -= 1.0
            return True
        self._unlogged += 1
        return False

    def _gate_events(self, now: float) -> None:
        while (event := self.gate.next_event()) is not None:
            match event:
                case Decided(addr=addr, verdict=verdict, release=release):
                    self._record_verdict(addr, verdict, now)
                    for held in release:
                        self._to_client(addr, held)
                case FlowClosed(addr=addr):
                    self.relay.close(addr)
                case ToTarget(addr=addr, data=data):
                    if addr in self.relay:
                        self.relay.send(addr, data)

    # --- timers ---------------------------------------------------------------------------

    def service(self, conns: Iterable[QuicConnection], now: float | None = None) -> None:
        """Run the connections' send paths, then re-arm the gate's timer."""
        super().service(conns, now)
        self._arm_gate_timer()

    def _arm_gate_timer(self, not_before: float | None = None) -> None:
        at = self.gate.get_timer()
        if at is not None and not_before is not None:
            at = max(at, not_before)
        if at == self._gate_timer_at:
            return
        if self._gate_timer is not None:
            self._gate_timer.cancel()
            self._gate_timer = None
        self._gate_timer_at = at
        if at is not None:
            self._gate_timer = self.loop.call_at(at, self._on_gate_timer)

    def _on_gate_timer(self) -> None:
        self._gate_timer = None
        self._gate_timer_at = None
        now = self.now()
        try:
            self.gate.handle_timer(now)
            self._gate_events(now)
        except Exception:  # one bad flow must not stop every later deadline
            log.exception("REALITY gate timer failed; continuing")
            self._arm_gate_timer(not_before=now + _TIMER_RETRY)
            return
        self._arm_gate_timer()

    def close(self) -> None:
        """Stop reading, cancel timers and close every fallback socket."""
        super().close()
        if self._drain_handle is not None:
            self._drain_handle.cancel()
            self._drain_handle = None
        for _, timer in self._paced.values():
            timer.cancel()
        self._paced.clear()
        if self._gate_timer is not None:
            self._gate_timer.cancel()
        if self._learning is not None:
            self._learning.cancel()
        self.relay.close_all()


def raise_nofile_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (each fallback flow holds a socket);
    return the soft limit now in effect."""
    try:
        import resource
    except ImportError:  # not a Unix
        return 1 << 20
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY:
        return hard
    if hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, resource.getrlimit(
                resource.RLIMIT_NOFILE)[1]))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("cannot raise RLIMIT_NOFILE from %d to %d: %s", soft, hard, exc)
    return soft


def endpoint_qlog_sink(qlog_dir: str | os.PathLike[str], flavour: str = "0.3") -> QlogSink:
    """The endpoint trace: ``reality_endpoint_server.sqlog`` in ``qlog_dir``."""
    from ..qlog.writer import JsonSeqWriter

    Path(qlog_dir).mkdir(parents=True, exist_ok=True)
    return JsonSeqWriter(Path(qlog_dir) / "reality_endpoint_server.sqlog", vantage_point="server",
                         odcid=b"reality", flavour=flavour,  # type: ignore[arg-type]
                         title="quicreality REALITY endpoint")


async def serve_reality(
    sock: socket.socket,
    configuration_factory: Callable[[], QuicConfiguration],
    config: RealityServerConfig,
    *,
    www: Path | None,
    stop: asyncio.Event | None = None,
    endpoint_qlog: QlogSink | None = None,
    metrics: RealityMetrics | None = None,
    ready: Callable[[RealityServer], None] | None = None,
    **server_options: Any,
) -> None:
    """Run a REALITY listener on ``sock`` until ``stop`` is set (or forever).

    Raises:
        OSError: the target does not resolve.
    """
    target = resolve_target(*config.target)
    descriptors = raise_nofile_limit()
    limits = fit_to_descriptors(config.limits, descriptors)
    if limits != config.limits:
        log.warning("RLIMIT_NOFILE allows %d descriptors: gate tables shrunk to "
                    "max_pending_flows=%d, max_fallback_flows=%d", descriptors,
                    limits.max_pending_flows, limits.max_fallback_flows)
        config = dataclasses.replace(config, limits=limits)
    gate = RealityGate(config, RealityIdentity.generate(os.urandom), wall_clock=time.time)
    endpoint = QuicServerEndpoint(configuration_factory, rng=os.urandom, gate=gate)
    shapes = ShapeCache(config.shape_ttl_s) if config.shape_ttl_s > 0 else None
    server = RealityServer(sock, endpoint, H3FileServer(www), gate, target=target,
                           metrics=metrics, endpoint_qlog=endpoint_qlog, shapes=shapes,
                           **server_options)
    server.start_learning(config.server_names)
    if ready is not None:
        ready(server)
    try:
        if stop is None:
            await asyncio.Event().wait()
        else:
            await stop.wait()
    finally:
        server.shutdown()  # CONNECTION_CLOSE to every client: relay clients reconnect at once
        server.close()
        await close_upstream_pools()
        for conn in list(endpoint.connections):
            release = getattr(conn, "release", None)
            if release is not None:
                release()
        if endpoint_qlog is not None:
            endpoint_qlog.close()
