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
