"""``bench relay`` keeps one row per -P value and relay datagram size, and refuses bad sizes."""

from __future__ import annotations

import pytest

from quicreality.bench import relay
from quicreality.bench.relay import Sample, summarize


def test_rows_per_parallel_and_datagram_size() -> None:
    samples = [Sample("direct", 1, 1000.0, 10**9), Sample("relay", 1, 300.0, 10**9, 1200, 1.0, 1.0),
               Sample("relay", 1, 400.0, 10**9, 1452, 1.5, 0.5), Sample("direct", 1, 2000.0, 10**9)]
    rows = summarize(samples, [1], [1200, 1452])
    assert [(r["datagram"], r["relay_mbps"], r["direct_mbps"]) for r in rows] == [
        (1200, 300.0, 1500.0), (1452, 400.0, 1500.0)]
    assert rows[0]["ratio"] == 0.2 and rows[1]["relay_cpu_s_per_gb"] == 2.0


@pytest.mark.parametrize("argv", [["--datagram-sizes", "1000"], ["--datagram-sizes", "x"],
                                  ["--parallel", "0"]])
def test_bad_sizes_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert relay.main(argv) == 2
    assert "error:" in capsys.readouterr().err


def test_sched_shares_split_wall_time_into_run_wait_idle() -> None:
    shares = relay.sched_shares((1.0, 2.0), (1.5, 5.0), 5.0)
    assert shares == {"run": 0.1, "wait": 0.6, "idle": 0.3}
    assert relay.sched_shares((0.0, 0.0), (0.0, 0.0), 0.0)["idle"] == 1.0


def test_sched_seconds_counts_this_process_running() -> None:
    import os

    before = relay.sched_seconds(os.getpid())
    sum(range(2_000_000))  # some CPU work
    after = relay.sched_seconds(os.getpid())
    assert after[0] > before[0] and after[1] >= before[1]


def test_rows_carry_median_scheduler_shares() -> None:
    def sample(run: float, wait: float) -> Sample:
        s = Sample("relay", 1, 100.0, 10**9, 1200)
        s.sched = {side: {"run": run, "wait": wait, "idle": round(1 - run - wait, 3)}
                   for side in ("server", "client")}
        return s

    rows = summarize([Sample("direct", 1, 1000.0, 10**9), sample(0.1, 0.8), sample(0.2, 0.7),
                      sample(0.3, 0.1)], [1], [1200])
    assert rows[0]["relay_sched"]["client"] == {"run": 0.2, "wait": 0.7, "idle": 0.1}
