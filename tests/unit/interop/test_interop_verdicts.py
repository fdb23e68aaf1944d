"""The wire checks: each must pass on good evidence and fail, with the reason, on bad."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from interop_helpers import SERVER, dg, evidence, handshake_trace, initial, one_rtt

from quicreality.interop.trace import V2, QuicPacket, Trace, read_trace
from quicreality.interop.verdicts import FileCheck, handshakes, judge

DATA = Path(__file__).resolve().parents[2] / "data" / "interop"
# tshark is installed by scripts/setup.sh: a missing one fails these tests (no skip)


def test_handshake_counts_server_initial_scids() -> None:
    assert judge("handshake", evidence(handshake_trace("s1"))).result == "succeeded"
    v = judge("handshake", evidence(handshake_trace("s1", "s2")))
    assert v.result == "failed" and "2 SCID" in v.reason


def test_files_and_keys_decide_too() -> None:
    v = judge("handshake", evidence(handshake_trace("s1"), files=FileCheck(3, 2, "1 of 3 files missing")))
    assert v.result == "failed" and "missing" in v.reason
    v = judge("handshake", evidence(handshake_trace("s1"), keys=0))
    assert v.result == "failed" and "key log" in v.reason


def test_wrong_version_fails() -> None:
    t = Trace(datagrams=(dg(1, False, initial("c")), dg(2, True, initial("s", version=V2))),
              server_ip=SERVER)
    v = judge("handshake", evidence(t))
    assert v.result == "failed" and "0x6b3343cf" in v.reason
    v = judge("v2", evidence(t))
    assert v.result == "failed" and "Handshake packets used []" in v.reason


def test_v2_as_qir_checks_it() -> None:
    def hs(version: int) -> QuicPacket:
        return QuicPacket("handshake", version=version, scid="s", dcid="c1")

    def trace(*server: QuicPacket, client_hs: int = V2) -> Trace:
        return Trace(datagrams=(dg(1, False, initial("c1")), *(dg(2 + i, True, p) for i, p in
                                                                 enumerate(server)),
                                dg(9, False, hs(client_hs))), server_ip=SERVER)

    ack_v1 = initial("s", dcid="c1")  # an ACK in v1 before the server's CRYPTO: QIR allows it
    good = trace(ack_v1, initial("s", dcid="c1", version=V2), hs(V2))
    assert judge("v2", evidence(good, client=good)).result == "succeeded"
    stayed = trace(ack_v1, hs(1), client_hs=1)
    assert "never used v2" in judge("v2", evidence(stayed, client=stayed)).reason
    mixed = trace(initial("s", dcid="c1", version=V2), hs(V2), client_hs=1)
    assert "client's Handshake" in judge("v2", evidence(mixed, client=mixed)).reason


def test_chacha20_reads_the_server_hello() -> None:
    good = handshake_trace("s", extra=(dg(9, True, one_rtt(), handshake_types=(2,),
                                          ciphersuites=(0x1303,)),))
    assert judge("chacha20", evidence(good)).result == "succeeded"
    bad = handshake_trace("s", extra=(dg(9, True, one_rtt(), handshake_types=(2,),
                                         ciphersuites=(0x1301,)),))
    v = judge("chacha20", evidence(bad))
    assert v.result == "failed" and "0x1301" in v.reason


def test_multiplexing_needs_a_low_stream_limit() -> None:
    def with_limit(n: int) -> Trace:
        return handshake_trace("s", extra=(dg(9, True, one_rtt(), max_streams_bidi=n),))
    assert judge("multiplexing", evidence(with_limit(100))).result == "succeeded"
    assert "> 1000" in judge("multiplexing", evidence(with_limit(5000))).reason


def test_retry_token_must_be_reused() -> None:
    retry = dg(3, True, QuicPacket("retry", version=1, scid="r", dcid="c1", token="ab"))
    used = dg(4, False, initial("c1", token="ab"))
    assert judge("retry", evidence(handshake_trace("s", extra=(retry, used)))).result == "succeeded"
    v = judge("retry", evidence(handshake_trace("s", extra=(retry,))))
    assert v.result == "failed" and "token" in v.reason
    assert "no Retry" in judge("retry", evidence(handshake_trace("s"))).reason


def test_resumption_second_handshake_without_certificate() -> None:
    cert1 = dg(5, True, QuicPacket("handshake", version=1, scid="s1"), handshake_types=(8, 11))
    fin2 = dg(7, True, QuicPacket("handshake", version=1, scid="s2"), handshake_types=(8, 20))
    cert2 = dg(7, True, QuicPacket("handshake", version=1, scid="s2"), handshake_types=(8, 11))
    ok = judge("resumption", evidence(handshake_trace("s1", "s2", extra=(cert1, fin2))))
    assert ok.result == "succeeded"
    bad = judge("resumption", evidence(handshake_trace("s1", "s2", extra=(cert1, cert2))))
    assert bad.result == "failed" and "Certificate in the second" in bad.reason
    assert "2 handshake" in judge("resumption", evidence(handshake_trace("s1"))).reason


def test_zerortt_needs_0rtt_bytes_and_little_1rtt() -> None:
    zero = dg(6, False, QuicPacket("0rtt", version=1, scid="c", length=900))
    small = dg(8, False, one_rtt(), size=60)
    big = dg(9, False, one_rtt(), size=9000)
    t = handshake_trace("s1", "s2", extra=(zero, small))
    assert judge("zerortt", evidence(t, filename_bytes=10000)).result == "succeeded"
    v = judge("zerortt", evidence(handshake_trace("s1", "s2", extra=(small,)), filename_bytes=10000))
    assert v.result == "failed" and "no 0-RTT" in v.reason
    v = judge("zerortt", evidence(handshake_trace("s1", "s2", extra=(zero, big)), filename_bytes=10000))
    assert v.result == "failed" and "not 0-RTT" in v.reason


def test_keyupdate_needs_phase_1_from_both() -> None:
    both = handshake_trace("s", extra=(dg(8, False, one_rtt(1)), dg(9, True, one_rtt(1))))
    assert judge("keyupdate", evidence(both)).result == "succeeded"
    client_only = handshake_trace("s", extra=(dg(8, False, one_rtt(1)), dg(9, True, one_rtt(0))))
    v = judge("keyupdate", evidence(client_only))
    assert v.result == "failed" and "server 0" in v.reason


def test_ecn_marks_and_ack_ecn_both_ways() -> None:
    def t(server_ecn: int, ack: bool) -> Trace:
        base = handshake_trace("s")
        ds = [replace(d, ecn=2, ack_ecn=True) if d.src_ip != SERVER else
              replace(d, ecn=server_ecn, ack_ecn=ack) for d in base.datagrams]
        return Trace(datagrams=tuple(ds), server_ip=SERVER)
    assert judge("ecn", evidence(t(2, True))).result == "succeeded"
    assert "server marked no packet ECT" in judge("ecn", evidence(t(0, True))).reason
    assert "server sent no ACK_ECN" in judge("ecn", evidence(t(2, False))).reason
    # an unmarked packet (a PMTU probe, as ngtcp2 sends them) next to ECT ones is fine, as in
    # QIR; a CE mark is not
    base = t(2, True)
    probe = replace(dg(20, True, one_rtt()), ecn=0, ack_ecn=False)
    mixed = Trace(datagrams=(*base.datagrams, probe), server_ip=SERVER)
    assert judge("ecn", evidence(mixed)).result == "succeeded"
    marked = Trace(datagrams=(*base.datagrams, replace(probe, ecn=3)), server_ip=SERVER)
    assert "1 CE-marked" in judge("ecn", evidence(marked)).reason


def test_version_negotiation_echoes_the_dcid() -> None:
    c = dg(1, False, initial("c1", dcid="d0", version=0x1A2A3A4A))
    good = Trace(datagrams=(c, dg(2, True, QuicPacket("vn", version=0, scid="d0", dcid="c1"))),
                 server_ip=SERVER)
    bad = Trace(datagrams=(c, dg(2, True, QuicPacket("vn", version=0, scid="zz", dcid="c1"))),
                server_ip=SERVER)
    assert judge("versionnegotiation", evidence(good, keys=0)).result == "succeeded"
    assert judge("versionnegotiation", evidence(bad, keys=0)).result == "failed"


def test_rebinding_needs_a_challenge_on_each_new_path() -> None:
    base = handshake_trace("s")
    to_new = replace(dg(9, True, one_rtt()), dst_port=6000, path_challenge=True)
    resp = replace(dg(10, False, one_rtt()), src_port=6000, path_response=True)
    good = Trace(datagrams=(*base.datagrams, to_new, resp), server_ip=SERVER)
    assert judge("rebind-port", evidence(good)).result == "succeeded"
    silent = Trace(datagrams=(*base.datagrams, replace(to_new, path_challenge=False), resp),
                   server_ip=SERVER)
    assert "no PATH_CHALLENGE" in judge("rebind-port", evidence(silent)).reason
    assert "single path" in judge("rebind-port", evidence(base)).reason


def test_amplification_limit() -> None:
    c = dg(1, False, initial("c1"), size=1200)
    hs = dg(9, False, QuicPacket("handshake", version=1, scid="c1"), size=80)

    def flight(n: int, crypto: int = 8000) -> list:
        return [dg(2 + i, True, initial("s"), size=1200, crypto_end=crypto) for i in range(n)]
    ok = Trace(datagrams=(c, *flight(3), hs), server_ip=SERVER)
    assert judge("amplificationlimit", evidence(ok)).result == "succeeded"
    over = Trace(datagrams=(c, *flight(4), hs), server_ip=SERVER)
    v = judge("amplificationlimit", evidence(over))
    assert v.result == "failed" and "budget" in v.reason
    small = Trace(datagrams=(c, *flight(2, crypto=3000), hs), server_ip=SERVER)
    assert "only 3000 B" in judge("amplificationlimit", evidence(small)).reason
    never = Trace(datagrams=(c, *flight(2)), server_ip=SERVER)
    assert "never sent a Handshake" in judge("amplificationlimit", evidence(never)).reason


def test_goodput_from_the_wire() -> None:
    t = Trace(datagrams=(dg(0, False, initial("c")), dg(1, True, initial("s")),
                         replace(dg(2, True, one_rtt()), time=8.0)), server_ip=SERVER)
    v = judge("goodput", evidence(t, file_bytes=10_000_000))
    assert v.result == "succeeded"
    assert v.metrics["goodput_kbps"] == pytest.approx(10_000, rel=1e-6)


def test_real_captures() -> None:
    retry = read_trace(DATA / "retry-ours-ours.server.pcapng", "10.99.2.2")
    assert judge("retry", evidence(retry)).result == "succeeded"
    assert handshakes(retry) == 1
    ngtcp2 = read_trace(DATA / "handshake-ngtcp2-ours.client.pcapng", "10.99.2.2")
    v = judge("multiplexing", evidence(ngtcp2))
    assert v.result == "succeeded" and "limit 100" in v.reason
    # qh3's server rejected quic-go's empty SCID and kept answering with new Initials
    qh3 = read_trace(DATA / "handshake-qh3-quicgo.server.pcapng", "10.99.2.2")
    v = judge("handshake", evidence(qh3, keys=4))
    assert v.result == "failed" and "2 SCID" in v.reason


def test_a_surplus_handshake_names_the_close_before_it() -> None:
    # Chromium's multiplexing against a 100-stream server (2026-12-07): the browser closes its
    # own first connection, then opens a second one for the requests it retries
    phrase = "124:More than 1000buffered control frames, least_unacked: 1, least_unsent_: 538"
    close = dg(5, False, one_rtt(), close_code=0xA, close_reason=phrase)
    t = handshake_trace("s1", extra=(close, dg(7, True, initial("s2", dcid="c2"))))
    v = judge("multiplexing", evidence(t))
    assert v.result == "failed"
    assert v.reason == ("expected 1 handshake(s), the server sent Initials with 2 SCID(s); before "
                        "handshake 2 (0.007 s) the client sent a transport CONNECTION_CLOSE 0x0a "
                        f'(PROTOCOL_VIOLATION) "{phrase}" at 0.005 s')
    app = dg(5, True, one_rtt(), close_code=0x100, close_app=True)
    t = handshake_trace("s1", extra=(app, dg(7, True, initial("s2", dcid="c2"))))
    assert "the server sent an application CONNECTION_CLOSE 0x100 at" in judge(
        "handshake", evidence(t)).reason
    tls = dg(5, True, one_rtt(), close_code=0x128)
    t = handshake_trace("s1", extra=(tls, dg(7, True, initial("s2", dcid="c2"))))
    assert "(CRYPTO_ERROR, TLS alert 40)" in judge("handshake", evidence(t)).reason
    # no close before the second handshake (the first was abandoned): said so
    t = handshake_trace("s1", "s2", extra=(close,))
    assert judge("handshake", evidence(t)).reason.endswith(
        "before handshake 2 (0.003 s) no CONNECTION_CLOSE in the server-side capture")
    # too few handshakes: the count alone
    v = judge("resumption", evidence(handshake_trace("s1")))
    assert v.reason == "expected 2 handshake(s), the server sent Initials with 1 SCID(s)"
