"""Send path and application API of :class:`~quicreality.quic.connection.QuicConnection`.

``datagrams_to_send(now)`` fills datagrams space by space (Initial, Handshake, 1-RTT), coalescing
packets, within the congestion window, the pacer and the anti-amplification limit. Every frame
registers a delivery callback ``(handler, args)`` on its packet; recovery calls it on ACK or loss.
"""

from __future__ import annotations

from typing import Any

from ..qlog.sink import ack_frame, crypto_frame, stream_frame
from ..wire.buffer import Buffer
from . import events
from .connection_base import ConnectionBase
from .errors import LocalProtocolError, QuicErrorCode
from .flight_shape import complete_datagram
from .packet_builder import (
    AEAD_TAG_SIZE,
    MIN_INITIAL_DATAGRAM_SIZE,
    PACKET_NUMBER_SEND_SIZE,
    header_size,
    len_uint_var,
    seal_packet,
)
from .recovery.loss import SPACE_APPLICATION, SPACE_HANDSHAKE, SPACE_INITIAL, SentPacket
from .streams import QuicStream

_PACKET_TYPES: tuple[int, int, int] | None = None
_QLOG_TYPES = ("initial", "handshake", "1RTT")
#: Smallest payload worth starting a packet for.
_MIN_PACKET_PAYLOAD = 24
#: Upper bound on datagrams produced per call, so the edge interleaves receiving.
MAX_DATAGRAMS_PER_CALL = 64


def _packet_types() -> tuple[int, int, int]:
    global _PACKET_TYPES
    if _PACKET_TYPES is None:
        from .packet import PACKET_TYPE_HANDSHAKE, PACKET_TYPE_INITIAL, PACKET_TYPE_ONE_RTT

        _PACKET_TYPES = (PACKET_TYPE_INITIAL, PACKET_TYPE_HANDSHAKE, PACKET_TYPE_ONE_RTT)
    return _PACKET_TYPES


class _PacketDraft:
    """A packet being filled: payload buffer plus metadata."""

    __slots__ = ("space_id", "buf", "handlers", "ack_eliciting", "in_flight", "header_size",
                 "frames")

    def __init__(self, space_id: int, capacity: int, header_size: int, want_frames: bool):
        self.space_id = space_id
        self.buf = Buffer(capacity=capacity)
        self.handlers: list[tuple[Any, tuple[Any, ...]]] = []
        self.ack_eliciting = False
        self.in_flight = False
        self.header_size = header_size
        self.frames: list[dict[str, Any]] | None = [] if want_frames else None


