"""HKDF (RFC 5869) and HKDF-Expand-Label (RFC 8446 §7.1), shared by TLS and QUIC packet protection."""

from __future__ import annotations

import hashlib
import hmac
from enum import IntEnum
from functools import cache, lru_cache


class CipherSuite(IntEnum):
    """TLS 1.3 cipher suites usable with QUIC (RFC 8446 §B.4)."""

    AES_128_GCM_SHA256 = 0x1301
    AES_256_GCM_SHA384 = 0x1302
    CHACHA20_POLY1305_SHA256 = 0x1303


#: hashlib name per suite.
SUITE_HASH: dict[int, str] = {
    CipherSuite.AES_128_GCM_SHA256: "sha256",
    CipherSuite.AES_256_GCM_SHA384: "sha384",
    CipherSuite.CHACHA20_POLY1305_SHA256: "sha256",
}


@cache
def hash_len(hash_name: str) -> int:
    """Digest size of ``hash_name``."""
    return hashlib.new(hash_name).digest_size


def hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract (RFC 5869 §2.2). An empty salt means HashLen zero bytes."""
    if not salt:
        salt = bytes(hash_len(hash_name))
    # hmac.digest is the one-shot (OpenSSL) HMAC: the same bytes as hmac.new(...).digest().
    return hmac.digest(salt, ikm, hash_name)


def hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869 §2.3)."""
    block = hmac.digest(prk, info + b"\x01", hash_name)
    if length <= len(block):  # one block: every TLS 1.3 and QUIC key, IV and secret
        return block[:length]
    out = block
    counter = 2
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes([counter]), hash_name)
        out += block
        counter += 1
    return out[:length]


def hkdf_label(label: bytes, context: bytes, length: int) -> bytes:
    """Serialize an HkdfLabel structure (RFC 8446 §7.1)."""
    if not context:
        return _empty_context_label(label, length)
    full = b"tls13 " + label
    return length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context


@lru_cache(maxsize=256)
def _empty_context_label(label: bytes, length: int) -> bytes:
    """An HkdfLabel with an empty context: a constant per (label, length), so it is built once
    (the labels are the protocol's fixed strings, e.g. RFC 9001 §5.1's "quic key")."""
    full = b"tls13 " + label
    return length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"


def hkdf_expand_label(
    hash_name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label (RFC 8446 §7.1)."""
    return hkdf_expand(hash_name, secret, hkdf_label(label, context, length), length)
