"""Send path and application API of :class:`~quicreality.quic.connection.QuicConnection`.

``datagrams_to_send(now)`` fills datagrams space by space (Initial, Handshake, 1-RTT), coalescing
packets, within the congestion window, the pacer and the anti-amplification limit. Every frame
registers a delivery callback ``(handler, args)`` on its packet; recovery calls it on ACK or loss.
"""

from __future__ import annotations

from typing import Any

from ...qlog.sink import ack_frame, crypto_frame, stream_frame
from ...wire.buffer import Buffer
from .. import events, initial_layout
from .. import frames as f
from ..errors import LocalProtocolError, QuicErrorCode
from ..flight_shape import complete_datagram
from ..packet import (
    MIN_INITIAL_DATAGRAM_SIZE,
    PACKET_TYPE_HANDSHAKE,
    PACKET_TYPE_INITIAL,
    PACKET_TYPE_ONE_RTT,
)
from ..packet_builder import (
    AEAD_TAG_SIZE,
    PACKET_NUMBER_SEND_SIZE,
    header_size,
    len_uint_var,
    seal_packet,
)
from ..recovery.loss import SPACE_APPLICATION, SPACE_HANDSHAKE, SPACE_INITIAL, SentPacket
from ..streams import QuicStream, StreamSendState
from .base import ConnectionBase
from .state import ConnectionState

