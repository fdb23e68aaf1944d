"""The qlog sink the connection talks to: a narrow typed protocol, always present.

The QUIC connection holds a :class:`QlogSink` at all times (a :class:`NullSink` by default), so
it never needs ``if logger is not None`` guards. Every method takes ``now`` first: seconds on the
core's clock (the same ``now`` passed to ``receive_datagram`` / ``handle_timer``), never the
wall clock. Durations (RTTs, ack delay) are passed in seconds; writers convert to milliseconds.

Frames are passed as dicts in the qlog 0.3 shape (``{"frame_type": "stream", "stream_id": 0,
"offset": 0, "length": 1200, "fin": False}``); build them with the helpers below and only when
``sink.wants_frames`` is true. Writers convert the shape for other flavours.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, Protocol

Owner = Literal["local", "remote"]
Address = tuple[str, int]
FrameDict = dict[str, Any]


class QlogSink(Protocol):
    """What the connection calls. All methods return ``None`` and must be cheap."""

    @property
    def wants_frames(self) -> bool:
        """True if ``frames`` lists passed to packet events are used (else pass ``None``)."""
        ...

    def packet_sent(
        self,
        now: float,
        packet_type: str,
        packet_number: int,
        length: int,
        frames: list[FrameDict] | None,
    ) -> None:
        """A packet was sent. ``packet_type``: initial, handshake, 0RTT, 1RTT, retry, version_negotiation."""
        ...

    def packet_received(
        self,
        now: float,
        packet_type: str,
        packet_number: int,
        length: int,
        frames: list[FrameDict] | None,
    ) -> None:
        """A packet was received and decrypted."""
        ...

    def packet_lost(self, now: float, packet_type: str, packet_number: int, trigger: str) -> None:
        """Recovery declared a packet lost (trigger: reordering_threshold, time_threshold, pto_expired)."""
        ...

    def metrics_updated(
        self,
        now: float,
        *,
        min_rtt: float,
        smoothed_rtt: float,
        latest_rtt: float,
        rtt_variance: float,
        congestion_window: int,
        bytes_in_flight: int,
        ssthresh: int | None = None,
        pacing_rate: float | None = None,
    ) -> None:
        """Recovery metrics (RTTs in seconds, sizes in bytes, pacing rate in bit/s)."""
        ...

    def congestion_state_updated(
        self, now: float, old: str | None, new: str, trigger: str | None = None
    ) -> None:
        """The congestion controller changed state (e.g. slow_start -> congestion_avoidance)."""
        ...

    def parameters_set(self, now: float, owner: Owner, params: dict[str, Any]) -> None:
        """Transport parameters (qlog field names; bytes values are logged as hex)."""
        ...

    def connection_state_updated(self, now: float, old: str | None, new: str) -> None:
        """Connection state change (attempted, handshake_started, handshake_complete, closed, ...)."""
        ...

    def connection_started(
        self,
        now: float,
        src: Address | None,
        dst: Address | None,
        version: int,
        scid: bytes,
        dcid: bytes,
    ) -> None:
        """The connection started; ``src``/``scid`` are ours, ``dst``/``dcid`` the peer's."""
        ...

    def connection_closed(
        self,
        now: float,
        owner: Owner,
        error_code: int,
        reason: str,
        *,
        is_application: bool = False,
        trigger: str | None = None,
    ) -> None:
        """The connection closed (``owner`` = who closed it)."""
        ...

    def key_updated(
        self, now: float, key_type: str, trigger: str, *, key_phase: int | None = None
    ) -> None:
        """Keys installed or updated (key_type e.g. client_1rtt_secret; trigger
        tls/local_update/remote_update)."""
        ...

    def version_information(self, now: float, *, client_versions: Iterable[int],
                            server_versions: Iterable[int], chosen: int) -> None:
        """The versions each side listed in version_information and the chosen one (RFC 9368)."""
        ...

    def custom(self, now: float, name: str, data: dict[str, Any]) -> None:
        """A project-specific event, e.g. ``reality:verdict``; ``name`` is written verbatim."""
        ...

    def close(self) -> None:
        """Flush and release; further calls are ignored."""
        ...


class NullSink:
    """A sink that drops everything (the default)."""

    wants_frames = False

    def packet_sent(
        self,
        now: float,
        packet_type: str,
        packet_number: int,
        length: int,
        frames: list[FrameDict] | None,
    ) -> None:
        """Drop."""

    def packet_received(
        self,
        now: float,
        packet_type: str,
        packet_number: int,
        length: int,
        frames: list[FrameDict] | None,
    ) -> None:
        """Drop."""

    def packet_lost(self, now: float, packet_type: str, packet_number: int, trigger: str) -> None:
        """Drop."""

    def metrics_updated(
        self,
        now: float,
        *,
        min_rtt: float,
        smoothed_rtt: float,
        latest_rtt: float,
        rtt_variance: float,
        congestion_window: int,
        bytes_in_flight: int,
        ssthresh: int | None = None,
        pacing_rate: float | None = None,
    ) -> None:
        """Drop."""

    def congestion_state_updated(
        self, now: float, old: str | None, new: str, trigger: str | None = None
    ) -> None:
        """Drop."""

    def parameters_set(self, now: float, owner: Owner, params: dict[str, Any]) -> None:
        """Drop."""

    def connection_state_updated(self, now: float, old: str | None, new: str) -> None:
        """Drop."""

    def connection_started(
        self,
        now: float,
        src: Address | None,
        dst: Address | None,
        version: int,
        scid: bytes,
        dcid: bytes,
    ) -> None:
        """Drop."""

    def connection_closed(
        self,
        now: float,
        owner: Owner,
        error_code: int,
        reason: str,
        *,
        is_application: bool = False,
        trigger: str | None = None,
    ) -> None:
        """Drop."""

    def key_updated(
        self, now: float, key_type: str, trigger: str, *, key_phase: int | None = None
    ) -> None:
        """Drop."""

    def version_information(self, now: float, *, client_versions: Iterable[int],
                            server_versions: Iterable[int], chosen: int) -> None:
        """Drop."""

    def custom(self, now: float, name: str, data: dict[str, Any]) -> None:
        """Drop."""

    def close(self) -> None:
        """Nothing to release."""


