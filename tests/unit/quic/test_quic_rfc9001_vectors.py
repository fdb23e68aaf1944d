"""RFC 9001 Appendix A packet protection vectors (tests/vectors/rfc9001, see its README for provenance)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from quicreality.quic.crypto import (
    CryptoContext,
    CryptoPair,
    derive_initial_secrets,
    derive_packet_protection_keys,
    next_generation_secret,
)
from quicreality.quic.packet import (
    PACKET_TYPE_INITIAL,
    PACKET_TYPE_ONE_RTT,
    PACKET_TYPE_RETRY,
    QUIC_VERSION_1,
    encode_quic_retry,
    get_retry_integrity_tag,
    pull_quic_header,
    push_long_header,
    retry_integrity_tag_valid,
)
from quicreality.tls.hkdf import CipherSuite, hkdf_extract
from quicreality.wire.buffer import Buffer

VECTOR_DIR = Path(__file__).resolve().parents[2] / "vectors" / "rfc9001"
V: dict[str, Any] = json.loads((VECTOR_DIR / "vectors.json").read_text())
DCID = bytes.fromhex(V["dcid"])


def h(value: str) -> bytes:
    return bytes.fromhex(value)


def test_vectors_json_matches_the_verbatim_rfc_text() -> None:
    text = re.sub(r"\s", "", (VECTOR_DIR / "rfc9001-appendix-a.md").read_text())

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, str):
            assert node in text

    walk(V)


# --- A.1 keys -----------------------------------------------------------------------------------------------


def test_a1_initial_secret() -> None:
    salt = h("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
    assert hkdf_extract("sha256", salt, DCID).hex() == V["initial_secret"]


def test_a1_client_and_server_initial_secrets_and_keys() -> None:
    client, server = derive_initial_secrets(DCID, QUIC_VERSION_1)
    assert client.hex() == V["client"]["client_initial_secret"]
    assert server.hex() == V["server"]["server_initial_secret"]
    for secret, expected in ((client, V["client"]), (server, V["server"])):
        key, iv, hp = derive_packet_protection_keys(
            CipherSuite.AES_128_GCM_SHA256, secret, QUIC_VERSION_1
        )
        assert (key.hex(), iv.hex(), hp.hex()) == (expected["key"], expected["iv"], expected["hp"])


# --- A.2 client Initial -------------------------------------------------------------------------------------


def client_initial_plaintext() -> tuple[bytes, bytes]:
    ci = V["client_initial"]
    payload = h(ci["crypto_frame"])
    payload += bytes(ci["payload_length"] - len(payload))  # PADDING frames
    buf = Buffer(capacity=64)
    push_long_header(
        buf,
        version=QUIC_VERSION_1,
        packet_type=PACKET_TYPE_INITIAL,
        destination_cid=DCID,
        source_cid=b"",
        packet_number=ci["packet_number"],
        packet_number_length=4,
        length=4 + len(payload) + 16,
    )
    return buf.data, payload


def test_a2_client_initial_header_is_built_as_in_the_rfc() -> None:
    header, _ = client_initial_plaintext()
    assert header.hex() == V["client_initial"]["unprotected_header"]


def test_a2_client_initial_protected_packet_matches_byte_for_byte() -> None:
    header, payload = client_initial_plaintext()
    pair = CryptoPair()
    pair.setup_initial(DCID, is_client=True, version=QUIC_VERSION_1)
    packet = pair.encrypt_packet(header, payload, V["client_initial"]["packet_number"])
    assert len(packet) == 1200
    assert packet[:22].hex() == V["client_initial"]["protected_header"]
    assert packet.hex() == V["client_initial"]["protected_packet"]


def test_a2_server_decrypts_the_client_initial() -> None:
    packet = h(V["client_initial"]["protected_packet"])
    header = pull_quic_header(Buffer(data=packet), host_cid_length=8)
    assert header.packet_type == PACKET_TYPE_INITIAL
    assert header.destination_cid == DCID and header.source_cid == b"" and header.token == b""
    assert (header.pn_offset, header.packet_end) == (18, 1200)
    server = CryptoPair()
    server.setup_initial(DCID, is_client=False, version=QUIC_VERSION_1)
    plain_header, payload, pn = server.decrypt_packet(packet, header.pn_offset, 0)
    expected_header, expected_payload = client_initial_plaintext()
    assert (plain_header, payload, pn) == (expected_header, expected_payload, 2)


# --- A.3 server Initial -------------------------------------------------------------------------------------


def test_a3_server_initial_protected_packet_matches_byte_for_byte() -> None:
    si = V["server_initial"]
    server = CryptoPair()
    server.setup_initial(DCID, is_client=False, version=QUIC_VERSION_1)
    packet = server.encrypt_packet(
        h(si["unprotected_header"]), h(si["payload"]), si["packet_number"]
    )
    assert packet[:20].hex() == si["protected_header"]
    assert packet.hex() == si["protected_packet"]


def test_a3_client_decrypts_the_server_initial() -> None:
    si = V["server_initial"]
    packet = h(si["protected_packet"])
    header = pull_quic_header(Buffer(data=packet), host_cid_length=0)
    assert header.source_cid == h("f067a5502a4262b5") and header.packet_end == len(packet)
    client = CryptoPair()
    client.setup_initial(DCID, is_client=True, version=QUIC_VERSION_1)
    plain_header, payload, pn = client.decrypt_packet(packet, header.pn_offset, 0)
    assert (plain_header.hex(), payload.hex(), pn) == (si["unprotected_header"], si["payload"], 1)


# --- A.4 Retry ----------------------------------------------------------------------------------------------


def test_a4_retry_encodes_byte_for_byte() -> None:
    packet = h(V["retry"]["packet"])
    retry = encode_quic_retry(
        version=QUIC_VERSION_1,
        source_cid=h("f067a5502a4262b5"),
        destination_cid=b"",
        original_destination_cid=DCID,
        retry_token=b"token",
        unused=packet[0] & 0x0F,
    )
    assert retry == packet


def test_a4_retry_parses_and_its_tag_verifies() -> None:
    packet = h(V["retry"]["packet"])
    header = pull_quic_header(Buffer(data=packet), host_cid_length=8)
    assert header.packet_type == PACKET_TYPE_RETRY
    assert header.token == b"token" and header.source_cid == h("f067a5502a4262b5")
    assert header.integrity_tag == get_retry_integrity_tag(packet[:-16], DCID, QUIC_VERSION_1)
    assert retry_integrity_tag_valid(header, packet, DCID)
    assert not retry_integrity_tag_valid(header, packet, b"\x00" + DCID[1:])


# --- A.5 ChaCha20-Poly1305 short header ---------------------------------------------------------------------


def chacha_context() -> CryptoContext:
    ctx = CryptoContext()
    ctx.setup(
        CipherSuite.CHACHA20_POLY1305_SHA256, h(V["chacha20_short"]["secret"]), QUIC_VERSION_1
    )
    return ctx


def test_a5_chacha20_keys_and_key_update_secret() -> None:
    cc = V["chacha20_short"]
    key, iv, hp = derive_packet_protection_keys(
        CipherSuite.CHACHA20_POLY1305_SHA256, h(cc["secret"]), QUIC_VERSION_1
    )
    assert (key.hex(), iv.hex(), hp.hex()) == (cc["key"], cc["iv"], cc["hp"])
    ku = next_generation_secret(
        CipherSuite.CHACHA20_POLY1305_SHA256, h(cc["secret"]), QUIC_VERSION_1
    )
    assert ku.hex() == cc["ku"]


def test_a5_chacha20_short_header_packet_matches_byte_for_byte() -> None:
    cc = V["chacha20_short"]
    packet = chacha_context().encrypt_packet(
        h(cc["unprotected_header"]), h(cc["payload_plaintext"]), cc["packet_number"]
    )
    assert packet.hex() == cc["protected_packet"]
    assert packet[4:].hex() == cc["payload_ciphertext"]


@pytest.mark.parametrize("expected_pn", [654360564, 654360564 - 1000, 654360564 + 1000])
def test_a5_chacha20_short_header_packet_decrypts(expected_pn: int) -> None:
    cc = V["chacha20_short"]
    packet = h(cc["protected_packet"])
    header = pull_quic_header(Buffer(data=packet), host_cid_length=0)
    assert header.packet_type == PACKET_TYPE_ONE_RTT and header.pn_offset == 1
    plain_header, payload, pn = chacha_context().decrypt_packet(
        packet, header.pn_offset, expected_pn
    )
    assert (plain_header.hex(), payload.hex(), pn) == (
        cc["unprotected_header"],
        "01",
        cc["packet_number"],
    )
