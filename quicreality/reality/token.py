"""The REALITY session_id token: byte layout, key derivation, seal and open (spec §2.2-§2.5, §3.1).

Both sides use these functions, so the client's sealing and the server's opening cannot drift apart::

    shared = X25519(client_ephemeral, server_static)                    # 32 bytes
    K      = HKDF-SHA256(ikm=shared, salt=random[0:20], info="REALITY", L=32)
    P      = version x,y,z | 0x00 | uint32 unix seconds | shortId (8)   # 16 bytes
    S      = AES-256-GCM(K, nonce=random[20:32], P, aad=ClientHello with bytes 39..70 zeroed)

``S`` (32 bytes: 16 ciphertext + 16 tag) is the ClientHello's ``legacy_session_id``, which sits at
bytes 39..70 of the handshake message (4-byte header included). The AAD therefore binds every other
byte of the ClientHello: SNI, key shares, transport parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

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
    return HKDF(
        algorithm=hashes.SHA256(),
        length=AUTH_KEY_LENGTH,
        salt=client_random[:20],
        info=HKDF_INFO,
    ).derive(shared_secret)


def aad_of(client_hello: bytes | bytearray) -> bytes:
    """The AAD: the handshake message with bytes 39..70 zeroed (spec §2.5)."""
    if len(client_hello) < SESSION_ID_END or client_hello[SESSION_ID_LENGTH_OFFSET] != 32:
        raise ValueError("ClientHello without a 32-byte legacy_session_id at offset 38")
    return (
        bytes(client_hello[:SESSION_ID_OFFSET])
        + bytes(SESSION_ID_LENGTH)
        + bytes(client_hello[SESSION_ID_END:])
    )


def seal_token(auth_key: bytes, client_random: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """S = AES-256-GCM-Seal(K, random[20:32], P, AAD): 32 bytes (spec §2.5)."""
    return AESGCM(auth_key).encrypt(client_random[20:32], plaintext, aad)


def open_token(auth_key: bytes, client_random: bytes, token: bytes, aad: bytes) -> bytes | None:
    """AES-256-GCM-Open of the session_id; ``None`` when authentication fails (spec §3.1 step 6)."""
    try:
        return AESGCM(auth_key).decrypt(client_random[20:32], token, aad)
    except InvalidTag:
        return None


def seal_client_hello(client_hello: bytearray, auth_key: bytes, plaintext: TokenPlaintext) -> bytes:
    """Seal in place: zero 39..70, compute S over the result, write S at 39..70; return S.

    This is Xray's order of operations (spec §2.5): the AAD is the message with a zero session_id.
    """
    client_random = bytes(client_hello[RANDOM_OFFSET : RANDOM_OFFSET + 32])
    client_hello[SESSION_ID_OFFSET:SESSION_ID_END] = bytes(SESSION_ID_LENGTH)
    token = seal_token(auth_key, client_random, push_plaintext(plaintext), aad_of(client_hello))
    client_hello[SESSION_ID_OFFSET:SESSION_ID_END] = token
    return token


def open_client_hello(client_hello: bytes, auth_key: bytes) -> TokenPlaintext | None:
    """Open the token of a sealed ClientHello (the message is not modified); None on failure."""
    client_random = client_hello[RANDOM_OFFSET : RANDOM_OFFSET + 32]
    token = client_hello[SESSION_ID_OFFSET:SESSION_ID_END]
    plain = open_token(auth_key, client_random, token, aad_of(client_hello))
    return None if plain is None else pull_plaintext(plain)
