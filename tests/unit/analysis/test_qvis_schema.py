"""Our qlog loads in qvis: the 0.3 header, transport:/recovery: names, required fields.

qvis (quiclog/qvis) accepts JSON-SEQ whose first record has ``qlog_version`` (0.3 is one of its
accepted aliases), ``qlog_format: "JSON-SEQ"`` and a ``trace``
(``textsequencejsontoqlog.ts``), knows the categories connectivity/security/transport/recovery
(and http), and draws its congestion graph from ``recovery:metrics_updated``. Checked on a
real file from our stack and on a fresh file from the writer (so a writer change is caught).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from analysis_paths import DATA

from quicreality.analysis.qlog import load_qlog
from quicreality.qlog import JsonSeqWriter, ack_frame, stream_frame

QVIS_VERSIONS = {"0.3", "draft-02", "draft-02-RC1", "qlog-03-WIP"}
QVIS_CATEGORIES = {"connectivity", "security", "transport", "recovery", "http"}
PACKET_TYPES = {"initial", "handshake", "0RTT", "1RTT", "retry", "version_negotiation",
                "stateless_reset", "unknown"}
METRIC_FIELDS = {"min_rtt", "smoothed_rtt", "latest_rtt", "rtt_variance", "pto_count",
                 "congestion_window", "bytes_in_flight", "ssthresh", "packets_in_flight",
                 "pacing_rate"}


def records(path: Path) -> list[dict[str, Any]]:
    raw = path.read_text()
    assert raw.startswith("\x1e"), "JSON-SEQ: every record starts with RS"
    return [json.loads(r) for r in raw.split("\x1e") if r.strip(" \n")]


def check_qvis(path: Path) -> None:
    assert path.suffix == ".sqlog"  # qvis picks its JSON-SEQ parser by suffix
    header, *events = records(path)
    assert header["qlog_version"] in QVIS_VERSIONS
    assert header["qlog_format"] == "JSON-SEQ"
    trace = header["trace"]
    assert trace["vantage_point"]["type"] in ("client", "server")
    cf = trace["common_fields"]
    assert cf["time_format"] == "relative"
    assert isinstance(cf["reference_time"], (int, float))
    assert events
    last = -1.0
    for ev in events:
        assert set(ev) >= {"time", "name", "data"}
        assert isinstance(ev["time"], (int, float)) and ev["time"] >= last
        last = ev["time"]
        cat, _, name = ev["name"].partition(":")
        assert cat in QVIS_CATEGORIES and name, ev["name"]
        data = ev["data"]
        assert isinstance(data, dict)
        if ev["name"] in ("transport:packet_sent", "transport:packet_received",
                          "recovery:packet_lost"):
            assert data["header"]["packet_type"] in PACKET_TYPES
            assert isinstance(data["header"]["packet_number"], int)
        if ev["name"] in ("transport:packet_sent", "transport:packet_received"):
            for fr in data.get("frames", []):
                assert isinstance(fr["frame_type"], str)
                if fr["frame_type"] == "stream":
                    assert {"stream_id", "offset", "length"} <= set(fr)
                if fr["frame_type"] == "ack":
                    assert all(isinstance(r, list) and 1 <= len(r) <= 2
                               for r in fr["acked_ranges"])
        if ev["name"] == "recovery:metrics_updated":
            assert data and set(data) <= METRIC_FIELDS
            assert all(isinstance(v, (int, float)) for v in data.values())


@pytest.mark.parametrize("path", sorted((DATA / "qlog" / "ours-0.3").glob("*.sqlog")),
                         ids=lambda p: p.name)
def test_real_file_from_our_stack_is_qvis_loadable(path: Path) -> None:
    check_qvis(path)
    names = {e["name"] for e in records(path)[1:]}
    assert {"transport:packet_sent", "transport:packet_received",
            "recovery:metrics_updated"} <= names


def test_fresh_writer_output_is_qvis_loadable(tmp_path: Path) -> None:
    path = tmp_path / "00aa_server.sqlog"
    w = JsonSeqWriter(path, vantage_point="server", odcid=bytes.fromhex("00aa"), flavour="0.3")
    w.packet_sent(10.0, "1RTT", 0, 1200, [stream_frame(0, 0, 1100, False)])
    w.packet_received(10.02, "1RTT", 0, 40, [ack_frame([range(1)], 0.0)])
    w.metrics_updated(10.02, min_rtt=0.02, smoothed_rtt=0.02, latest_rtt=0.02,
                      rtt_variance=0.01, congestion_window=14720, bytes_in_flight=0)
    w.packet_lost(10.05, "1RTT", 1, "time_threshold")
    w.close()
    check_qvis(path)
    ev = load_qlog(path)
    assert list(ev["name"]) == ["transport:packet_sent", "transport:packet_received",
                                "recovery:metrics_updated", "recovery:packet_lost"]
    assert ev["smoothed_rtt_ms"].dropna().iloc[0] == pytest.approx(20.0)  # seconds in, ms out
    assert ev["time_s"].iloc[-1] == pytest.approx(0.05)


def test_draft_flavour_is_not_passed_off_as_0_3(tmp_path: Path) -> None:
    path = tmp_path / "00aa_client.sqlog"
    w = JsonSeqWriter(path, vantage_point="client", odcid=bytes.fromhex("00aa"), flavour="draft")
    w.packet_sent(1.0, "initial", 0, 1200, [])
    w.close()
    header = records(path)[0]
    assert "qlog_version" not in header and header["file_schema"].endswith("sequential")
    assert records(path)[1]["name"] == "quic:packet_sent"
