"""The censor lab end to end (root, real peers): ``run censor-gfw --quick`` as a user runs it.

One run (module fixture) of the catalog scenario: curl, our client (plain and REALITY) and
Chromium through the emulator's censor (gfw-2025 + fingerprint + active-probe), real servers
(ours, quic-go as the target). Each test reads one row's ``check.json``, ``samples.jsonl`` and
``censor.jsonl`` and checks the outcome issue 12 asks for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from quicreality.scenarios.catalog import find_scenario
from quicreality.scenarios.results import read_samples
from quicreality.scenarios.workloads.censored import BLOCK_GRACE_S

REPO = Path(__file__).resolve().parents[2]
SCENARIO = "censor-gfw"


def _netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert os.geteuid() == 0, "lab tests run as root (network namespaces, TUN, tcpdump)"
    root = tmp_path_factory.mktemp("censor")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "quicreality.scenarios", "run", SCENARIO, "--quick",
                        "--results", str(root)], cwd=REPO, capture_output=True, text=True,
                       timeout=420, check=False)
    print(r.stdout[-8000:], r.stderr[-3000:], f"wall {time.monotonic() - t0:.0f}s", sep="\n")
    runs = list((root / "runs").iterdir())
    assert len(runs) == 1, r.stderr[-2000:]
    info = json.loads((runs[0] / "run.json").read_text())
    assert not any(ns.startswith(f"qr-{info['topology_run_id']}-") for ns in _netns())
    return runs[0]


class Row:
    """One repetition of one workload: check, samples by metric, censor decisions."""

    def __init__(self, run: Path, name: str) -> None:
        w = {x.name: x for x in find_scenario(SCENARIO).quickened().workloads}[name]
        self.workload = w
        rep = run / SCENARIO / name / w.pair / "rep-1"
        self.check: dict[str, Any] = json.loads((rep / "check.json").read_text())
        self.samples = {s["metric"]: s for s in read_samples(rep / "samples.jsonl")}
        self.decisions = [json.loads(x) for x in (rep / "censor.jsonl").read_text().splitlines()]

    def value(self, metric: str) -> float:
        return float(self.samples[metric]["value"])

    def blocks(self) -> list[dict[str, Any]]:
        return [d for d in self.decisions if d["action"] == "block"]

    def verdicts(self) -> list[str]:
        return [d["probe_verdict"] for d in self.decisions if "probe_verdict" in d]


def test_curl_to_a_blocked_sni_is_blocked_on_its_first_flight(run: Path) -> None:
    row = Row(run, "curl-blocked-sni")
    assert row.check["ok"], row.check["reason"]
    assert row.value("blocked") == 1 and row.value("transfer_ok") == 0
    assert row.samples["censor_reason"]["unit"] == "gfw-2025"
    first = row.blocks()[0]
    assert first["packet"] == 1 and first["flow_age_ms"] == 0.0, first
    assert first["sni"] == "blocked.quicreality.test" and first["residual_s"] == 180
    # the row ends after the block, not at the client's timeout
    assert row.check["details"]["client_secs"] < row.workload.effective_timeout_s()
    assert row.check["details"].get("client_stopped", "").startswith(f"{BLOCK_GRACE_S:g} s")


def test_curl_to_an_allowed_sni_passes(run: Path) -> None:
    row = Row(run, "curl-allowed-sni")
    assert row.check["ok"], row.check["reason"]
    assert row.value("blocked") == 0 and row.value("transfer_ok") == 1
    assert row.value("goodput") > 0
    assert not row.blocks() and {d["policy"] for d in row.decisions} == {
        "gfw-2025", "fingerprint", "active-probe"}


def test_reality_with_the_session_id_carrier_is_blocked_by_the_fingerprint_policy(
        run: Path) -> None:
    row = Row(run, "reality-session-id")
    assert row.check["ok"], row.check["reason"]
    assert row.value("blocked") == 1 and row.value("transfer_ok") == 0
    first = row.blocks()[0]
    assert first["policy"] == "fingerprint" and "session_id_len equals 32" in first["reason"]


def test_chrome_shaped_reality_passes_and_downloads_byte_exact(run: Path) -> None:
    row = Row(run, "reality-chrome-probed")
    assert row.check["ok"], row.check["reason"]
    d = row.check["details"]
    assert row.value("blocked") == 0 and row.value("transfer_ok") == 1
    assert d["sha256"] == d["expected_sha256"] and d["bytes"] == row.workload.size_bytes
    assert row.value("goodput") > 0


@pytest.mark.parametrize("name", ["reality-chrome-probed", "chromium-target"])
def test_the_probers_verdict_on_our_listener_is_target_like(run: Path, name: str) -> None:
    row = Row(run, name)
    probes = [d for d in row.decisions if d["action"] == "probe"]
    assert probes and probes[0]["policy"] == "active-probe"
    assert row.verdicts() == ["target-like"], [d["reason"] for d in row.decisions]
    assert row.value("probe_verdict") == 1
    assert row.check["ok"], row.check["reason"]


def test_chromium_gets_the_targets_page(run: Path) -> None:
    row = Row(run, "chromium-target")
    d = row.check["details"]
    assert d["marker_in_dom"] is True and row.value("transfer_ok") == 1, d


def test_the_prober_tells_a_plain_server_from_the_target(run: Path) -> None:
    row = Row(run, "prober-vs-plain-server")
    assert row.verdicts() == ["distinct"], [d["reason"] for d in row.decisions]
    assert row.blocks()[0]["policy"] == "active-probe"
