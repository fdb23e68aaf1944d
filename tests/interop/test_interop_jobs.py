"""``python -m quicreality.interop run --jobs N`` (root): cells side by side on their own
topologies, the verdicts as with ``--jobs 1``, provenance in the samples, and no namespace or
process left behind, also after SIGINT mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab]
REPO = Path(__file__).resolve().parents[2]


def _ours_namespaces(pid: int) -> set[str]:
    """qr- namespaces whose owner marker names ``pid`` (other sessions' are not ours)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    names = {ln.split()[0] for ln in out.splitlines() if ln.startswith("qr-")}
    mine = set()
    for n in names:
        try:
            owner = int(Path("/run/quicreality", f"{n.rsplit('-', 1)[0]}.owner").read_text())
        except (OSError, ValueError):
            continue
        if owner == pid:
            mine.add(n)
    return mine


def _argv(tmp: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "quicreality.interop", "run", "--results", str(tmp), *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _children_in(ns: set[str]) -> list[str]:
    left = []
    for n in ns:
        r = subprocess.run(["ip", "netns", "pids", n], capture_output=True, text=True, check=False)
        left += r.stdout.split()
    return left


def test_two_cells_at_jobs_2(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "lab tests run as root (network namespaces, TUN, tcpdump)"
    p = subprocess.Popen(_argv(tmp_path, "--jobs", "2", "--servers", "ours", "--clients", "ours",
                               "--tests", "handshake,retry"), cwd=REPO, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: set[str] = set()
    while p.poll() is None:  # both cells' namespaces exist at once
        seen |= _ours_namespaces(p.pid)
        time.sleep(0.2)
    out = p.stdout.read() if p.stdout else ""
    assert p.returncode == 0, out
    assert not _ours_namespaces(p.pid), "namespaces left behind"
    assert len({n.rsplit("-", 1)[0] for n in seen}) == 2, (seen, out)  # two topologies
    run = next((tmp_path / "interop" / "runs").iterdir())
    doc = json.loads((run / "result.json").read_text())
    assert doc["results"] == [[{"abbr": "H", "name": "handshake", "result": "succeeded"},
                               {"abbr": "S", "name": "retry", "result": "succeeded"}]]
    rows = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    el = {r["case"]: r for r in rows if r["metric"] == "elapsed"}
    assert {el["handshake"]["job"], el["retry"]["job"]} == {0, 1}
    assert el["handshake"]["jobs"] == 2
    assert el["handshake"]["concurrent"] == len(el["handshake"]["concurrent_with"])
    assert "ETA" in out and "--jobs 2" in out
    v = json.loads((run / "ours_ours" / "retry" / "verdict.json").read_text())
    assert v["job"] in (0, 1) and v["wall_end"] >= v["wall_start"]


def test_sigint_mid_run_removes_every_namespace(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "lab tests run as root (network namespaces, TUN, tcpdump)"
    # three repetitions per cell: after SIGINT no job may start the next one
    p = subprocess.Popen(_argv(tmp_path, "--jobs", "2", "--servers", "ours,quicgo",
                               "--clients", "ours", "--tests", "transfer", "--reps", "3"),
                         cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while len(seen) < 6 and time.monotonic() < deadline and p.poll() is None:
        seen |= _ours_namespaces(p.pid)
        time.sleep(0.2)
    assert len(seen) == 6, seen  # two topologies of three namespaces
    time.sleep(2.0)  # the transfers are under way
    p.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    out, _ = p.communicate(timeout=90)
    assert p.returncode == 130, out
    assert time.monotonic() - t0 < 20, out  # not the ~30 s of the remaining repetitions
    run = next((tmp_path / "interop" / "runs").iterdir())
    assert not list(run.glob("*/transfer/2/client.stdout")), out  # no second repetition
    assert "interrupted" in out
    gone = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                          check=True).stdout
    assert not [n for n in seen if n in gone], "namespaces left behind"
