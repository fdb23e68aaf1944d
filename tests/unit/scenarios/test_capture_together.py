"""start_captures/stop_captures: several tcpdumps started and stopped together (a fake
tcpdump here: a script that says "listening on", waits for SIGINT and reports its counts)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from quicreality.scenarios.capture import start_captures, stop_captures

FAKE = """
import signal, sys, time
delay = float(sys.argv[1])
time.sleep(delay)
sys.stderr.write("tcpdump: listening on qrlink\\n"); sys.stderr.flush()
def stop(*a):
    sys.stderr.write("%d packets captured\\n" % int(delay * 100)); sys.exit(0)
signal.signal(signal.SIGINT, stop)
while True:
    time.sleep(0.05)
"""
BAD = "import sys; sys.stderr.write('tcpdump: qrlink: No such device\\n'); sys.exit(1)"


def _prefix(script: Path, delay: float) -> list[str]:
    # the tcpdump argv that follows the prefix lands in the fake's sys.argv[2:]
    return [sys.executable, str(script), str(delay)]


def test_captures_start_together_and_stop_after_one_settle(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from quicreality.scenarios import capture

    events: list[str] = []
    real_popen, real_select, real_sleep = capture.subprocess.Popen, capture.select.select, \
        capture.time.sleep

    def popen(*a: Any, **kw: Any) -> Any:
        events.append("popen")
        return real_popen(*a, **kw)

    def select(*a: Any) -> Any:
        events.append("wait")
        return real_select(*a)

    def sleep(s: float) -> None:
        events.append(f"sleep {s}")
        real_sleep(s)

    monkeypatch.setattr(capture.subprocess, "Popen", popen)
    monkeypatch.setattr(capture.select, "select", select)
    monkeypatch.setattr(capture.time, "sleep", sleep)
    script = tmp_path / "fake.py"
    script.write_text(FAKE)
    caps = start_captures([(_prefix(script, 0.2), "qrlink", str(tmp_path / "a.pcap")),
                           (_prefix(script, 0.3), "qrlink", str(tmp_path / "b.pcap"))],
                          bpf_filter="udp", start_grace_s=0.1)
    assert events[:2] == ["popen", "popen"] and events[2] == "wait"  # both started first
    assert events.count("sleep 0.1") == 1  # one grace wait for both
    assert len(caps) == 2 and all(c.proc.poll() is None for c in caps)
    assert caps[0].argv[-1] == "udp" and "tcpdump" in caps[0].argv
    events.clear()
    assert stop_captures(caps, settle_s=0.3) == [20, 30]
    assert events[0] == "sleep 0.3" and events.count("sleep 0.3") == 1  # one settle wait
    assert all(c.proc.poll() == 0 for c in caps)


def test_a_capture_that_fails_stops_the_others(tmp_path: Path) -> None:
    good, bad = tmp_path / "fake.py", tmp_path / "bad.py"
    good.write_text(FAKE)
    bad.write_text(BAD)
    with pytest.raises(RuntimeError, match="No such device"):
        start_captures([(_prefix(good, 0.0), "qrlink", str(tmp_path / "a.pcap")),
                        ([sys.executable, str(bad)], "qrlink", str(tmp_path / "b.pcap"))])
