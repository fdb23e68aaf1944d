"""RFC 9369 Appendix A packet protection vectors for QUIC v2 (tests/vectors/rfc9369, see its
README for provenance): keys, client and server Initial, Retry, ChaCha20 short header."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quicreality.quic.crypto import (
    CryptoContext,
    CryptoError,
    CryptoPair,
    derive_initial_secrets,
    derive_packet_protection_keys,
    next_generation_secret,
)
from quicreality.quic.packet import (
    PACKET_TYPE_HANDSHAKE,
    PACKET_TYPE_INITIAL,
    PACKET_TYPE_RETRY,
    PACKET_TYPE_ZERO_RTT,
    QUIC_VERSION_1,
    QUIC_VERSION_2,
    encode_long_header_first_byte,
    encode_quic_retry,
    pull_quic_header,
    push_long_header,
    retry_integrity_tag_valid,
)
from quicreality.tls.hkdf import CipherSuite, hkdf_extract
from quicreality.wire.buffer import Buffer

VECTOR_DIR = Path(__file__).resolve().parents[2] / "vectors" / "rfc9369"
DCID = bytes.fromhex("8394c8f03e515708")
SERVER_CID = bytes.fromhex("f067a5502a4262b5")


def h(value: str) -> bytes:
    return bytes.fromhex(re.sub(r"\s", "", value))


# A.2: the CRYPTO frame (RFC 9001's ClientHello), padded to a 1162-byte payload, packet number 2.
CLIENT_CRYPTO = h("""
060040f1010000ed0303ebf8fa56f129 39b9584a3896472ec40bb863cfd3e868
04fe3a47f06a2b69484c000004130113 02010000c000000010000e00000b6578
616d706c652e636f6dff01000100000a 00080006001d00170018001000070005
04616c706e0005000501000000000033 00260024001d00209370b2c9caa47fba
baf4559fedba753de171fa71f50f1ce1 5d43e994ec74d748002b000302030400
0d0010000e0403050306030203080408 050806002d00020101001c0002400100
3900320408ffffffffffffffff050480 00ffff07048000ffff08011001048000
75300901100f088394c8f03e51570806 048000ffff""")
CLIENT_PROTECTED = h((VECTOR_DIR / "client_initial_protected.hex").read_text())
# A.3
SERVER_PAYLOAD = h("""
02000000000600405a020000560303ee fce7f7b37ba1d1632e96677825ddf739
88cfc79825df566dc5430b9a045a1200 130100002e00330024001d00209d3c94
0d89690b84d08a60993c144eca684d10 81287c834d5311bcf32bb9da1a002b00
020304""")
SERVER_HEADER = h("d16b3343cf0008f067a5502a4262b50040750001")
SERVER_PROTECTED = h("""
dc6b3343cf0008f067a5502a4262b500 4075d92faaf16f05d8a4398c47089698
baeea26b91eb761d9b89237bbf872630 17915358230035f7fd3945d88965cf17
f9af6e16886c61bfc703106fbaf3cb4c fa52382dd16a393e42757507698075b2
c984c707f0a0812d8cd5a6881eaf21ce da98f4bd23f6fe1a3e2c43edd9ce7ca8
4bed8521e2e140""")
# A.4
RETRY = h("cf6b3343cf0008f067a5502a4262b574 6f6b656ec8646ce8bfe33952d9555436 65dcc7b6")
# A.5
CHACHA_SECRET = h("9ac312a7f877468ebe69422748ad00a1 5443f18203a07d6060f688f30f21632b")


def test_vector_file_is_the_1200_byte_packet_of_a2() -> None:
    assert len(CLIENT_PROTECTED) == 1200 and CLIENT_PROTECTED[:5] == h("d76b3343cf")


# --- A.1 keys ----------------------------------------------------------------------------------


def test_a1_initial_secret_and_keys() -> None:
    salt = h("0dede3def700a6db819381be6e269dcbf9bd2ed9")
    assert hkdf_extract("sha256", salt, DCID) == h(
        "2062e8b3cd8d52092614b8071d0aa1fb 7c2e3ac193f78b280e72d8f5751f6aba")
    client, server = derive_initial_secrets(DCID, QUIC_VERSION_2)
    assert client == h("14ec9d6eb9fd7af83bf5a668bc17a7e2 83766aade7ecd0891f70f9ff7f4bf47b")
    assert server == h("0263db1782731bf4588e7e4d93b74639 07cb8cd8200b5da55a8bd488eafc37c1")
    suite = CipherSuite.AES_128_GCM_SHA256
    assert derive_packet_protection_keys(suite, client, QUIC_VERSION_2) == (
        h("8b1a0bc121284290a29e0971b5cd045d"), h("91f73e2351d8fa91660e909f"),
        h("45b95e15235d6f45a6b19cbcb0294ba9"))
    assert derive_packet_protection_keys(suite, server, QUIC_VERSION_2) == (
        h("82db637861d55e1d011f19ea71d5d2a7"), h("dd13c276499c0249d3310652"),
        h("edf6d05c83121201b436e16877593c3a"))


def test_v2_long_header_type_bits() -> None:
    """RFC 9369 §3.2: Initial 0b01, 0-RTT 0b10, Handshake 0b11, Retry 0b00 (v1: 0, 1, 2, 3)."""
    bits = [encode_long_header_first_byte(t, 1, QUIC_VERSION_2) & 0x30
            for t in (PACKET_TYPE_INITIAL, PACKET_TYPE_ZERO_RTT, PACKET_TYPE_HANDSHAKE)]
    assert bits == [0x10, 0x20, 0x30]
    assert [encode_long_header_first_byte(t, 1, QUIC_VERSION_1) & 0x30
            for t in (PACKET_TYPE_INITIAL, PACKET_TYPE_ZERO_RTT, PACKET_TYPE_HANDSHAKE)] == [
        0x00, 0x10, 0x20]


# --- A.2 client Initial ------------------------------------------------------------------------


def client_plaintext() -> tuple[bytes, bytes]:
    payload = CLIENT_CRYPTO + bytes(1162 - len(CLIENT_CRYPTO))
    buf = Buffer(capacity=64)
    push_long_header(buf, version=QUIC_VERSION_2, packet_type=PACKET_TYPE_INITIAL,
                     destination_cid=DCID, source_cid=b"", packet_number=2,
                     packet_number_length=4, length=4 + len(payload) + 16)
    return buf.data, payload


def test_a2_client_initial_header_and_protected_packet() -> None:
    header, payload = client_plaintext()
    assert header == h("d36b3343cf088394c8f03e5157080000449e00000002")
    pair = CryptoPair()
    pair.setup_initial(DCID, is_client=True, version=QUIC_VERSION_2)
    packet = pair.encrypt_packet(header, payload, 2)
    assert packet[:22] == h("d76b3343cf088394c8f03e5157080000449ea0c95e82")
    assert packet == CLIENT_PROTECTED


def test_a2_server_parses_and_opens_the_client_initial() -> None:
    header = pull_quic_header(Buffer(data=CLIENT_PROTECTED), host_cid_length=8)
    assert (header.version, header.packet_type) == (QUIC_VERSION_2, PACKET_TYPE_INITIAL)
    assert (header.destination_cid, header.pn_offset, header.packet_end) == (DCID, 18, 1200)
    server = CryptoPair()
    server.setup_initial(DCID, is_client=False, version=QUIC_VERSION_2)
    assert server.decrypt_packet(CLIENT_PROTECTED, header.pn_offset, 0) == (
        *client_plaintext(), 2)
    v1_keys = CryptoPair()
    v1_keys.setup_initial(DCID, is_client=False, version=QUIC_VERSION_1)
    with pytest.raises(CryptoError):  # the v1 salt cannot open a v2 packet
        v1_keys.decrypt_packet(CLIENT_PROTECTED, header.pn_offset, 0)


# --- A.3 server Initial ------------------------------------------------------------------------


def test_a3_server_initial_protected_packet_and_parse() -> None:
    pair = CryptoPair()
    pair.setup_initial(DCID, is_client=False, version=QUIC_VERSION_2)
    assert pair.encrypt_packet(SERVER_HEADER, SERVER_PAYLOAD, 1) == SERVER_PROTECTED
    header = pull_quic_header(Buffer(data=SERVER_PROTECTED), host_cid_length=0)
    assert header.packet_type == PACKET_TYPE_INITIAL and header.source_cid == SERVER_CID
    client = CryptoPair()
    client.setup_initial(DCID, is_client=True, version=QUIC_VERSION_2)
    assert client.decrypt_packet(SERVER_PROTECTED, header.pn_offset, 0) == (
        SERVER_HEADER, SERVER_PAYLOAD, 1)


# --- A.4 Retry ---------------------------------------------------------------------------------


def test_a4_retry_encodes_parses_and_verifies() -> None:
    assert encode_quic_retry(version=QUIC_VERSION_2, source_cid=SERVER_CID, destination_cid=b"",
                             original_destination_cid=DCID, retry_token=b"token",
                             unused=RETRY[0] & 0x0F) == RETRY
    header = pull_quic_header(Buffer(data=RETRY), host_cid_length=8)
    assert header.packet_type == PACKET_TYPE_RETRY and header.token == b"token"
    assert retry_integrity_tag_valid(header, RETRY, DCID)
    assert not retry_integrity_tag_valid(header, RETRY, b"\x00" + DCID[1:])


# --- A.5 ChaCha20-Poly1305 short header --------------------------------------------------------


def test_a5_chacha20_keys_key_update_and_packet() -> None:
    suite = CipherSuite.CHACHA20_POLY1305_SHA256
    assert derive_packet_protection_keys(suite, CHACHA_SECRET, QUIC_VERSION_2) == (
        h("3bfcddd72bcf02541d7fa0dd1f5f9eee a817e09a6963a0e6c7df0f9a1bab90f2"),
        h("a6b5bc6ab7dafce30ffff5dd"),
        h("d659760d2ba434a226fd37b35c69e2da 8211d10c4f12538787d65645d5d1b8e2"))
    assert next_generation_secret(suite, CHACHA_SECRET, QUIC_VERSION_2) == h(
        "c69374c49e3d2a9466fa689e49d476db 5d0dfbc87d32ceeaa6343fd0ae4c7d88")
    ctx = CryptoContext()
    ctx.setup(suite, CHACHA_SECRET, QUIC_VERSION_2)
    packet = ctx.encrypt_packet(h("4200bff4"), b"\x01", 654360564)
    assert packet == h("5558b1c60ae7b6b932bc27d786f4bc2bb20f2162ba")
    plain, payload, pn = ctx.decrypt_packet(packet, 1, 654360563)
    assert (plain, payload, pn) == (h("4200bff4"), b"\x01", 654360564)
