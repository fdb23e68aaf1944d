"""BBRv3 (draft-ietf-ccwg-bbr) on synthetic ACK streams and hand-made events.

The :class:`test_bbr.Path` model (one paced sender behind a fixed-rate bottleneck on virtual
time) drives the controller; nothing here reads a clock.
"""

from __future__ import annotations

import math

import pytest
from test_bbr import MBIT, MDS, Path

from quicreality.quic.recovery.congestion import (
    CONGESTION_CONTROLLERS,
    create_congestion_controller,
    minimum_window,
)
from quicreality.quic.recovery.congestion.bbr3 import Bbr3CongestionController
from quicreality.quic.recovery.congestion.bbr3_model import (
    BBR3_BETA,
    BBR3_STARTUP_PACING_GAIN,
    PROBE_BW_STATES,
    Bbr3State,
)
from quicreality.quic.recovery.congestion.rate_sample import DeliveryRateSampler
from quicreality.quic.recovery.rtt import RttEstimator


class Path3(Path):
    """:class:`test_bbr.Path` recording BBRv3's states and windows after every ACK."""

    def __init__(self, cc: Bbr3CongestionController, **kw: float) -> None:
        super().__init__(cc, **kw)  # type: ignore[arg-type]
        self.cc3 = cc
        self.states3: list[tuple[float, Bbr3State]] = []
        self.cwnds: list[tuple[float, Bbr3State, int]] = []
        self.bounds: list[tuple[Bbr3State, int, float]] = []  # (state, cwnd, inflight_longterm)

    def _on_ack(self, pn: int) -> None:
        super()._on_ack(pn)
        cc = self.cc3
        if not self.states3 or self.states3[-1][1] is not cc.state:
            self.states3.append((self.now, cc.state))
        self.cwnds.append((self.now, cc.state, cc.congestion_window))
        self.bounds.append((cc.state, cc.congestion_window, cc.inflight_longterm))


def bbr3(seed: int = 0) -> Bbr3CongestionController:
    return Bbr3CongestionController(max_datagram_size=MDS, seed=seed)


def test_bbr3_is_registered_and_starts_in_startup() -> None:
    assert "bbr3" in CONGESTION_CONTROLLERS
    cc = create_congestion_controller("bbr3", max_datagram_size=MDS, seed=7)
    assert isinstance(cc, Bbr3CongestionController)
    assert cc.state is Bbr3State.STARTUP
    assert cc.pacing_gain == pytest.approx(4 * math.log(2))
    assert cc.cwnd_gain == 2.0
    assert cc.congestion_window == 10 * MDS and cc.ssthresh is None and cc.pacing_rate is None


def test_startup_drain_then_the_probe_bw_cycle_with_the_links_model() -> None:
    cc = bbr3()
    path = Path3(cc, rate=50 * MBIT, delay=0.020)
    path.run(12.0)
    order = [s for _, s in path.states3]
    # Drain ends when the queue is gone, so DOWN may turn into CRUISE within the same ACK.
    assert order[:2] == [Bbr3State.STARTUP, Bbr3State.DRAIN]
    assert order[2] in (Bbr3State.PROBE_BW_DOWN, Bbr3State.PROBE_BW_CRUISE)
    assert cc.full_bw_reached
    # Every ProbeBW phase is visited, in the draft's order DOWN -> CRUISE -> REFILL -> UP.
    cycle = [s for s in order[2:] if s in PROBE_BW_STATES]
    text = " ".join(s.value for s in cycle)
    assert "probe_bw_cruise probe_bw_refill probe_bw_up probe_bw_down probe_bw_cruise" in text
    assert cc.max_bw == pytest.approx(50 * MBIT, rel=0.05)
    assert cc.min_rtt == pytest.approx(0.040, abs=0.002)
    # No loss on this link, so no loss bound was learned.
    assert cc.inflight_longterm == math.inf
    assert path.acked_bytes * 8 / 12.0 > 0.85 * 50e6


