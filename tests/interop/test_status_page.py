"""The REALITY server's status page, rendered by headless Chromium after real traffic.

A REALITY relay server runs with ``--metrics-listen``; a relay client moves 2 MB through it and
a client with an unknown short ID is turned away. Chromium (Debian's, ``--dump-dom``) renders
``http://HOST:PORT/`` and the test reads the rendered tables as a person would: the public key,
target, server name, short ID fingerprint, allow-list and upstream, and counters that agree with
``/metrics`` (accepted, rejected by reason, relay bytes each way), plus the recent verdicts.
A screenshot goes to the test's temp dir, and to ``$QR_STATUS_SCREENSHOT`` when set (that is
how ``docs/img/status-page.png`` was made).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from chain_hops import client_of, new_hop
from peers_harness import PeerHarness, Pki, harness_in_tempdir
from relay_chain import HOST, EchoServer, Fwd, wait_for

from quicreality.reality.keys import parse_short_id, short_id_fingerprint
from quicreality.scenarios.peers import chromium
from quicreality.scenarios.peers.paths import PeerNotInstalled

pytestmark = pytest.mark.interop

SIZE = 2 << 20


@pytest.fixture(scope="module")
def harness() -> Iterator[PeerHarness]:
    with harness_in_tempdir("qr-status-") as h:
        yield h


class Tables(HTMLParser):
    """Every table row of a page as a list of cell texts, and the page's whole text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "title"):
            self._skip += 1
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "li" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title"):
            self._skip -= 1
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def value(self, label: str) -> str:
        """The cell next to the row header ``label``."""
        for row in self.rows:
            if row and row[0] == label:
                return row[1]
        raise AssertionError(f"no row {label!r} on the page: {[r[0] for r in self.rows]}")

    def number(self, label: str) -> int:
        return int(self.value(label).replace(",", ""))


def render(harness: PeerHarness, url: str, name: str, screenshot: Path | None = None) -> str:
    """Chromium's DOM of ``url`` (or, with ``screenshot``, the PNG written there)."""
    try:
        chromium.binary()
    except PeerNotInstalled as exc:
        pytest.fail(f"{exc}: run scripts/setup.sh (Debian package chromium)")
    profile = harness.path(f"chromium-{name}")
    env = {**os.environ, "HOME": str(harness.path(f"home-{name}"))}
    argv = chromium.render_argv(url, profile=profile, screenshot=screenshot)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert "Page load failed" not in done.stderr, done.stderr[-2000:]
    if screenshot is not None:
        assert screenshot.is_file() and screenshot.stat().st_size > 10000, done.stderr[-2000:]
    return done.stdout


def test_status_page_in_chromium_after_traffic(harness: PeerHarness, pki: Pki) -> None:
    echo = EchoServer()
    try:
        hop = new_hop(harness, pki, "status", [Fwd("echo", echo.port)],
                      [f"{HOST}:{echo.port}", "10.0.0.0/8:5201-5210"])
        hop.start_server()
        hop.start_client()
        payload = secrets.token_bytes(SIZE)
        with socket.create_connection((HOST, hop.listen["echo"]), timeout=30) as s:
            s.settimeout(30)
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := s.recv(1 << 16):
                got += chunk
        assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
        stranger = client_of(hop, "status-stranger", short_id=secrets.token_hex(8))
        stranger.start_client(wait=False)
        metrics_key = 'quicreality_reality_handshakes_rejected_total{reason="UNKNOWN_SHORT_ID"}'
        wait_for(lambda: hop.metrics("server").get(metrics_key, 0) >= 1, 30,
                 "the unknown short ID to be rejected")
        assert stranger.client is not None
        stranger.client.stop()
        # The page counts what /metrics counts: wait until the byte counters settled.
        wait_for(lambda: hop.metric("server", "quicreality_relay_bytes_total",
                                    direction="down") >= SIZE, 20, "the relay byte counters")
        metrics = hop.metrics("server")
        url = f"http://{HOST}:{hop.server_metrics}/"
        dom = render(harness, url, "dom")
    finally:
        echo.close()
    page = Tables()
    page.feed(dom)
    r = hop.reality
    assert r is not None
    text = " ".join("".join(page.text).split())
    assert f"quicreality REALITY listener {HOST}:{hop.server_port}" in text
    # Configuration, as written in the hop's TOML (short IDs as fingerprints only).
    assert page.value("Public key") == r.public_key
    assert page.value("Target") == r.target
    assert page.value("Server names") == r.server_name
    fp = short_id_fingerprint(parse_short_id(r.short_id))
    assert page.value("Short IDs (fingerprints)") == fp
    assert r.short_id not in dom  # the credential itself is never on the page
    assert page.value("Relay allow-list").split() == [f"{HOST}:{echo.port}",
                                                      "10.0.0.0/8:5201-5210"]
    assert page.value("Relay upstream") == "none"
    # Counters, equal to the /metrics samples read just before the page was rendered.
    assert page.number("Handshakes accepted") == \
        metrics["quicreality_reality_handshakes_accepted_total"] >= 1
    assert page.number("rejected: UNKNOWN_SHORT_ID") == metrics[metrics_key] >= 1
    up = page.number("Relay bytes up (client to destination)")
    down = page.number("Relay bytes down (destination to client)")
    assert up == down == SIZE, (up, down)
    assert page.number("Fallback flows (total)") >= 1  # the stranger's flows went to the target
    assert page.number("Connections (active)") >= 1
    assert page.number("Relay streams (active)") == 0
    # Recent verdicts: the relay client's ACCEPT with our fingerprint, the stranger's rejection.
    verdicts = [row for row in page.rows if len(row) == 6 and row[0] != "Time"]
    assert any(v[2] == "ACCEPT" and v[3] == r.server_name and v[4] == fp for v in verdicts), \
        verdicts
    assert any(v[2] == "UNKNOWN_SHORT_ID" for v in verdicts), verdicts
    shot = harness.path("status-page.png")
    render(harness, url, "shot", screenshot=shot)
    if os.environ.get("QR_STATUS_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["QR_STATUS_SCREENSHOT"])
