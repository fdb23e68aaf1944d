"""ECN qlog events in both flavours: ``recovery:ecn_state_updated`` (0.3) and
``quic:ecn_state_updated`` (draft), and ACK_ECN counts on ack frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quicreality.qlog.sink import ack_frame
from quicreality.qlog.writer import JsonSeqWriter


@pytest.mark.parametrize("flavour, name", [("0.3", "recovery:ecn_state_updated"),
                                           ("draft", "quic:ecn_state_updated")])
def test_ecn_state_updated_name_per_flavour(tmp_path: Path, flavour: str, name: str) -> None:
    path = tmp_path / "x.sqlog"
    w = JsonSeqWriter(path, vantage_point="client", odcid=b"\x01" * 8, flavour=flavour)  # type: ignore[arg-type]
    w.custom(1.0, "recovery:ecn_state_updated", {"old": "testing", "new": "capable"})
    w.close()
    events = [json.loads(r) for r in path.read_text().split("\x1e")[2:] if r.strip()]
    assert [(e["name"], e["data"]["new"]) for e in events] == [(name, "capable")]


def test_ack_frame_carries_ecn_counts_only_for_ack_ecn() -> None:
    assert "ect0" not in ack_frame([range(0, 3)], 0.001)
    fr = ack_frame([range(0, 3)], 0.001, (3, 0, 1))
    assert (fr["ect0"], fr["ect1"], fr["ce"]) == (3, 0, 1)
