"""UDP socket helpers for the asyncio edge: a non-blocking socket drained in batches.

asyncio's DatagramProtocol costs ~19 µs per datagram here (performance notes); reading a
non-blocking socket in a loop from ``loop.add_reader`` into a reused buffer is much cheaper.
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any

from ..quic.connection.ecn import ECN_MASK

#: Receive/send buffer size requested (SO_RCVBUFFORCE when root, else SO_RCVBUF).
SOCKET_BUFFER = 4 * 1024 * 1024
#: Most datagrams read per wake-up before running the send path once.
RECV_BATCH = 64

_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)


def parse_hostport(text: str, *, what: str = "address") -> tuple[str, int]:
    """Parse ``HOST:PORT`` or ``[V6]:PORT``; raise ValueError with a clear message."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid {what} {text!r}: expected HOST:PORT")
    return host, int(port)


class ViaSocket(tuple):  # type: ignore[type-arg]
    """A peer's address as it reached the ``via``-th listening socket of a server (its preferred
    address, RFC 9000 §9.6): usable with ``sendto``, equal only to the same address through the
    same socket, so the core sees a peer that moves to another local address as a new path."""

    via: int

    def __new__(cls, addr: Any, via: int) -> ViaSocket:
        self = super().__new__(cls, addr)
        self.via = via
        return self

    def __eq__(self, other: object) -> bool:
        return tuple.__eq__(self, other) is True and getattr(other, "via", 0) == self.via

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((tuple(self), self.via))

    def __str__(self) -> str:
        return f"{self[0]}:{self[1]} via socket {self.via}"


#: Linux UDP_SEGMENT (GSO) and UDP_GRO socket options (include/uapi/linux/udp.h).
UDP_SEGMENT = 103
UDP_GRO = 104
SOL_UDP = 17
#: Most segments in one GSO send (the kernel's UDP_MAX_SEGMENTS is 64 on older kernels).
GSO_MAX_SEGMENTS = 64
#: Most bytes in one GSO send: the whole run is one UDP datagram to the kernel, so it must fit a
#: UDP length (65535 - 8 - 20 for IPv4); above it sendmsg fails with EMSGSIZE (55 x 1200 bytes).
GSO_MAX_BYTES = 65507
#: Linux IP_MTU_DISCOVER / IPV6_MTU_DISCOVER and their PMTUDISC_PROBE value (linux/in.h,
#: linux/in6.h): set DF, never fragment, ignore the kernel's cached path MTU, so that DPLPMTUD
#: probes (RFC 8899 §3, RFC 9000 §14) reach the path whole or not at all.
IP_MTU_DISCOVER = 10
IPV6_MTU_DISCOVER = 23
PMTUDISC_PROBE = 3
_SEGMENT_SIZE = struct.Struct("=H")
_GRO_SIZE = struct.Struct("=i")
#: ECN in the IP header (RFC 3168 §5): the TOS byte (IPv4) / Traffic Class (IPv6) is set with
#: IP_TOS / IPV6_TCLASS and read from IP_RECVTOS / IPV6_RECVTCLASS ancillary data (ip(7), ipv6(7)).
IP_TOS = getattr(socket, "IP_TOS", 1)
IP_RECVTOS = getattr(socket, "IP_RECVTOS", 13)
IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)
IPV6_RECVTCLASS = getattr(socket, "IPV6_RECVTCLASS", 66)
_TCLASS = struct.Struct("=i")


def set_dont_fragment(sock: socket.socket) -> bool:
    """Send with DF and no local fragmentation (QUIC must not be fragmented, RFC 9000 §14).

    Returns False where the kernel has no such option (then datagrams may be fragmented).
    """
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, PMTUDISC_PROBE)
            try:  # IPv4-mapped destinations on a dual-stack socket follow the IPv4 option
                sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, PMTUDISC_PROBE)
            except OSError:
                pass
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, PMTUDISC_PROBE)
    except OSError:
        return False
    return True


def open_udp_socket(host: str, port: int, *, dont_fragment: bool = False) -> socket.socket:
    """Open a non-blocking UDP socket bound to ``host:port`` with large buffers and GRO enabled.

    ``dont_fragment``: a QUIC socket; sets DF (:func:`set_dont_fragment`).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        for force, plain in ((_SO_RCVBUFFORCE, socket.SO_RCVBUF), (_SO_SNDBUFFORCE, socket.SO_SNDBUF)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)
        sock.bind(addr)
        if dont_fragment:
            set_dont_fragment(sock)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def enable_ecn_receive(sock: socket.socket) -> bool:
    """Ask for each datagram's TOS / Traffic Class byte as ancillary data; False if refused."""
    ok = False
    levels = [(socket.IPPROTO_IP, IP_RECVTOS)]
    if sock.family == socket.AF_INET6:  # a dual-stack socket gets IPv4 datagrams too
        levels.append((socket.IPPROTO_IPV6, IPV6_RECVTCLASS))
    for level, option in levels:
        try:
            sock.setsockopt(level, option, 1)
            ok = True
        except OSError:
            pass
    return ok


def set_ecn_codepoint(sock: socket.socket, codepoint: int) -> None:
    """Send what follows with ``codepoint`` in the IP header's ECN bits (DSCP left at 0)."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_TCLASS, codepoint)
        try:  # IPv4-mapped destinations of a dual-stack socket use IP_TOS
            sock.setsockopt(socket.IPPROTO_IP, IP_TOS, codepoint)
        except OSError:
            pass
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_TOS, codepoint)


def ecn_of(ancdata: list[tuple[int, int, bytes]]) -> int:
    """The ECN codepoint in a datagram's IP_TOS / IPV6_TCLASS control message (0 if absent)."""
    for level, kind, value in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_TOS and value:
            return value[0] & ECN_MASK
        if level == socket.IPPROTO_IPV6 and kind == IPV6_TCLASS and len(value) >= _TCLASS.size:
            return int(_TCLASS.unpack_from(value)[0]) & ECN_MASK
    return 0


