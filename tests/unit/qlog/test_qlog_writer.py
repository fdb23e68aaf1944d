"""qlog JSON-SEQ writer: format, header, names per flavour, times from ``now``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quicreality.qlog import (
    JsonSeqWriter,
    NullSink,
    QlogSink,
    RecordingSink,
    ack_frame,
    crypto_frame,
    padding_frame,
    qlog_path,
    simple_frame,
    stream_frame,
)

ODCID = bytes.fromhex("0011223344556677")


def read_seq(path: Path) -> list[dict[str, Any]]:
    """Parse RFC 7464 JSON text sequences strictly."""
    raw = path.read_text(encoding="utf-8")
    assert raw.startswith("\x1e")
    records = raw.split("\x1e")[1:]
    out = []
    for rec in records:
        assert rec.endswith("\n")
        assert "\n" not in rec[:-1]  # one line per record
        out.append(json.loads(rec))
    return out


def drive(sink: QlogSink, t: float = 1000.0) -> None:
    """Call every sink method once, starting at core time ``t`` seconds."""
    sink.connection_started(t, ("10.0.0.1", 4433), ("10.0.0.2", 443), 1, b"\xaa" * 8, b"\xbb" * 8)
    sink.connection_state_updated(t, None, "attempted")
    sink.parameters_set(
        t + 0.001, "local", {"max_idle_timeout": 30000, "initial_source_connection_id": b"\x01\x02"}
    )
    sink.packet_sent(
        t + 0.0015,
        "initial",
        0,
        1200,
        [crypto_frame(0, 300), padding_frame(880), stream_frame(0, 10, 20, True)]
        if sink.wants_frames
        else None,
    )
    sink.packet_received(
        t + 0.030,
        "1RTT",
        7,
        55,
        [ack_frame([range(3), range(5, 6)], 0.000025), simple_frame("ping")]
        if sink.wants_frames
        else None,
    )
    sink.metrics_updated(
        t + 0.030,
        min_rtt=0.0285,
        smoothed_rtt=0.0285,
        latest_rtt=0.0285,
        rtt_variance=0.01425,
        congestion_window=12000,
        bytes_in_flight=1200,
    )
    sink.metrics_updated(
        t + 0.031,
        min_rtt=0.0285,
        smoothed_rtt=0.0285,
        latest_rtt=0.0285,
        rtt_variance=0.01425,
        congestion_window=13200,
        bytes_in_flight=0,
        ssthresh=50000,
        pacing_rate=1e6,
    )
    sink.packet_lost(t + 0.5, "1RTT", 9, "time_threshold")
    sink.congestion_state_updated(t + 0.5, "slow_start", "recovery", "packet_loss")
    sink.key_updated(t + 0.6, "server_1rtt_secret", "remote_update", key_phase=1)
    sink.custom(t + 0.7, "reality:verdict", {"verdict": "accept"})
    sink.connection_closed(t + 1.0, "local", 0, "done")
    sink.close()


@pytest.mark.parametrize("flavour", ["0.3", "draft"])
def test_output_is_json_seq_with_header_first(tmp_path: Path, flavour: str) -> None:
    path = qlog_path(tmp_path, ODCID, is_client=True)
    assert path.name == "0011223344556677_client.sqlog"
    drive(JsonSeqWriter(path, vantage_point="client", odcid=ODCID, flavour=flavour))  # type: ignore[arg-type]
    header, *events = read_seq(path)
    assert header["trace"]["vantage_point"] == {"type": "client"}
    assert events and all({"time", "name", "data"} <= set(e) for e in events)
    assert all(isinstance(e["data"], dict) and ":" in e["name"] for e in events)


def test_qvis_schema_for_0_3(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlog"
    drive(JsonSeqWriter(path, vantage_point="server", odcid=ODCID))
    header, *events = read_seq(path)
    assert header["qlog_version"] == "0.3"
    assert header["qlog_format"] == "JSON-SEQ"
    common = header["trace"]["common_fields"]
    assert common["ODCID"] == ODCID.hex()
    assert common["time_format"] == "relative"
    assert common["reference_time"] == pytest.approx(1000.0 * 1000)
    assert common["protocol_type"] == ["QUIC", "HTTP3"]
    names = [e["name"] for e in events]
    assert names == [
        "connectivity:connection_started",
        "connectivity:connection_state_updated",
        "transport:parameters_set",
        "transport:packet_sent",
        "transport:packet_received",
        "recovery:metrics_updated",
        "recovery:metrics_updated",
        "recovery:packet_lost",
        "recovery:congestion_state_updated",
        "security:key_updated",
        "reality:verdict",
        "connectivity:connection_closed",
    ]
    known = {"connectivity", "transport", "recovery", "security", "reality"}
    assert {n.split(":")[0] for n in names} <= known
    for e in events:
        if e["name"] in (
            "transport:packet_sent",
            "transport:packet_received",
            "recovery:packet_lost",
        ):
            assert {"packet_type", "packet_number"} <= set(e["data"]["header"])
    sent = events[3]["data"]
    assert sent["raw"] == {"length": 1200}
    assert sent["frames"][2] == {
        "frame_type": "stream",
        "stream_id": 0,
        "offset": 10,
        "length": 20,
        "fin": True,
    }
    recv = events[4]["data"]
    assert recv["frames"][0] == {
        "frame_type": "ack",
        "ack_delay": 0.025,
        "acked_ranges": [[0, 2], [5, 5]],
    }
    assert events[2]["data"] == {
        "owner": "local",
        "max_idle_timeout": 30000,
        "initial_source_connection_id": "0102",
    }
    m1, m2 = events[5]["data"], events[6]["data"]
    assert m1 == {
        "min_rtt": 28.5,
        "smoothed_rtt": 28.5,
        "latest_rtt": 28.5,
        "rtt_variance": 14.25,
        "congestion_window": 12000,
        "bytes_in_flight": 1200,
    }
    assert m2 == {
        "congestion_window": 13200,
        "bytes_in_flight": 0,
        "ssthresh": 50000,
        "pacing_rate": 1000000,
    }
    started = events[0]["data"]
    assert (
        started["src_ip"] == "10.0.0.1"
        and started["dst_port"] == 443
        and started["src_cid"] == "aa" * 8
    )
    assert events[-1]["data"] == {"owner": "local", "connection_code": 0, "reason": "done"}
    assert events[9]["data"] == {
        "key_type": "server_1rtt_secret",
        "trigger": "remote_update",
        "generation": 1,
    }


def test_draft_flavour_names_and_shapes(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlog"
    drive(JsonSeqWriter(path, vantage_point="client", odcid=ODCID, flavour="draft"))
    header, *events = read_seq(path)
    assert "qlog_version" not in header
    assert header["file_schema"] == "urn:ietf:params:qlog:file:sequential"
    assert header["serialization_format"] == "application/qlog+json-seq"
    assert header["trace"]["event_schemas"] == ["urn:ietf:params:qlog:events:quic-13"]
    common = header["trace"]["common_fields"]
    assert common["time_format"] == "relative_to_epoch"
    assert common["reference_time"] == {"clock_type": "monotonic", "epoch": "unknown"}
    names = [e["name"] for e in events]
    assert names == [
        "quic:connection_started",
        "quic:version_information",
        "quic:connection_state_updated",
        "quic:parameters_set",
        "quic:packet_sent",
        "quic:packet_received",
        "quic:recovery_metrics_updated",
        "quic:recovery_metrics_updated",
        "quic:packet_lost",
        "quic:congestion_state_updated",
        "quic:key_updated",
        "reality:verdict",
        "quic:connection_closed",
    ]
    assert events[0]["data"]["local"] == {
        "ip_v4": "10.0.0.1",
        "port_v4": 4433,
        "connection_ids": ["aa" * 8],
    }
    assert events[3]["data"]["initiator"] == "local" and "owner" not in events[3]["data"]
    frames = events[4]["data"]["frames"]
    assert frames[2] == {
        "frame_type": "stream",
        "stream_id": 0,
        "offset": 10,
        "fin": True,
        "raw": {"length": 20},
    }
    assert frames[1] == {"frame_type": "padding", "raw": {"length": 880}}
    assert events[-1]["data"] == {
        "initiator": "local",
        "connection_error": "no_error",
        "reason": "done",
    }
    assert events[10]["data"]["key_phase"] == 1


def test_draft_flavour_states_and_version_information(tmp_path: Path) -> None:
    """quic-events -13: $ConnectionState names; quic:version_information with hex versions."""
    path = tmp_path / "v.sqlog"
    w = JsonSeqWriter(path, vantage_point="server", odcid=ODCID, flavour="draft")
    w.connection_state_updated(1.0, "firstflight", "connected")
    w.connection_state_updated(2.0, "draining", "terminated")
    w.version_information(1.0, client_versions=(1, 0x6B3343CF), server_versions=(0x6B3343CF, 1),
                          chosen=0x6B3343CF)
    w.close()
    _, *events = read_seq(path)
    assert [e["data"] for e in events[:2]] == [
        {"old": "attempted", "new": "handshake_complete"}, {"old": "draining", "new": "closed"}]
    assert events[2] == {"time": 0.0, "name": "quic:version_information", "data": {
        "chosen_version": "6b3343cf", "client_versions": ["00000001", "6b3343cf"],
        "server_versions": ["6b3343cf", "00000001"]}}
    legacy = tmp_path / "l.sqlog"
    w = JsonSeqWriter(legacy, vantage_point="server", odcid=ODCID)
    w.connection_state_updated(1.0, "firstflight", "connected")
    w.close()
    _, event = read_seq(legacy)
    assert event["name"] == "connectivity:connection_state_updated"
    assert event["data"] == {"old": "firstflight", "new": "connected"}  # 0.3 keeps our names


def test_times_are_relative_to_first_now_not_wall_clock(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlog"
    w = JsonSeqWriter(path, vantage_point="client", odcid=ODCID)
    w.packet_sent(5.0, "initial", 0, 1200, None)
    w.packet_sent(5.25, "initial", 1, 1200, None)
    w.packet_received(7.000002, "handshake", 0, 100, None)
    w.close()
    header, *events = read_seq(path)
    assert header["trace"]["common_fields"]["reference_time"] == 5000.0
    assert [e["time"] for e in events] == [0.0, 250.0, 2000.002]


def test_header_is_written_even_without_events_and_close_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "e.sqlog"
    w = JsonSeqWriter(path, vantage_point="server", odcid=ODCID)
    w.close()
    w.close()
    w.packet_sent(1.0, "1RTT", 1, 10, None)  # ignored after close
    (header,) = read_seq(path)
    assert header["qlog_version"] == "0.3"


def test_writes_are_buffered(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlog"
    w = JsonSeqWriter(path, vantage_point="client", odcid=ODCID)
    for pn in range(50):
        w.packet_sent(pn * 0.001, "1RTT", pn, 1200, None)
    assert path.stat().st_size == 0
    w.close()
    assert len(read_seq(path)) == 51


def test_wants_frames() -> None:
    assert NullSink().wants_frames is False
    assert RecordingSink().wants_frames is True


def test_null_sink_accepts_all_calls() -> None:
    drive(NullSink())


def test_recording_sink_keeps_calls() -> None:
    sink = RecordingSink()
    drive(sink)
    assert sink.named("packet_lost") == [
        {"packet_type": "1RTT", "packet_number": 9, "trigger": "time_threshold"}
    ]
    assert sink.records[0][0] == "connection_started"


def test_bad_flavour_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        JsonSeqWriter(tmp_path / "z", vantage_point="client", odcid=ODCID, flavour="0.4")  # type: ignore[arg-type]
