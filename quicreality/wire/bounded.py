"""A bounded queue as a plain list: what a per-connection ``deque(maxlen=...)`` did, smaller.

An empty ``collections.deque`` allocates its first 64-slot block at once (about 600 bytes with
the object); an empty list is 56 bytes. A connection kept a handful of such queues (PATH_RESPONSE
echoes, off-path challenges, validated addresses, skipped packet numbers) that are empty for
nearly all of its life (docs/performance.md, "Idle connection memory"). They hold at most a few
dozen entries, so dropping from the front of a list costs nothing that shows.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

__all__ = ["push_bounded"]


def push_bounded(items: list[T], item: T, maxlen: int) -> None:
    """Append ``item`` to ``items``, dropping the oldest entries beyond ``maxlen``."""
    items.append(item)
    if len(items) > maxlen:
        del items[: len(items) - maxlen]
