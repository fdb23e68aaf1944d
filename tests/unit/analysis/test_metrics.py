"""Derived metrics: goodput, retransmissions and spurious ones, handshake, link loss, RTT."""

from __future__ import annotations

import pandas as pd
import pytest
from analysis_paths import DATA

from quicreality.analysis import metrics as M
from quicreality.analysis.pcap import load_pcap
from quicreality.analysis.qlog import load_qlogs

OURS = DATA / "pcap"


def test_rangeset_counts_only_new_bytes() -> None:
    rs = M.RangeSet()
    assert rs.add(0, 100) == 100
    assert rs.add(50, 150) == 50
    assert rs.add(200, 300) == 100
    assert rs.add(0, 400) == 150  # fills [150, 200) and [300, 400)
    assert rs.total == 400 and 399 in rs and 400 not in rs


def test_goodput_timeline_bins_first_seen_bytes() -> None:
    frames = pd.DataFrame({"time_s": [0.0, 0.1, 0.2, 0.3, 0.9],
                           "stream_id": [0, 0, 0, 0, 0],
                           "offset": [0, 1000, 0, 2000, 3000],  # the 3rd is a duplicate
                           "length": [1000, 1000, 1000, 1000, 1000]})
    tl = M.goodput_timeline(frames, interval_s=0.5)
    assert list(tl["bytes"]) == [3000, 1000]
    assert tl["mbps"].iloc[0] == pytest.approx(3000 * 8 / 0.5 / 1e6)
    even = M.goodput_timeline(frames, n_intervals=3)
    assert len(even) == 3 and even["bytes"].sum() == 4000


def test_retransmissions_and_spurious_flags_synthetic() -> None:
    sent = pd.DataFrame({"time_s": [0, 1, 2, 3, 4], "packet_number": [1, 2, 3, 4, 5],
                         "stream_id": [0] * 5, "offset": [0, 100, 0, 100, 200],
                         "length": [100, 100, 100, 100, 100]})
    acks = pd.DataFrame({"lo": [1], "hi": [1]})  # pn 1 was acked, pn 2 never
    rt = M.retransmissions(sent, acks)
    assert list(rt["packet_number"]) == [3, 4]
    assert list(rt["orig_packets"]) == [[1], [2]]
    assert list(rt["spurious"]) == [True, False]
    assert rt["retx_bytes"].sum() == 200


def test_real_capture_wire_metrics() -> None:
    client = load_pcap(OURS / "client.pcapng")
    server = load_pcap(OURS / "server.pcap", keylog=OURS / "keys.log")
    g = M.goodput_overall(client, 150_000)
    assert 1.0 < g["mbps"] < 20.0  # 20 Mbit/s link with 2 % loss and a 150 kB transfer
    hs = M.handshake_wire(client)
    # one RTT (2 x 10 ms) plus processing; HANDSHAKE_DONE arrives a bit later
    assert 0.019 < hs["handshake_s"] < 0.2
    assert hs["handshake_done_s"] > hs["handshake_s"]
    rt = M.retransmissions(server.stream_frames("to_client"), server.ack_ranges("to_server"))
    assert len(rt) == 2 and not rt["spurious"].any()
    qlog_retx = M.loss_summary(load_qlogs(OURS))
    srv = qlog_retx[qlog_retx["vantage"] == "server"].iloc[0]
    assert srv["packets_lost"] == 2 and srv["retransmitted_packets"] == 2


def test_link_loss_matches_datagrams_across_captures() -> None:
    down, per_packet = M.link_loss(OURS / "server.pcap", OURS / "client.pcap", src="10.99.2.2")
    assert down["lost"] == 2  # matches the two packets the server declared lost
    assert down["unmatched_arrivals"] == 1  # the server-side capture missed one (README)
    # one-way delay: 10 ms configured plus serialisation/queueing at 20 Mbit/s
    assert 10.0 <= down["owd_median_ms"] < 40.0
    assert per_packet["delivered"].sum() == down["delivered"]
    up, _ = M.link_loss(OURS / "client.pcap", OURS / "server.pcap", src="10.99.1.2")
    assert up["sent"] > 30 and 0 <= up["loss_pct"] < 10


def test_rtt_samples_and_qlog_handshake() -> None:
    ev = load_qlogs(OURS)
    r = M.rtt_samples(ev, "server")
    assert len(r) > 10 and (r["latest_rtt_ms"] >= 20.0).all()
    assert (r["min_rtt_ms"] <= r["latest_rtt_ms"] + 1e-9).all()
    hq = M.handshake_qlog(ev)
    assert len(hq) == 1 and 0.019 < hq["handshake_s"].iloc[0] < 0.2
    assert M.cdf([3.0, 1.0, float("nan"), 2.0])["value"].tolist() == [1.0, 2.0, 3.0]
