"""Each censor policy on crafted Initials from our own client code, on virtual time."""

from __future__ import annotations

import json

import pytest
from censor_helpers import (
    ALLOWED,
    BLOCKED,
    CLIENT,
    hello_of,
    ip,
    plain_flight,
    raw_frames_initial,
    reality_flight,
    split_frames,
    split_packets,
    v2_initial,
)

from quicreality.reality.probe import crypto_frame
from quicreality.scenarios.censor import build_censor
from quicreality.scenarios.censor.core import Censor


def gfw(**extra: object) -> Censor:
    return build_censor({"policies": ["gfw-2025"], "gfw-2025": {"domains": [BLOCKED], **extra}})


def sni() -> Censor:
    return build_censor({"sni-blocklist": {"domains": [BLOCKED]}})


def fingerprint() -> Censor:
    return build_censor({"fingerprint": {"rule": [
        {"name": "reality-session-id", "feature": "session_id_len", "equals": 32}]}})


def send(c: Censor, flight: list[bytes], now: float, sport: int = 40000, dport: int = 443,
         client: str = CLIENT) -> list[str | None]:
    return [c.to_server(ip(d, sport, dport, client=client), now) for d in flight]


def blocked(c: Censor, now: float, sport: int = 40000, dport: int = 443,
            client: str = CLIENT) -> bool:
    """Whether a later client packet and a server reply on the flow are dropped."""
    up = c.to_server(ip(b"\x40" + bytes(30), sport, dport, client=client), now)
    down = c.to_client(ip(b"\x40" + bytes(30), sport, dport, to_client=True, client=client), now)
    return up is not None and down is not None


# ---- sni-blocklist -------------------------------------------------------------------------------


def test_sni_blocklist_blocks_a_listed_name_on_the_first_packet() -> None:
    c = sni()
    assert send(c, plain_flight(BLOCKED), 0.0) == ["blocked by sni-blocklist"]
    assert blocked(c, 0.1)
    rec = c.pop_records()
    assert rec[0]["action"] == "block" and rec[0]["sni"] == BLOCKED and rec[0]["flow_age_ms"] == 0


def test_sni_blocklist_passes_other_names_and_logs_why() -> None:
    c = sni()
    assert send(c, plain_flight(ALLOWED), 0.0) == [None]
    assert not blocked(c, 0.1)
    (rec,) = c.pop_records()
    assert rec["action"] == "pass" and "not on the blocklist" in rec["reason"]


def test_sni_blocklist_reassembles_a_hello_split_across_packets() -> None:
    c = sni()
    verdicts = send(c, split_packets(hello_of(plain_flight(BLOCKED)), 50), 0.0)
    assert verdicts == [None, "blocked by sni-blocklist"]


def test_sni_blocklist_reads_v2_initials() -> None:
    c = sni()
    assert send(c, [v2_initial(hello_of(plain_flight(BLOCKED)))], 0.0) == ["blocked by sni-blocklist"]


# ---- gfw-2025 -------------------------------------------------------------------------------------


def test_gfw_blocks_residually_when_the_source_port_is_above_the_destination_port() -> None:
    c = gfw()
    assert send(c, plain_flight(BLOCKED), 0.0, sport=40000) == [None]  # the trigger gets through
    assert blocked(c, 0.05, sport=40000)
    (rec,) = c.pop_records()
    assert rec["policy"] == "gfw-2025" and rec["action"] == "block" and rec["residual_s"] == 180


def test_gfw_does_not_inspect_a_source_port_below_the_destination_port() -> None:
    c = gfw()
    assert send(c, plain_flight(BLOCKED), 0.0, sport=400, dport=443) == [None]
    assert not blocked(c, 0.05, sport=400)
    assert "not inspected" in c.pop_records()[0]["reason"]
    c = gfw()
    send(c, plain_flight(BLOCKED), 0.0, sport=443, dport=443)  # equal ports are inspected
    assert blocked(c, 0.05, sport=443)


def test_gfw_judges_only_the_first_packet_of_a_flow() -> None:
    c = gfw()
    assert c.to_server(ip(b"junk" * 10), 0.0) is None
    send(c, plain_flight(BLOCKED), 1.0)
    assert not blocked(c, 1.1)


def test_gfw_flow_tracking_expires_after_60_idle_seconds() -> None:
    c = gfw()
    c.to_server(ip(b"junk" * 10), 0.0)
    send(c, plain_flight(BLOCKED), 59.9)  # still the exempt flow (idle 59.9 s)
    assert not blocked(c, 60.0)
    c2 = gfw()
    c2.to_server(ip(b"junk" * 10), 0.0)
    send(c2, plain_flight(BLOCKED), 60.0)  # idle for 60 s: a new flow, judged again
    assert blocked(c2, 60.1)


def test_gfw_residual_block_covers_the_three_tuple_for_180_seconds() -> None:
    c = gfw()
    send(c, plain_flight(BLOCKED), 0.0, sport=40000)
    # another client port, an allowed name: still the blocked 3-tuple
    assert send(c, plain_flight(ALLOWED, seed=2), 179.0, sport=40001) != [None]
    assert c.to_client(ip(b"\x40" * 30, 40001, to_client=True), 179.5) is not None
    # another destination port is not the same 3-tuple
    assert send(c, plain_flight(ALLOWED, seed=3), 100.0, sport=40002, dport=8443) == [None]
    # after 180 s the 3-tuple is free again
    assert send(c, plain_flight(ALLOWED, seed=4), 180.5, sport=40003) == [None]
    assert not blocked(c, 180.6, sport=40003)


