"""Key shares for TLS 1.3 (RFC 8446 §4.2.8): X25519, secp256r1, secp384r1 and the post-quantum
hybrid X25519MLKEM768 (draft-ietf-tls-ecdhe-mlkem-05).

X25519MLKEM768 (group 0x11ec), as draft-ietf-tls-ecdhe-mlkem-05 §3-§4 defines it:

* client share = ML-KEM-768 encapsulation key (1184 bytes) || X25519 public key (32 bytes);
* server share = ML-KEM-768 ciphertext (1088 bytes) || X25519 public key (32 bytes);
* shared secret = ML-KEM-768 shared secret (32) || X25519 shared secret (32), used as the
  (EC)DHE input of the key schedule (RFC 8446 §7.1).

The ML-KEM part comes first in all three, unlike the NIST-curve hybrids. A share of the wrong
length, an encapsulation key failing FIPS 203 §7.2's modulus check, or an all-zero X25519 result is
``illegal_parameter`` (draft §4).

Private keys are derived from ``rng`` bytes so that a seeded rng gives reproducible handshakes:
the ML-KEM key from a 64-byte seed d||z (FIPS 203 §7.1 ML-KEM.KeyGen_internal), the X25519 key from
32 bytes. The one exception is the server's ML-KEM *encapsulation*: ``cryptography`` draws its
32-byte message m from the operating system and has no way to pass it in, so a server's hybrid
share is not reproducible from ``rng``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519

from .alerts import AlertDescription, TlsAlert
from .messages import Group

_log = logging.getLogger("quicreality.tls")

#: ML-KEM-768 sizes (FIPS 203 §8, Table 3).
MLKEM768_ENCAPSULATION_KEY_SIZE = 1184
MLKEM768_CIPHERTEXT_SIZE = 1088
MLKEM768_SEED_SIZE = 64
X25519_SIZE = 32
#: X25519MLKEM768 share sizes (draft-ietf-tls-ecdhe-mlkem-05 §4).
X25519MLKEM768_CLIENT_SHARE_SIZE = MLKEM768_ENCAPSULATION_KEY_SIZE + X25519_SIZE
X25519MLKEM768_SERVER_SHARE_SIZE = MLKEM768_CIPHERTEXT_SIZE + X25519_SIZE


@dataclass(frozen=True, slots=True)
class HybridPrivateKey:
    """The client's X25519MLKEM768 private state: an ML-KEM-768 key and a separate X25519 key."""

    mlkem: mlkem.MLKEM768PrivateKey
    x25519: x25519.X25519PrivateKey


KeySharePrivateKey = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey | HybridPrivateKey

#: Curve and group order n for the NIST groups (SEC 2 §2.4.2, §2.5.1).
_EC_GROUPS: dict[int, tuple[ec.EllipticCurve, int]] = {
    Group.SECP256R1: (
        ec.SECP256R1(),
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    ),
    Group.SECP384R1: (
        ec.SECP384R1(),
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
    ),
}
#: Groups we can use for key exchange.
SUPPORTED_GROUPS: tuple[int, ...] = (
    Group.X25519MLKEM768, Group.X25519, Group.SECP256R1, Group.SECP384R1,
)


def _illegal(reason: str) -> TlsAlert:
    """illegal_parameter with a fixed phrase: ``reason`` (possibly library text) stays local."""
    _log.debug("invalid key share: %s", reason)
    return TlsAlert(AlertDescription.illegal_parameter, "invalid key share")


def generate_private_key(group: int, rng: Callable[[int], bytes]) -> KeySharePrivateKey:
    """A fresh private key for ``group`` built from ``rng`` bytes."""
    if group == Group.X25519:
        return x25519.X25519PrivateKey.from_private_bytes(rng(32))
    if group == Group.X25519MLKEM768:
        return HybridPrivateKey(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(rng(MLKEM768_SEED_SIZE)),
            x25519.X25519PrivateKey.from_private_bytes(rng(32)),
        )
    if group in _EC_GROUPS:
        curve, order = _EC_GROUPS[group]
        size = (order.bit_length() + 7) // 8
        # 8 extra bytes make the modulo bias negligible (FIPS 186-5 A.2.1 style).
        scalar = int.from_bytes(rng(size + 8), "big") % (order - 1) + 1
        return ec.derive_private_key(scalar, curve)
    raise ValueError(f"unsupported group {group:#06x}")


