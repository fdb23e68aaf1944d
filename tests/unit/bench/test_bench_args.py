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


@pytest.mark.parametrize("argv, needle", [(["--count", "0"], "--count"), (["--rate", "0"], "--rate"),
                                          (["--rounds", "0"], "--rounds")])
def test_reality_flood_bad_input_exits_2(argv: list[str], needle: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main.main(["reality-flood", *argv]) == 2  # the dispatcher maps the hyphen
    assert needle in capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [(["--samples", "0"], "--samples"),
                                          (["--delay-ms", "-1"], "--delay-ms")])
def test_gate_timing_bad_input_exits_2(argv: list[str], needle: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main.main(["gate-timing", *argv]) == 2
    assert needle in capsys.readouterr().err


def test_the_delay_relay_forwards_both_ways() -> None:
    """gate-timing's delayed target: what goes in reaches the target, and its answer comes back
    to the sender (the delay itself is not asserted: no timed assertions)."""
    import select
    import socket

    from quicreality.bench.gate_timing import DelayRelay

    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    relay = DelayRelay(target.getsockname(), 0.01)
    try:
        client.sendto(b"hello", ("127.0.0.1", relay.port))
        assert select.select([target], [], [], 10)[0]
        data, peer = target.recvfrom(100)
        assert data == b"hello" and peer != client.getsockname()  # the relay's own socket
        target.sendto(b"answer", peer)
        assert select.select([client], [], [], 10)[0]
        assert client.recvfrom(100) == (b"answer", ("127.0.0.1", relay.port))
    finally:
        relay.close()
        target.close()
        client.close()


def test_transfer_pure_pair_runs_this_checkout_with_qr_pure(tmp_path: Path) -> None:
    from quicreality.bench import transfer

    certs = (tmp_path / "c", tmp_path / "k", tmp_path / "ca")
    pairs = transfer.build_pairs(certs, 1000, 1200, qh3=False, aioquic=False, pure=True)
    assert [p.name for p in pairs] == ["ours<->ours", "pure<->pure"]
    assert pairs[1].env.get("QR_PURE") == "1" and pairs[1].cwd == pairs[0].cwd
    assert transfer.our_mode(pairs[1]).startswith(("mode: pure (QR_PURE=1", "mode: pure (no mypyc"))
