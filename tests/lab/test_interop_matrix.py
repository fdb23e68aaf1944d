"""End to end (root): ``python -m quicreality.interop run`` as a user runs it.

ours <-> ours for handshake and transfer, then a real peer pair (our server, ngtcp2's
gtlsclient) for handshake and retry: real namespaces, emulated link, captures decrypted with the
merged key logs, verdicts from the wire; result.json in QIR's schema, samples.jsonl, matrix.html;
the ipv6 case over the links' IPv6 addresses; the Chromium client (transfer, multiplexing,
resumption, zerortt and keyupdate against ours); no namespace left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quicreality.interop.report import REQUIRED_KEYS
from quicreality.scenarios.topology import OWNER_DIR

pytestmark = [pytest.mark.lab]
REPO = Path(__file__).resolve().parents[2]


def _netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _orphans(names: set[str]) -> set[str]:
    """The namespaces of ``names`` no live process owns: a concurrent run's have a live owner."""
    out = set()
    for n in names:
        try:
            pid = int(Path(OWNER_DIR, f"{n.rsplit('-', 1)[0]}.owner").read_text())
        except (OSError, ValueError):
            out.add(n)
            continue
        if not Path(f"/proc/{pid}").exists():
            out.add(n)
    return out


def _run(tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    assert os.geteuid() == 0, "lab tests run as root (network namespaces, TUN, tcpdump)"
    before = _netns()
    r = subprocess.run([sys.executable, "-m", "quicreality.interop", "run", "--results", str(tmp),
                        *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert not _orphans({n for n in _netns() - before if n.startswith("qr-")}), \
        "namespaces left behind"
    runs = sorted((tmp / "interop" / "runs").iterdir())
    assert len(runs) == 1, r.stdout + r.stderr
    return r, runs[0]


def _samples(run: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


def test_ours_ours_handshake_transfer(tmp_path: Path) -> None:
    r, run = _run(tmp_path, "--clients", "ours", "--servers", "ours", "--tests", "handshake,transfer")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((run / "result.json").read_text())
    assert tuple(doc) == REQUIRED_KEYS and doc["log_dir"] == run.name
    assert doc["results"] == [[{"abbr": "H", "name": "handshake", "result": "succeeded"},
                               {"abbr": "DC", "name": "transfer", "result": "succeeded"}]]
    rows = [s for s in _samples(run) if s["metric"] == "elapsed"]
    assert [(s["case"], s["result"]) for s in rows] == [("handshake", "succeeded"),
                                                       ("transfer", "succeeded")]
    folder = run / "ours_ours" / "transfer"
    for f in ("client.pcapng", "server.pcapng", "keys.log", "verdict.json", "client.stderr",
              "samples.jsonl"):
        assert (folder / f).is_file(), f
    assert "ours_ours/transfer/" in (run / "matrix.html").read_text()
    assert "[   2/2" in r.stdout  # progress lines


def test_real_peer_pair(tmp_path: Path) -> None:
    r, run = _run(tmp_path, "--clients", "ngtcp2", "--servers", "ours", "--tests", "handshake,retry")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {s["case"]: s for s in _samples(run) if s["metric"] == "elapsed"}
    assert rows["handshake"]["result"] == "succeeded", rows
    assert rows["retry"]["result"] == "succeeded", rows
    assert rows["retry"]["reason"] == "Retry sent, its token used"


def test_ipv6_case_runs_over_ipv6(tmp_path: Path) -> None:
    r, run = _run(tmp_path, "--clients", "ours", "--servers", "ours", "--tests", "ipv6")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {s["case"]: s for s in _samples(run) if s["metric"] == "elapsed"}
    assert rows["ipv6"]["result"] == "succeeded", rows
    assert rows["ipv6"]["reason"] == "transfer over IPv6"
    err = (run / "ours_ours" / "ipv6" / "client.stderr").read_text()
    assert "https://[fd00::2]:443/" in err  # the adapter's argv: an IPv6 literal URL


def test_chromium_client_transfer_byte_exact(tmp_path: Path) -> None:
    r, run = _run(tmp_path, "--clients", "chromium", "--servers", "ours", "--tests",
                  "transfer,chacha20")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {s["case"]: s for s in _samples(run) if s["metric"] == "elapsed"}
    assert rows["transfer"]["result"] == "succeeded", rows  # 3 files, one connection, bytes equal
    assert rows["chacha20"]["result"] == "unsupported", rows
    assert "TESTCASE=chacha20" in str(rows["chacha20"]["reason"])


def test_chromium_multiplexing_a_second_connection_is_explained(tmp_path: Path) -> None:
    # Chromium 156 fetching 1999 URLs at once from a 100-stream server closed its own first
    # connection (QUIC_TOO_MANY_BUFFERED_CONTROL_FRAMES) in 4 of 4 runs on 2026-12-07; whatever
    # the browser does, a second handshake must come with the close the capture shows
    r, run = _run(tmp_path, "--clients", "chromium", "--servers", "quicgo", "--tests",
                  "multiplexing")
    assert r.returncode == 0, r.stdout + r.stderr
    (row,) = [s for s in _samples(run) if s["metric"] == "elapsed"]
    reason = str(row["reason"])
    if row["result"] == "succeeded":
        assert reason == "1999 files, server stream limit 100", row
    else:
        assert "the server sent Initials with 2 SCID(s); before handshake 2" in reason, row
        assert "CONNECTION_CLOSE" in reason, row


def test_chromium_resumption_zerortt_keyupdate_against_ours(tmp_path: Path) -> None:
    # one browser: the first URL, chrome.benchmarking.closeConnections(), the rest on a second
    # connection that resumes (no Certificate from the server) and, for zerortt, sends its GETs
    # in 0-RTT; for keyupdate quiche's key update limit is set through the QUIC field trial
    r, run = _run(tmp_path, "--clients", "chromium", "--servers", "ours", "--tests",
                  "resumption,zerortt,keyupdate")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {s["case"]: s for s in _samples(run) if s["metric"] == "elapsed"}
    assert rows["resumption"]["result"] == "succeeded", rows
    assert rows["resumption"]["reason"] == "second handshake resumed (no Certificate)", rows
    assert rows["keyupdate"]["result"] == "succeeded", rows
    assert str(rows["keyupdate"]["reason"]).startswith("key phase 1: client "), rows
    # 0-RTT is sent every time; whether all 39 GETs fit before the handshake ends
    # depends on how fast the browser issues them (1 of 2 runs on 2026-12-07 sent the last 17
    # after it had the 1-RTT keys, docs/interop.md), so the split is not asserted
    zero = [s for s in _samples(run) if s["case"] == "zerortt" and s["metric"] == "zero_rtt_bytes"]
    assert zero and float(zero[0]["value"]) > 0, rows
    if rows["zerortt"]["result"] != "succeeded":
        assert "in 1-RTT packets" in str(rows["zerortt"]["reason"]), rows
    err = (run / "ours_chromium" / "zerortt" / "client.stderr").read_text()
    assert "--new-connection-after" in err  # the adapter's argv


def test_nothing_ran_exits_1(tmp_path: Path) -> None:
    # neither peer is installed under an empty QR_PEERS_DIR: every pair is "not run"
    empty = tmp_path / "no-peers"
    empty.mkdir()
    os.environ["QR_PEERS_DIR"] = str(empty)
    try:
        from quicreality.interop.runner import missing_peer

        assert missing_peer("quicgo") and missing_peer("curl"), "premise: both peers missing"
        r, run = _run(tmp_path, "--clients", "curl", "--servers", "quicgo", "--tests", "handshake")
    finally:
        del os.environ["QR_PEERS_DIR"]
    assert r.returncode == 1, r.stdout + r.stderr
    doc = json.loads((run / "result.json").read_text())
    assert doc["results"] == [[{"abbr": "H", "name": "handshake", "result": None}]]
    assert "NOT RUN" in r.stdout
