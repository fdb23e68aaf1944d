"""The emulator's NAT rebinding stage: rewrites the client's UDP source mid-run (pure, seeded).

Theory of operation
-------------------
:class:`RebindStage` sits in front of the link as a NAT for the client (QIR's ``rebind-port`` and
``rebind-addr`` scenarios). Before the first rebinding (:attr:`Rebind.first_s` after the origin)
packets pass untouched. At each rebinding epoch every client flow ``(address, port)`` seen going
to the server gets a new outside mapping: a fresh port drawn from the seeded stream (``port``),
or also the next address of :attr:`Rebind.addresses` (``addr``). Client -> server packets have
their source rewritten to the mapping; server -> client packets to a current mapping have their
destination rewritten back; server -> client packets to a mapping that was replaced are dropped
(the NAT forgot it), the client's own untranslated address of epoch 0 included. Epochs are
computed from the packet's time, so the stage needs no timer.

Checksums are updated incrementally (RFC 1624 eqn. 3): the IPv4 header checksum when an
address changes, the UDP checksum for the pseudo-header address and the port (a UDP checksum of
0 over IPv4 means "none" and stays 0). IPv4 and IPv6 (UDP directly after the fixed header).
Everything else (TCP, ICMP, fragments) passes untouched.
"""

from __future__ import annotations

import ipaddress
import random

from ..model import Rebind

__all__ = ["RebindStage", "checksum_adjust"]

#: Outside ports drawn for new mappings (above the usual ephemeral range's start).
PORT_RANGE = (20000, 60999)
#: Old mappings remembered (to drop what the server still sends them) per flow.
STALE_KEEP = 64

_Flow = tuple[bytes, int]  # (raw address, port)


def _fold(x: int) -> int:
    while x >> 16:
        x = (x & 0xFFFF) + (x >> 16)
    return x


def checksum_adjust(checksum: int, old: bytes, new: bytes) -> int:
    """The Internet checksum after the even-length field ``old`` became ``new`` (RFC 1624 eqn. 3:
    HC' = ~(~HC + ~m + m'), 16-bit word by word)."""
    acc = ~checksum & 0xFFFF
    for i in range(0, len(old), 2):
        acc += (~((old[i] << 8) | old[i + 1]) & 0xFFFF) + ((new[i] << 8) | new[i + 1])
    return ~_fold(acc) & 0xFFFF


