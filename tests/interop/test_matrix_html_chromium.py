"""Headless Chromium opens a matrix.html we render and we check what it shows: the DOM it
built (tables, letters, links to the pair folders) and the colours it painted (screenshot).

Skipped (with the reason) when Debian's chromium is not installed; scripts/setup.sh installs it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from quicreality.interop.cases import by_name
from quicreality.interop.report import matrix_html
from quicreality.interop.runner import Outcome
from quicreality.interop.verdicts import Verdict
from quicreality.scenarios.peers import chromium
from quicreality.scenarios.peers.paths import PeerNotInstalled

pytestmark = pytest.mark.interop


def _chromium() -> Path:
    try:
        return chromium.binary()
    except PeerNotInstalled as e:
        pytest.fail(f"{e}: run scripts/setup.sh (it installs Debian's chromium)")


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []
        self.tables: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a":
            self.links.append(a)
        if tag == "table":
            self.tables.append(a.get("data-case"))


def _page(tmp: Path) -> Path:
    h, s = by_name("handshake"), by_name("retry")
    outs = [Outcome(h, "ours", "ours", 1, Verdict("succeeded", "1 handshake"), "", 1.0),
            Outcome(h, "ngtcp2", "ours", 1, Verdict("failed", "2 handshakes"), "", 1.0),
            Outcome(s, "ours", "ours", 1, Verdict("unsupported", "exit 127"), "", 1.0),
            Outcome(s, "ngtcp2", "ours", 1, Verdict("succeeded", "ok"), "", 1.0)]
    page = tmp / "matrix.html"
    page.write_text(matrix_html(outs, [h, s], ["ours", "ngtcp2"], ["ours"], "t"))
    return page


def _run(argv: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False,
                          env={"HOME": str(home), "PATH": "/usr/bin:/bin"})


def test_chromium_renders_the_grid() -> None:
    exe = _chromium()
    tmp = Path(tempfile.mkdtemp(prefix="qr-matrix-html-"))
    try:
        page = _page(tmp)
        flags = [str(exe), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 f"--user-data-dir={tmp / 'profile'}"]
        r = _run([*flags, "--dump-dom", page.as_uri()], tmp)
        assert r.returncode == 0, r.stderr[-2000:]
        dom = _Dom()
        dom.feed(r.stdout)
        assert dom.tables == ["handshake", "retry"]
        shown = {(a.get("href"), a.get("data-result"), a.get("title")) for a in dom.links}
        assert ("ours_ours/handshake/", "succeeded", "1 handshake") in shown
        assert ("ngtcp2_ours/handshake/", "failed", "2 handshakes") in shown
        assert ("ours_ours/retry/", "unsupported", "exit 127") in shown
        shot = tmp / "shot.png"
        r = _run([*flags, f"--screenshot={shot}", "--window-size=900,600", page.as_uri()], tmp)
        assert shot.is_file(), r.stderr[-2000:]
        import matplotlib.image as mpimg

        px = (mpimg.imread(str(shot))[:, :, :3] * 255).round().astype(int)
        colours = {tuple(int(c) for c in p) for p in px.reshape(-1, 3)}
        # the verdict colours of the stylesheet: green, red, grey
        for rgb in ((0x19, 0x87, 0x54), (0xDC, 0x35, 0x45), (0x6C, 0x75, 0x7D)):
            assert rgb in colours, f"colour {rgb} not painted"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
