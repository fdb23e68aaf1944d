"""BBR version 3 (draft-ietf-ccwg-bbr), behind the RFC 9002 controller interface.

Section names below are the draft's (its pseudocode's function names are kept in the
docstrings, so the two can be read side by side). The model: ``max_bw`` (max delivery rate over
the current and previous ProbeBW cycle), ``min_rtt`` (10 s), the long-term volume bound
``inflight_longterm`` learned from loss while probing, and the short-term bounds
``bw_shortterm``/``inflight_shortterm`` cut by ``Beta`` = 0.7 once per round with loss while not
probing. The state machine: Startup (pacing gain 2.77, cwnd gain 2), Drain (0.5), then the
ProbeBW cycle DOWN (0.9) → CRUISE (1.0) → REFILL (1.0, one round) → UP (1.25, cwnd gain 2.25),
and ProbeRTT (cwnd 0.5 × BDP for 200 ms, every 5 s without a new minimum).

How the draft is fitted to our narrow interface (:mod:`.base`; per-packet state from
:class:`.rate_sample.DeliveryRateSampler`, loss handled once per loss-detection pass, the ECN-CE
response, persistent congestion, the seeded probe wait) is in docs/quic.md, "BBRv3".
"""

from __future__ import annotations

import math

from ..rtt import RttEstimator
from .base import initial_window, minimum_window, register_congestion_controller
from .bbr import WindowedMaxFilter, splitmix64
from .bbr3_model import (
    BBR3_BETA,
    BBR3_DEFAULT_CWND_GAIN,
    BBR3_DRAIN_PACING_GAIN,
    BBR3_FULL_BW_GROWTH,
    BBR3_FULL_BW_ROUNDS,
    BBR3_HEADROOM,
    BBR3_LOSS_THRESH,
    BBR3_MAX_BW_FILTER_CYCLES,
    BBR3_MAX_REFILL_ROUNDS,
    BBR3_MIN_PIPE_CWND_PACKETS,
    BBR3_PACING_MARGIN,
    BBR3_PROBE_DOWN_PACING_GAIN,
    BBR3_PROBE_RTT_CWND_GAIN,
    BBR3_PROBE_RTT_DURATION,
    BBR3_PROBE_UP_CWND_GAIN,
    BBR3_PROBE_UP_PACING_GAIN,
    BBR3_SEND_QUANTUM_INTERVAL,
    BBR3_SEND_QUANTUM_MAX,
    BBR3_STARTUP_PACING_GAIN,
    PROBE_BW_STATES,
    PROBING_STATES,
    AckAggregation,
    AckPhase,
    Bbr3State,
    MinRttFilter,
    RoundLossTally,
)
from .rate_sample import DeliveryRateSampler, RateSample

_INF = math.inf
_MASK64 = (1 << 64) - 1

__all__ = ["Bbr3CongestionController"]


