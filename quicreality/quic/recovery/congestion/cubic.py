"""CUBIC congestion control (RFC 9438) behind the RFC 9002 controller interface.

Windows are tracked in bytes; the RFC's formulas in segments are scaled by
``max_datagram_size`` (one segment = one maximum-size datagram). Slow start,
recovery periods and persistent congestion follow RFC 9002 §7 as in
:mod:`.newreno`; congestion avoidance follows the cubic window function
(RFC 9438 §4.2) with the Reno-friendly region (§4.3), concave and convex
regions (§4.4, §4.5), multiplicative decrease by ``beta_cubic`` (§4.6), fast
convergence (§4.7) and the post-timeout epoch (§4.8). The congestion
avoidance epoch restarts after an application-limited ACK and is shifted past
idle periods (nothing in flight), so that ``t`` excludes them (RFC 9438 §4.2,
§5.8).

The initial slow start uses HyStart++ (RFC 9406, see :class:`HyStartPlusPlus`):
when the per-round minimum RTT rises by a threshold, growth slows to a quarter
(Conservative Slow Start) and, unless the RTT falls back, congestion avoidance
starts after five rounds with ssthresh at the window, before the bottleneck
queue overflows. A reduction whose losses all prove spurious is undone by
restoring the state saved when it was made (RFC 9438 §4.9).

Two controllers are registered. ``"cubic"`` (:class:`CubicAimd1CongestionController`, the
default) grows W_est by one segment per window acknowledged from the start of each epoch, so
its Reno-friendly region is AIMD(1, beta_cubic): the additive increase of ngtcp2's CUBIC and of
quic-go's Reno sender, 1.37 times the steady-state window of Reno at random loss.
``"cubic-rfc9438"`` (:class:`CubicCongestionController`) uses RFC 9438 §4.3's alpha_cubic =
3(1-beta)/(1+beta) until W_est reaches cwnd_prior, as Linux's TCP CUBIC does, which makes it
exactly as aggressive as Reno there (docs/quic.md, "CUBIC's Reno-friendly increase").
"""

from __future__ import annotations

import enum
import math
from typing import ClassVar

from ..rtt import RttEstimator
from .base import initial_window, minimum_window, register_congestion_controller

__all__ = [
    "CUBIC_ALPHA",
    "CUBIC_BETA",
    "CUBIC_C",
    "HYSTART_CSS_GROWTH_DIVISOR",
    "HYSTART_CSS_ROUNDS",
    "HYSTART_N_RTT_SAMPLE",
    "CubicAimd1CongestionController",
    "CubicCongestionController",
    "HyStartPlusPlus",
    "HyStartState",
    "cubic_k",
    "w_cubic",
]

CUBIC_C = 0.4
"""Cubic scaling constant C in segments/second^3 (RFC 9438 §5.1)."""

CUBIC_BETA = 0.7
"""Multiplicative decrease factor beta_cubic (RFC 9438 §4.6, §5.1)."""

CUBIC_ALPHA = 3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA)
"""Reno-friendly additive increase alpha_cubic, about 0.53 (RFC 9438 §4.3)."""

_FAST_CONVERGENCE_FACTOR = (1.0 + CUBIC_BETA) / 2.0
"""W_max is further reduced to cwnd * (1 + beta_cubic) / 2 (RFC 9438 §4.7)."""

_NEG_INF = float("-inf")

HYSTART_MIN_RTT_THRESH = 0.004
"""MIN_RTT_THRESH in seconds (RFC 9406 §4.3)."""

HYSTART_MAX_RTT_THRESH = 0.016
"""MAX_RTT_THRESH in seconds (RFC 9406 §4.3)."""

HYSTART_MIN_RTT_DIVISOR = 8
"""MIN_RTT_DIVISOR (RFC 9406 §4.3)."""

HYSTART_N_RTT_SAMPLE = 8
"""N_RTT_SAMPLE: RTT samples per round before a round's minimum counts (RFC 9406 §4.3)."""

HYSTART_CSS_GROWTH_DIVISOR = 4
"""CSS_GROWTH_DIVISOR: slow start growth is divided by this in CSS (RFC 9406 §4.3)."""

HYSTART_CSS_ROUNDS = 5
"""CSS_ROUNDS: rounds of CSS before congestion avoidance (RFC 9406 §4.3)."""


class HyStartState(enum.Enum):
    """Where HyStart++ is (RFC 9406 §4.2)."""

    SLOW_START = "slow_start"
    CONSERVATIVE = "conservative_slow_start"
    DONE = "done"


