"""Adaptive reordering thresholds, spurious-loss detection and undo (RFC 9002 §6.1, RFC 8985,
RFC 9438 §4.9) on hand-built sent-packet histories."""

from __future__ import annotations

from typing import Any

import pytest

from quicreality.quic.recovery.congestion.base import create_congestion_controller, initial_window
from quicreality.quic.recovery.loss import SPACE_APPLICATION, LossRecovery, SentPacket
from quicreality.quic.recovery.pacer import Pacer
from quicreality.quic.recovery.reordering import LostPacket
from quicreality.quic.recovery.rtt import RttEstimator
from quicreality.wire.rangeset import RangeSet

MDS = 1200
APP = SPACE_APPLICATION


class Log:
    def __init__(self) -> None:
        self.acked: list[int] = []
        self.lost: list[int] = []
        self.spurious: list[tuple[int, str]] = []

    def handler(self, delivered: bool, pn: int) -> None:
        (self.acked if delivered else self.lost).append(pn)

    def on_spurious(self, lost: LostPacket, now: float) -> None:
        self.spurious.append((lost.packet.packet_number, lost.trigger))


def recovery(log: Log, cc: str = "newreno", adaptive: bool = True) -> LossRecovery:
    r = LossRecovery(congestion=create_congestion_controller(cc, max_datagram_size=MDS),
                     rtt=RttEstimator(), pacer=Pacer(max_datagram_size=MDS), max_ack_delay=0.025,
                     is_client=False, on_spurious=log.on_spurious, adaptive_reordering=adaptive)
    r.handshake_confirmed = True
    return r


def send(r: LossRecovery, log: Log, pn: int, t: float) -> None:
    handlers: list[tuple[Any, tuple[Any, ...]]] = [(log.handler, (pn,))]
    r.on_packet_sent(SentPacket(pn, APP, t, MDS, True, True, handlers, "1RTT"))


def ack(r: LossRecovery, now: float, *rs: tuple[int, int]) -> None:
    r.on_ack_received(APP, RangeSet(range(a, b + 1) for a, b in rs), 0.0, now)


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_spurious_loss_undoes_the_window_cut(cc: str) -> None:
    log = Log()
    r = recovery(log, cc)
    for pn in range(20):
        send(r, log, pn, 0.0)
    before = r.cc.congestion_window
    ack(r, 0.05, (4, 19))  # 0..3 are 16 packets behind: declared lost, the window is cut
    assert log.lost == [0, 1, 2, 3]
    assert r.cc.congestion_window < before
    ack(r, 0.06, (0, 19))  # ... and they were only late
    assert [pn for pn, _ in log.spurious] == [0, 1, 2, 3]
    assert r.spurious_losses == 4
    assert sorted(log.acked) == list(range(20))  # their frames count as delivered
    assert r.cc.congestion_window >= before
    assert r.cc.ssthresh is None  # back in slow start
    assert r.episode.undone == 1


def test_bbr_gives_back_the_lost_bytes_of_a_spurious_episode() -> None:
    cc = create_congestion_controller("bbr", max_datagram_size=MDS)
    before = cc.congestion_window
    cc.on_congestion_event(now=1.0, largest_lost_sent_time=0.9, lost_bytes=4 * MDS,
                           bytes_in_flight=0)
    assert cc.congestion_window == before - 4 * MDS
    cc.on_spurious_congestion(now=1.1)
    assert cc.congestion_window == before
    assert before == initial_window(MDS)


def test_a_real_loss_in_the_episode_keeps_the_cut() -> None:
    log = Log()
    r = recovery(log, "cubic")
    for pn in range(20):
        send(r, log, pn, 0.0)
    ack(r, 0.05, (4, 19))
    cut = r.cc.congestion_window
    ack(r, 0.06, (1, 19))  # 0 stays missing: one loss of the episode was real
    assert r.spurious_losses == 3
    assert r.cc.congestion_window == cut and r.cc.ssthresh is not None
    assert r.episode.undone == 0


def test_spurious_loss_raises_the_packet_threshold_to_the_reordering_seen() -> None:
    log = Log()
    r = recovery(log)
    for pn in range(20):
        send(r, log, pn, 0.0)
    ack(r, 0.05, (10, 19))
    assert log.lost == list(range(10))
    ack(r, 0.06, (0, 19))
    assert r.thresholds.packet_threshold == 20  # 0 arrived after 19: 19 packets of reordering
    # The same depth of reordering again is now tolerated: nothing is declared lost.
    for pn in range(20, 40):
        send(r, log, pn, 0.07)
    ack(r, 0.08, (30, 39))
    assert log.lost == list(range(10))
    ack(r, 0.085, (20, 39))
    assert r.spurious_losses == 10 and r.bytes_in_flight == 0


def test_without_adaptation_the_same_reordering_is_declared_lost_again() -> None:
    log = Log()
    r = recovery(log, adaptive=False)
    for pn in range(20):
        send(r, log, pn, 0.0)
    ack(r, 0.05, (10, 19))
    ack(r, 0.06, (0, 19))
    for pn in range(20, 40):
        send(r, log, pn, 0.07)
    ack(r, 0.08, (30, 39))
    assert r.thresholds.packet_threshold == 3
    assert log.lost == list(range(10)) + list(range(20, 30))


def test_spurious_time_threshold_loss_widens_the_time_threshold() -> None:
    log = Log()
    r = recovery(log)
    send(r, log, 0, 0.0)
    send(r, log, 1, 0.001)
    ack(r, 0.101, (1, 1))  # RTT 0.1 s
    t = r.get_loss_detection_time()
    assert t == pytest.approx(9 / 8 * 0.1)
    r.on_loss_detection_timeout(t)
    assert log.lost == [0]
    ack(r, 0.14, (0, 1))  # 0 was delivered 1.4 RTT after it was sent
    assert log.spurious == [(0, "time_threshold")]
    assert r.thresholds.time_threshold == 3 / 2
    assert r.thresholds.packet_threshold == 3  # 1 packet of reordering: the packet rule was fine
    send(r, log, 2, 0.2)
    send(r, log, 3, 0.201)
    ack(r, 0.3, (3, 3))
    assert r.get_loss_detection_time() == pytest.approx(0.2 + 1.5 * 0.1, abs=2e-3)


def test_the_time_threshold_never_exceeds_two_rtts() -> None:
    log = Log()
    r = recovery(log)
    send(r, log, 0, 0.0)
    send(r, log, 1, 0.001)
    ack(r, 0.101, (1, 1))
    r.on_loss_detection_timeout(r.get_loss_detection_time() or 0.0)
    ack(r, 0.5, (0, 1))  # 5 RTTs late
    assert r.thresholds.time_threshold == 2.0


def test_a_long_lost_packet_is_forgotten_and_not_counted_as_spurious() -> None:
    log = Log()
    r = recovery(log)
    for pn in range(5):
        send(r, log, pn, 0.0)
    ack(r, 0.05, (4, 4))
    assert log.lost == [0, 1]
    send(r, log, 5, 10.0)
    ack(r, 10.05, (0, 5))  # seconds later: far beyond 3 PTOs
    assert r.spurious_losses == 0
    assert 0 not in log.acked and 1 not in log.acked
