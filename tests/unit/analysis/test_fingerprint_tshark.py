"""The fingerprint tool's tshark layer without tshark: row parsing, flows, first flights, trees."""

from __future__ import annotations

from quicreality.analysis.fingerprint_tshark import (
    Datagram,
    Flow,
    Node,
    decode_json,
    first_flights,
    parse_rows,
    split_flows,
    tshark_json_argv,
    tshark_rows_argv,
)

C, S = "127.0.0.1:50000", "127.0.0.1:4433"


def dg(n: int, src: str, packets: tuple[str, ...], hs: tuple[int, ...] = (), size: int = 1200,
       ) -> Datagram:
    return Datagram(number=n, time=n / 1000, src=src, dst=S if src == C else C, size=size,
                    packets=packets, version="0x00000001", handshake_types=hs)


def flow(*dgs: Datagram) -> Flow:
    return Flow(index=1, client=C, server=S, datagrams=dgs)


def test_rows_keep_packet_types_of_coalesced_datagrams() -> None:
    line = "\t".join(["5", "0.0284", "127.0.0.1", "", "127.0.0.1", "", "4433",
                      "52171", "1208", "1,1,0", "0,2", "0x00000001,0x00000001", "2,8,11,15,20"])
    (d,) = parse_rows(line + "\n")
    assert d.size == 1200 and d.packets == ("initial", "handshake", "1rtt")
    assert d.coalescing == "initial+handshake+1rtt"
    assert d.src == "127.0.0.1:4433" and d.handshake_types == (2, 8, 11, 15, 20)
    v6 = "\t".join(["1", "0", "", "::1", "", "::1", "5000", "443", "1258", "1", "0",
                    "0x1", ""])
    assert parse_rows(v6)[0].src == "[::1]:5000"


def test_client_flight_ends_where_the_client_hello_is_complete() -> None:
    f = flow(dg(1, C, ("initial",)), dg(2, S, ("initial",), size=43),
             dg(3, C, ("initial",), hs=(1,)), dg(4, C, ("initial",)),
             dg(5, S, ("initial", "handshake", "1rtt"), hs=(2,)), dg(6, S, ("initial",), size=45),
             dg(7, C, ("initial", "handshake")), dg(8, C, ("handshake", "1rtt")),
             dg(9, S, ("1rtt",)))
    ff = first_flights(f)
    assert [d.number for d in ff.client] == [1, 3] and ff.client_hello_complete
    # the server's flight: everything it sent before the client's first 1-RTT packet (frame 8)
    assert [d.number for d in ff.server] == [2, 5, 6] and ff.server_bounded


def test_server_flight_without_client_1rtt_stops_at_pure_1rtt() -> None:
    f = flow(dg(1, C, ("initial",), hs=(1,)), dg(2, S, ("initial", "handshake")),
             dg(3, S, ("handshake",)), dg(4, S, ("1rtt",)), dg(5, S, ("handshake",)))
    ff = first_flights(f)
    assert [d.number for d in ff.server] == [2, 3] and ff.server_bounded
    lone = first_flights(flow(dg(1, C, ("initial",)), dg(2, C, ("initial",))))
    assert not lone.client_hello_complete and [d.number for d in lone.client] == [1]
    assert lone.server == () and not lone.server_bounded


def test_flows_are_split_by_four_tuple_and_ordered() -> None:
    other = "127.0.0.1:50001"
    a = [dg(1, C, ("initial",)), dg(2, S, ("initial",)),
         Datagram(3, 0.003, other, S, 1200, ("initial",), "0x1", ()),
         Datagram(4, 0.004, S, other, 50, ("initial",), "0x1", ()),
         Datagram(5, 0.005, "127.0.0.1:9", S, 30, ("1rtt",), None, ())]  # no Initial: dropped
    fl = split_flows(a)
    assert [(f.index, f.client, len(f.datagrams)) for f in fl] == [(1, C, 2), (2, other, 2)]


def test_node_keeps_repeated_keys_in_document_order() -> None:
    # repeated keys cannot be written by json.dumps: the text is built by hand
    text = ('[{"_source": {"layers": {"frame": {"frame.number": "7"}, '
            '"quic": {"quic.frame": {"t": "0"}, "quic.frame": {"t": "6", '
            '"tls": {"tls.handshake": {"tls.handshake.type": "1"}}}}, '
            '"quic": {"quic.frame": {"t": "1"}}}}}]')
    (layers,) = decode_json(text)
    quic = layers.all("quic")
    assert len(quic) == 2 and [f.get("t") for f in quic[0].all("quic.frame")] == ["0", "6"]
    assert layers.find("t") == ["0", "6", "1"]
    assert [h.get("tls.handshake.type") for h in layers.nodes("tls.handshake")] == ["1"]
    assert isinstance(layers.first("tls"), Node) and layers.first("missing", 3) == 3


def test_argv_builders() -> None:
    rows = tshark_rows_argv("a.pcap", "k.keys")
    assert rows[:4] == ["tshark", "-r", "a.pcap", "-n"] and "tls.keylog_file:k.keys" in rows
    assert "quic.header_form" in rows and "-Y" in rows
    js = tshark_json_argv("a.pcap", [5, 1, 3, 3])
    assert "frame.number in {1, 3, 5}" in js and js[js.index("-T") + 1] == "json"
