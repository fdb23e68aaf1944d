"""The outer encrypted_client_hello extension (draft-ietf-tls-esni-22 §5) and GREASE ECH (§6.2),
plus byte offsets of a ClientHello's extensions.

We never encrypt a ClientHelloInner. We send a GREASE ECH extension as Chrome does (random
``config_id``, a real X25519 public key as ``enc``, a random payload of a plausible length), and
REALITY can carry its token inside that payload (:mod:`quicreality.reality.token`), which is why
:func:`extension_spans` gives absolute offsets into the raw handshake message.

Wire format of the outer extension body::

    uint8  type = 0 (outer)
    uint16 kdf_id, uint16 aead_id        # HpkeSymmetricCipherSuite
    uint8  config_id
    opaque enc<0..2^16-1>
    opaque payload<1..2^16-1>
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from ..wire.buffer import Buffer, BufferReadError
from .constants import ExtensionType

_TYPE_AND_LENGTH = struct.Struct("!HH")

#: ECHClientHelloType outer (draft-ietf-tls-esni §5).
ECH_OUTER = 0
#: HPKE ids (RFC 9180 §7.2, §7.3) of the suite Chrome's GREASE ECH names.
HPKE_KDF_HKDF_SHA256 = 0x0001
HPKE_AEAD_AES_128_GCM = 0x0001
#: The AEAD tag length of AES-128-GCM, the payload's overhead.
AES_128_GCM_TAG = 16


@dataclass(frozen=True, slots=True)
class EchOuter:
    """The body of an outer encrypted_client_hello extension."""

    kdf_id: int
    aead_id: int
    config_id: int
    enc: bytes
    payload: bytes


def encode_ech_outer(ech: EchOuter) -> bytes:
    """Serialize an outer ECH extension body."""
    if not ech.payload:
        raise ValueError("the ECH payload is at least one byte")
    return (
        bytes([ECH_OUTER])
        + ech.kdf_id.to_bytes(2, "big")
        + ech.aead_id.to_bytes(2, "big")
        + bytes([ech.config_id])
        + len(ech.enc).to_bytes(2, "big")
        + ech.enc
        + len(ech.payload).to_bytes(2, "big")
        + ech.payload
    )


#: Where the payload starts inside an outer ECH body with a 32-byte ``enc``:
#: type (1) + suite (4) + config_id (1) + enc length (2) + enc (32) + payload length (2).
PAYLOAD_OFFSET_X25519 = 1 + 4 + 1 + 2 + 32 + 2


def ech_payload_offset(body: bytes) -> tuple[int, int] | None:
    """``(start, end)`` of the payload inside an outer ECH extension body; None if the body is
    not a well-formed outer ECHClientHello."""
    buf = Buffer(data=body)
    try:
        if buf.pull_uint8() != ECH_OUTER:
            return None
        buf.pull_uint16()
        buf.pull_uint16()
        buf.pull_uint8()
        buf.pull_bytes(buf.pull_uint16())
        length = buf.pull_uint16()
        start = buf.tell()
        buf.pull_bytes(length)
    except BufferReadError:
        return None
    if not buf.eof() or length == 0:
        return None
    return start, start + length


def pull_ech_outer(body: bytes) -> EchOuter | None:
    """Parse an outer ECH extension body; None when malformed or not ``outer``."""
    span = ech_payload_offset(body)
    if span is None:
        return None
    enc_len = int.from_bytes(body[6:8], "big")
    return EchOuter(
        kdf_id=int.from_bytes(body[1:3], "big"),
        aead_id=int.from_bytes(body[3:5], "big"),
        config_id=body[5],
        enc=bytes(body[8 : 8 + enc_len]),
        payload=bytes(body[span[0] : span[1]]),
    )


def grease_ech(rng: Callable[[int], bytes], payload_length: int) -> EchOuter:
    """A GREASE ECH extension (draft-ietf-tls-esni §6.2): HKDF-SHA256 + AES-128-GCM, a random
    config_id, ``enc`` a real X25519 public key (top bit clear, like a real one), a random payload.
    """
    enc = x25519.X25519PrivateKey.from_private_bytes(rng(32)).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return EchOuter(HPKE_KDF_HKDF_SHA256, HPKE_AEAD_AES_128_GCM, rng(1)[0], enc,
                    rng(payload_length))


def extension_spans(client_hello: bytes | bytearray) -> list[tuple[int, int, int]] | None:
    """``(type, start, end)`` of each extension body in a ClientHello handshake message (4-byte
    header included), as absolute offsets into it; None when the framing is malformed."""
    data = bytes(client_hello)
    size = len(data)
    try:
        pos = 4 + 2 + 32
        pos += 1 + data[pos]  # legacy_session_id
        pos += 2 + int.from_bytes(data[pos : pos + 2], "big")  # cipher_suites
        pos += 1 + data[pos]  # legacy_compression_methods
    except IndexError:
        return None
    if pos > size:
        return None
    if pos == size:
        return []
    if pos + 2 > size:
        return None
    end = pos + 2 + int.from_bytes(data[pos : pos + 2], "big")
    pos += 2
    out = []
    unpack = _TYPE_AND_LENGTH.unpack_from
    while pos < end:  # offsets only, read straight from the bytes
        if pos + 4 > size:
            return None
        ext_type, length = unpack(data, pos)
        start = pos + 4
        pos = start + length
        if pos > size:
            return None
        out.append((ext_type, start, pos))
    if pos != end or end != size:
        return None
    return out


def ech_payload_span(client_hello: bytes | bytearray) -> tuple[int, int] | None:
    """Absolute ``(start, end)`` of the outer ECH payload in a ClientHello; None without one."""
    spans = extension_spans(client_hello)
    for ext_type, start, end in spans or ():
        if ext_type == ExtensionType.ENCRYPTED_CLIENT_HELLO:
            inner = ech_payload_offset(bytes(client_hello[start:end]))
            return None if inner is None else (start + inner[0], start + inner[1])
    return None
