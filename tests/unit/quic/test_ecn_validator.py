"""EcnValidator on its own (RFC 9000 §13.4.2): each validation check, with a recording recovery."""

from __future__ import annotations

from quicreality.qlog.sink import RecordingSink
from quicreality.quic.connection.ecn import (
    ECN_ECT0,
    ECN_NOT_ECT,
    ECN_TESTING_PACKETS,
    EcnState,
    EcnValidator,
)
from quicreality.quic.connection.spaces import PacketSpace
from quicreality.wire.rangeset import RangeSet

APP = 2


class _Rtt:
    def pto_base(self) -> float:
        return 0.1


class _Recovery:
    """What the validator uses of LossRecovery: the PTO and the CE congestion event."""

    def __init__(self) -> None:
        self.rtt = _Rtt()
        self.ce_calls: list[float] = []

    def on_ecn_congestion(self, now: float) -> None:
        self.ce_calls.append(now)


def make(n_sent: int = 4) -> tuple[EcnValidator, _Recovery, RecordingSink]:
    """A validator that sent packets 0..n_sent-1 of the application space marked."""
    rec, sink = _Recovery(), RecordingSink()
    v = EcnValidator(enabled=True, recovery=rec, qlog=sink)
    v.begin_pass(0.0)
    for pn in range(n_sent):
        v.on_packet_sent(APP, pn)
    return v, rec, sink


def acked(start: int, stop: int) -> RangeSet:
    return RangeSet([range(start, stop)])


def states(sink: RecordingSink) -> list[tuple[str, str]]:
    return [(e["data"]["new"], e["data"]["trigger"]) for e in sink.named("custom")]


def test_counts_covering_the_marked_packets_validate() -> None:
    v, rec, sink = make()
    verdict = v.on_ack(APP, acked(0, 4), (4, 0, 0), 0.05)
    assert (verdict.state, verdict.reason, verdict.newly_marked) == (EcnState.CAPABLE, "ok", 4)
    assert v.codepoint == ECN_ECT0 and rec.ce_calls == []
    assert states(sink) == [("capable", "ECN counts validated")]


def test_plain_ack_of_marked_packets_fails() -> None:
    v, _, sink = make()
    verdict = v.on_ack(APP, acked(0, 2), None, 0.05)
    assert verdict.state is EcnState.FAILED and "without ECN counts" in verdict.reason
    assert v.codepoint == ECN_NOT_ECT
    assert states(sink)[-1][0] == "failed"


def test_bleached_counts_fail() -> None:
    v, _, _ = make()
    verdict = v.on_ack(APP, acked(0, 4), (1, 0, 0), 0.05)  # 3 of 4 arrived Not-ECT
    assert verdict.state is EcnState.FAILED and "below the 4" in verdict.reason


def test_ce_counts_as_delivered_marks_and_is_a_congestion_event() -> None:
    v, rec, _ = make()
    verdict = v.on_ack(APP, acked(0, 4), (2, 0, 2), 0.05)
    assert verdict.state is EcnState.CAPABLE and verdict.ce_increase == 2
    assert rec.ce_calls == [0.05] and v.ce_events == 1
    v.on_packet_sent(APP, 4)
    assert v.on_ack(APP, acked(0, 5), (3, 0, 2), 0.06).ce_increase == 0
    assert rec.ce_calls == [0.05]  # no new CE: no new event


def test_ect1_never_sent_fails() -> None:
    v, _, _ = make()
    assert "ECT(1)" in v.on_ack(APP, acked(0, 4), (3, 1, 0), 0.05).reason
    assert v.state is EcnState.FAILED


def test_more_ect0_than_sent_fails() -> None:
    v, _, _ = make()
    assert "exceeds" in v.on_ack(APP, acked(0, 4), (9, 0, 0), 0.05).reason


def test_decreasing_counts_fail_but_not_on_a_reordered_ack() -> None:
    v, _, _ = make(6)
    v.on_ack(APP, acked(0, 4), (4, 0, 0), 0.05)
    # an older ACK arriving late (largest acknowledged not raised): ignored, never a failure
    late = v.on_ack(APP, acked(0, 3), (3, 0, 0), 0.06)
    assert late.state is EcnState.CAPABLE and "does not raise" in late.reason
    # a newer ACK with smaller counts: failure
    assert "decreased" in v.on_ack(APP, acked(0, 6), (2, 0, 0), 0.07).reason
    assert v.state is EcnState.FAILED


