"""The operator's status page (``--metrics-listen``: HTML at ``/``, Prometheus at ``/metrics``).

A :class:`StatusPage` is a plain value: the listener's identity (public key, target, server
names, short IDs, relay allow-list and upstream), its counters and its recent verdicts.
:func:`render_html` turns it into one self-contained HTML page (no scripts, no external
resources); :func:`counters_from_registry` reads the counters from the Prometheus registry, so
the page and ``/metrics`` never disagree. The page is built on the event loop by the edge
(:meth:`quicreality.aio.reality_server.RealityServer.status_page`) and served by
:func:`quicreality.metrics.serve_metrics`.

Short IDs are credentials (with the public key they are all a client needs), so the page shows
their fingerprints, as the logs do (:func:`~quicreality.reality.keys.short_id_fingerprint`).
"""

from __future__ import annotations

import datetime
import html
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

#: The HTTP Content-Type of the page.
CONTENT_TYPE = "text/html; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Counters:
    """What the page counts (all from the Prometheus registry)."""

    accepted: float
    rejected: tuple[tuple[str, float], ...]  #: (reason, count), only reasons seen
    fallback_flows_total: float
    fallback_flows_active: float
    connections_active: float
    streams_active: float
    udp_flows_active: float
    relay_bytes_up: float
    relay_bytes_down: float
    fallback_bytes_to_target: float
    fallback_bytes_to_client: float

    @property
    def rejected_total(self) -> float:
        """Every rejected flow."""
        return sum(n for _, n in self.rejected)


@dataclass(frozen=True, slots=True)
class VerdictRow:
    """One recent verdict as the page lists it."""

    at: float  #: wall-clock seconds
    client: str
    outcome: str  #: ACCEPT or the rejecting reason
    server_name: str
    short_id_fp: str
    detail: str


@dataclass(frozen=True, slots=True)
class StatusPage:
    """Everything the page shows (see the module docstring)."""

    title: str
    listen: str
    public_key: str
    target: str
    server_names: tuple[str, ...]
    short_id_fps: tuple[str, ...]
    allow: tuple[str, ...]
    upstream: str | None
    counters: Counters
    verdicts: tuple[VerdictRow, ...]  #: newest first
    reloads: int = 0
    reload_failures: int = 0
    generated_at: float = 0.0  #: wall-clock seconds


