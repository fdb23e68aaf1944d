"""The runner's qlog summary counts our stack's spurious losses (issue 13: ``packets_spurious``)."""

from __future__ import annotations

from pathlib import Path

from quicreality.qlog.writer import JsonSeqWriter
from quicreality.scenarios.qlogsum import summarise_qlog


def _write(path: Path, *, spurious: int, title: str = "quicreality") -> Path:
    with JsonSeqWriter(path, vantage_point="server", odcid=b"\x01" * 8, title=title) as w:
        w.packet_lost(0.1, "1RTT", 5, "reordering_threshold")
        for pn in range(spurious):
            w.custom(0.2, "spurious_loss", {"packet_type": "1RTT", "packet_number": pn})
    return path


def test_qlog_summary_counts_spurious_losses_of_our_stack(tmp_path: Path) -> None:
    s = summarise_qlog(_write(tmp_path / "a_server.sqlog", spurious=2))
    assert (s.packets_lost, s.packets_spurious) == (1, 2)
    assert summarise_qlog(_write(tmp_path / "b_server.sqlog", spurious=0)).packets_spurious == 0


def test_qlog_summary_leaves_spurious_unknown_for_other_stacks(tmp_path: Path) -> None:
    s = summarise_qlog(_write(tmp_path / "c_server.sqlog", spurious=0, title="quic-go"))
    assert s.packets_lost == 1 and s.packets_spurious is None
