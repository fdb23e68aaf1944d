"""NewReno (RFC 9002 §7, Appendix B) and the controller registry."""

from __future__ import annotations

import pytest

from quicreality.quic.recovery.congestion import (
    CONGESTION_CONTROLLERS,
    CongestionController,
    CubicCongestionController,
    NewRenoCongestionController,
    create_congestion_controller,
    initial_window,
    minimum_window,
)
from quicreality.quic.recovery.rtt import RttEstimator

MDS = 1200
RTT = RttEstimator()


def ack(
    cc: CongestionController,
    acked_bytes: int,
    *,
    sent: float = 10.0,
    now: float = 11.0,
    app_limited: bool = False,
) -> None:
    cc.on_packets_acked(
        now=now,
        acked_bytes=acked_bytes,
        largest_acked_sent_time=sent,
        rtt=RTT,
        bytes_in_flight=1,
        app_limited=app_limited,
    )


def lose(cc: CongestionController, *, now: float, sent: float) -> None:
    cc.on_congestion_event(
        now=now, largest_lost_sent_time=sent, lost_bytes=MDS, bytes_in_flight=MDS
    )


def test_registry_builds_newreno_and_cubic_by_name() -> None:
    assert {"newreno", "cubic"} <= set(CONGESTION_CONTROLLERS)
    assert isinstance(
        create_congestion_controller("newreno", max_datagram_size=MDS),
        NewRenoCongestionController,
    )
    assert isinstance(
        create_congestion_controller("cubic", max_datagram_size=MDS), CubicCongestionController
    )


def test_unknown_controller_name_raises_listing_known_names() -> None:
    with pytest.raises(ValueError, match=r"bbr2.*cubic.*newreno"):
        create_congestion_controller("bbr2", max_datagram_size=MDS)


def test_initial_and_minimum_window_follow_rfc9002_section_7_2() -> None:
    assert initial_window(1200) == 12000
    assert initial_window(1500) == 14720  # min(15000, max(14720, 3000))
    assert initial_window(9000) == 18000  # min(90000, max(14720, 18000))
    assert minimum_window(1200) == 2400


def test_newreno_starts_in_slow_start_with_initial_window() -> None:
    cc = NewRenoCongestionController(max_datagram_size=MDS)
    assert cc.congestion_window == 12000
    assert cc.ssthresh is None


def test_newreno_slow_start_grows_by_acked_bytes() -> None:
    cc = NewRenoCongestionController(max_datagram_size=MDS)
    ack(cc, 1200)
    assert cc.congestion_window == 13200
    ack(cc, 13200)
    assert cc.congestion_window == 26400


def test_newreno_app_limited_ack_does_not_grow_window() -> None:
    cc = NewRenoCongestionController(max_datagram_size=MDS)
    ack(cc, 6000, app_limited=True)
    assert cc.congestion_window == 12000
    lose(cc, now=1.0, sent=0.5)
    ack(cc, 60000, sent=2.0, now=3.0, app_limited=True)
    assert cc.congestion_window == 6000


def test_newreno_congestion_event_halves_window_and_sets_ssthresh() -> None:
    cc = NewRenoCongestionController(max_datagram_size=MDS)
    ack(cc, 12000, sent=0.1, now=0.2)
    assert cc.congestion_window == 24000
    lose(cc, now=1.0, sent=0.9)
    assert cc.congestion_window == 12000
    assert cc.ssthresh == 12000
    assert cc.recovery_start_time == 1.0


def test_newreno_no_second_reduction_for_packets_sent_before_recovery_start() -> None:
    cc = NewRenoCongestionController(max_datagram_size=MDS)
    ack(cc, 12000, sent=0.1, now=0.2)
    lose(cc, now=1.0, sent=0.9)
    assert cc.congestion_window == 12000
    lose(cc, now=1.1, sent=0.95)
    lose(cc, now=1.2, sent=1.0)  # sent_time == recovery start: still in recovery
    assert cc.congestion_window == 12000
    lose(cc, now=1.3, sent=1.05)  # sent after recovery started: a new event
    assert cc.congestion_window == 6000
    assert cc.recovery_start_time == 1.3


