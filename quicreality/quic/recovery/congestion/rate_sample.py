"""Delivery-rate sampling for model-based controllers (draft-ietf-ccwg-bbr §4.1, "DRS" below).

The controller interface (:mod:`.base`) reports sends and ACK frames only in aggregate, so the
sampler keeps its own per-packet records, keyed by send time: the connection's delivered count,
delivered time and first-sent time when the packet left (DRS "P.delivered" and friends), the
bytes in flight including it (``P.tx_in_flight``) and the bytes lost so far (``P.lost``). An ACK
frame's sample is taken from the record of its largest newly acknowledged packet. A second,
shorter log answers the per-loss question of BBRv3 ("what was in flight, and lost, when this lost
packet was sent?", ``HandleLostPacket``) for the largest packet of a loss-detection pass.
"""

from __future__ import annotations

from collections import deque

__all__ = ["DELIVERY_HISTORY_LEN", "DeliveryRateSampler", "LossRecord", "RateSample"]

DELIVERY_HISTORY_LEN = 16384
"""Bound on per-packet records kept for rate sampling (DRS "Per-packet (P) state")."""


class RateSample:
    """One ACK frame's rate sample (DRS "Rate Sample (rs) Output").

    Attributes:
        delivery_rate: Bytes per second, or ``-1.0`` when the sample is invalid (no record, or
            an interval below the minimum RTT).
        delivered: Bytes delivered between the sampled packet's send and this ACK (rs.delivered).
        prior_delivered: The sampled packet's ``P.delivered``; ``-1`` without a record.
        tx_in_flight: Bytes in flight when the sampled packet was sent (rs.tx_in_flight).
        lost: Bytes declared lost since the sampled packet was sent (rs.lost).
        is_app_limited: Whether the sample was taken while application-limited.
        rtt: ``now`` minus the sampled packet's send time (rs.rtt).
        newly_acked: In-flight bytes newly acknowledged by this ACK frame (rs.newly_acked).
    """

    __slots__ = ("delivery_rate", "delivered", "prior_delivered", "tx_in_flight", "lost",
                 "is_app_limited", "rtt", "newly_acked")

    def __init__(self, *, delivery_rate: float, delivered: int, prior_delivered: int,
                 tx_in_flight: int, lost: int, is_app_limited: bool, rtt: float,
                 newly_acked: int) -> None:
        """Hold the fields of one sample."""
        self.delivery_rate = delivery_rate
        self.delivered = delivered
        self.prior_delivered = prior_delivered
        self.tx_in_flight = tx_in_flight
        self.lost = lost
        self.is_app_limited = is_app_limited
        self.rtt = rtt
        self.newly_acked = newly_acked


LossRecord = tuple[float, int, int, bool]
"""(send time, ``P.tx_in_flight``, ``P.lost``, ``P.is_app_limited``) of one sent packet."""


