"""Profiles and --compare of the fingerprint tool: pure rules, then the committed captures."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from analysis_paths import REPO

from quicreality.analysis.fingerprint import fingerprint_pcap, load_profile, main
from quicreality.analysis.fingerprint_compare import Profile, Varying, compare, profile

FIXTURES = REPO / "tests" / "data" / "fingerprint"


def test_profile_keeps_constants_and_marks_varying_features() -> None:
    p = profile([{"client.a": 1, "client.tls.extensions": ["x", "y"],
                  "client.tls.extensions_sorted": ["x", "y"]},
                 {"client.a": 1, "client.tls.extensions": ["y", "x"],
                  "client.tls.extensions_sorted": ["x", "y"]}])
    assert p.features["client.a"] == 1
    assert isinstance(p.features["client.tls.extensions"], Varying)
    assert p.features["client.order_permuted.extensions"] is True
    one = profile([{"client.tls.extensions": ["x"], "client.tls.extensions_sorted": ["x"]}])
    assert one.features["client.order_permuted.extensions"] is None  # unknown from one flow
    same = profile([{"client.tls.extensions": ["x", "y"],
                     "client.tls.extensions_sorted": ["x", "y"]}] * 2)
    assert same.features["client.order_permuted.extensions"] is False


def test_compare_ignores_random_fields_unless_strict() -> None:
    a = Profile("a", 2, {"client.flight.crypto_frames": Varying(([8, 8], [9, 6])),
                         "client.tls.ech.payload_len": Varying((144, 208)),
                         "client.tls.session_id_len": 0,
                         "client.tls.extensions": Varying((["x", "y"], ["y", "x"])),
                         "client.order_permuted.extensions": True,
                         "client.quic.scid_len": Varying((0, 8))})
    b = Profile("b", 1, {"client.flight.crypto_frames": [1],
                         "client.tls.ech.payload_len": 176,
                         "client.tls.session_id_len": 32,
                         "client.tls.extensions": ["x", "y"],
                         "client.order_permuted.extensions": None,
                         "client.quic.scid_len": 8})
    assert [d.feature for d in compare(a, b)] == ["client.tls.session_id_len"]
    strict = {d.feature for d in compare(a, b, ignore_random=False)}
    assert strict == set(a.features)
    # a varying feature matches a constant only if it is one of the values seen
    c = Profile("c", 1, {**b.features, "client.tls.session_id_len": 0, "client.quic.scid_len": 20})
    assert [d.feature for d in compare(a, c)] == ["client.quic.scid_len"]
    assert compare(a, c, prefixes=("server.",)) == []


def test_profile_json_round_trip(tmp_path: Path) -> None:
    p = profile([{"client.x": [1, 2], "client.y": "a"}, {"client.x": [2, 1], "client.y": "a"}],
                label="two")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(p.to_json()))
    back = load_profile(str(path))
    assert back == p and back.features["client.x"].to_json() == {"varies": [[1, 2], [2, 1]]}


@functools.cache
def chromium() -> Profile:
    return load_profile(str(FIXTURES / "chromium-ours.pcap"))


def test_two_chromium_captures_do_not_differ_apart_from_random_fields() -> None:
    other = load_profile(str(FIXTURES / "chromium-ngtcp2.pcap"))
    assert compare(chromium(), other, prefixes=("client.",)) == []
    strict = {d.feature for d in compare(chromium(), other, ignore_random=False,
                                         prefixes=("client.",))}
    assert {"client.tls.extensions", "client.quic.tp_ids", "client.flight.frame_layout",
            "client.tls.ech.payload_len"} <= strict


def test_our_default_reality_hello_matches_chromium() -> None:
    """The REALITY client's default (chrome fingerprint, ech carrier): no client feature differs."""
    assert compare(chromium(), load_profile(str(FIXTURES / "ours-reality.pcap")),
                   prefixes=("client.",)) == []


def test_our_minimal_reality_hello_differs_from_chromium_where_the_issue_says() -> None:
    diffs = {d.feature: (d.a, d.b) for d in compare(
        chromium(), load_profile(str(FIXTURES / "ours-reality-minimal.pcap")),
        prefixes=("client.",))}
    assert diffs["client.tls.session_id_len"] == (0, 32)
    assert diffs["client.quic.scid_len"] == (0, 8)
    assert diffs["client.flight.sizes"] == ([1250, 1250], [1200])
    assert diffs["client.tls.key_share_groups"] == (["0x11ec", "0x001d"], ["0x001d"])
    assert diffs["client.order_permuted.extensions"] == (True, False)
    assert diffs["client.tls.ech"] == (True, False) and "client.tls.ech.kdf" not in diffs
    assert "client.tls.cipher_suites" not in diffs  # the same three suites
    assert "client.tls.alpn" not in diffs


def test_single_flow_operand_and_server_side() -> None:
    first = load_profile(f"{FIXTURES / 'chromium-ngtcp2.pcap'}#1")
    assert first.flows == 1
    with pytest.raises(ValueError, match="no flow 9"):
        load_profile(f"{FIXTURES / 'chromium-ngtcp2.pcap'}#9")
    server = {d.feature: (d.a, d.b) for d in compare(
        first, load_profile(str(FIXTURES / "ours-reality.pcap")), prefixes=("server.",))}
    # The listener learned ngtcp2's answer: what an observer sees of the flight is the same.
    assert "server.flight.sizes" not in server and "server.quic.scid_len" not in server
    assert "server.flight.coalescing" not in server and "server.tls.extensions" not in server
    assert server["server.tls.certificate_verify_alg"] == ("0x0403", "0x0807")  # encrypted


def test_cli_exit_status_and_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a, b = str(FIXTURES / "chromium-ours.pcap"), str(FIXTURES / "chromium-ngtcp2.pcap")
    assert main(["--compare", a, b, "--side", "client"]) == 0
    assert "no differing features" in capsys.readouterr().out
    assert main(["--compare", a, str(FIXTURES / "curl-ours.pcap"), "--side", "client",
                 "--json"]) == 1
    diffs = json.loads(capsys.readouterr().out)
    assert {"feature": "client.tls.alpn", "a": ["h3"], "b": ["h3-29", "h3"]} in diffs
    assert main([b, "--json", "--side", "server"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 2 and all(k.startswith("server.") for k in out[0]["features"])
    assert main([a, "--profile", "--json", "--label", "chromium"]) == 0
    prof = json.loads(capsys.readouterr().out)
    assert prof["flows"] == 3 and prof["features"]["client.order_permuted.tp_ids"] is True
    assert main([str(tmp_path / "missing.pcap")]) == 2
    assert capsys.readouterr().err.startswith("error: no capture")
    assert main([a]) == 0
    text = capsys.readouterr().out
    assert text.count("== ") == 3 and "0x11ec(X25519MLKEM768)" in text


def test_fingerprint_of_a_flow_carries_its_endpoints() -> None:
    fp = fingerprint_pcap(FIXTURES / "ours-plain.pcap")[0]
    assert fp.server.endswith(":4433") and fp.client.startswith("127.0.0.1:")
    assert set(fp.side("server.")) < set(fp.features)
