"""Prometheus metrics of a quicreality process: one shared registry, one HTTP endpoint.

Components register their metrics on :data:`REGISTRY` (the relay's are in :class:`RelayMetrics`,
created once by :func:`relay_metrics`); ``--metrics-listen HOST:PORT`` serves them all in the
Prometheus text format through :func:`serve_metrics`.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, start_http_server

#: The registry every quicreality metric lives in.
REGISTRY = CollectorRegistry(auto_describe=True)


def serve_metrics(host: str, port: int, registry: CollectorRegistry = REGISTRY) -> Any:
    """Serve ``registry`` at ``http://HOST:PORT/metrics`` from a daemon thread; returns the server.

    Call ``.shutdown()`` on the result to stop it.
    """
    server, _thread = start_http_server(port, addr=host, registry=registry)
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
