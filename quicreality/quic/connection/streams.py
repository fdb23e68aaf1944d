"""The stream manager: the connection's streams, flow control in both directions and stream limits.

It owns every stream-level number of RFC 9000 §2-§4: the streams by ID, which ones have data for
the application (``ready_streams``) or are held back (``reading_paused``), which have frames to
send (``send_queue``), the connection windows both ways (``local_max_data``/``data_received``/
``data_consumed`` and ``peer_max_data``/``data_sent``) and the stream count limits both ways. The
receive handlers and the send path ask it for streams; they do not keep stream state themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import QuicConfiguration
from ..errors import LocalProtocolError, QuicConnectionError, QuicErrorCode
from ..streams import QuicStream, StreamSendState
from ..transport_params import QuicTransportParameters

if TYPE_CHECKING:
    from .spaces import OwedFrames


class StreamManager:
    """Streams and flow control of one connection."""

    def __init__(self, config: QuicConfiguration, *, is_client: bool, owed: OwedFrames) -> None:
        """``owed`` is the 1-RTT space's record: MAX_DATA and MAX_STREAMS are owed there."""
        self._config = config
        self._is_client = is_client
        self._owed = owed
        #: the peer's transport parameters (defaults until received)
        self.peer_params = QuicTransportParameters()
        self.streams: dict[int, QuicStream] = {}
        self.ready_streams: dict[int, QuicStream] = {}
        self.reading_paused: set[int] = set()  # streams whose data next_event() holds back
        self.send_queue: dict[int, QuicStream] = {}
        self.local_max_data = config.max_data
        self.data_received = 0
        self.data_consumed = 0
        self.peer_max_data = 0
        self.data_sent = 0
        self.local_max_streams = [config.max_streams_bidi, config.max_streams_uni]
        self.peer_streams_closed = [0, 0]
        self.peer_streams_opened = [0, 0]
        self.peer_max_streams = [0, 0]
        self.local_next_stream = [0 if is_client else 1, 2 if is_client else 3]

    def apply_peer_params(self, params: QuicTransportParameters) -> None:
        """Take the peer's initial limits (RFC 9000 §18.2) and raise the open streams' to them."""
        self.peer_params = params
        self.peer_max_data = params.initial_max_data or 0
        self.peer_max_streams = [params.initial_max_streams_bidi or 0,
                                 params.initial_max_streams_uni or 0]
        for stream in self.streams.values():
            stream.peer_max_stream_data = max(
                stream.peer_max_stream_data, self.initial_peer_stream_limit(stream.stream_id)
            )

    def initial_peer_stream_limit(self, stream_id: int) -> int:
        """The peer's initial MAX_STREAM_DATA for ``stream_id`` (RFC 9000 §18.2)."""
        p = self.peer_params
        if stream_id & 2:
            return p.initial_max_stream_data_uni or 0
        local = bool(stream_id & 1) == (not self._is_client)
        if local:
            return p.initial_max_stream_data_bidi_remote or 0
        return p.initial_max_stream_data_bidi_local or 0

    def account_received(self, increase: int, frame_type: int) -> None:
        """Connection-level receive flow control (RFC 9000 §4.1)."""
        self.data_received += increase
        if self.data_received > self.local_max_data:
            raise QuicConnectionError(QuicErrorCode.FLOW_CONTROL_ERROR, frame_type,
                                      "Connection flow control exceeded")

    def is_local_stream(self, stream_id: int) -> bool:
        """True for a stream ID of our own (RFC 9000 §2.1: the low bit names the initiator)."""
        return bool(stream_id & 1) == (not self._is_client)

    def stream_for_receive(self, stream_id: int, frame_type: int) -> QuicStream | None:
        """Find or open the stream a receive-side frame refers to (RFC 9000 §3.2, §4.6)."""
        stream = self.streams.get(stream_id)
        if stream is not None:
            if not stream.can_receive:
                raise QuicConnectionError(QuicErrorCode.STREAM_STATE_ERROR, frame_type,
                                          "Stream is send-only")
            return stream
        uni = bool(stream_id & 2)
        if self.is_local_stream(stream_id):
            if uni:
                raise QuicConnectionError(QuicErrorCode.STREAM_STATE_ERROR, frame_type,
                                          "Stream is send-only")
            if stream_id >= self.local_next_stream[0]:
                raise QuicConnectionError(QuicErrorCode.STREAM_STATE_ERROR, frame_type,
                                          "Stream not opened")
            return None
        return self.open_peer_stream(stream_id, frame_type)

    def stream_for_send_frame(self, stream_id: int, frame_type: int) -> QuicStream | None:
        """Find or open the stream a send-side frame (MAX_STREAM_DATA, STOP_SENDING) refers to."""
        stream = self.streams.get(stream_id)
        if stream is not None:
            if not stream.can_send:
                raise QuicConnectionError(QuicErrorCode.STREAM_STATE_ERROR, frame_type,
                                          "Stream is receive-only")
            return stream
        uni = bool(stream_id & 2)
        if self.is_local_stream(stream_id):
            if stream_id >= self.local_next_stream[1 if uni else 0]:
                raise QuicConnectionError(QuicErrorCode.STREAM_STATE_ERROR, frame_type,
                                          "Stream not opened")
            return None
        if uni:
            raise QuicConnectionError(QuicErrorCode.STREAM_STATE_ERROR, frame_type,
                                      "Stream is receive-only")
        return self.open_peer_stream(stream_id, frame_type)

    def open_peer_stream(self, stream_id: int, frame_type: int) -> QuicStream | None:
        """Open a peer stream and every lower one of its kind (RFC 9000 §3.2) within our limit."""
        idx = 1 if stream_id & 2 else 0
        count = (stream_id >> 2) + 1
        if count > self.local_max_streams[idx]:
            raise QuicConnectionError(QuicErrorCode.STREAM_LIMIT_ERROR, frame_type,
                                      "Stream limit exceeded")
        opened = self.peer_streams_opened[idx]
        if count <= opened:
            return None  # already closed
        low_bits = stream_id & 3
        stream: QuicStream | None = None
        for n in range(opened, count):
            stream = self.create_stream((n << 2) | low_bits)
        self.peer_streams_opened[idx] = count
        return stream

    def create_stream(self, stream_id: int) -> QuicStream:
        """Create and register the stream ``stream_id`` with the initial windows both ways."""
        local = bool(stream_id & 1) == (not self._is_client)
        uni = bool(stream_id & 2)
        stream = QuicStream(
            stream_id,
            can_send=local or not uni,
            can_receive=not (local and uni),
            local_max_stream_data=self._config.max_stream_data,
            peer_max_stream_data=self.initial_peer_stream_limit(stream_id),
        )
        self.streams[stream_id] = stream
        return stream

    def stream_for_app_send(self, stream_id: int) -> QuicStream:
        """The stream the application writes to, opening it if it is the next local one."""
        stream = self.streams.get(stream_id)
        if stream is None:
            local = bool(stream_id & 1) == (not self._is_client)
            idx = 1 if stream_id & 2 else 0
            if not local or stream_id != self.local_next_stream[idx]:
                raise LocalProtocolError(f"Stream {stream_id} cannot be opened or is closed")
            self.local_next_stream[idx] += 4
            stream = self.create_stream(stream_id)
        if not stream.can_send:
            raise LocalProtocolError(f"Stream {stream_id} is receive-only")
        return stream

    def stream_was_closed(self, stream_id: int) -> bool:
        """True for a receiving stream that was opened and has since been forgotten."""
        idx = 1 if stream_id & 2 else 0
        if self.is_local_stream(stream_id):
            return idx == 0 and stream_id < self.local_next_stream[0]
        return (stream_id >> 2) < self.peer_streams_opened[idx]

    def after_stream_consumed(self, stream: QuicStream) -> None:
        """The application took data: re-open windows (RFC 9000 §4.2), forget finished streams."""
        if stream.maybe_update_max_stream_data():
            self.send_queue[stream.stream_id] = stream
        self.maybe_raise_max_data()
        self.maybe_close_stream(stream)

    def maybe_raise_max_data(self) -> None:
        """Announce a larger connection window once half of it is consumed (RFC 9000 §4.2)."""
        window = self._config.max_data
        if self.data_consumed + window // 2 > self.local_max_data:
            self.local_max_data = self.data_consumed + window
            self._owed.max_data = True

    def maybe_close_stream(self, stream: QuicStream) -> None:
        """Forget a stream finished both ways and raise MAX_STREAMS for the peer (RFC 9000 §4.6)."""
        if not (stream.send_finished and stream.recv_finished) or stream.has_ready_data():
            return
        if stream.stop_sending_pending or stream.reset_pending:
            return
        sid = stream.stream_id
        if self.streams.pop(sid, None) is None:
            return
        self.send_queue.pop(sid, None)
        self.reading_paused.discard(sid)
        if not self.is_local_stream(sid):
            idx = 1 if sid & 2 else 0
            self.peer_streams_closed[idx] += 1
            initial = (self._config.max_streams_bidi, self._config.max_streams_uni)[idx]
            new_max = self.peer_streams_closed[idx] + initial
            if new_max - self.local_max_streams[idx] >= max(1, initial // 2):
                self.local_max_streams[idx] = new_max
                self._owed.max_streams[idx] = True

    # ------------------------------------------------------- application API

    def app_send(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Queue ``data`` (and the FIN) on a stream, opening it if it is the next local one."""
        stream = self.stream_for_app_send(stream_id)
        # DATA_SENT and later: only a repeated bare FIN in DATA_SENT is allowed
        if stream.send_state >= 2 and (data or end_stream) and (stream.send_state != 2 or data):
            raise LocalProtocolError(f"Stream {stream_id} is finished or reset")
        stream.write(data, end_stream)
        self.send_queue[stream_id] = stream

    def app_reset(self, stream_id: int, error_code: int) -> None:
        """Abandon sending on a stream (RESET_STREAM)."""
        stream = self.stream_for_app_send(stream_id)
        stream.reset(error_code)
        self.send_queue[stream_id] = stream

    def app_stop(self, stream_id: int, error_code: int) -> None:
        """Ask the peer to stop sending (STOP_SENDING); a no-op once the stream is finished."""
        stream = self.streams.get(stream_id)
        if stream is None and self.stream_was_closed(stream_id):
            return  # all of it was received and consumed: nothing left to stop (RFC 9000 §3.5)
        if stream is None or not stream.can_receive:
            raise LocalProtocolError(f"Stream {stream_id} cannot receive")
        if not stream.recv_finished:
            stream.stop_sending_pending = True
            stream.stop_sending_error_code = error_code
            self.send_queue[stream_id] = stream

    def buffered(self, stream_id: int, unsent: bool = False) -> int:
        """Bytes written to the stream and not yet acknowledged, or with ``unsent`` never sent
        (0 for unknown streams)."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return 0
        return stream.unsent if unsent else stream.buffered

    def resume_reading(self, stream_id: int) -> None:
        """Hand out the stream's data again (undo a pause)."""
        self.reading_paused.discard(stream_id)
        stream = self.streams.get(stream_id)
        if stream is not None and stream.has_ready_data():
            self.ready_streams[stream_id] = stream

    def pop_ready(self) -> tuple[int, bytes, bool] | None:
        """Data for the application: ``(stream_id, data, fin)`` of one ready, unpaused stream."""
        ready = self.ready_streams
        while ready:
            stream_id, stream = ready.popitem()
            if not stream.has_ready_data() or stream_id in self.reading_paused:
                continue  # a paused stream is re-queued by resume_reading()
            data, fin = stream.pull_ready()
            self.data_consumed += len(data)
            self.after_stream_consumed(stream)
            return stream_id, data, fin
        return None

    # Delivery callbacks of the frames the send path wrote (RFC 9000 §13.3: lost information is
    # queued again, never the packet).

    def on_stream_frame_delivery(self, delivered: bool, stream: QuicStream, offset: int,
                                 length: int, fin: bool) -> None:
        """A STREAM frame was acknowledged or lost."""
        if delivered:
            stream.on_frame_acked(offset, length, fin)
            if stream.send_finished:
                self.maybe_close_stream(stream)
        else:
            stream.on_frame_lost(offset, length, fin)
            if stream.has_data_to_send() and stream.stream_id in self.streams:
                self.send_queue[stream.stream_id] = stream

    def on_stop_sending_delivery(self, delivered: bool, stream: QuicStream) -> None:
        """A STOP_SENDING frame was acknowledged or lost."""
        if not delivered and not stream.recv_finished and stream.stream_id in self.streams:
            stream.stop_sending_pending = True
            self.send_queue[stream.stream_id] = stream

    def on_reset_delivery(self, delivered: bool, stream: QuicStream) -> None:
        """A RESET_STREAM frame was acknowledged or lost."""
        if delivered:
            stream.send_state = StreamSendState.RESET_RECVD
            self.maybe_close_stream(stream)
        elif stream.stream_id in self.streams:
            stream.reset_pending = True
            self.send_queue[stream.stream_id] = stream

    def on_max_stream_data_delivery(self, delivered: bool, stream: QuicStream) -> None:
        """A MAX_STREAM_DATA frame was acknowledged or lost."""
        if not delivered and stream.stream_id in self.streams and not stream.recv_finished:
            stream.max_stream_data_pending = True
            self.send_queue[stream.stream_id] = stream
