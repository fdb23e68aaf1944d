"""IP/UDP packets as the censor sees them on the link (sans-IO).

The emulator hands the censor raw IP packets read from a TUN device (no link-layer header). Only
IPv4 and IPv6 UDP is of interest; everything else passes the censor untouched.
:func:`push_udp_packet` builds an IPv4/UDP packet with valid checksums (RFC 791, RFC 768) for
tests and for the prober's replayed datagrams.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from ...wire.checksum import internet_checksum

__all__ = ["FlowKey", "Triple", "UdpPacket", "pull_udp_packet", "push_udp_packet"]

#: (source IP, source port, destination IP, destination port), client -> server orientation.
FlowKey = tuple[str, int, str, int]
#: (client IP, server IP, server port): what residual blocking keys on.
Triple = tuple[str, str, int]

_UDP = 17


@dataclass(frozen=True, slots=True)
class UdpPacket:
    """One UDP datagram with its IP addresses.

    Attributes:
        src: Source IP address (text form).
        sport: Source UDP port.
        dst: Destination IP address.
        dport: Destination UDP port.
        payload: The UDP payload (a QUIC datagram, or anything).
    """

    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes

    @property
    def flow(self) -> FlowKey:
        """The 4-tuple in the packet's own orientation."""
        return (self.src, self.sport, self.dst, self.dport)

    @property
    def reverse_flow(self) -> FlowKey:
        """The 4-tuple of the opposite direction (a reply's flow key)."""
        return (self.dst, self.dport, self.src, self.sport)


def pull_udp_packet(pkt: bytes) -> UdpPacket | None:
    """Parse an IPv4 or IPv6 packet carrying UDP; None for anything else or a truncated packet.

    IPv4 fragments other than the first carry no UDP header and are not parsed (None). IPv6
    extension headers are not walked: a UDP header must follow the fixed header directly.
    """
    if len(pkt) < 20:
        return None
    version = pkt[0] >> 4
    if version == 4:
        ihl = (pkt[0] & 0x0F) * 4
        if ihl < 20 or len(pkt) < ihl + 8 or pkt[9] != _UDP:
            return None
        if struct.unpack_from("!H", pkt, 6)[0] & 0x1FFF:  # a non-first fragment
            return None
        total = struct.unpack_from("!H", pkt, 2)[0]
        src = str(ipaddress.IPv4Address(pkt[12:16]))
        dst = str(ipaddress.IPv4Address(pkt[16:20]))
        end = min(len(pkt), total) if total >= ihl + 8 else len(pkt)
        off = ihl
    elif version == 6:
        if len(pkt) < 48 or pkt[6] != _UDP:
            return None
        src = str(ipaddress.IPv6Address(pkt[8:24]))
        dst = str(ipaddress.IPv6Address(pkt[24:40]))
        end = min(len(pkt), 40 + struct.unpack_from("!H", pkt, 4)[0])
        off = 40
    else:
        return None
    sport, dport, ulen = struct.unpack_from("!HHH", pkt, off)
    stop = min(end, off + ulen) if ulen >= 8 else end
    return UdpPacket(src, sport, dst, dport, bytes(pkt[off + 8 : stop]))


def push_udp_packet(src: str, sport: int, dst: str, dport: int, payload: bytes,
                    *, ttl: int = 64, ident: int = 0) -> bytes:
    """An IPv4/UDP packet with valid header and UDP checksums (RFC 791 §3.1, RFC 768)."""
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    ulen = 8 + len(payload)
    pseudo = s + d + struct.pack("!BBH", 0, _UDP, ulen)
    udp = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    csum = internet_checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, ident & 0xFFFF, 0x4000, ttl, _UDP,
                         0, s, d)
    header = header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]
    return header + udp