def test_probe_up_raises_the_pacing_and_cwnd_gains() -> None:
    cc = bbr3()
    path = Path3(cc, rate=20 * MBIT, delay=0.010)
    path.run(8.0)
    ups = [t for t, s in path.states3 if s is Bbr3State.PROBE_BW_UP]
    assert ups, path.states3
    path = Path3(bbr3(), rate=20 * MBIT, delay=0.010)
    while path.cc3.state is not Bbr3State.PROBE_BW_UP:
        path.run(0.002)
    assert path.cc3.pacing_gain == 1.25 and path.cc3.cwnd_gain == 2.25


def test_random_loss_above_the_threshold_sets_a_long_term_bound_and_cuts_the_short_term_one() -> None:
    cc = bbr3(seed=3)
    path = Path3(cc, rate=20 * MBIT, delay=0.020, loss=0.05, seed=3)
    path.run(20.0)
    assert cc.full_bw_reached
    assert cc.inflight_longterm < math.inf
    # Once set, the long-term bound caps the window in DOWN, REFILL and UP (plus UP's two-packet
    # allowance), and CRUISE keeps 15 % headroom below it.
    capped = 0
    for state, cwnd, bound in path.bounds:
        if bound == math.inf or state not in PROBE_BW_STATES:
            continue
        capped += 1
        limit = 0.85 * bound if state is Bbr3State.PROBE_BW_CRUISE else bound
        assert cwnd <= max(limit, 4 * MDS) + 2 * MDS
    assert capped > 100
    assert path.acked_bytes > 0


def test_low_random_loss_keeps_most_of_the_link() -> None:
    """1 % loss is under the 2 % threshold: BBRv3 keeps most of the rate (unlike CUBIC)."""
    path = Path3(bbr3(seed=1), rate=20 * MBIT, delay=0.020, loss=0.01, seed=1)
    path.run(20.0)
    assert path.acked_bytes * 8 / 20.0 > 0.75 * 20e6


def _into_probe_up(cc: Bbr3CongestionController) -> Path3:
    path = Path3(cc, rate=20 * MBIT, delay=0.010)
    while cc.state is not Bbr3State.PROBE_BW_UP:
        path.run(0.001)
    path.run(0.03)  # get past the first round of UP: its samples are now probe samples
    return path


def test_a_lossy_probe_goes_down_and_a_spurious_verdict_undoes_it() -> None:
    cc = bbr3()
    path = _into_probe_up(cc)
    assert cc.state is Bbr3State.PROBE_BW_UP
    before = cc.inflight_longterm
    sent = sorted(path.sent.values())
    assert sent, "packets in flight"
    # A burst of loss among the newest packets: far above 2 % of what was in flight.
    lost = 20 * MDS
    cc.on_congestion_event(now=path.now, largest_lost_sent_time=sent[-1], lost_bytes=lost,
                           bytes_in_flight=path.inflight)
    assert cc.state is Bbr3State.PROBE_BW_DOWN
    assert cc.inflight_longterm < before
    cc.on_spurious_congestion(now=path.now)
    assert cc.state is Bbr3State.PROBE_BW_REFILL
    assert cc.inflight_longterm == before


def test_ce_marks_end_startup_with_a_long_term_bound() -> None:
    cc = bbr3()
    path = Path3(cc, rate=50 * MBIT, delay=0.020)
    path.run(0.15)
    assert cc.state is Bbr3State.STARTUP
    cc.on_congestion_event(now=path.now, largest_lost_sent_time=path.now - 0.04, lost_bytes=0,
                           bytes_in_flight=path.inflight)
    assert cc.state is Bbr3State.DRAIN
    assert cc.full_bw_reached and cc.inflight_longterm < math.inf


def test_ce_in_probe_bw_cuts_the_short_term_model_by_beta_once_per_round() -> None:
    cc = bbr3()
    path = Path3(cc, rate=20 * MBIT, delay=0.010)
    path.run(3.0)
    while cc.state is not Bbr3State.PROBE_BW_CRUISE:
        path.run(0.001)
    cc.on_congestion_event(now=path.now, largest_lost_sent_time=path.now - 0.02, lost_bytes=0,
                           bytes_in_flight=path.inflight)
    assert cc.bw_shortterm == math.inf  # applied at the end of the round
    path.run(0.05)
    assert cc.bw_shortterm < math.inf
    assert cc.bw_shortterm >= BBR3_BETA * cc.max_bw * 0.99 or cc.bw_shortterm > 0


