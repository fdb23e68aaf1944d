"""(EC)DHE key shares for TLS 1.3 (RFC 8446 §4.2.8): X25519, secp256r1, secp384r1.

Private keys are derived from ``rng`` bytes so that a seeded rng gives reproducible handshakes.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from .alerts import AlertDescription, TlsAlert
from .messages import Group

KeySharePrivateKey = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey

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
SUPPORTED_GROUPS: tuple[int, ...] = (Group.X25519, Group.SECP256R1, Group.SECP384R1)


def generate_private_key(group: int, rng: Callable[[int], bytes]) -> KeySharePrivateKey:
    """A fresh private key for ``group`` built from ``rng`` bytes."""
    if group == Group.X25519:
        return x25519.X25519PrivateKey.from_private_bytes(rng(32))
    if group in _EC_GROUPS:
        curve, order = _EC_GROUPS[group]
        size = (order.bit_length() + 7) // 8
        # 8 extra bytes make the modulo bias negligible (FIPS 186-5 A.2.1 style).
        scalar = int.from_bytes(rng(size + 8), "big") % (order - 1) + 1
        return ec.derive_private_key(scalar, curve)
    raise ValueError(f"unsupported group {group:#06x}")


def public_bytes(key: KeySharePrivateKey) -> bytes:
    """The key_exchange encoding: raw X25519, or an uncompressed X9.62 point (RFC 8446 §4.2.8.2)."""
    if isinstance(key, x25519.X25519PrivateKey):
        return key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def key_exchange(key: KeySharePrivateKey, group: int, peer_key_exchange: bytes) -> bytes:
    """The (EC)DHE shared secret with the peer's share.

    Raises:
        TlsAlert: illegal_parameter for a malformed or invalid peer share (RFC 8446 §4.2.8.1/2).
    """
    try:
        if isinstance(key, x25519.X25519PrivateKey):
            if group != Group.X25519 or len(peer_key_exchange) != 32:
                raise ValueError("bad X25519 share")
            # cryptography rejects the all-zero result (RFC 8446 §7.4.2, RFC 7748 §6.1).
            return key.exchange(x25519.X25519PublicKey.from_public_bytes(peer_key_exchange))
        curve, _ = _EC_GROUPS[group]
        if not isinstance(key.curve, type(curve)):
            raise ValueError("share of another group")  # noqa: TRY004 -- mapped to an alert below
        if not peer_key_exchange or peer_key_exchange[0] != 0x04:
            raise ValueError("only uncompressed points are allowed")
        peer = ec.EllipticCurvePublicKey.from_encoded_point(curve, peer_key_exchange)
        return key.exchange(ec.ECDH(), peer)
    except (ValueError, KeyError) as exc:
        raise TlsAlert(AlertDescription.illegal_parameter, "invalid key share") from exc
