"""The gate's reassembly of a pending flow's ClientHello from Initial packets (sans-IO).

The gate verifies a ClientHello before any connection exists; the connection it then creates
reassembles the same datagrams again. The two must not be able to disagree about the bytes, or an
attacker could have one hello verified and another one processed (security finding 1). So this
reassembly is deliberately stricter than the connection's, never looser:

* **Packet numbers.** A packet number seen before is a network duplicate if its payload is byte
  for byte the same (ignored, as the connection ignores it); with a different payload it is refused
  (:attr:`PacketCheck.CONFLICT`): the connection would keep the first and drop the second.
* **CRYPTO bytes.** The first bytes written at an offset win, and an overlap that carries different
  bytes is refused (:attr:`Chunk.CONFLICT`) instead of silently choosing one version.
* **Fragments.** At most ``max_fragments`` non-empty CRYPTO frames per flow
  (:attr:`Chunk.TOO_FRAGMENTED`): bounded work for an unauthenticated sender (finding 4). Real
  clients use a handful, a few more with chaos protection and retransmissions.

The received ranges are a short sorted list (bounded by ``max_fragments``) searched with
:mod:`bisect`.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from enum import Enum


class PacketCheck(Enum):
    """What :meth:`HelloAssembly.packet` found about a packet number."""

    NEW = "new"  #: first time: process its frames
    DUPLICATE = "duplicate"  #: seen before with the same payload: skip it
    CONFLICT = "conflict"  #: seen before with another payload: refuse the flow


class Chunk(Enum):
    """What :meth:`HelloAssembly.add` did with one CRYPTO frame's data."""

    STORED = "stored"
    CONFLICT = "conflict"  #: overlaps stored bytes with different bytes
    TOO_FRAGMENTED = "too_fragmented"  #: one CRYPTO frame more than ``max_fragments``


class HelloAssembly:
    """CRYPTO data of one pending flow (Initial packet number space, offsets from 0).

    Args:
        max_fragments: non-empty CRYPTO frames accepted before :attr:`Chunk.TOO_FRAGMENTED`.
    """

    def __init__(self, max_fragments: int) -> None:
        self.max_fragments = max_fragments
        self.fragments = 0
        self.data = bytearray()
        self._starts: list[int] = []  # disjoint, sorted, not touching
        self._stops: list[int] = []
        self._packets: dict[int, bytes] = {}  # packet number -> SHA-256 of its payload

    @property
    def ranges(self) -> int:
        """How many disjoint byte ranges are stored."""
        return len(self._starts)

    def contiguous(self) -> int:
        """How many bytes from offset 0 are present."""
        return self._stops[0] if self._starts and self._starts[0] == 0 else 0

    def packet(self, packet_number: int, payload: bytes) -> PacketCheck:
        """Record an opened packet; a repeated number is a duplicate only with the same payload."""
        digest = hashlib.sha256(payload).digest()
        seen = self._packets.get(packet_number)
        if seen is None:
            self._packets[packet_number] = digest
            return PacketCheck.NEW
        return PacketCheck.DUPLICATE if seen == digest else PacketCheck.CONFLICT

    def add(self, offset: int, chunk: bytes) -> Chunk:
        """Store ``chunk`` at ``offset`` unless it contradicts bytes already stored."""
        if not chunk:
            return Chunk.STORED
        self.fragments += 1
        if self.fragments > self.max_fragments:
            return Chunk.TOO_FRAGMENTED
        stop = offset + len(chunk)
        starts, stops, data = self._starts, self._stops, self.data
        # Ranges that overlap [offset, stop): their bytes must equal the chunk's.
        i = bisect_right(stops, offset)
        while i < len(starts) and starts[i] < stop:
            lo, hi = max(starts[i], offset), min(stops[i], stop)
            if data[lo:hi] != chunk[lo - offset : hi - offset]:
                return Chunk.CONFLICT
            i += 1
        if len(data) < stop:
            data.extend(bytes(stop - len(data)))
        data[offset:stop] = chunk  # equal to what is stored wherever they overlap
        # Merge with every range that overlaps or touches [offset, stop].
        first = bisect_left(stops, offset)
        last = bisect_right(starts, stop)
        if first < last:
            offset = min(offset, starts[first])
            stop = max(stop, stops[last - 1])
        starts[first:last] = [offset]
        stops[first:last] = [stop]
        return Chunk.STORED
