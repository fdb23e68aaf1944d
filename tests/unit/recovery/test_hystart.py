"""HyStart++ (RFC 9406) rounds, RTT thresholds and CSS, on hand-fed ACKs."""

from __future__ import annotations

from quicreality.quic.recovery.congestion.cubic import (
    HYSTART_CSS_ROUNDS,
    HYSTART_N_RTT_SAMPLE,
    CubicCongestionController,
    HyStartPlusPlus,
    HyStartState,
)
from quicreality.quic.recovery.rtt import RttEstimator

MDS = 1200


def round_of(h: HyStartPlusPlus, t: float, rtt: float, samples: int = HYSTART_N_RTT_SAMPLE) -> bool:
    """One round: ACKs of packets sent from ``t`` on, while the sender is at ``t + 0.4``.

    The first ACK of a packet sent after the previous round's last send starts the round.
    """
    h.on_packet_sent(t + 0.4)
    done = False
    for i in range(samples):
        done = h.on_ack(largest_acked_sent_time=t + 1e-6 * (i + 1), latest_rtt=rtt) or done
    return done


def test_rtt_rise_enters_css_and_css_rounds_end_slow_start() -> None:
    h = HyStartPlusPlus()
    round_of(h, 0.0, 0.040)
    round_of(h, 1.0, 0.041)
    assert h.state is HyStartState.SLOW_START  # +1 ms is below the 5 ms threshold (40 ms / 8)
    round_of(h, 2.0, 0.047)
    assert h.state is HyStartState.CONSERVATIVE and h.css_baseline_min_rtt == 0.047
    assert h.growth(4000) == 1000  # CSS grows by a quarter
    ends = [round_of(h, 3.0 + k, 0.050) for k in range(HYSTART_CSS_ROUNDS)]
    assert ends == [False] * (HYSTART_CSS_ROUNDS - 1) + [True]
    assert h.state is HyStartState.DONE


def test_css_returns_to_slow_start_when_the_rtt_falls_back() -> None:
    h = HyStartPlusPlus()
    round_of(h, 0.0, 0.040)
    round_of(h, 1.0, 0.047)
    assert h.state is HyStartState.CONSERVATIVE
    round_of(h, 2.0, 0.041)
    assert h.state is HyStartState.SLOW_START


def test_cubic_sets_ssthresh_at_the_window_when_css_ends() -> None:
    cc = CubicCongestionController(max_datagram_size=MDS)
    rtt = RttEstimator()
    t = 0.0
    for r in range(2 + HYSTART_CSS_ROUNDS + 1):
        sample = 0.040 if r == 0 else 0.050
        rtt.update(sample, 0.0, handshake_confirmed=True, max_ack_delay=0.025)
        cc.on_packet_sent(now=t + 0.4, sent_bytes=MDS, bytes_in_flight=MDS)
        for i in range(HYSTART_N_RTT_SAMPLE):
            cc.on_packets_acked(now=t + sample, acked_bytes=MDS, largest_acked_sent_time=t + 1e-6 * i,
                                rtt=rtt, bytes_in_flight=0, app_limited=False)
        t += 1.0
    assert cc.hystart is not None and cc.hystart.state is HyStartState.DONE
    assert cc.ssthresh is not None and abs(cc.ssthresh - cc.congestion_window) <= MDS


def test_hystart_can_be_switched_off() -> None:
    cc = CubicCongestionController(max_datagram_size=MDS, hystart=False)
    assert cc.hystart is None
