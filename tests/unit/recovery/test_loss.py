"""RFC 9002 loss detection on hand-built sent-packet histories (packet/time thresholds, PTO, ACK ranges)."""

from __future__ import annotations

from typing import Any

from quicreality.quic.recovery.congestion.base import create_congestion_controller
from quicreality.quic.recovery.loss import (
    SPACE_APPLICATION,
    SPACE_HANDSHAKE,
    SPACE_INITIAL,
    LossRecovery,
    SentPacket,
)
from quicreality.quic.recovery.pacer import Pacer
from quicreality.quic.recovery.rtt import RttEstimator
from quicreality.wire.rangeset import RangeSet

MDS = 1200


class Log:
    def __init__(self) -> None:
        self.acked: list[int] = []
        self.lost: list[int] = []

    def handler(self, delivered: bool, pn: int) -> None:
        (self.acked if delivered else self.lost).append(pn)


def recovery(is_client: bool = False) -> LossRecovery:
    r = LossRecovery(congestion=create_congestion_controller("newreno", max_datagram_size=MDS),
                     rtt=RttEstimator(), pacer=Pacer(max_datagram_size=MDS), max_ack_delay=0.025,
                     is_client=is_client)
    r.handshake_confirmed = True
    return r


def send(r: LossRecovery, log: Log, space: int, pn: int, t: float, eliciting: bool = True) -> None:
    handlers: list[tuple[Any, tuple[Any, ...]]] = [(log.handler, (pn,))]
    r.on_packet_sent(SentPacket(pn, space, t, MDS, eliciting, eliciting, handlers, "1RTT"))


def ranges(*rs: tuple[int, int]) -> RangeSet:
    return RangeSet(range(a, b + 1) for a, b in rs)


def test_ack_ranges_ack_exactly_the_listed_packets_and_sample_rtt() -> None:
    r, log = recovery(), Log()
    for pn in range(10):
        send(r, log, SPACE_APPLICATION, pn, 0.0)
    r.on_ack_received(SPACE_APPLICATION, ranges((0, 2), (5, 6)), 0.0, 0.1)
    assert sorted(log.acked) == [0, 1, 2, 5, 6]
    assert r.rtt.has_sample and abs(r.rtt.latest_rtt - 0.1) < 1e-9
    # 3 is kPacketThreshold (3) behind the largest acked (6): lost; 4 waits for the time threshold.
    assert log.lost == [3]
    assert r.bytes_in_flight == (10 - 5 - 1) * MDS


def test_packet_threshold_declares_loss() -> None:
    r, log = recovery(), Log()
    for pn in range(5):
        send(r, log, SPACE_APPLICATION, pn, 0.0)
    r.on_ack_received(SPACE_APPLICATION, ranges((4, 4)), 0.0, 0.05)
    assert log.lost == [0, 1]  # 4 - 3 = 1: packets <= 1 are lost
    assert r.spaces[SPACE_APPLICATION].loss_time is not None  # 2 and 3 wait for the time threshold


def test_time_threshold_fires_through_the_timer() -> None:
    r, log = recovery(), Log()
    send(r, log, SPACE_APPLICATION, 0, 0.0)
    send(r, log, SPACE_APPLICATION, 1, 0.0)
    r.on_ack_received(SPACE_APPLICATION, ranges((1, 1)), 0.0, 0.1)
    t = r.get_loss_detection_time()
    assert t is not None and abs(t - 9 / 8 * 0.1) < 1e-9
    assert r.on_loss_detection_timeout(t) is None  # a loss timer, not a PTO
    assert log.lost == [0]


def test_pto_requeues_oldest_data_and_backs_off() -> None:
    r, log = recovery(), Log()
    send(r, log, SPACE_APPLICATION, 0, 0.0)
    send(r, log, SPACE_APPLICATION, 1, 0.0)
    send(r, log, SPACE_APPLICATION, 2, 0.0)
    first = r.get_loss_detection_time()
    assert first is not None
    assert r.on_loss_detection_timeout(first) == SPACE_APPLICATION
    assert log.lost == [0, 1]  # data of the two oldest packets re-queued for the probes
    second = r.get_loss_detection_time()
    assert second is not None and second - 0.0 > 1.9 * (first - 0.0)  # exponential backoff
    # Requeued packets are not reported lost twice when the threshold later catches them.
    send(r, log, SPACE_APPLICATION, 3, 1.0)
    send(r, log, SPACE_APPLICATION, 4, 1.0)
    send(r, log, SPACE_APPLICATION, 5, 1.0)
    r.on_ack_received(SPACE_APPLICATION, ranges((5, 5)), 0.0, 1.1)
    assert log.lost == [0, 1, 2]


def test_ack_of_non_eliciting_packets_does_not_sample_rtt() -> None:
    r, log = recovery(), Log()
    send(r, log, SPACE_APPLICATION, 0, 0.0, eliciting=False)
    r.on_ack_received(SPACE_APPLICATION, ranges((0, 0)), 0.0, 0.2)
    assert not r.rtt.has_sample and log.acked == [0]


def test_anti_deadlock_pto_for_a_client_without_validated_address() -> None:
    r, log = recovery(is_client=True), Log()
    r.handshake_confirmed = False
    send(r, log, SPACE_INITIAL, 0, 0.0)
    r.on_ack_received(SPACE_INITIAL, ranges((0, 0)), 0.0, 0.05)
    assert r.bytes_in_flight == 0
    t = r.get_loss_detection_time()
    assert t is not None  # armed although nothing is in flight (RFC 9002 §6.2.2.1)
    assert r.on_loss_detection_timeout(t) == SPACE_INITIAL
    r.spaces[SPACE_HANDSHAKE].time_of_last_ack_eliciting = t
    r.peer_completed_address_validation = True
    assert r.get_loss_detection_time() is None


def test_discarding_a_space_removes_its_bytes_in_flight() -> None:
    r, log = recovery(), Log()
    send(r, log, SPACE_INITIAL, 0, 0.0)
    send(r, log, SPACE_HANDSHAKE, 0, 0.0)
    assert r.bytes_in_flight == 2 * MDS
    r.discard_space(SPACE_INITIAL)
    assert r.bytes_in_flight == MDS and not r.spaces[SPACE_INITIAL].sent
    assert log.lost == [] and log.acked == []


def test_congestion_window_halves_once_per_recovery_period() -> None:
    r, log = recovery(), Log()
    for pn in range(20):
        send(r, log, SPACE_APPLICATION, pn, pn * 0.001)
    before = r.cc.congestion_window
    r.on_ack_received(SPACE_APPLICATION, ranges((10, 10)), 0.0, 0.1)  # 0..7 lost
    after_first = r.cc.congestion_window
    assert after_first < before
    r.on_ack_received(SPACE_APPLICATION, ranges((10, 14)), 0.0, 0.101)  # 8, 9 lost, same period
    assert r.cc.congestion_window >= after_first
