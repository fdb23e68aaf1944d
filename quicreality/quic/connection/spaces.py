"""Packet number spaces as the connection sees them: what was received, what is owed.

Recovery (:mod:`quicreality.quic.recovery.loss`) tracks the packets we *sent* in each space and
declares them acknowledged or lost. This module holds the other half (quinn-proto's
``PacketSpace``): per space, the next packet number, the CRYPTO stream, the packet numbers
*received* (to acknowledge them, RFC 9000 §13.2) and an :class:`OwedFrames` record of the frames
we still owe the peer.

:class:`OwedFrames` is the one place retransmission goes through (quinn-proto's
``Retransmits``): writing a frame into a packet clears its entry, and the frame's delivery
callback sets it again when the packet is declared lost (RFC 9000 §13.3: information is resent,
not packets). CRYPTO data is owed through the space's :attr:`PacketSpace.crypto` stream, which
re-queues lost ranges itself; stream-level frames (STREAM, RESET_STREAM, STOP_SENDING,
MAX_STREAM_DATA) are owed through their stream and the stream manager's send queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ...wire.rangeset import RangeSet
from ..streams import QuicStream
from .ecn import ECN_CE, ECN_ECT0, ECN_ECT1
from .pn_skip import PacketNumberSkipper

if TYPE_CHECKING:
    from .cids import ConnectionIdEntry

#: In-order ack-eliciting packets acknowledged every second one before ``ack_every`` applies
#: (as Chromium's ACK decimation waits for 100), so slow start and loss recovery at the start of
#: a connection see the RFC 9000 §13.2.2 rate.
ACK_DECIMATION_AFTER: Final = 100
#: With decimation, a second (or later) unacknowledged packet arriving this long after the first
#: is acknowledged at once: only fast flows (``ack_every`` packets within 5 ms) are decimated,
#: a slow one keeps the ACK clock it had (seconds).
ACK_DECIMATION_WINDOW: Final = 0.005
#: ACK ranges remembered per space (the oldest is forgotten beyond this; see is_duplicate).
MAX_RECEIVED_RANGES: Final = 64
#: ACK ranges sent per ACK frame at most, the newest (RFC 9000 §13.2.4 lets a receiver limit them;
#: the older ones went out in earlier ACKs, and on a long transfer they are mostly the gaps of the
#: peer's skipped packet numbers, RFC 9000 §21.4): half the ACK's writing cost of all 64.
MAX_ACK_RANGES: Final = 32
#: PATH_RESPONSE frames queued at most; a flood of PATH_CHALLENGEs keeps only the newest.
MAX_PATH_RESPONSES: Final = 16


def new_crypto_stream() -> QuicStream:
    """A CRYPTO stream (RFC 9000 §19.6): no flow control, both directions."""
    return QuicStream(-1, can_send=True, can_receive=True, local_max_stream_data=1 << 62,
                      peer_max_stream_data=1 << 62, crypto=True)


class OwedFrames:
    """The frames of one space that must be sent (again): set when owed, cleared when written.

    In the Initial and Handshake spaces only :attr:`ack` is used; the rest are 1-RTT frames.
    """

    __slots__ = ("ack", "handshake_done", "max_data", "max_streams", "new_cids",
                 "path_responses", "pings", "retire_cids")

    def __init__(self) -> None:
        #: an ACK frame must go out in the next packet of this space (not just piggybacked)
        self.ack = False
        #: HANDSHAKE_DONE (RFC 9000 §19.20), server only
        self.handshake_done = False
        #: MAX_DATA with the current connection window (RFC 9000 §19.9)
        self.max_data = False
        #: MAX_STREAMS bidi, uni (RFC 9000 §19.11)
        self.max_streams = [False, False]
        #: NEW_CONNECTION_ID frames to announce (RFC 9000 §19.15)
        self.new_cids: list[ConnectionIdEntry] = []
        #: RETIRE_CONNECTION_ID sequence numbers (RFC 9000 §19.16)
        self.retire_cids: list[int] = []
        #: PING frames the application asked for, by uid (re-sent until acknowledged)
        self.pings: list[int] = []
        #: PATH_RESPONSE echoes, bounded (the oldest are dropped; RFC 9000 §8.2.2, §21.9)
        self.path_responses: list[bytes] = []  # push_bounded(..., MAX_PATH_RESPONSES)


class PacketSpace:
    """Receive-side ACK state, packet numbering, CRYPTO stream and owed frames of one space."""

    __slots__ = ("_ack_every", "_ce", "_ect0", "_ect1", "_ecn_counted", "_first_unacked_time",
                 "_in_order_count", "ack_deadline", "ack_eliciting_unacked", "ack_floor", "crypto",
                 "discarded", "largest_received", "largest_received_time", "next_pn", "owed",
                 "received", "received_floor", "skip")

    def __init__(self, ack_every: int = 2) -> None:
        """``ack_every``: in-order ack-eliciting packets per ACK once
        :data:`ACK_DECIMATION_AFTER` have arrived (RFC 9000 §13.2.2 recommends 2)."""
        self._ack_every = ack_every
        self._in_order_count = 0
        self._first_unacked_time = 0.0
        self.next_pn = 0
        #: application space: the packet numbers we skip (set with the first 1-RTT key)
        self.skip: PacketNumberSkipper | None = None
        self.crypto = new_crypto_stream()
        self.received = RangeSet()
        self.received_floor = 0  # every packet number below this counts as already received
        #: the largest Largest Acknowledged of our ACK frames the peer has acknowledged: ranges
        #: at or below it are no longer sent (RFC 9000 §13.2.4); ``received`` keeps them for
        #: duplicate detection
        self.ack_floor = -1
        self.largest_received = -1
        self.largest_received_time = 0.0
        self.ack_deadline: float | None = None
        self.ack_eliciting_unacked = 0
        self.discarded = False
        self.owed = OwedFrames()
        # packets received marked ECT(0), ECT(1), CE (RFC 9000 §13.4.1): see ecn_counts
        self._ect0 = self._ect1 = self._ce = 0
        self._ecn_counted = False

    @property
    def ecn_counts(self) -> tuple[int, int, int] | None:
        """Packets received marked ECT(0), ECT(1), CE (RFC 9000 §13.4.1), sent in ACK_ECN; None
        until one marked packet was counted (then ACK frames carry no counts)."""
        return (self._ect0, self._ect1, self._ce) if self._ecn_counted else None

    def count_ecn(self, codepoint: int, ack_eliciting: bool = True) -> None:
        """Count one processed packet that arrived with ECN ``codepoint`` (RFC 3168 §5).
        A CE-marked ack-eliciting packet owes an immediate ACK (RFC 9000 §13.2.1); an ACK-only
        one does not (ACKs are never answered with ACKs)."""
        self._ecn_counted = True
        if codepoint == ECN_ECT0:
            self._ect0 += 1
        elif codepoint == ECN_ECT1:
            self._ect1 += 1
        elif codepoint == ECN_CE:
            self._ce += 1
            self.owed.ack = self.owed.ack or ack_eliciting

    def is_duplicate(self, pn: int) -> bool:
        """True if ``pn`` was received already, or is too old to tell (RFC 9000 §12.3).

        Only :data:`MAX_RECEIVED_RANGES` ranges are remembered; a packet number below the oldest
        of them could have been processed, so it is treated as a duplicate and dropped (the peer
        retransmits what it carried once the packet goes unacknowledged).
        """
        return pn < self.received_floor or pn in self.received

    def record_received(self, pn: int) -> None:
        """Remember ``pn``; forgetting the oldest range raises :attr:`received_floor`."""
        received = self.received
        received.add(pn)
        if len(received) > MAX_RECEIVED_RANGES:
            received.shift()
            self.received_floor = received[0].start

    def on_packet_received(self, pn: int, ack_eliciting: bool, now: float,
                           max_ack_delay: float | None, ecn: int = 0) -> None:
        """A packet was processed: record it and decide when to acknowledge (RFC 9000 §13.2.1).

        ``max_ack_delay`` None acknowledges every ack-eliciting packet at once (Initial and
        Handshake); otherwise every second one (every ``ack_every`` after
        :data:`ACK_DECIMATION_AFTER`), an out-of-order one at once, and a lone one within
        ``max_ack_delay``. ``ecn``: the codepoint it arrived with (:meth:`count_ecn`).
        """
        in_order = pn == self.largest_received + 1
        self.record_received(pn)
        if pn > self.largest_received:
            self.largest_received = pn
            self.largest_received_time = now
        if ecn:
            self.count_ecn(ecn, ack_eliciting)
        if not ack_eliciting:
            return
        if max_ack_delay is None or not in_order:
            self.owed.ack = True
            return
        self.ack_eliciting_unacked += 1
        self._in_order_count += 1
        if self.ack_eliciting_unacked == 1:
            self._first_unacked_time = now
        threshold = self._ack_every if self._in_order_count > ACK_DECIMATION_AFTER else 2
        if self.ack_eliciting_unacked >= threshold or (
                self.ack_eliciting_unacked >= 2
                and now - self._first_unacked_time >= ACK_DECIMATION_WINDOW):
            self.owed.ack = True
        elif self.ack_deadline is None:
            self.ack_deadline = now + max_ack_delay

    def ack_ranges_above_floor(self) -> int:
        """How many of the newest ``received`` ranges reach above :attr:`ack_floor` (at least 1):
        an ACK frame needs no older range (RFC 9000 §13.2.4)."""
        received = self.received
        n = len(received)
        floor = self.ack_floor
        i = n
        while i > 0 and received[i - 1].stop - 1 > floor:
            i -= 1
        return max(1, n - i)

    def on_ack_frame_delivered(self, acked: bool, largest: int) -> None:
        """Delivery handler of a packet carrying our ACK frame whose Largest Acknowledged was
        ``largest``: once the peer acknowledged it, the peer knows everything up to ``largest``
        that frame reported, and later ACK frames stop at :attr:`ack_floor` (RFC 9000 §13.2.4).
        A lost ACK frame changes nothing (RFC 9000 §13.3: ACKs are not retransmitted)."""
        if acked and largest > self.ack_floor:
            self.ack_floor = largest

    def on_ack_timer(self, now: float) -> None:
        """The delayed-ACK deadline passed: the ACK is owed now."""
        if self.ack_deadline is not None and now >= self.ack_deadline:
            self.owed.ack = True
            self.ack_deadline = None

    def on_ack_sent(self) -> None:
        """An ACK frame covering everything received went into a packet."""
        self.owed.ack = False
        self.ack_eliciting_unacked = 0
        self.ack_deadline = None

    def discard(self) -> None:
        """The space's keys are gone (RFC 9001 §4.9): nothing more is sent or acknowledged."""
        self.discarded = True
        self.ack_deadline = None
        self.owed.ack = False
        # what the space held is dead weight for the rest of the connection (an idle server
        # connection kept its certificate flight here): an empty stream and range set instead
        self.crypto = new_crypto_stream()
        self.received = RangeSet()

    def restart_crypto(self, data: bytes) -> None:
        """Send ``data`` again from CRYPTO offset 0 (RFC 9000 §17.2.5.2, after a Retry)."""
        self.crypto = new_crypto_stream()
        self.crypto.write(data, False)