class RebindStage:
    """NAT for the client side of the link; see the module docstring."""

    __slots__ = ("_epoch", "_inside", "_outside", "_rng", "_stale", "origin", "rebind",
                 "n_dropped_stale", "n_rebinds", "n_rewritten_to_client", "n_rewritten_to_server")

    def __init__(self, rebind: Rebind, seed: int, origin: float) -> None:
        rebind.validate()
        self.rebind = rebind
        self.rearm(origin, seed)

    def rearm(self, origin: float, seed: int) -> None:
        """Restart the schedule at ``origin`` with a fresh seeded stream and no mappings."""
        self.origin = origin
        self._rng = random.Random(f"quicreality/{seed}/rebind")
        self._epoch = 0
        self._outside: dict[_Flow, _Flow] = {}  # inside flow -> current outside mapping
        self._inside: dict[_Flow, _Flow] = {}  # current outside mapping -> inside flow
        self._stale: set[_Flow] = set()
        self.n_rebinds = 0
        self.n_rewritten_to_server = 0
        self.n_rewritten_to_client = 0
        self.n_dropped_stale = 0

    # ------------------------------------------------------------ mapping

    def _advance(self, now: float) -> None:
        epoch = self.rebind.epoch(now - self.origin)
        if epoch == self._epoch:
            return
        self._epoch = epoch
        self.n_rebinds += 1
        for inside in list(self._outside):
            self._remap(inside)

    def _remap(self, inside: _Flow) -> _Flow:
        old = self._outside.get(inside)
        if old is not None:
            self._inside.pop(old, None)
        if len(self._stale) >= STALE_KEEP * max(1, len(self._outside)):
            self._stale.clear()
        # a flow's first mapping replaces the untranslated one of epoch 0 (the client's own
        # address, which the server may have learned): a NAT that rebinds forgets it too
        self._stale.add(inside if old is None else old)
        addr = inside[0]
        if self.rebind.kind == "addr":
            pool = self.rebind.addresses
            candidate = ipaddress.ip_address(pool[(self._epoch - 1) % len(pool)]).packed
            if len(candidate) == len(addr):
                addr = candidate
        while True:
            new = (addr, self._rng.randint(*PORT_RANGE))
            if new not in self._inside and new != inside and new not in self._stale:
                break
        self._outside[inside] = new
        self._inside[new] = inside
        self._stale.discard(new)
        return new

    # ------------------------------------------------------------ packets

    def to_server(self, pkt: bytes, now: float) -> bytes:
        """A client -> server packet: its source becomes the current outside mapping."""
        self._advance(now)
        if self._epoch == 0:
            return pkt
        where = _udp_offsets(pkt)
        if where is None:
            return pkt
        src_off, _, alen, udp = where
        inside = (pkt[src_off:src_off + alen], (pkt[udp] << 8) | pkt[udp + 1])
        outside = self._outside.get(inside) or self._remap(inside)
        self.n_rewritten_to_server += 1
        return _rewrite(pkt, src_off, alen, udp, udp, outside)

    def to_client(self, pkt: bytes, now: float) -> bytes | None:
        """A server -> client packet: a current mapping is translated back, a replaced one is
        dropped (None), anything else passes."""
        self._advance(now)
        if self._epoch == 0:
            return pkt
        where = _udp_offsets(pkt)
        if where is None:
            return pkt
        _, dst_off, alen, udp = where
        outside = (pkt[dst_off:dst_off + alen], (pkt[udp + 2] << 8) | pkt[udp + 3])
        inside = self._inside.get(outside)
        if inside is None:
            if outside in self._stale:
                self.n_dropped_stale += 1
                return None
            return pkt
        self.n_rewritten_to_client += 1
        return _rewrite(pkt, dst_off, alen, udp, udp + 2, inside)

    def stats(self) -> dict[str, object]:
        """Counters as a plain dict (for the stats JSON)."""
        return {"kind": self.rebind.kind, "rebinds": self.n_rebinds,
                "rewritten_to_server": self.n_rewritten_to_server,
                "rewritten_to_client": self.n_rewritten_to_client,
                "dropped_stale": self.n_dropped_stale,
                "mappings": {f"{ipaddress.ip_address(a)}:{p}": f"{ipaddress.ip_address(b)}:{q}"
                             for (a, p), (b, q) in self._outside.items()}}


def _udp_offsets(pkt: bytes) -> tuple[int, int, int, int] | None:
    """(source address offset, destination address offset, address length, UDP header offset)
    of an unfragmented UDP packet, else None."""
    if len(pkt) < 28:
        return None
    version = pkt[0] >> 4
    if version == 4:
        hl = (pkt[0] & 0x0F) * 4
        if pkt[9] != 17 or (pkt[6] & 0x3F) or pkt[7] or len(pkt) < hl + 8:
            return None  # not UDP, or a fragment (MF set or an offset)
        return 12, 16, 4, hl
    if version == 6 and len(pkt) >= 48 and pkt[6] == 17:
        return 8, 24, 16, 40
    return None


def _rewrite(pkt: bytes, addr_off: int, alen: int, udp: int, port_off: int, flow: _Flow) -> bytes:
    """``pkt`` with the address at ``addr_off`` and the port at ``port_off`` set to ``flow``."""
    buf = bytearray(pkt)
    old_addr, new_addr = bytes(buf[addr_off:addr_off + alen]), flow[0]
    old_port, new_port = bytes(buf[port_off:port_off + 2]), flow[1].to_bytes(2, "big")
    buf[addr_off:addr_off + alen] = new_addr
    buf[port_off:port_off + 2] = new_port
    if alen == 4 and old_addr != new_addr:
        hc = (buf[10] << 8) | buf[11]
        buf[10:12] = checksum_adjust(hc, old_addr, new_addr).to_bytes(2, "big")
    uc = (buf[udp + 6] << 8) | buf[udp + 7]
    if uc or alen == 16:
        uc = checksum_adjust(uc, old_addr + old_port, new_addr + new_port)
        buf[udp + 6:udp + 8] = (uc or 0xFFFF).to_bytes(2, "big")
    return bytes(buf)