def test_testing_period_ends_after_ten_packets_then_all_lost_fails() -> None:
    v, _, sink = make(ECN_TESTING_PACKETS)
    v.begin_pass(0.01)
    assert v.state is EcnState.UNKNOWN and v.codepoint == ECN_NOT_ECT
    v.on_packet_sent(APP, ECN_TESTING_PACKETS)  # unmarked now: not tracked as marked
    for pn in range(ECN_TESTING_PACKETS - 1):
        v.on_packet_lost(APP, pn, 0.5)
    assert v.state is EcnState.UNKNOWN  # one marked packet may still arrive
    v.on_packet_lost(APP, ECN_TESTING_PACKETS - 1, 0.5)
    assert v.state is EcnState.FAILED
    assert states(sink)[-1] == ("failed", "every ECT(0) packet of the testing period lost")


def test_testing_period_times_out_after_three_ptos() -> None:
    v, _, _ = make(2)
    v.begin_pass(0.2)
    assert v.state is EcnState.TESTING
    v.begin_pass(0.31)  # 3 x 0.1 s PTO after the first pass at t=0
    assert v.state is EcnState.UNKNOWN


def test_restart_tests_again_and_disabled_never_marks() -> None:
    v, _, _ = make()
    v.on_ack(APP, acked(0, 4), None, 0.05)
    assert v.state is EcnState.FAILED
    v.restart(1.0)
    assert v.state is EcnState.TESTING and v.codepoint == ECN_ECT0
    off = EcnValidator(enabled=False, recovery=_Recovery(), qlog=RecordingSink())
    assert off.codepoint == ECN_NOT_ECT and not off.enabled


def test_received_codepoints_are_counted_per_space_and_ce_acks_at_once() -> None:
    space = PacketSpace()
    v, _, _ = make()
    for pn, cp in enumerate((ECN_ECT0, ECN_ECT0, ECN_NOT_ECT)):
        v.datagram_codepoint = cp
        space.on_packet_received(pn, True, 0.0, 0.025, v.datagram_codepoint)
    assert space.ecn_counts == (2, 0, 0)
    space.on_ack_sent()  # a lone in-order packet would now wait for the delayed-ACK timer
    v.datagram_codepoint = 0b11 | 0b100  # the DSCP bits are masked off
    space.on_packet_received(3, True, 0.0, 0.025, v.datagram_codepoint)
    assert space.ecn_counts == (2, 0, 1)
    assert space.owed.ack  # the CE mark owes an immediate ACK (RFC 9000 §13.2.1)


def test_ce_on_an_ack_only_packet_is_counted_but_not_acked() -> None:
    # an ACK is never answered by an ACK: CE-marked ACK-only packets must not start a ping-pong
    space = PacketSpace()
    space.on_packet_received(0, False, 0.0, 0.025, 0b11)
    assert space.ecn_counts == (0, 0, 1) and not space.owed.ack


def test_ecn_off_ignores_received_codepoints() -> None:
    off = EcnValidator(enabled=False, recovery=_Recovery(), qlog=RecordingSink())
    off.datagram_codepoint = ECN_ECT0
    assert off.datagram_codepoint == ECN_NOT_ECT


def test_lost_packets_leave_the_marked_set_and_a_late_ack_still_validates() -> None:
    # On a lossy path every lost packet used to stay in the marked set for good, and each ACK
    # walked the whole set once per ACK range (the lossy-wan runner regression of 2026-12-04).
    v, _, _ = make(ECN_TESTING_PACKETS)
    ect0 = ECN_TESTING_PACKETS
    assert v.on_ack(APP, acked(0, ect0), (ect0, 0, 0), 0.05).state is EcnState.CAPABLE
    sent = ECN_TESTING_PACKETS
    for flight in range(50):
        first = sent
        for _ in range(20):
            v.on_packet_sent(APP, sent)
            sent += 1
        v.on_packet_lost(APP, first + 3, 0.1 + flight)  # one loss per flight, never acked
        ect0 += 19
        ranges = RangeSet([range(first, first + 3), range(first + 4, sent)])
        verdict = v.on_ack(APP, ranges, (ect0, 0, 0), 0.1 + flight)
        assert (verdict.state, verdict.reason, verdict.newly_marked) == (EcnState.CAPABLE, "ok", 19)
        assert len(v._marked[APP]) == 0  # nothing outstanding: the lost ones are not kept
    # A packet declared lost arrives after all (a spurious loss), with one new packet: the peer
    # counts both, only the new one is newly acknowledged and marked here; the ECT(0)+CE check
    # is then more lenient, it does not fail.
    v.on_packet_sent(APP, sent)
    late = v.on_ack(APP, RangeSet([range(ECN_TESTING_PACKETS + 3, ECN_TESTING_PACKETS + 4),
                                   range(sent, sent + 1)]), (ect0 + 2, 0, 0), 60.0)
    assert (late.state, late.reason, late.newly_marked) == (EcnState.CAPABLE, "ok", 1)
