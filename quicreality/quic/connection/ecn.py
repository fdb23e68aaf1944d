"""Explicit Congestion Notification (RFC 9000 §13.4, RFC 9002 §7.1, §B.7): :class:`EcnValidator`.

Sending: while ECN is being tested or is validated, every datagram built goes out with ECT(0);
the edge reads :attr:`EcnValidator.codepoint` and sets it in the IP header (IP_TOS /
IPV6_TCLASS). Which packet numbers were sent marked is remembered per packet number space.

Receiving: the edge hands each datagram's codepoint to the connection (:attr:`datagram_codepoint`);
every packet processed from it counts once in its space (:meth:`~.spaces.PacketSpace.count_ecn`),
and the counts go back in ACK_ECN frames (RFC 9000 §13.4.1).

Validation (RFC 9000 §13.4.2): the first :data:`ECN_TESTING_PACKETS` packets are marked
(*testing*, for at most :data:`ECN_TESTING_PTOS` PTOs); then marking pauses (*unknown*) until an
ACK newly acknowledges a marked packet with ECN counts that account for it (*capable*: marking
resumes), or a check fails (*failed*: marking stops for good). It fails when such an ACK carries
no counts, when the ECT(0)+CE increase is smaller than the marked packets it newly acknowledges
(bleaching, remarking), when a count goes down or exceeds what was sent, and when every marked
packet of the testing period is lost. Only ACKs that raise the largest acknowledged packet
number can fail it (§13.4.2.1).

Congestion (RFC 9002 §7.1, §B.7): a CE count increase in a validated (or testing) state is a
congestion event, given to recovery with the send time of the largest newly acknowledged packet,
so that the controller reduces at most once per round trip.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Protocol

from ...qlog.sink import QlogSink
from ...wire.rangeset import RangeSet


class PtoSource(Protocol):
    """The RTT estimator, as the validator sees it (RFC 9002 §6.2.1)."""

    def pto_base(self) -> float:
        """``smoothed_rtt + max(4 * rttvar, kGranularity)``."""
        ...


class EcnRecovery(Protocol):
    """What the validator uses of :class:`~..recovery.loss.LossRecovery`: the PTO base (the
    testing period) and the CE congestion event. A protocol, so that a compiled validator takes
    a stand-in too (tests); neither is on the per-packet path."""

    @property
    def rtt(self) -> PtoSource:
        """The path's RTT estimator."""
        ...

    def on_ecn_congestion(self, now: float) -> None:
        """The peer's CE count went up (RFC 9002 §7.1)."""
        ...

#: RFC 3168 §5 codepoints: the two low bits of the IPv4 TOS / IPv6 Traffic Class byte.
ECN_NOT_ECT: Final = 0b00
ECN_ECT1: Final = 0b01
ECN_ECT0: Final = 0b10
ECN_CE: Final = 0b11
ECN_MASK: Final = 0b11
#: RFC 9000 §13.4.2: "set the ECT(0) codepoint for only the first ten outgoing packets on a
#: path, or for a period of three PTOs" (whichever ends first here).
ECN_TESTING_PACKETS: Final = 10
ECN_TESTING_PTOS: Final = 3


class EcnState(enum.Enum):
    """Validation state (the qlog ``ecn_state_updated`` values, RFC 9000 §A.4)."""

    TESTING = "testing"
    UNKNOWN = "unknown"
    CAPABLE = "capable"
    FAILED = "failed"


@dataclass(frozen=True)
class EcnAckVerdict:
    """What one ACK frame did to validation.

    Attributes:
        state: the state after the frame.
        reason: why (``"ok"``, or the check that failed, or why it was not checked).
        newly_marked: ECT(0)-marked packets this frame acknowledged for the first time.
        ce_increase: how much the peer's CE count went up (a congestion event when > 0 and
            ECN is still in use).
    """

    state: EcnState
    reason: str
    newly_marked: int = 0
    ce_increase: int = 0


