"""The sans-IO QUIC v1 connection state machine (RFC 9000, RFC 9001, RFC 9002).

Theory of operation: the I/O edge feeds datagrams with ``receive_datagram(data, addr, now)``,
collects ``datagrams_to_send(now)`` once per batch of received datagrams, arms a timer at
``get_timer()`` and calls ``handle_timer(now)`` when it fires, and drains ``next_event()``.
Nothing here reads a clock or a socket.

Frame handlers live in :mod:`.receive` and the send path in :mod:`.assembler`;
this module holds state, the receive path, TLS integration and timers.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ...qlog.sink import NullSink, QlogSink
from ...tls.alerts import TlsAlert
from ...tls.handshake import TlsSession
from ...wire.buffer import Buffer, BufferReadError
from .. import events, initial_layout
from ..config import QuicConfiguration
from ..crypto import CryptoError, CryptoPair
from ..errors import LocalProtocolError, QuicConnectionError, QuicErrorCode
from ..packet import (
    PACKET_TYPE_HANDSHAKE,
    PACKET_TYPE_INITIAL,
    PACKET_TYPE_ONE_RTT,
    PACKET_TYPE_RETRY,
    PACKET_TYPE_VERSION_NEGOTIATION,
    PACKET_TYPE_ZERO_RTT,
    STATELESS_RESET_MIN_SIZE,
    STATELESS_RESET_TOKEN_SIZE,
    QuicHeader,
    get_retry_integrity_tag,
    pull_quic_header,
)
from ..qlog_frames import describe_frames
from ..recovery.congestion.base import create_congestion_controller
from ..recovery.loss import (
    SPACE_APPLICATION,
    SPACE_HANDSHAKE,
    SPACE_INITIAL,
    LossRecovery,
    SentPacket,
)
from ..recovery.pacer import Pacer
from ..recovery.rtt import RttEstimator
from ..streams import QuicStream
from ..tokens import stateless_reset_token
from ..transport_params import (
    QuicTransportParameters,
)
from .assembler import SendPathMixin
from .cids import HostConnectionIds, PeerConnectionIds
from .receive import FrameHandlersMixin
from .state import ConnectionLifecycle, ConnectionState
from .streams import StreamManager
from .tls_driver import TlsIntegrationMixin

#: PATH_RESPONSE frames queued at most; a flood of PATH_CHALLENGEs keeps only the newest.
MAX_PATH_RESPONSES = 16
_QLOG_PACKET_TYPE = ("initial", "handshake", "1RTT")


class QuicConnection(TlsIntegrationMixin, FrameHandlersMixin, SendPathMixin):
    """One QUIC connection, client or server."""

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        original_destination_connection_id: bytes | None = None,
        retry_source_connection_id: bytes | None = None,
        initial_destination_connection_id: bytes | None = None,
        peer_cid: bytes | None = None,
    ):
        cfg = configuration
        self.configuration = cfg
        self.is_client = cfg.is_client
        self._rng = cfg.rng
        self._version = cfg.supported_versions[0]
        reset_key = cfg.stateless_reset_key or cfg.rng(32)
        # A client's SCID length may be 0 (RFC 9000 §5.1); its first flight may follow a layout.
        profile = initial_layout.profile_for(cfg.initial_layout) if self.is_client else None
        self._initial_plan = profile if profile is not None and profile.chaos else None
        cid_length = cfg.connection_id_length
        if profile is not None:
            cid_length = next(n for n in (cfg.scid_length, profile.scid_length, cid_length)
                              if n is not None)
        host_cid = cfg.rng(cid_length)
        self._host_cids = HostConnectionIds(
            host_cid, cfg.rng, lambda cid: stateless_reset_token(reset_key, cid)
        )
        if self.is_client:
            first_peer = cfg.rng(8)
            self._original_dcid = first_peer
            self._peer_cids = PeerConnectionIds(first_peer, cfg.active_connection_id_limit)
            self._initial_dcid = first_peer
        else:
            assert original_destination_connection_id is not None and peer_cid is not None
            self._original_dcid = original_destination_connection_id
            self._peer_cids = PeerConnectionIds(peer_cid, cfg.active_connection_id_limit)
            self._initial_dcid = initial_destination_connection_id or original_destination_connection_id
        self._retry_scid = retry_source_connection_id
        self._retry_token = b""
        self._received_retry = False
        self._peer_initial_scid: bytes | None = None if self.is_client else peer_cid

        self._lifecycle = ConnectionLifecycle()
        self._events: deque[Any] = deque()
        self._network_path: Any = None

        # Packet protection per space, CRYPTO streams per space.
        self._cryptos = [CryptoPair(), CryptoPair(), CryptoPair()]
        self._cryptos[SPACE_INITIAL].setup_initial(
            self._initial_dcid, is_client=self.is_client, version=self._version
        )
        self._crypto_streams = [self._new_crypto_stream() for _ in range(3)]
        self._crypto_initialized = False
        self._handshake_confirmed = False
        self._handshake_done_pending = False
        self._address_validated = self.is_client or retry_source_connection_id is not None
        self._bytes_received = 0
        self._bytes_sent = 0
        self._sent_handshake_packet = False
        self._first_initial_hello: bytes | None = None
        self._key_update_requested = False
        self._previous_keys_discard_at: float | None = None

        # Recovery.
        self._rtt = RttEstimator(cfg.initial_rtt)
        self._cc = create_congestion_controller(
            cfg.congestion_control_algorithm, max_datagram_size=cfg.max_datagram_size
        )
        self._pacer = Pacer(max_datagram_size=cfg.max_datagram_size)
        self._recovery = LossRecovery(
            congestion=self._cc,
            rtt=self._rtt,
            pacer=self._pacer,
            max_ack_delay=0.025,
            is_client=self.is_client,
            on_lost=self._on_packet_lost,
            on_metrics=self._on_metrics,
            on_spurious=self._on_packet_spurious,
        )
        self._probe_space: int | None = None
        self._probe_count = 0
        self._pacing_until: float | None = None

        # Streams and flow control.
        self._stream_mgr = StreamManager(cfg, is_client=self.is_client)
        self._datagrams_out: deque[bytes] = deque()
        # RFC 9000 §8.2.2: PATH_RESPONSE echoes, bounded (the oldest are dropped; §21.9).
        self._path_responses: deque[bytes] = deque(maxlen=MAX_PATH_RESPONSES)
        self._pings: list[int] = []
        self._cids_to_announce: list[Any] = []
        self._close_frame: tuple[int, int | None, str, bool] | None = None
        self._close_sent_at: float | None = None
        self._close_deadline: float | None = None
        # RFC 9000 §10.2.1: in the closing state, answer the 1st, 2nd, 4th, 8th ... packet.
        self._closing_packets = 0
        self._closing_next_reply = 1
        self._terminated_event_sent = False

        # Peer transport parameters (defaults until received).
        self._peer_params = QuicTransportParameters()
        self._peer_max_ack_delay = 0.025
        self._peer_ack_delay_exponent = 3
        self._packet_dcid = b""
        self._now_hint = 0.0
        self._idle_timeout = cfg.idle_timeout
        self._last_activity = 0.0
        self._max_datagram_size = cfg.max_datagram_size

        # Observability.
        if cfg.qlog_factory is not None:
            self._qlog: QlogSink = cfg.qlog_factory(self._original_dcid, self.is_client)
        else:
            self._qlog = NullSink()
        self._qlog_frames = self._qlog.wants_frames
        self._tls: TlsSession | None = None

    # ------------------------------------------------------------ properties

    @property
    def original_destination_connection_id(self) -> bytes:
        """The DCID of the client's first Initial (keys the qlog file name)."""
        return self._original_dcid

    @property
    def initial_destination_connection_id(self) -> bytes:
        """The DCID of the Initial that created this connection (after a Retry: the Retry's SCID)."""
        return self._initial_dcid

    @property
    def host_cid(self) -> bytes:
        """Our first connection ID."""
        return self._host_cids.entries[0].cid

    @property
    def host_cids(self) -> list[bytes]:
        """All our active connection IDs (the endpoint routes on these)."""
        return self._host_cids.cids

    @property
    def alpn_protocol(self) -> str | None:
        """Negotiated ALPN protocol."""
        return self._alpn

    @property
    def state(self) -> ConnectionState:
        """Lifecycle state."""
        return self._lifecycle.state

    @property
    def rtt(self) -> RttEstimator:
        """The RTT estimator."""
        return self._rtt

    @property
    def congestion_window(self) -> int:
        """Current congestion window in bytes."""
        return self._cc.congestion_window

    @property
    def is_terminated(self) -> bool:
        """True once the connection is fully gone."""
        return self._lifecycle.state == ConnectionState.TERMINATED


    # ------------------------------------------------------------------ TLS

    def _new_crypto_stream(self) -> QuicStream:
        return QuicStream(-1, can_send=True, can_receive=True,
                          local_max_stream_data=1 << 62, peer_max_stream_data=1 << 62,
                          crypto=True)

    # ----------------------------------------------------------- client API

    def connect(self, addr: Any, now: float) -> None:
        """Start the handshake (client only)."""
        if not self.is_client:
            raise LocalProtocolError("connect() is for clients")
        self._network_path = addr
        self._last_activity = now
        self._now_hint = now
        self._peer_initial_scid = None
        self._qlog.connection_started(now, None, addr, self._version, self.host_cid,
                                      self._peer_cids.current.cid)
        self._init_tls()
        assert self._tls is not None
        self._process_tls(self._tls.start(), now)

    # ------------------------------------------------------------- receive

    def receive_datagram(self, data: bytes, addr: Any, now: float) -> None:
        """Process one UDP datagram from ``addr``."""
        if self._lifecycle.state in (ConnectionState.DRAINING, ConnectionState.TERMINATED):
            return
        self._now_hint = now
        if self._network_path is None:
            self._network_path = addr
        if addr == self._network_path:
            # RFC 9000 §8.1: only bytes from the address we answer earn anti-amplification credit.
            self._bytes_received += len(data)
        buf = Buffer(data=data)
        host_len = self._host_cids.length
        was_closing = self._lifecycle.state == ConnectionState.CLOSING
        processed_any = 0
        while not buf.eof():
            start = buf.tell()
            try:
                header = pull_quic_header(buf, host_cid_length=host_len)
            except (ValueError, BufferReadError):
                break
            end = header.packet_end
            buf.seek(end)
            if header.packet_type == PACKET_TYPE_VERSION_NEGOTIATION:
                self._handle_version_negotiation(header, now)
                return
            if header.is_long_header and header.version != self._version:
                continue
            if header.packet_type == PACKET_TYPE_RETRY:
                self._handle_retry(header, data[start:end], now)
                return
            if header.packet_type == PACKET_TYPE_ZERO_RTT:
                continue
            if self._process_packet(header, data, start, end, now):
                processed_any += 1
            if self._lifecycle.state in (ConnectionState.DRAINING, ConnectionState.TERMINATED):
                return
        if processed_any:
            self._last_activity = now
            if was_closing:
                self._on_packets_while_closing(processed_any)
        elif len(data) >= STATELESS_RESET_MIN_SIZE and self._peer_cids.is_stateless_reset(
                data[-STATELESS_RESET_TOKEN_SIZE:]):
            self._terminate(QuicErrorCode.NO_ERROR, None, "stateless reset", by_peer=True, now=now)

    def _on_packets_while_closing(self, count: int) -> None:
        """RFC 9000 §10.2.1: resend CONNECTION_CLOSE, at exponentially growing packet counts."""
        self._closing_packets += count
        if self._closing_packets >= self._closing_next_reply:
            while self._closing_next_reply <= self._closing_packets:
                self._closing_next_reply *= 2
            self._close_sent_at = None  # datagrams_to_send() answers with CONNECTION_CLOSE again

    def _process_packet(self, header: QuicHeader, data: bytes, start: int, end: int,
                        now: float) -> bool:
        ptype = header.packet_type
        if ptype == PACKET_TYPE_ONE_RTT:
            space_id = SPACE_APPLICATION
        elif ptype == PACKET_TYPE_HANDSHAKE:
            space_id = SPACE_HANDSHAKE
        else:
            space_id = SPACE_INITIAL
        space = self._recovery.spaces[space_id]
        if space.discarded:
            return False
        pair = self._cryptos[space_id]
        if not pair.recv.is_valid():
            return False
        if (header.is_long_header and header.destination_cid not in self._host_cids.cids
                and not self._accepts_first_dcid(ptype, header.destination_cid)):
            return False
        generation = pair.generation
        try:
            plain_header, payload, pn = pair.decrypt_packet(
                data[start:end], header.pn_offset - start, space.largest_received + 1
            )
        except CryptoError:
            return False
        if pair.generation != generation:
            self._on_key_update(now, "remote_update")
        # RFC 9000 §17.2/§17.3.1: reserved bits must be zero after header protection removal.
        if plain_header[0] & (0x0C if header.is_long_header else 0x18):
            self._close_with_error(
                QuicConnectionError(QuicErrorCode.PROTOCOL_VIOLATION, None, "reserved bits set"), now
            )
            return True
        if space.is_duplicate(pn):
            return True  # duplicate, or older than every range remembered (RFC 9000 §12.3)
        if self.is_client and ptype == PACKET_TYPE_INITIAL and self._peer_initial_scid is None:
            self._peer_initial_scid = header.source_cid
            self._peer_cids.current.cid = header.source_cid
        if not self.is_client and ptype == PACKET_TYPE_HANDSHAKE:
            self._address_validated = True
            self._discard_space(SPACE_INITIAL)
        if self._lifecycle.state == ConnectionState.FIRSTFLIGHT and not self._crypto_initialized:
            self._init_tls()
            self._qlog.connection_started(now, None, self._network_path, self._version,
                                          self.host_cid, self._peer_cids.current.cid)
        if self._qlog_frames:
            self._qlog.packet_received(now, _QLOG_PACKET_TYPE[space_id], pn, end - start,
                                       describe_frames(payload))
        try:
            ack_eliciting = self._handle_payload(space_id, payload, now, header)
        except QuicConnectionError as exc:
            self._close_with_error(exc, now)
            return True
        except TlsAlert as alert:
            self._close_with_error(
                QuicConnectionError(QuicErrorCode.CRYPTO_ERROR + alert.description, None,
                                    alert.reason), now)
            return True
        self._record_received(space, space_id, pn, ack_eliciting, now)
        return True

    def _accepts_first_dcid(self, ptype: int, dcid: bytes) -> bool:
        """A long-header DCID outside our CIDs: a client's first server Initial, or a server's
        Initial sent to the DCID the client chose (RFC 9000 §7.2)."""
        if self.is_client:
            return ptype == PACKET_TYPE_INITIAL and self._peer_initial_scid is None
        return dcid == self._initial_dcid

    def _record_received(self, space: Any, space_id: int, pn: int, ack_eliciting: bool,
                         now: float) -> None:
        in_order = pn == space.largest_received + 1
        space.record_received(pn)
        if pn > space.largest_received:
            space.largest_received = pn
            space.largest_received_time = now
        if not ack_eliciting:
            return
        if space_id != SPACE_APPLICATION or not in_order:
            space.ack_needed = True
            return
        space.ack_eliciting_unacked += 1
        if space.ack_eliciting_unacked >= 2:
            space.ack_needed = True
        elif space.ack_deadline is None:
            space.ack_deadline = now + self.configuration.max_ack_delay

    def _handle_version_negotiation(self, header: QuicHeader, now: float) -> None:
        """RFC 9000 §6.2: a client abandons the attempt when no common version exists."""
        if not self.is_client or self._peer_initial_scid is not None:
            return
        if header.destination_cid != self.host_cid or self._version in header.supported_versions:
            return
        common = [v for v in self.configuration.supported_versions if v in header.supported_versions]
        if not common:
            self._terminate(QuicErrorCode.INTERNAL_ERROR, None,
                            "Version negotiation: no common version", by_peer=True, now=now)

    def _handle_retry(self, header: QuicHeader, packet: bytes, now: float) -> None:
        """RFC 9000 §17.2.5.2: restart the handshake once with the Retry's CID and token."""
        if not self.is_client or self._received_retry or self._peer_initial_scid is not None:
            return
        if header.destination_cid != self.host_cid or not header.token:
            return
        expected = get_retry_integrity_tag(packet[:-16], self._peer_cids.current.cid, self._version)
        if expected != header.integrity_tag:
            return
        self._received_retry = True
        self._retry_scid = header.source_cid
        self._retry_token = header.token
        self._peer_cids.current.cid = header.source_cid
        self._cryptos[SPACE_INITIAL].setup_initial(header.source_cid, is_client=True,
                                                   version=self._version)
        # Resend the ClientHello from offset 0; packet numbers continue (RFC 9000 §17.2.5.3).
        self._recovery.forget_sent(SPACE_INITIAL)
        self._crypto_streams[SPACE_INITIAL] = self._new_crypto_stream()
        assert self._first_initial_hello is not None
        self._crypto_streams[SPACE_INITIAL].write(self._first_initial_hello, False)
        self._qlog.custom(now, "transport:packet_received", {"header": {"packet_type": "retry"}})

    # -------------------------------------------------------------- timers

    def get_timer(self) -> float | None:
        """Earliest deadline the edge must call :meth:`handle_timer` at."""
        if self._lifecycle.state == ConnectionState.TERMINATED:
            return None
        if self._close_deadline is not None:
            return self._close_deadline
        timer: float | None = None
        idle = self._idle_deadline()
        if idle is not None:
            timer = idle
        loss = self._recovery.get_loss_detection_time()
        if loss is not None and (timer is None or loss < timer):
            timer = loss
        app = self._recovery.spaces[SPACE_APPLICATION]
        if app.ack_deadline is not None and (timer is None or app.ack_deadline < timer):
            timer = app.ack_deadline
        if self._pacing_until is not None and (timer is None or self._pacing_until < timer):
            timer = self._pacing_until
        discard = self._previous_keys_discard_at
        if discard is not None and (timer is None or discard < timer):
            timer = discard
        return timer

    def _idle_deadline(self) -> float | None:
        if not self._idle_timeout:
            return None
        return self._last_activity + max(self._idle_timeout, 3 * self._rtt.pto_base())

    def handle_timer(self, now: float) -> None:
        """Run whatever timers are due at ``now``."""
        if self._lifecycle.state == ConnectionState.TERMINATED:
            return
        self._now_hint = now
        if self._close_deadline is not None:
            if now >= self._close_deadline:
                self._set_state(ConnectionState.TERMINATED, now)
                self._close_deadline = None
            return
        idle = self._idle_deadline()
        if idle is not None and now >= idle:
            self._terminate(QuicErrorCode.NO_ERROR, None, "Idle timeout", by_peer=False, now=now,
                            immediate=True)
            return
        app = self._recovery.spaces[SPACE_APPLICATION]
        if app.ack_deadline is not None and now >= app.ack_deadline:
            app.ack_needed = True
            app.ack_deadline = None
        if self._pacing_until is not None and now >= self._pacing_until:
            self._pacing_until = None
        if self._previous_keys_discard_at is not None and now >= self._previous_keys_discard_at:
            self._previous_keys_discard_at = None
            self._cryptos[SPACE_APPLICATION].discard_previous_keys()
        loss = self._recovery.get_loss_detection_time()
        if loss is not None and now >= loss:
            probe_space = self._recovery.on_loss_detection_timeout(now)
            if probe_space is not None:
                self._probe_space = probe_space
                self._probe_count = 2

    # -------------------------------------------------------------- events

    def next_event(self) -> Any:
        """Pop the next :mod:`~quicreality.quic.events` event, or None."""
        if self._events:
            return self._events.popleft()
        ready = self._stream_mgr.ready_streams
        while ready:
            stream_id, stream = ready.popitem()
            if not stream.has_ready_data() or stream_id in self._stream_mgr.reading_paused:
                continue  # a paused stream is re-queued by resume_stream_reading()
            data, fin = stream.pull_ready()
            self._stream_mgr.data_consumed += len(data)
            self._stream_mgr.after_stream_consumed(stream)
            return events.StreamDataReceived(stream_id=stream_id, data=data, end_stream=fin)
        return None

    def _set_state(self, state: ConnectionState, now: float) -> None:
        """Take a transition of :data:`~.state.TRANSITIONS` and log it (refused ones are no-ops)."""
        step = self._lifecycle.advance(state)
        if step is not None:
            self._qlog.connection_state_updated(now, step.old.name.lower(), step.new.name.lower())
            if state == ConnectionState.TERMINATED:
                self._qlog.close()

    def release(self) -> None:
        """Flush and close observability outputs (qlog) of a connection being abandoned."""
        self._qlog.close()

    # ------------------------------------------------------------- closing

    def close(self, error_code: int = QuicErrorCode.NO_ERROR, frame_type: int | None = None,
              reason_phrase: str = "", *, application: bool = True) -> None:
        """Close the connection (RFC 9000 §10.2). Application close unless ``application=False``."""
        if self._lifecycle.advance(ConnectionState.CLOSING) is None:
            return  # already closing, draining or terminated
        self._close_frame = (error_code, frame_type, reason_phrase, application)
        self._events.append(events.ConnectionTerminated(
            error_code=error_code, frame_type=frame_type, reason_phrase=reason_phrase, by_peer=False))
        self._terminated_event_sent = True

    def _close_with_error(self, exc: QuicConnectionError, now: float) -> None:
        self._qlog.connection_closed(now, "local", exc.error_code, exc.reason_phrase)
        self.close(exc.error_code, exc.frame_type if exc.frame_type is not None else 0,
                   exc.reason_phrase, application=False)

    def _terminate(self, error_code: int, frame_type: int | None, reason: str, *, by_peer: bool,
                   now: float, immediate: bool = False) -> None:
        if not self._terminated_event_sent:
            self._events.append(events.ConnectionTerminated(
                error_code=error_code, frame_type=frame_type, reason_phrase=reason, by_peer=by_peer))
            self._terminated_event_sent = True
        if immediate:
            self._set_state(ConnectionState.TERMINATED, now)
        else:
            self._set_state(ConnectionState.DRAINING, now)
            self._close_deadline = now + 3 * self._rtt.pto_base()

    # ---------------------------------------------------------- recovery hooks

    def _on_packet_lost(self, packet: SentPacket, trigger: str) -> None:
        self._qlog.packet_lost(self._now_hint, packet.packet_type, packet.packet_number, trigger)

    def _on_packet_spurious(self, lost: Any, now: float) -> None:
        """A packet declared lost was acknowledged (recovery/reordering.py)."""
        self._qlog.custom(now, "spurious_loss", {
            "packet_type": lost.packet.packet_type, "packet_number": lost.packet.packet_number,
            "trigger": lost.trigger, "packet_threshold": self._recovery.thresholds.packet_threshold,
            "time_threshold": self._recovery.thresholds.time_threshold})


    def _on_metrics(self, now: float) -> None:
        rtt = self._rtt
        self._qlog.metrics_updated(
            now, min_rtt=rtt.min_rtt, smoothed_rtt=rtt.smoothed_rtt, latest_rtt=rtt.latest_rtt,
            rtt_variance=rtt.rttvar, congestion_window=self._cc.congestion_window,
            bytes_in_flight=self._recovery.bytes_in_flight, ssthresh=self._cc.ssthresh)
