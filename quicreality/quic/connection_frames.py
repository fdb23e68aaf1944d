"""Receive-side frame handlers of :class:`~quicreality.quic.connection.QuicConnection` (RFC 9000 §19).

Dispatch is a table keyed by frame type that also names the packet number spaces where the frame
is allowed (RFC 9000 §12.4, Table 3). Handlers parse straight from the buffer: no frame objects are
built on the hot path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..wire.buffer import Buffer, BufferReadError
from ..wire.rangeset import RangeSet
from . import events
from .connection_base import ConnectionBase
from .errors import QuicConnectionError, QuicErrorCode
from .streams import QuicStream

if TYPE_CHECKING:
    from .packet import QuicHeader

# Allowed spaces as bit masks: Initial, Handshake, Application (RFC 9000 §12.4 Table 3).
_I, _H, _A = 1, 2, 4
_IHA = _I | _H | _A

#: RFC 9000 §19.8: largest stream offset.
MAX_STREAM_OFFSET = (1 << 62) - 1
#: RFC 9000 §19.11: MAX_STREAMS values cannot exceed 2^60.
MAX_STREAMS_LIMIT = 1 << 60


class FrameHandlersMixin(ConnectionBase):
    """Frame handlers; mixed into QuicConnection (attributes are defined there)."""

    def _handle_payload(self, space_id: int, payload: bytes, now: float,
                        header: QuicHeader) -> bool:
        """Dispatch every frame of a decrypted packet. Returns True if ack-eliciting."""
        if not payload:
            raise QuicConnectionError(QuicErrorCode.PROTOCOL_VIOLATION, None, "Packet has no frames")
        buf = Buffer(data=payload)
        mask = 1 << space_id
        ack_eliciting = False
        self._packet_dcid = header.destination_cid
        while not buf.eof():
            try:
                frame_type = buf.pull_uint_var()
            except BufferReadError:
                raise QuicConnectionError(QuicErrorCode.FRAME_ENCODING_ERROR, None,
                                          "Truncated frame type") from None
            entry = _HANDLERS.get(frame_type)
            if entry is None:
                raise QuicConnectionError(QuicErrorCode.FRAME_ENCODING_ERROR, frame_type,
                                          "Unknown frame type")
            handler, allowed, eliciting = entry
            if not allowed & mask:
                raise QuicConnectionError(QuicErrorCode.PROTOCOL_VIOLATION, frame_type,
                                          "Frame not allowed in this packet type")
            try:
                handler(self, space_id, frame_type, buf, now)
            except BufferReadError:
                raise QuicConnectionError(QuicErrorCode.FRAME_ENCODING_ERROR, frame_type,
                                          "Malformed frame") from None
            if eliciting:
                ack_eliciting = True
        return ack_eliciting


    # ----------------------------------------------------------- handlers

    def _handle_padding_frame(self, space_id: int, frame_type: int, buf: Buffer, now: float) -> None:
        """PADDING: skip the run of zero bytes."""
        raw = buf.raw
        pos = buf.tell()
        end = buf.capacity
        while pos < end and raw[pos] == 0:
            pos += 1
        buf.seek(pos)

    def _handle_ping_frame(self, space_id: int, frame_type: int, buf: Buffer, now: float) -> None:
        """PING: only elicits an ACK."""

    def _handle_ack_frame(self, space_id: int, frame_type: int, buf: Buffer, now: float) -> None:
        """ACK / ACK_ECN (RFC 9000 §19.3)."""
        largest = buf.pull_uint_var()
        delay = buf.pull_uint_var()
        count = buf.pull_uint_var()
        first = buf.pull_uint_var()
        smallest = largest - first
        if smallest < 0:
            raise QuicConnectionError(QuicErrorCode.FRAME_ENCODING_ERROR, frame_type,
                                      "ACK range underflow")
        ranges = [range(smallest, largest + 1)]
        for _ in range(count):
            gap = buf.pull_uint_var()
            length = buf.pull_uint_var()
            largest = smallest - gap - 2
            smallest = largest - length
            if smallest < 0:
                raise QuicConnectionError(QuicErrorCode.FRAME_ENCODING_ERROR, frame_type,
                                          "ACK range underflow")
            ranges.append(range(smallest, largest + 1))
        if frame_type == 0x03:
            buf.pull_uint_var()
            buf.pull_uint_var()
            buf.pull_uint_var()
        space = self._recovery.spaces[space_id]
        if ranges[0].stop > space.next_pn:
            raise QuicConnectionError(QuicErrorCode.PROTOCOL_VIOLATION, frame_type,
                                      "ACK for a packet never sent")
        rangeset = RangeSet()
        ranges.reverse()
        rangeset._ranges = ranges  # noqa: SLF001 - already sorted and disjoint
        ack_delay = 0.0
        if space_id == 2:
            ack_delay = (delay << self._peer_ack_delay_exponent) / 1_000_000
        self._now_hint = now
        self._recovery.on_ack_received(space_id, rangeset, ack_delay, now)


    def _handle_reset_stream_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                   now: float) -> None:
        """RESET_STREAM (RFC 9000 §19.4)."""
        stream_id = buf.pull_uint_var()
        error_code = buf.pull_uint_var()
        final_size = buf.pull_uint_var()
        stream = self._stream_for_receive(stream_id, frame_type)
        if stream is None or stream.recv_finished:
            return
        consumed = stream.recv_delivered - stream.recv_unread  # what the application took
        increase = stream.handle_reset(error_code, final_size)
        self._account_received(increase, frame_type)
        # RFC 9000 §4.5: the whole final size is spent; what was never read is credited back.
        self._data_consumed += final_size - consumed
        self._maybe_raise_max_data()
        self._ready_streams.pop(stream_id, None)
        self._events.append(events.StreamReset(stream_id=stream_id, error_code=error_code))
        self._maybe_close_stream(stream)

    def _handle_stop_sending_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                   now: float) -> None:
        """STOP_SENDING (RFC 9000 §19.5): answer with RESET_STREAM."""
        stream_id = buf.pull_uint_var()
        error_code = buf.pull_uint_var()
        stream = self._stream_for_send_frame(stream_id, frame_type)
        if stream is None:
            return
        if not stream.send_finished:
            stream.reset(error_code)
            self._send_queue[stream_id] = stream
        self._events.append(events.StopSendingReceived(stream_id=stream_id, error_code=error_code))

    def _handle_crypto_frame(self, space_id: int, frame_type: int, buf: Buffer, now: float) -> None:
        """CRYPTO (RFC 9000 §19.6)."""
        offset = buf.pull_uint_var()
        length = buf.pull_uint_var()
        if offset + length > MAX_STREAM_OFFSET:
            raise QuicConnectionError(QuicErrorCode.FRAME_ENCODING_ERROR, frame_type,
                                      "CRYPTO offset too large")
        data = buf.pull_bytes(length)
        self._handle_crypto_data(space_id, offset, data, now)

    def _handle_new_token_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                now: float) -> None:
        """NEW_TOKEN (RFC 9000 §19.7): tokens are not used for future connections here."""
        length = buf.pull_uint_var()
        if length == 0:
            raise QuicConnectionError(QuicErrorCode.FRAME_ENCODING_ERROR, frame_type, "Empty token")
        buf.pull_bytes(length)
        if not self.is_client:
            raise QuicConnectionError(QuicErrorCode.PROTOCOL_VIOLATION, frame_type,
                                      "Clients must not send NEW_TOKEN")

    def _handle_stream_frame(self, space_id: int, frame_type: int, buf: Buffer, now: float) -> None:
        """STREAM (RFC 9000 §19.8)."""
        stream_id = buf.pull_uint_var()
        offset = buf.pull_uint_var() if frame_type & 4 else 0
        length = buf.pull_uint_var() if frame_type & 2 else buf.remaining()
        if offset + length > MAX_STREAM_OFFSET:
            raise QuicConnectionError(QuicErrorCode.FRAME_ENCODING_ERROR, frame_type,
                                      "STREAM offset too large")
        data = buf.pull_bytes(length)
        stream = self._stream_for_receive(stream_id, frame_type)
        if stream is None:
            return
        increase = stream.handle_frame(offset, data, bool(frame_type & 1))
        if increase:
            self._account_received(increase, frame_type)
        if stream.has_ready_data():
            self._ready_streams[stream_id] = stream

    def _handle_max_data_frame(self, space_id: int, frame_type: int, buf: Buffer, now: float) -> None:
        """MAX_DATA (RFC 9000 §19.9)."""
        value = buf.pull_uint_var()
        if value > self._peer_max_data:
            self._peer_max_data = value

    def _handle_max_stream_data_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                      now: float) -> None:
        """MAX_STREAM_DATA (RFC 9000 §19.10)."""
        stream_id = buf.pull_uint_var()
        value = buf.pull_uint_var()
        stream = self._stream_for_send_frame(stream_id, frame_type)
        if stream is not None and value > stream.peer_max_stream_data:
            stream.peer_max_stream_data = value
            if stream.has_data_to_send():
                self._send_queue[stream_id] = stream

    def _handle_max_streams_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                  now: float) -> None:
        """MAX_STREAMS (RFC 9000 §19.11)."""
        value = buf.pull_uint_var()
        if value > MAX_STREAMS_LIMIT:
            raise QuicConnectionError(QuicErrorCode.FRAME_ENCODING_ERROR, frame_type,
                                      "MAX_STREAMS too large")
        idx = frame_type & 1
        if value > self._peer_max_streams[idx]:
            self._peer_max_streams[idx] = value

    def _handle_data_blocked_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                   now: float) -> None:
        """DATA_BLOCKED (RFC 9000 §19.12): informational."""
        buf.pull_uint_var()

    def _handle_stream_data_blocked_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                          now: float) -> None:
        """STREAM_DATA_BLOCKED (RFC 9000 §19.13): informational, but the stream must be valid."""
        stream_id = buf.pull_uint_var()
        buf.pull_uint_var()
        self._stream_for_receive(stream_id, frame_type)

    def _handle_streams_blocked_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                      now: float) -> None:
        """STREAMS_BLOCKED (RFC 9000 §19.14)."""
        if buf.pull_uint_var() > MAX_STREAMS_LIMIT:
            raise QuicConnectionError(QuicErrorCode.FRAME_ENCODING_ERROR, frame_type,
                                      "STREAMS_BLOCKED too large")

    def _handle_new_connection_id_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                        now: float) -> None:
        """NEW_CONNECTION_ID (RFC 9000 §19.15)."""
        seq = buf.pull_uint_var()
        retire_prior_to = buf.pull_uint_var()
        length = buf.pull_uint8()
        if retire_prior_to > seq or length < 1 or length > 20:
            raise QuicConnectionError(QuicErrorCode.FRAME_ENCODING_ERROR, frame_type,
                                      "Invalid NEW_CONNECTION_ID")
        cid = buf.pull_bytes(length)
        token = buf.pull_bytes(16)
        self._peer_cids.add(seq, retire_prior_to, cid, token)

    def _handle_retire_connection_id_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                           now: float) -> None:
        """RETIRE_CONNECTION_ID (RFC 9000 §19.16): retire and replace."""
        seq = buf.pull_uint_var()
        entry = self._host_cids.retire(seq, self._packet_dcid)
        if entry is not None:
            self._events.append(events.ConnectionIdRetired(connection_id=entry.cid))
            limit = min(self._peer_params.active_connection_id_limit or 2, 4)
            for new in self._host_cids.issue(limit):
                self._cids_to_announce.append(new)
                self._events.append(events.ConnectionIdIssued(connection_id=new.cid))

    def _handle_path_challenge_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                     now: float) -> None:
        """PATH_CHALLENGE (RFC 9000 §19.17): echo in PATH_RESPONSE."""
        self._path_responses.append(buf.pull_bytes(8))

    def _handle_path_response_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                    now: float) -> None:
        """PATH_RESPONSE (RFC 9000 §19.18): we never probe paths, so nothing to match."""
        buf.pull_bytes(8)

    def _handle_connection_close_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                       now: float) -> None:
        """CONNECTION_CLOSE (RFC 9000 §19.19): enter draining."""
        error_code = buf.pull_uint_var()
        closing_frame_type = buf.pull_uint_var() if frame_type == 0x1C else None
        reason = buf.pull_bytes(buf.pull_uint_var()).decode("utf-8", errors="replace")
        self._qlog.connection_closed(now, "remote", error_code, reason)
        self._terminate(error_code, closing_frame_type, reason, by_peer=True, now=now)

    def _handle_handshake_done_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                     now: float) -> None:
        """HANDSHAKE_DONE (RFC 9000 §19.20): confirms the handshake on the client."""
        if not self.is_client:
            raise QuicConnectionError(QuicErrorCode.PROTOCOL_VIOLATION, frame_type,
                                      "Clients must not send HANDSHAKE_DONE")
        self._confirm_handshake(now)

    def _handle_datagram_frame(self, space_id: int, frame_type: int, buf: Buffer, now: float) -> None:
        """DATAGRAM (RFC 9221 §4)."""
        length = buf.pull_uint_var() if frame_type == 0x31 else buf.remaining()
        limit = self.configuration.max_datagram_frame_size
        if limit is None or length > limit:
            raise QuicConnectionError(QuicErrorCode.PROTOCOL_VIOLATION, frame_type,
                                      "Unexpected DATAGRAM frame")
        self._events.append(events.DatagramFrameReceived(data=buf.pull_bytes(length)))

    # -------------------------------------------------------------- helpers

    def _account_received(self, increase: int, frame_type: int) -> None:
        """Connection-level receive flow control (RFC 9000 §4.1)."""
        self._data_received += increase
        if self._data_received > self._local_max_data:
            raise QuicConnectionError(QuicErrorCode.FLOW_CONTROL_ERROR, frame_type,
                                      "Connection flow control exceeded")

    def _is_local_stream(self, stream_id: int) -> bool:
        return bool(stream_id & 1) == (not self.is_client)

    def _stream_for_receive(self, stream_id: int, frame_type: int) -> QuicStream | None:
        """Find or open the stream a receive-side frame refers to (RFC 9000 §3.2, §4.6)."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            if not stream.can_receive:
                raise QuicConnectionError(QuicErrorCode.STREAM_STATE_ERROR, frame_type,
                                          "Stream is send-only")
            return stream
        uni = bool(stream_id & 2)
        if self._is_local_stream(stream_id):
            if uni:
                raise QuicConnectionError(QuicErrorCode.STREAM_STATE_ERROR, frame_type,
                                          "Stream is send-only")
            if stream_id >= self._local_next_stream[0]:
                raise QuicConnectionError(QuicErrorCode.STREAM_STATE_ERROR, frame_type,
                                          "Stream not opened")
            return None
        return self._open_peer_stream(stream_id, frame_type)

    def _stream_for_send_frame(self, stream_id: int, frame_type: int) -> QuicStream | None:
        """Find or open the stream a send-side frame (MAX_STREAM_DATA, STOP_SENDING) refers to."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            if not stream.can_send:
                raise QuicConnectionError(QuicErrorCode.STREAM_STATE_ERROR, frame_type,
                                          "Stream is receive-only")
            return stream
        uni = bool(stream_id & 2)
        if self._is_local_stream(stream_id):
            if stream_id >= self._local_next_stream[1 if uni else 0]:
                raise QuicConnectionError(QuicErrorCode.STREAM_STATE_ERROR, frame_type,
                                          "Stream not opened")
            return None
        if uni:
            raise QuicConnectionError(QuicErrorCode.STREAM_STATE_ERROR, frame_type,
                                      "Stream is receive-only")
        return self._open_peer_stream(stream_id, frame_type)

    def _open_peer_stream(self, stream_id: int, frame_type: int) -> QuicStream | None:
        idx = 1 if stream_id & 2 else 0
        count = (stream_id >> 2) + 1
        if count > self._local_max_streams[idx]:
            raise QuicConnectionError(QuicErrorCode.STREAM_LIMIT_ERROR, frame_type,
                                      "Stream limit exceeded")
        opened = self._peer_streams_opened[idx]
        if count <= opened:
            return None  # already closed
        low_bits = stream_id & 3
        stream: QuicStream | None = None
        for n in range(opened, count):
            stream = self._create_stream((n << 2) | low_bits)
        self._peer_streams_opened[idx] = count
        return stream


_M = FrameHandlersMixin
#: frame type -> (handler, allowed spaces mask, ack-eliciting) (RFC 9000 §12.4 Table 3, §13.2.1).
_HANDLERS: dict[int, tuple[Any, int, bool]] = {
    0x00: (_M._handle_padding_frame, _IHA, False),
    0x01: (_M._handle_ping_frame, _IHA, True),
    0x02: (_M._handle_ack_frame, _IHA, False),
    0x03: (_M._handle_ack_frame, _IHA, False),
    0x04: (_M._handle_reset_stream_frame, _A, True),
    0x05: (_M._handle_stop_sending_frame, _A, True),
    0x06: (_M._handle_crypto_frame, _IHA, True),
    0x07: (_M._handle_new_token_frame, _A, True),
    **{t: (_M._handle_stream_frame, _A, True) for t in range(0x08, 0x10)},
    0x10: (_M._handle_max_data_frame, _A, True),
    0x11: (_M._handle_max_stream_data_frame, _A, True),
    0x12: (_M._handle_max_streams_frame, _A, True),
    0x13: (_M._handle_max_streams_frame, _A, True),
    0x14: (_M._handle_data_blocked_frame, _A, True),
    0x15: (_M._handle_stream_data_blocked_frame, _A, True),
    0x16: (_M._handle_streams_blocked_frame, _A, True),
    0x17: (_M._handle_streams_blocked_frame, _A, True),
    0x18: (_M._handle_new_connection_id_frame, _A, True),
    0x19: (_M._handle_retire_connection_id_frame, _A, True),
    0x1A: (_M._handle_path_challenge_frame, _A, True),
    0x1B: (_M._handle_path_response_frame, _A, True),
    0x1C: (_M._handle_connection_close_frame, _IHA, False),
    0x1D: (_M._handle_connection_close_frame, _A, False),
    0x1E: (_M._handle_handshake_done_frame, _A, True),
    0x30: (_M._handle_datagram_frame, _A, True),
    0x31: (_M._handle_datagram_frame, _A, True),
}
