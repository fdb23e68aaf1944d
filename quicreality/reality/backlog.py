"""Datagrams that would start a new REALITY flow, queued for the gate under load (sans-IO).

A flood of spoofed Initials costs the gate a ClientHello verification each (X25519, HKDF, AES-GCM:
security finding 12c keeps that work constant), so a listener under flood cannot judge them all.
The edge reads its socket in large batches and splits each: datagrams of existing connections and
of flows the gate already knows (pending or relayed) are handled at once; datagrams that would
start a new flow go into this backlog, and each turn of the event loop hands the gate at most
``per_turn`` of them. When the backlog is full the **oldest** is shed (dropped before the gate:
neither judged nor mirrored to the target, as if the network had lost it): a client whose hello was
shed retransmits it at its PTO, and a fresh datagram waits at most ``limit / per_turn`` turns.

So a genuine client's established connection is never queued behind a flood, and a new hello
waits a bounded time instead of the kernel's whole receive buffer (4 MiB, ~3,300 Initials).
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

__all__ = ["DEFAULT_BACKLOG", "DEFAULT_NEW_PER_TURN", "NewFlowBacklog"]

#: Datagrams of new flows kept waiting for the gate at most.
DEFAULT_BACKLOG = 256
#: New-flow datagrams the gate judges per turn of the event loop.
DEFAULT_NEW_PER_TURN = 8

T = TypeVar("T")


class NewFlowBacklog(Generic[T]):
    """A bounded FIFO that sheds its oldest item when full.

    Args:
        limit: most items kept (>= 1).
        per_turn: most items :meth:`take` returns at once (>= 1).
    """

    def __init__(self, limit: int = DEFAULT_BACKLOG, per_turn: int = DEFAULT_NEW_PER_TURN) -> None:
        if limit < 1 or per_turn < 1:
            raise ValueError("limit and per_turn must be at least 1")
        self.limit = limit
        self.per_turn = per_turn
        self._items: deque[T] = deque()
        #: items dropped because the backlog was full
        self.shed = 0

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: T) -> bool:
        """Queue ``item``; returns False if the oldest had to be shed to make room."""
        shed = len(self._items) >= self.limit
        if shed:
            self._items.popleft()
            self.shed += 1
        self._items.append(item)
        return not shed

    def take(self) -> list[T]:
        """The oldest ``per_turn`` items (fewer if there are fewer), removed."""
        items = self._items
        return [items.popleft() for _ in range(min(self.per_turn, len(items)))]
