"""Sans-IO HTTP/3 connection (RFC 9114) with QPACK (RFC 9204) via ``pylsqpack``.

Theory of operation
-------------------
:class:`H3Connection` sits on a QUIC connection (anything implementing :class:`QuicTransport`).
On creation it opens its control stream and sends SETTINGS (RFC 9114 §6.2.1), then its QPACK
encoder and decoder streams (RFC 9204 §4.2); ``early_qpack_streams`` can leave either to be
opened when it first has something to carry. The owner passes every QUIC event to
:meth:`H3Connection.handle_event` and gets :mod:`~quicreality.h3.events` back.

Components, each owning its state: :class:`~quicreality.h3.control.ControlStream` (our control
stream, both sides' SETTINGS and GOAWAY), :class:`~quicreality.h3.qpack_streams.QpackStreams`
(the QPACK codecs and our QPACK streams), and the incremental frame reader every receiving stream
runs (:func:`~quicreality.h3.frame_reader.read_frames`: linear in the chunk, DATA handed out as
slices of it). This class routes streams and keeps the request streams' message states.

A HEADERS frame whose field section refers to dynamic-table entries not yet received blocks its
stream (RFC 9204 §2.1.2): further bytes for that stream are parked until the encoder stream
unblocks it, then the header block is resumed and the parked bytes are parsed.

Field sections above the ``SETTINGS_MAX_FIELD_SECTION_SIZE`` we advertise are refused before
``pylsqpack`` expands them (:mod:`~quicreality.h3.qpack`, RFC 9114 §4.2.2): a too-large request
head gets a 431, anything else is a stream error H3_EXCESSIVE_LOAD. We respect the peer's limit.

Peer violations raise :class:`~quicreality.h3.frames.H3ConnectionError` internally; they are
converted in one place (:meth:`handle_event`) into ``quic.close(error_code=H3_xxx, ...)``, after
which the connection ignores further input. Local misuse raises
:class:`~quicreality.quic.errors.LocalProtocolError`.
"""

from __future__ import annotations

from collections.abc import Sequence

from quicreality.h3.control import ControlStream, default_settings
from quicreality.h3.events import (
    DataReceived,
    GoawayReceived,
    H3Event,
    Headers,
    HeadersReceived,
    MessageRejected,
    SettingsReceived,
    StreamResetReceived,
)
from quicreality.h3.fields import valid_field_section
from quicreality.h3.frame_reader import read_frames
from quicreality.h3.frames import (
    FrameType,
    GoawayFrame,
    H3ConnectionError,
    H3ErrorCode,
    Setting,
    SettingsFrame,
    StreamType,
    frame_header,
    parse_frame_payload,
    peek_uint_var,
)
from quicreality.h3.qpack import Blocked, Decoded, DecodeResult, field_section_size
from quicreality.h3.qpack_streams import EARLY_DEFAULT, QpackStreams
from quicreality.h3.streams import (
    CRITICAL_KINDS,
    DATA_FRAME,
    MAX_BUFFERED_FRAME_SIZE,
    NO_FRAME,
    MessageState,
    QuicTransport,
    RecvStream,
    StreamKind,
    is_client_initiated,
    is_unidirectional,
    mark_ended,
)
from quicreality.quic.errors import LocalProtocolError
from quicreality.quic.events import (
    ConnectionTerminated,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)
from quicreality.wire.buffer import encode_uint_var

__all__ = ["MAX_BUFFERED_FRAME_SIZE", "H3Connection", "QuicTransport"]

#: Defaults we advertise for our QPACK decoder (RFC 9204 §5).
DEFAULT_MAX_TABLE_CAPACITY = 4096
DEFAULT_BLOCKED_STREAMS = 16
#: The largest field section we accept and advertise (RFC 9114 §4.2.2; default there: unlimited).
DEFAULT_MAX_FIELD_SECTION_SIZE = 64 * 1024
#: The head a server sends for a request whose field section is too large (RFC 6585 §5).
_TOO_LARGE_HEAD: Headers = [(b":status", b"431")]
#: DATA payloads up to this size are sent in one write together with their frame header.
_COALESCE_LIMIT = 2048