class EcnValidator:
    """Per connection: what we mark, what the peer reports, and whether ECN works on the path."""

    __slots__ = ("_enabled", "_largest_acked", "_marked", "_peer_counts", "_qlog", "_recovery",
                 "_sent_marked", "_testing_lost", "_testing_marked", "_testing_since", "ce_events",
                 "_datagram_codepoint", "state")

    def __init__(self, *, enabled: bool, recovery: EcnRecovery, qlog: QlogSink) -> None:
        self._enabled = enabled
        self._recovery = recovery
        self._qlog = qlog
        self._datagram_codepoint = ECN_NOT_ECT
        #: CE increases that reached the congestion controller
        self.ce_events = 0
        self.state = EcnState.TESTING if enabled else EcnState.FAILED
        self._marked = [RangeSet(), RangeSet(), RangeSet()]  # sent ECT(0), not yet acknowledged
        self._sent_marked = [0, 0, 0]
        self._peer_counts = [(0, 0, 0), (0, 0, 0), (0, 0, 0)]
        self._largest_acked = [-1, -1, -1]
        self._testing_marked = 0
        self._testing_lost = 0
        self._testing_since: float | None = None

    @property
    def enabled(self) -> bool:
        """False when the configuration turned ECN off (nothing is marked or counted)."""
        return self._enabled

    @property
    def datagram_codepoint(self) -> int:
        """The ECN codepoint of the datagram being processed (Not-ECT when ECN is off)."""
        return self._datagram_codepoint

    @datagram_codepoint.setter
    def datagram_codepoint(self, value: int) -> None:
        self._datagram_codepoint = value & ECN_MASK if self._enabled else ECN_NOT_ECT

    @property
    def codepoint(self) -> int:
        """The codepoint for the datagrams built now: ECT(0) while testing or capable."""
        if self.state is EcnState.TESTING or self.state is EcnState.CAPABLE:
            return ECN_ECT0
        return ECN_NOT_ECT

    def restart(self, now: float) -> None:
        """A new path (RFC 9000 §13.4.2: validation is per path): test again from the start."""
        if not self._enabled:
            return
        self._testing_marked = self._testing_lost = 0
        self._testing_since = None
        self._set_state(EcnState.TESTING, now, "new path")

    # ------------------------------------------------------------- sending

    def begin_pass(self, now: float) -> None:
        """A send pass starts: end the testing period once its packets are out or it has lasted
        :data:`ECN_TESTING_PTOS` PTOs. The codepoint stays the same until the pass ends, so
        every datagram of a pass carries one codepoint."""
        if self.state is not EcnState.TESTING:
            return
        if self._testing_since is None:
            self._testing_since = now
        if self._testing_marked >= ECN_TESTING_PACKETS:
            self._set_state(EcnState.UNKNOWN, now, "testing period over")
        elif now - self._testing_since >= ECN_TESTING_PTOS * self._recovery.rtt.pto_base():
            self._set_state(EcnState.UNKNOWN, now, "testing period timed out")

    def on_packet_sent(self, space_id: int, packet_number: int) -> None:
        """A packet of the current pass was sent (with :attr:`codepoint`)."""
        if self.state is EcnState.TESTING:
            self._testing_marked += 1
        elif self.state is not EcnState.CAPABLE:
            return
        self._marked[space_id].add(packet_number)
        self._sent_marked[space_id] += 1

    def on_packet_lost(self, space_id: int, packet_number: int, now: float) -> None:
        """A packet was declared lost: forget that it is outstanding (so the set of marked,
        unacknowledged packets stays about one flight long on a lossy path), and, RFC 9000
        §13.4.2, if every packet marked while testing is lost, stop marking.

        A lost packet acknowledged later is then not counted as newly acknowledged and marked;
        that can only make the ECT(0)+CE check more lenient, never fail a working path."""
        marked = self._marked[space_id]
        if not marked.take(packet_number, packet_number + 1):
            return
        if self.state not in (EcnState.TESTING, EcnState.UNKNOWN):
            return
        self._testing_lost += 1
        if self.state is EcnState.UNKNOWN and self._testing_lost >= self._testing_marked:
            self._set_state(EcnState.FAILED, now, "every ECT(0) packet of the testing period lost")

    # ----------------------------------------------------------- receiving

    def on_ack(self, space_id: int, ranges: RangeSet, counts: tuple[int, int, int] | None,
               now: float) -> EcnAckVerdict:
        """Validate one ACK frame's ECN counts (``None``: a plain ACK) after recovery took it."""
        marked = self._marked[space_id]
        newly = 0
        if marked:
            # One bisection per ACK range (RangeSet.take), not a walk over every marked range
            # per ACK range: on a lossy path that product made each ACK cost O(ranges x losses).
            for r in ranges:
                newly += marked.take(r.start, r.stop)
        if self.state is EcnState.FAILED:
            return EcnAckVerdict(self.state, "ECN not in use", newly)
        largest = ranges[-1].stop - 1
        raises_largest = largest > self._largest_acked[space_id]
        if raises_largest:
            self._largest_acked[space_id] = largest
        if counts is None:
            if newly and raises_largest:
                return self._fail(now, "ACK without ECN counts acknowledges ECT(0) packets", newly)
            return EcnAckVerdict(self.state, "no counts", newly)
        prev = self._peer_counts[space_id]
        d_ect0, d_ect1, d_ce = (counts[0] - prev[0], counts[1] - prev[1], counts[2] - prev[2])
        if not raises_largest:
            if d_ect0 >= 0 and d_ect1 >= 0 and d_ce >= 0:
                self._peer_counts[space_id] = counts
            return EcnAckVerdict(self.state, "ACK does not raise the largest acknowledged", newly)
        if d_ect0 < 0 or d_ect1 < 0 or d_ce < 0:
            return self._fail(now, f"ECN counts decreased {prev} -> {counts}", newly)
        if counts[1]:
            return self._fail(now, f"ECT(1) counted ({counts[1]}) but never sent", newly)
        if counts[0] > self._sent_marked[space_id]:
            return self._fail(now, f"ECT(0) count {counts[0]} exceeds the "
                              f"{self._sent_marked[space_id]} packets marked", newly)
        if d_ect0 + d_ce < newly:
            return self._fail(now, f"ECT(0)+CE increase {d_ect0 + d_ce} below the {newly} "
                              "ECT(0) packets newly acknowledged", newly)
        self._peer_counts[space_id] = counts
        if newly and self.state in (EcnState.TESTING, EcnState.UNKNOWN):
            self._set_state(EcnState.CAPABLE, now, "ECN counts validated")
        if d_ce:
            self.ce_events += 1
            self._recovery.on_ecn_congestion(now)
        return EcnAckVerdict(self.state, "ok", newly, d_ce)

    # ------------------------------------------------------------- helpers

    def _fail(self, now: float, reason: str, newly: int) -> EcnAckVerdict:
        """RFC 9000 §13.4.2: validation failed; stop marking for the rest of the connection."""
        self._set_state(EcnState.FAILED, now, reason)
        return EcnAckVerdict(self.state, reason, newly)

    def _set_state(self, state: EcnState, now: float, trigger: str) -> None:
        if state is self.state:
            return
        old, self.state = self.state, state
        self._qlog.custom(now, "recovery:ecn_state_updated",
                          {"old": old.value, "new": state.value, "trigger": trigger})