class HyStartPlusPlus:
    """RFC 9406 HyStart++ for the initial slow start; rounds are told apart by send times.

    A round ends when a packet sent after the round began is acknowledged (RFC 9406 §4.2 with
    send times standing in for sequence numbers: ``windowEnd`` is the send time of the last
    packet sent when the round began). The sender is paced, so the per-ACK growth limit ``L``
    is infinite (RFC 9406 §4.3). The controller feeds it ack-delay-adjusted samples
    (``RttEstimator.path_rtt``, RFC 9002 §5.3): a paced flight too sparse for the peer's
    every-other-packet ACK is acknowledged after its delayed-ACK timer (25 ms), and that wait
    is no queue; counted raw, it put a 1.5 s-RTT path into CSS at 100 KB (the 16 ms threshold).

    Attributes:
        state: :class:`HyStartState`.
        last_round_min_rtt: ``lastRoundMinRTT`` in seconds (``inf`` when unknown).
        current_round_min_rtt: ``currentRoundMinRTT`` in seconds.
        rtt_sample_count: ``rttSampleCount`` of the current round.
        css_baseline_min_rtt: ``cssBaselineMinRtt`` in seconds.
        css_rounds: Rounds completed in CSS.
        exits: How many times CSS was entered (for tests and qlog).
    """

    __slots__ = ("state", "last_round_min_rtt", "current_round_min_rtt", "rtt_sample_count",
                 "css_baseline_min_rtt", "css_rounds", "exits", "_window_end", "_last_sent")

    def __init__(self) -> None:
        self.state = HyStartState.SLOW_START
        self.last_round_min_rtt = math.inf
        self.current_round_min_rtt = math.inf
        self.rtt_sample_count = 0
        self.css_baseline_min_rtt = math.inf
        self.css_rounds = 0
        self.exits = 0
        self._window_end = _NEG_INF
        self._last_sent = 0.0

    def on_packet_sent(self, now: float) -> None:
        """Remember the newest send time (``SND.NXT`` for the next round's ``windowEnd``)."""
        self._last_sent = now

    def on_ack(self, *, largest_acked_sent_time: float, latest_rtt: float) -> bool:
        """Take one ACK's RTT sample; return True when slow start must end now (RFC 9406 §4.3).

        Call only while the controller is in its initial slow start. :attr:`state` tells how
        much of the acknowledged bytes to grow by.
        """
        if largest_acked_sent_time > self._window_end:
            # A new round: windowEnd = SND.NXT (RFC 9406 §4.2).
            self._window_end = self._last_sent
            self.last_round_min_rtt = self.current_round_min_rtt
            self.current_round_min_rtt = math.inf
            self.rtt_sample_count = 0
            if self.state is HyStartState.CONSERVATIVE:
                self.css_rounds += 1
                if self.css_rounds >= HYSTART_CSS_ROUNDS:
                    self.state = HyStartState.DONE
                    return True
        if latest_rtt > 0:
            if latest_rtt < self.current_round_min_rtt:
                self.current_round_min_rtt = latest_rtt
            self.rtt_sample_count += 1
        if self.rtt_sample_count < HYSTART_N_RTT_SAMPLE:
            return False
        current = self.current_round_min_rtt
        if self.state is HyStartState.SLOW_START:
            last = self.last_round_min_rtt
            if math.isinf(last) or math.isinf(current):
                return False
            thresh = min(max(last / HYSTART_MIN_RTT_DIVISOR, HYSTART_MIN_RTT_THRESH),
                         HYSTART_MAX_RTT_THRESH)
            if current >= last + thresh:
                self.state = HyStartState.CONSERVATIVE
                self.css_baseline_min_rtt = current
                self.css_rounds = 0
                self.exits += 1
        elif self.state is HyStartState.CONSERVATIVE and current < self.css_baseline_min_rtt:
            # The RTT increase was spurious: back to slow start (RFC 9406 §4.3).
            self.state = HyStartState.SLOW_START
            self.css_baseline_min_rtt = math.inf
        return False

    def growth(self, acked_bytes: int) -> float:
        """Bytes to add for ``acked_bytes`` acknowledged: all of them, or a quarter in CSS."""
        if self.state is HyStartState.CONSERVATIVE:
            return acked_bytes / HYSTART_CSS_GROWTH_DIVISOR
        return float(acked_bytes)


def cubic_k(w_max: float, cwnd_epoch: float) -> float:
    """Return K in seconds: ``cbrt((W_max - cwnd_epoch) / C)`` (RFC 9438 §4.2, Figure 2).

    Args:
        w_max: W_max in segments.
        cwnd_epoch: Congestion window at the start of the epoch, in segments.
    """
    return math.cbrt((w_max - cwnd_epoch) / CUBIC_C)


