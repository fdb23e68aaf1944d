"""BBRv3's constants, states and two self-contained estimators (draft-ietf-ccwg-bbr).

:class:`MinRttFilter` is BBR.min_rtt with the ProbeRTT schedule's shorter filter
(§"BBR.min_rtt Min Filter"); :class:`AckAggregation` is BBR.extra_acked (§"BBR.extra_acked").
The controller is :mod:`.bbr3`.
"""

from __future__ import annotations

import enum
import math

from .bbr import WindowedMaxFilter

__all__ = [
    "BBR3_BETA",
    "BBR3_LOSS_THRESH",
    "BBR3_STARTUP_PACING_GAIN",
    "PROBE_BW_STATES",
    "PROBING_STATES",
    "AckAggregation",
    "AckPhase",
    "Bbr3State",
    "MinRttFilter",
    "RoundLossTally",
]

BBR3_STARTUP_PACING_GAIN = 4.0 * math.log(2.0)
"""Startup pacing gain 4 ln 2 ≈ 2.77 (§"Pacing State and Parameters", BBR.StartupPacingGain)."""
BBR3_DRAIN_PACING_GAIN = 0.5
"""Drain pacing gain (§"Pacing State and Parameters", BBR.DrainPacingGain)."""
BBR3_DEFAULT_CWND_GAIN = 2.0
"""cwnd gain in most states (§"cwnd State and Parameters", BBR.DefaultCwndGain)."""
BBR3_PROBE_UP_CWND_GAIN = 2.25
"""cwnd gain in ProbeBW_UP (§"Accelerating to Probe for Bandwidth")."""
BBR3_PROBE_DOWN_PACING_GAIN = 0.90
"""ProbeBW_DOWN pacing gain (§"ProbeBW_DOWN")."""
BBR3_PROBE_UP_PACING_GAIN = 1.25
"""ProbeBW_UP pacing gain (§"Accelerating to Probe for Bandwidth")."""
BBR3_PACING_MARGIN = 0.01
"""Pacing rate discount (§"Pacing State and Parameters", BBR.PacingMarginPercent = 1 %)."""
BBR3_LOSS_THRESH = 0.02
"""Maximum tolerated loss rate per round while probing (§"Core Algorithm Design Parameters")."""
BBR3_BETA = 0.7
"""Multiplicative decrease per round with loss (§"Core Algorithm Design Parameters")."""
BBR3_HEADROOM = 0.15
"""Share of inflight_longterm left free for cross traffic (BBR.Headroom)."""
BBR3_MIN_PIPE_CWND_PACKETS = 4
"""BBR.MinPipeCwnd in datagrams (§"Core Algorithm Design Parameters")."""
BBR3_MAX_BW_FILTER_CYCLES = 2
"""BBR.MaxBwFilterLen: ProbeBW cycles the max_bw filter spans (§"Estimating BBR.max_bw")."""
BBR3_EXTRA_ACKED_FILTER_ROUNDS = 10
"""BBR.ExtraAckedFilterLen in rounds (§"Estimating BBR.extra_acked")."""
BBR3_MIN_RTT_FILTER_LEN = 10.0
"""BBR.MinRTTFilterLen in seconds (§"Parameters for Estimating BBR.min_rtt")."""
BBR3_PROBE_RTT_CWND_GAIN = 0.5
"""BBR.ProbeRTTCwndGain (§"Parameters for Scheduling ProbeRTT")."""
BBR3_PROBE_RTT_DURATION = 0.2
"""BBR.ProbeRTTDuration in seconds (§"Parameters for Scheduling ProbeRTT")."""
BBR3_PROBE_RTT_INTERVAL = 5.0
"""BBR.ProbeRTTInterval in seconds (§"Parameters for Scheduling ProbeRTT")."""
BBR3_FULL_BW_GROWTH = 1.25
"""A round whose delivery rate grows by less than 25 % counts toward a full pipe (§"Exiting
Acceleration Based on Bandwidth Plateau")."""
BBR3_FULL_BW_ROUNDS = 3
"""Rounds without that growth after which the pipe is full (same section)."""
BBR3_STARTUP_FULL_LOSS_COUNT = 6
"""BBRStartupFullLossCnt: lost ranges in a round that end Startup (§"Exiting Startup Based on
Packet Loss")."""
BBR3_SEND_QUANTUM_INTERVAL = 0.001
"""send_quantum is 1 ms at the pacing rate (§"SetSendQuantum") ..."""
BBR3_SEND_QUANTUM_MAX = 64 * 1024
"""... at most 64 KB (§"SetSendQuantum")."""
BBR3_MAX_REFILL_ROUNDS = 63
"""Cap on the Reno-coexistence probe interval in rounds (IsRenoCoexistenceProbeTime)."""



class Bbr3State(enum.Enum):
    """The BBRv3 state machine (§"State Transition Diagram")."""

    STARTUP = "startup"
    DRAIN = "drain"
    PROBE_BW_DOWN = "probe_bw_down"
    PROBE_BW_CRUISE = "probe_bw_cruise"
    PROBE_BW_REFILL = "probe_bw_refill"
    PROBE_BW_UP = "probe_bw_up"
    PROBE_RTT = "probe_rtt"