def test_persistent_congestion_collapses_the_window_and_recovery_does_not_restore_it() -> None:
    cc = bbr3()
    path = Path3(cc, rate=20 * MBIT, delay=0.010)
    path.run(2.0)
    big = cc.congestion_window
    assert big > 10 * MDS
    sent = sorted(path.sent.values())
    cc.on_congestion_event(now=path.now, largest_lost_sent_time=sent[-1], lost_bytes=MDS,
                           bytes_in_flight=path.inflight)
    cc.on_persistent_congestion(now=path.now)
    assert cc.congestion_window == minimum_window(MDS)
    rtt = RttEstimator()
    rtt.update(0.02, 0.0, handshake_confirmed=True, max_ack_delay=0.025)
    cc.on_packet_sent(now=path.now + 0.001, sent_bytes=MDS, bytes_in_flight=MDS)
    cc.on_packets_acked(now=path.now + 0.021, acked_bytes=MDS,
                        largest_acked_sent_time=path.now + 0.001, rtt=rtt, bytes_in_flight=0,
                        app_limited=False)
    assert cc.congestion_window < big


def test_probe_wait_is_seeded_per_connection() -> None:
    waits = []
    for seed in range(6):
        cc = bbr3(seed)
        Path3(cc, rate=20 * MBIT, delay=0.010).run(1.5)
        waits.append(cc._bw_probe_wait)
    assert all(2.0 <= w < 3.0 for w in waits)
    assert len(set(waits)) == len(waits)
    again = bbr3(4)
    Path3(again, rate=20 * MBIT, delay=0.010).run(1.5)
    assert again._bw_probe_wait == waits[4]


def test_probe_rtt_after_five_seconds_without_a_lower_rtt() -> None:
    cc = bbr3()
    path = Path3(cc, rate=20 * MBIT, delay=0.010)
    path.run(1.0)
    path.extra_delay = 0.005  # the path's RTT rises: no new minimum from here on
    path.run(7.0)
    order = [s for _, s in path.states3]
    assert Bbr3State.PROBE_RTT in order
    probe_rtt = [c for _, s, c in path.cwnds if s is Bbr3State.PROBE_RTT]
    bdp = cc.max_bw * cc.min_rtt
    assert min(probe_rtt) <= max(0.5 * bdp, 4 * MDS) + MDS
    assert order[-1] is not Bbr3State.PROBE_RTT or path.now - path.states3[-1][0] < 0.5


def test_startup_pacing_starts_from_the_initial_window_over_srtt() -> None:
    cc = bbr3()
    rtt = RttEstimator()
    rtt.update(0.05, 0.0, handshake_confirmed=True, max_ack_delay=0.025)
    cc.on_packet_sent(now=0.0, sent_bytes=MDS, bytes_in_flight=MDS)
    cc.on_packets_acked(now=0.05, acked_bytes=MDS, largest_acked_sent_time=0.0, rtt=rtt,
                        bytes_in_flight=0, app_limited=False)
    assert cc.pacing_rate is not None
    assert cc.pacing_rate >= BBR3_STARTUP_PACING_GAIN * 10 * MDS / rtt.smoothed_rtt * 0.99


def test_sampler_reports_tx_in_flight_and_loss_since_send() -> None:
    s = DeliveryRateSampler()
    s.on_sent(0.0, MDS, MDS)
    s.on_sent(0.001, 2 * MDS, MDS)
    s.on_lost(MDS)
    rs = s.on_acked(now=0.05, acked_bytes=MDS, largest_acked_sent_time=0.001,
                    bytes_in_flight=0, app_limited=False, min_rtt=math.inf, loss_horizon=1.0)
    assert rs.tx_in_flight == 2 * MDS and rs.lost == MDS and rs.prior_delivered == 0
    assert rs.delivery_rate > 0
    assert s.lost_packet(0.0) == (0.0, MDS, 0, False)
    assert s.lost_packet(5.0) is None
