"""tshark rows -> datagrams and packets: synthetic rows, and small committed real captures."""

from __future__ import annotations

from pathlib import Path

from quicreality.interop.trace import FIELDS, V1, V2, parse_rows, read_trace, tshark_argv

DATA = Path(__file__).resolve().parents[2] / "data" / "interop"
# tshark is installed by scripts/setup.sh: a missing one fails these tests (no skip)


def _rows(*rows: dict[str, str]) -> str:
    lines = ["\t".join(FIELDS)]
    for r in rows:
        lines.append("\t".join(r.get(f, "") for f in FIELDS))
    return "\n".join(lines) + "\n"


def _base(n: int, src: str, dst: str, sport: int, dport: int, size: int) -> dict[str, str]:
    return {"frame.number": str(n), "frame.time_relative": f"{n / 10:.3f}", "ip.src": src,
            "ip.dst": dst, "udp.srcport": str(sport), "udp.dstport": str(dport),
            "udp.length": str(size + 8)}


def test_coalesced_initial_handshake_1rtt_keep_their_own_fields() -> None:
    row = _base(4, "10.99.2.2", "10.99.1.2", 443, 5000, 1200) | {
        "quic.header_form": "1,1,0", "quic.long.packet_type": "0,2", "quic.version": "0x00000001,0x00000001",
        "quic.scid": "aa,aa", "quic.dcid": "cc,cc,cc", "quic.token_length": "0",
        "quic.length": "150,900", "quic.key_phase": "1", "tls.handshake.type": "2,8,11",
        "tls.handshake.ciphersuite": "0x1303", "ip.dsfield.ecn": "2",
        "tls.quic.parameter.initial_max_streams_bidi": "100"}
    (d,) = parse_rows(_rows(row))
    assert d.kinds() == ("initial", "handshake", "1rtt")
    assert [p.length for p in d.packets] == [150, 900, 0]
    assert d.packets[0].scid == d.packets[1].scid == "aa" and d.packets[2].scid == ""
    assert d.packets[2].key_phase == 1 and d.packets[0].key_phase is None
    assert d.handshake_types == (2, 8, 11) and d.ciphersuites == (0x1303,)
    assert d.ecn == 2 and d.max_streams_bidi == 100 and d.size == 1200
    assert d.src == "10.99.2.2:443"


def test_tokens_retry_vn_and_v2_packet_types() -> None:
    retry = _base(2, "10.99.2.2", "10.99.1.2", 443, 5000, 80) | {
        "quic.header_form": "1", "quic.long.packet_type": "3", "quic.version": "0x00000001",
        "quic.scid": "bb", "quic.dcid": "c1", "quic.retry_token": "t0k3n"}
    second = _base(3, "10.99.1.2", "10.99.2.2", 5000, 443, 1200) | {
        "quic.header_form": "1", "quic.long.packet_type": "0", "quic.version": "0x00000001",
        "quic.scid": "c1", "quic.dcid": "bb", "quic.token_length": "5", "quic.token": "t0k3n",
        "quic.length": "1100"}
    vn = _base(5, "10.99.2.2", "10.99.1.2", 443, 5000, 30) | {
        "quic.header_form": "1", "quic.version": "0x00000000", "quic.scid": "d0", "quic.dcid": "c1"}
    v2 = _base(6, "10.99.2.2", "10.99.1.2", 443, 5000, 1200) | {
        "quic.header_form": "1,1", "quic.long.packet_type_v2": "1,3",
        "quic.version": "0x6b3343cf,0x6b3343cf", "quic.scid": "ee,ee", "quic.dcid": "c1,c1",
        "quic.token_length": "0", "quic.length": "100,1000"}
    r, s, n, w = parse_rows(_rows(retry, second, vn, v2))
    assert r.packets[0].kind == "retry" and r.packets[0].token == "t0k3n"
    assert s.packets[0].kind == "initial" and s.packets[0].token == "t0k3n"
    assert n.packets[0].kind == "vn" and n.packets[0].scid == "d0"
    assert w.kinds() == ("initial", "handshake") and {p.version for p in w.packets} == {V2}
    assert s.packets[0].version == V1


def test_empty_output_and_header_only() -> None:
    assert parse_rows("") == []
    assert parse_rows("\t".join(FIELDS) + "\n") == []


def test_argv_asks_every_field_once() -> None:
    argv = tshark_argv("x.pcapng", "keys.log")
    assert argv.count("-e") == len(FIELDS)
    assert "tls.keylog_file:keys.log" in argv


def test_real_retry_capture() -> None:
    t = read_trace(DATA / "retry-ours-ours.server.pcapng", "10.99.2.2")
    kinds = [d.kinds() for d in t.datagrams]
    assert kinds[:3] == [("initial",), ("retry",), ("initial",)]
    retry_token = t.datagrams[1].packets[0].token
    assert retry_token and t.datagrams[2].packets[0].token == retry_token
    # decrypted with the embedded secrets: the server's flight shows its handshake messages
    assert any(11 in d.handshake_types for d in t.from_server())


def test_connection_close_code_and_whole_reason_phrase() -> None:
    phrase = "124:More than 1000buffered control frames, least_unacked: 1, least_unsent_: 538"
    transport = _base(7, "10.99.1.2", "10.99.2.2", 5000, 443, 120) | {
        "quic.header_form": "0", "quic.dcid": "cc", "quic.frame_type": "28",
        "quic.cc.error_code": "10", "quic.cc.reason_phrase": phrase}
    app = _base(8, "10.99.2.2", "10.99.1.2", 443, 5000, 40) | {
        "quic.header_form": "0", "quic.dcid": "dd", "quic.frame_type": "29",
        "quic.cc.error_code.app": "0x0100"}
    plain = _base(9, "10.99.2.2", "10.99.1.2", 443, 5000, 40) | {
        "quic.header_form": "0", "quic.dcid": "dd", "quic.frame_type": "2"}
    t, a, p = parse_rows(_rows(transport, app, plain))
    assert (t.close_code, t.close_app, t.close_reason) == (0xA, False, phrase)
    assert (a.close_code, a.close_app, a.close_reason) == (0x100, True, "")
    assert p.close_code is None and not p.close_app and p.close_reason == ""


def test_a_reason_phrase_with_a_tab_or_line_break_keeps_the_rows() -> None:
    assert FIELDS[-1] == "quic.cc.reason_phrase"
    closing = _base(7, "10.99.1.2", "10.99.2.2", 5000, 443, 120) | {
        "quic.header_form": "0", "quic.dcid": "cc", "quic.cc.error_code": "1",
        "quic.cc.reason_phrase": "bad\tthing\nsecond line"}
    after = _base(8, "10.99.2.2", "10.99.1.2", 443, 5000, 40) | {
        "quic.header_form": "0", "quic.dcid": "dd"}
    c, a = parse_rows(_rows(closing, after))
    assert (c.number, c.close_code, c.close_reason) == (7, 1, "bad")
    assert a.number == 8 and a.close_code is None
