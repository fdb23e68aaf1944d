"""The narrow congestion-control interface and the registry of controllers.

Loss detection (``recovery/loss.py``) drives a controller with six keyword-only
verbs and reads two plain attributes; nothing else crosses the boundary (the
architecture notes record quiche's regret over a 40-method trait):

* ``on_packet_sent`` for every in-flight packet sent;
* ``on_packets_acked`` once per ACK frame, with the aggregate of newly
  acknowledged in-flight bytes;
* ``on_congestion_event`` once per loss-detection pass that declared in-flight
  packets lost (or an ECN-CE increase, RFC 9002 §7.1);
* ``on_persistent_congestion`` after ``on_congestion_event`` of the same pass,
  when RFC 9002 §7.6 declares persistent congestion;
* ``on_packets_discarded`` when a key discard drops bytes from flight;
* ``on_spurious_congestion`` when every packet declared lost in the current
  recovery period was acknowledged after all (RFC 9438 §4.9): the reduction
  made by that period's ``on_congestion_event`` is undone.

``bytes_in_flight`` arguments are the caller's count: for ``on_packet_sent`` the
value *including* this packet; for the other verbs the value *after* the
acknowledged/lost bytes were removed. The controller never keeps its
own copy. The sender may send while ``bytes_in_flight < congestion_window``
(RFC 9002 §7).

One optional attribute: a controller that paces from its own model (BBR)
exposes ``pacing_rate: float | None`` in bytes per second
(:class:`PacedCongestionController`); while it is not ``None`` loss detection
gives it to the pacer as is. Controllers without the attribute (NewReno,
CUBIC), or with ``None``, are paced at ``1.25 * congestion_window /
smoothed_rtt`` (RFC 9002 §7.7).

Controllers are registered by name and built with
:func:`create_congestion_controller`.
"""

from __future__ import annotations

from typing import Protocol

from ..rtt import RttEstimator

__all__ = [
    "CONGESTION_CONTROLLERS",
    "K_INITIAL_WINDOW_PACKETS",
    "K_LOSS_REDUCTION_FACTOR",
    "K_MINIMUM_WINDOW_PACKETS",
    "CongestionController",
    "CongestionControllerFactory",
    "PacedCongestionController",
    "create_congestion_controller",
    "initial_window",
    "minimum_window",
    "register_congestion_controller",
]

K_INITIAL_WINDOW_PACKETS = 10
"""Initial window in datagrams, further capped at 14720 bytes (RFC 9002 §7.2)."""

K_INITIAL_WINDOW_BYTES_CAP = 14720
"""Byte cap of the initial window: min(10*mds, max(14720, 2*mds)) (RFC 9002 §7.2)."""

K_MINIMUM_WINDOW_PACKETS = 2
"""Minimum congestion window in datagrams (RFC 9002 §7.2, Appendix B.2)."""

K_LOSS_REDUCTION_FACTOR = 0.5
"""NewReno multiplicative decrease on a congestion event (RFC 9002 §7.3.2, Appendix B.2)."""


def initial_window(max_datagram_size: int) -> int:
    """Return the initial congestion window in bytes (RFC 9002 §7.2).

    Args:
        max_datagram_size: The sender's current maximum datagram size in bytes.
    """
    return min(
        K_INITIAL_WINDOW_PACKETS * max_datagram_size,
        max(K_INITIAL_WINDOW_BYTES_CAP, K_MINIMUM_WINDOW_PACKETS * max_datagram_size),
    )


def minimum_window(max_datagram_size: int) -> int:
    """Return the minimum congestion window in bytes (RFC 9002 §7.2).

    Args:
        max_datagram_size: The sender's current maximum datagram size in bytes.
    """
    return K_MINIMUM_WINDOW_PACKETS * max_datagram_size


