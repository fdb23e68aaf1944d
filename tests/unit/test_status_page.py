"""The status page's values and HTML (quicreality.status), without a server."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from quicreality.metrics import RealityMetrics, RelayMetrics
from quicreality.reality.auth import RealityVerdict, Reason
from quicreality.status import StatusPage, VerdictRow, counters_from_registry, render_html


def test_counters_come_from_the_registry() -> None:
    registry = CollectorRegistry()
    reality, relay = RealityMetrics(registry), RelayMetrics(registry)
    reality.verdict(RealityVerdict(Reason.ACCEPT))
    reality.verdict(RealityVerdict(Reason.ACCEPT))
    reality.verdict(RealityVerdict(Reason.UNKNOWN_SHORT_ID))
    relay.bytes_total.labels(side="server", direction="up").inc(1000)
    relay.bytes_total.labels(side="client", direction="up").inc(7)  # not the server's
    relay.bytes_total.labels(side="server", direction="down").inc(250)
    relay.streams_active.labels(side="server", kind="tcp").set(3)
    reality.connections_active.set(2)
    c = counters_from_registry(registry)
    assert (c.accepted, c.rejected, c.rejected_total) == (2, (("UNKNOWN_SHORT_ID", 1.0),), 1)
    assert (c.relay_bytes_up, c.relay_bytes_down) == (1000, 250)
    assert (c.streams_active, c.connections_active, c.fallback_flows_total) == (3, 2, 1)


def page(**changes: object) -> StatusPage:
    registry = CollectorRegistry()
    RealityMetrics(registry).verdict(RealityVerdict(Reason.TIME_SKEW))
    values: dict[str, object] = dict(
        title="quicreality REALITY listener 127.0.0.1:443", listen="127.0.0.1:443",
        public_key="PUBKEY", target="www.example.com:443",
        server_names=("<script>alert(1)</script>",), short_id_fps=("2b11680b",),
        allow=("10.0.0.0/8:*",), upstream=None, counters=counters_from_registry(registry),
        verdicts=(VerdictRow(0.0, "192.0.2.1:5000", "TIME_SKEW", "a&b", "", "skew 90 s"),))
    values.update(changes)
    return StatusPage(**values)  # type: ignore[arg-type]


def test_render_escapes_every_value_and_shows_each_section() -> None:
    out = render_html(page())
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "a&amp;b" in out and "skew 90 s" in out
    for text in ("PUBKEY", "www.example.com:443", "2b11680b", "10.0.0.0/8:*",
                 "rejected: TIME_SKEW", "Recent verdicts (1, newest first)", 'href="/metrics"'):
        assert text in out, text


def test_empty_lists_say_what_they_mean() -> None:
    out = render_html(page(allow=(), verdicts=(), short_id_fps=()))
    assert "empty: every relay stream is refused" in out
    assert "no verdict yet" in out
