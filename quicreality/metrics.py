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
    * ``quicreality_relay_udp_flows_active{side}`` / ``..._udp_flows_total{side}``;
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
