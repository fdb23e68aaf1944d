"""Prometheus metrics of a quicreality process: one shared registry, one HTTP endpoint.

Components register their metrics on :data:`REGISTRY` (the relay's are in :class:`RelayMetrics`,
created once by :func:`relay_metrics`); ``--metrics-listen HOST:PORT`` serves them all in the
Prometheus text format through :func:`serve_metrics`, next to the operator's status page at ``/``
(:mod:`quicreality.status`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: The registry every quicreality metric lives in.
REGISTRY = CollectorRegistry(auto_describe=True)

#: What ``/`` shows before a status source is set (e.g. a relay client).
NO_STATUS = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>quicreality</title>"
             "</head><body><h1>quicreality</h1><p>No status page for this process. "
             'Prometheus metrics: <a href="/metrics">/metrics</a>.</p></body></html>')


class MetricsServer(ThreadingHTTPServer):
    """``GET /metrics`` (Prometheus text format) and ``GET /`` (the status page, HTML).

    :attr:`status` builds the page's HTML on request (it runs on the HTTP thread: a source
    that reads event-loop state hands the work to the loop, see
    :func:`quicreality.aio.reality_server.status_source`).
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry) -> None:
        super().__init__(address, _Handler)
        self.registry = registry
        self.status: Callable[[], str] | None = None

    def shutdown(self) -> None:
        """Stop serving and close the listening socket."""
        super().shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.server.registry))
        elif path in ("/", "/index.html"):
            status = self.server.status
            try:
                page = status() if status is not None else NO_STATUS
            except Exception as exc:  # noqa: BLE001 - the operator sees why
                self._send(500, "text/plain; charset=utf-8",
                           f"status page failed: {exc!r}\n".encode())
                return
            self._send(200, "text/html; charset=utf-8", page.encode())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: try / or /metrics\n")

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a scrape per second would flood the log."""


def serve_metrics(host: str, port: int, registry: CollectorRegistry = REGISTRY) -> MetricsServer:
    """Serve ``registry`` at ``http://HOST:PORT/metrics`` and the status page at ``/`` from a
    daemon thread; returns the server (set ``.status``; ``.shutdown()`` stops it)."""
    server = MetricsServer((host, port), registry)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server


def render(registry: CollectorRegistry = REGISTRY) -> str:
    """The registry in the Prometheus text format (tests and debugging)."""
    return generate_latest(registry).decode()


class RelayMetrics:
    """Relay counters, labelled by ``side`` (client or server).

    * ``quicreality_relay_streams_active{side,kind}`` / ``..._streams_total{side,kind,outcome}``
      (outcome: ok, or the status that refused the stream);
    * ``quicreality_relay_bytes_total{side,direction}``: payload bytes, ``up`` = client towards
      destination, ``down`` = back;
    * ``quicreality_relay_resets_total{side,cause}``: streams that ended with a reset, by cause;
    * ``quicreality_relay_udp_flows_active{side}`` / ``..._udp_flows_total{side}`` /
      ``..._udp_flows_expired_total{side}`` (closed by the idle timeout);
    * ``quicreality_relay_udp_datagrams_total{side,direction}`` and
      ``..._udp_dropped_total{side,reason}``.
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.streams_active = Gauge("quicreality_relay_streams_active",
                                    "Relay streams open now", ["side", "kind"], registry=registry)
        self.streams_total = Counter("quicreality_relay_streams",
                                     "Relay streams opened, by outcome of the status answer",
                                     ["side", "kind", "outcome"], registry=registry)
        self.bytes_total = Counter("quicreality_relay_bytes",
                                   "Relayed TCP payload bytes (up: towards the destination)",
                                   ["side", "direction"], registry=registry)
        self.resets_total = Counter("quicreality_relay_resets",
                                    "Relay streams ended by a reset, by cause",
                                    ["side", "cause"], registry=registry)
        self.udp_flows_active = Gauge("quicreality_relay_udp_flows_active",
                                      "UDP flows open now", ["side"], registry=registry)
        self.udp_flows_total = Counter("quicreality_relay_udp_flows",
                                       "UDP flows opened", ["side"], registry=registry)
        self.udp_flows_expired = Counter("quicreality_relay_udp_flows_expired",
                                         "UDP flows closed after the idle timeout", ["side"],
                                         registry=registry)
        self.udp_datagrams_total = Counter("quicreality_relay_udp_datagrams",
                                           "Relayed UDP datagrams (up: towards the destination)",
                                           ["side", "direction"], registry=registry)
        self.udp_dropped_total = Counter("quicreality_relay_udp_dropped",
                                         "UDP datagrams dropped by the relay, by reason",
                                         ["side", "reason"], registry=registry)


_RELAY: RelayMetrics | None = None


def relay_metrics() -> RelayMetrics:
    """The process's :class:`RelayMetrics` on :data:`REGISTRY` (created on first use)."""
    global _RELAY
    if _RELAY is None:
        _RELAY = RelayMetrics()
    return _RELAY


