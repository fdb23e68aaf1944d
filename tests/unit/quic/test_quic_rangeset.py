"""RangeSet: the sorted disjoint ranges behind ACK tracking and reassembly (wire/rangeset.py)."""

from __future__ import annotations

import random
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from quicreality.wire.rangeset import RangeSet


def canonical(members: set[int]) -> list[range]:
    out: list[list[int]] = []
    for v in sorted(members):
        if out and out[-1][1] == v:
            out[-1][1] = v + 1
        else:
            out.append([v, v + 1])
    return [range(a, b) for a, b in out]


_OPS = st.lists(st.tuples(st.booleans(), st.integers(0, 80), st.integers(-2, 15)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_OPS)
def test_add_subtract_contains_and_missing_match_a_set_of_integers(ops: list[tuple[bool, int, int]]) -> None:
    rs = RangeSet()
    model: set[int] = set()
    for is_add, start, length in ops:
        stop = start + length
        if is_add:
            rs.add(start, stop)
            model |= set(range(start, stop))
        else:
            rs.subtract(start, stop)
            model -= set(range(start, stop))
        assert list(rs) == canonical(model)
    for v in range(-1, 100):
        assert (v in rs) == (v in model)
    for start, stop in ((0, 100), (5, 6), (30, 40), (90, 95)):
        holes = {v for r in rs.missing(start, stop) for v in r}
        assert holes == set(range(start, stop)) - model
        assert rs.missing(start, stop) == canonical(holes)


def test_inserting_many_ranges_before_a_far_range_is_not_quadratic() -> None:
    """Finding 4 (the REALITY gate's CRYPTO reassembly): 1-byte pieces in front of a far sentinel.

    The linear scan took O(n) per insertion (O(n^2) in all, tens of seconds for this n); bisect
    takes O(log n) comparisons plus a memmove.
    """
    n = 30_000
    rs = RangeSet()
    rs.add(10 * n, 10 * n + 1)  # a far sentinel: nothing below appends at the end
    start = time.process_time()
    for i in range(n):
        rs.add(2 * i, 2 * i + 1)
        if i % 1000 == 0:
            assert time.process_time() - start < 1.5, f"{i} insertions took over 1.5 s of CPU"
    for i in range(n):
        assert 2 * i in rs and 2 * i + 1 not in rs
    assert len(rs) == n + 1
    assert time.process_time() - start < 1.5


def test_take_removes_and_counts_what_it_removed() -> None:
    rng = random.Random(7)
    rs, model = RangeSet(), set()
    for _ in range(300):
        start = rng.randrange(0, 100)
        stop = start + rng.randrange(0, 12)
        if rng.random() < 0.6:
            rs.add(start, stop)
            model |= set(range(start, stop))
        else:
            expected = len(model & set(range(start, stop)))
            assert rs.take(start, stop) == expected
            model -= set(range(start, stop))
        assert list(rs) == canonical(model)
    assert rs.take(5, 5) == 0 and rs.take(9, 3) == 0
