"""The benchmarks refuse bad input with exit status 2 and a message naming the option, before
starting any process (they never assert speeds; see docs/performance.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quicreality.bench import __main__ as bench_main
from quicreality.bench import connections


@pytest.mark.parametrize("argv, needle", [
    (["--servers", "ours,msquic"], "msquic"),
    (["--servers", ""], "--servers"),
    (["--checkpoint", "0"], "--checkpoint"),
    (["--churn", "100", "--checkpoint", "100"], "--checkpoint"),
    (["--idle", "0"], "--idle"),
])
def test_connections_bad_input_exits_2(argv: list[str], needle: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert connections.main(argv) == 2
    assert needle in capsys.readouterr().err


def test_rss_reads_this_process() -> None:
    assert connections.rss_kb(os.getpid()) > 1000


def test_dispatcher_lists_every_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("transfer", "handshake", "relay", "connections", "analysis"):
        assert name in out
    assert bench_main.main(["nope"]) == 2


def test_analysis_bad_input_exits_2(tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from quicreality.bench import analysis

    assert analysis.main([str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    (tmp_path / "run.json").write_text("{}")
    assert analysis.main([str(tmp_path), "--notebooks", "nope"]) == 2
    assert "no such notebook: nope" in capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [(["--count", "0"], "--count"), (["--rate", "0"], "--rate")])
def test_flood_bad_input_exits_2(argv: list[str], needle: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from quicreality.bench import flood

    assert flood.main(argv) == 2
    assert needle in capsys.readouterr().err
