"""qlog as an oracle: the connection reports packets, losses, metrics, parameters and state changes,
timestamped with the core's virtual ``now`` (never the wall clock)."""

from __future__ import annotations

import json

from simpair import LinkModel
from test_sim_pair import EchoPair, handshake

from quicreality.qlog.sink import RecordingSink
from quicreality.qlog.writer import JsonSeqWriter


def test_connection_reports_to_the_qlog_sink() -> None:
    sinks: dict[bool, RecordingSink] = {}

    def factory(odcid: bytes, is_client: bool) -> RecordingSink:
        sinks[is_client] = RecordingSink()
        return sinks[is_client]

    pair = EchoPair(seed=21, link=LinkModel(loss=0.05), client_overrides={"qlog_factory": factory},
                    server_overrides={"qlog_factory": factory})
    pair.response_size = 400_000
    handshake(pair)
    (sid,) = pair.request()
    pair.run(lambda: sid in pair.finished, max_time=60)
    for is_client, sink in sinks.items():
        names = {name for name, _, _ in sink.records}
        assert {"packet_sent", "packet_received", "metrics_updated", "parameters_set",
                "connection_state_updated", "connection_started"} <= names, (is_client, names)
        owners = {args["owner"] for args in sink.named("parameters_set")}
        assert owners == {"local", "remote"}
        times = [now for _, now, _ in sink.records]
        assert times == sorted(times) and times[0] >= 0.0 and times[-1] <= pair.now
        sent = sink.named("packet_sent")
        assert any(f["frame_type"] == "ack" for p in sent for f in (p["frames"] or []))
    server_sent = sinks[False].named("packet_sent")
    assert any(f["frame_type"] == "stream" for p in server_sent for f in (p["frames"] or []))
    assert sinks[False].named("packet_lost"), "5 % loss on 400 kB must lose server packets"
    metrics = sinks[True].named("metrics_updated")
    assert all(m["smoothed_rtt"] > 0.019 for m in metrics)  # 20 ms virtual RTT


def test_qlog_file_from_virtual_time(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def factory(odcid: bytes, is_client: bool) -> JsonSeqWriter:
        return JsonSeqWriter(tmp_path / f"{odcid.hex()}_{'client' if is_client else 'server'}.sqlog",
                             vantage_point="client" if is_client else "server", odcid=odcid)

    pair = EchoPair(seed=22, client_overrides={"qlog_factory": factory})
    pair.response_size = 10_000
    handshake(pair)
    (sid,) = pair.request()
    pair.run(lambda: sid in pair.finished)
    pair.client.close()
    pair.run(lambda: pair.client.is_terminated, max_time=30)
    (path,) = list(tmp_path.glob("*_client.sqlog"))
    records = [json.loads(r) for r in path.read_text().split("\x1e") if r.strip()]
    assert records[0]["qlog_version"] == "0.3"
    events = records[1:]
    assert {e["name"] for e in events} >= {"transport:packet_sent", "transport:packet_received",
                                            "recovery:metrics_updated", "transport:parameters_set"}
    # Relative times in ms from the first event, bounded by the virtual duration.
    assert max(e["time"] for e in events) <= pair.now * 1000 + 1e-6
