"""The regression report end to end on the committed real run: it renders (table + embedded
plots), an unchanged run passes, and a run whose goodput is halved fails CI (exit 1)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from analysis_paths import REPO

from quicreality.analysis.inject import slow_down_run
from quicreality.analysis.regression import load_baseline, make_baseline, save_baseline
from quicreality.analysis.report import write_report
from quicreality.scenarios.catalog import find_scenario


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, int] = {}
        self.images: list[str] = []
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id") or ""
            self.tables[self._table] = 0
        elif tag == "tr" and self._table is not None:
            self.tables[self._table] += 1
        elif tag == "img":
            self.images.append(a.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, sample: Path) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("report")
    same = base / sample.name
    shutil.copytree(sample, same)
    ours = [w.name for w in find_scenario("lossy-wan").workloads if not w.baseline]
    slow = slow_down_run(sample, base / "20991231T000000Z-slow000", 2.0, only=ours)
    baseline = save_baseline(make_baseline(sample), base / "lossy-wan.json")
    return {"same": same, "slow": slow, "baseline": baseline}


def test_baseline_file_is_small_raw_and_describes_the_host(runs: dict[str, Path]) -> None:
    doc = load_baseline(runs["baseline"])
    assert runs["baseline"].stat().st_size < 20_000
    assert doc["scenario"] == "lossy-wan" and doc["schema"] == 2
    assert doc["sampling"]["unit"] == "interval"
    entries = {e["key"]: e for e in doc["entries"]}
    w = entries["ours-ours/ours__ours"]
    assert w["host"]["cpus"] >= 1 and w["host"]["kernel"] and w["host_class"]["cpu_model"]
    assert w["definition"]["quick"] is True and w["definition"]["workload.size_bytes"] == 2e6
    assert not any(k.startswith("peer.") for k in w["definition"])  # ours <-> ours
    assert entries["quicgo-quicgo/quicgo__quicgo"]["definition"]["peer.quic-go"] == "0.29.0-1"
    (rep,) = w["reps"]
    assert rep["value"] > 0 and len(rep["intervals"]) == 20
    assert "fallback-curl/curl__ours" not in entries  # no goodput, not a baseline


def test_unchanged_run_renders_and_passes(runs: dict[str, Path]) -> None:
    rep = write_report(runs["same"], runs["baseline"])
    assert rep.exit_code == 0 and not rep.regressions
    assert {c.verdict for c in rep.comparisons} == {"ok", "control steady"}
    assert rep.verdict == "ok" and rep.verdict_line.startswith("OK")
    html = (runs["same"] / "report.html").read_text()
    parser = _Html()
    parser.feed(html)
    # header + one row and one details row each
    assert parser.tables["verdicts"] == 1 + 2 * len(rep.comparisons)
    assert parser.tables["distributions"] == 1 + len(rep.comparisons)
    pngs = [s for s in parser.images if s.startswith("data:image/png;base64,")]
    assert len(pngs) == 1 + len(rep.comparisons)  # the ratio plot + one per workload
    for src in pngs:
        raw = base64.b64decode(src.split(",", 1)[1])
        assert raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) > 5_000
    md = (runs["same"] / "report.md").read_text()
    assert md.count("| **ok** |") + md.count("| **control steady** |") == len(rep.comparisons)
    assert md.startswith("# OK: no regression")
    assert 'href="lossy-wan/ours-ours/ours__ours/rep-1/"' in html
    assert 'href="lossy-wan/ours-ours/ours__ours/rep-1/client.pcapng"' in html
    saved = json.loads((runs["same"] / "report.json").read_text())
    assert saved["exit_code"] == 0 and len(saved["comparisons"]) == len(rep.comparisons)


def test_injected_regression_fails_the_report_cli(runs: dict[str, Path]) -> None:
    r = subprocess.run([sys.executable, "-m", "quicreality.scenarios", "report",
                        str(runs["slow"]), "--baseline", str(runs["baseline"])],
                       cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "REGRESSION:" in r.stdout
    saved = json.loads((runs["slow"] / "report.json").read_text())
    verdicts = {c["key"]: c for c in saved["comparisons"]}
    ours = verdicts["ours-ours/ours__ours"]
    assert ours["verdict"] == "regression"
    assert ours["change"] == pytest.approx(-0.5, abs=0.02) and ours["p_value"] <= 0.01
    assert sum(c["verdict"] == "regression" for c in verdicts.values()) >= 5
    assert all(c["verdict"] == "control steady" for c in verdicts.values()
               if c["role"] == "control")
    assert re.search(r"id=\"verdict\" data-verdict=\"regressed\"[^>]*>REGRESSED vs the controls: ",
                     (runs["slow"] / "report.html").read_text())


def test_report_usage_errors(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "quicreality.scenarios", "report",
                        str(tmp_path / "missing")], cwd=REPO, capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 2 and "not a directory" in r.stderr
