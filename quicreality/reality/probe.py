"""Crafted client Initial datagrams: what a prober (or a test) sends to a REALITY listener.

Anyone can build and read Initial packets: their keys come from the client's Destination
Connection ID (RFC 9001 §5.2). These helpers build protected QUIC v1 Initials carrying arbitrary
CRYPTO chunks (a ClientHello split and reordered at will, or something that is not a ClientHello),
padded to the 1200-byte minimum (RFC 9000 §14.1). Pure functions; the caller sends the bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..quic.crypto import AEAD_TAG_SIZE, CryptoPair
from ..quic.frames import FrameType, crypto_frame_header_size, push_crypto_frame_header
from ..quic.packet import (
    MIN_INITIAL_DATAGRAM_SIZE,
    PACKET_TYPE_INITIAL,
    QUIC_VERSION_1,
    patch_long_header_length,
    push_long_header,
)
from ..wire.buffer import Buffer

#: Minimum size of a datagram carrying a client Initial (RFC 9000 §14.1).
MIN_DATAGRAM = MIN_INITIAL_DATAGRAM_SIZE
#: We always write 2-byte packet numbers.
_PN_LENGTH = 2


def crypto_frame(offset: int, data: bytes) -> bytes:
    """A CRYPTO frame (RFC 9000 §19.6)."""
    buf = Buffer(capacity=crypto_frame_header_size(offset, len(data)) + len(data))
    push_crypto_frame_header(buf, offset, len(data))
    buf.push_bytes(data)
    return buf.data


def initial_packet(
    frames: bytes,
    *,
    dcid: bytes,
    scid: bytes,
    packet_number: int,
    token: bytes = b"",
    pad_to: int = 0,
    crypto: CryptoPair | None = None,
) -> bytes:
    """One protected client Initial packet carrying ``frames``, padded so the packet is ``pad_to``
    bytes long (PADDING frames) when ``pad_to`` is larger than it would be otherwise."""
    if crypto is None:
        crypto = CryptoPair()
        crypto.setup_initial(dcid, is_client=True, version=QUIC_VERSION_1)

    def build(payload: bytes) -> tuple[bytes, bytes]:
        buf = Buffer(capacity=64 + len(dcid) + len(scid) + len(token))
        length_offset = push_long_header(
            buf,
            version=QUIC_VERSION_1,
            packet_type=PACKET_TYPE_INITIAL,
            destination_cid=dcid,
            source_cid=scid,
            token=token,
            packet_number=packet_number,
            packet_number_length=_PN_LENGTH,
            length=0,
        )
        header = bytearray(buf.data)
        patch_long_header_length(header, length_offset, _PN_LENGTH + len(payload) + AEAD_TAG_SIZE)
        return bytes(header), payload

    payload = frames
    header, _ = build(payload)
    missing = pad_to - (len(header) + len(payload) + AEAD_TAG_SIZE)
    if missing > 0:
        payload = payload + bytes(missing)
    if len(payload) < 4:  # room for the header-protection sample (RFC 9001 §5.4.2)
        payload = payload + bytes(4 - len(payload))
    header, payload = build(payload)
    return crypto.encrypt_packet(header, payload, packet_number)


def initial_datagrams(
    chunks: Sequence[tuple[int, bytes]],
    *,
    dcid: bytes,
    scid: bytes,
    first_packet_number: int = 0,
    pad_to: int = MIN_DATAGRAM,
) -> list[bytes]:
    """One padded Initial datagram per ``(offset, data)`` CRYPTO chunk, in the given order."""
    crypto = CryptoPair()
    crypto.setup_initial(dcid, is_client=True, version=QUIC_VERSION_1)
    return [
        initial_packet(
            crypto_frame(offset, data),
            dcid=dcid,
            scid=scid,
            packet_number=first_packet_number + i,
            pad_to=pad_to,
            crypto=crypto,
        )
        for i, (offset, data) in enumerate(chunks)
    ]


def split(data: bytes, sizes: Iterable[int]) -> list[tuple[int, bytes]]:
    """Cut ``data`` into ``(offset, chunk)`` pieces of the given sizes (the rest is the last piece)."""
    out: list[tuple[int, bytes]] = []
    offset = 0
    for size in sizes:
        if offset >= len(data):
            break
        out.append((offset, data[offset : offset + size]))
        offset += size
    if offset < len(data):
        out.append((offset, data[offset:]))
    return out


def client_initial_crypto(datagram: bytes, dcid: bytes) -> list[tuple[int, bytes]]:
    """The CRYPTO chunks of the Initial packets in a client datagram (for tests and probes)."""
    from ..quic.frames import pull_frame_body
    from ..quic.packet import MalformedPacketError, pull_quic_header

    crypto = CryptoPair()
    crypto.setup_initial(dcid, is_client=False, version=QUIC_VERSION_1)
    out: list[tuple[int, bytes]] = []
    buf = Buffer(data=datagram)
    while not buf.eof():
        start = buf.tell()
        try:
            header = pull_quic_header(buf, host_cid_length=None)
        except MalformedPacketError:
            break
        buf.seek(header.packet_end)
        if header.packet_type != PACKET_TYPE_INITIAL:
            continue
        _, payload, _ = crypto.decrypt_packet(
            datagram[start : header.packet_end], header.pn_offset - start, 0
        )
        frames = Buffer(data=payload)
        while not frames.eof():
            frame_type = frames.pull_uint_var()
            frame = pull_frame_body(frames, frame_type)
            if frame_type == FrameType.CRYPTO:
                out.append((frame.offset, frame.data))  # type: ignore[union-attr]
    return out
