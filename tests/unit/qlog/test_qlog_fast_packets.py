"""The 0.3 writer's packet events without the JSON encoder are the encoder's text, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quicreality.qlog.sink import ack_frame, crypto_frame, padding_frame, simple_frame, stream_frame
from quicreality.qlog.writer import JsonSeqWriter, _encode, packet_event_json

FRAMES: list[list[dict[str, Any]] | None] = [
    None,
    [],
    [stream_frame(0, 0, 1200, False)],
    [stream_frame(4, 123456789, 17, True), stream_frame(2**62 - 1, 2**40, 0, False)],
    [ack_frame([range(0, 3)], 0.0)],
    [ack_frame([range(1, 100), range(102, 200), range(210, 300)], 1.234, (5, 0, 1))],
    [ack_frame([range(7, 8)], 25.0 / 3)],  # a float with many digits
    [simple_frame("ping"), padding_frame(1000)],
    [crypto_frame(0, 300), simple_frame("max_data", maximum=1 << 20)],  # the encoder's path
    [simple_frame("path_challenge", data="00ff"), simple_frame("handshake_done")],
    # shapes the fast path does not know go through the encoder, unchanged
    [{"frame_type": "stream", "stream_id": 0, "offset": 0, "length": 5, "fin": 1}],
    [{"frame_type": "stream", "stream_id": 0, "offset": 0, "length": 5, "raw": {"length": 9}}],
    [{"frame_type": "ack", "ack_delay": 1, "acked_ranges": [[0, 1]]}],
    [{"frame_type": "ack", "ack_delay": 1.5, "acked_ranges": [(0, 1)]}],
    [{"frame_type": "ack", "ack_delay": 1.5, "acked_ranges": [[0, 1]], "ect0": 1, "ect1": 0,
      "x": 0}],
    [{"frame_type": "ping", "note": "x"}, {"frame_type": "padding", "length": 2.0}],
    [{"frame_type": 'we"ird', "length": 1}],
]


@pytest.mark.parametrize("frames", FRAMES)
@pytest.mark.parametrize("packet_type", ["1RTT", "initial", "0RTT", 'odd"type'])
def test_packet_event_json_is_the_encoders_text(frames: list[dict[str, Any]] | None,
                                                packet_type: str) -> None:
    data: dict[str, Any] = {"header": {"packet_type": packet_type, "packet_number": 77},
                            "raw": {"length": 1252}}
    if frames is not None:
        data["frames"] = frames
    assert packet_event_json(packet_type, 77, 1252, frames) == _encode(data)


def test_written_packet_events_parse_as_before(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlog"
    with JsonSeqWriter(path, vantage_point="server", odcid=b"\x01\x02") as w:
        w.packet_sent(10.0, "1RTT", 5, 1252, [stream_frame(0, 0, 1200, False)])
        w.packet_received(10.0405, "1RTT", 9, 60,
                          [ack_frame([range(0, 3), range(5, 6)], 0.0121, (3, 0, 0))])
        w.packet_sent(10.1, "handshake", 1, 90, None)
    records = [json.loads(r) for r in path.read_text(encoding="utf-8").split("\x1e")[1:]]
    assert records[0]["qlog_version"] == "0.3"
    sent, received, bare = records[1:]
    assert sent == {"time": 0.0, "name": "transport:packet_sent", "data": {
        "header": {"packet_type": "1RTT", "packet_number": 5}, "raw": {"length": 1252},
        "frames": [{"frame_type": "stream", "stream_id": 0, "offset": 0, "length": 1200,
                    "fin": False}]}}
    assert received["name"] == "transport:packet_received" and received["time"] == 40.5
    assert received["data"]["frames"] == [{"frame_type": "ack", "ack_delay": 12.1,
                                           "acked_ranges": [[0, 2], [5, 5]], "ect0": 3,
                                           "ect1": 0, "ce": 0}]
    assert bare["data"] == {"header": {"packet_type": "handshake", "packet_number": 1},
                            "raw": {"length": 90}}
