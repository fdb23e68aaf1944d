"""A token-bucket pacer (RFC 9002 §7.7).

The rate is ``N * congestion_window / smoothed_rtt`` with ``N = 1.25`` so that
the window can still be filled within an RTT despite timer and scheduling
delays, and ``N = 2`` in slow start: there each acknowledged byte adds one to
the window, so a window's worth of ACKs lets the sender put twice the window
out in the next round trip, and at 1.25 the pacer (not the window) would cap
growth at about 1.9x per round trip. RFC 9002 §7.7 leaves ``N`` to the sender
("for example, 1.25"); 2 in slow start is Linux TCP's ``tcp_pacing_ss_ratio``
(200 %), and Chromium's QUIC CUBIC sender also paces slow start at twice its
rate. "Slow start" is the caller's call (:mod:`.loss`: cwnd below half of
ssthresh, as Linux decides). The bucket holds at most a burst of about the
initial window (never more than the congestion window, never less than the
minimum window), so an idle sender does not accumulate unbounded credit.

Credit is counted in bytes. A full-sized datagram may be sent once the bucket
holds ``max_datagram_size`` bytes; until :meth:`Pacer.update_rate` has been
called the pacer does not delay anything. Controllers that compute their own
pacing rate (BBR) set it with :meth:`Pacer.set_rate` instead; the burst
allowance is the same.
"""

from __future__ import annotations

from typing import Final

from .congestion.base import K_INITIAL_WINDOW_PACKETS, K_MINIMUM_WINDOW_PACKETS

__all__ = ["K_PACING_GAIN", "K_PACING_GAIN_SLOW_START", "Pacer"]

K_PACING_GAIN: Final = 1.25
"""``N`` in ``rate = N * congestion_window / smoothed_rtt`` (RFC 9002 §7.7)."""

K_PACING_GAIN_SLOW_START: Final = 2.0
"""``N`` while the window is below half of ssthresh (RFC 9002 §7.7 leaves ``N`` open; Linux's
``tcp_pacing_ss_ratio`` is 200 %): slow start doubles the window per round trip."""

K_PACER_BURST_PACKETS: Final = K_INITIAL_WINDOW_PACKETS
"""Bucket size in datagrams: a burst no larger than the initial window (RFC 9002 §7.7)."""

_CREDIT_TOLERANCE: Final = 1.0
"""Bytes of float rounding forgiven when comparing credit to a datagram size."""

PACER_TICK: Final = 0.002
"""Timer resolution the burst allowance covers: asyncio/epoll wake-ups are ~1 ms apart, plus 1 ms
of scheduling slack (quic-go sizes its burst the same way)."""


class Pacer:
    """Token-bucket pacer; see the module docstring.

    Attributes:
        rate: Pacing rate in bytes per second; 0.0 until the first ``update_rate``
            or ``set_rate``.
        capacity: Bucket size in bytes.
        credit: Bytes that may be sent without waiting, as of ``last_update``.
        last_update: Time ``credit`` was last brought up to date, or ``None``.
    """

    __slots__ = ("rate", "capacity", "credit", "last_update", "_max_datagram_size")

    def __init__(self, *, max_datagram_size: int) -> None:
        """Create a pacer with a full bucket and no rate yet.

        Args:
            max_datagram_size: The sender's maximum datagram size in bytes.
        """
        self.reset(max_datagram_size=max_datagram_size)

    def reset(self, *, max_datagram_size: int) -> None:
        """Go back to the state of a new pacer, in place (a new path, RFC 9000 §9.4): the
        connection's send path holds this object, and re-running ``__init__`` on a
        mypyc-compiled instance does nothing."""
        self._max_datagram_size = max_datagram_size
        self.rate: float = 0.0
        self.capacity: float = float(K_PACER_BURST_PACKETS * max_datagram_size)
        self.credit: float = self.capacity
        self.last_update: float | None = None

    def update_rate(self, *, congestion_window: int, smoothed_rtt: float,
                    slow_start: bool = False) -> None:
        """Set the rate to ``N * congestion_window / smoothed_rtt`` (RFC 9002 §7.7).

        ``N`` is :data:`K_PACING_GAIN_SLOW_START` when ``slow_start`` is true, else
        :data:`K_PACING_GAIN`. Call whenever the congestion window or smoothed RTT changes
        (e.g. after each ACK frame). A non-positive ``smoothed_rtt`` disables pacing.
        """
        gain = K_PACING_GAIN_SLOW_START if slow_start else K_PACING_GAIN
        self.set_rate(
            rate=gain * congestion_window / smoothed_rtt if smoothed_rtt > 0.0 else 0.0,
            congestion_window=congestion_window,
        )

    def set_rate(self, *, rate: float, congestion_window: int) -> None:
        """Pace at ``rate`` bytes per second, as chosen by the congestion controller.

        For controllers with their own pacing model (BBR's ``pacing_rate``,
        draft-cardwell-iccrg-bbr §4.2.1). The bucket is sized as in
        :meth:`update_rate` (burst logic, PACER_TICK). A non-positive ``rate``
        disables pacing.
        """
        mds = self._max_datagram_size
        self.rate = rate if rate > 0.0 else 0.0
        capacity = K_PACER_BURST_PACKETS * mds
        # A timer cannot wake us more precisely than PACER_TICK: let one tick's worth of bytes
        # go out as a burst, or fast paths are capped at ~10 packets per tick (quic-go does the same).
        tick_bytes = self.rate * PACER_TICK
        if tick_bytes > capacity:
            capacity = int(tick_bytes)
        if congestion_window < capacity:
            capacity = congestion_window
        floor = K_MINIMUM_WINDOW_PACKETS * mds
        if capacity < floor:
            capacity = floor
        self.capacity = float(capacity)
        if self.credit > capacity:
            self.credit = float(capacity)

    def next_send_time(self, now: float) -> float | None:
        """Return when the next full-sized datagram may be sent, or ``None`` for now.

        The returned time is never earlier than ``now``. Does not change state.
        """
        rate = self.rate
        if rate <= 0.0:
            return None
        credit = self.credit
        last = self.last_update
        if last is not None and now > last:
            credit += (now - last) * rate
        needed = self._max_datagram_size
        if credit >= needed - _CREDIT_TOLERANCE:
            return None
        return now + (needed - credit) / rate

    def on_packet_sent(self, *, now: float, sent_bytes: int) -> None:
        """Spend ``sent_bytes`` of credit for a packet sent at ``now``.

        Credit may go negative (a packet sent regardless of the pacer, e.g. a
        probe) and is then repaid before the next paced send, but the debt is
        bounded by one bucket.
        """
        credit = self.credit
        last = self.last_update
        if last is not None and now > last:
            credit += (now - last) * self.rate
        capacity = self.capacity
        if credit > capacity:
            credit = capacity
        credit -= sent_bytes
        if credit < -capacity:
            credit = -capacity
        self.credit = credit
        if last is None or now > last:
            self.last_update = now
