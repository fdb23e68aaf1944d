"""Assembles protected packets into (possibly coalesced) datagrams (RFC 9000 §12.2, §17)."""

from __future__ import annotations

from typing import Final

from ..wire.buffer import Buffer
from .crypto import AEAD_TAG_SIZE, CryptoPair
from .packet import (
    PACKET_TYPE_INITIAL,
    PACKET_TYPE_ONE_RTT,
    encode_long_header_first_byte,
)

#: The longest packet-number field (RFC 9000 §17.1); the send path uses the shortest that the peer
#: can decode (:func:`~quicreality.quic.packet.packet_number_length`, RFC 9000 §A.2).
PACKET_NUMBER_SEND_SIZE: Final = 4


def long_header(
    packet_type: int, version: int, dcid: bytes, scid: bytes, token: bytes | None, length: int,
    packet_number: int, packet_number_length: int = PACKET_NUMBER_SEND_SIZE,
) -> bytes:
    """Serialise a long header (RFC 9000 §17.2; v2 type bits RFC 9369 §3.2) with a 2-byte Length
    and a 1-4 byte packet number."""
    buf = Buffer(capacity=64 + len(dcid) + len(scid) + (len(token) + 8 if token is not None else 0))
    buf.push_uint8(encode_long_header_first_byte(packet_type, packet_number_length, version))
    buf.push_uint32(version)
    buf.push_uint8(len(dcid))
    buf.push_bytes(dcid)
    buf.push_uint8(len(scid))
    buf.push_bytes(scid)
    if packet_type == PACKET_TYPE_INITIAL:
        token = token or b""
        buf.push_uint_var(len(token))
        buf.push_bytes(token)
    buf.push_uint16(0x4000 | length)
    buf.push_bytes((packet_number & ((1 << 8 * packet_number_length) - 1))
                   .to_bytes(packet_number_length, "big"))
    return buf.data


def short_header(dcid: bytes, key_phase: int, packet_number: int,
                 packet_number_length: int = PACKET_NUMBER_SEND_SIZE) -> bytes:
    """Serialise a short header (RFC 9000 §17.3.1) with a 1-4 byte packet number."""
    return (
        bytes([0x40 | (key_phase << 2) | (packet_number_length - 1)])
        + dcid
        + (packet_number & ((1 << 8 * packet_number_length) - 1))
        .to_bytes(packet_number_length, "big")
    )


def header_size(packet_type: int, dcid_len: int, scid_len: int, token_len: int,
                packet_number_length: int = PACKET_NUMBER_SEND_SIZE) -> int:
    """Size of the header :func:`long_header`/:func:`short_header` will produce."""
    if packet_type == PACKET_TYPE_ONE_RTT:
        return 1 + dcid_len + packet_number_length
    size = 1 + 4 + 1 + dcid_len + 1 + scid_len + 2 + packet_number_length
    if packet_type == PACKET_TYPE_INITIAL:
        size += len_uint_var(token_len) + token_len
    return size


def len_uint_var(value: int) -> int:
    """Encoded size of a varint."""
    if value <= 0x3F:
        return 1
    if value <= 0x3FFF:
        return 2
    if value <= 0x3FFFFFFF:
        return 4
    return 8


def seal_packet(
    crypto: CryptoPair,
    packet_type: int,
    *,
    version: int,
    dcid: bytes,
    scid: bytes,
    token: bytes | None,
    packet_number: int,
    payload: bytes | bytearray,
    packet_number_length: int = PACKET_NUMBER_SEND_SIZE,
) -> bytes:
    """Protect one packet. ``payload`` must already be padded to the HP sample minimum
    (:data:`~quicreality.quic.crypto.SAMPLE_OFFSET` bytes of packet number and payload).

    ``packet_number_length`` (RFC 9000 §17.1) must be long enough for the peer to decode the
    number (RFC 9000 §A.2).
    """
    if packet_type == PACKET_TYPE_ONE_RTT:
        header = short_header(dcid, crypto.key_phase, packet_number, packet_number_length)
    else:
        length = packet_number_length + len(payload) + AEAD_TAG_SIZE
        header = long_header(packet_type, version, dcid, scid, token, length, packet_number,
                             packet_number_length)
    return crypto.encrypt_packet(header, bytes(payload), packet_number)
