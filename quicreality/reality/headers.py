"""Cheap looks the gate takes before any decryption: unprotected QUIC header fields, and the source
an address counts against (sans-IO, no parsing beyond a few bytes)."""

from __future__ import annotations

import ipaddress
from typing import Any

from ..quic.packet import (
    LONG_TYPE_BITS,
    MIN_INITIAL_DATAGRAM_SIZE,
    PACKET_TYPE_INITIAL,
    MalformedPacketError,
    pull_quic_header,
)
from ..wire.buffer import Buffer

#: RFC 9000 §14.1: a server drops Initial datagrams smaller than this; so do we (-> fallback).
MIN_INITIAL_DATAGRAM = MIN_INITIAL_DATAGRAM_SIZE
#: Pending flows from one IPv6 source are counted per /64 (one host usually holds a whole /64).
IPV6_SOURCE_PREFIX = 64


def first_initial_header(data: bytes) -> tuple[bytes, bytes, int] | None:
    """``(dcid, scid, version)`` if ``data`` can open a connection: it starts with a QUIC v1 or v2
    Initial (RFC 9369), is at least 1200 bytes, and its DCID has 8..20 bytes (RFC 9000 §7.2,
    §14.1); else None."""
    if len(data) < MIN_INITIAL_DATAGRAM:
        return None
    try:
        header = pull_quic_header(Buffer(data=data), host_cid_length=None)
    except MalformedPacketError:
        return None
    if header.packet_type != PACKET_TYPE_INITIAL or header.version not in LONG_TYPE_BITS:
        return None
    if not 8 <= len(header.destination_cid) <= 20:
        return None
    return header.destination_cid, header.source_cid, header.version


def initial_dcid(data: bytes) -> bytes | None:
    """The DCID if ``data`` starts with a QUIC v1 or v2 Initial packet header (a look at the first
    bytes only; the datagram may be short or broken), else None."""
    if len(data) < 7 or data[0] & 0xC0 != 0xC0:
        return None
    bits = LONG_TYPE_BITS.get(int.from_bytes(data[1:5], "big"))
    if bits is None or data[0] & 0x30 != bits[PACKET_TYPE_INITIAL]:
        return None
    n = data[5]
    if n > 20 or len(data) < 6 + n:
        return None
    return bytes(data[6 : 6 + n])


def long_header_scid(data: bytes) -> bytes | None:
    """The Source Connection ID of a long-header packet (not Version Negotiation), else None."""
    if len(data) < 7 or not data[0] & 0x80 or data[1:5] == b"\x00\x00\x00\x00":
        return None
    at = 6 + data[5]
    if at >= len(data):
        return None
    scid_len = data[at]
    if scid_len > 20 or at + 1 + scid_len > len(data):
        return None
    return bytes(data[at + 1 : at + 1 + scid_len])


def addressed_to(data: bytes, cid: bytes) -> bool:
    """True if the first packet of ``data`` (sent to a client) carries ``cid`` as its DCID.

    Long header: the DCID field. Short header: the DCID has no length on the wire, so the bytes
    after the first one are compared with ``cid``. An empty ``cid`` matches everything (a client
    without connection IDs cannot be told apart by them).
    """
    if not cid or not data:
        return True
    if data[0] & 0x80:
        return len(data) >= 6 + data[5] and data[5] == len(cid) and data[6 : 6 + len(cid)] == cid
    return data[1 : 1 + len(cid)] == cid


def source_key(addr: Any) -> Any:
    """What a client address counts against in the per-source pending limit.

    An IPv4 address (an IPv4-mapped IPv6 address is its IPv4 address), or an IPv6 /64; anything
    that is not an IP address (tests use names) is its own source.
    """
    host = addr[0] if isinstance(addr, tuple) and addr else addr
    if not isinstance(host, str):
        return host
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        return ipaddress.IPv6Network((int(ip) >> (128 - IPV6_SOURCE_PREFIX) << (128 - IPV6_SOURCE_PREFIX),
                                      IPV6_SOURCE_PREFIX))
    return ip
