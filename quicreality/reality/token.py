"""The REALITY token: byte layout, key derivation, seal and open (spec §2.2-§2.5, §3.1), and the
carriers it can travel in.

Both sides use these functions, so the client's sealing and the server's opening cannot drift apart::

    shared = X25519(client_ephemeral, server_static)                    # 32 bytes
    K      = HKDF-SHA256(ikm=shared, salt=random[0:20], info="REALITY", L=32)
    P      = version x,y,z | 0x00 | uint32 unix seconds | shortId (8)   # 16 bytes
    S      = AES-256-GCM(K, nonce=random[20:32], P, aad=ClientHello with the carrier's 32 bytes zeroed)

``S`` is 32 bytes (16 ciphertext + 16 tag). Where it travels is the *carrier* (:class:`Carrier`);
the key, nonce, plaintext and AEAD are the same for every carrier, only the 32 bytes move:

* ``session_id`` (Xray's, spec §2.2): the ClientHello's ``legacy_session_id``, bytes 39..70 of
  the handshake message (4-byte header included). The hello must have a 32-byte session_id.
* ``ech``: the first 32 bytes of the payload of a GREASE ``encrypted_client_hello`` (0xfe0d)
  outer extension (:mod:`quicreality.tls.ech`), whose payload is random bytes anyway (144..240
  in Chrome's hello); the rest of the payload stays random. The server finds it by walking the
  extension list to 0xfe0d and the outer ECHClientHello to its payload.

The AAD rule is spec §2.5's, generalised: the complete ClientHello handshake message with exactly
the carrier's 32 bytes zeroed. It therefore binds every other byte of the ClientHello, the rest
of the ECH payload included: SNI, key shares, transport parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..tls.ech import ech_payload_span
from ..tls.hkdf import hkdf_expand, hkdf_extract
from .keys import SHORT_ID_LENGTH, ClientVersion

#: Where the token lives in the ClientHello handshake message (spec §2.2).
SESSION_ID_LENGTH_OFFSET = 38
SESSION_ID_OFFSET = 39
SESSION_ID_END = 71
SESSION_ID_LENGTH = 32
#: The client random is bytes 6..37 of the message.
RANDOM_OFFSET = 6
#: HKDF info string (spec §2.4): the 7 ASCII bytes, no NUL.
HKDF_INFO = b"REALITY"
#: Length of the plaintext P (spec §2.3).
PLAINTEXT_LENGTH = 16
#: AuthKey length: AES-256.
AUTH_KEY_LENGTH = 32
#: Length of the sealed token S in any carrier.
TOKEN_LENGTH = 32


class Carrier(Enum):
    """Where the 32-byte token travels in the ClientHello (see the module docstring)."""

    SESSION_ID = "session_id"
    ECH = "ech"


def token_span(client_hello: bytes | bytearray, carrier: Carrier) -> tuple[int, int] | None:
    """``(start, end)`` of the carrier's 32 token bytes in the handshake message; None when the
    hello has no such carrier (no 32-byte session_id; no outer ECH payload of >= 32 bytes)."""
    if carrier is Carrier.SESSION_ID:
        if len(client_hello) >= SESSION_ID_END and client_hello[SESSION_ID_LENGTH_OFFSET] == 32:
            return SESSION_ID_OFFSET, SESSION_ID_END
        return None
    span = ech_payload_span(client_hello)
    if span is None or span[1] - span[0] < TOKEN_LENGTH:
        return None
    return span[0], span[0] + TOKEN_LENGTH


@dataclass(frozen=True, slots=True)
class TokenPlaintext:
    """The decoded 16-byte plaintext P (spec §2.3)."""

    version: ClientVersion
    unix_time: int
    short_id: bytes
    reserved: int = 0


def push_plaintext(p: TokenPlaintext) -> bytes:
    """Encode P: x, y, z, 0x00, uint32 big-endian seconds (truncated to 32 bits), shortId."""
    if len(p.short_id) != SHORT_ID_LENGTH:
        raise ValueError("short_id must be 8 bytes (pad with zeros on the right)")
    return (
        bytes(p.version)
        + bytes([p.reserved])
        + (p.unix_time & 0xFFFFFFFF).to_bytes(4, "big")
        + p.short_id
    )


def pull_plaintext(data: bytes) -> TokenPlaintext:
    """Decode P (16 bytes)."""
    if len(data) != PLAINTEXT_LENGTH:
        raise ValueError(f"REALITY plaintext is 16 bytes, got {len(data)}")
    return TokenPlaintext(
        version=(data[0], data[1], data[2]),
        reserved=data[3],
        unix_time=int.from_bytes(data[4:8], "big"),
        short_id=bytes(data[8:16]),
    )


def derive_auth_key(shared_secret: bytes, client_random: bytes) -> bytes:
    """K = HKDF-SHA256(ikm=shared, salt=random[0:20], info="REALITY", 32) (spec §2.4)."""
    if len(client_random) != 32:
        raise ValueError("the client random has 32 bytes")
    # RFC 5869 with one-shot HMACs (two OpenSSL calls; the cryptography HKDF object costs more
    # Python around the same work on every accept and every seal)
    prk = hkdf_extract("sha256", bytes(client_random[:20]), shared_secret)
    return hkdf_expand("sha256", prk, HKDF_INFO, AUTH_KEY_LENGTH)


def aad_of(client_hello: bytes | bytearray, span: tuple[int, int] | None = None) -> bytes:
    """The AAD: the handshake message with the token bytes zeroed (spec §2.5; ``span`` defaults
    to the session_id, bytes 39..70)."""
    if span is None:
        span = token_span(client_hello, Carrier.SESSION_ID)
        if span is None:
            raise ValueError("ClientHello without a 32-byte legacy_session_id at offset 38")
    start, end = span
    return bytes(client_hello[:start]) + bytes(end - start) + bytes(client_hello[end:])


def seal_token(auth_key: bytes, client_random: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """S = AES-256-GCM-Seal(K, random[20:32], P, AAD): 32 bytes (spec §2.5)."""
    return AESGCM(auth_key).encrypt(client_random[20:32], plaintext, aad)


def open_token(auth_key: bytes, client_random: bytes, token: bytes, aad: bytes) -> bytes | None:
    """AES-256-GCM-Open of the token; ``None`` when authentication fails (spec §3.1 step 6)."""
    try:
        return AESGCM(auth_key).decrypt(client_random[20:32], token, aad)
    except InvalidTag:
        return None


def _span_or_fail(client_hello: bytes | bytearray, carrier: Carrier) -> tuple[int, int]:
    span = token_span(client_hello, carrier)
    if span is None:
        if carrier is Carrier.SESSION_ID:
            raise ValueError("REALITY needs legacy_session_id_length = 32")
        raise ValueError("the ech carrier needs an encrypted_client_hello extension with a "
                         "payload of at least 32 bytes (fingerprint chrome)")
    return span


def seal_client_hello(client_hello: bytearray, auth_key: bytes, plaintext: TokenPlaintext,
                      carrier: Carrier = Carrier.SESSION_ID) -> bytes:
    """Seal in place: zero the carrier's 32 bytes, compute S over the result, write S there;
    return S. This is Xray's order of operations (spec §2.5) wherever the token goes.

    Raises:
        ValueError: the hello has no such carrier.
    """
    start, end = _span_or_fail(client_hello, carrier)
    client_random = bytes(client_hello[RANDOM_OFFSET : RANDOM_OFFSET + 32])
    client_hello[start:end] = bytes(end - start)
    token = seal_token(auth_key, client_random, push_plaintext(plaintext),
                       aad_of(client_hello, (start, end)))
    client_hello[start:end] = token
    return token


def open_client_hello(client_hello: bytes, auth_key: bytes,
                      span: tuple[int, int] = (SESSION_ID_OFFSET, SESSION_ID_END)
                      ) -> TokenPlaintext | None:
    """Open the token at ``span`` (default: the session_id) of a sealed ClientHello (the message
    is not modified); None on failure."""
    client_random = client_hello[RANDOM_OFFSET : RANDOM_OFFSET + 32]
    start, end = span
    plain = open_token(auth_key, client_random, client_hello[start:end],
                       aad_of(client_hello, span))
    return None if plain is None else pull_plaintext(plain)