class H3Connection:
    """An HTTP/3 endpoint on top of a QUIC connection (sans-IO).

    Args:
        quic: the QUIC connection (see :class:`QuicTransport`).
        is_client: our role; decides which streams are requests and what GOAWAY carries.
        max_table_capacity: QPACK dynamic table size we allow the peer's encoder (bytes).
        blocked_streams: how many streams the peer may leave blocked on our decoder.
        max_field_section_size: largest decoded field section we accept (RFC 9114 §4.2.2).
        extra_settings: further SETTINGS to advertise (e.g. ``{Setting.H3_DATAGRAM: 1}``).
        settings: the exact SETTINGS to send, in order, instead of ours (then the three limits
            above are ignored: our decoder uses the QPACK values in ``settings``, RFC 9204 §5
            defaults 0 if absent; ``max_field_section_size`` stays our limit, lowered to the
            advertised one if that is smaller: a larger advertised value, such as ngtcp2's
            2^62 - 1, is not honoured beyond it, and a larger head gets 431, RFC 9114 §4.2.2).
        early_qpack_streams: the QPACK stream types (RFC 9204 §4.2) to open at once, in order;
            the others are opened when they first carry something (default: both).
    """

    def __init__(
        self,
        quic: QuicTransport,
        *,
        is_client: bool,
        max_table_capacity: int = DEFAULT_MAX_TABLE_CAPACITY,
        blocked_streams: int = DEFAULT_BLOCKED_STREAMS,
        max_field_section_size: int = DEFAULT_MAX_FIELD_SECTION_SIZE,
        extra_settings: dict[int, int] | None = None,
        settings: Sequence[tuple[int, int]] | None = None,
        early_qpack_streams: Sequence[int] = EARLY_DEFAULT,
    ):
        self._quic = quic
        self._is_client = is_client
        self._closed = False
        if settings is None:
            settings = default_settings(max_table_capacity, blocked_streams,
                                        max_field_section_size, extra_settings)
        else:
            given = dict(settings)
            max_table_capacity = given.get(Setting.QPACK_MAX_TABLE_CAPACITY, 0)
            blocked_streams = given.get(Setting.QPACK_BLOCKED_STREAMS, 0)
            max_field_section_size = min(given.get(Setting.MAX_FIELD_SECTION_SIZE,
                                                   max_field_section_size), max_field_section_size)
        self._control = ControlStream(quic, settings, is_client=is_client)
        self._qpack = QpackStreams(quic, max_table_capacity, blocked_streams,
                                   max_field_section_size, early=early_qpack_streams)
        self._streams: dict[int, RecvStream] = {}
        self._send_state: dict[int, MessageState] = {}  # request streams: what we have sent
        self._peer_streams: dict[StreamKind, int] = {}  # critical peer uni streams by kind
        self._max_request_seen = -1  # server: highest client request stream ID seen

    # --- public API --------------------------------------------------------------------------

    @property
    def quic(self) -> QuicTransport:
        """The underlying QUIC connection."""
        return self._quic

    @property
    def is_client(self) -> bool:
        """True for the client role."""
        return self._is_client

    @property
    def closed(self) -> bool:
        """True once an HTTP/3 connection error closed the connection (or QUIC terminated)."""
        return self._closed

    @property
    def peer_settings(self) -> dict[int, int] | None:
        """The peer's SETTINGS, or ``None`` before they arrive."""
        peer = self._control.peer_settings
        return None if peer is None else dict(peer)

    @property
    def local_settings(self) -> dict[int, int]:
        """The SETTINGS we sent."""
        return dict(self._control.local_settings)

    @property
    def goaway_received(self) -> int | None:
        """The ID from the peer's latest GOAWAY, if any."""
        return self._control.goaway_received

    def get_next_request_stream_id(self) -> int:
        """Client: the stream ID a new request would use (RFC 9114 §4.1)."""
        if not self._is_client:
            raise LocalProtocolError("only clients open request streams")
        return self._quic.get_next_available_stream_id(is_unidirectional=False)

    def send_headers(self, stream_id: int, headers: Headers, end_stream: bool = False) -> None:
        """Send a HEADERS frame: a request or response head, or trailers after DATA.

        Raises:
            LocalProtocolError: the stream is not a request stream, its send side has ended, or
                the field section exceeds the peer's ``SETTINGS_MAX_FIELD_SECTION_SIZE``.
        """
        state = self._check_send(stream_id)
        if state == MessageState.TRAILERS_DONE:
            raise LocalProtocolError(f"stream {stream_id}: already ended")
        if not self._peer_accepts(headers):
            raise LocalProtocolError(
                f"stream {stream_id}: field section exceeds the peer's SETTINGS_MAX_FIELD_SECTION_SIZE"
            )
        block = self._qpack.encode(stream_id, headers)
        self._quic.send_stream_data(
            stream_id, frame_header(FrameType.HEADERS, len(block)) + block, end_stream
        )
        self._advance_send(
            stream_id,
            MessageState.BODY
            if state == MessageState.EXPECT_HEADERS
            else MessageState.TRAILERS_DONE,
            end_stream,
        )

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Send ``data`` in one DATA frame (an empty ``data`` with ``end_stream`` sends only the FIN).

        Raises:
            LocalProtocolError: no HEADERS sent yet on the stream, or its send side has ended.
        """
        state = self._send_state.get(stream_id)
        if state != MessageState.BODY:
            raise LocalProtocolError(
                f"stream {stream_id}: DATA needs HEADERS first and an open stream"
            )
        length = len(data)
        send = self._quic.send_stream_data
        if length == 0:
            if end_stream:
                send(stream_id, b"", True)
        elif length <= _COALESCE_LIMIT:
            send(stream_id, b"\x00" + encode_uint_var(length) + data, end_stream)
        else:
            send(stream_id, b"\x00" + encode_uint_var(length), False)
            send(stream_id, data, end_stream)
        if end_stream:
            self._advance_send(stream_id, MessageState.BODY, True)

    def send_goaway(self, stream_id: int | None = None) -> None:
        """Send GOAWAY on the control stream (RFC 9114 §5.2).

        Args:
            stream_id: server: the first request stream ID that will not be processed (default:
                the one after the highest request seen); client: a push ID (default 0, we never
                accept pushes).
        """
        if stream_id is None:
            stream_id = (self._max_request_seen + 4) if not self._is_client else 0
            stream_id = max(stream_id, 0)
        self._control.send_goaway(stream_id)

    def abort_stream(self, stream_id: int, error_code: int) -> None:
        """Abort a request stream in both directions (RFC 9114 §4.1.1), e.g. to cancel it.

        Raises:
            LocalProtocolError: ``stream_id`` is not a request stream.
        """
        state = self._check_send(stream_id)
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._stream_error(stream, error_code)
        elif state != MessageState.TRAILERS_DONE:  # only the send side is left
            self._quic.reset_stream(stream_id, error_code)
            self._advance_send(stream_id, MessageState.TRAILERS_DONE, True)

    def handle_event(self, event: object) -> list[H3Event]:
        """Process one QUIC event and return the HTTP/3 events it produced.

        Consumes ``StreamDataReceived``, ``StreamReset``, ``StopSendingReceived`` and
        ``ConnectionTerminated``; other events yield ``[]``.
        """
        if self._closed:
            return []
        if type(event) is StreamDataReceived:
            sid = event.stream_id
            data = event.data
            stream = self._streams.get(sid)
            # fast path: a chunk entirely inside a DATA frame on a request stream
            if (
                stream is not None
                and stream.frame_type == DATA_FRAME
                and stream.remaining > len(data)
                and not event.end_stream
                and not stream.blocked
                and data
            ):
                stream.remaining -= len(data)
                return [DataReceived(sid, data, False)]
            events: list[H3Event] = []
            try:
                self._receive_stream_data(sid, data, event.end_stream, events)
            except H3ConnectionError as exc:
                self._fail(exc.error_code, exc.reason_phrase)
            return events
        if isinstance(event, StreamReset):
            return self._receive_reset(event.stream_id, event.error_code)
        if isinstance(event, StopSendingReceived):
            if event.stream_id in self._send_state:
                self._send_state[event.stream_id] = MessageState.TRAILERS_DONE
            elif event.stream_id == self._control.stream_id or self._qpack.is_ours(
                event.stream_id
            ):
                self._fail(H3ErrorCode.H3_CLOSED_CRITICAL_STREAM, "peer stopped a critical stream")
            return []
        if isinstance(event, ConnectionTerminated):
            self._closed = True
        return []

    # --- sending helpers ---------------------------------------------------------------------

    def _peer_accepts(self, headers: Headers) -> bool:
        """True if a field section fits the peer's SETTINGS_MAX_FIELD_SECTION_SIZE (RFC 9114 §4.2.2)."""
        limit = (self._control.peer_settings or {}).get(Setting.MAX_FIELD_SECTION_SIZE)
        return limit is None or field_section_size(headers) <= limit

    def _check_send(self, stream_id: int) -> MessageState:
        """Validate that we may send a message on ``stream_id``; return its send state."""
        if is_unidirectional(stream_id):
            raise LocalProtocolError(f"stream {stream_id} is unidirectional")
        if not is_client_initiated(stream_id):
            raise LocalProtocolError("requests and responses use client-initiated streams")
        return self._send_state.get(stream_id, MessageState.EXPECT_HEADERS)

    def _advance_send(self, stream_id: int, state: MessageState, end_stream: bool) -> None:
        """Record what we sent; forget finished streams."""
        if end_stream:
            if (
                not self._is_client
                and stream_id not in self._streams
                and stream_id <= self._max_request_seen
            ):
                # the request side is finished too: forget the stream
                self._send_state.pop(stream_id, None)
            else:
                # tombstone: later sends are rejected; dropped when the receive side finishes
                self._send_state[stream_id] = MessageState.TRAILERS_DONE
        else:
            self._send_state[stream_id] = state

    # --- receiving ---------------------------------------------------------------------------

    def _fail(self, error_code: int, reason: str) -> None:
        """Close the connection for an HTTP/3 or QPACK error (RFC 9114 §8)."""
        if not self._closed:
            self._closed = True
            self._quic.close(error_code=error_code, reason_phrase=reason)

    def _stream_error(
        self,
        stream: RecvStream,
        error_code: int,
        events: list[H3Event] | None = None,
        reason: str = "",
    ) -> None:
        """Abort one request stream in both directions (RFC 9114 §8); report it in ``events``."""
        sid = stream.stream_id
        if events is not None:
            events.append(MessageRejected(sid, error_code, reason))
        stream.kind = StreamKind.DISCARD
        stream.frame_type = NO_FRAME
        stream.blocked = False
        self._quic.stop_stream(sid, error_code)
        if self._send_state.get(sid) != MessageState.TRAILERS_DONE:
            self._quic.reset_stream(sid, error_code)
        self._send_state[sid] = MessageState.TRAILERS_DONE

    def _forget(self, sid: int) -> None:
        """Drop a discarded stream whose FIN arrived, and its send-side tombstone."""
        self._streams.pop(sid, None)
        if self._send_state.get(sid) == MessageState.TRAILERS_DONE:
            del self._send_state[sid]

    def _new_stream(self, stream_id: int) -> RecvStream:
        """Create receive state for a stream the peer opened."""
        if is_unidirectional(stream_id):
            stream = RecvStream(stream_id, StreamKind.UNI_UNKNOWN)
        else:
            if self._is_client and not is_client_initiated(stream_id):
                raise H3ConnectionError(
                    H3ErrorCode.H3_STREAM_CREATION_ERROR, "server-initiated bidirectional stream"
                )
            stream = RecvStream(stream_id, StreamKind.REQUEST)
            if not self._is_client:
                self._max_request_seen = max(self._max_request_seen, stream_id)
                goaway = self._control.goaway_sent
                if goaway is not None and stream_id >= goaway:
                    self._stream_error(stream, H3ErrorCode.H3_REQUEST_REJECTED)
        self._streams[stream_id] = stream
        return stream

    def _receive_stream_data(self, sid: int, data: bytes, fin: bool, events: list[H3Event]) -> None:
        """Route a chunk of stream data."""
        stream = self._streams.get(sid)
        if stream is None:
            stream = self._new_stream(sid)
        if stream.kind == StreamKind.DISCARD:
            if fin:
                self._forget(sid)
            return
        if stream.blocked:
            stream.parked += data
            stream.parked_fin = stream.parked_fin or fin
            return
        pos = 0
        if stream.kind == StreamKind.UNI_UNKNOWN:
            pos = self._read_stream_type(stream, data, fin)
            if pos < 0:
                if fin:
                    stream.kind = StreamKind.DISCARD
                return
            if stream.kind == StreamKind.DISCARD:
                if fin:
                    self._forget(sid)
                return
        if stream.kind == StreamKind.QPACK_ENCODER:
            self._feed_encoder_stream(data[pos:] if pos else data, events)
        elif stream.kind == StreamKind.QPACK_DECODER:
            if pos < len(data):
                self._qpack.feed_peer_decoder(data[pos:] if pos else data)
        else:
            start = len(events)
            read_frames(stream, data, pos, events, self._complete_frame,
                        is_client=self._is_client)
            if fin and not stream.blocked:
                self._finish_stream(stream, events, start)
            elif fin:
                stream.parked_fin = True
            return
        if fin:
            raise H3ConnectionError(H3ErrorCode.H3_CLOSED_CRITICAL_STREAM, "QPACK stream closed")

    def _read_stream_type(self, stream: RecvStream, data: bytes, fin: bool) -> int:
        """Read the uni stream type; return the offset after it in ``data``, or -1 if incomplete.

        ``fin``: this chunk ends the stream (then an unknown stream is not stopped: QUIC has
        already received all of it and may have forgotten it).
        """
        prefix_len = len(stream.partial)
        head = stream.partial + data[:8] if prefix_len else data
        parsed = peek_uint_var(head, 0)
        if parsed is None:
            stream.partial = bytes(head)
            return -1
        stream_type, end = parsed
        stream.partial = b""
        kind = _UNI_KINDS.get(stream_type)
        if kind is not None:
            if kind in self._peer_streams:
                raise H3ConnectionError(
                    H3ErrorCode.H3_STREAM_CREATION_ERROR, f"second stream of type {stream_type:#x}"
                )
            self._peer_streams[kind] = stream.stream_id
            stream.kind = kind
        elif stream_type == StreamType.PUSH:
            if self._is_client:
                # we never send MAX_PUSH_ID, so every push ID exceeds the limit (RFC 9114 §4.6)
                raise H3ConnectionError(H3ErrorCode.H3_ID_ERROR, "push stream without MAX_PUSH_ID")
            raise H3ConnectionError(
                H3ErrorCode.H3_STREAM_CREATION_ERROR, "client opened a push stream"
            )
        else:
            # unknown or reserved (GREASE) type: ignore the stream (RFC 9114 §6.2, §9)
            stream.kind = StreamKind.DISCARD
            if not fin:
                self._quic.stop_stream(stream.stream_id, H3ErrorCode.H3_STREAM_CREATION_ERROR)
        return end - prefix_len

    def _feed_encoder_stream(self, data: bytes, events: list[H3Event]) -> None:
        """Feed the peer's QPACK encoder stream; resume streams it unblocks (RFC 9204 §4.2)."""
        if not data:
            return
        for sid in self._qpack.feed_peer_encoder(data):
            stream = self._streams.get(sid)
            if stream is None or not stream.blocked:
                continue
            stream.blocked = False
            self._on_decode_result(stream, self._qpack.resume(sid), events)
            if stream.kind == StreamKind.DISCARD:
                if stream.parked_fin:
                    self._forget(sid)
                continue
            parked, fin = bytes(stream.parked), stream.parked_fin
            stream.parked = bytearray()
            stream.parked_fin = False
            start = len(events) - 1
            read_frames(stream, parked, 0, events, self._complete_frame,
                        is_client=self._is_client)
            if stream.blocked:
                stream.parked_fin = stream.parked_fin or fin
            elif fin:
                self._finish_stream(stream, events, start)

    def _finish_stream(self, stream: RecvStream, events: list[H3Event], start: int) -> None:
        """Handle a FIN on a frame-carrying stream."""
        if stream.kind in CRITICAL_KINDS:
            raise H3ConnectionError(H3ErrorCode.H3_CLOSED_CRITICAL_STREAM, "critical stream closed")
        if stream.kind != StreamKind.REQUEST:
            if stream.kind == StreamKind.DISCARD:
                self._forget(stream.stream_id)
            return
        if stream.frame_type != NO_FRAME or stream.partial:
            raise H3ConnectionError(H3ErrorCode.H3_FRAME_ERROR, "stream ended inside a frame")
        stream.ended = True
        del self._streams[stream.stream_id]
        if stream.msg == MessageState.EXPECT_HEADERS:
            # a request/response without a head is malformed (RFC 9114 §4.1.2)
            self._stream_error(
                stream, H3ErrorCode.H3_MESSAGE_ERROR, events, "message without HEADERS"
            )
            return
        mark_ended(events, max(start, 0), stream.stream_id)
        if self._send_state.get(stream.stream_id) == MessageState.TRAILERS_DONE:
            del self._send_state[stream.stream_id]

    def _receive_reset(self, sid: int, error_code: int) -> list[H3Event]:
        """Handle the peer's RESET_STREAM."""
        stream = self._streams.pop(sid, None)
        if stream is None:
            return []
        if stream.kind in CRITICAL_KINDS:
            self._fail(H3ErrorCode.H3_CLOSED_CRITICAL_STREAM, "critical stream reset")
            return []
        if self._send_state.get(sid) == MessageState.TRAILERS_DONE:
            del self._send_state[sid]
        if stream.kind == StreamKind.REQUEST:
            if stream.blocked:
                self._qpack.cancel(sid)
            return [StreamResetReceived(sid, error_code)]
        return []

    def _complete_frame(self, stream: RecvStream, events: list[H3Event]) -> None:
        """Dispatch a fully received non-DATA frame."""
        frame_type = stream.frame_type
        stream.frame_type = NO_FRAME
        if stream.skip:
            stream.skip = False
            return
        payload = bytes(stream.payload)
        stream.payload = bytearray()
        if stream.kind == StreamKind.REQUEST:
            if frame_type == FrameType.HEADERS:
                self._decode_headers(stream, payload, events)
            elif frame_type == FrameType.PUSH_PROMISE:  # server side: clients must not send it
                raise H3ConnectionError(
                    H3ErrorCode.H3_FRAME_UNEXPECTED, "PUSH_PROMISE from a client"
                )
            return
        frame = parse_frame_payload(frame_type, payload)
        if isinstance(frame, SettingsFrame):
            stream.settings_seen = True
            self._on_settings(frame.as_dict(), events)
        elif isinstance(frame, GoawayFrame):
            self._on_goaway(frame.id, events)
        # CANCEL_PUSH (we never accept pushes) and MAX_PUSH_ID (we never push) need no action

    def _on_settings(self, settings: dict[int, int], events: list[H3Event]) -> None:
        """Apply the peer's SETTINGS (RFC 9114 §7.2.4, RFC 9204 §5)."""
        self._control.on_settings(settings)
        self._qpack.apply_peer_settings(
            settings.get(Setting.QPACK_MAX_TABLE_CAPACITY, 0),
            settings.get(Setting.QPACK_BLOCKED_STREAMS, 0),
        )
        events.append(SettingsReceived(dict(settings)))

    def _on_goaway(self, ident: int, events: list[H3Event]) -> None:
        """Handle GOAWAY (RFC 9114 §5.2): IDs must be valid and must not increase."""
        self._control.on_goaway(ident)
        events.append(GoawayReceived(ident))

    def _decode_headers(self, stream: RecvStream, block: bytes, events: list[H3Event]) -> None:
        """QPACK-decode a field section; the stream blocks if it needs encoder-stream data."""
        self._on_decode_result(stream, self._qpack.decode(stream.stream_id, block), events)

    def _on_decode_result(
        self, stream: RecvStream, result: DecodeResult, events: list[H3Event]
    ) -> None:
        """Act on the QPACK outcome for a field section (RFC 9204 §2.1.2, RFC 9114 §4.2.2)."""
        if isinstance(result, Decoded):
            self._on_headers_decoded(stream, result.decoder_data, result.headers, events)
            return
        if isinstance(result, Blocked):
            stream.blocked = True
            return
        self._qpack.send_decoder(result.decoder_data)
        reason = f"field section of {result.size}+ bytes over our limit of {self._qpack.receiver.limit}"
        sid = stream.stream_id
        if (
            not self._is_client
            and stream.msg == MessageState.EXPECT_HEADERS
            and sid not in self._send_state
            and self._peer_accepts(_TOO_LARGE_HEAD)
        ):
            # answer 431 and stop reading the request (H3_NO_ERROR, RFC 9114 §4.1)
            stream.kind = StreamKind.DISCARD
            stream.frame_type = NO_FRAME
            self.send_headers(sid, _TOO_LARGE_HEAD, end_stream=True)
            self._quic.stop_stream(sid, H3ErrorCode.H3_NO_ERROR)
            events.append(MessageRejected(sid, H3ErrorCode.H3_NO_ERROR, reason))
            return
        self._stream_error(stream, H3ErrorCode.H3_EXCESSIVE_LOAD, events, reason)

    def _on_headers_decoded(
        self, stream: RecvStream, decoder_data: bytes, headers: Headers, events: list[H3Event]
    ) -> None:
        """Emit a decoded field section and advance the message state."""
        self._qpack.send_decoder(decoder_data)
        is_trailers = stream.msg == MessageState.BODY
        if not valid_field_section(
            headers, is_request=not self._is_client, is_trailers=is_trailers
        ):
            self._stream_error(stream, H3ErrorCode.H3_MESSAGE_ERROR, events, "malformed fields")
            return
        stream.msg = MessageState.TRAILERS_DONE if is_trailers else MessageState.BODY
        events.append(HeadersReceived(stream.stream_id, headers, False))


_UNI_KINDS: dict[int, StreamKind] = {
    StreamType.CONTROL: StreamKind.CONTROL,
    StreamType.QPACK_ENCODER: StreamKind.QPACK_ENCODER,
    StreamType.QPACK_DECODER: StreamKind.QPACK_DECODER,
}
