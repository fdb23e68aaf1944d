"""A sorted set of disjoint half-open integer ranges, used for ACK ranges and reassembly."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence


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
        # Fast path: appending at or after the end (the common case for packet numbers).
        if not ranges or start > ranges[-1].stop:
            ranges.append(range(start, stop))
            return
        last = ranges[-1]
        if start >= last.start:
            if stop > last.stop:
                ranges[-1] = range(last.start, stop)
            return
        i = 0
        n = len(ranges)
        while i < n:
            r = ranges[i]
            if stop < r.start:
                ranges.insert(i, range(start, stop))
                return
            if start > r.stop:
                i += 1
                continue
            # Overlapping or adjacent: merge forwards.
            new_start = min(start, r.start)
            new_stop = max(stop, r.stop)
            j = i + 1
            while j < n and ranges[j].start <= new_stop:
                new_stop = max(new_stop, ranges[j].stop)
                j += 1
            ranges[i:j] = [range(new_start, new_stop)]
            return
        ranges.append(range(start, stop))

    def subtract(self, start: int, stop: int) -> None:
        """Remove ``[start, stop)``."""
        out: list[range] = []
        for r in self._ranges:
            if r.stop <= start or r.start >= stop:
                out.append(r)
                continue
            if r.start < start:
                out.append(range(r.start, start))
            if r.stop > stop:
                out.append(range(stop, r.stop))
        self._ranges = out

    def shift(self) -> range:
        """Remove and return the first range."""
        return self._ranges.pop(0)

    def bounds(self) -> range:
        """Return the range covering all members."""
        return range(self._ranges[0].start, self._ranges[-1].stop)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        for r in self._ranges:
            if value < r.start:
                return False
            if value < r.stop:
                return True
        return False

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
