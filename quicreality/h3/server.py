"""Sans-IO HTTP/3 file server: decides responses and feeds response bodies on demand.

Two layers:

* :class:`H3FileServer` is pure application logic: request head in, :class:`H3Response` out
  (status, headers and a lazily read :class:`ResponseBody`). ``GET /bytes/<N>`` answers ``N``
  bytes of :func:`deterministic_bytes`; ``GET /<path>`` answers a file under ``root``.
* :class:`H3ServerSession` glues it to an :class:`~quicreality.h3.connection.H3Connection`:
  QUIC events in (:meth:`H3ServerSession.handle_event`), response heads sent at once, bodies
  pulled chunk by chunk by :meth:`H3ServerSession.pump` while the stream holds less than a
  threshold of bytes not yet sent. The asyncio edge calls ``pump()`` after each batch of
  datagrams; bodies are never materialised in memory. What is sent and not yet acknowledged is
  bounded by the congestion window and the peer's flow-control credit, not by the threshold:
  until 2026-12-07 the threshold counted unacknowledged bytes too, which capped the flight at
  ~1.1 MB (long-rtt's BDP is 1.9 MB) and starved the sender whenever a loss held back the
  acknowledged prefix (lossy-wan ``bbr``: 41.1 against 45.2 Mbit/s on virtual time,
  ``tests/sim/test_sim_h3_transfer.py``).

File I/O (open/stat/read) happens here; it is not network I/O and it is lazy.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote_to_bytes

from quicreality.h3.connection import H3Connection
from quicreality.h3.events import (
    H3Event,
    Headers,
    HeadersReceived,
    MessageRejected,
    StreamResetReceived,
)
from quicreality.h3.frames import H3ErrorCode
from quicreality.quic.errors import LocalProtocolError
from quicreality.quic.events import StopSendingReceived

# --- deterministic payloads ---------------------------------------------------------------------

#: Size of the base block of :func:`deterministic_bytes`.
DETERMINISTIC_BLOCK = 65536
_SEED = b"quicreality/deterministic-bytes/v1"
#: Odd, so block rotations repeat only after 65536 blocks (4 GiB).
_STRIDE = 40503
_BASE = b"".join(
    hashlib.sha256(_SEED + i.to_bytes(4, "big")).digest() for i in range(DETERMINISTIC_BLOCK // 32)
)
_DOUBLE = _BASE + _BASE
#: Largest ``N`` accepted by ``/bytes/<N>`` (1 TiB).
MAX_DETERMINISTIC_LENGTH = 1 << 40


def deterministic_bytes(offset: int, length: int) -> bytes:
    """Return bytes ``offset .. offset+length`` of the endless deterministic test stream.

    Definition: let ``BASE`` be the 64 KiB concatenation of
    ``SHA-256(b"quicreality/deterministic-bytes/v1" || uint32_be(i))`` for ``i = 0..2047``.
    Byte ``x`` of the stream is ``BASE[(x % 65536 + (x // 65536) * 40503) % 65536]``, i.e. block
    ``k`` is ``BASE`` rotated left by ``k * 40503 mod 65536``. Every block differs from its
    neighbours (reordered or duplicated 64 KiB chunks are detected) and the pattern repeats only
    after 4 GiB. A chunk within one block is a single slice, so generation costs one copy.
    """
    if offset < 0 or length < 0:
        raise ValueError("offset and length must be non-negative")
    parts: list[bytes] = []
    while length > 0:
        block, within = divmod(offset, DETERMINISTIC_BLOCK)
        start = (block * _STRIDE) % DETERMINISTIC_BLOCK + within
        take = min(length, DETERMINISTIC_BLOCK - within)
        parts.append(_DOUBLE[start : start + take])
        offset += take
        length -= take
    if len(parts) == 1:
        return parts[0]
    return b"".join(parts)


def verify_deterministic(offset: int, data: bytes) -> bool:
    """True if ``data`` equals :func:`deterministic_bytes` at ``offset``."""
    return data == deterministic_bytes(offset, len(data))


# --- bodies ---------------------------------------------------------------------------------------


class ResponseBody(Protocol):
    """A response body pulled by the edge: ``read(n)`` returns up to ``n`` bytes, ``b""`` at the end."""

    @property
    def length(self) -> int | None:
        """Total size in bytes if known (sent as content-length)."""
        ...

    def read(self, n: int) -> bytes:
        """Return up to ``n`` more bytes; an empty result means the body is complete."""
        ...

    def close(self) -> None:
        """Release resources (called on completion or when the stream is aborted)."""
        ...


class BytesBody:
    """A small in-memory body (error pages)."""

    def __init__(self, data: bytes):
        self._data = data
        self._pos = 0

    @property
    def length(self) -> int:
        """Size in bytes."""
        return len(self._data)

    def read(self, n: int) -> bytes:
        """Return the next ``n`` bytes."""
        chunk = self._data[self._pos : self._pos + n]
        self._pos += len(chunk)
        return chunk

    def close(self) -> None:
        """Nothing to release."""


class DeterministicBody:
    """``length`` bytes of :func:`deterministic_bytes`, generated per read."""

    def __init__(self, length: int):
        self._length = length
        self._pos = 0

    @property
    def length(self) -> int:
        """Size in bytes."""
        return self._length

    def read(self, n: int) -> bytes:
        """Generate the next ``n`` bytes."""
        n = min(n, self._length - self._pos)
        if n <= 0:
            return b""
        chunk = deterministic_bytes(self._pos, n)
        self._pos += n
        return chunk

    def close(self) -> None:
        """Nothing to release."""


class FileBody:
    """A file read lazily: opened on the first read, closed at the end or on :meth:`close`."""

    def __init__(self, path: Path, length: int):
        self._path = path
        self._length = length
        self._file: BinaryIO | None = None
        self._done = False

    @property
    def length(self) -> int:
        """Size at the time of the request (from ``stat``)."""
        return self._length

    def read(self, n: int) -> bytes:
        """Read the next ``n`` bytes from the file."""
        if self._done:
            return b""
        if self._file is None:
            self._file = open(self._path, "rb")  # noqa: SIM115 - closed in close()
        chunk = self._file.read(n)
        if not chunk:
            self.close()
        return chunk

    def close(self) -> None:
        """Close the file if open."""
        self._done = True
        if self._file is not None:
            self._file.close()
            self._file = None


# --- the application ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class H3Response:
    """What to answer: status, extra headers and an optional body (``None`` = no content)."""

    status: int
    headers: Headers
    body: ResponseBody | None


def _header(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


class H3FileServer:
    """Decide responses for ``/bytes/<N>`` and files under ``root`` (sans-IO apart from file access).

    Args:
        root: directory served for ``GET /<path>``; ``None`` serves only ``/bytes/<N>``.
        server_name: value of the ``server`` response header.
    """

    def __init__(self, root: Path | None, *, server_name: bytes = b"quicreality"):
        self._root = root.resolve() if root is not None else None
        self._server_name = server_name

    def respond(self, request: Headers) -> H3Response:
        """Answer a request head (pseudo-headers ``:method`` and ``:path``)."""
        method = _header(request, b":method") or b""
        raw_path = _header(request, b":path") or b""
        if method not in (b"GET", b"HEAD"):
            return self._error(405, [(b"allow", b"GET, HEAD")])
        path = unquote_to_bytes(raw_path.split(b"?", 1)[0].split(b"#", 1)[0])
        if not path.startswith(b"/"):
            return self._error(400)
        if path.startswith(b"/bytes/"):
            count = path[len(b"/bytes/") :]
            if not count.isdigit() or len(count) > 15 or int(count) > MAX_DETERMINISTIC_LENGTH:
                return self._error(404)
            body = DeterministicBody(int(count))
            return self._ok(body, b"application/octet-stream", method)
        return self._file(path, method)

    def _file(self, path: bytes, method: bytes) -> H3Response:
        """Resolve ``path`` under the root; traversal, directories and missing files are 404."""
        if self._root is None:
            return self._error(404)
        parts = [p for p in path.split(b"/") if p]
        if not parts or any(p in (b".", b"..") or b"\x00" in p or b"\\" in p for p in parts):
            return self._error(404)
        try:
            candidate = self._root.joinpath(*(p.decode("utf-8") for p in parts)).resolve()
        except (UnicodeDecodeError, OSError, RuntimeError):
            return self._error(404)
        if not candidate.is_relative_to(self._root):
            return self._error(404)  # e.g. a symlink pointing outside the root
        try:
            if not candidate.is_file():
                return self._error(404)
            size = candidate.stat().st_size
        except OSError:
            return self._error(404)
        content_type = mimetypes.guess_type(candidate.name)[0] or "application/octet-stream"
        return self._ok(FileBody(candidate, size), content_type.encode(), method)

    def _ok(self, body: ResponseBody, content_type: bytes, method: bytes) -> H3Response:
        headers = [
            (b"server", self._server_name),
            (b"content-type", content_type),
            (b"content-length", str(body.length).encode()),
        ]
        if method == b"HEAD":
            body.close()
            return H3Response(200, headers, None)
        return H3Response(200, headers, body)

    def _error(self, status: int, extra: Iterable[tuple[bytes, bytes]] = ()) -> H3Response:
        text = {400: b"bad request\n", 404: b"not found\n", 405: b"method not allowed\n"}.get(
            status, b"error\n"
        )
        headers = [
            (b"server", self._server_name),
            (b"content-type", b"text/plain"),
            (b"content-length", str(len(text)).encode()),
            *extra,
        ]
        return H3Response(status, headers, BytesBody(text))


class RequestHandler(Protocol):
    """Anything that maps a request head to an :class:`H3Response` (e.g. :class:`H3FileServer`)."""

    def respond(self, request: Headers) -> H3Response:
        """Answer a request head."""
        ...


@dataclass(slots=True)
class _Outgoing:
    """A response body being sent."""

    body: ResponseBody
    length: int | None
    sent: int = 0


class H3ServerSession:
    """Serve requests on one :class:`H3Connection`, pulling bodies as the send buffers drain.

    Args:
        h3: the server-side HTTP/3 connection.
        app: decides responses.
        chunk_size: bytes read from a body per DATA frame.
        high_water: ``pump()`` tops a stream up while it has fewer bytes than this not yet sent
            (``quic.stream_send_buffered(stream_id, unsent=True)``).
    """

    def __init__(
        self,
        h3: H3Connection,
        app: RequestHandler,
        *,
        chunk_size: int = 65536,
        high_water: int = 262144,
    ):
        self._h3 = h3
        self._app = app
        self._chunk_size = chunk_size
        self._high_water = high_water
        self._outgoing: dict[int, _Outgoing] = {}
        self.requests_served = 0

    @property
    def h3(self) -> H3Connection:
        """The HTTP/3 connection this session serves."""
        return self._h3

    @property
    def active_streams(self) -> int:
        """Responses whose body is still being sent."""
        return len(self._outgoing)

    def handle_event(self, quic_event: object) -> list[H3Event]:
        """Feed a QUIC event; answers new requests (heads are sent at once) and returns the H3 events."""
        events = self._h3.handle_event(quic_event)
        for event in events:
            if isinstance(event, HeadersReceived):
                if event.stream_id not in self._outgoing:
                    self._start_response(event.stream_id, event.headers)
            elif isinstance(event, StreamResetReceived):
                pass  # the request side was abandoned; a response already under way continues
            elif isinstance(event, MessageRejected):
                self._abort(event.stream_id)  # H3Connection aborted the stream (or sent 431)
        if isinstance(quic_event, StopSendingReceived):
            self._abort(quic_event.stream_id)
        return events

    def pump(self) -> int:
        """Top up every active response while its unsent bytes are below ``high_water``.

        Returns:
            The number of body bytes queued.
        """
        if self._h3.closed:
            for stream_id in list(self._outgoing):
                self._abort(stream_id)
            return 0
        quic = self._h3.quic
        queued = 0
        finished: list[int] = []
        for stream_id, out in self._outgoing.items():
            while quic.stream_send_buffered(stream_id, unsent=True) < self._high_water:
                chunk = out.body.read(self._chunk_size)
                out.sent += len(chunk)
                queued += len(chunk)
                last = not chunk or (out.length is not None and out.sent >= out.length)
                self._h3.send_data(stream_id, chunk, last)
                if last:
                    finished.append(stream_id)
                    break
        for stream_id in finished:
            self._outgoing.pop(stream_id).body.close()
        return queued

    def _start_response(self, stream_id: int, request: Headers) -> None:
        """Send the response head and register the body."""
        response = self._app.respond(request)
        self.requests_served += 1
        head = [(b":status", str(response.status).encode()), *response.headers]
        body = response.body
        empty = body is None or body.length == 0
        try:
            self._h3.send_headers(stream_id, head, end_stream=empty)
        except LocalProtocolError:
            # the head exceeds the peer's SETTINGS_MAX_FIELD_SECTION_SIZE (RFC 9114 §4.2.2)
            self._h3.abort_stream(stream_id, H3ErrorCode.H3_INTERNAL_ERROR)
            empty = True
        if empty:
            if body is not None:
                body.close()
            return
        assert body is not None
        self._outgoing[stream_id] = _Outgoing(body, body.length)

    def _abort(self, stream_id: int) -> None:
        """Drop a response whose stream the peer stopped."""
        out = self._outgoing.pop(stream_id, None)
        if out is not None:
            out.body.close()
