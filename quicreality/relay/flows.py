"""A bounded table of UDP flows with idle expiry (sans-IO: the caller passes ``now``).

Both relay ends keep one: the client keys flows by the local sender's address, the server by
flow id. ``touch`` on every datagram either way; :meth:`FlowTable.expire` returns (and forgets)
the flows idle for longer than the timeout, and the edge closes their sockets and streams.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class FlowTable(Generic[K, V]):
    """Flows by key with their last activity time, at most ``max_flows`` of them."""

    __slots__ = ("_flows", "_last", "idle_timeout", "max_flows")

    def __init__(self, *, idle_timeout: float, max_flows: int) -> None:
        self.idle_timeout = idle_timeout
        self.max_flows = max_flows
        self._flows: dict[K, V] = {}
        self._last: dict[K, float] = {}

    def __len__(self) -> int:
        return len(self._flows)

    def __contains__(self, key: object) -> bool:
        return key in self._flows

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._flows))

    @property
    def full(self) -> bool:
        """True when no flow can be added."""
        return len(self._flows) >= self.max_flows

    def get(self, key: K) -> V | None:
        """The flow for ``key``, or None."""
        return self._flows.get(key)

    def values(self) -> list[V]:
        """All flows (a copy)."""
        return list(self._flows.values())

    def add(self, key: K, flow: V, now: float) -> bool:
        """Add a flow; False (and nothing added) if the table is full or the key exists."""
        if key in self._flows or self.full:
            return False
        self._flows[key] = flow
        self._last[key] = now
        return True

    def touch(self, key: K, now: float) -> None:
        """Record activity on a flow."""
        if key in self._last:
            self._last[key] = now

    def remove(self, key: K) -> V | None:
        """Forget a flow and return it."""
        self._last.pop(key, None)
        return self._flows.pop(key, None)

    def expire(self, now: float) -> list[tuple[K, V]]:
        """Remove and return the flows idle for at least ``idle_timeout``."""
        limit = now - self.idle_timeout
        gone = [k for k, t in self._last.items() if t <= limit]
        return [(k, self._flows.pop(k)) for k in gone if self._last.pop(k, None) is not None]

    def next_expiry(self) -> float | None:
        """When the oldest flow expires if nothing happens (None when empty)."""
        if not self._last:
            return None
        return min(self._last.values()) + self.idle_timeout
