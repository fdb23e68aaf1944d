"""Retry tokens (RFC 9000 §8.1.2-§8.1.4, §17.2.5) and stateless reset tokens (RFC 9000 §10.3.2). Sans-IO.

Retry tokens are sealed with AES-128-GCM under a key drawn once from the configuration's ``rng``. The
plaintext carries the issue time, the original Destination Connection ID and the Retry Source Connection ID;
the client address ``(host, port)`` is bound as associated data, so a token replayed from another address
fails to open (RFC 9000 §8.1.4). Token layout:
``kind (1) || nonce (12) || AES-GCM(plaintext, aad = kind || address)``.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .packet import STATELESS_RESET_TOKEN_SIZE

#: Token kind byte; leaves room for NEW_TOKEN tokens (RFC 9000 §8.1.3) under the same key.
TOKEN_KIND_RETRY = 0x01
#: Default Retry token lifetime in seconds: a Retry round trip, with slack (RFC 9000 §8.1.4).
DEFAULT_RETRY_TOKEN_LIFETIME = 10.0
#: Accepted clock skew for issue times in the future (the clock is the caller's ``now``).
_FUTURE_SLACK = 1.0
_NONCE_SIZE = 12
_TIME = struct.Struct("!d")


class InvalidTokenError(ValueError):
    """A token failed to open, is expired, or was issued to another address
    (RFC 9000 §8.1.2: INVALID_TOKEN)."""


@dataclass(frozen=True, slots=True)
class RetryTokenContents:
    """What a valid Retry token vouches for (RFC 9000 §7.3, §8.1.2)."""

    original_destination_cid: bytes
    retry_source_cid: bytes
    issued_at: float


def _encode_address(addr: tuple[str, int]) -> bytes:
    """Bind a ``(host, port)`` address; host is the textual form the I/O layer reports."""
    host = addr[0].encode("utf-8")
    return bytes([TOKEN_KIND_RETRY, len(host)]) + host + addr[1].to_bytes(2, "big")


class RetryTokenHandler:
    """Issues and validates Retry tokens (RFC 9000 §8.1.2).

    Args:
        rng: ``rng(n) -> n random bytes``; called once for the key and once per token for the nonce.
        lifetime: seconds a token stays valid after ``issue``.
    """

    __slots__ = ("_aead", "_lifetime", "_rng")

    def __init__(
        self, rng: Callable[[int], bytes], lifetime: float = DEFAULT_RETRY_TOKEN_LIFETIME
    ) -> None:
        self._rng = rng
        self._aead = AESGCM(rng(16))
        self._lifetime = lifetime

    def issue(
        self,
        *,
        addr: tuple[str, int],
        original_destination_cid: bytes,
        retry_source_cid: bytes,
        now: float,
    ) -> bytes:
        """Create a Retry token for a client at ``addr``."""
        plaintext = (
            _TIME.pack(now)
            + bytes([len(original_destination_cid)])
            + original_destination_cid
            + bytes([len(retry_source_cid)])
            + retry_source_cid
        )
        nonce = self._rng(_NONCE_SIZE)
        return (
            bytes([TOKEN_KIND_RETRY])
            + nonce
            + self._aead.encrypt(nonce, plaintext, _encode_address(addr))
        )

    def validate(
        self,
        token: bytes,
        *,
        addr: tuple[str, int],
        now: float,
        destination_cid: bytes | None = None,
    ) -> RetryTokenContents:
        """Open a Retry token from a client's Initial.

        Args:
            destination_cid: the Initial's Destination Connection ID; when given it must equal the Retry
                Source Connection ID the token was issued with (RFC 9000 §7.3, §17.2.5.2).

        Raises:
            InvalidTokenError: not ours, tampered with, from another address, expired, or for another
                connection ID. The server then closes with INVALID_TOKEN or drops (RFC 9000 §8.1.3).
        """
        if len(token) < 1 + _NONCE_SIZE + 16 or token[0] != TOKEN_KIND_RETRY:
            raise InvalidTokenError("not a retry token")
        nonce = token[1 : 1 + _NONCE_SIZE]
        try:
            plaintext = self._aead.decrypt(nonce, token[1 + _NONCE_SIZE :], _encode_address(addr))
        except InvalidTag:
            raise InvalidTokenError("retry token does not authenticate") from None
        try:
            (issued_at,) = _TIME.unpack_from(plaintext, 0)
            pos = _TIME.size
            odcid = plaintext[pos + 1 : pos + 1 + plaintext[pos]]
            pos += 1 + len(odcid)
            scid = plaintext[pos + 1 : pos + 1 + plaintext[pos]]
        except (IndexError, struct.error):
            raise InvalidTokenError("malformed retry token") from None
        if now - issued_at > self._lifetime:
            raise InvalidTokenError("retry token expired")
        if issued_at - now > _FUTURE_SLACK:
            raise InvalidTokenError("retry token issued in the future")
        if destination_cid is not None and destination_cid != scid:
            raise InvalidTokenError("retry token issued for another connection ID")
        return RetryTokenContents(odcid, scid, issued_at)


def stateless_reset_token(static_key: bytes, cid: bytes) -> bytes:
    """Derive the stateless reset token of a connection ID: HMAC-SHA256(static_key, cid)[:16]
    (RFC 9000 §10.3.2).

    The static key must be secret and stable across restarts of the endpoint for resets to keep working.
    """
    return hmac.digest(static_key, cid, hashlib.sha256)[:STATELESS_RESET_TOKEN_SIZE]


class StatelessResetTokens:
    """A static key with :meth:`token_for` (RFC 9000 §10.3.2).

    Args:
        static_key: a secret of at least 16 bytes (e.g. from the configuration's rng, persisted).
    """

    __slots__ = ("_key",)

    def __init__(self, static_key: bytes) -> None:
        if len(static_key) < 16:
            raise ValueError("the stateless reset key must be at least 16 bytes")
        self._key = static_key

    def token_for(self, cid: bytes) -> bytes:
        """The 16-byte stateless reset token for ``cid``."""
        return hmac.digest(self._key, cid, hashlib.sha256)[:STATELESS_RESET_TOKEN_SIZE]
