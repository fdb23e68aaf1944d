"""The HTML report as a person sees it: rendered by headless Chromium (docs in
../shared/docs/chromium.md), screenshot taken, verdict banner and plots checked in pixels and in
the rendered DOM. ``QR_REPORT_SCREENSHOT=PATH`` keeps the screenshot (docs/img/ has one)."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quicreality.analysis.regression import make_baseline, run_samples
from quicreality.analysis.report import write_report

CHROMIUM = Path("/usr/lib/chromium/chromium")


@pytest.fixture(autouse=True)
def _require_chromium() -> None:
    """Chromium is part of the set-up (the camouflage reference client): missing means install it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: run scripts/setup.sh (Debian package chromium)")


_CHECK = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 100 && i.naturalHeight > 100);
  const v = document.getElementById('verdict');
  document.body.insertAdjacentHTML('beforeend', `<pre id="check">images=${imgs.length} ` +
    `rendered=${ok.length} verdict_h=${v.getBoundingClientRect().height} ` +
    `verdict_bg=${getComputedStyle(v).backgroundColor}</pre>`);
});</script></body>"""


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="qr-chromium-") as home:
        return subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", f"--user-data-dir={home}/profile",
             "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars", *args],
            env={**os.environ, "HOME": home}, capture_output=True, text=True, timeout=120,
            check=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, sample: Path) -> Path:
    """An ``environment changed`` report (baseline: every workload 30 % faster, ours 2.6x:
    a regression under shifting controls) — every element of the report is in use."""
    run = tmp_path_factory.mktemp("chromium") / sample.name
    shutil.copytree(sample, run)
    doc = make_baseline([run], samples=[run_samples(run)])
    doc = copy.deepcopy(doc)
    for e in doc["entries"]:
        f = 1.3 if e["control"] else 1.3 * 2
        for r in e["reps"]:
            r["value"] *= f
            r["intervals"] = r["intervals"] and [x * f for x in r["intervals"]]
    rep = write_report(run, doc)
    assert rep.verdict == "regressed" and rep.moved_controls
    return run / "report.html"


def test_report_renders_in_chromium(report: Path, tmp_path: Path) -> None:
    checked = tmp_path / "checked.html"
    checked.write_text(report.read_text().replace("</body>", _CHECK, 1))
    r = _chromium("--dump-dom", checked.as_uri())
    m = re.search(r'id="check">images=(\d+) rendered=(\d+) verdict_h=([\d.]+) '
                  r"verdict_bg=rgb\((\d+), (\d+), (\d+)\)", r.stdout)
    assert m, r.stdout[-2000:] + r.stderr[-2000:]
    images, rendered, height = int(m[1]), int(m[2]), float(m[3])
    assert images >= 10 and rendered == images  # every plot decoded and laid out
    assert height > 20 and (int(m[4]), int(m[5]), int(m[6])) == (0xc0, 0x39, 0x2b)

    shot = Path(os.environ.get("QR_REPORT_SCREENSHOT") or tmp_path / "report.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    r = _chromium(f"--screenshot={shot}", "--window-size=1200,2600", report.as_uri())
    assert shot.exists(), r.stderr[-2000:]
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 2600)
    px = np.asarray(img, dtype=int)
    red = (np.abs(px[:120] - (0xc0, 0x39, 0x2b)) < 8).all(axis=2).sum()
    assert red > 20_000  # the verdict banner, at the top
    body = px[1100:]  # below the table: the ratio plot and the per-workload plots
    colours = len(np.unique(body.reshape(-1, 3), axis=0))
    non_white = (body.sum(axis=2) < 720).sum()
    assert colours > 200 and non_white > 50_000  # plots, not a blank page
