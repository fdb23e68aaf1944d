"""Sans-IO HTTP/3 client helper: issue GET requests and collect the responses.

:class:`H3Client` wraps a client-side :class:`~quicreality.h3.connection.H3Connection`. The
owner passes QUIC events to :meth:`H3Client.handle_event`; each request's status, headers,
body (kept in memory or handed to a ``sink`` callable), completion and error are collected in a
:class:`ResponseRecord`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from quicreality.h3.connection import H3Connection
from quicreality.h3.events import (
    DataReceived,
    GoawayReceived,
    H3Event,
    Headers,
    HeadersReceived,
    MessageRejected,
    StreamResetReceived,
)
from quicreality.quic.errors import LocalProtocolError
from quicreality.quic.events import ConnectionTerminated

#: A body sink: called with each chunk in order (``offset`` = bytes of the body before ``chunk``).
BodySink = Callable[[int, bytes], None]


@dataclass(slots=True)
class ResponseRecord:
    """What has been received for one request (mutable, updated as events arrive)."""

    stream_id: int
    path: str
    status: int | None = None
    headers: Headers = field(default_factory=list)
    trailers: Headers = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    bytes_received: int = 0
    done: bool = False
    error: str | None = None
    sink: BodySink | None = None

    @property
    def ok(self) -> bool:
        """Completed without error (any status)."""
        return self.done and self.error is None


class H3Client:
    """Issue requests on an :class:`H3Connection` and collect per-request results.

    Args:
        h3: a client-side HTTP/3 connection.
        authority: value of ``:authority`` (host[:port]).
        scheme: value of ``:scheme``.
        user_agent: value of the ``user-agent`` header.
    """

    def __init__(
        self,
        h3: H3Connection,
        *,
        authority: str,
        scheme: str = "https",
        user_agent: str = "quicreality",
    ):
        if not h3.is_client:
            raise LocalProtocolError("H3Client needs a client-side H3Connection")
        self._h3 = h3
        self._authority = authority.encode()
        self._scheme = scheme.encode()
        self._user_agent = user_agent.encode()
        self._responses: dict[int, ResponseRecord] = {}
        self._pending = 0

    @property
    def responses(self) -> dict[int, ResponseRecord]:
        """All requests issued, by stream ID."""
        return self._responses

    @property
    def pending(self) -> int:
        """Requests not yet complete."""
        return self._pending

    @property
    def all_done(self) -> bool:
        """True when every issued request completed or failed."""
        return self._pending == 0

    def get(
        self,
        path: str,
        *,
        headers: Iterable[tuple[bytes, bytes]] = (),
        sink: BodySink | None = None,
        method: str = "GET",
    ) -> int:
        """Send a request without a body and return its stream ID.

        Args:
            path: the request target, e.g. ``/bytes/1000``.
            headers: extra request headers.
            sink: if given, body chunks go to ``sink(offset, chunk)`` instead of memory.
            method: request method (default GET).

        Raises:
            LocalProtocolError: the server sent GOAWAY or the connection is closed.
        """
        if self._h3.goaway_received is not None:
            raise LocalProtocolError("server sent GOAWAY; open a new connection")
        if self._h3.closed:
            raise LocalProtocolError("connection closed")
        stream_id = self._h3.get_next_request_stream_id()
        head: Headers = [
            (b":method", method.encode()),
            (b":scheme", self._scheme),
            (b":authority", self._authority),
            (b":path", path.encode()),
            (b"user-agent", self._user_agent),
            *headers,
        ]
        self._responses[stream_id] = ResponseRecord(stream_id, path, sink=sink)
        self._pending += 1
        self._h3.send_headers(stream_id, head, end_stream=True)
        return stream_id

    def handle_event(self, quic_event: object) -> list[H3Event]:
        """Feed a QUIC event; update the records and return the H3 events."""
        events = self._h3.handle_event(quic_event)
        for event in events:
            self._apply(event)
        if isinstance(quic_event, ConnectionTerminated) or self._h3.closed:
            reason = "connection closed"
            if isinstance(quic_event, ConnectionTerminated):
                reason = (
                    f"connection closed ({quic_event.error_code:#x}: {quic_event.reason_phrase})"
                )
            self._fail_pending(lambda _sid: True, reason)
        return events

    def _apply(self, event: H3Event) -> None:
        """Update the record an H3 event belongs to."""
        if isinstance(event, DataReceived):
            rec = self._responses.get(event.stream_id)
            if rec is None or rec.done:
                return
            if event.data:
                if rec.sink is not None:
                    rec.sink(rec.bytes_received, event.data)
                else:
                    rec.body += event.data
                rec.bytes_received += len(event.data)
            if event.stream_ended:
                self._complete(rec, None)
        elif isinstance(event, HeadersReceived):
            rec = self._responses.get(event.stream_id)
            if rec is None or rec.done:
                return
            if rec.status is None:
                status = next((v for k, v in event.headers if k == b":status"), b"")
                rec.status = int(status) if status.isdigit() else 0
                rec.headers = [(k, v) for k, v in event.headers if not k.startswith(b":")]
            else:
                rec.trailers = list(event.headers)
            if event.stream_ended:
                self._complete(rec, None)
        elif isinstance(event, StreamResetReceived):
            rec = self._responses.get(event.stream_id)
            if rec is not None and not rec.done:
                self._complete(rec, f"stream reset by peer ({event.error_code:#x})")
        elif isinstance(event, MessageRejected):
            rec = self._responses.get(event.stream_id)
            if rec is not None and not rec.done:
                self._complete(rec, f"response rejected ({event.reason})")
        elif isinstance(event, GoawayReceived):
            first_rejected = event.stream_id
            self._fail_pending(lambda sid: sid >= first_rejected, "rejected by GOAWAY")

    def _complete(self, rec: ResponseRecord, error: str | None) -> None:
        rec.done = True
        rec.error = error
        self._pending -= 1

    def _fail_pending(self, select: Callable[[int], bool], reason: str) -> None:
        for sid, rec in self._responses.items():
            if not rec.done and select(sid):
                self._complete(rec, reason)
