"""Datagrams that would start a new REALITY flow, queued for the gate under load (sans-IO).

A flood of spoofed Initials costs the gate a ClientHello verification each (X25519, HKDF, AES-GCM:
security finding 12c keeps that work constant), so a listener under flood cannot judge them all.
The edge reads its socket in large batches and splits each: datagrams of existing connections and
of flows the gate already knows (pending or relayed) are handled at once; datagrams that would
start a new flow go into this backlog, and each turn of the event loop hands the gate at most
``per_turn`` of them, oldest first. Two bounds shed (drop before the gate: neither judged nor
mirrored to the target, as if the network had lost it):

* **age**: a datagram that waited ``max_age`` seconds is shed when the gate would take it: its
  client has retransmitted several times by then (a QUIC client's first PTO is about 1 s, RFC 9002
  §6.2.2) or given up; a burst shorter than that is judged whole, as the kernel's buffer let it be;
* **size**: beyond ``max_bytes`` queued the oldest are shed (the same room as the socket's 4 MiB
  receive buffer, so a burst the kernel used to absorb is still absorbed).

**Retransmissions first.** A flood of spoofed sources sends each hello once; a genuine client
whose hello waits or was shed sends it again at its PTO. An item whose key (the edge uses the
client address and the Initial's DCID) is still queued or was shed recently (the last
``remember`` keys) goes into a priority lane that :meth:`take` serves first, under the same
bounds. A flood that repeats each hello to get in that lane costs its sender twice the packets and
leaves genuine clients where they were without the lane.

So a genuine client's established connection is never queued behind a flood, and its new hello
gets ahead of the flood at its first retransmission (a two-datagram hello at once). Times are the
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
DEFAULT_MAX_AGE = 10.0
#: New-flow datagrams the gate judges per turn of the event loop.
DEFAULT_NEW_PER_TURN = 8
#: Keys of shed items remembered (a retransmission of one of them is served first).
DEFAULT_REMEMBER = 16384

T = TypeVar("T")


class _Entry(Generic[T]):
    __slots__ = ("alive", "arrival", "fast", "item", "key", "size")

    def __init__(self, arrival: float, size: int, key: Hashable, item: T, fast: bool) -> None:
        self.arrival, self.size, self.key, self.item = arrival, size, key, item
        self.alive = True
        self.fast = fast  # in the retransmission lane


class NewFlowBacklog(Generic[T]):
    """Two FIFO lanes (retransmissions, the rest) bounded together in bytes and in age; the
    oldest are shed. When an attempt becomes a retransmission its datagrams still queued in the
    other lane move with it (in order), so a hello split over two datagrams is not split between
    the lanes.

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
        #: lane 0 is the retransmissions'; moved entries stay behind as dead ones
        self._lanes: tuple[deque[_Entry[T]], deque[_Entry[T]]] = (deque(), deque())
        self._queued: dict[Hashable, list[_Entry[T]]] = {}  # key -> its live entries, in order
        self._shed_keys: OrderedDict[Hashable, None] = OrderedDict()
        self._bytes = 0
        self._count = 0
        #: items dropped because they were too old or the backlog was full
        self.shed = 0
        #: items that went into the retransmission lane
        self.prioritized = 0

    def __len__(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        """Bytes queued now."""
        return self._bytes

    def offer(self, item: T, size: int, now: float, key: Hashable = None) -> int:
        """Queue ``item`` of ``size`` bytes; returns how many older items were shed for room.

        ``key`` (optional) names the client's attempt: one still queued or recently shed makes
        this item a retransmission, served first."""
        queued = self._queued.get(key) if key is not None else None
        fast = self._lanes[0]
        if queued or (key is not None and key in self._shed_keys):
            self.prioritized += 1
            for i, old in enumerate(queued or ()):
                if not old.fast:  # move it ahead, in order (a key has few entries)
                    old.alive = False
                    queued[i] = _Entry(old.arrival, old.size, key, old.item, True)  # type: ignore[index]
                    fast.append(queued[i])  # type: ignore[index]
            entry = _Entry(now, size, key, item, True)
            fast.append(entry)
        else:
            entry = _Entry(now, size, key, item, False)
            self._lanes[1].append(entry)
        if key is not None:
            self._queued.setdefault(key, []).append(entry)
        self._bytes += size
        self._count += 1
        shed = 0
        while self._bytes > self.max_bytes and self._count > 1:
            self._drop(self._lanes[1] if self._live(self._lanes[1]) else fast)
            shed += 1
        self.shed += shed
        return shed

    def take(self, now: float) -> tuple[list[T], int]:
        """``(the oldest per_turn items not older than max_age, retransmissions first; how many
        older ones were shed)``."""
        oldest = now - self.max_age
        shed = 0
        for lane in self._lanes:
            while self._live(lane) and lane[0].arrival < oldest:
                self._drop(lane)
                shed += 1
        self.shed += shed
        out: list[T] = []
        for lane in self._lanes:
            while len(out) < self.per_turn and self._live(lane):
                out.append(self._pop(lane).item)
        return out, shed

    @staticmethod
    def _live(lane: deque[_Entry[T]]) -> bool:
        """True if ``lane`` has a live entry at its head (dead ones are discarded)."""
        while lane and not lane[0].alive:
            lane.popleft()
        return bool(lane)

    def _pop(self, lane: deque[_Entry[T]]) -> _Entry[T]:
        entry = lane.popleft()
        self._bytes -= entry.size
        self._count -= 1
        key = entry.key
        if key is not None:
            queued = self._queued[key]
            queued.remove(entry)
            if not queued:
                del self._queued[key]
        return entry

    def _drop(self, lane: deque[_Entry[T]]) -> None:
        key = self._pop(lane).key
        if key is not None and self.remember:
            self._shed_keys[key] = None
            self._shed_keys.move_to_end(key)
            while len(self._shed_keys) > self.remember:
                self._shed_keys.popitem(last=False)
