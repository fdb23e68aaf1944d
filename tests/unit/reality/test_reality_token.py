"""Token sealing and opening, anchored on published primitive vectors (spec §9.1-§9.3).

Every REALITY-level value is computed inside the test from the RFC inputs; only the primitives'
outputs come from the documents (tests/vectors/reality/primitives.json).
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from reality_helpers import (
    CLIENT_EPHEMERAL,
    RANDOM,
    SERVER_PRIVATE,
    SERVER_PUBLIC,
    SHARED,
    SHORT_ID,
    VECTORS,
    VERSION,
    WALL,
    plain_client_hello,
    sealed_client_hello,
)

from quicreality.reality import token as t
from quicreality.reality.keys import x25519_public_key


def independent_hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 §2.2-§2.3 written out with hmac, to check the library call independently."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def test_x25519_matches_rfc7748() -> None:
    v = VECTORS["rfc7748_6_1"]
    assert x25519_public_key(SERVER_PRIVATE) == bytes.fromhex(v["alice_public"])
    bob = x25519.X25519PrivateKey.from_private_bytes(CLIENT_EPHEMERAL)
    assert bob.exchange(x25519.X25519PublicKey.from_public_bytes(SERVER_PUBLIC)) == SHARED


def test_independent_hkdf_matches_rfc5869() -> None:
    v = VECTORS["rfc5869_a_1"]
    okm = independent_hkdf_sha256(bytes.fromhex(v["ikm"]), bytes.fromhex(v["salt"]),
                                  bytes.fromhex(v["info"]), v["length"])
    assert okm == bytes.fromhex(v["okm"])
    prk = hmac.new(bytes.fromhex(v["salt"]), bytes.fromhex(v["ikm"]), hashlib.sha256).digest()
    assert prk == bytes.fromhex(v["prk"])


def test_aes_256_gcm_matches_published_vector() -> None:
    v = VECTORS["gcm_test_case_14"]
    out = AESGCM(bytes.fromhex(v["key"])).encrypt(
        bytes.fromhex(v["iv"]), bytes.fromhex(v["plaintext"]), None)
    assert out == bytes.fromhex(v["ciphertext"] + v["tag"])


def test_hmac_sha512_matches_rfc4231() -> None:
    v = VECTORS["rfc4231_4_3"]
    mac = hmac.new(bytes.fromhex(v["key"]), bytes.fromhex(v["data"]), hashlib.sha512).digest()
    assert mac == bytes.fromhex(v["hmac_sha512"])


def test_auth_key_is_hkdf_of_the_shared_secret_with_random_prefix_as_salt() -> None:
    expected = independent_hkdf_sha256(SHARED, RANDOM[:20], b"REALITY", 32)
    assert t.derive_auth_key(SHARED, RANDOM) == expected


def test_plaintext_layout() -> None:
    p = t.TokenPlaintext(version=(26, 3, 27), unix_time=0x01020304, short_id=SHORT_ID)
    raw = t.push_plaintext(p)
    assert raw == bytes([26, 3, 27, 0, 1, 2, 3, 4]) + SHORT_ID
    assert t.pull_plaintext(raw) == p
    # Seconds are truncated to 32 bits (Go's uint32(time.Now().Unix())).
    assert t.push_plaintext(t.TokenPlaintext((1, 2, 3), (1 << 32) + 5, SHORT_ID))[4:8] == b"\0\0\0\5"


def test_sealed_hello_is_the_hello_with_gcm_of_plaintext_over_zeroed_hello() -> None:
    plain = plain_client_hello()
    sealed, hook = sealed_client_hello()
    k = independent_hkdf_sha256(SHARED, RANDOM[:20], b"REALITY", 32)
    assert hook.auth_key == k
    p = bytes(VERSION) + b"\0" + int(WALL).to_bytes(4, "big") + SHORT_ID
    aad = bytes(plain[:39]) + bytes(32) + bytes(plain[71:])
    s = AESGCM(k).encrypt(RANDOM[20:32], p, aad)
    assert len(s) == 32
    assert sealed == bytes(plain[:39]) + s + bytes(plain[71:])
    assert sealed[38] == 32  # the length byte stays
    assert t.open_client_hello(sealed, k) == t.pull_plaintext(p)


def test_flipping_any_byte_outside_the_token_breaks_the_aead() -> None:
    sealed, hook = sealed_client_hello()
    k = hook.auth_key
    assert k is not None
    failures = 0
    for i in range(len(sealed)):
        if 39 <= i < 71 or i == 38:
            continue  # the token itself; byte 38 is the session_id length (AAD precondition)
        mutated = bytearray(sealed)
        mutated[i] ^= 0x01
        assert t.open_client_hello(bytes(mutated), k) is None, f"byte {i} is not bound"
        failures += 1
    assert failures == len(sealed) - 33


def test_flipping_a_token_byte_breaks_the_aead() -> None:
    sealed, hook = sealed_client_hello()
    for i in (39, 55, 70):
        mutated = bytearray(sealed)
        mutated[i] ^= 0x80
        assert t.open_client_hello(bytes(mutated), hook.auth_key or b"") is None


def test_random_prefix_changes_the_key_and_suffix_changes_the_nonce() -> None:
    base = t.derive_auth_key(SHARED, RANDOM)
    other_salt = bytearray(RANDOM)
    other_salt[0] ^= 1
    assert t.derive_auth_key(SHARED, bytes(other_salt)) != base
    other_nonce = bytearray(RANDOM)
    other_nonce[31] ^= 1
    assert t.derive_auth_key(SHARED, bytes(other_nonce)) == base  # R[20:32] is not in the key
    sealed_a, _ = sealed_client_hello()
    sealed_b, _ = sealed_client_hello(random_=bytes(other_nonce))
    assert sealed_a[39:71] != sealed_b[39:71]  # ... but it is the nonce


def test_aad_requires_a_32_byte_session_id() -> None:
    with pytest.raises(ValueError):
        t.aad_of(plain_client_hello(session_id=b""))
