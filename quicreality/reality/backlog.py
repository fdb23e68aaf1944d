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

**Retransmissions first.** A flood of spoofed sources sends each hello once; a genuine client
whose hello waits or was shed sends it again at its PTO. An item whose key (the edge uses the
client address and the Initial's DCID) is still queued or was shed recently (the last
``remember`` keys) goes into a priority lane that :meth:`take` serves first, under the same
bounds. A flood that repeats each hello to get in that lane costs its sender twice the packets and
leaves genuine clients where they were without the lane.

So a genuine client's established connection is never queued behind a flood, and a new hello
is judged within ``max_age`` or shed, its retransmission ahead of the flood. Times are the
caller's ``now``.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["DEFAULT_MAX_AGE", "DEFAULT_MAX_BYTES", "DEFAULT_NEW_PER_TURN", "DEFAULT_REMEMBER",
           "NewFlowBacklog"]

#: Bytes of new-flow datagrams kept waiting at most (the listener socket's receive buffer).
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
#: Seconds a new-flow datagram may wait for the gate.
DEFAULT_MAX_AGE = 2.0
#: New-flow datagrams the gate judges per turn of the event loop.
DEFAULT_NEW_PER_TURN = 8
#: Keys of shed items remembered (a retransmission of one of them is served first).
DEFAULT_REMEMBER = 16384

T = TypeVar("T")


class NewFlowBacklog(Generic[T]):
    """Two FIFO lanes (retransmissions, the rest) bounded together in bytes and in age; the
    oldest are shed.

    Args:
        max_bytes: most bytes kept (>= 1).
        max_age: most seconds an item waits (> 0).
        per_turn: most items :meth:`take` returns at once (>= 1).
        remember: keys of shed items remembered (>= 0).
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_age: float = DEFAULT_MAX_AGE,
                 per_turn: int = DEFAULT_NEW_PER_TURN, remember: int = DEFAULT_REMEMBER) -> None:
        if max_bytes < 1 or max_age <= 0 or per_turn < 1 or remember < 0:
            raise ValueError("max_bytes and per_turn must be at least 1, max_age positive")
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.per_turn = per_turn
        self.remember = remember
        #: (arrival, size, key, item); lane 0 is the retransmissions'
        self._lanes: tuple[deque[tuple[float, int, Hashable, T]], ...] = (deque(), deque())
        self._queued: dict[Hashable, int] = {}
        self._shed_keys: OrderedDict[Hashable, None] = OrderedDict()
        self._bytes = 0
        #: items dropped because they were too old or the backlog was full
        self.shed = 0
        #: items that went into the retransmission lane
        self.prioritized = 0

    def __len__(self) -> int:
        return len(self._lanes[0]) + len(self._lanes[1])

    @property
    def bytes(self) -> int:
        """Bytes queued now."""
        return self._bytes

    def offer(self, item: T, size: int, now: float, key: Hashable = None) -> int:
        """Queue ``item`` of ``size`` bytes; returns how many older items were shed for room.

        ``key`` (optional) names the client's attempt: one still queued or recently shed makes
        this item a retransmission, served first."""
        retransmission = key is not None and (key in self._queued or key in self._shed_keys)
        if retransmission:
            self.prioritized += 1
        self._lanes[0 if retransmission else 1].append((now, size, key, item))
        if key is not None:
            self._queued[key] = self._queued.get(key, 0) + 1
        self._bytes += size
        shed = 0
        while self._bytes > self.max_bytes and len(self) > 1:
            lane = self._lanes[1] if self._lanes[1] else self._lanes[0]
            self._drop(lane)
            shed += 1
        self.shed += shed
        return shed

    def take(self, now: float) -> tuple[list[T], int]:
        """``(the oldest per_turn items not older than max_age, retransmissions first; how many
        older ones were shed)``."""
        oldest = now - self.max_age
        shed = 0
        for lane in self._lanes:
            while lane and lane[0][0] < oldest:
                self._drop(lane)
                shed += 1
        self.shed += shed
        out: list[T] = []
        for lane in self._lanes:
            while lane and len(out) < self.per_turn:
                _, size, key, item = lane.popleft()
                self._bytes -= size
                self._unqueue(key)
                out.append(item)
        return out, shed

    def _drop(self, lane: deque[tuple[float, int, Hashable, T]]) -> None:
        _, size, key, _ = lane.popleft()
        self._bytes -= size
        self._unqueue(key)
        if key is not None and self.remember:
            self._shed_keys[key] = None
            self._shed_keys.move_to_end(key)
            while len(self._shed_keys) > self.remember:
                self._shed_keys.popitem(last=False)

    def _unqueue(self, key: Hashable) -> None:
        if key is None:
            return
        left = self._queued[key] - 1
        if left:
            self._queued[key] = left
        else:
            del self._queued[key]
