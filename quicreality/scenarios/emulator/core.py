"""Pure, seeded, deterministic per-direction link emulator core.

Theory of operation
-------------------
:class:`DirectionCore` owns one direction of the link.  The I/O loop hands it
each packet read from the ingress TUN with the current time
(:meth:`DirectionCore.submit`) and later asks for the packets that are due
(:meth:`DirectionCore.release`).  The core never reads a clock and never does
I/O, so tests drive it on virtual time.

Per packet (``sch_netem`` order)::

    drop list? -> blackhole? -> random loss? -> Gilbert-Elliott loss? -> duplicate? -> corrupt?
      -> drop-tail admission -> CE marking? -> serializer (rate) -> delay + jitter -> release queue

CE marking (``ecn_mark_threshold_ms``, RFC 3168 §5): an admitted ECT(0)/ECT(1) packet that
will wait longer than the threshold before its serialization starts gets the CE codepoint
(:func:`mark_ce`; the IPv4 header checksum is updated, RFC 1624); it is queued as usual.

Determinism: every random stage has its own ``random.Random`` stream seeded
from ``(seed, direction, stage)``.  The loss decision for the *n*-th packet
therefore depends only on the seed and *n* (and on the blackhole/earlier
stages), never on timing, queue drops or the jitter draws.

Queue: a virtual serializer.  ``busy_until`` is when the link finishes the
last admitted packet; a packet arriving at ``now`` starts at
``max(now, busy_until)`` and finishes ``size*8/rate`` later.  ``queue_packets``
counts packets waiting behind the one in service; ``queue_bytes`` counts all
bytes in the system including the packet in service.  Sizes are IP packet
bytes (no link-layer overhead).

Release: ``finish + delay + U(-jitter, +jitter)`` (clamped at ``finish``).
With ``reorder=False`` the release time is ``max(previous release, t)``, so
packets stay in FIFO order; with ``reorder=True`` a heap orders by release time.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable

from ..model import Impairment

__all__ = ["DROP_CAUSES", "DirectionCore", "corrupt_packet", "ecn_of_packet", "mark_ce"]

#: Counter names for drops, in stage order.
DROP_CAUSES = ("droplist", "blackhole", "loss", "gilbert_elliott", "queue")

_LATE_S = 0.0005  # a release later than this after its due time counts as "late"


def _oc_add(a: int, b: int) -> int:
    s = a + b
    return (s & 0xFFFF) + (s >> 16)


def corrupt_packet(pkt: bytes, rng: random.Random, fix_checksum: bool) -> bytes | None:
    """Flip one random bit of an IP packet after the IP header.

    Without ``fix_checksum`` the bit is anywhere in the transport header or
    payload (anywhere in the packet if it has no bytes after the IP header);
    nothing is repaired, so the receiving kernel drops the packet on its
    UDP/TCP checksum, as with netem.  With ``fix_checksum`` the bit is in the
    UDP/TCP payload and the transport checksum is updated incrementally
    (RFC 1624, eqn. 3), so the application receives the corrupted payload.

    Args:
        pkt: An IPv4 or IPv6 packet as read from a TUN device.
        rng: The corruption random stream.
        fix_checksum: Whether to keep the transport checksum valid.

    Returns:
        The corrupted packet, or None if there was nothing to corrupt (empty
        payload with ``fix_checksum``).
    """
    n = len(pkt)
    if n == 0:
        return None
    version = pkt[0] >> 4
    if version == 4:
        hl = (pkt[0] & 0x0F) * 4
        proto = pkt[9]
    elif version == 6:
        hl, proto = 40, pkt[6]
    else:
        hl, proto = 0, -1
    if not fix_checksum or proto not in (6, 17) or n <= hl + 8:
        if fix_checksum:
            return None
        lo = hl if n > hl else 0
        off = rng.randrange(lo, n)
        buf = bytearray(pkt)
        buf[off] ^= 1 << rng.randrange(8)
        return bytes(buf)
    if proto == 17:
        payload, cs_off = hl + 8, hl + 6
    else:
        payload, cs_off = hl + (pkt[hl + 12] >> 4) * 4, hl + 16
    if payload >= n:
        return None
    off = rng.randrange(payload, n)
    bit = 1 << rng.randrange(8)
    buf = bytearray(pkt)
    hc = (buf[cs_off] << 8) | buf[cs_off + 1]
    rel = off - hl
    w = hl + (rel & ~1)
    old = (buf[w] << 8) | (buf[w + 1] if w + 1 < n else 0)
    buf[off] ^= bit
    new = (buf[w] << 8) | (buf[w + 1] if w + 1 < n else 0)
    if not (proto == 17 and hc == 0):  # UDP checksum 0 = "no checksum": leave it
        x = _oc_add(_oc_add(~hc & 0xFFFF, ~old & 0xFFFF), new)
        ncs = ~x & 0xFFFF
        if proto == 17 and ncs == 0:
            ncs = 0xFFFF
        buf[cs_off] = ncs >> 8
        buf[cs_off + 1] = ncs & 0xFF
    return bytes(buf)


def ecn_of_packet(pkt: bytes) -> int:
    """The ECN codepoint (two low bits of the IPv4 TOS / IPv6 Traffic Class) of an IP packet."""
    if len(pkt) >= 2 and pkt[0] >> 4 == 4:
        return pkt[1] & 0b11
    if len(pkt) >= 2 and pkt[0] >> 4 == 6:
        return (pkt[1] >> 4) & 0b11
    return 0


def mark_ce(pkt: bytes) -> bytes | None:
    """The packet with ECN set to CE (0b11), or None if it is Not-ECT or already CE.

    IPv4: the TOS byte changes and the header checksum is updated incrementally (RFC 1624,
    eqn. 3); IPv6 has no header checksum. The UDP checksum does not cover either field
    (RFC 768 / RFC 8200 §8.1 pseudo-headers).
    """
    ecn = ecn_of_packet(pkt)
    if ecn == 0 or ecn == 0b11:
        return None
    buf = bytearray(pkt)
    if pkt[0] >> 4 == 4:
        old = (buf[0] << 8) | buf[1]
        buf[1] |= 0b11
        new = (buf[0] << 8) | buf[1]
        hc = (buf[10] << 8) | buf[11]
        ncs = ~_oc_add(_oc_add(~hc & 0xFFFF, ~old & 0xFFFF), new) & 0xFFFF
        buf[10], buf[11] = ncs >> 8, ncs & 0xFF
    else:
        buf[1] |= 0b11 << 4
    return bytes(buf)


class DirectionCore:
    """One direction of the emulated link: decisions and release schedule.

    Args:
        imp: The (validated) impairment for this direction.
        seed: Run seed; combined with ``direction`` and the stage name per stream.
        direction: ``"to_server"`` or ``"to_client"`` (part of the seed).
        origin: Time origin (seconds, the caller's clock) of the blackhole schedule.
    """

    __slots__ = (
        "imp", "direction", "seed", "origin",
        "_loss", "_ge", "_ge_bad", "_dup", "_corrupt", "_fix_cs", "_droplist", "_max_burst",
        "_run",
        "_bh", "_bh_until", "_rate_bps", "_qpk", "_qby", "_delay", "_jitter", "_reorder", "_ce_s",
        "_r_loss", "_r_ge", "_r_dup", "_r_corrupt", "_r_jitter",
        "_busy_until", "_inq", "_inq_bytes", "_last_release", "_fifo", "_heap", "_seq",
        "n_in", "bytes_in", "n_out", "bytes_out", "drops", "n_duplicated", "n_corrupted",
        "n_late", "max_late_s", "max_queue_pkts", "max_queue_bytes", "n_ce_marked",
    )

    def __init__(self, imp: Impairment, seed: int, direction: str, origin: float = 0.0) -> None:
        imp.validate(f"link.{direction}")
        self.imp = imp
        self.direction = direction
        self._loss = imp.loss
        self._max_burst = imp.loss_max_burst
        self._ge = imp.gilbert_elliott
        self._dup = imp.duplicate
        self._corrupt = imp.corrupt
        self._fix_cs = imp.corrupt_fix_checksum
        self._bh = imp.blackhole
        self._droplist = frozenset(imp.drop_packets)
        self._rate_bps = imp.rate_mbit * 1e6 if imp.rate_mbit is not None else 0.0
        self._qpk = imp.queue_limit_packets
        self._qby = imp.queue_bytes
        self._delay = imp.delay_ms / 1000.0
        self._jitter = imp.jitter_ms / 1000.0
        self._reorder = imp.reorder
        ce_ms = imp.ecn_mark_threshold_ms
        self._ce_s = ce_ms / 1000.0 if ce_ms is not None else None
        self.reset(seed, origin)

    def reset(self, seed: int, origin: float) -> None:
        """Re-seed every stream, reset Gilbert-Elliott state, queue, schedule and counters.

        Packets already scheduled for release are kept (they are in flight).
        """
        self.seed = seed
        self.origin = origin
        tag = f"quicreality/{seed}/{self.direction}/"
        self._r_loss = random.Random(tag + "loss")
        self._r_ge = random.Random(tag + "gilbert_elliott")
        self._r_dup = random.Random(tag + "duplicate")
        self._r_corrupt = random.Random(tag + "corrupt")
        self._r_jitter = random.Random(tag + "jitter")
        self._ge_bad = False
        self._run = 0  # consecutive random-loss drops
        self._bh_until = origin + self._bh.windows()[-1][1] if self._bh is not None else origin
        self._busy_until = 0.0
        self._inq: deque[tuple[float, int]] = deque()
        self._inq_bytes = 0
        if not hasattr(self, "_heap"):
            self._last_release = 0.0
            self._fifo = not (self._reorder and self._jitter > 0)
            self._heap: list = []  # FIFO: deque of (t, pkt); reorder: heap of (t, seq, pkt)
            if self._fifo:
                self._heap = deque()  # type: ignore[assignment]
            self._seq = 0
        self.n_in = 0
        self.bytes_in = 0
        self.n_out = 0
        self.bytes_out = 0
        self.drops = dict.fromkeys(DROP_CAUSES, 0)
        self.n_duplicated = 0
        self.n_corrupted = 0
        self.n_late = 0
        self.max_late_s = 0.0
        self.max_queue_pkts = 0
        self.max_queue_bytes = 0
        self.n_ce_marked = 0

    # ------------------------------------------------------------------ ingress

    def submit(self, pkt: bytes, now: float) -> int:
        """Apply the impairments to one packet arriving at ``now``.

        Args:
            pkt: The IP packet.
            now: Arrival time in seconds (monotonic, caller's clock).

        Returns:
            The number of copies scheduled for release (0 = dropped; the cause is
            counted in :attr:`drops`).
        """
        self.n_in += 1
        self.bytes_in += len(pkt)
        if self._droplist and self.n_in in self._droplist:
            self.drops["droplist"] += 1
            return 0
        if self._bh is not None and now < self._bh_until and self._bh.is_black(now - self.origin):
            self.drops["blackhole"] += 1
            return 0
        if self._loss:
            if self._r_loss.random() < self._loss and (
                    self._max_burst is None or self._run < self._max_burst):
                self._run += 1
                self.drops["loss"] += 1
                return 0
            self._run = 0
        ge = self._ge
        if ge is not None:
            r = self._r_ge
            if self._ge_bad:
                lost = r.random() < ge.loss_bad
                if r.random() < ge.r:
                    self._ge_bad = False
            else:
                lost = ge.loss_good > 0 and r.random() < ge.loss_good
                if r.random() < ge.p:
                    self._ge_bad = True
            if lost:
                self.drops["gilbert_elliott"] += 1
                return 0
        copies = 1
        if self._dup and self._r_dup.random() < self._dup:
            copies = 2
            self.n_duplicated += 1
        first = pkt
        if self._corrupt and self._r_corrupt.random() < self._corrupt:
            c = corrupt_packet(pkt, self._r_corrupt, self._fix_cs)
            if c is not None:
                first = c
                self.n_corrupted += 1
        sent = self._enqueue(first, now)
        if copies == 2:
            sent += self._enqueue(pkt, now)
        return sent

    def _enqueue(self, pkt: bytes, now: float) -> int:
        """Drop-tail admission, serializer and delay; schedule the release."""
        t = now
        if self._rate_bps:
            size = len(pkt)
            inq = self._inq
            while inq and inq[0][0] <= now:
                self._inq_bytes -= inq.popleft()[1]
            if self._qby is not None:
                if self._inq_bytes + size > self._qby:
                    self.drops["queue"] += 1
                    return 0
            elif len(inq) > self._qpk:  # type: ignore[operator]
                self.drops["queue"] += 1
                return 0
            start = self._busy_until if self._busy_until > now else now
            if self._ce_s is not None and start - now > self._ce_s:
                marked = mark_ce(pkt)
                if marked is not None:
                    pkt = marked
                    self.n_ce_marked += 1
            t = start + size * 8.0 / self._rate_bps
            self._busy_until = t
            inq.append((t, size))
            self._inq_bytes += size
            if len(inq) > self.max_queue_pkts:
                self.max_queue_pkts = len(inq)
            if self._inq_bytes > self.max_queue_bytes:
                self.max_queue_bytes = self._inq_bytes
        if self._jitter:
            d = self._delay + self._r_jitter.uniform(-self._jitter, self._jitter)
            t += d if d > 0 else 0.0
        else:
            t += self._delay
        if self._fifo:
            if t < self._last_release:
                t = self._last_release
            self._last_release = t
            self._heap.append((t, pkt))  # type: ignore[union-attr]
        else:
            self._seq += 1
            heapq.heappush(self._heap, (t, self._seq, pkt))
        return 1

    # ------------------------------------------------------------------ egress

    def next_due(self) -> float | None:
        """Release time of the earliest scheduled packet, or None."""
        h = self._heap
        return h[0][0] if h else None

    def release(self, now: float, write: Callable[[bytes], object]) -> int:
        """Call ``write(pkt)`` for every packet due at or before ``now``, in order.

        Returns:
            The number of packets released.
        """
        h = self._heap
        n = 0
        if self._fifo:
            while h and h[0][0] <= now:
                t, pkt = h.popleft()  # type: ignore[attr-defined]
                late = now - t
                if late > _LATE_S:
                    self.n_late += 1
                    if late > self.max_late_s:
                        self.max_late_s = late
                write(pkt)
                self.bytes_out += len(pkt)
                n += 1
        else:
            pop = heapq.heappop
            while h and h[0][0] <= now:
                t, _, pkt = pop(h)
                late = now - t
                if late > _LATE_S:
                    self.n_late += 1
                    if late > self.max_late_s:
                        self.max_late_s = late
                write(pkt)
                self.bytes_out += len(pkt)
                n += 1
        self.n_out += n
        return n

    def in_flight(self) -> int:
        """Packets scheduled but not yet released."""
        return len(self._heap)

    def stats(self) -> dict[str, object]:
        """Counters as a plain dict (for the stats JSON)."""
        return {
            "packets_in": self.n_in,
            "bytes_in": self.bytes_in,
            "packets_out": self.n_out,
            "bytes_out": self.bytes_out,
            "dropped": dict(self.drops),
            "dropped_total": sum(self.drops.values()),
            "duplicated": self.n_duplicated,
            "corrupted": self.n_corrupted,
            "ce_marked": self.n_ce_marked,
            "in_flight": self.in_flight(),
            "late_releases_over_0_5ms": self.n_late,
            "max_late_ms": round(self.max_late_s * 1000.0, 3),
            "max_queue_packets": self.max_queue_pkts,
            "max_queue_bytes": self.max_queue_bytes,
        }