class RealityMetrics:
    """REALITY listener counters (issue 3).

    * ``quicreality_reality_handshakes_accepted_total``;
    * ``quicreality_reality_handshakes_rejected_total{reason}``: one series per
      :class:`~quicreality.reality.auth.Reason` but ACCEPT, all present from the start at 0;
    * ``quicreality_reality_fallback_flows_active`` / ``..._fallback_flows_total``;
    * ``quicreality_reality_fallback_bytes_total{direction}``: ``client_to_target`` /
      ``target_to_client`` UDP payload bytes relayed on fallback flows (the mirror included);
    * ``quicreality_reality_pending_flows``: flows waiting for a complete ClientHello;
    * ``quicreality_reality_target_datagrams_dropped_total``: target datagrams not relayed because
      the flow was accepted;
    * ``quicreality_reality_fallback_socket_failures_total``: target sockets that could not be
      opened (out of descriptors), so a client datagram was not relayed;
    * ``quicreality_reality_hellos_shed_total``: new-flow datagrams dropped before the gate because
      its backlog was full (:mod:`~quicreality.reality.backlog`);
    * ``quicreality_connections_active``: QUIC connections of the server.
    """

    CLIENT_TO_TARGET = "client_to_target"
    TARGET_TO_CLIENT = "target_to_client"

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        from .reality.auth import Reason

        self.accepted = Counter("quicreality_reality_handshakes_accepted",
                                "REALITY handshakes accepted", registry=registry)
        self.rejected = Counter("quicreality_reality_handshakes_rejected",
                                "Flows sent to the fallback target, by reason", ["reason"],
                                registry=registry)
        for reason in Reason:
            if reason is not Reason.ACCEPT:
                self.rejected.labels(reason=reason.name)
        self.fallback_flows_active = Gauge("quicreality_reality_fallback_flows_active",
                                           "Flows relayed to the target now", registry=registry)
        self.fallback_flows_total = Counter("quicreality_reality_fallback_flows",
                                            "Flows relayed to the target", registry=registry)
        self.fallback_bytes = Counter("quicreality_reality_fallback_bytes",
                                      "Bytes relayed on fallback flows", ["direction"],
                                      registry=registry)
        for direction in (self.CLIENT_TO_TARGET, self.TARGET_TO_CLIENT):
            self.fallback_bytes.labels(direction=direction)
        self.pending_flows = Gauge("quicreality_reality_pending_flows",
                                   "Flows waiting for a complete ClientHello", registry=registry)
        self.fallback_socket_failures = Counter(
            "quicreality_reality_fallback_socket_failures",
            "Target sockets that could not be opened (e.g. out of file descriptors); the client's "
            "datagram was not relayed", registry=registry)
        self.target_dropped = Counter("quicreality_reality_target_datagrams_dropped",
                                      "Target datagrams not relayed (the flow was accepted)",
                                      registry=registry)
        self.hellos_shed = Counter(
            "quicreality_reality_hellos_shed",
            "New-flow datagrams dropped unjudged because the gate's backlog was full (a flood)",
            registry=registry)
        self.connections_active = Gauge("quicreality_connections_active",
                                        "QUIC connections of the server", registry=registry)

    def verdict(self, verdict: Any) -> None:
        """Count one decided flow (a :class:`~quicreality.reality.auth.RealityVerdict`)."""
        if verdict.accepted:
            self.accepted.inc()
        else:
            self.rejected.labels(reason=verdict.reason.name).inc()
            self.fallback_flows_total.inc()


_REALITY: RealityMetrics | None = None


def reality_metrics() -> RealityMetrics:
    """The process's :class:`RealityMetrics` on :data:`REGISTRY` (created on first use)."""
    global _REALITY
    if _REALITY is None:
        _REALITY = RealityMetrics()
    return _REALITY


class DatagramMetrics:
    """The QUIC core's DATAGRAM drops (``quic/connection/datagrams.py``), summed over the
    process's connections.

    * ``quicreality_quic_datagrams_dropped_total{direction,reason}``: ``direction="send"`` with
      ``reason`` ``send_queue_full`` (the oldest queued frame dropped to make room) or
      ``too_large`` (above the queue's byte bound, or for any packet); ``direction="receive"``
      with ``reason="receive_queue_full"`` (a received frame dropped while the bound's worth
      waited for the application). All three series are present from the start at 0.

    The asyncio edge calls :meth:`observe` after each run of a connection's send path
    (:meth:`quicreality.aio.driver.Driver.transmit`), so a scrape lags a drop by at most that.
    """

    #: ``(direction, reason)`` of :meth:`DatagramQueues.take_new_drops`'s three counts, in order.
    SERIES = (("send", "send_queue_full"), ("send", "too_large"), ("receive", "receive_queue_full"))

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.dropped = Counter("quicreality_quic_datagrams_dropped",
                               "DATAGRAM frames dropped by the QUIC core's bounded queues",
                               ["direction", "reason"], registry=registry)
        self._series = [self.dropped.labels(direction=d, reason=r) for d, r in self.SERIES]

    def observe(self, conn: Any) -> None:
        """Add ``conn``'s drops since the previous call (a :class:`~quicreality.quic.connection.
        QuicConnection`; its ``datagrams.take_new_drops()`` keeps the cursor)."""
        self.add(conn.datagrams.take_new_drops())

    def add(self, new: tuple[int, int, int]) -> None:
        """Add drops counted elsewhere (``take_new_drops``'s three counts, in :data:`SERIES` order)."""
        if any(new):
            for series, n in zip(self._series, new, strict=True):
                if n:
                    series.inc(n)


_DATAGRAMS: DatagramMetrics | None = None


def datagram_metrics() -> DatagramMetrics:
    """The process's :class:`DatagramMetrics` on :data:`REGISTRY` (created on first use)."""
    global _DATAGRAMS
    if _DATAGRAMS is None:
        _DATAGRAMS = DatagramMetrics()
    return _DATAGRAMS


def scrape_metrics(port: int, host: str = "127.0.0.1") -> dict[str, float]:
    """``{"name{label=value}": value}`` of every sample at http://HOST:PORT/metrics (benches and
    tests read a running process's counters with it)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out
