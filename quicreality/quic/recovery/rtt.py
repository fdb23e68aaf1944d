"""RTT estimation (RFC 9002 §5) and the PTO base (RFC 9002 §6.2.1).

One :class:`RttEstimator` per connection (per path). Loss detection feeds it one
RTT sample per ACK frame whose largest acknowledged packet is newly acknowledged
and ack-eliciting (RFC 9002 §5.1), and reads ``smoothed_rtt``, ``rttvar``,
``latest_rtt`` and ``min_rtt`` as plain attributes.

Sans-IO: times are seconds as ``float`` supplied by the caller; nothing here
reads a clock.
"""

from __future__ import annotations

from typing import Final

__all__ = ["K_GRANULARITY", "K_INITIAL_RTT", "RttEstimator"]

K_INITIAL_RTT: Final = 0.333
"""Initial RTT in seconds before any sample (RFC 9002 §6.2.2, Appendix A.2)."""

K_GRANULARITY: Final = 0.001
"""System timer granularity in seconds (RFC 9002 §6.1.2, Appendix A.2)."""


class RttEstimator:
    """Maintains min_rtt, smoothed_rtt and rttvar from RTT samples (RFC 9002 §5).

    Attributes:
        latest_rtt: The most recent RTT sample, unadjusted (RFC 9002 §5.1);
            0.0 before the first sample.
        smoothed_rtt: Exponentially weighted moving average (RFC 9002 §5.3);
            ``initial_rtt`` before the first sample.
        rttvar: RTT variation (RFC 9002 §5.3); ``initial_rtt / 2`` before the
            first sample.
        min_rtt: Minimum RTT seen, without ack-delay adjustment (RFC 9002 §5.2);
            0.0 before the first sample, as in RFC 9002 Appendix A.4.
        path_rtt: The most recent sample less the peer's ACK Delay (capped as in RFC 9002
            §5.3), clamped at ``min_rtt`` instead of RFC 9002 §5.3's "not adjusted at all" when
            the difference would fall below it: the path's RTT without the receiver's
            delayed-ACK wait, for delay-based decisions (HyStart++); 0.0 before the first
            sample. A 1452-byte datagram's sample acknowledged by the 25 ms timer is
            ``min_rtt`` (set by small handshake packets) + 25 ms less its serialisation time
            lead, so §5.3's rule would keep the whole 25 ms in it.
        has_sample: Whether at least one sample has been taken.
    """

    __slots__ = ("latest_rtt", "path_rtt", "smoothed_rtt", "rttvar", "min_rtt", "has_sample")

    def __init__(self, initial_rtt: float = K_INITIAL_RTT) -> None:
        """Create an estimator in the pre-sample state (RFC 9002 §5.3, Appendix A.4).

        Args:
            initial_rtt: RTT assumed before the first sample, in seconds; for
                example a value remembered from an earlier connection
                (RFC 9002 §6.2.2).
        """
        self.reset(initial_rtt)

    def reset(self, initial_rtt: float = K_INITIAL_RTT) -> None:
        """Go back to the pre-sample state of a new estimator, in place (a new path, RFC 9000
        §9.4): the connection's parts hold this object, and re-running ``__init__`` on a
        mypyc-compiled instance does nothing."""
        self.latest_rtt: float = 0.0
        self.path_rtt: float = 0.0
        self.smoothed_rtt: float = initial_rtt
        self.rttvar: float = initial_rtt / 2.0
        self.min_rtt: float = 0.0
        self.has_sample: bool = False

    def update(
        self,
        latest_rtt: float,
        ack_delay: float,
        *,
        handshake_confirmed: bool,
        max_ack_delay: float,
    ) -> None:
        """Take one RTT sample (RFC 9002 §5.2, §5.3, Appendix A.7).

        Args:
            latest_rtt: ``ack_time - sent_time_of_largest_acked`` in seconds.
            ack_delay: The peer-reported ACK Delay, decoded to seconds. Pass 0.0
                for Initial-space ACKs (RFC 9002 §5.3 allows ignoring it there).
            handshake_confirmed: Once true, ``ack_delay`` is capped at
                ``max_ack_delay`` (RFC 9002 §5.3).
            max_ack_delay: The peer's max_ack_delay transport parameter in
                seconds (RFC 9000 §18.2).
        """
        self.latest_rtt = latest_rtt
        if not self.has_sample:
            # First sample (RFC 9002 §5.3): no ack-delay adjustment.
            self.has_sample = True
            self.min_rtt = latest_rtt
            self.path_rtt = latest_rtt
            self.smoothed_rtt = latest_rtt
            self.rttvar = latest_rtt / 2.0
            return

        # min_rtt ignores ack delay (RFC 9002 §5.2).
        min_rtt = self.min_rtt
        if latest_rtt < min_rtt:
            min_rtt = self.min_rtt = latest_rtt

        # RFC 9002 §5.3: cap ack_delay after handshake confirmation, and only
        # subtract it when the result does not go below min_rtt.
        if handshake_confirmed and ack_delay > max_ack_delay:
            ack_delay = max_ack_delay
        adjusted_rtt = latest_rtt
        if latest_rtt >= min_rtt + ack_delay:
            adjusted_rtt = latest_rtt - ack_delay
        path_rtt = latest_rtt - ack_delay
        self.path_rtt = path_rtt if path_rtt > min_rtt else min_rtt

        smoothed = self.smoothed_rtt
        self.rttvar = 0.75 * self.rttvar + 0.25 * abs(smoothed - adjusted_rtt)
        self.smoothed_rtt = 0.875 * smoothed + 0.125 * adjusted_rtt

    def pto_base(self) -> float:
        """Return ``smoothed_rtt + max(4 * rttvar, kGranularity)`` (RFC 9002 §6.2.1).

        The caller adds the peer's ``max_ack_delay`` for the Application Data
        space and applies the exponential backoff.
        """
        var = 4.0 * self.rttvar
        return self.smoothed_rtt + (var if var > K_GRANULARITY else K_GRANULARITY)
