"""NewReno congestion control as specified in RFC 9002 §7 and Appendix B.

Slow start adds the acknowledged bytes; congestion avoidance adds one
``max_datagram_size`` per congestion window of acknowledged bytes (counted
exactly in an integer accumulator rather than with RFC 9002 Appendix B.5's
per-packet fractional update); a congestion event halves the window once per
recovery period; persistent congestion collapses it to the minimum window.
A reduction whose losses all prove spurious is undone (RFC 9438 §4.9 applied
to Reno, as Linux does).
"""

from __future__ import annotations

from ..rtt import RttEstimator
from .base import (
    K_LOSS_REDUCTION_FACTOR,
    initial_window,
    minimum_window,
    register_congestion_controller,
)

__all__ = ["NewRenoCongestionController"]

_NEG_INF = float("-inf")


class NewRenoCongestionController:
    """RFC 9002 Appendix B NewReno; see :class:`.base.CongestionController`.

    Attributes:
        congestion_window: Bytes allowed in flight.
        ssthresh: Slow start threshold in bytes, ``None`` while infinite.
        recovery_start_time: Start of the current recovery period
            (``congestion_recovery_start_time``, RFC 9002 Appendix B.2);
            ``-inf`` when none.
    """

    __slots__ = (
        "congestion_window",
        "ssthresh",
        "recovery_start_time",
        "_max_datagram_size",
        "_minimum_window",
        "_avoidance_acked",
        "_undo",
    )

    def __init__(self, *, max_datagram_size: int) -> None:
        """Start in slow start with the initial window (RFC 9002 Appendix B.3).

        Args:
            max_datagram_size: The sender's maximum datagram size in bytes.
        """
        self.reset(max_datagram_size=max_datagram_size)

    def reset(self, *, max_datagram_size: int) -> None:
        """Start over in place on a new path (RFC 9000 §9.4): the state of a new controller
        (re-running ``__init__`` on a mypyc-compiled instance does nothing)."""
        self._max_datagram_size = max_datagram_size
        self._minimum_window = minimum_window(max_datagram_size)
        self.congestion_window: int = initial_window(max_datagram_size)
        self.ssthresh: int | None = None
        self.recovery_start_time: float = _NEG_INF
        # Bytes acknowledged in congestion avoidance not yet turned into growth.
        self._avoidance_acked = 0
        # (cwnd, ssthresh, recovery_start_time) before the last reduction, for undo.
        self._undo: tuple[int, int | None, float] | None = None

    def on_packet_sent(self, *, now: float, sent_bytes: int, bytes_in_flight: int) -> None:
        """No state to update (RFC 9002 Appendix B.4 only touches bytes_in_flight)."""

    def on_packets_acked(
        self,
        *,
        now: float,
        acked_bytes: int,
        largest_acked_sent_time: float,
        rtt: RttEstimator,
        bytes_in_flight: int,
        app_limited: bool,
    ) -> None:
        """Grow the window for one ACK frame (RFC 9002 §7.3.1, §7.3.3, Appendix B.5)."""
        # No growth for packets sent before recovery started (RFC 9002 §7.3.2),
        # nor while the window is underutilized (RFC 9002 §7.8).
        if largest_acked_sent_time <= self.recovery_start_time or app_limited:
            return
        cwnd = self.congestion_window
        ssthresh = self.ssthresh
        if ssthresh is None or cwnd < ssthresh:
            # Slow start (RFC 9002 §7.3.1); bytes beyond ssthresh go to avoidance.
            if ssthresh is None or cwnd + acked_bytes <= ssthresh:
                self.congestion_window = cwnd + acked_bytes
                return
            acked_bytes -= ssthresh - cwnd
            cwnd = ssthresh
        # Congestion avoidance (RFC 9002 §7.3.3): one datagram per window acked.
        acked = self._avoidance_acked + acked_bytes
        mds = self._max_datagram_size
        while acked >= cwnd:
            acked -= cwnd
            cwnd += mds
        self._avoidance_acked = acked
        self.congestion_window = cwnd

    def on_congestion_event(
        self,
        *,
        now: float,
        largest_lost_sent_time: float,
        lost_bytes: int,
        bytes_in_flight: int,
    ) -> None:
        """Halve the window once per recovery period (RFC 9002 §7.3.2, Appendix B.6)."""
        if largest_lost_sent_time <= self.recovery_start_time:
            return
        self._undo = (self.congestion_window, self.ssthresh, self.recovery_start_time)
        self.recovery_start_time = now
        reduced = int(self.congestion_window * K_LOSS_REDUCTION_FACTOR)
        if reduced < self._minimum_window:
            reduced = self._minimum_window
        # ssthresh is kept at the reduced window (never below the minimum) so
        # that ssthresh <= congestion_window holds on leaving recovery.
        self.congestion_window = reduced
        self.ssthresh = reduced
        self._avoidance_acked = 0

    def on_persistent_congestion(self, *, now: float) -> None:
        """Collapse to the minimum window (RFC 9002 §7.6.2, Appendix B.8).

        Deliberate deviation: Appendix B.8 resets the recovery start to 0; we
        restart the recovery period at ``now`` instead, so late loss reports for
        packets sent before the collapse cannot cut ``ssthresh`` to the minimum
        window. Packets sent after ``now`` grow the window as usual.
        """
        if self.ssthresh is None:
            # Only reached if the caller skipped on_congestion_event.
            reduced = int(self.congestion_window * K_LOSS_REDUCTION_FACTOR)
            self.ssthresh = max(reduced, self._minimum_window)
        self.congestion_window = self._minimum_window
        self.recovery_start_time = now
        self._avoidance_acked = 0
        self._undo = None

    def on_packets_discarded(self, *, discarded_bytes: int) -> None:
        """No-op: NewReno keeps no per-packet state (RFC 9002 §6.4)."""

    def on_spurious_congestion(self, *, now: float) -> None:
        """Restore the window, ssthresh and recovery period of before the last reduction."""
        undo = self._undo
        if undo is None:
            return
        self._undo = None
        cwnd, ssthresh, recovery_start = undo
        if cwnd > self.congestion_window:
            self.congestion_window = cwnd
        self.ssthresh = ssthresh
        self.recovery_start_time = recovery_start


register_congestion_controller("newreno", NewRenoCongestionController)