class DeliveryRateSampler:
    """The connection-level (C) state of delivery-rate sampling and its per-packet records.

    Attributes:
        delivered: Total bytes acknowledged (C.delivered).
        lost: Total bytes declared lost (C.lost).
    """

    __slots__ = ("delivered", "lost", "_delivered_time", "_first_sent_time",
                 "_app_limited_until", "_records", "_loss_log")

    def __init__(self) -> None:
        """Start with nothing sent."""
        self.delivered = 0
        self.lost = 0
        self._delivered_time = 0.0
        self._first_sent_time = 0.0
        self._app_limited_until = 0
        # (sent_time, delivered, delivered_time, first_sent_time, app_limited, tx_in_flight, lost)
        self._records: deque[tuple[float, int, float, float, bool, int, int]] = deque(
            maxlen=DELIVERY_HISTORY_LEN)
        self._loss_log: deque[LossRecord] = deque(maxlen=DELIVERY_HISTORY_LEN)

    @property
    def app_limited(self) -> bool:
        """True while an application-limited bubble is in flight (DRS C.app_limited != 0)."""
        return self._app_limited_until != 0

    def mark_app_limited(self, bytes_in_flight: int) -> None:
        """MarkConnectionAppLimited: samples until the data now in flight is delivered are
        application-limited (DRS "Detecting application-limited phases")."""
        self._app_limited_until = (self.delivered + bytes_in_flight) or 1

    def on_sent(self, now: float, bytes_in_flight: int, sent_bytes: int) -> None:
        """Record a sent in-flight packet; ``bytes_in_flight`` includes it (DRS "Transmitting")."""
        if bytes_in_flight <= sent_bytes:
            # The pipe was empty: a new flight starts now.
            self._first_sent_time = now
            self._delivered_time = now
        app_limited = self._app_limited_until != 0
        self._records.append((now, self.delivered, self._delivered_time, self._first_sent_time,
                              app_limited, bytes_in_flight, self.lost))
        self._loss_log.append((now, bytes_in_flight, self.lost, app_limited))

    def on_acked(self, *, now: float, acked_bytes: int, largest_acked_sent_time: float,
                 bytes_in_flight: int, app_limited: bool, min_rtt: float,
                 loss_horizon: float) -> RateSample:
        """Take the sample of one ACK frame (DRS "Upon receiving an ACK").

        Args:
            now: When the ACK frame was processed.
            acked_bytes: Newly acknowledged in-flight bytes.
            largest_acked_sent_time: Send time of the largest newly acknowledged packet.
            bytes_in_flight: Bytes in flight after the ACK.
            app_limited: The sender's RFC 9002 §7.8 flag; it starts a bubble as DRS's
                C.app_limited marker does.
            min_rtt: The controller's minimum RTT (``inf`` before one); shorter intervals are
                not valid samples (DRS "Delivery Rate").
            loss_horizon: Loss records of packets sent more than this many seconds ago are
                dropped: loss detection has decided them by then.
        """
        self.delivered += acked_bytes
        self._delivered_time = now
        if self._app_limited_until and self.delivered > self._app_limited_until:
            self._app_limited_until = 0
        if app_limited:
            self._app_limited_until = (self.delivered + bytes_in_flight) or 1
        log = self._loss_log
        limit = now - loss_horizon
        while log and log[0][0] < limit:
            log.popleft()
        rtt_sample = now - largest_acked_sent_time
        records = self._records
        # Drop records of packets sent before the acknowledged one; of equal send times keep
        # the last (it has the largest delivered count: conservative).
        while len(records) > 1 and records[1][0] <= largest_acked_sent_time:
            records.popleft()
        if not records or records[0][0] > largest_acked_sent_time:
            return RateSample(delivery_rate=-1.0, delivered=0, prior_delivered=-1,
                              tx_in_flight=0, lost=0, is_app_limited=app_limited,
                              rtt=rtt_sample, newly_acked=acked_bytes)
        sent_time, delivered, delivered_time, first_sent_time, rec_app, tx_in_flight, lost = (
            records[0])
        self._first_sent_time = sent_time
        # The slower of the send and ACK rates guards against ACK compression (DRS §"Delivery
        # Rate").
        interval = max(sent_time - first_sent_time, now - delivered_time)
        rs_delivered = self.delivered - delivered
        rate = -1.0
        if interval > 0.0 and interval >= min(min_rtt, rtt_sample):
            rate = rs_delivered / interval
        return RateSample(delivery_rate=rate, delivered=rs_delivered, prior_delivered=delivered,
                          tx_in_flight=tx_in_flight, lost=self.lost - lost,
                          is_app_limited=rec_app or app_limited, rtt=rtt_sample,
                          newly_acked=acked_bytes)

    def on_lost(self, lost_bytes: int) -> None:
        """Count bytes declared lost (C.lost)."""
        self.lost += lost_bytes

    def lost_packet(self, sent_time: float) -> LossRecord | None:
        """Return the record of the packet sent at ``sent_time``, or ``None`` if it is gone.

        Loss detection declares packets lost in send order, so records sent before it are
        dropped on the way.
        """
        log = self._loss_log
        while len(log) > 1 and log[1][0] <= sent_time:
            log.popleft()
        if log and log[0][0] == sent_time:
            return log[0]
        return None
