"""QIR's rebinding/migration path check on tshark rows (quicreality.scenarios.pathcheck)."""

from __future__ import annotations

import json

from quicreality.scenarios.pathcheck import path_verdict, qlog_sent_challenges

S = "10.99.2.2"


def row(src: str, sport: int, dst: str, dport: int, frames: str = "6", challenge: str = "",
        response: str = "") -> dict[str, str]:
    return {"ip.src": src, "ip.dst": dst, "udp.srcport": str(sport), "udp.dstport": str(dport),
            "quic.frame_type": frames, "quic.path_challenge.data": challenge,
            "quic.path_response.data": response}


def rebinding(challenge_first: bool = True, answered: bool = True) -> list[dict[str, str]]:
    return [
        row(S, 443, "10.99.1.2", 5000),
        row("10.99.1.2", 5000, S, 443),
        row("10.99.1.2", 6000, S, 443),  # the NAT moved the client
        row(S, 443, "10.99.1.2", 6000, "2,26" if challenge_first else "2",
            "aa" if challenge_first else ""),
        row("10.99.1.2", 6000, S, 443, "27", response="aa" if answered else ""),
        row(S, 443, "10.99.1.2", 5000),  # back on a path used before: no challenge needed
    ]


def test_a_clean_rebinding_passes() -> None:
    v = path_verdict(rebinding(), [(S, 443)])
    assert v.ok, v
    assert (v.challenges, v.responses, len(v.paths)) == (1, 1, 2)


def test_missing_challenge_or_response_fails() -> None:
    assert "no PATH_CHALLENGE" in path_verdict(rebinding(challenge_first=False), [(S, 443)]).failures[0]
    assert "without PATH_RESPONSE" in path_verdict(rebinding(answered=False), [(S, 443)]).failures[0]


def test_one_path_or_one_address_fails() -> None:
    assert not path_verdict(rebinding()[:2], [(S, 443)]).ok
    v = path_verdict(rebinding(), [(S, 443)], need_new_address=True)
    assert any("client address" in f for f in v.failures)


def test_opaque_packets_need_logged_challenges_answered_on_the_wire() -> None:
    rows = rebinding()
    rows[3] = row(S, 443, "10.99.1.2", 6000, frames="")  # tshark could not decrypt it
    assert not path_verdict(rows, [(S, 443)]).ok  # nothing logged to stand in for it
    v = path_verdict(rows, [(S, 443)], logged_challenges=["aa"])
    assert v.ok and v.opaque == 1 and v.notes
    assert not path_verdict(rows, [(S, 443)], logged_challenges=["bb"]).ok  # logged but never echoed


def test_qlog_sent_challenges_reads_json_seq() -> None:
    events = [{"name": "transport:packet_sent", "data": {"frames": [
        {"frame_type": "ack"}, {"frame_type": "path_challenge", "data": "0102"}]}},
        {"name": "transport:packet_received", "data": {"frames": [
            {"frame_type": "path_challenge", "data": "ffff"}]}}]
    text = "".join("\x1e" + json.dumps(e) + "\n" for e in events)
    assert qlog_sent_challenges([text]) == ["0102"]
