"""Feature extraction of the fingerprint tool on the committed captures (tests/data/fingerprint).

The expected values are what the captures hold (checked by hand with ``tshark -V`` when they were
made, see tests/data/fingerprint/README.md).
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest
from analysis_paths import REPO

from quicreality.analysis.fingerprint import FlowFingerprint, fingerprint_pcap
from quicreality.analysis.fingerprint_features import (
    GREASE,
    codepoint,
    is_grease16,
    is_grease_tp,
    is_grease_version,
    ja4,
)
from quicreality.analysis.fingerprint_tshark import read_trees

FIXTURES = REPO / "tests" / "data" / "fingerprint"
CHROME_EXTENSIONS = sorted(["0x0000", "0x000a", "0x000d", "0x0010", "0x001b", "0x002b", "0x002d",
                            "0x0033", "0x0039", "0x44cd", "0xca34", "0xfe0d"])
CHROME_TP_IDS = ["0x1", "0x3", "0x4", "0x5", "0x6", "0x7", "0x8", "0x9", "0xf", "0x11", "0x20",
                 "0x3128", GREASE]


@functools.cache
def flows(name: str) -> tuple[FlowFingerprint, ...]:
    """The flows of fixture ``name`` (its .keys sibling decrypts the Handshake flight)."""
    return tuple(fingerprint_pcap(FIXTURES / f"{name}.pcap"))


def test_chromium_hello_has_its_measured_features_in_every_connection() -> None:
    fps = flows("chromium-ours")
    assert len(fps) == 3
    for fp in fps:
        f = fp.features
        assert f["client.quic.version"] == "0x00000001"
        assert (f["client.quic.dcid_len"], f["client.quic.scid_len"]) == (8, 0)
        assert f["client.flight.complete"] and f["client.flight.sizes"] == [1250, 1250]
        assert f["client.flight.initial_packets"] == 2
        assert f["client.flight.packet_numbers"] == [1, 2]  # Chromium skips packet number 0
        assert f["client.flight.pn_lengths"] == [1, 2]
        assert len(f["client.flight.gaps_ms"]) == 1
        assert f["client.flight.has_ping"] and f["client.flight.has_padding"]
        assert not f["client.flight.crypto_in_order"]  # chaos protection shuffles CRYPTO
        assert f["client.tls.session_id_len"] == 0
        assert f["client.tls.cipher_suites"] == ["0x1301", "0x1302", "0x1303"]
        assert f["client.tls.extensions_sorted"] == CHROME_EXTENSIONS
        assert f["client.tls.supported_groups"] == ["0x11ec", "0x001d", "0x0017", "0x0018"]
        assert f["client.tls.key_share_groups"] == ["0x11ec", "0x001d"]
        assert f["client.tls.key_share_sizes"] == [1216, 32]
        assert f["client.tls.signature_algorithms"] == [
            "0x0403", "0x0804", "0x0401", "0x0503", "0x0805", "0x0501", "0x0806", "0x0601",
            "0x0201"]
        assert f["client.tls.alpn"] == ["h3"]
        assert f["client.tls.alps"] == {"codepoint": "0x44cd", "protocols": ["h3"]}
        assert f["client.tls.compress_certificate"] == [2]  # brotli
        assert f["client.tls.ech"] and f["client.tls.ech.enc_len"] == 32
        assert f["client.tls.ech.payload_len"] in (144, 176, 208, 240)
        assert f["client.quic.tp_ids_sorted"] == CHROME_TP_IDS
        assert f["client.quic.tp.initial_max_data"] == 15728640
        assert f["client.quic.tp.max_udp_payload_size"] == 1472
        assert f["client.quic.tp.google_connection_options"] == "4f524947"  # "ORIG"
        assert f["client.quic.tp.version_information.others_sorted"] == ["0x00000001", GREASE]
        assert f["client.tls.handshake_len_stable"] == 1668
        assert f["client.ja4"] == "q13d0312h3_55b375c5d22e_178839b6cec1"


def test_chromium_permutes_extension_and_transport_parameter_order() -> None:
    fps = flows("chromium-ours")
    assert len({tuple(fp.features["client.tls.extensions"]) for fp in fps}) == 3
    assert len({tuple(fp.features["client.quic.tp_ids"]) for fp in fps}) == 3


def test_grease_values_are_normalised_in_ids_and_versions() -> None:
    raw = read_trees(FIXTURES / "chromium-ours.pcap",
                     [d for fp in flows("chromium-ours") for d in _hello_frames(fp)])
    tp_types = {int(t) for layers in raw.values()
                for t in layers.find("tls.quic.parameter.type")}
    grease_ids = {t for t in tp_types if is_grease_tp(t)}
    assert len(grease_ids) == 3  # a fresh GREASE ID per connection ...
    for fp in flows("chromium-ours"):  # ... and one "GREASE" in every feature list
        assert fp.features["client.quic.tp_ids"].count(GREASE) == 1
        assert all(not str(t).startswith("0x1985") for t in fp.features["client.quic.tp_ids"])


def _hello_frames(fp: FlowFingerprint) -> list[int]:
    from quicreality.analysis.fingerprint_tshark import first_flights, read_datagrams, split_flows

    flow = split_flows(read_datagrams(fp.pcap))[fp.index - 1]
    return [d.number for d in first_flights(flow).client]


def test_grease_predicates_follow_the_rfcs() -> None:
    assert all(is_grease16(v) for v in (0x0A0A, 0x1A1A, 0xFAFA))
    assert not any(is_grease16(v) for v in (0x0A1A, 0x1301, 0x11EC, 0xFE0D))
    assert codepoint(0x2A2A) == GREASE and codepoint("0x11ec") == "0x11ec"
    assert is_grease_tp(27) and is_grease_tp(27 + 31 * 1000) and is_grease_tp(0x198524370791B57C)
    assert not any(is_grease_tp(v) for v in (0, 15, 0x20, 0x3128, 0x2AB2))
    assert is_grease_version(0xAA1A2A5A) and is_grease_version(0x0A0A0A0A)
    assert not is_grease_version(0x00000001) and not is_grease_version(0x6B3343CF)


def test_ja4_matches_foxio_published_chrome_fingerprint() -> None:
    # Chrome 143 over TCP as fingerprinted by browserleaks.com (ja4 "t13d1516h2_8daaf6152771_
    # d8a2da3f94cd", its ja4_ro giving the original order): FoxIO's recipe in JA4.md
    f = {
        "client.tls.supported_versions": [GREASE, "0x0304", "0x0303"],
        "client.tls.server_name": "tls.browserleaks.com",
        "client.tls.cipher_suites": [GREASE] + [f"0x{c}" for c in (
            ["1301", "1302", "1303", "c02b", "c02f", "c02c", "c030", "cca9", "cca8", "c013", "c014", "009c",
             "009d", "002f", "0035"])],
        "client.tls.extensions": [GREASE] + [f"0x{e}" for e in (
            ["002d", "0033", "0010", "fe0d", "0017", "44cd", "0000", "000b", "000a", "002b", "ff01",
             "0023", "0012", "0005", "000d", "001b"])] + [GREASE],
        "client.tls.alpn": ["h2", "http/1.1"],
        "client.tls.signature_algorithms": [f"0x{s}" for s in
                                            ["0403", "0804", "0401", "0503", "0805", "0501", "0806", "0601"]],
    }
    a, raw = ja4(f, protocol="t")
    assert a == "t13d1516h2_8daaf6152771_d8a2da3f94cd"
    assert raw.startswith("t13d1516h2_002f,0035,009c,")
    assert ja4({**f, "client.tls.server_name": None, "client.tls.alpn": []})[0].startswith(
        "q13i151600_")


def test_other_clients_have_their_own_initials() -> None:
    curl = flows("curl-ours")[0].features
    assert (curl["client.quic.dcid_len"], curl["client.quic.scid_len"]) == (20, 20)
    assert curl["client.tls.cipher_suites"][-1] == "0x1304"
    assert curl["client.tls.alpn"] == ["h3-29", "h3"] and curl["client.flight.sizes"] == [1200]
    qg = flows("quicgo-ours")[0].features
    assert qg["client.flight.sizes"] == [1252] and qg["client.quic.scid_len"] == 0
    assert qg["client.quic.tp_ids"][0] == GREASE  # quic-go also sends a GREASE parameter
    for name in ("ours-plain", "ours-reality-minimal"):
        ours = flows(name)[0].features
        assert (ours["client.quic.dcid_len"], ours["client.quic.scid_len"]) == (8, 8)
        assert ours["client.flight.sizes"] == [1200] and ours["client.flight.crypto_in_order"]
        assert ours["client.tls.key_share_groups"] == ["0x001d"]
        assert ours["client.flight.packet_numbers"] == [0] and ours["client.flight.pn_lengths"] == [1]
    assert flows("ours-plain")[0].features["client.tls.session_id_len"] == 0
    assert flows("ours-reality-minimal")[0].features["client.tls.session_id_len"] == 32
    chrome = flows("ours-reality")[0].features  # the default: chrome hello, ech carrier
    assert (chrome["client.quic.dcid_len"], chrome["client.quic.scid_len"]) == (8, 0)
    assert chrome["client.flight.sizes"] == [1250, 1250]
    assert chrome["client.tls.session_id_len"] == 0


def test_server_first_flights_sizes_and_coalescing() -> None:
    for fp in flows("chromium-ngtcp2"):
        f = fp.features
        assert f["server.flight.bounded"]
        assert f["server.flight.sizes"] == [52, 1200]
        assert f["server.flight.coalescing"] == ["initial", "initial+handshake+1rtt"]
        assert f["server.quic.scid_len"] == 18
        assert f["server.tls.cipher_suite"] == "0x1301"
        assert f["server.tls.extensions"] == ["0x0033", "0x002b"]
        assert f["server.tls.key_share_group"] == "0x001d"
        assert f["server.tls.encrypted_extensions"] == ["0x0039", "0x0010"]
    for fp in flows("ours-reality"):  # shaped like ngtcp2's answer (learned), ngtcp2's ID length
        f = fp.features
        assert f["server.flight.sizes"] == [52, 1200] and f["server.quic.scid_len"] == 18
        assert f["server.tls.extensions"] == ["0x0033", "0x002b"]
        assert f["server.tls.certificate_verify_alg"] == "0x0807"  # REALITY's Ed25519 cert
    for fp in flows("ours-reality-minimal"):
        f = fp.features
        assert f["server.tls.session_id_len"] == 32  # echoed legacy_session_id


def test_without_keys_only_the_initial_space_is_read(tmp_path: Path) -> None:
    bare = tmp_path / "bare.pcap"
    shutil.copy(FIXTURES / "chromium-ngtcp2.pcap", bare)  # no .keys sibling
    f = fingerprint_pcap(bare)[0].features
    assert f["server.tls.cipher_suite"] == "0x1301"  # ServerHello is in an Initial
    assert not f["server.tls.decrypted"] and "server.tls.encrypted_extensions" not in f
    assert f["client.tls.extensions_sorted"] == CHROME_EXTENSIONS
    with_keys = fingerprint_pcap(bare, keylog=FIXTURES / "chromium-ngtcp2.keys")[0].features
    assert with_keys["server.tls.decrypted"]


def test_missing_capture_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no capture"):
        fingerprint_pcap(tmp_path / "nope.pcap")