class RecordingSink(NullSink):
    """Keeps every call as ``(method, now, args)`` in :attr:`records` (for tests: qlog as an oracle)."""

    wants_frames = True

    def __init__(self) -> None:
        self.records: list[tuple[str, float, dict[str, Any]]] = []

    def _rec(self, method: str, now: float, **args: Any) -> None:
        self.records.append((method, now, args))

    def named(self, method: str) -> list[dict[str, Any]]:
        """The argument dicts of all calls to ``method``."""
        return [args for name, _now, args in self.records if name == method]

    def packet_sent(
        self,
        now: float,
        packet_type: str,
        packet_number: int,
        length: int,
        frames: list[FrameDict] | None,
    ) -> None:
        """Record."""
        self._rec(
            "packet_sent",
            now,
            packet_type=packet_type,
            packet_number=packet_number,
            length=length,
            frames=frames,
        )

    def packet_received(
        self,
        now: float,
        packet_type: str,
        packet_number: int,
        length: int,
        frames: list[FrameDict] | None,
    ) -> None:
        """Record."""
        self._rec(
            "packet_received",
            now,
            packet_type=packet_type,
            packet_number=packet_number,
            length=length,
            frames=frames,
        )

    def packet_lost(self, now: float, packet_type: str, packet_number: int, trigger: str) -> None:
        """Record."""
        self._rec(
            "packet_lost",
            now,
            packet_type=packet_type,
            packet_number=packet_number,
            trigger=trigger,
        )

    def metrics_updated(self, now: float, **metrics: Any) -> None:  # type: ignore[override]
        """Record."""
        self._rec("metrics_updated", now, **metrics)

    def congestion_state_updated(
        self, now: float, old: str | None, new: str, trigger: str | None = None
    ) -> None:
        """Record."""
        self._rec("congestion_state_updated", now, old=old, new=new, trigger=trigger)

    def parameters_set(self, now: float, owner: Owner, params: dict[str, Any]) -> None:
        """Record."""
        self._rec("parameters_set", now, owner=owner, params=dict(params))

    def connection_state_updated(self, now: float, old: str | None, new: str) -> None:
        """Record."""
        self._rec("connection_state_updated", now, old=old, new=new)

    def connection_started(
        self,
        now: float,
        src: Address | None,
        dst: Address | None,
        version: int,
        scid: bytes,
        dcid: bytes,
    ) -> None:
        """Record."""
        self._rec(
            "connection_started", now, src=src, dst=dst, version=version, scid=scid, dcid=dcid
        )

    def connection_closed(
        self,
        now: float,
        owner: Owner,
        error_code: int,
        reason: str,
        *,
        is_application: bool = False,
        trigger: str | None = None,
    ) -> None:
        """Record."""
        self._rec(
            "connection_closed",
            now,
            owner=owner,
            error_code=error_code,
            reason=reason,
            is_application=is_application,
            trigger=trigger,
        )

    def key_updated(
        self, now: float, key_type: str, trigger: str, *, key_phase: int | None = None
    ) -> None:
        """Record."""
        self._rec("key_updated", now, key_type=key_type, trigger=trigger, key_phase=key_phase)

    def version_information(self, now: float, *, client_versions: Iterable[int],
                            server_versions: Iterable[int], chosen: int) -> None:
        """Record."""
        self._rec("version_information", now, client_versions=tuple(client_versions),
                  server_versions=tuple(server_versions), chosen=chosen)

    def custom(self, now: float, name: str, data: dict[str, Any]) -> None:
        """Record."""
        self._rec("custom", now, name=name, data=dict(data))


# --- frame dict builders (qlog 0.3 shape) ---------------------------------------------------------


def stream_frame(stream_id: int, offset: int, length: int, fin: bool) -> FrameDict:
    """A STREAM frame."""
    return {
        "frame_type": "stream",
        "stream_id": stream_id,
        "offset": offset,
        "length": length,
        "fin": fin,
    }


def crypto_frame(offset: int, length: int) -> FrameDict:
    """A CRYPTO frame."""
    return {"frame_type": "crypto", "offset": offset, "length": length}


def ack_frame(ranges: Iterable[range], ack_delay: float,
              ecn: tuple[int, int, int] | None = None) -> FrameDict:
    """An ACK frame from packet-number ranges
    (``range`` objects, stop exclusive); ``ack_delay`` in seconds; ``ecn``: ACK_ECN's counts."""
    frame: FrameDict = {
        "frame_type": "ack",
        "ack_delay": round(ack_delay * 1000.0, 3),
        "acked_ranges": [[r.start, r.stop - 1] for r in ranges],
    }
    if ecn is not None:
        frame["ect0"], frame["ect1"], frame["ce"] = ecn
    return frame


def padding_frame(length: int) -> FrameDict:
    """PADDING bytes (coalesced into one entry)."""
    return {"frame_type": "padding", "length": length}


def simple_frame(frame_type: str, **fields: Any) -> FrameDict:
    """Any other frame, e.g. ``simple_frame("ping")``, ``simple_frame("max_data", maximum=1 << 20)``."""
    return {"frame_type": frame_type, **fields}
