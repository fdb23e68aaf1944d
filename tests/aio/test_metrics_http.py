"""The --metrics-listen HTTP endpoint on loopback: /metrics, the status page at /, errors."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from quicreality.metrics import NO_STATUS, MetricsServer, serve_metrics


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    registry = CollectorRegistry()
    Counter("qr_test_things", "things", registry=registry).inc(3)
    srv = serve_metrics("127.0.0.1", 0, registry)
    try:
        yield srv
    finally:
        srv.shutdown()


def get(srv: MetricsServer, path: str) -> tuple[int, str, str]:
    url = f"http://127.0.0.1:{srv.server_address[1]}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_metrics_and_the_default_page(server: MetricsServer) -> None:
    code, ctype, body = get(server, "/metrics")
    assert code == 200 and ctype.startswith("text/plain") and "qr_test_things_total 3.0" in body
    assert get(server, "/") == (200, "text/html; charset=utf-8", NO_STATUS)


def test_a_status_source_is_served_and_its_failure_is_said(server: MetricsServer) -> None:
    server.status = lambda: "<p>hello</p>"
    assert get(server, "/")[2] == "<p>hello</p>"

    def broken() -> str:
        raise RuntimeError("loop gone")

    server.status = broken
    code, _, body = get(server, "/")
    assert code == 500 and "loop gone" in body
    assert get(server, "/nope")[0] == 404
