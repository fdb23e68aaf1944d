"""The pool's inlined draws (:meth:`_Pool.shuffle`, :meth:`_Pool.spread`) are exactly
:meth:`_Pool.below`'s, in the same order: the planner's speed-up changes no plan."""

from __future__ import annotations

import random
from collections.abc import Callable

from quicreality.quic import initial_layout as il


def seeded(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


def reference_shuffle(pool: il._Pool, items: list[int]) -> None:
    for i in range(len(items) - 1, 0, -1):
        j = pool.below(i + 1)
        items[i], items[j] = items[j], items[i]


def reference_spread(pool: il._Pool, frames: list[str], spare: int) -> tuple[list[object], int]:
    out: list[object] = []
    for frame in frames:
        run = pool.below(spare + 1)
        if run:
            out.append(run)
            spare -= run
        out.append(frame)
    return out, spare


def test_shuffle_draws_like_below() -> None:
    for seed in range(50):
        fast, slow = il._Pool(seeded(seed)), il._Pool(seeded(seed))
        for size in (0, 1, 2, 40, 255, 256, 257, 700):
            a, b = list(range(size)), list(range(size))
            fast.shuffle(a)
            reference_shuffle(slow, b)
            assert a == b
        assert fast(64) == slow(64)  # the same bytes are left in the stream


def test_spread_draws_like_below() -> None:
    for seed in range(50):
        fast, slow = il._Pool(seeded(seed)), il._Pool(seeded(seed))
        for spare in (0, 1, 5, 255, 256, 300, 1100, 70000):
            frames = [f"f{i}" for i in range(seed % 23 + 1)]
            assert fast.spread(frames, spare) == reference_spread(slow, frames, spare)
        assert fast(64) == slow(64)
