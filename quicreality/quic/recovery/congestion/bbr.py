"""BBR congestion control, version 1, behind the RFC 9002 controller interface.

Follows draft-cardwell-iccrg-bbr-congestion-control-00 ("BBR" below) and the
2016 paper (Cardwell et al., "BBR: Congestion-Based Congestion Control", ACM
Queue 14(5)); delivery-rate sampling follows
draft-cheng-iccrg-delivery-rate-estimation-00 ("DRE" below).

Theory of operation. The path model is the bottleneck bandwidth ``btl_bw``
(max of delivery-rate samples over 10 rounds) and the propagation RTT
``rt_prop`` (min RTT over 10 s); their product is the BDP. The sender paces
at ``pacing_gain * btl_bw`` and caps inflight at ``cwnd_gain * BDP + 3 *
send_quantum`` (one datagram below 1.2 Mbit/s, two below 24 Mbit/s, else
1 ms at the pacing rate up to 64 KB, BBR §4.2.2: this allowance keeps a
CPU-bound loopback path, whose ``rt_prop`` is tiny, from being
window-limited). A four-state machine varies the gains:

* STARTUP: both gains 2/ln 2, doubling the rate each round until ``btl_bw``
  grows by less than 25 % for 3 rounds (the pipe is full);
* DRAIN: pacing gain ln 2/2 until inflight falls to one BDP;
* PROBE_BW: pacing gain cycles through 1.25, 0.75, 1, 1, 1, 1, 1, 1, one
  phase per ``rt_prop``, from a start phase drawn deterministically from
  ``seed`` (never the 0.75 phase); cwnd gain 2;
* PROBE_RTT: when ``rt_prop`` was not refreshed for 10 s, cwnd drops to 4
  packets for 200 ms plus one round so that queues drain and a new minimum
  can be seen.

Delivery-rate sampling without widening the interface is
:class:`.rate_sample.DeliveryRateSampler` (shared with BBRv3): ``on_packet_sent``
records ``(sent_time, delivered, delivered_time, first_sent_time, app_limited)``
per packet (DRE §3.2); ``on_packets_acked`` takes the record of the packet sent
at ``largest_acked_sent_time`` (older records are dropped on the way, so the
lookup is amortised O(1)) and computes ``(delivered - record.delivered) /
max(send_elapsed, ack_elapsed)`` (DRE §3.3). Samples taken while
application-limited may only raise the bandwidth filter (BBR §4.1.1.5). The
caller's ``app_limited`` flag is turned into DRE's ``C.app_limited`` marker
(``delivered + bytes_in_flight``), so packets sent before the marker is passed
are sampled as application-limited too.

Loss. BBRv1 does not treat random loss as a congestion signal. Here, lost
bytes are subtracted from the window (BBR §4.2.3.4, first step), the normal
growth rule refills it on the next ACKs, and during a recovery period (until a
packet sent after it began is acknowledged, RFC 9002 §7.3.2) the window is
kept at least ``bytes_in_flight + acked_bytes`` (packet conservation, as a
floor only: unlike the draft the window is not first cut to the inflight, so
the 1.25 probing phase is not blocked). Persistent congestion cuts the window
to the RFC 9002 minimum (§7.6.2); it then regrows by the acknowledged bytes
per ACK up to the model's target, and is not restored to its earlier value.
``ssthresh`` stays ``None``: BBR has no slow-start threshold.

Not implemented: long-term bandwidth sampling (policer detection), ACK
aggregation compensation (``extra_acked``, later drafts), BBRv2/v3.
"""

from __future__ import annotations

import enum
import math
from collections import deque

from ..rtt import RttEstimator
from .base import initial_window, minimum_window, register_congestion_controller
from .rate_sample import DeliveryRateSampler

__all__ = [
    "BBR_DRAIN_GAIN",
    "BBR_HIGH_GAIN",
    "BBR_PACING_GAIN_CYCLE",
    "BbrCongestionController",
    "BbrState",
    "WindowedMaxFilter",
    "send_quantum",
    "splitmix64",
]

BBR_HIGH_GAIN = 2.0 / math.log(2.0)
"""STARTUP pacing and cwnd gain 2/ln 2 ≈ 2.885 (BBR §4.3.2.1, paper "Startup")."""