def w_cubic(t: float, *, k: float, w_max: float) -> float:
    """Return ``W_cubic(t) = C * (t - K)^3 + W_max`` in segments (RFC 9438 §4.2, Figure 1).

    Args:
        t: Seconds since the start of the congestion avoidance epoch.
        k: K from :func:`cubic_k`.
        w_max: W_max in segments.
    """
    d = t - k
    return CUBIC_C * d * d * d + w_max


class CubicCongestionController:
    """RFC 9438 CUBIC; see :class:`.base.CongestionController`.

    Attributes:
        congestion_window: Bytes allowed in flight (``int(cwnd)``).
        ssthresh: Slow start threshold in bytes, ``None`` while infinite.
        recovery_start_time: Start of the current recovery period (RFC 9002
            Appendix B.2); ``-inf`` when none.
        w_max: W_max in bytes (RFC 9438 §4.1.2); 0.0 before the first
            congestion event and after persistent congestion.
        cwnd_prior: cwnd in bytes just before the last reduction (RFC 9438 §4.1.2).
        k: K in seconds for the current epoch.
        epoch_start: t_epoch, or ``None`` when no congestion avoidance epoch is
            running (it starts on the next ACK in congestion avoidance).
        w_est: W_est in bytes, the Reno-friendly estimate (RFC 9438 §4.3).
        fast_convergence: Whether RFC 9438 §4.7 fast convergence is applied.
        hystart: The initial slow start's :class:`HyStartPlusPlus`, or ``None`` when disabled.
    """

    RENO_ALPHA: ClassVar[float | None] = None
    """alpha of the Reno-friendly estimate before W_est reaches cwnd_prior: ``None`` for RFC
    9438 §4.3's alpha_cubic (:data:`CUBIC_ALPHA`), or a fixed value (1.0 in the subclass)."""

    __slots__ = (
        "congestion_window",
        "ssthresh",
        "recovery_start_time",
        "w_max",
        "cwnd_prior",
        "k",
        "epoch_start",
        "w_est",
        "fast_convergence",
        "hystart",
        "_cwnd",
        "_max_datagram_size",
        "_minimum_window",
        "_idle_since",
        "_undo",
        "_alpha",
    )

    def __init__(self, *, max_datagram_size: int, fast_convergence: bool = True,
                 hystart: bool = True) -> None:
        """Start in slow start with the initial window (RFC 9002 §7.2, RFC 9438 §4.10).

        Args:
            max_datagram_size: The sender's maximum datagram size in bytes.
            fast_convergence: Apply RFC 9438 §4.7 (recommended unless the flow
                is known to be alone on its bottleneck).
            hystart: Use HyStart++ (RFC 9406) in the initial slow start.
        """
        self.fast_convergence = fast_convergence
        alpha = self.RENO_ALPHA
        self._alpha = CUBIC_ALPHA if alpha is None else alpha
        self.hystart: HyStartPlusPlus | None = HyStartPlusPlus() if hystart else None
        self._start(max_datagram_size)

    def reset(self, *, max_datagram_size: int) -> None:
        """Start over in place on a new path (RFC 9000 §9.4): the state of a new controller
        with the same ``fast_convergence`` and HyStart++ choice (re-running ``__init__`` on a
        mypyc-compiled instance does nothing)."""
        if self.hystart is not None:
            self.hystart = HyStartPlusPlus()
        self._start(max_datagram_size)

    def _start(self, max_datagram_size: int) -> None:
        """The window state of a new controller (all but the configuration)."""
        self._max_datagram_size = max_datagram_size
        self._minimum_window = minimum_window(max_datagram_size)
        cwnd = initial_window(max_datagram_size)
        self._cwnd: float = float(cwnd)
        self.congestion_window: int = cwnd
        self.ssthresh: int | None = None
        self.recovery_start_time: float = _NEG_INF
        self.w_max: float = 0.0
        self.cwnd_prior: float = 0.0
        self.k: float = 0.0
        self.epoch_start: float | None = None
        self.w_est: float = 0.0
        self._idle_since: float | None = None
        # State before the last reduction (RFC 9438 §4.9), for undo.
        self._undo: tuple[float, int | None, float, float, float, float | None, float, float,
                          HyStartState | None] | None = None

    def on_packet_sent(self, *, now: float, sent_bytes: int, bytes_in_flight: int) -> None:
        """Shift the epoch past an idle period when sending resumes (RFC 9438 §4.2, §5.8)."""
        if self.hystart is not None:
            self.hystart.on_packet_sent(now)
        idle_since = self._idle_since
        if idle_since is not None:
            self._idle_since = None
            if self.epoch_start is not None and now > idle_since:
                self.epoch_start += now - idle_since

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
        """Grow the window for one ACK frame (RFC 9438 §4.2-§4.5, §4.10; RFC 9002 §7.8)."""
        if bytes_in_flight <= 0 and self._idle_since is None:
            self._idle_since = now
        # No growth for packets sent before recovery started (RFC 9002 §7.3.2).
        if largest_acked_sent_time <= self.recovery_start_time:
            return
        if app_limited:
            # RFC 9002 §7.8 / RFC 9438 §4.2: no growth, and t must exclude
            # this period: the epoch restarts from the current window.
            self.epoch_start = None
            return
        cwnd = self._cwnd
        ssthresh = self.ssthresh
        hystart = self.hystart
        if ssthresh is None and hystart is not None and hystart.state is not HyStartState.DONE:
            # Initial slow start with HyStart++ (RFC 9406 §4.3).
            if not hystart.on_ack(largest_acked_sent_time=largest_acked_sent_time,
                                  latest_rtt=rtt.path_rtt):
                self._cwnd = cwnd = cwnd + hystart.growth(acked_bytes)
                self.congestion_window = int(cwnd)
                return
            # CSS is over: congestion avoidance from the current window (RFC 9406 §4.3).
            self.ssthresh = ssthresh = int(cwnd)
            acked_bytes = 0
        if ssthresh is None or cwnd < ssthresh:
            # Slow start (RFC 9438 §4.10, RFC 9002 §7.3.1).
            if ssthresh is None or cwnd + acked_bytes <= ssthresh:
                self._cwnd = cwnd = cwnd + acked_bytes
                self.congestion_window = int(cwnd)
                return
            acked_bytes -= int(ssthresh - cwnd)
            cwnd = float(ssthresh)

        mds = self._max_datagram_size
        epoch_start = self.epoch_start
        if epoch_start is None:
            # A new congestion avoidance stage (RFC 9438 §4.2, §4.3, §4.8).
            epoch_start = self.epoch_start = now
            self.w_est = cwnd
            if cwnd >= self.w_max:
                # After a timeout or an app-limited restart above W_max: K = 0
                # and W_max = cwnd_epoch (RFC 9438 §4.8).
                self.w_max = cwnd
                self.k = 0.0
            else:
                self.k = math.cbrt((self.w_max - cwnd) / mds / CUBIC_C)

        # Reno-friendly estimate (RFC 9438 §4.3, Figure 4), ABC in bytes:
        # W_est += alpha * segments_acked / cwnd  (in segments); alpha is 1 once W_est reaches
        # cwnd_prior, and before that alpha_cubic (or RENO_ALPHA).
        w_est = self.w_est
        alpha = 1.0 if w_est >= self.cwnd_prior else self._alpha
        w_est += alpha * acked_bytes * mds / cwnd
        self.w_est = w_est

        w_max = self.w_max
        k = self.k
        t = now - epoch_start
        scale = CUBIC_C * mds
        d = t - k
        cubic_now = scale * d * d * d + w_max
        if cubic_now < w_est:
            # Reno-friendly region (RFC 9438 §4.3).
            if w_est > cwnd:
                cwnd = w_est
        else:
            # Concave (cwnd < W_max) or convex region (RFC 9438 §4.4, §4.5):
            # cwnd += (target - cwnd) / cwnd per segment acknowledged, with
            # target = W_cubic(t + RTT) clamped to [cwnd, 1.5 * cwnd] (§4.2).
            d += rtt.smoothed_rtt
            target = scale * d * d * d + w_max
            if target > 1.5 * cwnd:
                target = 1.5 * cwnd
            if target > cwnd:
                cwnd += (target - cwnd) * acked_bytes / cwnd
        self._cwnd = cwnd
        self.congestion_window = int(cwnd)

    def on_congestion_event(
        self,
        *,
        now: float,
        largest_lost_sent_time: float,
        lost_bytes: int,
        bytes_in_flight: int,
    ) -> None:
        """Reduce by beta_cubic once per recovery period (RFC 9438 §4.6, §4.7)."""
        if bytes_in_flight <= 0 and self._idle_since is None:
            self._idle_since = now
        if largest_lost_sent_time <= self.recovery_start_time:
            return
        hystart = self.hystart
        self._undo = (self._cwnd, self.ssthresh, self.w_max, self.cwnd_prior, self.k,
                      self.epoch_start, self.w_est, self.recovery_start_time,
                      hystart.state if hystart is not None else None)
        if hystart is not None:
            hystart.state = HyStartState.DONE  # loss ends slow start and CSS (RFC 9406 §4.3)
        self.recovery_start_time = now
        cwnd = self._cwnd
        # Fast convergence (RFC 9438 §4.7): a lower saturation point than last
        # time releases bandwidth by lowering W_max further.
        if self.fast_convergence and cwnd < self.w_max:
            self.w_max = cwnd * _FAST_CONVERGENCE_FACTOR
        else:
            self.w_max = cwnd
        self.cwnd_prior = cwnd
        # ssthresh = cwnd * beta_cubic, at least the minimum window (RFC 9438
        # §4.6 with cwnd standing in for flight_size; growth is already gated
        # on app_limited as RFC 9438 §4.6 requires for QUIC).
        reduced = cwnd * CUBIC_BETA
        if reduced < self._minimum_window:
            reduced = float(self._minimum_window)
        self._cwnd = reduced
        self.congestion_window = int(reduced)
        self.ssthresh = int(reduced)
        self.epoch_start = None

    def on_persistent_congestion(self, *, now: float) -> None:
        """Collapse to the minimum window, as after a timeout (RFC 9438 §4.8, RFC 9002 §7.6.2).

        The next congestion avoidance stage starts with K = 0 and W_max equal
        to its starting window (RFC 9438 §4.8). As in :mod:`.newreno`, the
        recovery period restarts at ``now`` rather than being reset.
        """
        if self.ssthresh is None:
            # Only reached if the caller skipped on_congestion_event.
            self.cwnd_prior = self._cwnd
            self.ssthresh = max(int(self._cwnd * CUBIC_BETA), self._minimum_window)
        minimum = self._minimum_window
        self._cwnd = float(minimum)
        self.congestion_window = minimum
        self.recovery_start_time = now
        self.w_max = 0.0
        self.epoch_start = None
        self._undo = None

    def on_packets_discarded(self, *, discarded_bytes: int) -> None:
        """No-op: CUBIC keeps no per-packet state (RFC 9002 §6.4)."""

    def on_spurious_congestion(self, *, now: float) -> None:
        """Restore cwnd, ssthresh, W_max, K, t_epoch and W_est from before the last reduction.

        RFC 9438 §4.9: the congestion event was spurious, so the state it changed goes back
        (the window to at least its earlier value), and the recovery period it began ends.
        HyStart++ resumes where it was if the reduction interrupted the initial slow start.
        """
        undo = self._undo
        if undo is None:
            return
        self._undo = None
        (cwnd, ssthresh, w_max, cwnd_prior, k, epoch_start, w_est, recovery_start,
         hystart_state) = undo
        if cwnd > self._cwnd:
            self._cwnd = cwnd
            self.congestion_window = int(cwnd)
        self.ssthresh = ssthresh
        self.w_max = w_max
        self.cwnd_prior = cwnd_prior
        self.k = k
        self.epoch_start = epoch_start
        self.w_est = w_est
        self.recovery_start_time = recovery_start
        if self.hystart is not None and hystart_state is not None:
            self.hystart.state = hystart_state


