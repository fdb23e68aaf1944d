"""REALITY keys and identifiers in Xray's encodings (spec §1.1-§1.3, §2.3).

* X25519 keys are 32 bytes, written as base64 RawURL without padding (Go's
  ``base64.RawURLEncoding``), the format ``xray x25519`` prints. A private key is clamped the way
  ``xray x25519`` does (byte0 &= 248, byte31 &= 127, byte31 |= 64); X25519 clamps internally anyway.
* A short ID is hex of at most 16 characters with an even length, decoded into 8 bytes padded with
  zeros on the right; ``""`` is the all-zero ID.
* A client version is ``"x.y.z"`` with each part <= 255, compared as a 24-bit big-endian number.

Pure functions: randomness comes in as ``rng(n) -> bytes``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

#: Key length of X25519 (RFC 7748 §5).
X25519_KEY_LENGTH = 32
#: Decoded length of a short ID (spec §1.2).
SHORT_ID_LENGTH = 8
_HEX_RE = re.compile(r"^[0-9a-fA-F]*$")


class KeyFormatError(ValueError):
    """A key, short ID or version string is malformed; the message says what is wrong."""


def b64url_encode(data: bytes) -> str:
    """base64 RawURL, no padding (Go ``base64.RawURLEncoding.EncodeToString``)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64 RawURL; trailing ``=`` padding is tolerated, other alphabets are not.

    Raises:
        KeyFormatError: characters outside ``A-Za-z0-9-_`` or an impossible length.
    """
    stripped = text.strip().rstrip("=")
    if not re.fullmatch(r"[A-Za-z0-9_-]*", stripped):
        raise KeyFormatError("not base64url (RawURL): only A-Z a-z 0-9 - _ are allowed")
    if len(stripped) % 4 == 1:
        raise KeyFormatError("not base64url: impossible length")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError(f"not base64url: {exc}") from None


def clamp_x25519(private: bytes) -> bytes:
    """Clamp a 32-byte X25519 scalar (RFC 7748 §5 ``decodeScalar25519``), as ``xray x25519`` does."""
    if len(private) != X25519_KEY_LENGTH:
        raise KeyFormatError(f"an X25519 private key has 32 bytes, got {len(private)}")
    b = bytearray(private)
    b[0] &= 248
    b[31] &= 127
    b[31] |= 64
    return bytes(b)


def x25519_public_key(private: bytes) -> bytes:
    """The X25519 public key (base point multiple) of a 32-byte private key."""
    key = x25519.X25519PrivateKey.from_private_bytes(private)
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _key_bytes(text: str, what: str) -> bytes:
    raw = b64url_decode(text)
    if len(raw) != X25519_KEY_LENGTH:
        raise KeyFormatError(f"{what} must decode to 32 bytes, got {len(raw)}")
    return raw


def parse_private_key(text: str) -> bytes:
    """A server private key from base64 RawURL (e.g. ``xray x25519``'s ``PrivateKey``).

    Returned as given (not re-clamped), so the public key matches what Xray derives.
    """
    return _key_bytes(text, "private key")


def parse_public_key(text: str) -> bytes:
    """A server public key (Xray's client ``password``/``publicKey``) from base64 RawURL."""
    return _key_bytes(text, "public key")


@dataclass(frozen=True, slots=True)
class X25519KeyPair:
    """A server static key pair (raw 32-byte values)."""

    private_key: bytes
    public_key: bytes

    @property
    def private_key_text(self) -> str:
        """The private key in Xray's encoding."""
        return b64url_encode(self.private_key)

    @property
    def public_key_text(self) -> str:
        """The public key in Xray's encoding."""
        return b64url_encode(self.public_key)


def generate_key_pair(rng: Callable[[int], bytes]) -> X25519KeyPair:
    """A fresh clamped key pair from ``rng`` bytes (``xray x25519`` without ``-i``)."""
    private = clamp_x25519(rng(X25519_KEY_LENGTH))
    return X25519KeyPair(private, x25519_public_key(private))


def key_pair_from_private(private: bytes) -> X25519KeyPair:
    """The pair for an existing private key (``xray x25519 -i KEY``), clamped as Xray prints it."""
    private = clamp_x25519(private)
    return X25519KeyPair(private, x25519_public_key(private))


def parse_short_id(text: str) -> bytes:
    """Decode a short ID: <= 16 hex characters, even length, zero-padded on the right to 8 bytes.

    Raises:
        KeyFormatError: too long, odd length or not hex.
    """
    if len(text) > 2 * SHORT_ID_LENGTH:
        raise KeyFormatError(f"short ID {text!r} is longer than 16 hex characters")
    if len(text) % 2:
        raise KeyFormatError(f"short ID {text!r} has an odd number of hex characters")
    if not _HEX_RE.match(text):
        raise KeyFormatError(f"short ID {text!r} is not hex")
    return bytes.fromhex(text).ljust(SHORT_ID_LENGTH, b"\x00")


def format_short_id(short_id: bytes) -> str:
    """Hex of an 8-byte short ID (all 16 characters)."""
    return short_id.hex()


def short_id_fingerprint(short_id: bytes) -> str:
    """How logs and qlog name a short ID: the first 8 hex digits of its SHA-256.

    A short ID is a credential (with the public key, it is all a client needs), so it is never
    written out; the fingerprint still tells which configured ID a client used.
    """
    return hashlib.sha256(short_id).hexdigest()[:8]


def generate_short_id(rng: Callable[[int], bytes], length: int = SHORT_ID_LENGTH) -> str:
    """A random short ID of ``length`` bytes, as hex."""
    if not 0 <= length <= SHORT_ID_LENGTH:
        raise ValueError("a short ID has at most 8 bytes")
    return rng(length).hex()


ClientVersion = tuple[int, int, int]


def parse_version(text: str) -> ClientVersion:
    """Parse ``"x.y.z"`` (each part 0..255), as Xray's ``minClientVer``/``maxClientVer``.

    Raises:
        KeyFormatError: not three dot-separated integers within 0..255.
    """
    parts = text.strip().split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise KeyFormatError(f"version {text!r} is not of the form x.y.z")
    values = tuple(int(p) for p in parts)
    if any(v > 255 for v in values):
        raise KeyFormatError(f"version {text!r}: each part must be at most 255")
    return (values[0], values[1], values[2])


def version_value(version: ClientVersion) -> int:
    """The 24-bit number Xray compares (``Value()`` of the 3 bytes)."""
    return (version[0] << 16) | (version[1] << 8) | version[2]


def format_version(version: ClientVersion) -> str:
    """``"x.y.z"``."""
    return ".".join(str(v) for v in version)
