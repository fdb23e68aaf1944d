"""The narrow interfaces a relay session sees, and the one function that applies QUIC actions.

* :class:`QuicView`: the read-only questions a session asks its connection (bytes still
  unacknowledged on a stream, DATAGRAMs queued, the next stream ID). A
  :class:`~quicreality.quic.connection.QuicConnection` is one.
* :class:`QuicPort`: a view plus the calls that :func:`apply_quic_action` makes.
* :class:`RelayObserver`: where a session reports what it decided (metrics and log lines); the
  edge backs it with Prometheus counters and ``logging``; :data:`NULL_OBSERVER` ignores all.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from ..quic.errors import LocalProtocolError
from .actions import (
    Action,
    AnswerStatus,
    PauseStreamReading,
    Refuse,
    ResetStream,
    ResumeStreamReading,
    SendDatagram,
    SendOnStream,
    StopSending,
)
from .protocol import Status, StatusAnswer, encode_status


class QuicView(Protocol):
    """What a session reads from its QUIC connection (nothing here changes it)."""

    def stream_send_buffered(self, stream_id: int) -> int:
        """Bytes written to the stream and not yet acknowledged."""
        ...

    def datagrams_pending(self) -> int:
        """DATAGRAM frames queued and not yet in a packet."""
        ...

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        """The ID the next locally opened stream will get."""
        ...


class QuicPort(QuicView, Protocol):
    """A view plus the calls that carry out the QUIC actions."""

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue stream data."""
        ...

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """Send RESET_STREAM."""
        ...

    def stop_stream(self, stream_id: int, error_code: int) -> None:
        """Send STOP_SENDING."""
        ...

    def pause_stream_reading(self, stream_id: int) -> None:
        """Hold a stream's data back."""
        ...

    def resume_stream_reading(self, stream_id: int) -> None:
        """Deliver a stream's data again."""
        ...

    def send_datagram_frame(self, data: bytes) -> None:
        """Queue a DATAGRAM frame."""
        ...


_OK = encode_status(StatusAnswer(Status.OK))


def apply_quic_action(conn: QuicPort, action: Action) -> bool:
    """Carry out one QUIC action on ``conn``.

    Returns False when the connection refused it (:class:`LocalProtocolError`: the stream is
    already finished or reset, the peer takes no DATAGRAM of that size); the caller then tells
    the session (``quic_refused``). A :class:`Refuse` whose status answer cannot be sent still
    gets its STOP_SENDING.
    """
    try:
        if isinstance(action, SendOnStream):
            conn.send_stream_data(action.stream_id, action.data, action.end_stream)
        elif isinstance(action, SendDatagram):
            conn.send_datagram_frame(action.data)
        elif isinstance(action, PauseStreamReading):
            conn.pause_stream_reading(action.stream_id)
        elif isinstance(action, ResumeStreamReading):
            conn.resume_stream_reading(action.stream_id)
        elif isinstance(action, ResetStream):
            conn.reset_stream(action.stream_id, action.error_code)
        elif isinstance(action, StopSending):
            conn.stop_stream(action.stream_id, action.error_code)
        elif isinstance(action, AnswerStatus):
            answer = action.answer
            conn.send_stream_data(action.stream_id, _OK if answer.ok else encode_status(answer))
        elif isinstance(action, Refuse):
            return _refuse(conn, action)
        else:
            raise TypeError(f"not a QUIC action: {action!r}")
    except LocalProtocolError:
        return False
    return True


def _refuse(conn: QuicPort, action: Refuse) -> bool:
    """Status answer + FIN, then STOP_SENDING with the status's code (each on its own)."""
    sent = True
    try:
        conn.send_stream_data(action.stream_id, encode_status(action.answer), end_stream=True)
    except LocalProtocolError:
        sent = False
    with contextlib.suppress(LocalProtocolError):
        conn.stop_stream(action.stream_id, int(action.answer.error_code or 0))
    return sent


class RelayObserver(Protocol):
    """Where a session reports its decisions: counters (see :mod:`quicreality.metrics`) and log
    lines. ``kind`` is ``"tcp"`` or ``"udp"``; ``level`` is ``"debug"``, ``"info"`` or
    ``"warning"``."""

    def stream_opened(self, kind: str, outcome: str) -> None:
        """A stream got its status answer: ``ok`` or the refusing status."""
        ...

    def tcp_active(self, delta: int) -> None:
        """A TCP stream started (+1) or ended (-1)."""
        ...

    def reset(self, cause: str) -> None:
        """A stream or flow ended with a reset, for ``cause``."""
        ...

    def udp_flow_opened(self) -> None:
        """A UDP flow started."""
        ...

    def udp_flow_closed(self, expired: bool) -> None:
        """A UDP flow ended (``expired``: by the idle timeout)."""
        ...

    def udp_relayed(self, direction: str) -> None:
        """One datagram went ``up`` (towards the destination) or ``down``."""
        ...

    def udp_dropped(self, reason: str) -> None:
        """One datagram was dropped, for ``reason``."""
        ...

    def note(self, level: str, message: str) -> None:
        """One log line."""
        ...


class NullObserver:
    """A :class:`RelayObserver` that ignores everything."""

    def stream_opened(self, kind: str, outcome: str) -> None:
        """Ignored."""

    def tcp_active(self, delta: int) -> None:
        """Ignored."""

    def reset(self, cause: str) -> None:
        """Ignored."""

    def udp_flow_opened(self) -> None:
        """Ignored."""

    def udp_flow_closed(self, expired: bool) -> None:
        """Ignored."""

    def udp_relayed(self, direction: str) -> None:
        """Ignored."""

    def udp_dropped(self, reason: str) -> None:
        """Ignored."""

    def note(self, level: str, message: str) -> None:
        """Ignored."""


#: The observer of a session that was given none.
NULL_OBSERVER = NullObserver()
