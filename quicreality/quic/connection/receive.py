"""Receive-side frame handling (RFC 9000 §19): :class:`FrameReceiver`.

Dispatch is a table keyed by :class:`~quicreality.quic.frames.FrameType`; which packet types may
carry each frame comes from :data:`~quicreality.quic.frames.FRAME_PACKET_TYPES` (RFC 9000 §12.4
Table 3, written once there). Handlers read the frame bodies with the ``pull_*`` codecs of
:mod:`~quicreality.quic.frames`: the fast paths for ACK, STREAM, CRYPTO, PADDING and DATAGRAM, the
frame dataclasses for the rest.

The receiver is given the components frames act on (recovery, the stream manager, the connection
IDs, the 1-RTT space's owed frames, the event queue); the three frames that change the
connection as a whole (CRYPTO, CONNECTION_CLOSE, HANDSHAKE_DONE) go back to it through the
narrow :class:`ReceiveHost` interface.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from ...qlog.sink import QlogSink
from ...wire.bounded import push_bounded
from ...wire.buffer import Buffer, BufferReadError
from .. import events
from .. import frames as f
from ..errors import QuicConnectionError, QuicErrorCode
from ..events import QuicEvent
from ..frames import FRAME_PACKET_TYPES, NON_ACK_ELICITING_FRAME_TYPES, FrameType
from ..recovery.loss import SPACE_APPLICATION, LossRecovery
from ..transport_params import QuicTransportParameters
from .cids import HostConnectionIds, PeerConnectionIds
from .datagrams import DatagramQueues
from .ecn import EcnValidator
from .migration import PathManager
from .spaces import MAX_PATH_RESPONSES, PacketSpace
from .streams import StreamManager

if TYPE_CHECKING:
    from ..packet import QuicHeader

#: NEW_CONNECTION_IDs we keep active at most, whatever the peer allows.
MAX_ISSUED_CIDS: Final = 4


class ReceiveHost(Protocol):
    """What frame handling asks of the connection."""

    def on_crypto_frame(self, space_id: int, offset: int, data: bytes, now: float) -> None:
        """CRYPTO data arrived (it goes to TLS)."""

    def on_peer_close(self, error_code: int, frame_type: int | None, reason: str,
                      now: float) -> None:
        """The peer sent CONNECTION_CLOSE."""

    def on_handshake_done_frame(self, now: float) -> None:
        """The server confirmed the handshake (HANDSHAKE_DONE)."""


class FrameReceiver:
    """Parses the frames of decrypted packets and applies them."""

    __slots__ = ("_datagrams", "_ecn", "_events", "_host", "_host_cids", "_is_client",
                 "_max_datagram_frame_size", "_owed", "_packet_dcid", "_paths", "_peer_cids",
                 "_qlog", "_recovery", "_spaces", "_streams", "active_cid_limit", "non_probing",
                 "peer_ack_delay_exponent")

    def __init__(self, *, is_client: bool, max_datagram_frame_size: int | None,
                 spaces: list[PacketSpace], recovery: LossRecovery, streams: StreamManager,
                 host_cids: HostConnectionIds, peer_cids: PeerConnectionIds,
                 events: deque[QuicEvent], qlog: QlogSink, host: ReceiveHost,
                 ecn: EcnValidator, paths: PathManager, datagrams: DatagramQueues) -> None:
        self._is_client = is_client
        self._ecn = ecn
        self._datagrams = datagrams
        self._max_datagram_frame_size = max_datagram_frame_size
        self._spaces = spaces
        self._owed = spaces[SPACE_APPLICATION].owed
        self._recovery = recovery
        self._streams = streams
        self._host_cids = host_cids
        self._peer_cids = peer_cids
        self._events = events
        self._qlog = qlog
        self._host = host
        self._paths = paths
        self._packet_dcid = b""
        #: the last packet handled had a frame other than the probing ones (RFC 9000 §9.1)
        self.non_probing = False
        #: the peer's ack_delay_exponent (RFC 9000 §18.2; 3 until its parameters arrive)
        self.peer_ack_delay_exponent = 3
        #: how many of our connection IDs the peer keeps active (capped)
        self.active_cid_limit = 2

    def apply_peer_params(self, params: QuicTransportParameters) -> None:
        """Take the peer's ack_delay_exponent and active_connection_id_limit; the path manager
        takes disable_active_migration and preferred_address (its CID arrives like a
        NEW_CONNECTION_ID, RFC 9000 §5.1.1)."""
        if params.ack_delay_exponent is not None:
            self.peer_ack_delay_exponent = params.ack_delay_exponent
        self.active_cid_limit = min(params.active_connection_id_limit or 2, MAX_ISSUED_CIDS)
        self._paths.apply_peer_params(params)

    def handle_payload(self, space_id: int, payload: bytes, now: float,
                       header: QuicHeader) -> bool:
        """Dispatch every frame of a decrypted packet. Returns True if ack-eliciting."""
        if not payload:
            raise QuicConnectionError(QuicErrorCode.PROTOCOL_VIOLATION, None, "Packet has no frames")
        buf = Buffer(data=payload)
        ptype_bit = 1 << header.packet_type
        handlers = _HANDLERS
        ack_eliciting = False
        non_probing = False
        self._packet_dcid = header.destination_cid
        while not buf.eof():
            try:
                frame_type = buf.pull_uint_var()
            except BufferReadError:
                raise QuicConnectionError(QuicErrorCode.FRAME_ENCODING_ERROR, None,
                                          "Truncated frame type") from None
            entry = handlers[frame_type] if frame_type < len(handlers) else None
            if entry is None:
                raise QuicConnectionError(QuicErrorCode.FRAME_ENCODING_ERROR, frame_type,
                                          "Unknown frame type")
            handler, eliciting = entry
            if not FRAME_PACKET_TYPES[frame_type] & ptype_bit:
                raise QuicConnectionError(QuicErrorCode.PROTOCOL_VIOLATION, frame_type,
                                          "Frame not allowed in this packet type")
            try:
                handler(self, space_id, frame_type, buf, now)
            except BufferReadError:
                raise QuicConnectionError(QuicErrorCode.FRAME_ENCODING_ERROR, frame_type,
                                          "Malformed frame") from None
            if eliciting:
                ack_eliciting = True
            if not _PROBING[frame_type]:
                non_probing = True
        self.non_probing = non_probing
        return ack_eliciting

    # ----------------------------------------------------------- handlers

    def _handle_padding_frame(self, space_id: int, frame_type: int, buf: Buffer, now: float) -> None:
        """PADDING: skip the run of zero bytes."""
        f.skip_padding(buf)

    def _handle_ping_frame(self, space_id: int, frame_type: int, buf: Buffer, now: float) -> None:
        """PING: only elicits an ACK."""

    def _handle_ack_frame(self, space_id: int, frame_type: int, buf: Buffer, now: float) -> None:
        """ACK / ACK_ECN (RFC 9000 §19.3)."""
        ranges, delay = f.pull_ack_frame(buf, False)
        counts = f.pull_ecn_counts(buf) if frame_type == FrameType.ACK_ECN else None
        if ranges[-1].stop > self._spaces[space_id].next_pn:
            raise QuicConnectionError(QuicErrorCode.PROTOCOL_VIOLATION, frame_type,
                                      "ACK for a packet never sent")
        skip = self._spaces[space_id].skip
        if skip is not None and skip.acknowledged_skipped(ranges) is not None:
            raise QuicConnectionError(QuicErrorCode.PROTOCOL_VIOLATION, frame_type,
                                      "ACK of a skipped packet number")  # RFC 9000 §13.1
        ack_delay = 0.0
        if space_id == SPACE_APPLICATION:
            ack_delay = (delay << self.peer_ack_delay_exponent) / 1_000_000
        self._recovery.on_ack_received(space_id, ranges, ack_delay, now)
        self._ecn.on_ack(space_id, ranges, counts, now)

    def _handle_reset_stream_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                   now: float) -> None:
        """RESET_STREAM (RFC 9000 §19.4)."""
        frame = f.pull_frame_body(buf, frame_type)
        assert isinstance(frame, f.ResetStreamFrame)
        stream_id, error_code, final_size = frame.stream_id, frame.error_code, frame.final_size
        stream = self._streams.stream_for_receive(stream_id, frame_type)
        if stream is None or stream.recv_finished:
            return
        consumed = stream.recv_delivered - stream.recv_unread  # what the application took
        increase = stream.handle_reset(error_code, final_size)
        self._streams.account_received(increase, frame_type)
        # RFC 9000 §4.5: the whole final size is spent; what was never read is credited back.
        self._streams.data_consumed += final_size - consumed
        self._streams.maybe_raise_max_data()
        self._streams.ready_streams.pop(stream_id, None)
        self._events.append(events.StreamReset(stream_id=stream_id, error_code=error_code))
        self._streams.maybe_close_stream(stream)

    def _handle_stop_sending_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                   now: float) -> None:
        """STOP_SENDING (RFC 9000 §19.5): answer with RESET_STREAM."""
        frame = f.pull_frame_body(buf, frame_type)
        assert isinstance(frame, f.StopSendingFrame)
        stream_id, error_code = frame.stream_id, frame.error_code
        stream = self._streams.stream_for_send_frame(stream_id, frame_type)
        if stream is None or stream.stop_sending_received:
            return  # repeats are reported once: a flood must not fill the event queue
        stream.stop_sending_received = True
        if not stream.send_finished:
            stream.reset(error_code)
            self._streams.send_queue[stream_id] = stream
        self._events.append(events.StopSendingReceived(stream_id=stream_id, error_code=error_code))

    def _handle_crypto_frame(self, space_id: int, frame_type: int, buf: Buffer, now: float) -> None:
        """CRYPTO (RFC 9000 §19.6)."""
        offset, data = f.pull_crypto_frame(buf)
        self._host.on_crypto_frame(space_id, offset, data, now)

    def _handle_new_token_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                now: float) -> None:
        """NEW_TOKEN (RFC 9000 §19.7): tokens are not used for future connections here."""
        f.pull_frame_body(buf, frame_type)
        if not self._is_client:
            raise QuicConnectionError(QuicErrorCode.PROTOCOL_VIOLATION, frame_type,
                                      "Clients must not send NEW_TOKEN")

    def _handle_stream_frame(self, space_id: int, frame_type: int, buf: Buffer, now: float) -> None:
        """STREAM (RFC 9000 §19.8)."""
        stream_id, offset, data, fin = f.pull_stream_frame(buf, frame_type)
        stream = self._streams.stream_for_receive(stream_id, frame_type)
        if stream is None:
            return
        increase = stream.handle_frame(offset, data, fin)
        if increase:
            self._streams.account_received(increase, frame_type)
        if stream.has_ready_data():
            self._streams.ready_streams[stream_id] = stream

    def _handle_max_data_frame(self, space_id: int, frame_type: int, buf: Buffer, now: float) -> None:
        """MAX_DATA (RFC 9000 §19.9)."""
        frame = f.pull_frame_body(buf, frame_type)
        assert isinstance(frame, f.MaxDataFrame)
        value = frame.maximum
        if value > self._streams.peer_max_data:
            self._streams.peer_max_data = value

    def _handle_max_stream_data_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                      now: float) -> None:
        """MAX_STREAM_DATA (RFC 9000 §19.10)."""
        frame = f.pull_frame_body(buf, frame_type)
        assert isinstance(frame, f.MaxStreamDataFrame)
        stream_id, value = frame.stream_id, frame.maximum
        stream = self._streams.stream_for_send_frame(stream_id, frame_type)
        if stream is not None and value > stream.peer_max_stream_data:
            stream.peer_max_stream_data = value
            if stream.has_data_to_send():
                self._streams.send_queue[stream_id] = stream

    def _handle_max_streams_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                  now: float) -> None:
        """MAX_STREAMS (RFC 9000 §19.11)."""
        frame = f.pull_frame_body(buf, frame_type)
        assert isinstance(frame, f.MaxStreamsFrame)
        value = frame.maximum
        idx = frame_type & 1
        if value > self._streams.peer_max_streams[idx]:
            self._streams.peer_max_streams[idx] = value

    def _handle_data_blocked_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                   now: float) -> None:
        """DATA_BLOCKED (RFC 9000 §19.12): informational."""
        f.pull_frame_body(buf, frame_type)

    def _handle_stream_data_blocked_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                          now: float) -> None:
        """STREAM_DATA_BLOCKED (RFC 9000 §19.13): informational, but the stream must be valid."""
        frame = f.pull_frame_body(buf, frame_type)
        assert isinstance(frame, f.StreamDataBlockedFrame)
        self._streams.stream_for_receive(frame.stream_id, frame_type)

    def _handle_streams_blocked_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                      now: float) -> None:
        """STREAMS_BLOCKED (RFC 9000 §19.14)."""
        f.pull_frame_body(buf, frame_type)  # checks the 2^60 bound

    def _handle_new_connection_id_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                        now: float) -> None:
        """NEW_CONNECTION_ID (RFC 9000 §19.15)."""
        frame = f.pull_frame_body(buf, frame_type)
        assert isinstance(frame, f.NewConnectionIdFrame)
        self._peer_cids.add(frame.sequence_number, frame.retire_prior_to, frame.connection_id,
                            frame.stateless_reset_token)

    def _handle_retire_connection_id_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                           now: float) -> None:
        """RETIRE_CONNECTION_ID (RFC 9000 §19.16): retire and replace."""
        frame = f.pull_frame_body(buf, frame_type)
        assert isinstance(frame, f.RetireConnectionIdFrame)
        entry = self._host_cids.retire(frame.sequence_number, self._packet_dcid)
        if entry is not None:
            self._events.append(events.ConnectionIdRetired(connection_id=entry.cid))
            for new in self._host_cids.issue(self.active_cid_limit):
                self._owed.new_cids.append(new)
                self._events.append(events.ConnectionIdIssued(connection_id=new.cid))

    def _handle_path_challenge_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                     now: float) -> None:
        """PATH_CHALLENGE (RFC 9000 §19.17): echo in PATH_RESPONSE."""
        frame = f.pull_frame_body(buf, frame_type)
        assert isinstance(frame, f.PathChallengeFrame)
        if not self._paths.on_path_challenge(frame.data):  # else answered where it came from
            push_bounded(self._owed.path_responses, frame.data, MAX_PATH_RESPONSES)

    def _handle_path_response_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                    now: float) -> None:
        """PATH_RESPONSE (RFC 9000 §19.18): may validate the path being probed."""
        frame = f.pull_frame_body(buf, frame_type)
        assert isinstance(frame, f.PathResponseFrame)
        self._paths.on_path_response(frame.data, now)

    def _handle_connection_close_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                       now: float) -> None:
        """CONNECTION_CLOSE (RFC 9000 §19.19): enter draining."""
        frame = f.pull_frame_body(buf, frame_type)
        assert isinstance(frame, f.ConnectionCloseFrame)
        self._qlog.connection_closed(now, "remote", frame.error_code, frame.reason_phrase)
        self._host.on_peer_close(frame.error_code, frame.frame_type, frame.reason_phrase, now)

    def _handle_handshake_done_frame(self, space_id: int, frame_type: int, buf: Buffer,
                                     now: float) -> None:
        """HANDSHAKE_DONE (RFC 9000 §19.20): confirms the handshake on the client."""
        if not self._is_client:
            raise QuicConnectionError(QuicErrorCode.PROTOCOL_VIOLATION, frame_type,
                                      "Clients must not send HANDSHAKE_DONE")
        self._host.on_handshake_done_frame(now)

    def _handle_datagram_frame(self, space_id: int, frame_type: int, buf: Buffer, now: float) -> None:
        """DATAGRAM (RFC 9221 §4)."""
        data = f.pull_datagram_frame(buf, frame_type)
        limit = self._max_datagram_frame_size
        if limit is None or len(data) > limit:
            raise QuicConnectionError(QuicErrorCode.PROTOCOL_VIOLATION, frame_type,
                                      "Unexpected DATAGRAM frame")
        self._datagrams.received(data, now)



_M = FrameReceiver
_Handler = Callable[[_M, int, int, Buffer, float], None]


def _handler_table() -> tuple[tuple[_Handler, bool] | None, ...]:
    """``(handler, ack-eliciting)`` per frame type (RFC 9000 §13.2.1), indexed by the type."""
    by_type: dict[int, _Handler] = {
        FrameType.PADDING: _M._handle_padding_frame,
        FrameType.PING: _M._handle_ping_frame,
        FrameType.ACK: _M._handle_ack_frame,
        FrameType.ACK_ECN: _M._handle_ack_frame,
        FrameType.RESET_STREAM: _M._handle_reset_stream_frame,
        FrameType.STOP_SENDING: _M._handle_stop_sending_frame,
        FrameType.CRYPTO: _M._handle_crypto_frame,
        FrameType.NEW_TOKEN: _M._handle_new_token_frame,
        **{t: _M._handle_stream_frame for t in range(FrameType.STREAM_BASE, FrameType.MAX_DATA)},
        FrameType.MAX_DATA: _M._handle_max_data_frame,
        FrameType.MAX_STREAM_DATA: _M._handle_max_stream_data_frame,
        FrameType.MAX_STREAMS_BIDI: _M._handle_max_streams_frame,
        FrameType.MAX_STREAMS_UNI: _M._handle_max_streams_frame,
        FrameType.DATA_BLOCKED: _M._handle_data_blocked_frame,
        FrameType.STREAM_DATA_BLOCKED: _M._handle_stream_data_blocked_frame,
        FrameType.STREAMS_BLOCKED_BIDI: _M._handle_streams_blocked_frame,
        FrameType.STREAMS_BLOCKED_UNI: _M._handle_streams_blocked_frame,
        FrameType.NEW_CONNECTION_ID: _M._handle_new_connection_id_frame,
        FrameType.RETIRE_CONNECTION_ID: _M._handle_retire_connection_id_frame,
        FrameType.PATH_CHALLENGE: _M._handle_path_challenge_frame,
        FrameType.PATH_RESPONSE: _M._handle_path_response_frame,
        FrameType.TRANSPORT_CLOSE: _M._handle_connection_close_frame,
        FrameType.APPLICATION_CLOSE: _M._handle_connection_close_frame,
        FrameType.HANDSHAKE_DONE: _M._handle_handshake_done_frame,
        FrameType.DATAGRAM: _M._handle_datagram_frame,
        FrameType.DATAGRAM_WITH_LENGTH: _M._handle_datagram_frame,
    }
    table: list[tuple[_Handler, bool] | None] = [None] * len(FRAME_PACKET_TYPES)
    for frame_type, handler in by_type.items():
        table[frame_type] = (handler, frame_type not in NON_ACK_ELICITING_FRAME_TYPES)
    return tuple(table)


#: Frame type -> (handler, ack-eliciting); where each may appear is FRAME_PACKET_TYPES.
_HANDLERS: Final = _handler_table()
#: RFC 9000 §9.1: the probing frames; a packet of only these does not move the path.
_PROBING_FRAMES = (FrameType.PADDING, FrameType.PATH_CHALLENGE, FrameType.PATH_RESPONSE,
                   FrameType.NEW_CONNECTION_ID)
_PROBING: Final = tuple(t in _PROBING_FRAMES for t in range(len(FRAME_PACKET_TYPES)))