def test_newreno_acks_of_pre_recovery_packets_do_not_grow_window() -> None:
    cc = NewRenoCongestionController(max_datagram_size=MDS)
    lose(cc, now=1.0, sent=0.9)
    ack(cc, 60000, sent=0.99, now=1.1)
    assert cc.congestion_window == 6000
    ack(cc, 6000, sent=1.01, now=1.2)  # first packet sent in recovery ends it
    assert cc.congestion_window == 7200


def test_newreno_congestion_avoidance_adds_one_datagram_per_window_acked() -> None:
    cc = NewRenoCongestionController(max_datagram_size=MDS)
    lose(cc, now=1.0, sent=0.9)
    assert (cc.congestion_window, cc.ssthresh) == (6000, 6000)
    ack(cc, 3600, sent=2.0, now=2.1)
    assert cc.congestion_window == 6000
    ack(cc, 2400, sent=2.0, now=2.1)  # 6000 acked == one window
    assert cc.congestion_window == 7200
    ack(cc, 7199, sent=2.0, now=2.1)
    assert cc.congestion_window == 7200
    ack(cc, 1, sent=2.0, now=2.1)
    assert cc.congestion_window == 8400
    # Many windows in one ACK frame: 8400 + 9600 = 18000 -> two increments.
    ack(cc, 18000, sent=2.0, now=2.1)
    assert cc.congestion_window == 10800


def test_newreno_slow_start_bytes_beyond_ssthresh_count_towards_avoidance() -> None:
    cc = NewRenoCongestionController(max_datagram_size=MDS)
    lose(cc, now=1.0, sent=0.9)  # cwnd = ssthresh = 6000
    cc.on_persistent_congestion(now=1.0)
    assert cc.congestion_window == 2400
    ack(cc, 2400, sent=2.0, now=2.1)
    assert cc.congestion_window == 4800
    ack(cc, 2400, sent=2.0, now=2.1)  # 1200 to reach ssthresh, 1200 to avoidance
    assert cc.congestion_window == 6000
    ack(cc, 4800, sent=2.0, now=2.1)  # 1200 + 4800 = one window of 6000
    assert cc.congestion_window == 7200


def test_newreno_window_never_below_minimum_after_repeated_losses() -> None:
    cc = NewRenoCongestionController(max_datagram_size=MDS)
    for i in range(10):
        lose(cc, now=float(i + 1), sent=float(i) + 0.5)
    assert cc.congestion_window == minimum_window(MDS)
    assert cc.ssthresh == minimum_window(MDS)


def test_newreno_persistent_congestion_collapses_to_minimum_window() -> None:
    cc = NewRenoCongestionController(max_datagram_size=MDS)
    ack(cc, 36000, sent=0.1, now=0.2)
    lose(cc, now=5.0, sent=1.0)
    cc.on_persistent_congestion(now=5.0)
    assert cc.congestion_window == 2400
    assert cc.ssthresh == 24000
    # Late losses of packets sent before the collapse do not cut ssthresh again.
    lose(cc, now=5.1, sent=4.0)
    assert cc.ssthresh == 24000
    # Packets sent afterwards grow the window in slow start again.
    ack(cc, 2400, sent=5.5, now=5.6)
    assert cc.congestion_window == 4800


def test_newreno_persistent_congestion_without_prior_event_still_sets_ssthresh() -> None:
    cc = NewRenoCongestionController(max_datagram_size=MDS)
    cc.on_persistent_congestion(now=1.0)
    assert cc.congestion_window == 2400
    assert cc.ssthresh == 6000


def test_newreno_discard_and_send_do_not_change_window() -> None:
    cc = NewRenoCongestionController(max_datagram_size=MDS)
    cc.on_packet_sent(now=0.0, sent_bytes=1200, bytes_in_flight=1200)
    cc.on_packets_discarded(discarded_bytes=1200)
    assert cc.congestion_window == 12000
    assert cc.ssthresh is None
