"""Goodput, handshake time and link losses from captures; qlog numbers of every flavour.

The real-capture tests use ``tests/data/scenarios/`` (made by ``make_data.py`` there with the
runner itself: a 100 kB download ours <- ours and a 1 s iperf3 TCP test over an emulated link).
Their expectations are computed here independently from the raw pcap bytes, without tshark.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from quicreality.scenarios.qlogsum import normalise_name, summarise_qlog
from quicreality.scenarios.wire import (
    count_by_source,
    packets_by_source,
    quic_wire,
    quic_wire_from_rows,
    tcp_wire,
    tcp_wire_from_rows,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "scenarios"
SERVER, CLIENT = "10.99.2.2", "10.99.1.2"


def _row(t: float, src: str, forms: str = "0", types: str = "", ptype: str = "",
         length: int = 1208) -> dict[str, str]:
    return {"frame.time_epoch": f"{t:.6f}", "ip.src": src,
            "udp.srcport": "443" if src == SERVER else "50000", "udp.length": str(length),
            "quic.header_form": forms, "quic.long.packet_type": ptype, "quic.frame_type": types}


def test_goodput_counts_first_to_last_server_stream_packet_when_decrypted() -> None:
    rows = [
        _row(10.000, CLIENT, "1", "6,0", "0"),                 # client Initial
        _row(10.040, SERVER, "1,1,0", "2,6,6,10", "0,2"),      # server flight + 0.5-RTT SETTINGS
        _row(10.045, CLIENT, "1,1,0", "2,6,2,10", "0,2"),      # client Finished + 1-RTT
        _row(10.100, SERVER, "0", "14"),
        _row(11.040, SERVER, "0", "15"),                        # last STREAM (FIN)
        _row(11.100, SERVER, "0", "2"),                         # ACK only: not payload
    ]
    w = quic_wire_from_rows(rows, server_addr=SERVER, server_port=443, file_bytes=1_000_000)
    assert w.method == "1rtt-stream" and w.decrypted
    assert w.duration_s == pytest.approx(1.0)
    assert w.goodput_mbit == pytest.approx(8.0)
    assert w.goodput_all_mbit == pytest.approx(8 / 1.06, rel=1e-6)
    assert w.handshake_ms == pytest.approx(45.0)
    assert (w.server_packets, w.client_packets) == (4, 2)


def test_without_keys_every_server_1rtt_packet_counts_like_the_interop_runner() -> None:
    rows = [_row(1.0, CLIENT, "1", "", "0"), _row(1.03, SERVER, "1,1,0", "", "0,2"),
            _row(1.5, SERVER, "0"), _row(2.03, SERVER, "0"), _row(1.04, CLIENT, "0")]
    w = quic_wire_from_rows(rows, server_addr=SERVER, server_port=443, file_bytes=250_000)
    assert w.method == "1rtt-all" and not w.decrypted
    assert w.goodput_mbit == pytest.approx(2.0)


def test_no_server_1rtt_packets_means_no_goodput() -> None:
    w = quic_wire_from_rows([_row(1.0, CLIENT, "1", "", "0")], server_addr=SERVER,
                            server_port=443, file_bytes=10)
    assert w.goodput_mbit is None and w.duration_s is None and w.handshake_ms is None


def test_tcp_goodput_uses_the_largest_stream_of_the_sender() -> None:
    def r(t: float, stream: int, seq: int, n: int, src: str = SERVER) -> dict[str, str]:
        return {"frame.time_epoch": str(t), "ip.src": src, "tcp.stream": str(stream),
                "tcp.seq": str(seq), "tcp.len": str(n)}

    rows = [r(0.0, 0, 1, 37), r(0.1, 1, 1, 1000), r(0.2, 1, 1001, 1000),
            r(0.3, 1, 1001, 1000),  # a retransmission does not add bytes
            r(1.1, 1, 2001, 500), r(0.5, 1, 1, 99, src=CLIENT), r(0.6, 1, 3000, 0)]
    w = tcp_wire_from_rows(rows, sender_addr=SERVER)
    assert (w.stream, w.bytes, w.data_packets) == (1, 2500, 4)
    assert w.goodput_mbit == pytest.approx(2500 * 8 / 1.0 / 1e6)


def test_count_by_source() -> None:
    rows = [{"ip.src": SERVER}, {"ip.src": CLIENT}, {"ip.src": SERVER}, {"ip.src": "1.2.3.4"}]
    assert count_by_source(rows, (CLIENT, SERVER)) == {CLIENT: 1, SERVER: 2}


# ------------------------------------------------------------------------ real capture


def _raw_ipv4_udp(pcap: Path) -> list[tuple[float, str, int, bytes]]:
    """(time, src, sport, udp payload) of every IPv4/UDP packet: a pcap reader of our own."""
    data = pcap.read_bytes()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    assert linktype in (12, 101, 228), linktype  # raw IP (TUN)
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + caplen]
        off += 16 + caplen
        if pkt[0] >> 4 != 4 or pkt[9] != 17:
            continue
        ihl = (pkt[0] & 15) * 4
        src = ".".join(str(b) for b in pkt[12:16])
        sport = struct.unpack(">H", pkt[ihl:ihl + 2])[0]
        out.append((sec + frac / (1e9 if nano else 1e6), src, sport, pkt[ihl + 8:]))
    return out


def test_goodput_from_a_real_capture_matches_an_independent_reading() -> None:
    d = DATA / "quic"
    meta = json.loads((d / "meta.json").read_text())
    size = meta["file_bytes"]
    pkts = _raw_ipv4_udp(d / "client.pcap")
    srv_short = [t for t, src, sport, p in pkts if src == SERVER and sport == 443 and p
                 and p[0] & 0x80 == 0]
    # quic-interop-runner's definition (no keys): first to last server 1-RTT datagram. Coalesced
    # datagrams that end in a 1-RTT packet start with a long header, so the independent reading
    # is an upper bound on the duration the dissector finds.
    w_raw = quic_wire(str(d / "client.pcap"), server_addr=SERVER, server_port=443,
                      file_bytes=size)
    assert w_raw.method == "1rtt-all"
    assert w_raw.last_ts == pytest.approx(srv_short[-1], abs=1e-6)
    assert w_raw.first_ts is not None and w_raw.first_ts <= srv_short[0] + 1e-6
    w = quic_wire(str(d / "client.pcapng"), server_addr=SERVER, server_port=443,
                  file_bytes=size)
    assert w.decrypted and w.method == "1rtt-stream"
    assert w.goodput_mbit == pytest.approx(size * 8 / (w.last_ts - w.first_ts) / 1e6)
    assert srv_short[0] - 1e-6 <= w.last_ts <= srv_short[-1] + 1e-6
    assert w.server_packets == sum(1 for _, s, sp, _ in pkts if s == SERVER and sp == 443)
    # the client's first datagram is its Initial; its first 1-RTT packet ends the handshake
    first_client = min(t for t, s, _, _ in pkts if s == CLIENT)
    assert w.handshake_ms is not None
    assert 0 < w.handshake_ms <= 1000 * (max(t for t, *_ in pkts) - first_client)
    assert w.handshake_ms >= meta["rtt_ms"] * 0.95  # at least one round trip
    assert w.goodput_mbit == pytest.approx(meta["goodput_mbit"], rel=1e-9)


def test_link_losses_from_both_captures_match_the_emulator_counters() -> None:
    d = DATA / "quic"
    meta = json.loads((d / "meta.json").read_text())
    at_c = packets_by_source(str(d / "client.pcap"), (CLIENT, SERVER), "udp.port == 443")
    at_s = packets_by_source(str(d / "server.pcap"), (CLIENT, SERVER), "udp.port == 443")
    assert at_s[SERVER] - at_c[SERVER] == meta["emulator_drops_to_client"]
    assert at_c[CLIENT] - at_s[CLIENT] == meta["emulator_drops_to_server"]
    raw_c = _raw_ipv4_udp(d / "client.pcap")
    assert at_c[SERVER] == sum(1 for _, s, sp, _ in raw_c if s == SERVER and sp == 443)


def test_tcp_goodput_from_a_real_headers_only_capture() -> None:
    d = DATA / "tcp"
    meta = json.loads((d / "meta.json").read_text())
    w = tcp_wire(str(d / "client.pcap"), sender_addr=SERVER)
    assert w.goodput_mbit is not None and w.duration_s is not None
    # iperf3 counts what it read during its 1 s test; the wire also carries the end-of-test
    # drain (in-flight data, tail-loss recovery), so it shows at least those bytes
    assert meta["iperf3_bytes"] <= w.bytes == meta["wire_bytes"]
    assert w.duration_s > 1.0
    assert w.goodput_mbit == pytest.approx(meta["goodput_mbit"], rel=1e-9)
    assert w.goodput_mbit <= meta["rate_mbit"] * 1.01
    iperf = json.loads((d / "iperf3.json").read_text())
    assert iperf["end"]["sum_received"]["bytes"] == meta["iperf3_bytes"]
    # the handshake and control packets are on another stream (tshark's tcp.stream 0)
    assert w.stream == 1


# ------------------------------------------------------------------------ qlog flavours


def test_event_names_normalise_across_flavours() -> None:
    assert normalise_name("recovery:metrics_updated") == "metrics_updated"
    assert normalise_name("quic:recovery_metrics_updated") == "metrics_updated"
    assert normalise_name("quic:packet_lost") == "packet_lost"
    assert normalise_name("transport:packet_sent") == "packet_sent"


def _events() -> list[dict[str, object]]:
    return [{"time": 1, "name": "transport:packet_sent", "data": {}},
            {"time": 2, "name": "recovery:metrics_updated",
             "data": {"latest_rtt": 40.0, "min_rtt": 39.5}},
            {"time": 3, "name": "recovery:metrics_updated", "data": {"latest_rtt": 44.0}},
            {"time": 4, "name": "recovery:metrics_updated", "data": {"latest_rtt": 0}},
            {"time": 5, "name": "recovery:packet_lost", "data": {}},
            {"time": 6, "name": "transport:packet_received", "data": {}}]


@pytest.mark.parametrize("flavour", ["json-seq", "ndjson", "json"])
def test_qlog_summary_of_every_container(tmp_path: Path, flavour: str) -> None:
    header = {"qlog_version": "0.3", "trace": {"vantage_point": {"type": "server"}}}
    f = tmp_path / "x.qlog"
    if flavour == "json-seq":
        f.write_text("".join("\x1e" + json.dumps(o) + "\n" for o in [header, *_events()])
                     + "\x1e{\"time\": 7, \"na")  # a truncated last record is skipped
    elif flavour == "ndjson":
        f.write_text("\n".join(json.dumps(o) for o in [header, *_events()]) + "\n")
    else:
        f.write_text(json.dumps({"qlog_format": "JSON", "traces": [
            {"events": _events(), "vantage_point": {"type": "server"}}]}))
    s = summarise_qlog(f)
    assert (s.vantage, s.rtt_samples, s.rtt_median_ms, s.min_rtt_ms) == ("server", 2, 42.0, 39.5)
    assert (s.packets_sent, s.packets_lost, s.packets_received) == (1, 1, 1)


def test_real_qlogs_of_the_capture_run() -> None:
    files = sorted((DATA / "quic" / "qlog").rglob("*.sqlog"))
    sums = {f.parent.name: summarise_qlog(f, f.parent.name) for f in files}
    assert set(sums) == {"client", "server"}
    meta = json.loads((DATA / "quic" / "meta.json").read_text())
    srv = sums["server"]
    assert srv.rtt_median_ms is not None and srv.rtt_median_ms >= meta["rtt_ms"] * 0.95
    assert srv.packets_sent > 0 and sums["client"].packets_received > 0


def test_key_logs_merge_with_the_clients_secrets_winning(tmp_path: Path) -> None:
    from quicreality.scenarios.workloads import merge_client_first

    rnd, ours, targets = "ab" * 32, "11" * 32, "22" * 32
    (tmp_path / "client.keys").write_text(f"CLIENT_TRAFFIC_SECRET_0 {rnd} {ours}\n")
    (tmp_path / "server.keys").write_text(f"CLIENT_TRAFFIC_SECRET_0 {rnd} {ours}\n"
                                          f"SERVER_TRAFFIC_SECRET_0 {rnd} {ours}\n")
    # REALITY mirrored the ClientHello to the target, which derived its own secrets
    (tmp_path / "target.keys").write_text(f"CLIENT_TRAFFIC_SECRET_0 {rnd.upper()} {targets}\n"
                                          "# a comment\n")
    out = tmp_path / "keys.log"
    n = merge_client_first([tmp_path / f"{h}.keys" for h in ("client", "server", "target")], out)
    assert n == 2
    assert out.read_text().splitlines() == [f"CLIENT_TRAFFIC_SECRET_0 {rnd} {ours}",
                                            f"SERVER_TRAFFIC_SECRET_0 {rnd} {ours}"]


def test_coalesced_initial_frames_do_not_count_as_decrypted() -> None:
    rows = [_row(1.0, CLIENT, "1", "6,0", "0"), _row(1.03, SERVER, "1,1,0", "2,6,6", "0,2"),
            _row(1.5, SERVER, "0"), _row(2.03, SERVER, "0")]
    w = quic_wire_from_rows(rows, server_addr=SERVER, server_port=443, file_bytes=250_000)
    assert not w.decrypted and w.method == "1rtt-all"