#: Long/short header packet type of each packet number space.
_PACKET_TYPES = (PACKET_TYPE_INITIAL, PACKET_TYPE_HANDSHAKE, PACKET_TYPE_ONE_RTT)
#: RFC 9000 §8.1 anti-amplification factor.
AMPLIFICATION_LIMIT_FACTOR = 3
_QLOG_TYPES = ("initial", "handshake", "1RTT")
#: Smallest payload worth starting a packet for.
_MIN_PACKET_PAYLOAD = 24
#: Upper bound on datagrams produced per call, so the edge interleaves receiving.
MAX_DATAGRAMS_PER_CALL = 64


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
        return self._stream_mgr.local_next_stream[1 if is_unidirectional else 0]

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue ``data`` (and the FIN) on a stream, opening it if it is the next local one."""
        stream = self._stream_mgr.stream_for_app_send(stream_id)
        # DATA_SENT and later: only a repeated bare FIN in DATA_SENT is allowed
        if stream.send_state >= 2 and (data or end_stream) and (stream.send_state != 2 or data):
            raise LocalProtocolError(f"Stream {stream_id} is finished or reset")
        stream.write(data, end_stream)
        self._stream_mgr.send_queue[stream_id] = stream

    def stream_send_buffered(self, stream_id: int) -> int:
        """Bytes written to the stream and not yet acknowledged (0 for unknown streams)."""
        stream = self._stream_mgr.streams.get(stream_id)
        return stream.buffered if stream is not None else 0

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """Abandon sending on a stream (RESET_STREAM)."""
        stream = self._stream_mgr.stream_for_app_send(stream_id)
        stream.reset(error_code)
        self._stream_mgr.send_queue[stream_id] = stream

    def stop_stream(self, stream_id: int, error_code: int) -> None:
        """Ask the peer to stop sending (STOP_SENDING); a no-op once the stream is finished.

        Raises:
            LocalProtocolError: the stream cannot receive or was never opened.
        """
        stream = self._stream_mgr.streams.get(stream_id)
        if stream is None and self._stream_mgr.stream_was_closed(stream_id):
            return  # all of it was received and consumed: nothing left to stop (RFC 9000 §3.5)
        if stream is None or not stream.can_receive:
            raise LocalProtocolError(f"Stream {stream_id} cannot receive")
        if not stream.recv_finished:
            stream.stop_sending_pending = True
            stream.stop_sending_error_code = error_code
            self._stream_mgr.send_queue[stream_id] = stream

    def pause_stream_reading(self, stream_id: int) -> None:
        """Hold back a stream's received data: :meth:`next_event` stops handing it out.

        The data stays in the stream and, since it is not consumed, the stream's receive window
        (and the connection's) is not re-opened: the peer is flow-controlled (RFC 9000 §4). Use it
        for end-to-end backpressure when the data's destination is slow. A RESET_STREAM is
        still reported at once.
        """
        self._stream_mgr.reading_paused.add(stream_id)

    def resume_stream_reading(self, stream_id: int) -> None:
        """Undo :meth:`pause_stream_reading`; buffered data is handed out by :meth:`next_event`."""
        self._stream_mgr.reading_paused.discard(stream_id)
        stream = self._stream_mgr.streams.get(stream_id)
        if stream is not None and stream.has_ready_data():
            self._stream_mgr.ready_streams[stream_id] = stream

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

    # --------------------------------------------------------- send path

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        """Build every datagram that may be sent at ``now``."""
        self._now_hint = now
        state = self._lifecycle.state
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
            for planned in self.client_initial_flight(now):
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
        max_size = self._max_datagram_size if self._handshake_confirmed else MIN_INITIAL_DATAGRAM_SIZE
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
        if used < MIN_INITIAL_DATAGRAM_SIZE <= max_size and any(
                d.space_id == SPACE_INITIAL and (self.is_client or d.ack_eliciting) for d in drafts):
            drafts[-1].buf.push_bytes(bytes(MIN_INITIAL_DATAGRAM_SIZE - used))
        out = bytearray()
        types = _PACKET_TYPES
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

    def client_initial_flight(self, now: float) -> list[bytes]:
        """The client's first Initial flight as ``config.initial_layout`` plans it (once).

        The one place the first flight is laid out (:mod:`~quicreality.quic.initial_layout`): the
        default "minimal" layout has no plan and the normal path below sends the hello;
        retransmissions always take the normal path.
        """
        profile, self._initial_plan = self._initial_plan, None
        crypto = self._crypto_streams[SPACE_INITIAL]
        space = self._recovery.spaces[SPACE_INITIAL]
        if profile is None or space.next_pn or crypto.next_send_offset() or \
                (frame := crypto.get_frame(1 << 62, 1 << 62)) is None:
            return []
        hello, dcid, scid = frame[1], self._peer_cids.current.cid, self.host_cid
        plan = initial_layout.plan_initial_flight(
            hello, self._rng, profile, dcid_length=len(dcid), scid_length=len(scid),
            token_length=len(self._retry_token))
        out = []
        for packet in plan.packets:
            pn = packet.packet_number
            data = seal_packet(
                self._cryptos[SPACE_INITIAL], PACKET_TYPE_INITIAL, version=self._version,
                dcid=dcid, scid=scid, token=self._retry_token, packet_number=pn,
                payload=initial_layout.encode_payload(packet, hello),
                packet_number_length=packet.packet_number_length)
            handlers = [(self._on_crypto_delivery, (crypto, frag.offset, frag.length))
                        for frag in packet.crypto_fragments]
            self._recovery.on_packet_sent(SentPacket(pn, SPACE_INITIAL, now, len(data), True,
                                                     True, handlers, "initial"))
            if self._qlog_frames:
                self._qlog.packet_sent(now, "initial", pn, len(data),
                                       initial_layout.describe_frames(packet))
            out.append(data)
        space.next_pn = plan.next_packet_number
        return out

    def _new_draft(self, space_id: int, capacity: int) -> _PacketDraft | None:
        """An empty packet for ``space_id``; None when that space has no keys (any more)."""
        if not self._cryptos[space_id].send.is_valid() or self._recovery.spaces[space_id].discarded:
            return None
        hdr = header_size(_PACKET_TYPES[space_id], len(self._peer_cids.current.cid),
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
        hdr = header_size(_PACKET_TYPES[space_id], len(self._peer_cids.current.cid),
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
                f.push_ping_frame(buf)  # RFC 9002 §6.2.4
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
        return bool(self._stream_mgr.send_queue) or self._handshake_done_pending

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
        if not f.push_ack_frame(buf, ranges, delay, max_ranges=1 + max(0, (buf.remaining() - 16) // 8)):
            return
        space.ack_needed = False
        space.ack_eliciting_unacked = 0
        space.ack_deadline = None
        if draft.frames is not None:
            draft.frames.append(ack_frame(
                ranges, (delay << self.configuration.ack_delay_exponent) / 1_000_000))

    def _write_crypto(self, draft: _PacketDraft, crypto: QuicStream) -> bool:
        buf = draft.buf
        room = buf.capacity - buf.tell() - 1 - 8 - 4
        offset = crypto.next_send_offset()
        frame = crypto.get_frame(room, 1 << 62)
        if frame is None:
            return False
        offset, data, _ = frame
        f.push_crypto_frame_header(buf, offset, len(data))
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
            f.push_handshake_done_frame(buf)
            self._handshake_done_pending = False
            draft.ack_eliciting = True
            draft.handlers.append((self._on_handshake_done_delivery, ()))
            if frames is not None:
                frames.append({"frame_type": "handshake_done"})
        while self._path_responses and buf.capacity - buf.tell() >= 9:
            f.push_path_response_frame(buf, self._path_responses.popleft())
            draft.ack_eliciting = True
        if self._stream_mgr.local_max_data_pending and buf.capacity - buf.tell() >= 9:
            f.push_max_data_frame(buf, self._stream_mgr.local_max_data)
            self._stream_mgr.local_max_data_pending = False
            draft.ack_eliciting = True
            draft.handlers.append((self._on_max_data_delivery, ()))
            if frames is not None:
                frames.append({"frame_type": "max_data", "maximum": self._stream_mgr.local_max_data})
        for idx in (0, 1):
            if self._stream_mgr.local_max_streams_pending[idx] and buf.capacity - buf.tell() >= 9:
                f.push_max_streams_frame(buf, bool(idx), self._stream_mgr.local_max_streams[idx])
                self._stream_mgr.local_max_streams_pending[idx] = False
                draft.ack_eliciting = True
                draft.handlers.append((self._on_max_streams_delivery, (idx,)))
        while self._cids_to_announce and buf.capacity - buf.tell() >= 48:
            entry = self._cids_to_announce.pop(0)
            if entry.retired:
                continue
            self._host_cids.on_announced(entry)
            f.push_new_connection_id_frame(buf, entry.sequence_number, 0, entry.cid,
                                           entry.stateless_reset_token)
            draft.ack_eliciting = True
            draft.handlers.append((self._on_ncid_delivery, (entry,)))
        retire = self._peer_cids.pending_retire
        while retire and buf.capacity - buf.tell() >= 9:
            seq = retire.pop(0)
            self._peer_cids.on_retire_sent(seq)
            f.push_retire_connection_id_frame(buf, seq)
            draft.ack_eliciting = True
            draft.handlers.append((self._peer_cids.on_retire_delivery, (seq,)))
        while self._pings and buf.capacity - buf.tell() >= 1:
            uid = self._pings.pop(0)
            f.push_ping_frame(buf)
            draft.ack_eliciting = True
            draft.handlers.append((self._on_ping_delivery, (uid,)))
        while self._datagrams_out:
            data = self._datagrams_out[0]
            need = f.datagram_frame_size(len(data))
            if buf.capacity - buf.tell() < need:
                if buf.tell() == 0 and need > buf.capacity:
                    self._datagrams_out.popleft()  # can never fit: drop (RFC 9221 §5)
                    continue
                break
            self._datagrams_out.popleft()
            f.push_datagram_frame(buf, data)
            draft.ack_eliciting = True
            draft.in_flight = True
            if frames is not None:
                frames.append({"frame_type": "datagram", "length": len(data)})
        self._write_stream_frames(draft)

    def _write_stream_frames(self, draft: _PacketDraft) -> None:
        buf = draft.buf
        mgr = self._stream_mgr
        queue = mgr.send_queue
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
                f.push_stop_sending_frame(buf, stream_id, stream.stop_sending_error_code)
                stream.stop_sending_pending = False
                handlers.append((self._on_stop_sending_delivery, (stream,)))
                draft.ack_eliciting = True
                room = buf.capacity - buf.tell()
            if stream.reset_pending:
                # RFC 9000 §4.5: the final size is the credit used, not what is queued.
                f.push_reset_stream_frame(buf, stream_id, stream.reset_error_code,
                                          stream.send_highest)
                stream.reset_pending = False
                handlers.append((self._on_reset_delivery, (stream,)))
                draft.ack_eliciting = True
                del queue[stream_id]
                continue
            if stream.max_stream_data_pending and room >= 20:
                f.push_max_stream_data_frame(buf, stream_id, stream.local_max_stream_data)
                stream.max_stream_data_pending = False
                handlers.append((self._on_msd_delivery, (stream,)))
                draft.ack_eliciting = True
                room = buf.capacity - buf.tell()
            if not stream.has_data_to_send():
                del queue[stream_id]
                continue
            if mgr.is_local_stream(stream_id):
                idx = 1 if stream_id & 2 else 0
                if (stream_id >> 2) >= mgr.peer_max_streams[idx]:
                    continue  # blocked by the peer's stream limit
            credit = mgr.peer_max_data - mgr.data_sent
            highest = stream.send_highest
            max_offset = min(stream.peer_max_stream_data, highest + max(credit, 0))
            offset = stream.next_send_offset()
            overhead = 1 + len_uint_var(stream_id) + len_uint_var(offset) + 2
            frame = stream.get_frame(room - overhead, max_offset)
            if frame is None:
                continue
            offset, data, fin = frame
            length = len(data)
            f.push_stream_frame_header(buf, stream_id, offset, length, fin)
            buf.push_bytes(data)
            grown = stream.send_highest - highest
            if grown > 0:
                mgr.data_sent += grown
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
                self._stream_mgr.maybe_close_stream(stream)
        else:
            stream.on_frame_lost(offset, length, fin)
            if stream.has_data_to_send() and stream.stream_id in self._stream_mgr.streams:
                self._stream_mgr.send_queue[stream.stream_id] = stream

    def _on_handshake_done_delivery(self, delivered: bool) -> None:
        if not delivered:
            self._handshake_done_pending = True

    def _on_max_data_delivery(self, delivered: bool) -> None:
        if not delivered:
            self._stream_mgr.local_max_data_pending = True

    def _on_max_streams_delivery(self, delivered: bool, idx: int) -> None:
        if not delivered:
            self._stream_mgr.local_max_streams_pending[idx] = True

    def _on_ncid_delivery(self, delivered: bool, entry: Any) -> None:
        if not delivered and entry in self._host_cids.entries:
            self._cids_to_announce.append(entry)

    def _on_ping_delivery(self, delivered: bool, uid: int) -> None:
        if delivered:
            self._events.append(events.PingAcknowledged(uid=uid))
        else:
            self._pings.append(uid)

    def _on_stop_sending_delivery(self, delivered: bool, stream: QuicStream) -> None:
        if not delivered and not stream.recv_finished and stream.stream_id in self._stream_mgr.streams:
            stream.stop_sending_pending = True
            self._stream_mgr.send_queue[stream.stream_id] = stream

    def _on_reset_delivery(self, delivered: bool, stream: QuicStream) -> None:
        if delivered:
            stream.send_state = StreamSendState.RESET_RECVD
            self._stream_mgr.maybe_close_stream(stream)
        elif stream.stream_id in self._stream_mgr.streams:
            stream.reset_pending = True
            self._stream_mgr.send_queue[stream.stream_id] = stream

    def _on_msd_delivery(self, delivered: bool, stream: QuicStream) -> None:
        if not delivered and stream.stream_id in self._stream_mgr.streams and not stream.recv_finished:
            stream.max_stream_data_pending = True
            self._stream_mgr.send_queue[stream.stream_id] = stream

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
        built: list[tuple[int, bytes, bytes]] = []
        for space_id in (SPACE_INITIAL, SPACE_HANDSHAKE, SPACE_APPLICATION):
            pair = self._cryptos[space_id]
            if not pair.send.is_valid() or self._recovery.spaces[space_id].discarded:
                continue
            buf = Buffer(capacity=400)
            if application and space_id == SPACE_APPLICATION:
                f.push_connection_close_frame(buf, error_code, None, reason_bytes, True)
            else:
                # RFC 9000 §10.2.3: application close before 1-RTT becomes APPLICATION_ERROR.
                f.push_connection_close_frame(
                    buf, QuicErrorCode.APPLICATION_ERROR if application else error_code,
                    frame_type, reason_bytes, False)
            if buf.tell() < 8:
                buf.push_bytes(bytes(8 - buf.tell()))
            built.append((space_id, buf.data, self._seal_close(space_id, buf.data)))
        if self.is_client and built and built[0][0] == SPACE_INITIAL:
            # RFC 9000 §14.1: a client pads every datagram carrying an Initial packet to 1200
            # bytes; the PADDING goes into the Initial, which comes first in the datagram.
            room = MIN_INITIAL_DATAGRAM_SIZE - sum(len(packet) for _, _, packet in built)
            if room > 0:
                _, payload, _ = built[0]
                built[0] = (SPACE_INITIAL, payload, self._seal_close(SPACE_INITIAL, payload + bytes(room)))
        packets: list[bytes] = []
        size = 0
        for space_id, _, packet in built:
            if budget is not None and size + len(packet) > budget:
                continue
            self._recovery.spaces[space_id].next_pn += 1
            packets.append(packet)
            size += len(packet)
        return b"".join(packets)

    def _seal_close(self, space_id: int, payload: bytes) -> bytes:
        """One CONNECTION_CLOSE packet of ``space_id`` at its next packet number."""
        return seal_packet(self._cryptos[space_id], _PACKET_TYPES[space_id], version=self._version,
                           dcid=self._peer_cids.current.cid, scid=self.host_cid,
                           token=self._retry_token if space_id == SPACE_INITIAL else None,
                           packet_number=self._recovery.spaces[space_id].next_pn, payload=payload)
