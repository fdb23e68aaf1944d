"""A sorted set of disjoint half-open integer ranges, used for ACK ranges and reassembly.

Lookups, insertions and removals find their place by binary search (:mod:`bisect`), so a peer that
sends many small out-of-order pieces costs O(log n) comparisons per piece, not O(n) (the list
splice that follows is a ``memmove``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from operator import attrgetter
from typing import Final

_START: Final = attrgetter("start")
_STOP: Final = attrgetter("stop")


class RangeSet(Sequence[range]):
    """Sorted, non-overlapping, non-adjacent ``range`` objects (step 1)."""

    __slots__ = ("_ranges",)

    def __init__(self, ranges: Iterable[range] = ()):
        self._ranges: list[range] = []
        for r in ranges:
            self.add(r.start, r.stop)

    def add(self, start: int, stop: int | None = None) -> None:
        """Add ``[start, stop)``; ``stop`` defaults to ``start + 1``."""
        if stop is None:
            stop = start + 1
        if stop <= start:
            return
        ranges = self._ranges
        # Fast path: appending at or after the end (the common case for packet numbers). Each
        # attribute of a range is read once: compiled, ``r.stop`` is a generic attribute lookup.
        if not ranges:
            ranges.append(range(start, stop))
            return
        last = ranges[-1]
        last_stop = last.stop
        if start > last_stop:
            ranges.append(range(start, stop))
            return
        last_start = last.start
        if start >= last_start:
            if stop > last_stop:
                ranges[-1] = range(last_start, stop)
            return
        # ranges[i:j] overlap or touch [start, stop): stop >= start and start <= stop.
        i = bisect_left(ranges, start, key=_STOP)
        j = bisect_right(ranges, stop, lo=i, key=_START)
        if i == j:
            ranges.insert(i, range(start, stop))
            return
        first, end = ranges[i], ranges[j - 1]
        new = range(min(start, first.start), max(stop, end.stop))
        if j == i + 1:
            ranges[i] = new
        else:
            ranges[i:j] = [new]

    def subtract(self, start: int, stop: int) -> None:
        """Remove ``[start, stop)``."""
        self.take(start, stop)

    def take(self, start: int, stop: int) -> int:
        """Remove ``[start, stop)`` and return how many members that removed.

        Costs O(log n) plus the ranges it touches, so a caller that takes each ACK range from a
        set of outstanding packet numbers pays for the ranges it removes, not for the whole set.
        """
        if stop <= start:
            return 0
        ranges = self._ranges
        # ranges[i:j] overlap [start, stop): stop > start and start < stop.
        i = bisect_right(ranges, start, key=_STOP)
        j = bisect_left(ranges, stop, lo=i, key=_START)
        if i == j:
            return 0
        removed = 0
        for k in range(i, j):
            r = ranges[k]
            removed += min(r.stop, stop) - max(r.start, start)
        keep: list[range] = []
        first, last = ranges[i], ranges[j - 1]
        if first.start < start:
            keep.append(range(first.start, start))
        if last.stop > stop:
            keep.append(range(stop, last.stop))
        ranges[i:j] = keep
        return removed

    def missing(self, start: int, stop: int) -> list[range]:
        """The parts of ``[start, stop)`` that are not in the set, in order."""
        ranges = self._ranges
        out: list[range] = []
        pos = start
        i = bisect_right(ranges, start, key=_STOP)
        n = len(ranges)
        while i < n and pos < stop:
            r = ranges[i]
            if r.start >= stop:
                break
            if r.start > pos:
                out.append(range(pos, r.start))
            pos = r.stop
            i += 1
        if pos < stop:
            out.append(range(pos, stop))
        return out

    def shift(self) -> range:
        """Remove and return the first range."""
        return self._ranges.pop(0)

    def bounds(self) -> range:
        """Return the range covering all members."""
        return range(self._ranges[0].start, self._ranges[-1].stop)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        ranges = self._ranges
        if not ranges:
            return False
        last = ranges[-1]
        if value >= last.start:  # the common case for packet numbers: at or past the newest range
            return value < last.stop
        i = bisect_right(ranges, value, key=_START)
        return i > 0 and value < ranges[i - 1].stop

    def __getitem__(self, key):  # type: ignore[no-untyped-def, override]
        return self._ranges[key]

    def __len__(self) -> int:
        return len(self._ranges)

    def __iter__(self) -> Iterator[range]:
        return iter(self._ranges)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RangeSet):
            return NotImplemented
        return self._ranges == other._ranges

    def __repr__(self) -> str:
        return f"RangeSet({self._ranges!r})"