class CubicAimd1CongestionController(CubicCongestionController):
    """CUBIC whose Reno-friendly estimate grows by one segment per window from the epoch start.

    Everything else is :class:`CubicCongestionController` (RFC 9438 with beta_cubic = 0.7,
    HyStart++, fast convergence, undo). RFC 9438 §4.3 uses alpha_cubic = 3(1-beta)/(1+beta)
    ~ 0.53 until W_est reaches cwnd_prior, so that AIMD(alpha_cubic, 0.7) averages the window
    of Reno's AIMD(1, 0.5); from cwnd_prior on it uses 1, as here from the start. With random
    loss at rate p the mean window becomes sqrt(1.7 / (0.6 p)) segments instead of sqrt(1.5 / p)
    (16.8 against 12.2 at 1 %), the response of ngtcp2 0.12's CUBIC (its ``w_tcp`` grows one
    segment per window) and of quic-go 0.29's Reno sender (one segment per window, cut to 0.7).
    A real loss still reduces by beta_cubic once per recovery period (RFC 9002 §7.3.2).
    """

    __slots__ = ()
    RENO_ALPHA: ClassVar[float | None] = 1.0


register_congestion_controller("cubic", CubicAimd1CongestionController)
register_congestion_controller("cubic-rfc9438", CubicCongestionController)
