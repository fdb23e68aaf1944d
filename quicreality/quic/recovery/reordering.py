"""Reordering tolerance for loss detection: adaptive thresholds and spurious-loss undo.

Theory of operation. RFC 9002 §6.1 declares a packet lost when a packet sent ``kPacketThreshold``
(3) packet numbers later is acknowledged, or when it was sent more than ``kTimeThreshold`` (9/8)
RTTs before the newest acknowledged one. On a path that reorders deeper than that (jitter larger
than the packet spacing, multipath, ECMP), both rules fire on packets that are merely late: the
sender cuts its window for nothing and retransmits data that arrives anyway. RFC 9002 §6.1.1 and
§6.1.2 allow both thresholds to adapt, and RFC 8985 (RACK) describes how; this module keeps the
state they need, apart from :mod:`.loss` which drives it:

* :class:`ReorderingThresholds` holds the current packet threshold and time threshold. The packet
  threshold rises to one more than the deepest reordering seen, either directly (a packet is newly
  acknowledged below the largest acknowledged one, RFC 8985 §6.2 step 2, as Linux TCP does with
  SACK) or through a spurious loss. The time threshold steps through ``9/8, 5/4, 3/2, 2`` RTT when
  a packet declared lost by time turns out to have been delivered; 2 RTT is RFC 8985's cap on the
  reordering window (``reo_wnd <= SRTT``). Neither decays: a path that reordered once is assumed
  to do it again (Linux keeps ``tp->reordering`` the same way).
* :class:`LostPackets` remembers, per packet number space and for a few PTOs, the packets that
  were declared lost, so that a later acknowledgement of one of them is recognised as a spurious
  loss (a packet declared lost that was delivered, RFC 9002 §6.1 "spuriously declared lost").
* :class:`CongestionEpisode` mirrors the controllers' recovery periods (RFC 9002 §7.3.2: one
  reduction per window of losses) and counts the packets declared lost in the current one. When
  every one of them is later acknowledged, the reduction was spurious and the controller is asked
  to undo it (RFC 9438 §4.9; RFC 9002 §7.3.2 notes the window need not stay reduced).

Sans-IO: all times are arguments.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .loss import SentPacket

__all__ = [
    "K_MAX_PACKET_THRESHOLD",
    "LOST_PACKET_MEMORY_PTOS",
    "MAX_LOST_PACKETS",
    "TIME_THRESHOLD_STEPS",
    "CongestionEpisode",
    "LostPacket",
    "LostPackets",
    "ReorderingThresholds",
]

K_INITIAL_PACKET_THRESHOLD = 3
"""RFC 9002 §6.1.1 kPacketThreshold, the starting value."""

K_MAX_PACKET_THRESHOLD = 256
"""Upper bound of the adaptive packet threshold (Linux caps ``tp->reordering`` at 300)."""

TIME_THRESHOLD_STEPS = (9 / 8, 5 / 4, 3 / 2, 2.0)
"""Time thresholds in RTTs: RFC 9002 §6.1.2's 9/8 first, RFC 8985 §6.2's cap (RTT + SRTT) last."""

LOST_PACKET_MEMORY_PTOS = 3.0
"""A declared-lost packet is remembered for this many PTOs (RFC 9002 §6.2.1) after its loss."""

MAX_LOST_PACKETS = 4096
"""Bound on remembered lost packets per space; the oldest are forgotten first."""


class ReorderingThresholds:
    """The packet and time thresholds of RFC 9002 §6.1, adapted to the reordering observed.

    Attributes:
        packet_threshold: Packets acknowledged after a packet before it is declared lost.
        time_threshold: Multiple of ``max(smoothed_rtt, latest_rtt)`` after which an
            unacknowledged packet older than an acknowledged one is declared lost.
        max_reordering: Deepest reordering observed, in packet numbers (0: none yet).
        spurious_losses: Packets declared lost and acknowledged later.
    """

    __slots__ = ("packet_threshold", "time_threshold", "max_reordering", "spurious_losses",
                 "adaptive")

    def __init__(self, *, adaptive: bool = True) -> None:
        """Start at RFC 9002's values.

        Args:
            adaptive: If False the thresholds never move (plain RFC 9002); spurious losses are
                still counted.
        """
        self.packet_threshold = K_INITIAL_PACKET_THRESHOLD
        self.time_threshold = TIME_THRESHOLD_STEPS[0]
        self.max_reordering = 0
        self.spurious_losses = 0
        self.adaptive = adaptive

    def on_reordering(self, distance: int) -> None:
        """A packet was acknowledged ``distance`` packet numbers below the largest acknowledged."""
        if distance <= self.max_reordering:
            return
        self.max_reordering = distance
        if self.adaptive and distance >= self.packet_threshold:
            self.packet_threshold = min(distance + 1, K_MAX_PACKET_THRESHOLD)

    def on_spurious_loss(self, lost: LostPacket, *, now: float) -> None:
        """``lost`` was acknowledged at ``now``: widen whichever threshold declared it lost.

        The packet threshold covers the reordering distance at the time of the loss
        (RFC 9002 §6.1.1). For a loss declared by time, the time threshold steps up until it
        would have covered the packet's actual delay ``now - sent_time`` (RFC 9002 §6.1.2,
        RFC 8985 §6.2 step 4: the reordering window grows on each spurious retransmission).
        """
        self.spurious_losses += 1
        self.on_reordering(lost.largest_acked - lost.packet.packet_number)
        if not self.adaptive or lost.trigger != "time_threshold" or lost.rtt <= 0:
            return
        needed = (now - lost.packet.sent_time) / lost.rtt
        for step in TIME_THRESHOLD_STEPS:
            if step > self.time_threshold:
                self.time_threshold = step
                if step >= needed:
                    break


class LostPacket:
    """A packet declared lost, kept to recognise its late acknowledgement.

    Attributes:
        packet: The packet as it was sent.
        lost_time: When it was declared lost.
        largest_acked: The space's largest acknowledged packet number at that time.
        rtt: ``max(smoothed_rtt, latest_rtt)`` the time threshold was computed from.
        trigger: ``reordering_threshold`` or ``time_threshold`` (qlog's loss triggers).
        episode: The congestion episode (see :class:`CongestionEpisode`) it was counted in, or
            -1 when it did not count (not in flight).
    """

    __slots__ = ("packet", "lost_time", "largest_acked", "rtt", "trigger", "episode")

    def __init__(self, packet: SentPacket, *, lost_time: float, largest_acked: int, rtt: float,
                 trigger: str, episode: int) -> None:
        self.packet = packet
        self.lost_time = lost_time
        self.largest_acked = largest_acked
        self.rtt = rtt
        self.trigger = trigger
        self.episode = episode


class LostPackets:
    """Declared-lost packets of one packet number space, oldest loss first."""

    __slots__ = ("_by_pn",)

    def __init__(self) -> None:
        self._by_pn: dict[int, LostPacket] = {}

    def __len__(self) -> int:
        return len(self._by_pn)

    def __iter__(self) -> Iterator[LostPacket]:
        return iter(list(self._by_pn.values()))

    def add(self, lost: LostPacket) -> None:
        """Remember ``lost``; beyond :data:`MAX_LOST_PACKETS` the oldest is forgotten."""
        by_pn = self._by_pn
        by_pn[lost.packet.packet_number] = lost
        if len(by_pn) > MAX_LOST_PACKETS:
            del by_pn[next(iter(by_pn))]

    def pop(self, packet_number: int) -> LostPacket | None:
        """Forget and return the record of ``packet_number``, if any."""
        return self._by_pn.pop(packet_number, None)

    def prune(self, before: float) -> None:
        """Forget packets declared lost before ``before`` (they were really lost)."""
        by_pn = self._by_pn
        while by_pn:
            pn, lost = next(iter(by_pn.items()))
            if lost.lost_time >= before:
                break
            del by_pn[pn]

    def clear(self) -> None:
        """Forget everything (the space was discarded)."""
        self._by_pn.clear()


class CongestionEpisode:
    """The current recovery period as loss detection sees it, for spurious-loss undo.

    Mirrors RFC 9002 §7.3.2: losses of packets sent after the period began start a new one (and
    the controller reduces once); others join the current one. Undo is due when every packet
    counted in the period was acknowledged after all, and at most once per period.

    Attributes:
        number: Serial number of the current period (0: none yet).
        start: When it began (``-inf`` before the first).
        lost: In-flight packets declared lost in it.
        spurious: Of those, acknowledged later.
        undoable: False after persistent congestion or after an undo.
        undone: Periods undone so far.
    """

    __slots__ = ("number", "start", "lost", "spurious", "undoable", "undone", "_prior_start")

    def __init__(self) -> None:
        self.number = 0
        self.start = float("-inf")
        self.lost = 0
        self.spurious = 0
        self.undoable = False
        self.undone = 0
        self._prior_start = float("-inf")

    def on_lost(self, *, now: float, largest_lost_sent_time: float, count: int) -> int:
        """Count ``count`` in-flight packets lost in one detection pass; return their period."""
        if largest_lost_sent_time > self.start:
            self._prior_start = self.start
            self.number += 1
            self.start = now
            self.lost = 0
            self.spurious = 0
            self.undoable = True
        self.lost += count
        return self.number

    def on_persistent_congestion(self) -> None:
        """RFC 9002 §7.6: a collapse to the minimum window is never undone."""
        self.undoable = False

    def on_spurious(self, episode: int) -> bool:
        """A packet counted in period ``episode`` was acknowledged; True when undo is now due."""
        if episode != self.number or not self.undoable:
            return False
        self.spurious += 1
        if self.spurious < self.lost:
            return False
        self.undoable = False
        self.undone += 1
        # The period is as if it never began: later losses of packets sent before it start one.
        self.start = self._prior_start
        return True