def _x25519_public(key: x25519.X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_bytes(key: KeySharePrivateKey) -> bytes:
    """The client's key_exchange: raw X25519, an uncompressed X9.62 point (RFC 8446 §4.2.8.2), or
    the ML-KEM-768 encapsulation key followed by the X25519 key (draft-ietf-tls-ecdhe-mlkem §4)."""
    if isinstance(key, x25519.X25519PrivateKey):
        return _x25519_public(key)
    if isinstance(key, HybridPrivateKey):
        return key.mlkem.public_key().public_bytes_raw() + _x25519_public(key.x25519)
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _x25519_exchange(key: x25519.X25519PrivateKey, peer: bytes) -> bytes:
    if len(peer) != X25519_SIZE:
        raise ValueError("bad X25519 share")
    # cryptography rejects the all-zero result (RFC 8446 §7.4.2, RFC 7748 §6.1).
    return key.exchange(x25519.X25519PublicKey.from_public_bytes(peer))


def key_exchange(key: KeySharePrivateKey, group: int, peer_key_exchange: bytes) -> bytes:
    """The client's shared secret from the server's share (the one ``key`` was made for).

    Raises:
        TlsAlert: illegal_parameter for a malformed or invalid peer share (RFC 8446 §4.2.8.1/2,
            draft-ietf-tls-ecdhe-mlkem §4: the ciphertext length is checked).
    """
    try:
        if isinstance(key, x25519.X25519PrivateKey):
            if group != Group.X25519:
                raise ValueError("share of another group")
            return _x25519_exchange(key, peer_key_exchange)
        if isinstance(key, HybridPrivateKey):
            if group != Group.X25519MLKEM768 or len(peer_key_exchange) != (
                X25519MLKEM768_SERVER_SHARE_SIZE
            ):
                raise ValueError("X25519MLKEM768 server share must be 1120 bytes")
            ciphertext = peer_key_exchange[:MLKEM768_CIPHERTEXT_SIZE]
            kem_secret = key.mlkem.decapsulate(ciphertext)  # implicit rejection: never raises
            return kem_secret + _x25519_exchange(
                key.x25519, peer_key_exchange[MLKEM768_CIPHERTEXT_SIZE:]
            )
        curve, _ = _EC_GROUPS[group]
        if not isinstance(key.curve, type(curve)):
            raise ValueError("share of another group")
        return key.exchange(ec.ECDH(), _ec_point(curve, peer_key_exchange))
    except (ValueError, KeyError) as exc:
        raise _illegal(str(exc)) from exc


def _ec_point(curve: ec.EllipticCurve, data: bytes) -> ec.EllipticCurvePublicKey:
    if not data or data[0] != 0x04:
        raise ValueError("only uncompressed points are allowed")
    return ec.EllipticCurvePublicKey.from_encoded_point(curve, data)


def server_key_exchange(
    group: int, client_key_exchange: bytes, rng: Callable[[int], bytes]
) -> tuple[bytes, bytes]:
    """The server's answer to the client's share of ``group``: ``(server key_exchange, secret)``.

    For (EC)DHE groups the server makes an ephemeral key from ``rng`` and combines it with the
    client's public key. For X25519MLKEM768 it encapsulates to the client's ML-KEM key (the
    message comes from the OS, see the module docstring) and does X25519 with a key from ``rng``.

    Raises:
        TlsAlert: illegal_parameter for a client share of the wrong size or failing the FIPS 203
            §7.2 encapsulation-key check, an invalid point, or an all-zero X25519 result.
    """
    if group == Group.X25519MLKEM768:
        if len(client_key_exchange) != X25519MLKEM768_CLIENT_SHARE_SIZE:
            raise _illegal("X25519MLKEM768 client share must be 1216 bytes")
        try:
            encapsulation_key = mlkem.MLKEM768PublicKey.from_public_bytes(
                client_key_exchange[:MLKEM768_ENCAPSULATION_KEY_SIZE]
            )
        except ValueError as exc:  # FIPS 203 §7.2 modulus check (cryptography performs it)
            raise _illegal(f"ML-KEM-768 encapsulation key: {exc}") from exc
        kem_secret, ciphertext = encapsulation_key.encapsulate()
        ephemeral = x25519.X25519PrivateKey.from_private_bytes(rng(32))
        try:
            ecdh_secret = _x25519_exchange(
                ephemeral, client_key_exchange[MLKEM768_ENCAPSULATION_KEY_SIZE:]
            )
        except ValueError as exc:
            raise _illegal(str(exc)) from exc
        return ciphertext + _x25519_public(ephemeral), kem_secret + ecdh_secret
    private = generate_private_key(group, rng)
    shared = key_exchange(private, group, client_key_exchange)
    return public_bytes(private), shared
