"""RFC 9002 loss detection: sent-packet tracking per packet number space, ACK processing, timers.

Retransmission works through delivery callbacks: each frame written into a packet registers
``(handler, args)``; on acknowledgement the handler is called with ``delivered=True``, on loss with
``delivered=False``. Recovery knows nothing about frame types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ...wire.rangeset import RangeSet
from .congestion.base import CongestionController
from .pacer import Pacer
from .reordering import (
    LOST_PACKET_MEMORY_PTOS,
    CongestionEpisode,
    LostPacket,
    LostPackets,
    ReorderingThresholds,
)
from .rtt import K_GRANULARITY, RttEstimator

#: RFC 9002 §6.1.1 kPacketThreshold (the starting value; see :mod:`.reordering`).
K_PACKET_THRESHOLD: Final = 3
#: RFC 9002 §6.1.2 kTimeThreshold (the starting value; see :mod:`.reordering`).
K_TIME_THRESHOLD: Final = 9 / 8
#: RFC 9002 §7.6.1 kPersistentCongestionThreshold.
K_PERSISTENT_CONGESTION_THRESHOLD: Final = 3

#: Packet number spaces, indexed like TLS epochs (0-RTT shares the application space).
SPACE_INITIAL: Final = 0
SPACE_HANDSHAKE: Final = 1
SPACE_APPLICATION: Final = 2

DeliveryHandler = Callable[..., None]


class SentPacket:
    """Metadata kept for each sent packet until it is acknowledged or declared lost."""

    __slots__ = (
        "packet_number",
        "space",
        "sent_time",
        "sent_bytes",
        "ack_eliciting",
        "in_flight",
        "handlers",
        "requeued",
        "packet_type",
        "mtu_probe",
    )

    def __init__(
        self,
        packet_number: int,
        space: int,
        sent_time: float,
        sent_bytes: int,
        ack_eliciting: bool,
        in_flight: bool,
        handlers: list[tuple[DeliveryHandler, tuple[Any, ...]]],
        packet_type: str,
        *,
        mtu_probe: bool = False,
    ):
        """``mtu_probe``: a DPLPMTUD probe, whose loss is no congestion signal (RFC 9000 §14.4)."""
        self.packet_number = packet_number
        self.space = space
        self.sent_time = sent_time
        self.sent_bytes = sent_bytes
        self.ack_eliciting = ack_eliciting
        self.in_flight = in_flight
        self.handlers = handlers
        self.requeued = False
        self.packet_type = packet_type
        self.mtu_probe = mtu_probe


class PacketSpace:
    """Sent-packet state of one packet number space, for loss detection (the receive side and
    the packet number counter are in :mod:`quicreality.quic.connection.spaces`)."""

    __slots__ = (
        "sent",
        "largest_acked",
        "loss_time",
        "time_of_last_ack_eliciting",
        "ack_eliciting_in_flight",
        "discarded",
    )

    def __init__(self) -> None:
        self.sent: dict[int, SentPacket] = {}
        self.largest_acked = -1
        self.loss_time: float | None = None
        self.time_of_last_ack_eliciting = 0.0
        self.ack_eliciting_in_flight = 0
        self.discarded = False


class LossRecovery:
    """RFC 9002 §6-§7 for one connection."""

    def __init__(
        self,
        *,
        congestion: CongestionController,
        rtt: RttEstimator,
        pacer: Pacer,
        max_ack_delay: float,
        is_client: bool,
        on_lost: Callable[[SentPacket, str], None] | None = None,
        on_metrics: Callable[[float], None] | None = None,
        on_spurious: Callable[[LostPacket, float], None] | None = None,
        adaptive_reordering: bool = True,
    ):
        self.cc = congestion
        self.rtt = rtt
        self.pacer = pacer
        self.peer_max_ack_delay = max_ack_delay
        self.is_client = is_client
        self.spaces = [PacketSpace(), PacketSpace(), PacketSpace()]
        self.bytes_in_flight = 0
        self.pto_count = 0
        self.handshake_confirmed = False
        #: The sender ran out of data while the window had room (RFC 9002 §7.8); set by the
        #: connection's send path, read when ACKs arrive so the window does not grow unused.
        self.app_limited = False
        self.peer_completed_address_validation = not is_client
        self._on_lost = on_lost
        self._on_metrics = on_metrics
        self._on_spurious = on_spurious
        #: Adaptive packet/time thresholds and the spurious-loss count (see :mod:`.reordering`).
        self.thresholds = ReorderingThresholds(adaptive=adaptive_reordering)
        #: Congestion episodes, so that a reduction caused only by spurious losses is undone.
        self.episode = CongestionEpisode()
        self._lost = [LostPackets(), LostPackets(), LostPackets()]
        #: Send time of the largest packet the last ACK frame newly acknowledged (RFC 9002 §B.7).
        self.largest_newly_acked_sent_time = float("-inf")

    @property
    def spurious_losses(self) -> int:
        """Packets declared lost and acknowledged afterwards (RFC 9002 §6.1)."""
        return self.thresholds.spurious_losses

    def confirm_handshake(self) -> None:
        """The handshake is confirmed (RFC 9001 §4.1.2): ACK delays count in full and the peer
        has validated our address (RFC 9002 §6.2.1), so a PTO may arm with nothing in flight."""
        self.handshake_confirmed = True
        self.peer_completed_address_validation = True

    def set_peer_max_ack_delay(self, seconds: float) -> None:
        """The peer's max_ack_delay transport parameter (RFC 9000 §18.2), in seconds."""
        self.peer_max_ack_delay = seconds

    def set_app_limited(self, limited: bool) -> None:
        """Whether the sender ran out of data with room in the window (RFC 9002 §7.8)."""
        self.app_limited = limited

    def reset_path_state(self, *, initial_rtt: float, max_datagram_size: int) -> None:
        """A new path (RFC 9000 §9.4): the congestion controller, the pacer and the RTT
        estimator start over. They are reset in place, since the connection and its send path
        hold the same objects; packets in flight stay tracked. A controller without a
        ``reset(max_datagram_size=...)`` (BBR) has its ``__init__`` re-run instead, so it must
        stay interpreted: on a mypyc-compiled class that call does nothing."""
        cc: Any = self.cc  # a registered controller (congestion/base.py)
        cc_reset = getattr(cc, "reset", None)
        if cc_reset is not None:
            cc_reset(max_datagram_size=max_datagram_size)
        else:
            type(cc).__init__(cc, max_datagram_size=max_datagram_size)
        self.pacer.reset(max_datagram_size=max_datagram_size)
        self.rtt.reset(initial_rtt)

    # --------------------------------------------------------------- sending

    def on_packet_sent(self, packet: SentPacket) -> None:
        """Record a sent packet (RFC 9002 §A.5)."""
        space = self.spaces[packet.space]
        space.sent[packet.packet_number] = packet
        if packet.in_flight:
            if packet.ack_eliciting:
                space.time_of_last_ack_eliciting = packet.sent_time
                space.ack_eliciting_in_flight += 1
            self.bytes_in_flight += packet.sent_bytes
            self.cc.on_packet_sent(
                now=packet.sent_time, sent_bytes=packet.sent_bytes, bytes_in_flight=self.bytes_in_flight
            )
            self.pacer.on_packet_sent(now=packet.sent_time, sent_bytes=packet.sent_bytes)

    # ------------------------------------------------------------- receiving

    def on_ack_received(
        self, space_id: int, ranges: RangeSet, ack_delay: float, now: float
    ) -> tuple[int, bool]:
        """Process an ACK frame (RFC 9002 §A.7). Returns (largest newly acked pn or -1, any newly acked)."""
        space = self.spaces[space_id]
        sent = space.sent
        largest = ranges[-1].stop - 1
        prior_largest = space.largest_acked
        if largest > prior_largest:
            space.largest_acked = largest
        if len(self._lost[space_id]):
            self._detect_spurious_losses(space_id, ranges, prior_largest, now)
        newly_largest: SentPacket | None = None
        includes_ack_eliciting = False
        acked_bytes = 0
        largest_acked_sent_time = 0.0
        any_acked = False
        acked_pns: list[int] = []
        ri = 0
        r = ranges[0]
        for pn in sent:
            if pn > largest:
                break
            while pn >= r.stop:
                ri += 1
                r = ranges[ri]
            if pn >= r.start:
                acked_pns.append(pn)
        if acked_pns and acked_pns[0] < prior_largest:
            # RFC 8985 §6.2 step 2: a packet below the largest acknowledged one was delivered.
            self.thresholds.on_reordering(prior_largest - acked_pns[0])
        for pn in acked_pns:
            packet = sent.pop(pn)
            any_acked = True
            if pn == largest:
                newly_largest = packet
            if packet.ack_eliciting:
                includes_ack_eliciting = True
                if packet.in_flight:
                    space.ack_eliciting_in_flight -= 1
            if packet.in_flight:
                self.bytes_in_flight -= packet.sent_bytes
                acked_bytes += packet.sent_bytes
                if packet.sent_time > largest_acked_sent_time:
                    largest_acked_sent_time = packet.sent_time
            for handler, args in packet.handlers:
                handler(True, *args)
        if not any_acked:
            self.largest_newly_acked_sent_time = float("-inf")
            return -1, False
        self.largest_newly_acked_sent_time = (
            newly_largest.sent_time if newly_largest is not None else largest_acked_sent_time)
        if newly_largest is not None and includes_ack_eliciting:
            latest_rtt = now - newly_largest.sent_time
            if space_id != SPACE_APPLICATION:
                ack_delay = 0.0
            self.rtt.update(
                max(latest_rtt, 1e-6),
                ack_delay,
                handshake_confirmed=self.handshake_confirmed,
                max_ack_delay=self.peer_max_ack_delay,
            )
        self._detect_lost_packets(space_id, now)
        if acked_bytes:
            self.cc.on_packets_acked(
                now=now,
                acked_bytes=acked_bytes,
                largest_acked_sent_time=largest_acked_sent_time,
                rtt=self.rtt,
                bytes_in_flight=self.bytes_in_flight,
                app_limited=self.app_limited,
            )
        if self.is_client and space_id == SPACE_HANDSHAKE:
            self.peer_completed_address_validation = True
        self.pto_count = 0
        self._update_pacer()
        if self._on_metrics is not None:
            self._on_metrics(now)
        return (newly_largest.packet_number if newly_largest else -1), True

    def on_ecn_congestion(self, now: float) -> None:
        """The peer's CE count went up in the last ACK frame (RFC 9002 §7.1, §B.7).

        A congestion event as for loss, keyed by the send time of the largest packet that ACK
        newly acknowledged, so the controller reduces at most once per recovery period. It is
        a period of its own that spurious-loss undo never reverts (the congestion was real).
        """
        sent_time = self.largest_newly_acked_sent_time
        if sent_time > self.episode.start:
            self.episode.on_lost(now=now, largest_lost_sent_time=sent_time, count=0)
            self.episode.undoable = False
        self.cc.on_congestion_event(now=now, largest_lost_sent_time=sent_time, lost_bytes=0,
                                    bytes_in_flight=self.bytes_in_flight)
        self._update_pacer()

    def _update_pacer(self) -> None:
        if self.rtt.has_sample:
            # A model-based controller (BBR) may set its own rate (congestion/base.py).
            rate: float | None = getattr(self.cc, "pacing_rate", None)
            if rate is not None:
                self.pacer.set_rate(rate=rate, congestion_window=self.cc.congestion_window)
                return
            cwnd = self.cc.congestion_window
            ssthresh = self.cc.ssthresh
            # Slow start paces at 2x (pacer.py): cwnd below half of ssthresh, as Linux decides.
            self.pacer.update_rate(
                congestion_window=cwnd, smoothed_rtt=self.rtt.smoothed_rtt,
                slow_start=ssthresh is None or 2 * cwnd < ssthresh,
            )

    # ----------------------------------------------------------------- loss

    def _loss_rtt(self) -> float:
        rtt = self.rtt
        return max(rtt.latest_rtt, rtt.smoothed_rtt)

    def _detect_lost_packets(self, space_id: int, now: float) -> None:
        """RFC 9002 §A.10, with the adaptive thresholds of :mod:`.reordering`."""
        space = self.spaces[space_id]
        space.loss_time = None
        largest_acked = space.largest_acked
        if largest_acked < 0:
            return
        thresholds = self.thresholds
        rtt = self._loss_rtt()
        loss_delay = max(thresholds.time_threshold * rtt, K_GRANULARITY)
        pn_limit = largest_acked - thresholds.packet_threshold
        lost: list[tuple[SentPacket, str]] = []
        for pn, packet in space.sent.items():
            if pn > largest_acked:
                break
            # Same expression as the armed loss_time, so the timer and the check agree exactly.
            t = packet.sent_time + loss_delay
            if pn <= pn_limit:
                lost.append((packet, "reordering_threshold"))
            elif t <= now:
                lost.append((packet, "time_threshold"))
            elif space.loss_time is None or t < space.loss_time:
                space.loss_time = t
        if lost:
            self._on_packets_lost(space_id, lost, now, rtt)

    def _detect_spurious_losses(
        self, space_id: int, ranges: RangeSet, prior_largest: int, now: float
    ) -> None:
        """Packets declared lost that this ACK acknowledges were delivered after all.

        Their frames are reported delivered (the retransmission, if still queued, is then
        dropped by the stream); the thresholds widen (:class:`.reordering.ReorderingThresholds`)
        and, when every loss of the current congestion episode was spurious, the controller
        undoes its reduction (RFC 9438 §4.9).
        """
        records = self._lost[space_id]
        records.prune(now - LOST_PACKET_MEMORY_PTOS * self.rtt.pto_base())
        undo = False
        for record in records:
            pn = record.packet.packet_number
            if pn not in ranges:
                continue
            records.pop(pn)
            self.thresholds.on_spurious_loss(record, now=now)
            self.thresholds.on_reordering(prior_largest - pn)
            if record.episode >= 0 and self.episode.on_spurious(record.episode):
                undo = True
            for handler, args in record.packet.handlers:
                handler(True, *args)
            if self._on_spurious is not None:
                self._on_spurious(record, now)
        if undo:
            self.cc.on_spurious_congestion(now=now)
            self._update_pacer()

    def _on_packets_lost(
        self, space_id: int, lost: list[tuple[SentPacket, str]], now: float, rtt: float
    ) -> None:
        space = self.spaces[space_id]
        lost_bytes = 0
        lost_in_flight = 0
        largest_sent_time = 0.0
        first_ae: float | None = None
        last_ae = 0.0
        for packet, _ in lost:
            if packet.in_flight and not packet.mtu_probe:
                lost_in_flight += 1
                if packet.sent_time > largest_sent_time:
                    largest_sent_time = packet.sent_time
        episode = -1
        if lost_in_flight:
            episode = self.episode.on_lost(
                now=now, largest_lost_sent_time=largest_sent_time, count=lost_in_flight
            )
        records = self._lost[space_id]
        largest_acked = space.largest_acked
        for packet, trigger in lost:
            del space.sent[packet.packet_number]
            if packet.mtu_probe:
                # RFC 9000 §14.4: a lost PMTU probe says the size is too big, not congestion.
                self.bytes_in_flight -= packet.sent_bytes
                space.ack_eliciting_in_flight -= 1
                for handler, args in packet.handlers:
                    handler(False, *args)
                continue
            if packet.in_flight:
                self.bytes_in_flight -= packet.sent_bytes
                lost_bytes += packet.sent_bytes
                if packet.ack_eliciting:
                    space.ack_eliciting_in_flight -= 1
                    if first_ae is None:
                        first_ae = packet.sent_time
                    last_ae = packet.sent_time
            records.add(LostPacket(packet, lost_time=now, largest_acked=largest_acked, rtt=rtt,
                                   trigger=trigger, episode=episode if packet.in_flight else -1))
            if self._on_lost is not None:
                self._on_lost(packet, trigger)
            if not packet.requeued:
                for handler, args in packet.handlers:
                    handler(False, *args)
        if lost_bytes:
            self.cc.on_congestion_event(
                now=now,
                largest_lost_sent_time=largest_sent_time,
                lost_bytes=lost_bytes,
                bytes_in_flight=self.bytes_in_flight,
            )
            if first_ae is not None and self.rtt.has_sample:
                duration = (
                    self.rtt.smoothed_rtt
                    + max(4 * self.rtt.rttvar, K_GRANULARITY)
                    + self.peer_max_ack_delay
                ) * K_PERSISTENT_CONGESTION_THRESHOLD
                if last_ae - first_ae > duration:
                    self.episode.on_persistent_congestion()
                    self.cc.on_persistent_congestion(now=now)
            self._update_pacer()

    # ---------------------------------------------------------------- timers

    def _pto_time_and_space(self) -> tuple[float | None, int]:
        """RFC 9002 §A.8 GetPtoTimeAndSpace.

        The RFC arms the anti-deadlock timer from "now" when it is set; we derive the same instant
        from the last ack-eliciting send so that the timer is a pure function of the state.
        """
        duration = self.rtt.pto_base() * (2**self.pto_count)
        if self.bytes_in_flight == 0 and not self.peer_completed_address_validation:
            # Anti-deadlock PTO (RFC 9002 §6.2.2.1).
            space_id = SPACE_INITIAL if not self.spaces[SPACE_INITIAL].discarded else SPACE_HANDSHAKE
            last = max(s.time_of_last_ack_eliciting for s in self.spaces)
            return last + duration, space_id
        best: float | None = None
        best_space = SPACE_INITIAL
        for space_id, space in enumerate(self.spaces):
            if space.discarded or space.ack_eliciting_in_flight <= 0:
                continue
            if space_id == SPACE_APPLICATION:
                if not self.handshake_confirmed:
                    break
                duration += self.peer_max_ack_delay * (2**self.pto_count)
            t = space.time_of_last_ack_eliciting + duration
            if best is None or t < best:
                best = t
                best_space = space_id
        return best, best_space

    def get_loss_detection_time(self) -> float | None:
        """When the loss detection timer fires (RFC 9002 §A.8)."""
        earliest: float | None = None
        for space in self.spaces:
            if space.loss_time is not None and (earliest is None or space.loss_time < earliest):
                earliest = space.loss_time
        if earliest is not None:
            return earliest
        if (
            not any(s.ack_eliciting_in_flight > 0 for s in self.spaces if not s.discarded)
            and self.peer_completed_address_validation
        ):
            return None
        t, _ = self._pto_time_and_space()
        return t

    def on_loss_detection_timeout(self, now: float) -> int | None:
        """Handle the timer (RFC 9002 §A.9). Returns the space needing PTO probes, or None."""
        earliest_space: int | None = None
        earliest: float | None = None
        for space_id, space in enumerate(self.spaces):
            if space.loss_time is not None and (earliest is None or space.loss_time < earliest):
                earliest = space.loss_time
                earliest_space = space_id
        if earliest_space is not None:
            self._detect_lost_packets(earliest_space, now)
            return None
        _, space_id = self._pto_time_and_space()
        self.pto_count += 1
        self._requeue_for_probe(space_id)
        # RFC 9002 §6.2.4: "the sender SHOULD send ack-eliciting packets from other packet number
        # spaces with in-flight data, coalescing packets if possible". Done for a Handshake PTO
        # with 1-RTT data in flight: a client whose Finished and first 1-RTT packets went out
        # before a NAT rebinding must reach the server, which has discarded its Handshake keys,
        # with a 1-RTT packet from the new address (RFC 9000 §9.3). (Not for an Initial PTO:
        # 0-RTT data there would crowd the ClientHello out of the two probe datagrams.)
        app = self.spaces[SPACE_APPLICATION]
        if space_id == SPACE_HANDSHAKE and not app.discarded and app.ack_eliciting_in_flight > 0:
            self._requeue_for_probe(SPACE_APPLICATION)
        return space_id

    def _requeue_for_probe(self, space_id: int) -> None:
        """Re-queue the data of the two oldest unacknowledged packets so probes carry it."""
        count = 0
        for packet in self.spaces[space_id].sent.values():
            if packet.ack_eliciting and not packet.requeued and not packet.mtu_probe:
                packet.requeued = True
                for handler, args in packet.handlers:
                    handler(False, *args)
                count += 1
                if count == 2:
                    break

    def forget_sent(self, space_id: int) -> None:
        """Forget every packet sent in a space, as if never sent (RFC 9000 §17.2.5.2: after a Retry
        the client resends its first flight; packet numbers go on, the space stays in use)."""
        space = self.spaces[space_id]
        for packet in space.sent.values():
            if packet.in_flight:
                self.bytes_in_flight -= packet.sent_bytes
        space.sent.clear()
        self._lost[space_id].clear()
        space.ack_eliciting_in_flight = 0

    def abandon_packets(self, space_id: int, packet_type: str) -> None:
        """Forget the packets of one type in a space and owe their frames again, without a
        congestion event: 0-RTT packets the server rejected (RFC 9001 §4.6.2, RFC 9002 §6.4)."""
        space = self.spaces[space_id]
        for packet in [p for p in space.sent.values() if p.packet_type == packet_type]:
            del space.sent[packet.packet_number]
            if packet.in_flight:
                self.bytes_in_flight -= packet.sent_bytes
                self.cc.on_packets_discarded(discarded_bytes=packet.sent_bytes)
                if packet.ack_eliciting:
                    space.ack_eliciting_in_flight -= 1
            if not packet.requeued:
                for handler, args in packet.handlers:
                    handler(False, *args)

    def discard_space(self, space_id: int) -> None:
        """Drop all state of a space whose keys were discarded (RFC 9002 §6.4)."""
        space = self.spaces[space_id]
        removed = 0
        for packet in space.sent.values():
            if packet.in_flight:
                removed += packet.sent_bytes
        self.bytes_in_flight -= removed
        self.cc.on_packets_discarded(discarded_bytes=removed)
        space.sent.clear()
        self._lost[space_id].clear()
        space.ack_eliciting_in_flight = 0
        space.loss_time = None
        space.discarded = True
        self.pto_count = 0
