"""Packet-number skipping against optimistic ACKs (RFC 9000 §21.4, §13.1). Sans-IO.

A peer that acknowledges packets before receiving them (to inflate our congestion window) cannot
know which packet numbers we never used. Now and then the application space skips one, at
intervals drawn from SHA-256 over the space's send secret and a counter (secret, so the peer cannot
predict the schedule, and no draw from the configuration's ``rng`` that would shift everything
else it produces); an ACK that covers a skipped number is a PROTOCOL_VIOLATION (RFC 9000 §13.1:
"an acknowledgment for a packet it did not send").
"""

from __future__ import annotations

import hashlib
from typing import Final

from ...wire.bounded import push_bounded
from ...wire.rangeset import RangeSet

#: The first skip comes at packet number FIRST_SKIP_MIN + [0, SKIP_INTERVAL_MAX).
FIRST_SKIP_MIN: Final = 16
#: Packets between two skips: uniform in [SKIP_INTERVAL_MIN, SKIP_INTERVAL_MAX).
SKIP_INTERVAL_MIN: Final = 128
SKIP_INTERVAL_MAX: Final = 1024
#: Skipped numbers remembered (older ones are far below anything a peer still acknowledges).
MAX_SKIPPED: Final = 32


class PacketNumberSkipper:
    """Chooses the packet numbers the application space never uses, and remembers the recent ones."""

    __slots__ = ("_draws", "_key", "_next_skip", "skipped")

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"quicreality pn skip" + secret).digest()
        self._draws = 0
        self._next_skip = FIRST_SKIP_MIN + self._draw(SKIP_INTERVAL_MAX)
        #: the skipped packet numbers, oldest first
        self.skipped: list[int] = []  # at most MAX_SKIPPED, oldest dropped

    def _draw(self, n: int) -> int:
        """A number in [0, n) from the keyed counter (bias below 2**-200: negligible)."""
        self._draws += 1
        block = hashlib.sha256(self._key + self._draws.to_bytes(8, "big")).digest()
        return int.from_bytes(block, "big") % n

    def allocate(self, pn: int) -> int:
        """The packet number to use when ``pn`` is next: ``pn``, or ``pn + 1`` if ``pn`` is skipped."""
        if pn < self._next_skip:
            return pn
        push_bounded(self.skipped, pn, MAX_SKIPPED)
        self._next_skip = pn + 1 + SKIP_INTERVAL_MIN + self._draw(SKIP_INTERVAL_MAX - SKIP_INTERVAL_MIN)
        return pn + 1

    def acknowledged_skipped(self, ranges: RangeSet) -> int | None:
        """A skipped packet number that ``ranges`` acknowledges, if any."""
        for pn in self.skipped:
            if pn in ranges:
                return pn
        return None
