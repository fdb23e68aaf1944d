"""Packet protection round trips, key update (RFC 9001 §6) and failure modes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicreality.quic.crypto import (
    CryptoContext,
    CryptoError,
    CryptoPair,
    KeyUnavailableError,
    derive_initial_secrets,
)
from quicreality.quic.packet import (
    PACKET_TYPE_HANDSHAKE,
    QUIC_VERSION_1,
    get_key_phase,
    pull_quic_header,
    push_long_header,
    push_short_header,
)
from quicreality.tls.hkdf import CipherSuite
from quicreality.wire.buffer import Buffer

SUITES = [
    (CipherSuite.AES_128_GCM_SHA256, 32),
    (CipherSuite.AES_256_GCM_SHA384, 48),
    (CipherSuite.CHACHA20_POLY1305_SHA256, 32),
]
DCID = bytes.fromhex("0102030405060708")


def one_rtt_pairs(
    suite: int = CipherSuite.AES_128_GCM_SHA256, secret_len: int = 32
) -> tuple[CryptoPair, CryptoPair]:
    client_secret, server_secret = b"c" * secret_len, b"s" * secret_len
    client, server = CryptoPair(), CryptoPair()
    client.send.setup(suite, client_secret, QUIC_VERSION_1)
    client.recv.setup(suite, server_secret, QUIC_VERSION_1)
    server.send.setup(suite, server_secret, QUIC_VERSION_1)
    server.recv.setup(suite, client_secret, QUIC_VERSION_1)
    return client, server


def short_header(pn: int, pn_len: int = 2, key_phase: int = 0) -> bytes:
    buf = Buffer(capacity=32)
    push_short_header(
        buf,
        destination_cid=DCID,
        packet_number=pn,
        packet_number_length=pn_len,
        key_phase=key_phase,
    )
    return buf.data


def send(pair: CryptoPair, pn: int, payload: bytes = b"\x01" + bytes(30)) -> bytes:
    return pair.encrypt_packet(short_header(pn, key_phase=pair.key_phase), payload, pn)


def receive(pair: CryptoPair, packet: bytes, expected: int) -> tuple[bytes, bytes, int]:
    return pair.decrypt_packet(packet, 1 + len(DCID), expected)


@pytest.mark.parametrize(("suite", "secret_len"), SUITES)
@given(
    payload=st.binary(min_size=3, max_size=1400),
    pn=st.integers(min_value=0, max_value=(1 << 40)),
    pn_len=st.integers(min_value=1, max_value=4),
)
@settings(max_examples=50)
def test_short_header_round_trip(
    suite: int, secret_len: int, payload: bytes, pn: int, pn_len: int
) -> None:
    client, server = one_rtt_pairs(suite, secret_len)
    header = short_header(pn, pn_len)
    packet = client.encrypt_packet(header, payload, pn)
    assert len(packet) == len(header) + len(payload) + 16
    assert packet[1 : 1 + len(DCID)] == DCID  # the DCID is not protected
    plain_header, plain_payload, decoded = receive(server, packet, max(pn - 1, 0))
    assert (plain_header, plain_payload, decoded) == (header, payload, pn)


@given(
    token=st.binary(max_size=50),
    payload=st.binary(min_size=4, max_size=600),
    pn=st.integers(0, 1 << 30),
)
@settings(max_examples=50)
def test_initial_round_trip_both_directions(token: bytes, payload: bytes, pn: int) -> None:
    client, server = CryptoPair(), CryptoPair()
    client.setup_initial(DCID, is_client=True, version=QUIC_VERSION_1)
    server.setup_initial(DCID, is_client=False, version=QUIC_VERSION_1)
    for sender, receiver in ((client, server), (server, client)):
        buf = Buffer(capacity=200)
        push_long_header(
            buf,
            version=QUIC_VERSION_1,
            packet_type=PACKET_TYPE_HANDSHAKE,
            destination_cid=DCID,
            source_cid=b"",
            packet_number=pn,
            packet_number_length=4,
            length=4 + len(payload) + 16,
        )
        packet = sender.encrypt_packet(buf.data, payload, pn)
        header = pull_quic_header(Buffer(data=packet), 8)
        assert header.packet_end == len(packet)
        assert receiver.decrypt_packet(packet, header.pn_offset, pn)[1:] == (payload, pn)


def test_initial_secrets_depend_on_the_connection_id() -> None:
    assert derive_initial_secrets(b"a", QUIC_VERSION_1) != derive_initial_secrets(
        b"b", QUIC_VERSION_1
    )
    with pytest.raises(KeyUnavailableError):
        derive_initial_secrets(b"a", 0xFF00001D)


def test_tampered_packet_raises_crypto_error_and_is_counted() -> None:
    client, server = one_rtt_pairs()
    packet = bytearray(send(client, 5))
    packet[-1] ^= 1
    with pytest.raises(CryptoError):
        receive(server, bytes(packet), 5)
    assert server.invalid_packets == 1
    assert receive(server, send(client, 6), 6)[2] == 6  # state unharmed


@pytest.mark.parametrize("length", [0, 5, 1 + 8 + 4 + 15])
def test_truncated_packet_raises_crypto_error(length: int) -> None:
    client, server = one_rtt_pairs()
    packet = send(client, 5)
    with pytest.raises(CryptoError):
        receive(server, packet[:length], 5)


def test_payload_too_short_for_sample_is_refused() -> None:
    client, _ = one_rtt_pairs()
    with pytest.raises(ValueError):
        client.encrypt_packet(short_header(1, pn_len=1), b"\x01\x00", 1)
    client.encrypt_packet(short_header(1, pn_len=1), b"\x01\x00\x00", 1)  # 1 + 3 = 4 bytes: fine


def test_teardown_makes_keys_unavailable() -> None:
    client, server = one_rtt_pairs()
    packet = send(client, 1)
    server.teardown()
    assert not server.is_valid()
    with pytest.raises(KeyUnavailableError):
        receive(server, packet, 1)
    with pytest.raises(KeyUnavailableError):
        send(server, 1)
    with pytest.raises(KeyUnavailableError):
        CryptoContext().decrypt_packet(packet, 9, 1)


# --- key update ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("suite", "secret_len"), SUITES)
def test_key_update_round_trip(suite: int, secret_len: int) -> None:
    client, server = one_rtt_pairs(suite, secret_len)
    assert receive(server, send(client, 0), 0)[2] == 0
    assert receive(client, send(server, 0), 0)[2] == 0

    client.update_key()
    assert client.key_phase == 1 and client.generation == 1
    packet = send(client, 1)
    assert receive(server, packet, 1)[2] == 1
    # The server followed: it now sends and receives with phase 1.
    assert server.key_phase == 1 and server.generation == 1 and server.has_previous_keys
    reply = send(server, 1)
    assert receive(client, reply, 1)[2] == 1

    # A second update, initiated by the server this time.
    server.update_key()
    assert receive(client, send(server, 2), 2)[2] == 2
    assert client.key_phase == 0 and client.generation == 2
    assert receive(server, send(client, 2), 2)[2] == 2


def test_encrypt_sets_the_key_phase_bit() -> None:
    client, server = one_rtt_pairs()
    client.update_key()
    packet = client.encrypt_packet(short_header(3, key_phase=0), b"\x01" * 10, 3)
    plain_header, _, _ = receive(server, packet, 3)
    assert get_key_phase(plain_header[0]) == 1


def test_reordered_packet_from_previous_phase_uses_previous_keys() -> None:
    client, server = one_rtt_pairs()
    old = send(client, 10)
    client.update_key()
    new = send(client, 11)
    assert receive(server, new, 10)[2] == 11
    assert server.generation == 1
    assert receive(server, old, 12)[1][0] == 1  # reordered, opened with the previous keys
    assert server.generation == 1
    server.discard_previous_keys()
    assert not server.has_previous_keys
    with pytest.raises(CryptoError):
        receive(server, old, 12)


def test_initiator_receives_peer_packets_still_in_the_old_phase() -> None:
    client, server = one_rtt_pairs()
    client.update_key()
    # The server has not seen the update yet and still sends with phase 0.
    assert receive(client, send(server, 4), 4)[2] == 4
    assert client.generation == 1 and client.key_phase == 1


def test_failed_trial_decryption_does_not_rotate_keys() -> None:
    client, server = one_rtt_pairs()
    receive(server, send(client, 1), 1)
    client.update_key()
    forged = bytearray(send(client, 2))
    forged[-3] ^= 0xFF
    with pytest.raises(CryptoError):
        receive(server, bytes(forged), 2)
    assert server.generation == 0 and server.key_phase == 0
    assert receive(server, send(client, 3), 2)[2] == 3
    assert server.generation == 1


def test_update_key_without_keys_fails() -> None:
    with pytest.raises(KeyUnavailableError):
        CryptoPair().update_key()


@pytest.mark.parametrize(("suite", "secret_len"), SUITES)
def test_reused_header_protection_matches_a_fresh_cipher(suite: int, secret_len: int) -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    from quicreality.quic.crypto import _make_header_protection

    key = bytes(range(16 if suite == CipherSuite.AES_128_GCM_SHA256 else 32))
    mask = _make_header_protection(suite, key)
    for i in range(5):
        sample = bytes([i]) * 16
        if suite == CipherSuite.CHACHA20_POLY1305_SHA256:
            fresh = Cipher(algorithms.ChaCha20(key, sample), mode=None).encryptor().update(bytes(5))
        else:
            fresh = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(sample)
        assert mask(sample)[:5] == fresh[:5]
        assert mask(sample)[:5] == fresh[:5]  # no state carried between packets


def test_initial_key_material_is_the_rfc9001_derivation_and_stays_bounded() -> None:
    """Kept Initial keys (public, RFC 9001 §5.2) equal a fresh derivation; at most 64 are kept."""
    from quicreality.quic import crypto as c

    for i in range(c._INITIAL_KEYS_KEPT + 10):
        cid = i.to_bytes(8, "big")
        client, server = c.initial_key_material(cid, c.QUIC_VERSION_1)
        client_secret, server_secret = c.derive_initial_secrets(cid, c.QUIC_VERSION_1)
        assert client == (client_secret, *c.derive_packet_protection_keys(
            c.INITIAL_CIPHER_SUITE, client_secret, c.QUIC_VERSION_1))
        assert server == (server_secret, *c.derive_packet_protection_keys(
            c.INITIAL_CIPHER_SUITE, server_secret, c.QUIC_VERSION_1))
        assert c._INITIAL_KEYS[(cid, c.QUIC_VERSION_1)] == (client, server)  # kept
    assert len(c._INITIAL_KEYS) <= c._INITIAL_KEYS_KEPT
    # A hit is served from the cache, not derived again (a planted entry comes back). Equality,
    # not identity: compiled with mypyc, each return boxes a fresh fixed-length tuple.
    planted = ((b"s",) * 4, (b"t",) * 4)
    c._INITIAL_KEYS[(b"planted!", c.QUIC_VERSION_1)] = planted
    assert c.initial_key_material(b"planted!", c.QUIC_VERSION_1) == planted
    # v2 keys of the same DCID are other keys (RFC 9369 §3.3.1 salt and labels).
    v1 = c.initial_key_material(bytes(8), c.QUIC_VERSION_1)
    assert c.initial_key_material(bytes(8), c.QUIC_VERSION_2) != v1


@pytest.mark.parametrize("version", [0x00000001, 0x6B3343CF])
def test_client_initial_keys_alone_then_both_directions(version: int) -> None:
    """The gate's client-only keys (RFC 9001 §5.2) equal the client half of a full derivation, and
    the connection created after it gets both halves right from that cache entry."""
    from quicreality.quic import crypto as c

    cid = b"\x83\x94\xc8\xf0\x3e\x51\x57\x08"  # RFC 9001 §A.1
    c._INITIAL_KEYS.clear()
    c._CLIENT_INITIAL_KEYS.clear()
    client_secret, server_secret = c.derive_initial_secrets(cid, version)
    alone = c.client_initial_keys(cid, version)
    assert alone == (client_secret, *c.derive_packet_protection_keys(
        c.INITIAL_CIPHER_SUITE, client_secret, version))
    assert list(c._CLIENT_INITIAL_KEYS.items()) == [((cid, version), alone)]  # cached
    # From here a marked entry stands in for it, to show which calls are served from a cache
    # (equality, not identity: compiled with mypyc, each return boxes a fresh tuple).
    marked = (b"m",) * 4
    c._CLIENT_INITIAL_KEYS[(cid, version)] = marked
    assert c.client_initial_keys(cid, version) == marked
    client, server = c.initial_key_material(cid, version)
    assert client == marked and not c._CLIENT_INITIAL_KEYS  # moved to the full cache
    assert server == (server_secret, *c.derive_packet_protection_keys(
        c.INITIAL_CIPHER_SUITE, server_secret, version))
    assert c.client_initial_keys(cid, version) == marked  # now from the full cache
    c._INITIAL_KEYS.clear()
    if version == 0x00000001:  # RFC 9001 §A.1 client key
        assert alone[1].hex() == "1f369613dd76d5467730efcbe3b1a22d"
    for i in range(c._INITIAL_KEYS_KEPT + 5):
        c.client_initial_keys(i.to_bytes(8, "big"), version)
    assert len(c._CLIENT_INITIAL_KEYS) <= c._INITIAL_KEYS_KEPT