class Bbr3CongestionController:
    """BBRv3; see the module docstring and :class:`.base.CongestionController`.

    Attributes:
        congestion_window: Bytes allowed in flight (C.cwnd).
        ssthresh: Always ``None`` (BBR has no slow-start threshold).
        pacing_rate: Bytes per second (C.pacing_rate); ``None`` until the first RTT sample.
        state: The current :class:`Bbr3State`.
        max_bw: Long-term bandwidth estimate in bytes/s (BBR.max_bw).
        bw: ``min(max_bw, bw_shortterm)`` (BBR.bw).
        min_rtt: Seconds (BBR.min_rtt); ``inf`` before a sample.
        inflight_longterm: Bytes (BBR.inflight_longterm); ``inf`` until loss sets it.
        bw_shortterm: Bytes/s (BBR.bw_shortterm); ``inf`` when unset.
        inflight_shortterm: Bytes (BBR.inflight_shortterm); ``inf`` when unset.
        full_bw_reached: Whether Startup found the pipe full (BBR.full_bw_reached).
        round_count: Packet-timed round trips (BBR.round_count).
        pacing_gain: The current pacing gain.
        cwnd_gain: The current cwnd gain.
        send_quantum: Bytes (C.send_quantum).
    """

    __slots__ = (
        "congestion_window", "ssthresh", "pacing_rate", "state", "max_bw", "bw", "min_rtt",
        "inflight_longterm", "bw_shortterm", "inflight_shortterm", "full_bw_reached",
        "round_count", "pacing_gain", "cwnd_gain", "send_quantum",
        "_mds", "_initial_window", "_minimum_window", "_min_pipe_cwnd", "_rng_state",
        "_sampler", "_max_bw_filter", "_cycle_count", "_bw_latest", "_inflight_latest",
        "_loss_round_delivered", "_loss_round_start", "_is_loss_in_round", "_rtt_filter",
        "_probe_rtt_done_stamp", "_probe_rtt_round_done", "_aggregation", "_next_round_delivered",
        "_round_start", "_rounds_since_probe_up", "_full_bw_now", "_full_bw", "_full_bw_count",
        "_ack_phase", "_is_bw_probe_sample", "_bw_probe_up_acked", "_probe_up_acked_per_inc",
        "_bw_probe_up_rounds", "_bw_probe_wait", "_cycle_stamp", "_prev_probe_too_high",
        "_prev_probe_precautionary", "_undo_state", "_undo_bw_shortterm",
        "_undo_inflight_shortterm", "_undo_inflight_longterm", "_undo_recovery_start",
        "_prior_cwnd", "_idle_restart", "_drain_start_round", "_in_recovery",
        "_recovery_start", "_recovery_round", "_cwnd_limited", "_round_cwnd_limited",
        "_round_loss", "_last_tx_in_flight", "_ce_delivered",
    )

    def __init__(self, *, max_datagram_size: int, seed: int = 0) -> None:
        """OnInit: Startup with the RFC 9002 §7.2 initial window.

        Args:
            max_datagram_size: The sender's maximum datagram size in bytes (C.SMSS).
            seed: Seeds ``PickProbeWait``'s draws; equal seeds and inputs give equal behaviour.
        """
        self._mds = max_datagram_size
        self._initial_window = initial_window(max_datagram_size)
        self._minimum_window = minimum_window(max_datagram_size)
        self._min_pipe_cwnd = BBR3_MIN_PIPE_CWND_PACKETS * max_datagram_size
        self.congestion_window: int = self._initial_window
        self.ssthresh: int | None = None
        self.pacing_rate: float | None = None
        self.send_quantum = 2 * max_datagram_size
        self._rng_state = seed & _MASK64
        self._sampler = DeliveryRateSampler()
        self.max_bw = 0.0
        self.bw = 0.0
        self._max_bw_filter = WindowedMaxFilter(BBR3_MAX_BW_FILTER_CYCLES)
        self._cycle_count = 0
        self.min_rtt = _INF
        self._rtt_filter = MinRttFilter()
        self._probe_rtt_done_stamp = 0.0
        self._probe_rtt_round_done = False
        self._aggregation = AckAggregation()
        self.inflight_longterm = self.inflight_shortterm = _INF
        self.bw_shortterm = _INF
        self._bw_latest = self._full_bw = self._bw_probe_wait = self._cycle_stamp = 0.0
        self._inflight_latest = self._loss_round_delivered = self.round_count = 0
        self._next_round_delivered = self._rounds_since_probe_up = self._full_bw_count = 0
        self._bw_probe_up_acked = self._bw_probe_up_rounds = self._prior_cwnd = 0
        self._drain_start_round = self._recovery_round = 0
        self._loss_round_start = self._is_loss_in_round = self._round_start = False
        self.full_bw_reached = self._full_bw_now = self._is_bw_probe_sample = False
        self._prev_probe_too_high = self._prev_probe_precautionary = self._idle_restart = False
        self._in_recovery = self._cwnd_limited = self._round_cwnd_limited = False
        self._ack_phase = AckPhase.INIT
        self._probe_up_acked_per_inc = _INF
        self._undo_state: Bbr3State | None = None
        self._undo_bw_shortterm = self._undo_inflight_shortterm = 0.0
        self._undo_inflight_longterm = 0.0
        self._last_tx_in_flight = self._ce_delivered = 0
        self._undo_recovery_start: float | None = None
        self._recovery_start = -_INF
        self._round_loss = RoundLossTally()
        self.state = Bbr3State.STARTUP
        self.pacing_gain = BBR3_STARTUP_PACING_GAIN
        self.cwnd_gain = BBR3_DEFAULT_CWND_GAIN

    def on_packet_sent(self, *, now: float, sent_bytes: int, bytes_in_flight: int) -> None:
        """OnTransmit: restart from idle (§"Restarting From Idle"), then record the packet."""
        sampler = self._sampler
        if bytes_in_flight <= sent_bytes and sampler.app_limited:
            self._idle_restart = True
            self._aggregation.restart(now)
            if self.state in PROBE_BW_STATES:
                self._set_pacing_rate_with_gain(1.0)
            elif self.state is Bbr3State.PROBE_RTT:
                self._check_probe_rtt_done(now)
        sampler.on_sent(now, bytes_in_flight, sent_bytes)
        if bytes_in_flight + self._mds > self.congestion_window:
            self._cwnd_limited = True

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
        """UpdateOnACK: sample, UpdateModelAndState, UpdateControlParameters (§"Per-ACK Steps")."""
        srtt = rtt.smoothed_rtt if rtt.has_sample else 0.0
        rs = self._sampler.on_acked(
            now=now, acked_bytes=acked_bytes, largest_acked_sent_time=largest_acked_sent_time,
            bytes_in_flight=bytes_in_flight, app_limited=app_limited, min_rtt=self.min_rtt,
            loss_horizon=max(1.0, 4.0 * srtt))
        self._last_tx_in_flight = rs.tx_in_flight
        if self._in_recovery and largest_acked_sent_time > self._recovery_start:
            self._in_recovery = False  # RFC 9002 §7.3.2; the draft's exit from recovery:
            self._restore_cwnd()
        inflight = bytes_in_flight
        # UpdateModelAndState
        self._update_latest_delivery_signals(rs)
        self._update_congestion_signals(rs)
        self._aggregation.update(now=now, bw=self.bw, newly_acked=rs.newly_acked,
                                 cwnd=self.congestion_window, round_count=self.round_count,
                                 full_bw_reached=self.full_bw_reached)
        self._check_full_bw_reached(rs)
        self._check_startup_done()
        self._check_drain_done(now, inflight)
        self._update_probe_bw_cycle_phase(now, rs, inflight)
        self._rtt_filter.update(now, rs.rtt)
        self.min_rtt = self._rtt_filter.min_rtt
        self._check_probe_rtt(now, rs, inflight)
        self._advance_latest_delivery_signals(rs)
        self.bw = min(self.max_bw, self.bw_shortterm)  # BoundBWForModel
        # UpdateControlParameters
        self._set_pacing_rate(rtt)
        self._set_send_quantum()
        self._set_cwnd(rs)
        if self._round_start:
            self._round_cwnd_limited = self._cwnd_limited
            self._cwnd_limited = False

    def on_congestion_event(
        self,
        *,
        now: float,
        largest_lost_sent_time: float,
        lost_bytes: int,
        bytes_in_flight: int,
    ) -> None:
        """HandleLostPacket for the pass's largest lost packet, or the ECN-CE response."""
        new_period = largest_lost_sent_time > self._recovery_start
        if new_period:
            # OnEnterFastRecovery (§"Modulating cwnd in Loss Recovery").
            self._save_cwnd()
            self._save_state_upon_loss()
            self._undo_recovery_start = self._recovery_start if self._in_recovery else None
            self._recovery_start = now
            self._recovery_round = self.round_count
            self._in_recovery = True
        self._note_loss()
        if lost_bytes > 0:
            record = self._sampler.lost_packet(largest_lost_sent_time)
            self._sampler.on_lost(lost_bytes)
            self._round_loss.on_lost(lost_bytes)
            if not self._is_bw_probe_sample or record is None:
                return
            _, tx_in_flight, lost_at_send, app_limited = record
            lost = self._sampler.lost - lost_at_send
            if lost > tx_in_flight * BBR3_LOSS_THRESH:
                self._handle_inflight_too_high(now, self._inflight_at_loss(tx_in_flight, lost),
                                               app_limited)
            return
        # ECN-CE: real congestion, never undone (loss.py makes the period non-undoable).
        self._undo_state = None
        if self.state is Bbr3State.STARTUP:
            self.full_bw_reached = True
            self.inflight_longterm = max(self._bdp_multiple(1.0), self._inflight_latest)
            self._enter_drain()
        elif self.state in PROBING_STATES:
            # The flight when the ACK's sampled (CE-reporting) packet was sent, not the larger one
            # now; samples of packets sent before this cut may not raise the bound again.
            self._handle_inflight_too_high(now, min(bytes_in_flight, self._last_tx_in_flight),
                                           self._sampler.app_limited)
            self._ce_delivered = self._sampler.delivered

    def on_persistent_congestion(self, *, now: float) -> None:
        """Collapse to the RFC 9002 minimum window (§7.6.2); nothing is restored afterwards."""
        self._prior_cwnd = 0
        self.congestion_window = self._minimum_window
        self._recovery_start = now
        self._in_recovery = False
        self._undo_state = None
        self._undo_recovery_start = None

    def on_packets_discarded(self, *, discarded_bytes: int) -> None:
        """No-op: stale records are dropped as later packets are acknowledged (RFC 9002 §6.4)."""

    def on_spurious_congestion(self, *, now: float) -> None:
        """HandleSpuriousLossDetection (§"Updating the Model Upon Detecting a Spurious Loss
        Recovery"), and the recovery period ends."""
        self._restore_cwnd()
        self._is_loss_in_round = False
        self._reset_full_bw()
        self.bw_shortterm = max(self.bw_shortterm, self._undo_bw_shortterm)
        self.inflight_shortterm = max(self.inflight_shortterm, self._undo_inflight_shortterm)
        self.inflight_longterm = max(self.inflight_longterm, self._undo_inflight_longterm)
        if self._undo_state is Bbr3State.STARTUP and self.state is not Bbr3State.STARTUP:
            self.full_bw_reached = False
            if self.state is not Bbr3State.PROBE_RTT:
                self._enter_startup()
        elif (self._undo_state is Bbr3State.PROBE_BW_UP
              and self.state is not Bbr3State.PROBE_BW_UP
              and self.state is not Bbr3State.PROBE_RTT):
            self._start_probe_bw_refill()
        self._undo_state = None
        self._in_recovery = False
        self._recovery_start = (self._undo_recovery_start
                                if self._undo_recovery_start is not None else -_INF)

    def _update_latest_delivery_signals(self, rs: RateSample) -> None:
        """UpdateLatestDeliverySignals, plus the per-round loss tally of CheckStartupHighLoss."""
        self._loss_round_start = False
        self._bw_latest = max(self._bw_latest, rs.delivery_rate)
        self._inflight_latest = max(self._inflight_latest, rs.delivered)
        if rs.prior_delivered >= self._loss_round_delivered:
            self._round_loss.end_round(self._sampler.delivered)
            self._loss_round_delivered = self._sampler.delivered
            self._loss_round_start = True

    def _advance_latest_delivery_signals(self, rs: RateSample) -> None:
        """AdvanceLatestDeliverySignals."""
        if self._loss_round_start:
            self._bw_latest = max(rs.delivery_rate, 0.0)
            self._inflight_latest = rs.delivered

    def _reset_congestion_signals(self) -> None:
        """ResetCongestionSignals."""
        self._is_loss_in_round = False
        self._bw_latest = 0.0
        self._inflight_latest = 0

    def _update_congestion_signals(self, rs: RateSample) -> None:
        """UpdateCongestionSignals: UpdateMaxBw, then once per round AdaptLowerBoundsFromCongestion."""
        self._update_round(rs)
        if rs.delivery_rate > 0.0 and (rs.delivery_rate >= self.max_bw or not rs.is_app_limited):
            self._max_bw_filter.update(rs.delivery_rate, self._cycle_count)
            self.max_bw = self._max_bw_filter.get()
        if not self._loss_round_start:
            return
        if self.state not in PROBING_STATES and self._is_loss_in_round:
            # InitLowerBounds, LossLowerBounds
            if self.bw_shortterm == _INF:
                self.bw_shortterm = self.max_bw
            if self.inflight_shortterm == _INF:
                self.inflight_shortterm = self.congestion_window
            self.bw_shortterm = max(self._bw_latest, BBR3_BETA * self.bw_shortterm)
            self.inflight_shortterm = max(self._inflight_latest,
                                          BBR3_BETA * self.inflight_shortterm)
        self._is_loss_in_round = False

    def _update_round(self, rs: RateSample) -> None:
        """UpdateRound (§"BBR.round_count: Tracking Packet-Timed Round Trips")."""
        if rs.prior_delivered >= 0 and rs.prior_delivered >= self._next_round_delivered:
            self._start_round()
            self.round_count += 1
            self._rounds_since_probe_up += 1
            self._round_start = True
        else:
            self._round_start = False

    def _start_round(self) -> None:
        """StartRound."""
        self._next_round_delivered = self._sampler.delivered

    def _note_loss(self) -> None:
        """NoteLoss."""
        if not self._is_loss_in_round:
            self._loss_round_delivered = self._sampler.delivered
            self._save_state_upon_loss()
        self._is_loss_in_round = True

    def _inflight_at_loss(self, tx_in_flight: int, lost: int) -> int:
        """InflightAtLoss: the inflight at which the loss rate crossed LossThresh."""
        size = self._mds
        inflight_prev = tx_in_flight - size
        lost_prev = lost - size
        lost_prefix = (BBR3_LOSS_THRESH * inflight_prev - lost_prev) / (1.0 - BBR3_LOSS_THRESH)
        return max(int(inflight_prev + lost_prefix), self._min_pipe_cwnd)

    def _handle_inflight_too_high(self, now: float, tx_in_flight: int, app_limited: bool) -> None:
        """HandleInflightTooHigh (§"Probing for Bandwidth In ProbeBW")."""
        self._prev_probe_too_high = True
        self._is_bw_probe_sample = False
        if not app_limited:
            self.inflight_longterm = max(tx_in_flight,
                                         int(self._target_inflight() * BBR3_BETA))
        if self.state is Bbr3State.PROBE_BW_UP:
            self._undo_state = Bbr3State.PROBE_BW_UP
            self._start_probe_bw_down(now)

    def _is_inflight_too_high(self, rs: RateSample) -> bool:
        """IsInflightTooHigh (QUIC always has selective ACKs)."""
        return rs.lost > rs.tx_in_flight * BBR3_LOSS_THRESH

    def _save_state_upon_loss(self) -> None:
        """SaveStateUponLoss."""
        self._save_cwnd()
        self._undo_state = None
        self._undo_bw_shortterm = self.bw_shortterm
        self._undo_inflight_shortterm = self.inflight_shortterm
        self._undo_inflight_longterm = self.inflight_longterm

    def _enter_startup(self) -> None:
        """EnterStartup."""
        self.state = Bbr3State.STARTUP
        self.pacing_gain = BBR3_STARTUP_PACING_GAIN
        self.cwnd_gain = BBR3_DEFAULT_CWND_GAIN

    def _reset_full_bw(self) -> None:
        """ResetFullBW."""
        self._full_bw = 0.0
        self._full_bw_count = 0
        self._full_bw_now = False

    def _check_full_bw_reached(self, rs: RateSample) -> None:
        """CheckFullBWReached."""
        if self._full_bw_now or not self._round_start or rs.is_app_limited:
            return
        if rs.delivery_rate >= self._full_bw * BBR3_FULL_BW_GROWTH:
            self._reset_full_bw()
            self._full_bw = rs.delivery_rate
            return
        self._full_bw_count += 1
        self._full_bw_now = self._full_bw_count >= BBR3_FULL_BW_ROUNDS
        if self._full_bw_now:
            self.full_bw_reached = True

    def _check_startup_done(self) -> None:
        """CheckStartupDone with CheckStartupHighLoss (see the module docstring)."""
        if (self.state is Bbr3State.STARTUP and self._loss_round_start and self._in_recovery
                and self.round_count > self._recovery_round
                and self._round_loss.high_loss_last_round()):
            self._undo_state = Bbr3State.STARTUP
            self.full_bw_reached = True
            self.inflight_longterm = max(self._bdp_multiple(1.0), self._inflight_latest)
        if self.state is Bbr3State.STARTUP and self.full_bw_reached:
            self._enter_drain()

    def _enter_drain(self) -> None:
        """EnterDrain."""
        self.state = Bbr3State.DRAIN
        self.pacing_gain = BBR3_DRAIN_PACING_GAIN
        self.cwnd_gain = BBR3_DEFAULT_CWND_GAIN
        self._drain_start_round = self.round_count

    def _check_drain_done(self, now: float, inflight: int) -> None:
        """CheckDrainDone, then EnterProbeBW."""
        if self.state is Bbr3State.DRAIN and (
                inflight <= self._inflight(1.0)
                or self.round_count > self._drain_start_round + 3):
            self.cwnd_gain = BBR3_DEFAULT_CWND_GAIN
            self._start_probe_bw_down(now)

    def _start_probe_bw_down(self, now: float) -> None:
        """StartProbeBW_DOWN."""
        self._reset_congestion_signals()
        self._probe_up_acked_per_inc = _INF
        self._pick_probe_wait()
        self._cycle_stamp = now
        self._ack_phase = AckPhase.PROBE_STOPPING
        self._start_round()
        self.state = Bbr3State.PROBE_BW_DOWN
        self.pacing_gain = BBR3_PROBE_DOWN_PACING_GAIN
        self.cwnd_gain = BBR3_DEFAULT_CWND_GAIN

    def _start_probe_bw_cruise(self) -> None:
        """StartProbeBW_CRUISE."""
        self.state = Bbr3State.PROBE_BW_CRUISE
        self.pacing_gain = 1.0
        self.cwnd_gain = BBR3_DEFAULT_CWND_GAIN

    def _start_probe_bw_refill(self) -> None:
        """StartProbeBW_REFILL."""
        self.bw_shortterm = _INF  # ResetShortTermModel
        self.inflight_shortterm = _INF
        self._bw_probe_up_rounds = 0
        self._bw_probe_up_acked = 0
        self._prev_probe_precautionary = False
        self._ack_phase = AckPhase.REFILLING
        self._start_round()
        self.state = Bbr3State.PROBE_BW_REFILL
        self.pacing_gain = 1.0
        self.cwnd_gain = BBR3_DEFAULT_CWND_GAIN

    def _start_probe_bw_up(self, rs: RateSample) -> None:
        """StartProbeBW_UP."""
        self._ack_phase = AckPhase.PROBE_STARTING
        self._start_round()
        self._reset_full_bw()
        self._full_bw = max(rs.delivery_rate, 0.0)
        self.state = Bbr3State.PROBE_BW_UP
        self.pacing_gain = BBR3_PROBE_UP_PACING_GAIN
        self.cwnd_gain = BBR3_PROBE_UP_CWND_GAIN
        self._raise_inflight_longterm_slope()

    def _pick_probe_wait(self) -> None:
        """PickProbeWait: 0 or 1 rounds, and 2-3 s of wall clock, drawn from the seed."""
        self._rng_state = (self._rng_state + 1) & _MASK64
        draw = splitmix64(self._rng_state)
        self._rounds_since_probe_up = draw & 1
        self._bw_probe_wait = 2.0 + ((draw >> 11) / float(1 << 53))

    def _update_probe_bw_cycle_phase(self, now: float, rs: RateSample, inflight: int) -> None:
        """UpdateProbeBWCyclePhase."""
        if not self.full_bw_reached:
            return
        if self._adapt_long_term_model(now, rs):
            return
        state = self.state
        if state is Bbr3State.PROBE_BW_DOWN:
            if self._is_time_to_probe_bw(now):
                return
            if self._is_time_to_cruise(inflight):
                self._start_probe_bw_cruise()
        elif state is Bbr3State.PROBE_BW_CRUISE:
            self._is_time_to_probe_bw(now)
        elif state is Bbr3State.PROBE_BW_REFILL:
            if self._round_start:
                self._is_bw_probe_sample = True
                self._start_probe_bw_up(rs)
        elif state is Bbr3State.PROBE_BW_UP and self._is_time_to_go_down(inflight, rs):
            self._prev_probe_too_high = False
            self._start_probe_bw_down(now)

    def _is_time_to_probe_bw(self, now: float) -> bool:
        """IsTimeToProbeBW, with IsRenoCoexistenceProbeTime."""
        reno_rounds = min(self._target_inflight() // self._mds, BBR3_MAX_REFILL_ROUNDS)
        if (now > self._cycle_stamp + self._bw_probe_wait
                or self._rounds_since_probe_up >= reno_rounds):
            self._start_probe_bw_refill()
            return True
        return False

    def _is_time_to_cruise(self, inflight: int) -> bool:
        """IsTimeToCruise."""
        if inflight > self._inflight_with_headroom():
            return False
        return inflight <= self._inflight(1.0, self.max_bw)

    def _is_time_to_go_down(self, inflight: int, rs: RateSample) -> bool:
        """IsTimeToGoDown."""
        if self._prev_probe_too_high and inflight >= self.inflight_longterm:
            self._prev_probe_precautionary = True
            return True
        if self._round_cwnd_limited and self.congestion_window >= self.inflight_longterm:
            self._reset_full_bw()
            self._full_bw = max(rs.delivery_rate, 0.0)
        elif self._full_bw_now:
            return True
        return False

    def _inflight_with_headroom(self) -> float:
        """InflightWithHeadroom."""
        if self.inflight_longterm == _INF:
            return _INF
        headroom = max(self._mds, BBR3_HEADROOM * self.inflight_longterm)
        return max(self.inflight_longterm - headroom, self._min_pipe_cwnd)

    def _raise_inflight_longterm_slope(self) -> None:
        """RaiseInflightLongtermSlope."""
        growth_this_round = 1 << self._bw_probe_up_rounds
        self._bw_probe_up_rounds = min(self._bw_probe_up_rounds + 1, 30)
        self._probe_up_acked_per_inc = max(self.congestion_window / growth_this_round,
                                           float(self._mds))

    def _probe_inflight_longterm_upward(self, rs: RateSample) -> None:
        """ProbeInflightLongtermUpward."""
        if not self._round_cwnd_limited or self.congestion_window < self.inflight_longterm:
            return
        self._bw_probe_up_acked += rs.newly_acked
        per_inc = self._probe_up_acked_per_inc
        if self._bw_probe_up_acked >= per_inc:
            delta = int(self._bw_probe_up_acked // per_inc)
            self._bw_probe_up_acked -= int(delta * per_inc)
            self.inflight_longterm += delta * self._mds
        if self._round_start:
            self._raise_inflight_longterm_slope()

    def _adapt_long_term_model(self, now: float, rs: RateSample) -> bool:
        """AdaptLongTermModel; True when it decided a state transition."""
        if self._ack_phase is AckPhase.PROBE_STARTING and self._round_start:
            self._ack_phase = AckPhase.PROBE_FEEDBACK
        if self._ack_phase is AckPhase.PROBE_STOPPING and self._round_start:
            self._is_bw_probe_sample = False
            self._ack_phase = AckPhase.INIT
            if self.state in PROBE_BW_STATES and not rs.is_app_limited:
                self._cycle_count += 1  # AdvanceMaxBwFilter
            if (self.state in PROBE_BW_STATES and self._prev_probe_precautionary
                    and not self._prev_probe_too_high):
                self._start_probe_bw_refill()
                return True
        if self._is_bw_probe_sample and self._is_inflight_too_high(rs):
            # The per-ACK counterpart of HandleLostPacket's check.
            self._handle_inflight_too_high(now, rs.tx_in_flight, rs.is_app_limited)
            return True
        if self.inflight_longterm == _INF:
            return False
        if rs.tx_in_flight > self.inflight_longterm and rs.prior_delivered >= self._ce_delivered:
            self.inflight_longterm = rs.tx_in_flight
        if self.state is Bbr3State.PROBE_BW_UP:
            self._probe_inflight_longterm_upward(rs)
        return False

    def _check_probe_rtt(self, now: float, rs: RateSample, inflight: int) -> None:
        """CheckProbeRTT with HandleProbeRTT."""
        if (self.state is not Bbr3State.PROBE_RTT and self._rtt_filter.probe_rtt_expired
                and not self._idle_restart):
            self.state = Bbr3State.PROBE_RTT  # EnterProbeRTT
            self.pacing_gain = 1.0
            self.cwnd_gain = BBR3_PROBE_RTT_CWND_GAIN
            self._save_cwnd()
            self._probe_rtt_done_stamp = 0.0
            self._ack_phase = AckPhase.PROBE_STOPPING
            self._start_round()
        if self.state is Bbr3State.PROBE_RTT:
            self._sampler.mark_app_limited(inflight)
            if self._probe_rtt_done_stamp == 0.0 and inflight <= self._probe_rtt_cwnd():
                self._probe_rtt_done_stamp = now + BBR3_PROBE_RTT_DURATION
                self._probe_rtt_round_done = False
                self._start_round()
            elif self._probe_rtt_done_stamp != 0.0:
                if self._round_start:
                    self._probe_rtt_round_done = True
                if self._probe_rtt_round_done:
                    self._check_probe_rtt_done(now)
        if rs.delivered > 0:
            self._idle_restart = False

    def _check_probe_rtt_done(self, now: float) -> None:
        """CheckProbeRTTDone, with ExitProbeRTT."""
        if self._probe_rtt_done_stamp != 0.0 and now > self._probe_rtt_done_stamp:
            self._rtt_filter.schedule_next_probe_rtt(now)
            self._restore_cwnd()
            self.bw_shortterm = _INF
            self.inflight_shortterm = _INF
            if self.full_bw_reached:
                self._start_probe_bw_down(now)
                self._start_probe_bw_cruise()
            else:
                self._enter_startup()

    def _probe_rtt_cwnd(self) -> int:
        """ProbeRTTCwnd."""
        return max(int(self._bdp_multiple(BBR3_PROBE_RTT_CWND_GAIN)), self._min_pipe_cwnd)

    def _bdp_multiple(self, gain: float, bw: float | None = None) -> float:
        """BDPMultiple: ``gain`` × bw × min_rtt, or the initial window before an RTT sample."""
        if self.min_rtt == _INF:
            return float(self._initial_window)
        return gain * (self.bw if bw is None else bw) * self.min_rtt

    def _quantization_budget(self, inflight_cap: float) -> int:
        """QuantizationBudget with the QUIC offload budget (one send quantum)."""
        cap = max(inflight_cap, self.send_quantum, self._min_pipe_cwnd)
        if self.state is Bbr3State.PROBE_BW_UP:
            cap += 2 * self._mds
        return int(cap)

    def _inflight(self, gain: float, bw: float | None = None) -> int:
        """Inflight(gain)."""
        return self._quantization_budget(self._bdp_multiple(gain, bw))

    def _target_inflight(self) -> int:
        """TargetInflight: the BDP, unless congestion cut cwnd."""
        return int(min(self._bdp_multiple(1.0), self.congestion_window))

    def _set_pacing_rate_with_gain(self, gain: float) -> None:
        """SetPacingRateWithGain."""
        if self.bw <= 0.0:
            return
        rate = gain * self.bw * (1.0 - BBR3_PACING_MARGIN)
        if self.full_bw_reached or self.pacing_rate is None or rate > self.pacing_rate:
            self.pacing_rate = rate

    def _set_pacing_rate(self, rtt: RttEstimator) -> None:
        """SetPacingRate, starting from InitPacingRate."""
        if self.pacing_rate is None:
            if not rtt.has_sample:
                return
            srtt = rtt.smoothed_rtt if rtt.smoothed_rtt > 0.0 else 0.001
            self.pacing_rate = BBR3_STARTUP_PACING_GAIN * self._initial_window / srtt
        self._set_pacing_rate_with_gain(self.pacing_gain)

    def _set_send_quantum(self) -> None:
        """SetSendQuantum."""
        quantum = min(int((self.pacing_rate or 0.0) * BBR3_SEND_QUANTUM_INTERVAL),
                      BBR3_SEND_QUANTUM_MAX)
        self.send_quantum = max(quantum, 2 * self._mds)

    def _save_cwnd(self) -> None:
        """SaveCwnd."""
        if not self._in_recovery and self.state is not Bbr3State.PROBE_RTT:
            self._prior_cwnd = self.congestion_window
        else:
            self._prior_cwnd = max(self._prior_cwnd, self.congestion_window)

    def _restore_cwnd(self) -> None:
        """RestoreCwnd."""
        self.congestion_window = max(self.congestion_window, self._prior_cwnd)

    def _set_cwnd(self, rs: RateSample) -> None:
        """SetCwnd with BoundCwndForProbeRTT and BoundCwndForModel."""
        max_inflight = self._quantization_budget(
            self._bdp_multiple(self.cwnd_gain) + self._aggregation.extra_acked)  # UpdateMaxInflight
        cwnd = self.congestion_window
        if self.full_bw_reached:
            cwnd = min(cwnd + rs.newly_acked, max_inflight)
        elif cwnd < max_inflight or self._sampler.delivered < self._initial_window:
            cwnd += rs.newly_acked
        cwnd = max(cwnd, self._min_pipe_cwnd)
        state = self.state
        if state is Bbr3State.PROBE_RTT:
            cwnd = min(cwnd, self._probe_rtt_cwnd())
        cap: float = _INF
        if state in PROBE_BW_STATES and state is not Bbr3State.PROBE_BW_CRUISE:
            cap = self.inflight_longterm
        elif state is Bbr3State.PROBE_RTT or state is Bbr3State.PROBE_BW_CRUISE:
            cap = self._inflight_with_headroom()
        cap = max(min(cap, self.inflight_shortterm), self._min_pipe_cwnd)
        self.congestion_window = int(min(cwnd, cap))


register_congestion_controller("bbr3", Bbr3CongestionController, seeded=Bbr3CongestionController)
