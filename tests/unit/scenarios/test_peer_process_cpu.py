"""PeerProcess reads a peer's CPU time from /proc before the exited process is reaped."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from quicreality.scenarios.peers.base import Command
from quicreality.scenarios.peers.process import PeerProcess, cpu_seconds
from quicreality.scenarios.workloads.measures import cpu_metrics

_BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"


def test_cpu_seconds_of_this_process_is_positive_and_none_for_no_process() -> None:
    value = cpu_seconds(__import__("os").getpid())
    assert value is not None and value > 0
    assert cpu_seconds(2**22 + 12345) is None


def test_poll_reads_the_cpu_time_of_an_exited_process_before_reaping_it(tmp_path: Path) -> None:
    p = PeerProcess(Command(argv=(sys.executable, "-c", _BURN)), name="burn", log_dir=tmp_path)
    p.start()
    deadline = time.monotonic() + 30
    while p.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert p.proc is not None and p.proc.returncode == 0
    # the whole run is counted (0.3 s of busy loop), not the last sample before the exit
    assert p.cpu_s is not None and p.cpu_s >= 0.29


def test_stop_reads_the_cpu_time_before_the_signal(tmp_path: Path) -> None:
    argv = (sys.executable, "-c", _BURN + "time.sleep(60)\n")
    p = PeerProcess(Command(argv=argv), name="burn", log_dir=tmp_path)
    p.start()
    deadline = time.monotonic() + 30
    while (cpu_seconds(p.pid) or 0.0) < 0.29:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    p.stop(grace=2.0)
    assert p.cpu_s is not None and p.cpu_s >= 0.29


def test_cpu_metrics_per_role_and_per_megabyte() -> None:
    rows = cpu_metrics({"server": 2.0, "client": None}, 4_000_000)
    assert rows == [("cpu_server_s", 2.0, "s", "runner"), ("cpu_server_s_per_mb", 0.5, "s/MB", "runner")]


def test_cpu_metrics_are_valid_sample_rows() -> None:
    from quicreality.scenarios.results import SAMPLE_FIELDS, validate_sample

    for metric, value, unit, source in cpu_metrics({"client": 1.5}, 2_000_000):
        row = dict(zip(SAMPLE_FIELDS, ("r", "s", "w", "ours", "ours", 1, metric, value, unit,
                                       source), strict=True))
        validate_sample(row)
