"""A small pure-Python pcap/pcapng reader for UDP datagrams, used to match packets across captures.

Loss at the bottleneck is "sent into the link but never came out": a datagram in the sender-side
capture whose exact UDP payload never appears in the receiver-side capture. Matching on a digest
of the payload needs no decryption and no tshark, and gives the one-way delay through the link
of every delivered datagram (both captures use the same host clock).

Supported: pcap (both byte orders, µs and ns) and pcapng (SHB/IDB/EPB/SPB, per-interface link
type and ``if_tsresol``); link types Ethernet (1), raw IP (101, 228, 229), Linux cooked SLL
(113) and SLL2 (276), BSD loopback (0); IPv4 and IPv6 (no extension headers) carrying UDP.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Datagram", "read_udp"]


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP datagram: capture time (epoch s), addresses, ports, payload length and digest."""

    time: float
    src: str
    dst: str
    sport: int
    dport: int
    length: int
    digest: bytes


def _ip_str(b: bytes) -> str:
    if len(b) == 4:
        return ".".join(str(x) for x in b)
    import ipaddress

    return str(ipaddress.IPv6Address(b))


def _l3(linktype: int, frame: bytes) -> bytes | None:
    """The IP packet inside a link-layer frame (None if not IP)."""
    if linktype in (101, 228, 229):
        return frame
    if linktype == 1:
        off, etype = 14, struct.unpack_from("!H", frame, 12)[0] if len(frame) >= 14 else 0
        while etype in (0x8100, 0x88A8) and len(frame) >= off + 4:
            etype = struct.unpack_from("!H", frame, off + 2)[0]
            off += 4
        return frame[off:] if etype in (0x0800, 0x86DD) else None
    if linktype == 113:
        return frame[16:] if len(frame) >= 16 and frame[14:16] in (b"\x08\x00", b"\x86\xdd") \
            else None
    if linktype == 276:
        return frame[20:] if len(frame) >= 20 and frame[0:2] in (b"\x08\x00", b"\x86\xdd") \
            else None
    if linktype == 0:
        return frame[4:]
    return None


def _udp(ip: bytes) -> tuple[str, str, int, int, bytes] | None:
    if not ip:
        return None
    ver = ip[0] >> 4
    if ver == 4 and len(ip) >= 20:
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17:
            return None
        frag = struct.unpack_from("!H", ip, 6)[0]
        if frag & 0x1FFF:  # a non-first fragment
            return None
        src, dst, l4 = ip[12:16], ip[16:20], ip[ihl:]
    elif ver == 6 and len(ip) >= 40:
        if ip[6] != 17:
            return None
        src, dst, l4 = ip[8:24], ip[24:40], ip[40:]
    else:
        return None
    if len(l4) < 8:
        return None
    sport, dport, ulen = struct.unpack_from("!HHH", l4, 0)
    return _ip_str(src), _ip_str(dst), sport, dport, l4[8:ulen] if ulen >= 8 else l4[8:]


def _frames_pcap(data: bytes) -> Iterator[tuple[float, int, bytes]]:
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise ValueError("not a pcap file")
    if len(data) < 24:
        raise ValueError("truncated pcap file header")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack_from(end + "I", data, 20)[0] & 0x0FFFFFFF
    off = 24
    div = 1e9 if nano else 1e6
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(end + "IIII", data, off)
        off += 16
        yield sec + frac / div, linktype, data[off:off + incl]
        off += incl


def _frames_pcapng(data: bytes) -> Iterator[tuple[float, int, bytes]]:
    off = 0
    end = "<"
    ifaces: list[tuple[int, float]] = []  # (linktype, seconds per tick)
    while off + 12 <= len(data):
        btype = struct.unpack_from(end + "I", data, off)[0]
        if btype == 0x0A0D0D0A:  # section header: byte order magic decides
            bom = data[off + 8:off + 12]
            end = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        blen = struct.unpack_from(end + "I", data, off + 4)[0]
        if blen < 12 or off + blen > len(data):
            break
        body = data[off + 8:off + blen - 4]
        if btype == 1 and len(body) >= 8:  # interface description
            linktype = struct.unpack_from(end + "H", body, 0)[0]
            tick = 1e-6
            o = 8
            while o + 4 <= len(body):
                code, olen = struct.unpack_from(end + "HH", body, o)
                if code == 0:
                    break
                if code == 9 and olen >= 1:  # if_tsresol
                    r = body[o + 4]
                    tick = 2.0 ** -(r & 0x7F) if r & 0x80 else 10.0 ** -r
                o += 4 + ((olen + 3) & ~3)
            ifaces.append((linktype, tick))
        elif btype == 6 and len(body) >= 20:  # enhanced packet
            iface, hi, lo, cap, _orig = struct.unpack_from(end + "IIIII", body, 0)
            linktype, tick = ifaces[iface] if iface < len(ifaces) else (1, 1e-6)
            yield ((hi << 32) | lo) * tick, linktype, body[20:20 + cap]
        elif btype == 3 and len(body) >= 4:  # simple packet (no timestamp)
            linktype = ifaces[0][0] if ifaces else 1
            yield 0.0, linktype, body[4:]
        off += blen


def read_udp(path: str | Path) -> Iterator[Datagram]:
    """Every UDP datagram in a pcap/pcapng, with a 16-byte BLAKE2 digest of its payload."""
    data = Path(path).read_bytes()
    frames = _frames_pcapng(data) if data[:4] == b"\x0a\x0d\x0d\x0a" else _frames_pcap(data)
    for ts, linktype, frame in frames:
        ip = _l3(linktype, frame)
        parsed = _udp(ip) if ip is not None else None
        if parsed is None:
            continue
        src, dst, sport, dport, payload = parsed
        yield Datagram(ts, src, dst, sport, dport, len(payload),
                       hashlib.blake2b(payload, digest_size=16).digest())
