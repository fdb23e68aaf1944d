"""Datagrams that would start a new REALITY flow, queued for the gate under load (sans-IO).

A flood of spoofed Initials costs the gate a ClientHello verification each (X25519, HKDF, AES-GCM:
security finding 12c keeps that work constant), so a listener under flood cannot judge them all.
The edge reads its socket in large batches and splits each: datagrams of existing connections and
of flows the gate already knows (pending or relayed) are handled at once; datagrams that would
start a new flow go into this backlog, and each turn of the event loop hands the gate at most
``per_turn`` of them, oldest first. Two bounds shed (drop before the gate: neither judged nor
mirrored to the target, as if the network had lost it):

* **age**: a datagram that waited ``max_age`` seconds is shed when the gate would take it: its
  client has retransmitted by then (a QUIC client's first PTO is about 1 s, RFC 9002 §6.2.2), and a
  fresh datagram waits at most ``max_age`` instead of behind a whole flood;
* **size**: beyond ``max_bytes`` queued the oldest are shed (the same room as the socket's 4 MiB
  receive buffer, so a burst the kernel used to absorb is still absorbed).

So a genuine client's established connection is never queued behind a flood, and a new hello
is judged within ``max_age`` or shed. Times are the caller's ``now``.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

__all__ = ["DEFAULT_MAX_AGE", "DEFAULT_MAX_BYTES", "DEFAULT_NEW_PER_TURN", "NewFlowBacklog"]

#: Bytes of new-flow datagrams kept waiting at most (the listener socket's receive buffer).
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
#: Seconds a new-flow datagram may wait for the gate.
DEFAULT_MAX_AGE = 2.0
#: New-flow datagrams the gate judges per turn of the event loop.
DEFAULT_NEW_PER_TURN = 8

T = TypeVar("T")


class NewFlowBacklog(Generic[T]):
    """A FIFO bounded in bytes and in age that sheds its oldest items.

    Args:
        max_bytes: most bytes kept (>= 1).
        max_age: most seconds an item waits (> 0).
        per_turn: most items :meth:`take` returns at once (>= 1).
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_age: float = DEFAULT_MAX_AGE,
                 per_turn: int = DEFAULT_NEW_PER_TURN) -> None:
        if max_bytes < 1 or max_age <= 0 or per_turn < 1:
            raise ValueError("max_bytes and per_turn must be at least 1, max_age positive")
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.per_turn = per_turn
        self._items: deque[tuple[float, int, T]] = deque()
        self._bytes = 0
        #: items dropped because they were too old or the backlog was full
        self.shed = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        """Bytes queued now."""
        return self._bytes

    def offer(self, item: T, size: int, now: float) -> int:
        """Queue ``item`` of ``size`` bytes; returns how many older items were shed for room."""
        items = self._items
        items.append((now, size, item))
        self._bytes += size
        shed = 0
        while self._bytes > self.max_bytes and len(items) > 1:
            _, old, _ = items.popleft()
            self._bytes -= old
            shed += 1
        self.shed += shed
        return shed

    def take(self, now: float) -> tuple[list[T], int]:
        """``(the oldest per_turn items not older than max_age, how many older ones were shed)``."""
        items = self._items
        oldest = now - self.max_age
        shed = 0
        while items and items[0][0] < oldest:
            _, size, _ = items.popleft()
            self._bytes -= size
            shed += 1
        self.shed += shed
        out = []
        for _ in range(min(self.per_turn, len(items))):
            _, size, item = items.popleft()
            self._bytes -= size
            out.append(item)
        return out, shed