PROBE_BW_STATES = frozenset({Bbr3State.PROBE_BW_DOWN, Bbr3State.PROBE_BW_CRUISE,
                       Bbr3State.PROBE_BW_REFILL, Bbr3State.PROBE_BW_UP})
PROBING_STATES = frozenset({Bbr3State.STARTUP, Bbr3State.PROBE_BW_REFILL, Bbr3State.PROBE_BW_UP})


class AckPhase(enum.Enum):
    """What the ACKs now arriving say about bandwidth probing (§"ProbeBW State", ack_phase)."""

    INIT = "init"
    REFILLING = "refilling"
    PROBE_STARTING = "probe_starting"
    PROBE_FEEDBACK = "probe_feedback"
    PROBE_STOPPING = "probe_stopping"


class MinRttFilter:
    """BBR.min_rtt over 10 s and BBR.probe_rtt_min_delay over the 5 s ProbeRTT interval.

    Attributes:
        min_rtt: Seconds; ``inf`` before a sample.
        probe_rtt_expired: Whether the 5 s minimum is due for a refresh (BBR.probe_rtt_expired).
    """

    __slots__ = ("min_rtt", "probe_rtt_expired", "_min_rtt_stamp", "_probe_rtt_min_delay",
                 "_probe_rtt_min_stamp")

    def __init__(self) -> None:
        """Start without a sample."""
        self.min_rtt = math.inf
        self.probe_rtt_expired = False
        self._min_rtt_stamp: float | None = None
        self._probe_rtt_min_delay = math.inf
        self._probe_rtt_min_stamp: float | None = None

    def update(self, now: float, rtt: float) -> None:
        """UpdateMinRTT with the RTT sample ``rtt`` (negative: none) taken at ``now``."""
        if self._probe_rtt_min_stamp is None:
            self._probe_rtt_min_stamp = now
            self._min_rtt_stamp = now
        self.probe_rtt_expired = now > self._probe_rtt_min_stamp + BBR3_PROBE_RTT_INTERVAL
        if rtt >= 0.0 and (rtt < self._probe_rtt_min_delay or self.probe_rtt_expired):
            self._probe_rtt_min_delay = rtt
            self._probe_rtt_min_stamp = now
        min_stamp = self._min_rtt_stamp if self._min_rtt_stamp is not None else now
        if self._probe_rtt_min_delay < self.min_rtt or now > min_stamp + BBR3_MIN_RTT_FILTER_LEN:
            self.min_rtt = self._probe_rtt_min_delay
            self._min_rtt_stamp = self._probe_rtt_min_stamp

    def schedule_next_probe_rtt(self, now: float) -> None:
        """CheckProbeRTTDone's ``BBR.probe_rtt_min_stamp = Now()``."""
        self._probe_rtt_min_stamp = now


class AckAggregation:
    """BBR.extra_acked: how much more than ``bw`` × interval the ACKs delivered recently.

    Attributes:
        extra_acked: Bytes.
    """

    __slots__ = ("extra_acked", "_filter", "_interval_start", "_delivered")

    def __init__(self) -> None:
        """Start with no aggregation seen."""
        self.extra_acked = 0
        self._filter = WindowedMaxFilter(BBR3_EXTRA_ACKED_FILTER_ROUNDS)
        self._interval_start: float | None = None
        self._delivered = 0

    def restart(self, now: float) -> None:
        """Restart the measurement interval (HandleRestartFromIdle)."""
        self._interval_start = now

    def update(self, *, now: float, bw: float, newly_acked: int, cwnd: int, round_count: int,
               full_bw_reached: bool) -> None:
        """UpdateACKAggregation; in Startup the filter remembers one round only."""
        start = self._interval_start
        if start is None:
            start = self._interval_start = now
        expected = bw * (now - start)
        if self._delivered <= expected:
            self._delivered = 0
            self._interval_start = now
            expected = 0.0
        self._delivered += newly_acked
        extra = min(int(self._delivered - expected), cwnd)
        self._filter.window = BBR3_EXTRA_ACKED_FILTER_ROUNDS if full_bw_reached else 1
        self._filter.update(float(extra), round_count)
        self.extra_acked = int(self._filter.get())


class RoundLossTally:
    """Loss per packet-timed round for CheckStartupHighLoss (§"Exiting Startup Based on Packet
    Loss"); a loss-detection pass stands in for a lost range."""

    __slots__ = ("_lost", "_events", "_mark", "last_lost", "last_events", "last_delivered")

    def __init__(self) -> None:
        """Start with an empty round."""
        self._lost = self._events = self._mark = 0
        self.last_lost = self.last_events = self.last_delivered = 0

    def on_lost(self, lost_bytes: int) -> None:
        """One loss-detection pass declared ``lost_bytes`` lost."""
        self._lost += lost_bytes
        self._events += 1

    def end_round(self, delivered: int) -> None:
        """Close the round at C.delivered = ``delivered``."""
        self.last_lost, self.last_events = self._lost, self._events
        self.last_delivered = delivered - self._mark
        self._lost = self._events = 0
        self._mark = delivered

    def high_loss_last_round(self) -> bool:
        """At least 6 lost ranges and a loss rate above LossThresh in the round just ended."""
        return (self.last_events >= BBR3_STARTUP_FULL_LOSS_COUNT
                and self.last_lost > BBR3_LOSS_THRESH * (self.last_delivered + self.last_lost))
