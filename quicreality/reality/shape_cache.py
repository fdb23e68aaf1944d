"""Which target shapes are known, fresh, being learned or failing, per SNI (sans-IO).

The listener learns the target's answer by connecting to it (the asyncio edge does the I/O,
:func:`quicreality.aio.reality_server.learn_target_shape`); this table says what to learn when:

* an SNI never learned, or learned more than ``ttl`` ago, is *wanted*;
* an SNI being learned is not wanted again until that attempt ends;
* a failed attempt is retried after ``retry_after`` (not at once: a down target is not hammered);
* :meth:`ShapeCache.get` returns the last learned shape while it is younger than ``2 * ttl``: a
  refresh that is late or failing keeps the old shape for one more period, then the listener goes
  back to answering with its own flight (a shape that old may no longer be the target's);
* :meth:`ShapeCache.first_reply` is the target's typical time from a client's first Initial to its
  first reply datagram, learned in the same round and kept as long as the shape (the gate paces
  an accepted flow's first reply with it).

Times are the caller's ``now`` (monotonic seconds).
"""

from __future__ import annotations

from dataclasses import dataclass

from .target_shape import TargetShape

#: After a failed attempt, wait this long before the next one (seconds).
DEFAULT_RETRY_AFTER = 30.0


@dataclass(frozen=True, slots=True)
class _Entry:
    shape: TargetShape | None
    learned_at: float | None
    busy: bool = False
    failed_at: float | None = None
    error: str = ""
    first_reply: float | None = None


class ShapeCache:
    """Learned target shapes per SNI, with a TTL (see the module docstring)."""

    def __init__(self, ttl: float, *, retry_after: float = DEFAULT_RETRY_AFTER) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.ttl = ttl
        self.retry_after = retry_after
        self._entries: dict[str | None, _Entry] = {}

    def get(self, sni: str | None, now: float) -> TargetShape | None:
        """The shape to answer ``sni`` with, or None (answer with our own flight)."""
        entry = self._entries.get(sni)
        if entry is None or entry.shape is None or entry.learned_at is None:
            return None
        return entry.shape if now - entry.learned_at < 2 * self.ttl else None

    def first_reply(self, sni: str | None, now: float) -> float | None:
        """The target's learned first-reply time for ``sni`` (seconds), while its shape is kept."""
        entry = self._entries.get(sni)
        if entry is None or entry.first_reply is None or self.get(sni, now) is None:
            return None
        return entry.first_reply

    def wanted(self, names: list[str | None], now: float) -> list[str | None]:
        """Those of ``names`` to learn now."""
        out = []
        for sni in names:
            entry = self._entries.get(sni)
            if entry is None:
                out.append(sni)
            elif entry.busy or (entry.failed_at is not None and now - entry.failed_at < self.retry_after):
                continue
            elif entry.learned_at is None or now - entry.learned_at >= self.ttl:
                out.append(sni)
        return out

    def next_due(self, names: list[str | None], now: float) -> float:
        """When :meth:`wanted` will next return something (``now`` if it already does)."""
        due = []
        for sni in names:
            entry = self._entries.get(sni)
            if entry is None:
                return now
            if entry.busy:
                continue
            at = entry.learned_at + self.ttl if entry.learned_at is not None else now
            if entry.failed_at is not None:
                at = max(at, entry.failed_at + self.retry_after)
            due.append(at)
        return max(now, min(due)) if due else now + self.ttl

    def start(self, sni: str | None) -> None:
        """An attempt to learn ``sni`` began."""
        old = self._entries.get(sni) or _Entry(None, None)
        self._entries[sni] = _Entry(old.shape, old.learned_at, True, old.failed_at, old.error,
                                    old.first_reply)

    def learned(self, sni: str | None, shape: TargetShape, now: float,
                first_reply: float | None = None) -> None:
        """The attempt succeeded (``first_reply``: the target's first-reply time, seconds)."""
        self._entries[sni] = _Entry(shape, now, first_reply=first_reply)

    def failed(self, sni: str | None, error: str, now: float) -> None:
        """The attempt failed (the old shape, if any, stays until it is ``2 * ttl`` old)."""
        old = self._entries.get(sni) or _Entry(None, None)
        self._entries[sni] = _Entry(old.shape, old.learned_at, False, now, error, old.first_reply)

    def status(self) -> dict[str, dict[str, object]]:
        """Per SNI: learned_at, busy, the last error (for logs and tests)."""
        return {str(k): {"learned_at": e.learned_at, "busy": e.busy, "error": e.error,
                         "first_reply": e.first_reply,
                         "shape": e.shape.describe() if e.shape else None}
                for k, e in self._entries.items()}
