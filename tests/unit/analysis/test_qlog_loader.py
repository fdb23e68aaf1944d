"""qlog loaders on real files from every producer (tests/data/analysis/README.md)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from analysis_paths import DATA

from quicreality.analysis.qlog import (
    canonical_name,
    frames_table,
    load_qlog,
    load_qlogs,
    metrics_table,
    read_traces,
)

QLOG = DATA / "qlog"

# producer dir -> (producer, flavour, container, clock)
EXPECTED = {
    "ours-0.3": ("ours", "0.3", "json-seq", "monotonic"),
    "ours-draft": ("ours", "draft", "json-seq", "monotonic"),
    "aioquic": ("aioquic", "0.3", "json", "epoch"),
    "quicgo": ("quicgo", "draft-02", "ndjson", "epoch"),
    "ngtcp2": ("ngtcp2", "0.3", "json-seq", "unknown"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_flavour_loads_into_one_schema(name: str) -> None:
    producer, flavour, container, clock = EXPECTED[name]
    files = sorted((QLOG / name).iterdir())
    assert len(files) == 2
    assert {read_traces(f)[0].container for f in files} == {container}
    ev = load_qlogs(QLOG / name)
    assert set(ev["producer"]) == {producer}
    assert set(ev["flavour"]) == {flavour}
    assert set(ev["vantage"]) == {"client", "server"}
    assert set(ev["clock"]) == {clock}
    # normalised names only: no quic:/h3: names survive
    assert not ev["name"].str.startswith(("quic:", "h3:")).any()
    for needed in ("transport:packet_sent", "transport:packet_received",
                   "recovery:metrics_updated"):
        assert (ev["name"] == needed).sum() > 10, needed
    # time base: seconds from each trace's first event, within the short transfer
    per_file = ev.groupby("file")["time_s"]
    assert (per_file.min() == 0).all()
    assert ((per_file.max() > 0.05) & (per_file.max() < 5.0)).all()
    # the server sent the 150 kB response: ~100+ 1-RTT packets, and lost some (2 % loss)
    srv = ev[ev["vantage"] == "server"]
    sent_1rtt = srv[(srv["name"] == "transport:packet_sent") & (srv["packet_type"] == "1RTT")]
    assert len(sent_1rtt) > 100
    assert (srv["name"] == "recovery:packet_lost").sum() >= 1
    lost = srv[srv["name"] == "recovery:packet_lost"]
    assert lost["packet_number"].notna().all() and set(lost["packet_type"]) == {"1RTT"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rtt_and_cwnd_come_out_in_ms_and_bytes(name: str) -> None:
    m = metrics_table(load_qlogs(QLOG / name))
    srv = m[m["vantage"] == "server"]
    # the link's RTT is 20 ms (2 x 10 ms one way) plus queueing: smoothed RTT in [15, 400) ms
    rtt = srv["smoothed_rtt_ms"].dropna()
    assert len(rtt) > 5
    assert rtt.median() == pytest.approx(rtt.median())  # not NaN
    assert 15 <= rtt.iloc[-1] < 400
    cwnd = srv["cwnd"].dropna()
    assert len(cwnd) and cwnd.min() >= 1200 and cwnd.max() < 10_000_000


def test_0_3_and_draft_flavours_of_our_writer_normalise_alike() -> None:
    a = load_qlogs(QLOG / "ours-0.3")
    b = load_qlogs(QLOG / "ours-draft")
    assert set(a["name"]) - {"transport:version_information"} == \
        set(b["name"]) - {"transport:version_information"}
    raw_b = set(b["name_raw"])
    assert "quic:recovery_metrics_updated" in raw_b and "quic:packet_lost" in raw_b
    # draft parameters_set uses "initiator", 0.3 "owner": both end up in the owner column
    assert set(a.loc[a["name"] == "transport:parameters_set", "owner"]) <= {"local", "remote"}
    assert set(b.loc[b["name"] == "transport:parameters_set", "owner"]) <= {"local", "remote"}
    assert b.loc[b["name"] == "transport:parameters_set", "owner"].notna().all()


def test_conn_time_aligns_client_and_server_on_a_shared_clock() -> None:
    for name in ("ours-0.3", "aioquic", "quicgo"):
        ev = load_qlogs(QLOG / name)
        start = ev.groupby("vantage")["conn_time_s"].min()
        # the client starts the connection; the server's first event is ~one-way delay later
        assert start["client"] == 0.0
        assert 0.005 < start["server"] < 0.2, (name, start.to_dict())


def test_aioquic_specifics_cwnd_alias_and_top_level_lost_fields() -> None:
    ev = load_qlogs(QLOG / "aioquic")
    m = ev[ev["name"] == "recovery:metrics_updated"]
    assert m["cwnd"].notna().all()  # aioquic writes "cwnd", not "congestion_window"
    raw_lost = ev.loc[ev["name"] == "recovery:packet_lost", "data"].iloc[0]
    assert "header" not in raw_lost and "packet_number" in raw_lost


def test_quicgo_metrics_are_sparse_and_forward_filled() -> None:
    ev = load_qlogs(QLOG / "quicgo")
    raw = metrics_table(ev, ffill=False)
    filled = metrics_table(ev)
    srv_raw = raw[raw["vantage"] == "server"]
    assert srv_raw["cwnd"].isna().mean() > 0.5  # only changes are logged
    srv = filled[filled["vantage"] == "server"]
    first = srv["cwnd"].first_valid_index()
    assert srv.loc[first:, "cwnd"].notna().all()


def test_ngtcp2_integer_milliseconds() -> None:
    ev = load_qlogs(QLOG / "ngtcp2")
    t_ms = ev["time_s"] * 1000
    assert ((t_ms - t_ms.round()).abs() < 1e-6).all()


def test_frames_table_stream_and_ack_ranges() -> None:
    for name in EXPECTED:
        fr = frames_table(load_qlogs(QLOG / name))
        sent = fr[(fr["vantage"] == "server") & (fr["direction"] == "sent")
                  & (fr["frame_type"] == "stream") & (fr["stream_id"] == 0)]
        # the response stream covers the file plus HTTP/3 framing, from offset 0
        assert sent["offset"].min() == 0, name
        end = (sent["offset"] + sent["length"]).max()
        assert 150_000 <= end <= 150_200, (name, end)
        acks = fr[(fr["frame_type"] == "ack") & (fr["vantage"] == "server")
                  & (fr["direction"] == "received")]
        ranges = [r for rs in acks["acked_ranges"] for r in rs]
        assert ranges and all(lo <= hi for lo, hi in ranges), name


def test_gzipped_and_truncated_files(tmp_path: Path) -> None:
    src = min((QLOG / "ngtcp2").iterdir())
    text = src.read_text()
    gz = tmp_path / (src.name + ".gz")
    with gzip.open(gz, "wt") as f:
        f.write(text)
    full = load_qlog(src)
    pd.testing.assert_series_equal(load_qlog(gz)["name"], full["name"])
    cut = tmp_path / src.name
    cut.write_text(text[: len(text) - 40])  # a killed peer leaves a truncated last record
    assert len(load_qlog(cut)) == len(full) - 1
    shutil.copyfile(src, tmp_path / "copy.sqlog")
    assert len(load_qlogs(tmp_path)) == 2 * len(full) + len(full) - 1


def test_draft01_event_arrays_and_delta_times(tmp_path: Path) -> None:
    doc = {"qlog_version": "draft-01", "traces": [{
        "vantage_point": {"type": "client"},
        "common_fields": {"time_format": "delta", "reference_time": 1_700_000_000_000.0},
        "event_fields": ["delta_time", "category", "event", "data"],
        "events": [[0, "transport", "packet_sent", {"header": {"packet_type": "initial",
                                                               "packet_number": 0}}],
                   [5, "recovery", "metrics_updated", {"smoothed_rtt": 20}],
                   [10, "transport", "packet_received", {"header": {"packet_type": "initial",
                                                                    "packet_number": 0}}]]}]}
    p = tmp_path / "old.qlog"
    p.write_text(json.dumps(doc))
    ev = load_qlog(p)
    assert list(ev["name"]) == ["transport:packet_sent", "recovery:metrics_updated",
                                "transport:packet_received"]
    assert list(ev["time_s"]) == [0.0, 0.005, 0.015]
    assert ev["clock"].iloc[0] == "epoch"
    assert ev["time_abs_s"].iloc[2] == pytest.approx(1_700_000_000.015)


@pytest.mark.parametrize(("raw", "canon"), [
    ("quic:packet_sent", "transport:packet_sent"),
    ("quic:recovery_metrics_updated", "recovery:metrics_updated"),
    ("quic:packet_lost", "recovery:packet_lost"),
    ("quic:timer_updated", "recovery:loss_timer_updated"),
    ("quic:connection_closed", "connectivity:connection_closed"),
    ("quic:key_discarded", "security:key_retired"),
    ("h3:frame_created", "http:frame_created"),
    ("recovery:metrics_updated", "recovery:metrics_updated"),
    ("reality:verdict", "reality:verdict"),
])
def test_canonical_names(raw: str, canon: str) -> None:
    assert canonical_name(raw) == canon
