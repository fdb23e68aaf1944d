"""DPLPMTUD: datagram packetization layer path MTU discovery (RFC 8899 §5, RFC 9000 §14.3).

:class:`PathMtuDiscovery` owns the connection's datagram size after the handshake: it starts at
``BASE_PLPMTU`` (1200, RFC 9000 §14.1) and raises it by probing. A probe is a 1-RTT packet of
PING + PADDING of the size under test (RFC 9000 §14.4), sent by the assembler when
:meth:`PathMtuDiscovery.probe_size` asks for one; its acknowledgement confirms the size, its loss
(reported through the packet's delivery callback) counts one failed attempt. The loss of a probe
is not a congestion signal (RFC 9000 §14.4; :mod:`..recovery.loss` leaves probes out of the
controller's loss count).

Search: the first probe tries the largest size allowed (our ``--max-datagram-size`` cap and the
peer's max_udp_payload_size), since most paths carry it; a size is given up after ``MAX_PROBES``
lost probes (RFC 8899 §5.1.2), and the search then bisects between the largest acknowledged size
and the smallest refused one until the bracket is narrower than ``SEARCH_GRANULARITY``.

Black holes (RFC 8899 §4.3): a path that stops carrying the current size (its MTU dropped) shows
up as consecutive PTOs with nothing acknowledged; after ``BLACK_HOLE_PTOS`` of them the size falls
back to ``BASE_PLPMTU`` and the search starts again from there. Once a search completes it is
repeated after ``PMTU_RAISE_INTERVAL`` (RFC 8899 §5.1.1 PMTU_RAISE_TIMER).

Every change is returned as a :class:`MtuUpdate` value (old size, new size, reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ...qlog.sink import QlogSink
from ..recovery.congestion.base import CongestionController
from ..recovery.loss import LossRecovery
from .path import NetworkPath

#: RFC 9000 §14.1 / RFC 8899 §5.1.2 BASE_PLPMTU: every QUIC path carries 1200-byte datagrams.
BASE_PLPMTU = 1200
#: RFC 8899 §5.1.2 MAX_PROBES: lost probes of one size before that size is given up.
MAX_PROBES = 3
#: The search stops once the largest confirmed and smallest refused sizes are this close.
SEARCH_GRANULARITY = 16
#: Consecutive PTOs (RFC 9002 §6.2) with the size above BASE_PLPMTU that signal a black hole.
BLACK_HOLE_PTOS = 2
#: RFC 8899 §5.1.1 PMTU_RAISE_TIMER: seconds before a completed search is tried again.
PMTU_RAISE_INTERVAL = 600.0


class PmtudState(Enum):
    """RFC 8899 §5.2 states (BASE and ERROR fold into SEARCHING: QUIC's 1200 always holds)."""

    DISABLED = "disabled"
    SEARCHING = "searching"
    SEARCH_COMPLETE = "search_complete"


@dataclass(frozen=True)
class MtuUpdate:
    """A change of the datagram size, with why (qlog ``connectivity:mtu_updated``)."""

    old: int
    new: int
    #: probe_acked, search_complete, black_hole, peer_limit
    reason: str
    #: True when the search has finished (qlog ``done``)
    done: bool

    def qlog(self) -> dict[str, Any]:
        """The qlog ``connectivity:mtu_updated`` data (QUIC events draft §5.1.2), plus trigger."""
        return {"old": self.old, "new": self.new, "done": self.done, "trigger": self.reason}


class PathMtuDiscovery:
    """The probing state machine of one path (see the module docstring)."""

    __slots__ = ("_attempts", "_high", "_in_flight", "_low", "_max", "_raise_at", "_updates",
                 "datagram_size", "state")

    def __init__(self, *, cap: int) -> None:
        """``cap``: our largest datagram (``--max-datagram-size``); at or below 1200: no search."""
        #: the size the send path fills datagrams to once the handshake is confirmed
        self.datagram_size = BASE_PLPMTU if cap >= BASE_PLPMTU else cap
        self._max = cap
        self.state = PmtudState.SEARCHING if cap > BASE_PLPMTU else PmtudState.DISABLED
        self._low = self.datagram_size  # largest size known to pass
        self._high = cap + 1  # smallest size known to fail
        self._attempts = 0  # lost probes of the size under test
        self._in_flight: int | None = None  # size of the probe awaiting its fate
        self._raise_at: float | None = None
        self._updates: list[MtuUpdate] = []

    def take_updates(self) -> list[MtuUpdate]:
        """The changes since the last call (the send path logs them with its ``now``)."""
        updates, self._updates = self._updates, []
        return updates

    def _update(self, old: int, new: int, reason: str, done: bool) -> MtuUpdate:
        update = MtuUpdate(old, new, reason, done)
        self._updates.append(update)
        return update

    @property
    def max_size(self) -> int:
        """The search's ceiling: the cap, lowered by the peer's max_udp_payload_size."""
        return self._max

    def apply_peer_limit(self, size: int | None) -> MtuUpdate | None:
        """The peer's max_udp_payload_size (RFC 9000 §18.2) caps the search."""
        if size is None or size >= self._max:
            return None
        self._max = max(size, BASE_PLPMTU)
        self._high = min(self._high, self._max + 1)
        if self._max <= self._low:
            self.state = PmtudState.SEARCH_COMPLETE if self._max > BASE_PLPMTU else \
                PmtudState.DISABLED
        if self.datagram_size > self._max:
            old, self.datagram_size = self.datagram_size, self._max
            self._low = self._max
            return self._update(old, self._max, "peer_limit", self.state != PmtudState.SEARCHING)
        return None

    def _next_size(self) -> int:
        if self._high > self._max:
            return self._max  # optimistic first try: the whole allowance
        return (self._low + self._high) // 2

    def probe_size(self, now: float) -> int | None:
        """The size of the probe to send now, or None (searching with no probe outstanding)."""
        if self.state == PmtudState.SEARCH_COMPLETE and self._low < self._max:
            if self._raise_at is None:
                self._raise_at = now + PMTU_RAISE_INTERVAL
            elif now >= self._raise_at:
                self._restart()
        if self.state != PmtudState.SEARCHING or self._in_flight is not None:
            return None
        return self._next_size()

    def on_probe_sent(self, size: int) -> None:
        """A probe of ``size`` bytes left (its delivery callback is :meth:`on_probe_delivery`)."""
        self._in_flight = size

    def on_probe_delivery(self, delivered: bool, size: int) -> None:
        """A probe's delivery callback (acknowledged or declared lost); any size change it causes
        is queued for :meth:`take_updates`."""
        self.probe_result(delivered, size)

    def probe_result(self, delivered: bool, size: int) -> MtuUpdate | None:
        """A probe was acknowledged or declared lost; returns the size change it causes."""
        if self._in_flight == size:
            self._in_flight = None
        if self.state != PmtudState.SEARCHING:
            return None
        if delivered:
            if size <= self._low:
                return None
            old = self.datagram_size
            self._low = self.datagram_size = size
            self._attempts = 0
            return self._update(old, size, "probe_acked", self._settle())
        if size >= self._high or size <= self._low:
            return None
        self._attempts += 1
        if self._attempts < MAX_PROBES:
            return None
        self._high = size
        self._attempts = 0
        if self._settle():
            return self._update(self.datagram_size, self.datagram_size, "search_complete", True)
        return None

    def _settle(self) -> bool:
        """Finish the search when the bracket is narrow enough; True once complete (the raise
        timer is armed by the next :meth:`probe_size`)."""
        if self._low >= self._max or self._high - self._low <= SEARCH_GRANULARITY:
            self.state = PmtudState.SEARCH_COMPLETE
            self._raise_at = None
            return True
        return False

    def on_pto(self, pto_count: int) -> MtuUpdate | None:
        """The loss detection timer has fired ``pto_count`` times in a row (RFC 9002 §6.2;
        checked before each send).

        Returns the fall back to BASE_PLPMTU when that looks like a black hole.
        """
        if pto_count < BLACK_HOLE_PTOS or self.datagram_size <= BASE_PLPMTU:
            return None
        old = self.datagram_size
        self.datagram_size = BASE_PLPMTU
        self._restart()
        return self._update(old, BASE_PLPMTU, "black_hole", False)

    def _restart(self) -> None:
        """Search again from the current size up to the ceiling."""
        self.state = PmtudState.SEARCHING
        self._low = self.datagram_size
        self._high = self._max + 1
        self._attempts = 0
        self._in_flight = None
        self._raise_at = None


class MtuProber:
    """Sends the probes a :class:`PathMtuDiscovery` asks for (the send path calls :meth:`send`).

    A probe is a 1-RTT packet of one PING and PADDING up to the size under test
    (RFC 9000 §14.4), built by the send path's ``build(now, size)`` (None without 1-RTT keys)
    with :meth:`PathMtuDiscovery.on_probe_delivery` as its delivery callback and marked
    ``mtu_probe``, so that recovery does not count its loss as congestion. It goes only when the
    congestion window and the anti-amplification budget have room for it.
    """

    __slots__ = ("_build", "_cc", "_path", "_pmtud", "_qlog", "_recovery")

    def __init__(self, pmtud: PathMtuDiscovery, *, recovery: LossRecovery,
                 cc: CongestionController, path: NetworkPath, qlog: QlogSink,
                 build: Callable[[float, int], bytes | None]) -> None:
        self._pmtud = pmtud
        self._recovery = recovery
        self._cc = cc
        self._path = path
        self._qlog = qlog
        self._build = build

    def send(self, now: float, out: list[bytes], handshake_confirmed: bool) -> None:
        """Watch for black holes, log size changes, then append a probe to ``out`` if one is due
        and may go (only once the handshake is confirmed)."""
        self._pmtud.on_pto(self._recovery.pto_count)
        for update in self._pmtud.take_updates():
            self._qlog.custom(now, "connectivity:mtu_updated", update.qlog())
        size = self._pmtud.probe_size(now) if handshake_confirmed else None
        if self._path.challenge_owed:
            return  # a new path's PATH_CHALLENGE goes first (RFC 9000 §8.2.1, §9.2)
        budget = self._path.send_budget()
        if size is None or self._recovery.bytes_in_flight + size > self._cc.congestion_window \
                or (budget is not None and budget < size):
            return
        packet = self._build(now, size)
        if packet is None:
            return
        self._pmtud.on_probe_sent(size)
        self._path.bytes_sent += len(packet)
        out.append(packet)