class SendPathMixin(ConnectionBase):
    """Application API and the send path; mixed into QuicConnection."""

    # ----------------------------------------------------------- app API

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        """The ID the next locally opened stream of that kind will get."""
        return self._local_next_stream[1 if is_unidirectional else 0]

    def _create_stream(self, stream_id: int) -> QuicStream:
        local = bool(stream_id & 1) == (not self.is_client)
        uni = bool(stream_id & 2)
        stream = QuicStream(
            stream_id,
            can_send=local or not uni,
            can_receive=not (local and uni),
            local_max_stream_data=self.configuration.max_stream_data,
            peer_max_stream_data=self._initial_peer_stream_limit(stream_id),
        )
        self._streams[stream_id] = stream
        return stream

    def _stream_for_app_send(self, stream_id: int) -> QuicStream:
        stream = self._streams.get(stream_id)
        if stream is None:
            local = bool(stream_id & 1) == (not self.is_client)
            idx = 1 if stream_id & 2 else 0
            if not local or stream_id != self._local_next_stream[idx]:
                raise LocalProtocolError(f"Stream {stream_id} cannot be opened or is closed")
            self._local_next_stream[idx] += 4
            stream = self._create_stream(stream_id)
        if not stream.can_send:
            raise LocalProtocolError(f"Stream {stream_id} is receive-only")
        return stream

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue ``data`` (and the FIN) on a stream, opening it if it is the next local one."""
        stream = self._stream_for_app_send(stream_id)
        if stream.send_state >= 2 and (data or end_stream):  # DATA_SENT and later
            if stream.send_state != 2 or data:
                raise LocalProtocolError(f"Stream {stream_id} is finished or reset")
        stream.write(data, end_stream)
        self._send_queue[stream_id] = stream

    def stream_send_buffered(self, stream_id: int) -> int:
        """Bytes written to the stream and not yet acknowledged (0 for unknown streams)."""
        stream = self._streams.get(stream_id)
        return stream.buffered if stream is not None else 0

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """Abandon sending on a stream (RESET_STREAM)."""
        stream = self._stream_for_app_send(stream_id)
        stream.reset(error_code)
        self._send_queue[stream_id] = stream

    def stop_stream(self, stream_id: int, error_code: int) -> None:
        """Ask the peer to stop sending (STOP_SENDING); a no-op once the stream is finished.

        Raises:
            LocalProtocolError: the stream cannot receive or was never opened.
        """
        stream = self._streams.get(stream_id)
        if stream is None and self._stream_was_closed(stream_id):
            return  # all of it was received and consumed: nothing left to stop (RFC 9000 §3.5)
        if stream is None or not stream.can_receive:
            raise LocalProtocolError(f"Stream {stream_id} cannot receive")
        if not stream.recv_finished:
            stream.stop_sending_pending = True
            stream.stop_sending_error_code = error_code
            self._send_queue[stream_id] = stream

    def _stream_was_closed(self, stream_id: int) -> bool:
        """True for a receiving stream that was opened and has since been forgotten."""
        idx = 1 if stream_id & 2 else 0
        if self._is_local_stream(stream_id):
            return idx == 0 and stream_id < self._local_next_stream[0]
        return (stream_id >> 2) < self._peer_streams_opened[idx]

    def pause_stream_reading(self, stream_id: int) -> None:
        """Hold back a stream's received data: :meth:`next_event` stops handing it out.

        The data stays in the stream and, since it is not consumed, the stream's receive window
        (and the connection's) is not re-opened: the peer is flow-controlled (RFC 9000 §4). Use it
        for end-to-end backpressure when the data's destination is slow. A RESET_STREAM is
        still reported at once.
        """
        self._reading_paused.add(stream_id)

    def resume_stream_reading(self, stream_id: int) -> None:
        """Undo :meth:`pause_stream_reading`; buffered data is handed out by :meth:`next_event`."""
        self._reading_paused.discard(stream_id)
        stream = self._streams.get(stream_id)
        if stream is not None and stream.has_ready_data():
            self._ready_streams[stream_id] = stream

    def datagrams_pending(self) -> int:
        """DATAGRAM frames queued by :meth:`send_datagram_frame` and not yet put in a packet."""
        return len(self._datagrams_out)

    def send_datagram_frame(self, data: bytes) -> None:
        """Queue an unreliable DATAGRAM frame (RFC 9221)."""
        limit = self._peer_params.max_datagram_frame_size
        if limit is None or len(data) > limit:
            raise LocalProtocolError("Peer does not accept DATAGRAM frames of this size")
        self._datagrams_out.append(data)

    def send_ping(self, uid: int) -> None:
        """Send a PING; :class:`~quicreality.quic.events.PingAcknowledged` follows its ACK."""
        self._pings.append(uid)

    def request_key_update(self) -> None:
        """Initiate a 1-RTT key update (RFC 9001 §6) at the next opportunity."""
        if not self._handshake_confirmed:
            raise LocalProtocolError("Key update requires a confirmed handshake")
        if self._previous_keys_discard_at is not None:
            # RFC 9001 §6.1/§6.5: one update at a time; the previous one is still settling.
            raise LocalProtocolError("A key update is still in progress")
        self._key_update_requested = True

    def _after_stream_consumed(self, stream: QuicStream) -> None:
        if stream.maybe_update_max_stream_data():
            self._send_queue[stream.stream_id] = stream
        self._maybe_raise_max_data()
        self._maybe_close_stream(stream)

    def _maybe_raise_max_data(self) -> None:
        """Announce a larger connection window once half of it is consumed (RFC 9000 §4.2)."""
        window = self.configuration.max_data
        if self._data_consumed + window // 2 > self._local_max_data:
            self._local_max_data = self._data_consumed + window
            self._local_max_data_pending = True

    def _maybe_close_stream(self, stream: QuicStream) -> None:
        if not (stream.send_finished and stream.recv_finished) or stream.has_ready_data():
            return
        if stream.stop_sending_pending or stream.reset_pending:
            return
        sid = stream.stream_id
        if self._streams.pop(sid, None) is None:
            return
        self._send_queue.pop(sid, None)
        self._reading_paused.discard(sid)
        if not self._is_local_stream(sid):
            idx = 1 if sid & 2 else 0
            self._peer_streams_closed[idx] += 1
            initial = (self.configuration.max_streams_bidi, self.configuration.max_streams_uni)[idx]
            new_max = self._peer_streams_closed[idx] + initial
            if new_max - self._local_max_streams[idx] >= max(1, initial // 2):
                self._local_max_streams[idx] = new_max
                self._local_max_streams_pending[idx] = True

    # --------------------------------------------------------- send path

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        """Build every datagram that may be sent at ``now``."""
        from .connection import ConnectionState

        self._now_hint = now
        state = self._state
        if state in (ConnectionState.DRAINING, ConnectionState.TERMINATED):
            return []
        if state == ConnectionState.CLOSING:
            if self._close_sent_at is None:
                self._close_sent_at = now
                if self._close_deadline is None:
                    self._close_deadline = now + 3 * self._rtt.pto_base()
                close = self._build_close_datagram(now)
                if not close:
                    return []
                self._bytes_sent += len(close)
                return [(close, self._network_path)]
            return []
        if self._network_path is None or self._tls is None:
            return []
        if self._key_update_requested and self._handshake_confirmed:
            self._key_update_requested = False
            self._cryptos[SPACE_APPLICATION].update_key()
            self._on_key_update(now, "local_update")
        out: list[tuple[bytes, Any]] = []
        path = self._network_path
        if self._initial_plan is not None:
            for planned in self._send_initial_plan(now):
                self._bytes_sent += len(planned)
                out.append((planned, path))
        while len(out) < MAX_DATAGRAMS_PER_CALL:
            data = self._build_datagram(now)
            if not data:
                # Stopped with room in the window and no pacing wait: nothing left to send.
                self._recovery.app_limited = (
                    self._pacing_until is None
                    and self._recovery.bytes_in_flight + self._max_datagram_size
                    <= self._cc.congestion_window
                )
                break
            self._bytes_sent += len(data)
            out.append((data, path))
        return out

    def _build_datagram(self, now: float) -> bytes | None:
        max_size = self._max_datagram_size if self._handshake_confirmed else 1200
        shaper: Any = None if self.is_client else self.configuration.flight_shape  # flight_shape.py
        if (step := shaper.step() if shaper is not None else None) is not None:
            max_size = step.max_size(max_size, self._peer_params.max_udp_payload_size)
        if not self._address_validated:
            budget = AMPLIFICATION_LIMIT_FACTOR * self._bytes_received - self._bytes_sent
            if budget < max_size:
                if budget < MIN_INITIAL_DATAGRAM_SIZE:
                    return None
                max_size = budget
        drafts: list[_PacketDraft] = []
        used = 0
        pacing_ok = self._pacer_allows(now)
        for space_id in (SPACE_INITIAL, SPACE_HANDSHAKE, SPACE_APPLICATION):
            pair = self._cryptos[space_id]
            if not pair.send.is_valid() or self._recovery.spaces[space_id].discarded or (
                    step is not None and space_id not in step.spaces):
                continue
            if step is not None and step.acks_only(space_id):
                draft = self._new_draft(space_id, max(max_size - used, 64))  # _write_ack wants 32
                if draft is not None:
                    self._write_ack(draft, self._recovery.spaces[space_id], now)
                    draft = draft if draft.buf.tell() else None
            else:
                draft = self._fill_packet(space_id, max_size - used, now, pacing_ok)
            if draft is None:
                continue
            drafts.append(draft)
            used += draft.header_size + draft.buf.tell() + AEAD_TAG_SIZE
        if step is not None and (drafts or shaper.sent):
            used = complete_datagram(drafts, used, step, shaper, self._new_draft)
        if not drafts:
            return None
        # RFC 9000 §14.1: pad datagrams with ack-eliciting Initial packets (clients: all Initials).
        if any(d.space_id == SPACE_INITIAL and (self.is_client or d.ack_eliciting) for d in drafts):
            if used < MIN_INITIAL_DATAGRAM_SIZE and max_size >= MIN_INITIAL_DATAGRAM_SIZE:
                last = drafts[-1]
                last.buf.push_bytes(bytes(MIN_INITIAL_DATAGRAM_SIZE - used))
        out = bytearray()
        types = _packet_types()
        for draft in drafts:
            space_id = draft.space_id
            space = self._recovery.spaces[space_id]
            payload_len = draft.buf.tell()
            if payload_len + PACKET_NUMBER_SEND_SIZE < 4 + 16 - AEAD_TAG_SIZE + 4:
                draft.buf.push_bytes(bytes(4))  # HP sample needs 4 bytes past the PN (RFC 9001 §5.4.2)
            pn = space.next_pn
            space.next_pn = pn + 1
            ptype = types[space_id]
            packet = seal_packet(
                self._cryptos[space_id], ptype, version=self._version,
                dcid=self._peer_cids.current.cid, scid=self.host_cid,
                token=self._retry_token if space_id == SPACE_INITIAL else None,
                packet_number=pn, payload=draft.buf.data,
            )
            out += packet
            sent = SentPacket(pn, space_id, now, len(packet), draft.ack_eliciting,
                              draft.ack_eliciting or draft.in_flight, draft.handlers,
                              _QLOG_TYPES[space_id])
            self._recovery.on_packet_sent(sent)
            if draft.frames is not None:
                self._qlog.packet_sent(now, _QLOG_TYPES[space_id], pn, len(packet), draft.frames)
            if space_id == SPACE_HANDSHAKE and self.is_client and not self._sent_handshake_packet:
                self._sent_handshake_packet = True
                self._discard_space(SPACE_INITIAL)
        if step is not None and drafts:
            shaper.advance(len(out))
        return bytes(out)

    def _new_draft(self, space_id: int, capacity: int) -> _PacketDraft | None:
        """An empty packet for ``space_id``; None when that space has no keys (any more)."""
        if not self._cryptos[space_id].send.is_valid() or self._recovery.spaces[space_id].discarded:
            return None
        hdr = header_size(_packet_types()[space_id], len(self._peer_cids.current.cid),
                          len(self.host_cid), len(self._retry_token) if space_id == 0 else 0)
        return _PacketDraft(space_id, capacity, hdr, self._qlog_frames)

    def _pacer_allows(self, now: float) -> bool:
        t = self._pacer.next_send_time(now)
        if t is None or t <= now:
            self._pacing_until = None
            return True
        self._pacing_until = t
        return False

    def _fill_packet(self, space_id: int, room: int, now: float,
                     pacing_ok: bool) -> _PacketDraft | None:
        hdr = header_size(_packet_types()[space_id], len(self._peer_cids.current.cid),
                          len(self.host_cid), len(self._retry_token) if space_id == 0 else 0)
        capacity = room - hdr - AEAD_TAG_SIZE
        if capacity < _MIN_PACKET_PAYLOAD:
            return None
        space = self._recovery.spaces[space_id]
        probe = self._probe_space == space_id and self._probe_count > 0
        cc_ok = probe or (
            self._recovery.bytes_in_flight + room <= self._cc.congestion_window and pacing_ok
        )
        draft = _PacketDraft(space_id, capacity, hdr, self._qlog_frames)
        buf = draft.buf
        if space.ack_needed or (space.received and (space.ack_eliciting_unacked or
                                                     space.ack_deadline is not None) and cc_ok
                                and self._has_app_data(space_id)):
            self._write_ack(draft, space, now)
        if cc_ok:
            crypto = self._crypto_streams[space_id]
            while crypto.has_data_to_send() and buf.capacity - buf.tell() > 16:
                if not self._write_crypto(draft, crypto):
                    break
            if space_id == SPACE_APPLICATION:
                self._write_app_frames(draft, now)
            if probe and not draft.ack_eliciting and buf.capacity - buf.tell() >= 1:
                buf.push_uint8(0x01)  # PING (RFC 9002 §6.2.4)
                draft.ack_eliciting = True
                if draft.frames is not None:
                    draft.frames.append({"frame_type": "ping"})
            if probe and draft.ack_eliciting:
                self._probe_count -= 1
                if self._probe_count <= 0:
                    self._probe_space = None
        if buf.tell() == 0:
            return None
        return draft

    def _has_app_data(self, space_id: int) -> bool:
        if space_id != SPACE_APPLICATION:
            return self._crypto_streams[space_id].has_data_to_send()
        return bool(self._send_queue) or self._handshake_done_pending

    def _write_ack(self, draft: _PacketDraft, space: Any, now: float) -> None:
        """ACK frame (RFC 9000 §19.3), largest range first."""
        ranges = space.received
        if not ranges:
            return
        buf = draft.buf
        if buf.capacity - buf.tell() < 32:
            return
        delay = 0
        if draft.space_id == SPACE_APPLICATION:
            delay = int((now - space.largest_received_time) * 1_000_000) >> \
                self.configuration.ack_delay_exponent
            delay = max(delay, 0)
        n = len(ranges)
        largest_range = ranges[n - 1]
        largest = largest_range.stop - 1
        start = buf.tell()
        buf.push_uint8(0x02)
        buf.push_uint_var(largest)
        buf.push_uint_var(delay)
        # Reserve room: write as many ranges as fit.
        count_pos = buf.tell()
        max_ranges = min(n - 1, (buf.capacity - count_pos - 16) // 8)
        buf.push_uint_var(max_ranges)
        buf.push_uint_var(largest - largest_range.start)
        prev_start = largest_range.start
        for i in range(n - 2, n - 2 - max_ranges, -1):
            r = ranges[i]
            buf.push_uint_var(prev_start - r.stop - 1)
            buf.push_uint_var(r.stop - 1 - r.start)
            prev_start = r.start
        space.ack_needed = False
        space.ack_eliciting_unacked = 0
        space.ack_deadline = None
        if draft.frames is not None:
            draft.frames.append(ack_frame(
                ranges, (delay << self.configuration.ack_delay_exponent) / 1_000_000))
        del start

    def _write_crypto(self, draft: _PacketDraft, crypto: QuicStream) -> bool:
        buf = draft.buf
        room = buf.capacity - buf.tell() - 1 - 8 - 4
        offset = crypto.next_send_offset()
        frame = crypto.get_frame(room, 1 << 62)
        if frame is None:
            return False
        offset, data, _ = frame
        buf.push_uint8(0x06)
        buf.push_uint_var(offset)
        buf.push_uint_var(len(data))
        buf.push_bytes(data)
        draft.ack_eliciting = True
        draft.handlers.append((self._on_crypto_delivery, (crypto, offset, len(data))))
        if draft.frames is not None:
            draft.frames.append(crypto_frame(offset, len(data)))
        return True

    def _on_crypto_delivery(self, delivered: bool, crypto: QuicStream, offset: int,
                            length: int) -> None:
        if delivered:
            crypto.on_frame_acked(offset, length, False)
        else:
            crypto.on_frame_lost(offset, length, False)

    def _write_app_frames(self, draft: _PacketDraft, now: float) -> None:
        buf = draft.buf
        frames = draft.frames
        if self._handshake_done_pending and buf.capacity - buf.tell() >= 1:
            buf.push_uint8(0x1E)
            self._handshake_done_pending = False
            draft.ack_eliciting = True
            draft.handlers.append((self._on_flag_delivery, ("_handshake_done_pending",)))
            if frames is not None:
                frames.append({"frame_type": "handshake_done"})
        while self._path_responses and buf.capacity - buf.tell() >= 9:
            buf.push_uint8(0x1B)
            buf.push_bytes(self._path_responses.popleft())
            draft.ack_eliciting = True
        if self._local_max_data_pending and buf.capacity - buf.tell() >= 9:
            buf.push_uint8(0x10)
            buf.push_uint_var(self._local_max_data)
            self._local_max_data_pending = False
            draft.ack_eliciting = True
            draft.handlers.append((self._on_flag_delivery, ("_local_max_data_pending",)))
            if frames is not None:
                frames.append({"frame_type": "max_data", "maximum": self._local_max_data})
        for idx in (0, 1):
            if self._local_max_streams_pending[idx] and buf.capacity - buf.tell() >= 9:
                buf.push_uint8(0x12 + idx)
                buf.push_uint_var(self._local_max_streams[idx])
                self._local_max_streams_pending[idx] = False
                draft.ack_eliciting = True
                draft.handlers.append((self._on_max_streams_delivery, (idx,)))
        while self._cids_to_announce and buf.capacity - buf.tell() >= 48:
            entry = self._cids_to_announce.pop(0)
            if entry.retired:
                continue
            self._host_cids.on_announced(entry)
            buf.push_uint8(0x18)
            buf.push_uint_var(entry.sequence_number)
            buf.push_uint_var(0)
            buf.push_uint8(len(entry.cid))
            buf.push_bytes(entry.cid)
            buf.push_bytes(entry.stateless_reset_token)
            draft.ack_eliciting = True
            draft.handlers.append((self._on_ncid_delivery, (entry,)))
        retire = self._peer_cids.pending_retire
        while retire and buf.capacity - buf.tell() >= 9:
            seq = retire.pop(0)
            self._peer_cids.on_retire_sent(seq)
            buf.push_uint8(0x19)
            buf.push_uint_var(seq)
            draft.ack_eliciting = True
            draft.handlers.append((self._peer_cids.on_retire_delivery, (seq,)))
        while self._pings and buf.capacity - buf.tell() >= 1:
            uid = self._pings.pop(0)
            buf.push_uint8(0x01)
            draft.ack_eliciting = True
            draft.handlers.append((self._on_ping_delivery, (uid,)))
        while self._datagrams_out:
            data = self._datagrams_out[0]
            need = 1 + len_uint_var(len(data)) + len(data)
            if buf.capacity - buf.tell() < need:
                if buf.tell() == 0 and need > buf.capacity:
                    self._datagrams_out.popleft()  # can never fit: drop (RFC 9221 §5)
                    continue
                break
            self._datagrams_out.popleft()
            buf.push_uint8(0x31)
            buf.push_uint_var(len(data))
            buf.push_bytes(data)
            draft.ack_eliciting = True
            draft.in_flight = True
            if frames is not None:
                frames.append({"frame_type": "datagram", "length": len(data)})
        self._write_stream_frames(draft)

    def _write_stream_frames(self, draft: _PacketDraft) -> None:
        buf = draft.buf
        queue = self._send_queue
        if not queue:
            return
        handlers = draft.handlers
        frames = draft.frames
        for stream_id in list(queue):
            stream = queue.get(stream_id)
            if stream is None:
                continue
            room = buf.capacity - buf.tell()
            if room < 32:
                break
            if stream.stop_sending_pending:
                buf.push_uint8(0x05)
                buf.push_uint_var(stream_id)
                buf.push_uint_var(stream.stop_sending_error_code)
                stream.stop_sending_pending = False
                handlers.append((self._on_stop_sending_delivery, (stream,)))
                draft.ack_eliciting = True
                room = buf.capacity - buf.tell()
            if stream.reset_pending:
                buf.push_uint8(0x04)
                buf.push_uint_var(stream_id)
                buf.push_uint_var(stream.reset_error_code)
                buf.push_uint_var(stream.send_highest)  # RFC 9000 §4.5: credit used, not queued
                stream.reset_pending = False
                handlers.append((self._on_reset_delivery, (stream,)))
                draft.ack_eliciting = True
                del queue[stream_id]
                continue
            if stream.max_stream_data_pending and room >= 20:
                buf.push_uint8(0x11)
                buf.push_uint_var(stream_id)
                buf.push_uint_var(stream.local_max_stream_data)
                stream.max_stream_data_pending = False
                handlers.append((self._on_msd_delivery, (stream,)))
                draft.ack_eliciting = True
                room = buf.capacity - buf.tell()
            if not stream.has_data_to_send():
                del queue[stream_id]
                continue
            if self._is_local_stream(stream_id):
                idx = 1 if stream_id & 2 else 0
                if (stream_id >> 2) >= self._peer_max_streams[idx]:
                    continue  # blocked by the peer's stream limit
            credit = self._peer_max_data - self._data_sent
            highest = stream.send_highest
            max_offset = min(stream.peer_max_stream_data, highest + max(credit, 0))
            offset = stream.next_send_offset()
            overhead = 1 + len_uint_var(stream_id) + len_uint_var(offset) + 2
            frame = stream.get_frame(room - overhead, max_offset)
            if frame is None:
                continue
            offset, data, fin = frame
            length = len(data)
            buf.push_uint8(0x0E | (1 if fin else 0) if offset else 0x0A | (1 if fin else 0))
            buf.push_uint_var(stream_id)
            if offset:
                buf.push_uint_var(offset)
            buf.push_uint16(0x4000 | length)
            buf.push_bytes(data)
            grown = stream.send_highest - highest
            if grown > 0:
                self._data_sent += grown
            handlers.append((self._on_stream_delivery, (stream, offset, length, fin)))
            draft.ack_eliciting = True
            if frames is not None:
                frames.append(stream_frame(stream_id, offset, length, fin))
            # Round robin: a stream that still has data goes to the back of the queue.
            del queue[stream_id]
            if stream.has_data_to_send():
                queue[stream_id] = stream

    # ------------------------------------------------- delivery callbacks

    def _on_stream_delivery(self, delivered: bool, stream: QuicStream, offset: int, length: int,
                            fin: bool) -> None:
        if delivered:
            stream.on_frame_acked(offset, length, fin)
            if stream.send_finished:
                self._maybe_close_stream(stream)
        else:
            stream.on_frame_lost(offset, length, fin)
            if stream.has_data_to_send() and stream.stream_id in self._streams:
                self._send_queue[stream.stream_id] = stream

    def _on_flag_delivery(self, delivered: bool, attr: str) -> None:
        if not delivered:
            setattr(self, attr, True)

    def _on_max_streams_delivery(self, delivered: bool, idx: int) -> None:
        if not delivered:
            self._local_max_streams_pending[idx] = True

    def _on_ncid_delivery(self, delivered: bool, entry: Any) -> None:
        if not delivered and entry in self._host_cids.entries:
            self._cids_to_announce.append(entry)

    def _on_ping_delivery(self, delivered: bool, uid: int) -> None:
        if delivered:
            self._events.append(events.PingAcknowledged(uid=uid))
        else:
            self._pings.append(uid)

    def _on_stop_sending_delivery(self, delivered: bool, stream: QuicStream) -> None:
        if not delivered and not stream.recv_finished and stream.stream_id in self._streams:
            stream.stop_sending_pending = True
            self._send_queue[stream.stream_id] = stream

    def _on_reset_delivery(self, delivered: bool, stream: QuicStream) -> None:
        if delivered:
            from .streams import StreamSendState

            stream.send_state = StreamSendState.RESET_RECVD
            self._maybe_close_stream(stream)
        elif stream.stream_id in self._streams:
            stream.reset_pending = True
            self._send_queue[stream.stream_id] = stream

    def _on_msd_delivery(self, delivered: bool, stream: QuicStream) -> None:
        if not delivered and stream.stream_id in self._streams and not stream.recv_finished:
            stream.max_stream_data_pending = True
            self._send_queue[stream.stream_id] = stream

    # -------------------------------------------------------------- close

    def _build_close_datagram(self, now: float) -> bytes:
        """CONNECTION_CLOSE in every space with keys, within the anti-amplification budget.

        RFC 9000 §10.2.1 and §8.1: before the peer's address is validated, the close packets
        count against 3x the bytes received like any other; packets that do not fit are left out
        (an empty result sends nothing).
        """
        assert self._close_frame is not None
        error_code, frame_type, reason, application = self._close_frame
        reason_bytes = reason.encode("utf-8")[:256]
        budget: int | None = None
        if not self._address_validated:
            budget = AMPLIFICATION_LIMIT_FACTOR * self._bytes_received - self._bytes_sent
        out = bytearray()
        types = _packet_types()
        for space_id in (SPACE_INITIAL, SPACE_HANDSHAKE, SPACE_APPLICATION):
            pair = self._cryptos[space_id]
            if not pair.send.is_valid() or self._recovery.spaces[space_id].discarded:
                continue
            buf = Buffer(capacity=400)
            if application and space_id == SPACE_APPLICATION:
                buf.push_uint8(0x1D)
                buf.push_uint_var(error_code)
            else:
                # RFC 9000 §10.2.3: application close before 1-RTT becomes APPLICATION_ERROR.
                buf.push_uint8(0x1C)
                buf.push_uint_var(QuicErrorCode.APPLICATION_ERROR if application else error_code)
                buf.push_uint_var(frame_type or 0)
            buf.push_uint_var(len(reason_bytes))
            buf.push_bytes(reason_bytes)
            if buf.tell() < 8:
                buf.push_bytes(bytes(8 - buf.tell()))
            space = self._recovery.spaces[space_id]
            pn = space.next_pn
            packet = seal_packet(pair, types[space_id], version=self._version,
                                 dcid=self._peer_cids.current.cid, scid=self.host_cid,
                                 token=self._retry_token if space_id == SPACE_INITIAL else None,
                                 packet_number=pn, payload=buf.data)
            if budget is not None and len(out) + len(packet) > budget:
                continue
            space.next_pn += 1
            out += packet
        return bytes(out)


#: RFC 9000 §8.1 anti-amplification factor.
AMPLIFICATION_LIMIT_FACTOR = 3