class UdpIO:
    """Batched receive (with GRO when the kernel offers it) and send (with GSO) on one socket.

    GSO sends a run of equal-sized datagrams to one address in a single ``sendmsg`` (the last may be
    shorter); GRO hands back coalesced runs that are split by the segment size in the cmsg. Both
    fall back to plain calls if the kernel refuses them. With ``ecn`` every datagram's ECN
    codepoint is read (``recv_batch`` yields ``(data, addr, ecn)``) and ``send`` sets the
    codepoint asked for (one setsockopt when it changes).
    """

    def __init__(self, sock: socket.socket, *, gso: bool = True, gro: bool = True,
                 ecn: bool = True):
        self.sock = sock
        self.gso = gso
        self.gro = False
        if gro:
            try:
                sock.setsockopt(SOL_UDP, UDP_GRO, 1)
                self.gro = True
            except OSError:
                self.gro = False
        self.ecn = ecn and enable_ecn_receive(sock)
        self._codepoint = 0
        # GRO segment size, and IP_TOS (1 byte) or IPV6_TCLASS (an int)
        self._ancbuf = socket.CMSG_SPACE(_GRO_SIZE.size) + 2 * socket.CMSG_SPACE(_TCLASS.size)

    def recv_batch(self, limit: int = RECV_BATCH) -> list[tuple[bytes, Any, int]]:
        """Read up to ``limit`` datagrams (GRO runs count once) without blocking:
        ``(data, addr, ecn codepoint)`` each."""
        if not self.gro and not self.ecn:
            return [(data, addr, 0) for data, addr in recv_batch(self.sock, limit)]
        out: list[tuple[bytes, Any, int]] = []
        recvmsg = self.sock.recvmsg
        anc = self._ancbuf
        try:
            for _ in range(limit):
                data, ancdata, _flags, addr = recvmsg(65536, anc)
                seg = ecn = 0
                for level, kind, value in ancdata:
                    if level == SOL_UDP and kind == UDP_GRO:
                        seg = _GRO_SIZE.unpack_from(value)[0]
                    else:
                        ecn = ecn_of([(level, kind, value)])
                if seg and len(data) > seg:  # GRO only merges datagrams with the same TOS
                    for i in range(0, len(data), seg):
                        out.append((data[i : i + seg], addr, ecn))
                else:
                    out.append((data, addr, ecn))
        except (BlockingIOError, InterruptedError, ConnectionRefusedError):
            pass
        return out

    def set_codepoint(self, codepoint: int) -> None:
        """Mark what is sent from now on with ``codepoint`` (a no-op when ECN is off)."""
        if self.ecn and codepoint != self._codepoint:
            try:
                set_ecn_codepoint(self.sock, codepoint)
                self._codepoint = codepoint
            except OSError:
                self.ecn = False

    def send(self, datagrams: list[tuple[bytes, Any]], ecn: int | None = None) -> int:
        """Send datagrams, coalescing equal-sized runs per address with GSO. Returns bytes sent.

        ``ecn``: the codepoint to send them with (None: as the previous send)."""
        if ecn is not None:
            self.set_codepoint(ecn)
        if not self.gso or len(datagrams) < 2:
            return send_batch(self.sock, datagrams)
        sent = 0
        i = 0
        n = len(datagrams)
        sendmsg = self.sock.sendmsg
        while i < n:
            data, addr = datagrams[i]
            size = len(data)
            j = i + 1
            total = size
            while (j < n and j - i < GSO_MAX_SEGMENTS and datagrams[j][1] == addr
                   and len(datagrams[j][0]) <= size and total + len(datagrams[j][0]) <= GSO_MAX_BYTES):
                last_short = len(datagrams[j][0]) < size
                total += len(datagrams[j][0])
                j += 1
                if last_short:
                    break
            if j - i == 1:
                sent += send_batch(self.sock, [datagrams[i]])
                i = j
                continue
            try:  # scatter-gather: the kernel copies the segments once, no join in Python
                sendmsg([d for d, _ in datagrams[i:j]], [(SOL_UDP, UDP_SEGMENT, _SEGMENT_SIZE.pack(size))],
                        0, addr)
                sent += total
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno == errno.EMSGSIZE:  # this run only (a path MTU below the segment)
                    sent += send_batch(self.sock, datagrams[i:j])
                    i = j
                    continue
                self.gso = False  # e.g. EIO from a device without segmentation: plain sends
                sent += send_batch(self.sock, datagrams[i:])
                break
            i = j
        return sent


def recv_batch(sock: socket.socket, limit: int = RECV_BATCH) -> list[tuple[bytes, Any]]:
    """Read up to ``limit`` datagrams without blocking."""
    out: list[tuple[bytes, Any]] = []
    recvfrom = sock.recvfrom
    try:
        for _ in range(limit):
            out.append(recvfrom(65536))
    except (BlockingIOError, InterruptedError):
        pass
    except ConnectionRefusedError:
        pass
    return out


def send_batch(sock: socket.socket, datagrams: list[tuple[bytes, Any]]) -> int:
    """Send datagrams one by one; a full socket buffer drops the rest (QUIC recovers)."""
    sent = 0
    sendto = sock.sendto
    for data, addr in datagrams:
        try:
            sendto(data, addr)
            sent += len(data)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            continue
    return sent