class CongestionController(Protocol):
    """What loss detection needs from a congestion controller (RFC 9002 §7).

    Attributes:
        congestion_window: Bytes the sender may have in flight.
        ssthresh: Slow start threshold in bytes; ``None`` means infinite
            (RFC 9002 Appendix B.3).
    """

    congestion_window: int
    ssthresh: int | None

    def on_packet_sent(self, *, now: float, sent_bytes: int, bytes_in_flight: int) -> None:
        """Note an in-flight packet of ``sent_bytes`` sent at ``now``.

        ``bytes_in_flight`` already includes this packet.
        """

    def on_packets_acked(
        self,
        *,
        now: float,
        acked_bytes: int,
        largest_acked_sent_time: float,
        rtt: RttEstimator,
        bytes_in_flight: int,
        app_limited: bool,
    ) -> None:
        """Grow the window for one ACK frame (RFC 9002 §7.3, Appendix B.5).

        Args:
            now: Time the ACK frame was processed.
            acked_bytes: Sum of ``sent_bytes`` of newly acknowledged in-flight packets.
            largest_acked_sent_time: Send time of the largest newly acknowledged
                packet; acknowledgements of packets sent before the current
                recovery period started do not grow the window.
            rtt: The connection's RTT estimator, already updated with this ACK.
            bytes_in_flight: Bytes in flight after removing the acknowledged packets.
            app_limited: True when the window was not fully used (RFC 9002 §7.8);
                the window is then not increased.
        """

    def on_congestion_event(
        self,
        *,
        now: float,
        largest_lost_sent_time: float,
        lost_bytes: int,
        bytes_in_flight: int,
    ) -> None:
        """React to loss (or ECN-CE) found in one detection pass (RFC 9002 §7.3.2).

        Ignored when ``largest_lost_sent_time`` is not after the start of the
        current recovery period, so one window of losses reduces only once.
        """

    def on_persistent_congestion(self, *, now: float) -> None:
        """Collapse to the minimum window (RFC 9002 §7.6.2).

        Call after ``on_congestion_event`` for the same detection pass.
        """

    def on_packets_discarded(self, *, discarded_bytes: int) -> None:
        """Note that a key discard removed in-flight bytes (RFC 9002 §6.4); usually a no-op."""

    def on_spurious_congestion(self, *, now: float) -> None:
        """Undo the last reduction: all losses of its recovery period were spurious.

        Restores the window and state saved by the ``on_congestion_event`` that
        began the current recovery period (RFC 9438 §4.9), and ends that period.
        Never called after ``on_persistent_congestion`` in the same period.
        """


class PacedCongestionController(CongestionController, Protocol):
    """A controller that also sets the pacing rate (e.g. BBR, draft-cardwell-iccrg-bbr §4.2.1).

    Not required by loss detection: it reads ``pacing_rate`` with ``getattr``
    and falls back to the RFC 9002 §7.7 rate when it is absent or ``None``.

    Attributes:
        pacing_rate: Bytes per second to pace at, or ``None`` for the RFC 9002
            §7.7 default.
    """

    pacing_rate: float | None


class CongestionControllerFactory(Protocol):
    """A callable (usually the controller class) that builds a controller."""

    def __call__(self, *, max_datagram_size: int) -> CongestionController:
        """Build a controller for a sender using ``max_datagram_size``-byte datagrams."""
        ...


class SeededControllerFactory(Protocol):
    """A factory that also takes a per-connection ``seed`` (BBR's PROBE_BW start phase)."""

    def __call__(self, *, max_datagram_size: int, seed: int) -> CongestionController:
        """Build a controller; ``seed`` drives its deterministic random draws."""
        ...


CONGESTION_CONTROLLERS: dict[str, CongestionControllerFactory] = {}
"""Registered controllers by name, e.g. ``"newreno"``, ``"cubic"`` and ``"bbr"``."""

_SEEDED: dict[str, SeededControllerFactory] = {}


def register_congestion_controller(name: str, factory: CongestionControllerFactory, *,
                                   seeded: SeededControllerFactory | None = None) -> None:
    """Register ``factory`` (usually a class) under ``name``; ``seeded``: the same factory when
    it takes a ``seed`` (then :func:`create_congestion_controller` passes one).

    Raises:
        ValueError: if ``name`` is already registered to a different factory.
    """
    existing = CONGESTION_CONTROLLERS.get(name)
    if existing is not None and existing is not factory:
        raise ValueError(f"congestion controller {name!r} is already registered")
    CONGESTION_CONTROLLERS[name] = factory
    if seeded is not None:
        _SEEDED[name] = seeded


def create_congestion_controller(name: str, *, max_datagram_size: int,
                                 seed: int = 0) -> CongestionController:
    """Build the controller registered as ``name``.

    Args:
        name: A key of :data:`CONGESTION_CONTROLLERS`, e.g. ``"newreno"``, ``"cubic"`` or ``"bbr"``.
        max_datagram_size: The sender's maximum datagram size in bytes.
        seed: Per-connection randomness for controllers that draw any (BBR's start phase,
            draft-ietf-ccwg-bbr §5.3.3.6); the connection derives it from its config's rng.

    Raises:
        ValueError: if ``name`` is unknown; the message lists the known names.
    """
    try:
        factory = CONGESTION_CONTROLLERS[name]
    except KeyError:
        known = ", ".join(sorted(CONGESTION_CONTROLLERS))
        raise ValueError(
            f"unknown congestion controller {name!r}; known: {known}"
        ) from None
    seeded = _SEEDED.get(name)
    if seeded is not None:
        return seeded(max_datagram_size=max_datagram_size, seed=seed)
    return factory(max_datagram_size=max_datagram_size)