def _sum(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    total = 0.0
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def counters_from_registry(registry: CollectorRegistry) -> Counters:
    """The page's counters from ``registry`` (the server side of the relay counters)."""
    rejected: list[tuple[str, float]] = []
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == "quicreality_reality_handshakes_rejected_total" and sample.value:
                rejected.append((sample.labels.get("reason", "?"), sample.value))
    return Counters(
        accepted=_sum(registry, "quicreality_reality_handshakes_accepted_total"),
        rejected=tuple(sorted(rejected)),
        fallback_flows_total=_sum(registry, "quicreality_reality_fallback_flows_total"),
        fallback_flows_active=_sum(registry, "quicreality_reality_fallback_flows_active"),
        connections_active=_sum(registry, "quicreality_connections_active"),
        streams_active=_sum(registry, "quicreality_relay_streams_active", side="server"),
        udp_flows_active=_sum(registry, "quicreality_relay_udp_flows_active", side="server"),
        relay_bytes_up=_sum(registry, "quicreality_relay_bytes_total", side="server",
                            direction="up"),
        relay_bytes_down=_sum(registry, "quicreality_relay_bytes_total", side="server",
                              direction="down"),
        fallback_bytes_to_target=_sum(registry, "quicreality_reality_fallback_bytes_total",
                                      direction="client_to_target"),
        fallback_bytes_to_client=_sum(registry, "quicreality_reality_fallback_bytes_total",
                                      direction="target_to_client"),
    )


def _n(value: float) -> str:
    return f"{int(value):,}"


def _clock(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _rows(pairs: list[tuple[str, str]], cls: str) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<table class="{cls}">{body}</table>'


def _list(items: tuple[str, ...], empty: str) -> str:
    if not items:
        return f"<em>{html.escape(empty)}</em>"
    return "<ul>" + "".join(f"<li><code>{html.escape(i)}</code></li>" for i in items) + "</ul>"


_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.4em; }
table { border-collapse: collapse; } th, td { padding: 3px 10px; border-bottom: 1px solid #ddd;
text-align: left; vertical-align: top; } th { color: #555; font-weight: normal; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f3f3f3; padding: 1px 4px; } ul { margin: 0; padding-left: 1.2em; }
.accept { color: #176f2c; } .reject { color: #a33; }
"""


def render_html(page: StatusPage) -> str:
    """The page as one HTML document (every value escaped)."""
    c = page.counters
    identity = _rows([
        ("Listening on", f"<code>{html.escape(page.listen)}</code>"),
        ("Public key", f'<code id="public-key">{html.escape(page.public_key)}</code>'),
        ("Target", f'<code id="target">{html.escape(page.target)}</code>'),
        ("Server names", _list(page.server_names, "none")),
        ("Short IDs (fingerprints)", _list(page.short_id_fps, "none")),
        ("Relay allow-list", _list(page.allow, "empty: every relay stream is refused")),
        ("Relay upstream", html.escape(page.upstream) if page.upstream else "<em>none</em>"),
        ("Reloads", f"{page.reloads} (refused: {page.reload_failures})"),
    ], "identity")
    counts = [
        ("Handshakes accepted", _n(c.accepted)),
        ("Handshakes rejected", _n(c.rejected_total)),
        *((f"rejected: {reason}", _n(n)) for reason, n in c.rejected),
        ("Fallback flows (total)", _n(c.fallback_flows_total)),
        ("Fallback flows (active)", _n(c.fallback_flows_active)),
        ("Connections (active)", _n(c.connections_active)),
        ("Relay streams (active)", _n(c.streams_active)),
        ("Relay UDP flows (active)", _n(c.udp_flows_active)),
        ("Relay bytes up (client to destination)", _n(c.relay_bytes_up)),
        ("Relay bytes down (destination to client)", _n(c.relay_bytes_down)),
        ("Fallback bytes client to target", _n(c.fallback_bytes_to_target)),
        ("Fallback bytes target to client", _n(c.fallback_bytes_to_client)),
    ]
    counters = ('<table class="counters">' + "".join(
        f"<tr><th>{html.escape(k)}</th><td class=\"num\">{v}</td></tr>" for k, v in counts)
        + "</table>")
    if page.verdicts:
        head = ("<tr><th>Time</th><th>Client</th><th>Verdict</th><th>SNI</th>"
                "<th>Short ID</th><th>Detail</th></tr>")
        rows = "".join(
            f'<tr><td>{_clock(v.at)}</td><td><code>{html.escape(v.client)}</code></td>'
            f'<td class="{"accept" if v.outcome == "ACCEPT" else "reject"}">'
            f"{html.escape(v.outcome)}</td><td>{html.escape(v.server_name)}</td>"
            f"<td>{html.escape(v.short_id_fp)}</td><td>{html.escape(v.detail)}</td></tr>"
            for v in page.verdicts)
        verdicts = f'<table class="verdicts">{head}{rows}</table>'
    else:
        verdicts = "<p><em>no verdict yet</em></p>"
    title = html.escape(page.title)
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{title}</h1>"
            f"<p>Generated {_clock(page.generated_at)}. Prometheus metrics: "
            f'<a href="/metrics">/metrics</a>.</p>'
            f"<h2>Configuration</h2>{identity}<h2>Counters</h2>{counters}"
            f"<h2>Recent verdicts ({len(page.verdicts)}, newest first)</h2>{verdicts}"
            "</body></html>")