BBR_DRAIN_GAIN = 1.0 / BBR_HIGH_GAIN
"""DRAIN pacing gain, the inverse of the STARTUP gain (BBR §4.3.3)."""

BBR_PROBE_BW_CWND_GAIN = 2.0
"""cwnd gain in PROBE_BW: 2 * BDP tolerates delayed and stretched ACKs (BBR §4.3.4)."""

BBR_PACING_GAIN_CYCLE = (1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
"""PROBE_BW pacing gains, one phase per rt_prop (BBR §4.3.4.3, BBRGainCycleLen = 8)."""

BBR_BTLBW_FILTER_ROUNDS = 10
"""BtlBwFilterLen: the bandwidth max filter spans 10 round trips (BBR §4.1.1.4)."""

BBR_RTPROP_FILTER_LEN = 10.0
"""RTpropFilterLen in seconds: rt_prop expires after 10 s (BBR §4.1.2.1)."""

BBR_PROBE_RTT_DURATION = 0.2
"""ProbeRTTDuration in seconds at the reduced window (BBR §4.3.5)."""

BBR_MIN_PIPE_CWND_PACKETS = 4
"""BBRMinPipeCwnd in datagrams (BBR §4.2.3.1)."""

BBR_FULL_BW_GROWTH = 1.25
"""STARTUP continues while btl_bw grows by at least 25 % per round (BBR §4.3.2.2)."""

BBR_FULL_BW_ROUNDS = 3
"""Rounds without 25 % growth after which the pipe is deemed full (BBR §4.3.2.2)."""

BBR_QUANTA = 3
"""The inflight target adds ``BBR_QUANTA * send_quantum`` (BBR §4.2.3.2)."""

BBR_SEND_QUANTUM_LOW_RATE = 1.2e6 / 8
"""Below 1.2 Mbit/s (in bytes/s) the send quantum is one datagram (BBR §4.2.2)."""

BBR_SEND_QUANTUM_MID_RATE = 24e6 / 8
"""Below 24 Mbit/s (in bytes/s) the send quantum is two datagrams (BBR §4.2.2)."""

BBR_SEND_QUANTUM_INTERVAL = 0.001
"""Above 24 Mbit/s the send quantum is 1 ms at the pacing rate ... (BBR §4.2.2)."""

BBR_SEND_QUANTUM_MAX = 64 * 1024
"""... but at most 64 KB (BBR §4.2.2)."""


_MASK64 = (1 << 64) - 1
_INF = math.inf


def splitmix64(x: int) -> int:
    """Return the SplitMix64 output for state ``x`` (a fixed, seedable mixer; no OS randomness)."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def send_quantum(pacing_rate: float, max_datagram_size: int) -> int:
    """Return BBR.send_quantum in bytes for ``pacing_rate`` in bytes/s (BBRSetSendQuantum, BBR §4.2.2).

    Loss detection's pacer has its own burst allowance; this only sizes the
    inflight target.
    """
    if pacing_rate < BBR_SEND_QUANTUM_LOW_RATE:
        return max_datagram_size
    if pacing_rate < BBR_SEND_QUANTUM_MID_RATE:
        return 2 * max_datagram_size
    quantum = min(int(pacing_rate * BBR_SEND_QUANTUM_INTERVAL), BBR_SEND_QUANTUM_MAX)
    return max(quantum, 2 * max_datagram_size)


class BbrState(enum.Enum):
    """The BBR state machine (BBR §4.3)."""

    STARTUP = "startup"
    DRAIN = "drain"
    PROBE_BW = "probe_bw"
    PROBE_RTT = "probe_rtt"


class WindowedMaxFilter:
    """Maximum of the samples taken in the last ``window`` rounds (BBR §4.1.1.4).

    An exact monotonic queue (values strictly decreasing from the oldest entry),
    holding at most one entry per round, so at most ``window + 1`` entries.
    """

    __slots__ = ("window", "_samples")

    def __init__(self, window: int) -> None:
        """Create an empty filter over ``window`` rounds."""
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, value: float, round_count: int) -> None:
        """Add ``value`` sampled in round ``round_count`` and expire old rounds."""
        samples = self._samples
        if samples and samples[-1][1] == round_count and samples[-1][0] >= value:
            pass  # Dominated by an equal-aged, larger sample.
        else:
            while samples and samples[-1][0] <= value:
                samples.pop()
            samples.append((value, round_count))
        limit = round_count - self.window
        while samples and samples[0][1] <= limit:
            samples.popleft()

    def get(self) -> float:
        """Return the current maximum, 0.0 when empty."""
        samples = self._samples
        return samples[0][0] if samples else 0.0


class BbrCongestionController:
    """BBR version 1; see the module docstring and :class:`.base.CongestionController`.

    Attributes:
        congestion_window: Bytes allowed in flight.
        ssthresh: Always ``None`` (BBR has no slow-start threshold).
        pacing_rate: Pacing rate in bytes/s (BBR §4.2.1); ``None`` until the
            first acknowledgement. Loss detection hands it to the pacer.
        state: Current :class:`BbrState`.
        btl_bw: Bottleneck bandwidth estimate in bytes/s (BBR.BtlBw); 0.0 before a sample.
        rt_prop: Propagation RTT estimate in seconds (BBR.RTprop); ``inf`` before a sample.
        rt_prop_stamp: When ``rt_prop`` was last set (BBR.rtprop_stamp).
        pacing_gain: Current pacing gain.
        cwnd_gain: Current cwnd gain.
        cycle_index: PROBE_BW phase index into :data:`BBR_PACING_GAIN_CYCLE`.
        round_count: Packet-timed round trips counted by delivered bytes (BBR §4.1.1.3).
        filled_pipe: Whether STARTUP found the pipe full (BBR §4.3.2.2).
        delivered: Total bytes acknowledged (DRE ``C.delivered``).
        send_quantum: Bytes of the largest burst the model plans for (BBR §4.2.2);
            three of them are added to the inflight target.
    """

    __slots__ = (
        "congestion_window", "ssthresh", "pacing_rate", "state", "btl_bw", "rt_prop",
        "rt_prop_stamp", "pacing_gain", "cwnd_gain", "cycle_index", "round_count", "filled_pipe",
        "send_quantum",
        "_mds", "_initial_window", "_minimum_window", "_min_pipe_cwnd", "_cwnd", "_prior_cwnd",
        "_rng_state", "_btl_bw_filter", "_sampler", "_next_round_delivered", "_round_start", "_full_bw",
        "_full_bw_count", "_cycle_stamp", "_probe_rtt_done_stamp", "_probe_rtt_round_done",
        "_idle_restart", "_lost_since_ack", "_recovery_start_time", "_in_recovery", "_undo",
    )

    def __init__(self, *, max_datagram_size: int, seed: int = 0) -> None:
        """Start in STARTUP with the RFC 9002 initial window (BBR §4.3.1, RFC 9002 §7.2).

        Args:
            max_datagram_size: The sender's maximum datagram size in bytes.
            seed: Seeds the deterministic draw of the PROBE_BW start phase
                (BBR §4.3.4.3 asks for a random one); equal seeds and equal
                inputs give equal behaviour.
        """
        self._mds = max_datagram_size
        self._initial_window = initial_window(max_datagram_size)
        self._minimum_window = minimum_window(max_datagram_size)
        self._min_pipe_cwnd = BBR_MIN_PIPE_CWND_PACKETS * max_datagram_size
        self._cwnd = self._initial_window
        self.congestion_window: int = self._cwnd
        self.ssthresh: int | None = None
        self.pacing_rate: float | None = None
        self.send_quantum = max_datagram_size
        self._prior_cwnd = 0
        self._rng_state = seed & _MASK64
        self.btl_bw = 0.0
        self.rt_prop = _INF
        self.rt_prop_stamp = 0.0
        self._btl_bw_filter = WindowedMaxFilter(BBR_BTLBW_FILTER_ROUNDS)
        self._sampler = DeliveryRateSampler()
        self.round_count = 0
        self._next_round_delivered = 0
        self._round_start = False
        self.filled_pipe = False
        self._full_bw = 0.0
        self._full_bw_count = 0
        self.cycle_index = 0
        self._cycle_stamp = 0.0
        self._probe_rtt_done_stamp: float | None = None
        self._probe_rtt_round_done = False
        self._idle_restart = False
        self._lost_since_ack = False
        self._recovery_start_time = -_INF
        self._in_recovery = False
        # (cwnd, recovery_start_time) before the current recovery period, for undo.
        self._undo: tuple[int, float] | None = None
        self.state = BbrState.STARTUP
        self.pacing_gain = BBR_HIGH_GAIN
        self.cwnd_gain = BBR_HIGH_GAIN

    @property
    def delivered(self) -> int:
        """Total bytes acknowledged (DRE ``C.delivered``)."""
        return self._sampler.delivered

    # ------------------------------------------------------------- interface

    def on_packet_sent(self, *, now: float, sent_bytes: int, bytes_in_flight: int) -> None:
        """Record the delivery state at send time (DRE §3.2) and handle restart from idle (BBR §4.3.4.4)."""
        if bytes_in_flight <= sent_bytes and self._sampler.app_limited:
            # The pipe was empty after an application-limited phase.
            self._idle_restart = True
            if self.state is BbrState.PROBE_BW and self.btl_bw > 0.0:
                self.pacing_rate = self.btl_bw
        self._sampler.on_sent(now, bytes_in_flight, sent_bytes)

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
        """Update the model and state, then pacing rate and window (BBR §4.1-§4.3, "BBRUpdateOnACK")."""
        prior_inflight = bytes_in_flight + acked_bytes
        # DRE §3.4: an app-limited ACK starts a bubble until the data now in flight is delivered.
        rs = self._sampler.on_acked(
            now=now, acked_bytes=acked_bytes, largest_acked_sent_time=largest_acked_sent_time,
            bytes_in_flight=bytes_in_flight, app_limited=app_limited, min_rtt=self.rt_prop,
            loss_horizon=BBR_RTPROP_FILTER_LEN)
        losses = self._lost_since_ack
        self._lost_since_ack = False
        rtt_sample = rs.rtt
        if self._in_recovery and largest_acked_sent_time > self._recovery_start_time:
            self._in_recovery = False  # RFC 9002 §7.3.2: recovery ends.
        # Packet-timed rounds (BBR §4.1.1.3).
        self._round_start = False
        if rs.prior_delivered >= 0 and rs.prior_delivered >= self._next_round_delivered:
            self._next_round_delivered = self.delivered
            self.round_count += 1
            self._round_start = True
        rate, sample_app_limited = rs.delivery_rate, rs.is_app_limited
        # BBRUpdateBtlBw (BBR §4.1.1.5): app-limited samples only raise the max.
        if rate >= 0.0 and (rate >= self.btl_bw or not sample_app_limited):
            self._btl_bw_filter.update(rate, self.round_count)
            self.btl_bw = self._btl_bw_filter.get()
        if self.state is BbrState.PROBE_BW and self._is_next_cycle_phase(
            now, losses, prior_inflight
        ):
            self._advance_cycle_phase(now)
        self._check_full_pipe(sample_app_limited)
        self._check_drain(now, bytes_in_flight)
        # BBRUpdateRTprop (BBR §4.1.2.3).
        rt_prop_expired = now > self.rt_prop_stamp + BBR_RTPROP_FILTER_LEN
        if rtt_sample >= 0.0 and (rtt_sample <= self.rt_prop or rt_prop_expired):
            self.rt_prop = rtt_sample
            self.rt_prop_stamp = now
        self._check_probe_rtt(now, rt_prop_expired, bytes_in_flight)
        self._set_pacing_rate(rtt)
        self.send_quantum = send_quantum(self.pacing_rate or 0.0, self._mds)
        self._set_cwnd(acked_bytes, bytes_in_flight)

    def on_congestion_event(
        self,
        *,
        now: float,
        largest_lost_sent_time: float,
        lost_bytes: int,
        bytes_in_flight: int,
    ) -> None:
        """Subtract lost bytes and start a recovery period; no multiplicative decrease (BBR §4.2.3.4)."""
        self._lost_since_ack = True
        cwnd = self._cwnd
        if largest_lost_sent_time > self._recovery_start_time:
            self._undo = (cwnd, self._recovery_start_time)
        reduced = max(cwnd - lost_bytes, self._min_pipe_cwnd)
        if reduced < cwnd:
            self._cwnd = reduced
            self.congestion_window = reduced
        if largest_lost_sent_time > self._recovery_start_time:
            # One recovery period per window of losses (RFC 9002 §7.3.2).
            self._recovery_start_time = now
            self._in_recovery = True

    def on_persistent_congestion(self, *, now: float) -> None:
        """Cut the window to the minimum (RFC 9002 §7.6.2); it regrows from there, not restored.

        The packet-conservation floor is switched off so that the inflight left
        over from before the collapse cannot lift the window straight back.
        """
        self._prior_cwnd = 0
        self._cwnd = self._minimum_window
        self.congestion_window = self._minimum_window
        self._recovery_start_time = now
        self._in_recovery = False
        self._undo = None

    def on_packets_discarded(self, *, discarded_bytes: int) -> None:
        """No-op: stale delivery records are dropped as later packets are acknowledged (RFC 9002 §6.4)."""

    def on_spurious_congestion(self, *, now: float) -> None:
        """Give back the lost bytes subtracted in this recovery period and end it (RFC 9438 §4.9)."""
        undo = self._undo
        if undo is None:
            return
        self._undo = None
        cwnd, recovery_start = undo
        if cwnd > self._cwnd:
            self._cwnd = cwnd
            self.congestion_window = cwnd
        self._recovery_start_time = recovery_start
        self._in_recovery = False

    # ---------------------------------------------------------------- states

    def _inflight(self, gain: float) -> int:
        """BBRInflight: ``gain * BDP`` plus the send-quantum allowance (BBR §4.2.3.2)."""
        if self.btl_bw <= 0.0 or self.rt_prop == _INF:
            return self._initial_window
        return int(gain * self.btl_bw * self.rt_prop) + BBR_QUANTA * self.send_quantum

    def _is_next_cycle_phase(self, now: float, losses: bool, prior_inflight: int) -> bool:
        """BBRIsNextCyclePhase (BBR §4.3.4.3)."""
        is_full_length = now - self._cycle_stamp > self.rt_prop
        gain = self.pacing_gain
        if gain == 1.0:
            return is_full_length
        if gain > 1.0:
            return is_full_length and (losses or prior_inflight >= self._inflight(gain))
        return is_full_length or prior_inflight <= self._inflight(1.0)

    def _advance_cycle_phase(self, now: float) -> None:
        """BBRAdvanceCyclePhase (BBR §4.3.4.3)."""
        self._cycle_stamp = now
        self.cycle_index = (self.cycle_index + 1) % len(BBR_PACING_GAIN_CYCLE)
        self.pacing_gain = BBR_PACING_GAIN_CYCLE[self.cycle_index]

    def _check_full_pipe(self, sample_app_limited: bool) -> None:
        """BBRCheckFullPipe (BBR §4.3.2.2)."""
        if self.filled_pipe or not self._round_start or sample_app_limited:
            return
        if self.btl_bw >= self._full_bw * BBR_FULL_BW_GROWTH:
            self._full_bw = self.btl_bw
            self._full_bw_count = 0
            return
        self._full_bw_count += 1
        if self._full_bw_count >= BBR_FULL_BW_ROUNDS:
            self.filled_pipe = True

    def _check_drain(self, now: float, bytes_in_flight: int) -> None:
        """BBRCheckDrain (BBR §4.3.3)."""
        if self.state is BbrState.STARTUP and self.filled_pipe:
            self.state = BbrState.DRAIN
            self.pacing_gain = BBR_DRAIN_GAIN
            self.cwnd_gain = BBR_HIGH_GAIN
        if self.state is BbrState.DRAIN and bytes_in_flight <= self._inflight(1.0):
            self._enter_probe_bw(now)

    def _enter_probe_bw(self, now: float) -> None:
        """BBREnterProbeBW: start at a seeded phase other than 0.75 (BBR §4.3.4.3)."""
        self.state = BbrState.PROBE_BW
        self.pacing_gain = 1.0
        self.cwnd_gain = BBR_PROBE_BW_CWND_GAIN
        self._rng_state = (self._rng_state + 1) & _MASK64
        draw = splitmix64(self._rng_state) % (len(BBR_PACING_GAIN_CYCLE) - 1)
        self.cycle_index = len(BBR_PACING_GAIN_CYCLE) - 1 - draw
        self._advance_cycle_phase(now)

    def _enter_startup(self) -> None:
        """BBREnterStartup (BBR §4.3.2)."""
        self.state = BbrState.STARTUP
        self.pacing_gain = BBR_HIGH_GAIN
        self.cwnd_gain = BBR_HIGH_GAIN

    def _save_cwnd(self) -> None:
        """BBRSaveCwnd (BBR §4.2.3.4)."""
        if not self._in_recovery and self.state is not BbrState.PROBE_RTT:
            self._prior_cwnd = self._cwnd
        else:
            self._prior_cwnd = max(self._prior_cwnd, self._cwnd)

    def _check_probe_rtt(self, now: float, rt_prop_expired: bool, bytes_in_flight: int) -> None:
        """BBRCheckProbeRTT and BBRHandleProbeRTT (BBR §4.3.5)."""
        if self.state is not BbrState.PROBE_RTT and rt_prop_expired and not self._idle_restart:
            self._save_cwnd()
            self.state = BbrState.PROBE_RTT
            self.pacing_gain = 1.0
            self.cwnd_gain = 1.0
            self._probe_rtt_done_stamp = None
        if self.state is BbrState.PROBE_RTT:
            # The reduced window makes these samples application-limited (BBR §4.3.5).
            self._sampler.mark_app_limited(bytes_in_flight)
            done = self._probe_rtt_done_stamp
            if done is None and bytes_in_flight <= self._min_pipe_cwnd:
                self._probe_rtt_done_stamp = now + BBR_PROBE_RTT_DURATION
                self._probe_rtt_round_done = False
                self._next_round_delivered = self.delivered
            elif done is not None:
                if self._round_start:
                    self._probe_rtt_round_done = True
                if self._probe_rtt_round_done and now > done:
                    self.rt_prop_stamp = now
                    if self._prior_cwnd > self._cwnd:
                        self._cwnd = self._prior_cwnd  # BBRRestoreCwnd
                    if self.filled_pipe:
                        self._enter_probe_bw(now)
                    else:
                        self._enter_startup()
        self._idle_restart = False

    # ------------------------------------------------------------- controls

    def _set_pacing_rate(self, rtt: RttEstimator) -> None:
        """BBRSetPacingRate, starting from BBRInitPacingRate (BBR §4.2.1).

        The initial rate ``high_gain * initial_window / srtt`` keeps low
        handshake-time samples from throttling the first flights: until the
        pipe is full the rate only rises.
        """
        if self.pacing_rate is None:
            if not rtt.has_sample:
                return
            srtt = rtt.smoothed_rtt if rtt.smoothed_rtt > 0.0 else 0.001
            self.pacing_rate = BBR_HIGH_GAIN * self._initial_window / srtt
        if self.btl_bw <= 0.0:
            return
        rate = self.pacing_gain * self.btl_bw
        if self.filled_pipe or rate > self.pacing_rate:
            self.pacing_rate = rate

    def _set_cwnd(self, acked_bytes: int, bytes_in_flight: int) -> None:
        """BBRSetCwnd with a packet-conservation floor in recovery (BBR §4.2.3)."""
        target = self._inflight(self.cwnd_gain)
        cwnd = self._cwnd
        if self.filled_pipe:
            cwnd = min(cwnd + acked_bytes, target)
        elif cwnd < target or self.delivered < self._initial_window:
            cwnd += acked_bytes
        if self._in_recovery and cwnd < bytes_in_flight + acked_bytes:
            cwnd = bytes_in_flight + acked_bytes
        if cwnd < self._min_pipe_cwnd:
            cwnd = self._min_pipe_cwnd
        if self.state is BbrState.PROBE_RTT and cwnd > self._min_pipe_cwnd:
            cwnd = self._min_pipe_cwnd  # BBRModulateCwndForProbeRTT (BBR §4.2.3.5)
        self._cwnd = cwnd
        self.congestion_window = cwnd


register_congestion_controller("bbr", BbrCongestionController, seeded=BbrCongestionController)
