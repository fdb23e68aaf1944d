"""Stream send/receive buffers with offsets, retransmission ranges and flow control (RFC 9000 §2-§4).

Theory of operation:

* **Send side.** Application bytes are appended to ``_buffer`` which starts at stream offset
  ``_buffer_start``. ``_pending`` holds the ranges that must be (re)sent; new data is added to it when
  written, lost ranges are re-added by the delivery callback. ``_acked`` holds acknowledged ranges; the
  buffer is trimmed once its acknowledged prefix grows large. The FIN is tracked separately.
* **Receive side.** Frames are reassembled by offset. In-order data is handed out without extra
  copies when there is no gap. Out-of-order data is copied into ``_recv_buf``, one contiguous
  buffer that starts at ``recv_delivered`` (holes are zeros), and ``_recv_have`` (a bisect-sorted
  :class:`RangeSet`) records which parts of it were received. Only holes are written: the first
  bytes received for an offset win, and overlapping or repeated frames cost no memory. The buffer
  therefore never holds more than the receive window the peer was given (RFC 9000 §4.1, §7.5 for
  CRYPTO), and the number of separate ranges is bounded in proportion to it (each costs a few
  dozen bytes): a peer that fragments beyond that gets FLOW_CONTROL_ERROR (CRYPTO_BUFFER_EXCEEDED
  on a CRYPTO stream).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from ..wire.rangeset import RangeSet
from .errors import QuicConnectionError, QuicErrorCode

#: Trim the send buffer once this many acknowledged bytes sit at its front.
_TRIM_THRESHOLD: Final = 65536
#: Out-of-order ranges allowed in a receive buffer: this many, plus one per this many buffered bytes.
RECV_RANGES_BASE: Final = 128
RECV_RANGES_BYTES: Final = 256
#: RFC 9000 §19.8, §19.6: frame types named in reassembly errors.
_FRAME_STREAM: Final = 0x08
_FRAME_CRYPTO: Final = 0x06


class StreamSendState(IntEnum):
    """Sending part states (RFC 9000 §3.1)."""

    READY = 0
    SEND = 1
    DATA_SENT = 2
    DATA_RECVD = 3
    RESET_SENT = 4
    RESET_RECVD = 5


class StreamRecvState(IntEnum):
    """Receiving part states (RFC 9000 §3.2)."""

    RECV = 0
    SIZE_KNOWN = 1
    DATA_RECVD = 2
    DATA_READ = 3
    RESET_RECVD = 4
    RESET_READ = 5


def stream_is_client_initiated(stream_id: int) -> bool:
    """RFC 9000 §2.1: the least significant bit is 0 for client-initiated streams."""
    return not stream_id & 1


def stream_is_unidirectional(stream_id: int) -> bool:
    """RFC 9000 §2.1: bit 0x2 set means unidirectional."""
    return bool(stream_id & 2)


class QuicStream:
    """One stream: send buffer, receive reassembly and per-stream flow control."""

    __slots__ = (
        "stream_id",
        "can_send",
        "can_receive",
        # send
        "_buffer",
        "_buffer_start",
        "_write_offset",
        "_pending",
        "_acked",
        "_fin_written",
        "_fin_pending",
        "_fin_acked",
        "send_highest",
        "peer_max_stream_data",
        "send_state",
        "reset_pending",
        "reset_error_code",
        "blocked_sent_at",
        # receive
        "recv_state",
        "_recv_buf",
        "_recv_have",
        "_recv_ready",
        "_buffer_error",
        "recv_delivered",
        "recv_highest",
        "recv_final_size",
        "local_max_stream_data",
        "local_max_stream_data_sent",
        "local_window",
        "max_stream_data_pending",
        "stop_sending_pending",
        "stop_sending_error_code",
        "stop_sending_received",
        "fin_delivered",
        "fin_ready",
        "is_closed",
    )

    def __init__(
        self,
        stream_id: int,
        *,
        can_send: bool,
        can_receive: bool,
        local_max_stream_data: int,
        peer_max_stream_data: int,
        crypto: bool = False,
    ):
        """Create a stream; ``crypto=True`` makes it a CRYPTO stream (its errors name CRYPTO)."""
        self.stream_id = stream_id
        self.can_send = can_send
        self.can_receive = can_receive
        self._buffer = bytearray()
        self._buffer_start = 0
        self._write_offset = 0
        self._pending = RangeSet()
        self._acked = RangeSet()
        self._fin_written = False
        self._fin_pending = False
        self._fin_acked = False
        self.send_highest = 0
        self.peer_max_stream_data = peer_max_stream_data
        self.send_state = StreamSendState.READY if can_send else StreamSendState.DATA_RECVD
        self.reset_pending = False
        self.reset_error_code = 0
        self.blocked_sent_at = -1
        self.recv_state = StreamRecvState.RECV if can_receive else StreamRecvState.DATA_READ
        self._recv_buf = bytearray()  # stream bytes from recv_delivered on, holes are zeros
        self._recv_have = RangeSet()  # out-of-order ranges present in _recv_buf
        self._recv_ready: list[bytes] = []
        self._buffer_error = (
            (QuicErrorCode.CRYPTO_BUFFER_EXCEEDED, _FRAME_CRYPTO) if crypto
            else (QuicErrorCode.FLOW_CONTROL_ERROR, _FRAME_STREAM))
        self.recv_delivered = 0
        self.recv_highest = 0
        self.recv_final_size: int | None = None
        self.local_max_stream_data = local_max_stream_data
        self.local_max_stream_data_sent = local_max_stream_data
        self.local_window = local_max_stream_data
        self.max_stream_data_pending = False
        self.stop_sending_pending = False
        self.stop_sending_error_code = 0
        #: the peer's STOP_SENDING was reported (once: repeats are retransmissions or a flood)
        self.stop_sending_received = False
        self.fin_delivered = False
        self.fin_ready = False
        self.is_closed = False

    # ------------------------------------------------------------------ send

    def write(self, data: bytes, end_stream: bool) -> None:
        """Queue application data (and optionally the FIN)."""
        if data:
            start = self._write_offset
            self._buffer += data
            self._write_offset = start + len(data)
            self._pending.add(start, self._write_offset)
        if end_stream:
            self._fin_written = True
            self._fin_pending = True
        if self.send_state == StreamSendState.READY:
            self.send_state = StreamSendState.SEND

    @property
    def write_offset(self) -> int:
        """Total bytes written by the application."""
        return self._write_offset

    @property
    def buffered(self) -> int:
        """Bytes written but not yet acknowledged."""
        acked_prefix = self._acked[0].stop if self._acked and self._acked[0].start == 0 else 0
        return self._write_offset - max(acked_prefix, 0)

    @property
    def unsent(self) -> int:
        """Bytes written but never sent (retransmissions of sent bytes are not counted)."""
        return self._write_offset - self.send_highest

    def has_data_to_send(self) -> bool:
        """True when a STREAM frame could be produced (ignoring flow control)."""
        return bool(self._pending) or self._fin_pending

    def next_send_offset(self) -> int:
        """Offset of the next bytes that would be sent."""
        return self._pending[0].start if self._pending else self._write_offset

    def get_frame(self, max_size: int, max_offset: int) -> tuple[int, bytes, bool] | None:
        """Take up to ``max_size`` bytes to send, not beyond stream offset ``max_offset``.

        Returns ``(offset, data, fin)`` or None when nothing may be sent. The caller registers the
        delivery callback with :meth:`on_frame_acked` / :meth:`on_frame_lost`.
        """
        pending = self._pending
        if pending:
            r = pending[0]
            start = r.start
            stop = min(r.stop, start + max_size, max_offset)
            if stop <= start:
                return None
            if stop == r.stop:
                pending.shift()
            else:
                pending._ranges[0] = range(stop, r.stop)
            base = self._buffer_start
            data = bytes(self._buffer[start - base : stop - base])
            if stop > self.send_highest:
                self.send_highest = stop
            fin = False
            if self._fin_pending and stop == self._write_offset and not pending:
                fin = True
                self._fin_pending = False
                self.send_state = StreamSendState.DATA_SENT
            return start, data, fin
        if self._fin_pending:
            self._fin_pending = False
            self.send_state = StreamSendState.DATA_SENT
            return self._write_offset, b"", True
        return None

    def on_frame_acked(self, offset: int, length: int, fin: bool) -> None:
        """Delivery callback: the frame ``[offset, offset+length)`` was acknowledged.

        A retransmission still queued for it (the frame was declared lost, then acknowledged
        after all: a spurious loss, RFC 9002 §6.1) is dropped; it is not sent again.
        """
        if length:
            self._acked.add(offset, offset + length)
            if self._pending:
                self._pending.subtract(offset, offset + length)
        if fin:
            self._fin_acked = True
            self._fin_pending = False
        acked = self._acked
        if acked and acked[0].start == 0:
            prefix = acked[0].stop
            drop = prefix - self._buffer_start
            if drop >= _TRIM_THRESHOLD or (prefix == self._write_offset and drop > 0):
                del self._buffer[:drop]
                self._buffer_start = prefix
        if (
            self._fin_acked
            and self._fin_written
            and acked
            and acked[0].start == 0
            and acked[0].stop == self._write_offset
        ) or (self._fin_acked and self._write_offset == 0):
            self.send_state = StreamSendState.DATA_RECVD

    def on_frame_lost(self, offset: int, length: int, fin: bool) -> None:
        """Delivery callback: the frame was lost; re-queue what was not acknowledged since."""
        if self.send_state in (StreamSendState.RESET_SENT, StreamSendState.RESET_RECVD):
            return
        if length:
            self._pending.add(offset, offset + length)
            for r in self._acked:
                if r.start >= offset + length:
                    break
                if r.stop > offset:
                    self._pending.subtract(r.start, r.stop)
        if fin and not self._fin_acked:
            self._fin_pending = True
            if self.send_state == StreamSendState.DATA_SENT:
                self.send_state = StreamSendState.SEND

    def reset(self, error_code: int) -> None:
        """Abandon sending (RESET_STREAM will be sent)."""
        if self.send_state in (
            StreamSendState.DATA_RECVD,
            StreamSendState.RESET_SENT,
            StreamSendState.RESET_RECVD,
        ):
            return
        self.send_state = StreamSendState.RESET_SENT
        self.reset_pending = True
        self.reset_error_code = error_code
        self._pending = RangeSet()
        self._fin_pending = False
        self._buffer = bytearray()
        self._buffer_start = self._write_offset

    @property
    def send_finished(self) -> bool:
        """Sending part is in a terminal state."""
        return self.send_state in (StreamSendState.DATA_RECVD, StreamSendState.RESET_RECVD)

    # --------------------------------------------------------------- receive

    def handle_frame(self, offset: int, data: bytes, fin: bool) -> int:
        """Accept a STREAM frame. Returns how many bytes raised the highest received offset.

        Raises QuicConnectionError on flow-control or final-size violations (RFC 9000 §4.5).
        """
        if self.recv_state in (StreamRecvState.RESET_RECVD, StreamRecvState.RESET_READ):
            return 0
        length = len(data)
        end = offset + length
        final = self.recv_final_size
        if final is not None:
            if end > final or (fin and end != final):
                raise QuicConnectionError(QuicErrorCode.FINAL_SIZE_ERROR, 0x08, "Final size changed")
        elif fin:
            if end < self.recv_highest:
                raise QuicConnectionError(
                    QuicErrorCode.FINAL_SIZE_ERROR, 0x08, "Final size below received data"
                )
            self.recv_final_size = end
            self.recv_state = StreamRecvState.SIZE_KNOWN
        if end > self.local_max_stream_data:
            raise QuicConnectionError(
                QuicErrorCode.FLOW_CONTROL_ERROR, 0x08, "Stream flow control exceeded"
            )
        increase = 0
        if end > self.recv_highest:
            increase = end - self.recv_highest
            self.recv_highest = end
        delivered = self.recv_delivered
        if end > delivered and length:
            if offset <= delivered and not self._recv_have:
                # In order with nothing buffered: hand the bytes on without copying.
                self._recv_ready.append(data[delivered - offset :] if offset < delivered else data)
                self.recv_delivered = end
            elif offset <= delivered and end < self._recv_have[0].start:
                # In order, short of the buffered data: deliver it and drop its hole.
                self._recv_ready.append(data[delivered - offset :] if offset < delivered else data)
                del self._recv_buf[: end - delivered]
                self.recv_delivered = end
            elif offset < delivered:
                self._store_out_of_order(delivered, data[delivered - offset :])
            else:
                self._store_out_of_order(offset, data)
        if (
            self.recv_final_size is not None
            and self.recv_delivered == self.recv_final_size
            and not self.fin_delivered
        ):
            self.fin_ready = True
            self.recv_state = StreamRecvState.DATA_RECVD
        return increase

    def _store_out_of_order(self, offset: int, data: bytes) -> None:
        """Copy the parts of ``data`` not yet received into the buffer; deliver a filled prefix."""
        delivered = self.recv_delivered
        buf = self._recv_buf
        have = self._recv_have
        end = offset + len(data)
        if offset - delivered > len(buf):
            buf += bytes(offset - delivered - len(buf))
        for hole in have.missing(offset, end):  # RFC 9000 §2.2: the first bytes received win
            buf[hole.start - delivered : hole.stop - delivered] = (
                data[hole.start - offset : hole.stop - offset])
        have.add(offset, end)
        if len(have) > RECV_RANGES_BASE + len(buf) // RECV_RANGES_BYTES:
            code, frame_type = self._buffer_error
            raise QuicConnectionError(code, frame_type, "Receive buffer too fragmented")
        first = have[0]
        if first.start == delivered:
            have.shift()
            size = first.stop - delivered
            with memoryview(buf) as view:
                self._recv_ready.append(view[:size].tobytes())
            del buf[:size]
            self.recv_delivered = first.stop

    @property
    def recv_buffered(self) -> int:
        """Bytes held for out-of-order data, holes included (at most the receive window)."""
        return len(self._recv_buf)

    @property
    def recv_buffered_ranges(self) -> int:
        """Separate out-of-order ranges held (bounded, see :data:`RECV_RANGES_BASE`)."""
        return len(self._recv_have)

    @property
    def _recv_chunks(self) -> dict[int, bytes]:
        """The out-of-order ranges by offset, copied (diagnostics: the audit reproducers read it)."""
        d = self.recv_delivered
        return {r.start: bytes(self._recv_buf[r.start - d : r.stop - d]) for r in self._recv_have}

    def has_ready_data(self) -> bool:
        """True when in-order data or the FIN awaits delivery to the application."""
        return bool(self._recv_ready) or (self.fin_ready and not self.fin_delivered)

    def pull_ready(self) -> tuple[bytes, bool]:
        """Take all in-order data ready for the application, and whether it ends the stream."""
        ready = self._recv_ready
        if len(ready) == 1:
            data = ready[0]
        else:
            data = b"".join(ready)
        self._recv_ready = []
        fin = False
        if self.fin_ready and not self.fin_delivered:
            fin = True
            self.fin_delivered = True
            self.recv_state = StreamRecvState.DATA_READ
        return data, fin

    @property
    def recv_unread(self) -> int:
        """In-order bytes received but not yet taken by :meth:`pull_ready`."""
        return sum(len(c) for c in self._recv_ready)

    def handle_reset(self, error_code: int, final_size: int) -> int:
        """Peer RESET_STREAM (RFC 9000 §19.4). Returns the increase in highest received offset."""
        if self.recv_final_size is not None and final_size != self.recv_final_size:
            raise QuicConnectionError(QuicErrorCode.FINAL_SIZE_ERROR, 0x04, "Final size changed")
        if final_size < self.recv_highest:
            raise QuicConnectionError(
                QuicErrorCode.FINAL_SIZE_ERROR, 0x04, "Final size below received data"
            )
        if final_size > self.local_max_stream_data:
            raise QuicConnectionError(
                QuicErrorCode.FLOW_CONTROL_ERROR, 0x04, "Stream flow control exceeded"
            )
        increase = final_size - self.recv_highest
        self.recv_highest = final_size
        self.recv_final_size = final_size
        self.recv_state = StreamRecvState.RESET_RECVD
        self._recv_buf = bytearray()
        self._recv_have = RangeSet()
        self._recv_ready = []
        self.fin_ready = False
        return increase

    def maybe_update_max_stream_data(self) -> bool:
        """Raise the receive window when half of it is consumed. Returns True if a frame is due."""
        if self.recv_state != StreamRecvState.RECV:
            return False
        if self.recv_delivered + self.local_window // 2 > self.local_max_stream_data:
            self.local_max_stream_data = self.recv_delivered + self.local_window
            self.max_stream_data_pending = True
            return True
        return False

    @property
    def recv_finished(self) -> bool:
        """Receiving part is in a terminal state."""
        return self.recv_state in (StreamRecvState.DATA_READ, StreamRecvState.RESET_RECVD,
                                   StreamRecvState.RESET_READ)