def test_gfw_does_not_parse_v2_but_a_thorough_censor_does() -> None:
    v2 = [v2_initial(hello_of(plain_flight(BLOCKED)))]
    c = gfw()
    send(c, v2, 0.0)
    assert not blocked(c, 0.1)
    assert "only v1" in c.pop_records()[0]["reason"]


def test_gfw_misses_a_hello_split_across_packets_or_crypto_frames() -> None:
    hello = hello_of(plain_flight(BLOCKED))
    for flight in (split_packets(hello, 50), [split_frames(hello, 50)]):
        c = gfw()
        send(c, flight, 0.0)
        assert not blocked(c, 0.1)
        assert "no SNI" in c.pop_records()[0]["reason"]
    c = gfw()
    send(c, [split_frames(hello, 400)], 0.0)  # the SNI is inside the first frame: found
    assert blocked(c, 0.1)


def test_gfw_parser_quirks_of_table_3() -> None:
    hello = hello_of(plain_flight(BLOCKED))
    # row 8: the CRYPTO frame behind PING and PADDING frames is not found
    c = gfw()
    send(c, [raw_frames_initial(b"\x01" + bytes(20) + crypto_frame(0, hello))], 0.0)
    assert not blocked(c, 0.1)
    # row 6: a CRYPTO frame of Length 0 followed by the hello is still read
    c = gfw()
    send(c, [raw_frames_initial(b"\x06\x00\x00" + hello)], 0.0)
    assert blocked(c, 0.1)
    # with the quirks switched off the parser reassembles and finds the PING-fronted hello
    c = gfw(quirks=[])
    send(c, [raw_frames_initial(b"\x01" + bytes(20) + crypto_frame(0, hello))], 0.0)
    assert blocked(c, 0.1)


# ---- fingerprint ----------------------------------------------------------------------------------


def test_fingerprint_blocks_reality_with_the_session_id_carrier() -> None:
    c = fingerprint()
    verdicts = send(c, reality_flight("chrome", "session_id"), 0.0)
    assert verdicts[-1] == "blocked by fingerprint"
    rec = next(r for r in c.pop_records() if r["action"] == "block")
    assert "session_id_len" in rec["reason"] and rec["ja4"].startswith("q13d")


def test_fingerprint_passes_chrome_shaped_reality_with_the_ech_carrier() -> None:
    c = fingerprint()
    assert send(c, reality_flight("chrome"), 0.0) == [None, None]
    assert not blocked(c, 0.1)
    assert c.pop_records()[0]["action"] == "pass"


def test_fingerprint_rule_on_a_ja4_string() -> None:
    from quicreality.scenarios.censor.initial import HelloReader, open_client_datagram

    flight = plain_flight(ALLOWED)
    r = HelloReader()
    r.feed(open_client_datagram(flight[0]))
    hello = r.hello()
    assert hello is not None
    c = build_censor({"fingerprint": {"rule": [{"feature": "ja4", "equals": hello.ja4}]}})
    assert send(c, flight, 0.0) == ["blocked by fingerprint"]


def test_policies_combine_in_order_and_every_decision_is_logged() -> None:
    c = build_censor({"policies": ["fingerprint", "sni-blocklist"],
                      "sni-blocklist": {"domains": [BLOCKED]},
                      "fingerprint": {"rule": [{"feature": "session_id_len", "equals": 32}]}})
    assert send(c, plain_flight(BLOCKED), 0.0) == ["blocked by sni-blocklist"]
    recs = c.pop_records()
    assert [(r["policy"], r["action"]) for r in recs] == [("fingerprint", "pass"),
                                                          ("sni-blocklist", "block")]
    json.dumps(recs)


def test_rearm_reset_forgets_blocks() -> None:
    c = gfw()
    send(c, plain_flight(BLOCKED), 0.0)
    assert blocked(c, 0.1)
    c.reset(1.0)
    assert not blocked(c, 1.1)


@pytest.mark.parametrize("verdict, is_blocked", [("distinct", True), ("target-like", False)])
def test_active_probe_verdict_decides_the_flow(verdict: str, is_blocked: bool) -> None:
    c = build_censor({"active-probe": {"ports": [443]}})
    assert send(c, plain_flight(ALLOWED), 0.0) == [None]
    req = c.next_probe()
    assert req is not None and req.sni == ALLOWED and len(req.datagrams) == 1
    assert c.next_probe() is None
    assert not blocked(c, 0.1)
    c.probe_result(req, verdict, "crafted", 0.5)
    assert blocked(c, 0.6) is is_blocked
    assert c.pop_records()[-1]["probe_verdict"] == verdict


def test_feature_alias_sni_names_the_server_name() -> None:
    # censor-gfw.toml's active-probe rule says feature = "sni"; before the alias it matched nothing
    from quicreality.scenarios.censor.policies import FeatureRule

    rule = FeatureRule(name="probe-sni", feature="sni", ops=(("equals", "www.example.test"),))
    assert rule.matches({"client.tls.server_name": "www.example.test"})
    assert not rule.matches({"client.tls.server_name": "other.test"})
