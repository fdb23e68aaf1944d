"""The sans-IO QUIC connection state machine (RFC 9000, RFC 9001, RFC 9002; v2 RFC 9369).

Theory of operation: the I/O edge feeds datagrams with ``receive_datagram(data, addr, now)``,
collects ``datagrams_to_send(now)`` once per batch of received datagrams, arms a timer at
``get_timer()`` and calls ``handle_timer(now)`` when it fires, and drains ``next_event()``.
Nothing here reads a clock or a socket.

Frame handlers live in :mod:`.receive` and the send path in :mod:`.assembler`;
this module holds state, the receive path, TLS integration and timers.
"""

from __future__ import annotations

from collections import deque
from functools import partial

from ...qlog.sink import NullSink, QlogSink
from ...tls.alerts import TlsAlert
from ...tls.handshake import HandshakeDone
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
    LostPacket,
    SentPacket,
)
from ..recovery.pacer import Pacer
from ..recovery.rtt import RttEstimator
from ..tokens import stateless_reset_token
from ..transport_params import QuicTransportParameters
from .assembler import PacketAssembler
from .cids import HandshakeIds, HostConnectionIds, PeerConnectionIds
from .datagrams import DatagramQueues
from .early_data import ZERO_RTT_QLOG_TYPE, EarlyData
from .ecn import EcnValidator
from .key_update import KeyUpdates, KeyUpdateVerdict
from .migration import MigrationVerdict, PathManager
from .path import NetworkAddress, NetworkPath
from .receive import FrameReceiver
from .spaces import PacketSpace
from .state import CLOSING, DRAINING, FIRSTFLIGHT, TERMINATED, ConnectionLifecycle, ConnectionState
from .streams import StreamManager
from .tls_driver import TlsDriver, TlsProgress, params_for_qlog
from .versions import ConnectionVersions

_QLOG_PACKET_TYPE = ("initial", "handshake", "1RTT")


class QuicConnection:
    """One QUIC connection, client or server: a façade over its components.

    Components (each owns its state and is handed what it uses): the packet spaces (:mod:`.spaces`),
    loss recovery, the stream manager, the connection IDs, :class:`TlsDriver`, :class:`FrameReceiver`,
    :class:`PacketAssembler`, :attr:`datagrams` (the bounded DATAGRAM queues and their drop
    counters, :mod:`.datagrams`) and :attr:`ecn` (the edge sends with ``ecn.codepoint``, RFC 9000 §13.4).
    This class holds the lifecycle, closing, timers and the effects that span components (keys
    discarded, handshake confirmed, the peer's transport parameters applied).
    """

    def __init__(
        self, *,
        configuration: QuicConfiguration,
        original_destination_connection_id: bytes | None = None,
        retry_source_connection_id: bytes | None = None,
        initial_destination_connection_id: bytes | None = None,
        peer_cid: bytes | None = None,
        version: int | None = None,
    ):
        """``version``: server: the version of the client's first Initial (default: our first)."""
        cfg = configuration
        self.configuration = cfg
        self.is_client = is_client = cfg.is_client
        version = version or cfg.initial_version or cfg.supported_versions[0]
        reset_key = cfg.stateless_reset_key or cfg.rng(32)
        # A client's SCID length may be 0 (RFC 9000 §5.1); its first flight may follow a layout.
        profile = initial_layout.profile_for(cfg.initial_layout) if is_client else None
        cid_length = cfg.connection_id_length
        if profile is not None:
            cid_length = next(n for n in (cfg.scid_length, profile.scid_length, cid_length)
                              if n is not None)
        host_cid = cfg.rng(cid_length)
        # a partial, not a lambda: a mypyc lambda does not pickle (fuzz/pair.py snapshots by pickling)
        self._host_cids = HostConnectionIds(host_cid, cfg.rng, partial(stateless_reset_token, reset_key))
        self._spaces = [PacketSpace(), PacketSpace(), PacketSpace(cfg.ack_every)]
        owed = self._spaces[SPACE_APPLICATION].owed
        if is_client:
            first_peer = cfg.rng(8)
            self._ids = HandshakeIds(first_peer, first_peer, retry_source_connection_id, None)
        else:
            assert original_destination_connection_id is not None and peer_cid is not None
            first_peer = peer_cid
            self._ids = HandshakeIds(
                original_destination_connection_id,
                initial_destination_connection_id or original_destination_connection_id,
                retry_source_connection_id, peer_cid)
        self._peer_cids = PeerConnectionIds(first_peer, cfg.active_connection_id_limit, owed)

        self._lifecycle = ConnectionLifecycle()
        self._events: deque[events.QuicEvent] = deque()
        self._path = NetworkPath(validated=is_client or retry_source_connection_id is not None)

        # Packet protection per space.
        self._cryptos = [CryptoPair(), CryptoPair(), CryptoPair()]
        self._cryptos[SPACE_INITIAL].setup_initial(self._ids.initial_dcid, is_client=is_client,
                                                   version=version)
        self._handshake_confirmed = False

        # Recovery.
        self._rtt = RttEstimator(cfg.initial_rtt)
        self._cc = create_congestion_controller(  # seed: BBR's start phase, per connection
            cfg.congestion_control_algorithm, max_datagram_size=cfg.max_datagram_size,
            seed=int.from_bytes(reset_key[:8], "big") ^ int.from_bytes(host_cid, "big"))
        self._pacer = Pacer(max_datagram_size=cfg.max_datagram_size)
        self._recovery = LossRecovery(
            congestion=self._cc,
            rtt=self._rtt,
            pacer=self._pacer,
            max_ack_delay=0.025,
            is_client=is_client,
            on_lost=self._on_packet_lost,
            on_metrics=self._on_metrics,
            on_spurious=self._on_packet_spurious,
        )

        # Streams and flow control.
        self._stream_mgr = StreamManager(cfg, is_client=is_client, owed=owed)
        self._close_frame: tuple[int, int | None, str, bool] | None = None
        self._close_sent_at: float | None = None
        self._close_deadline: float | None = None
        # RFC 9000 §10.2.1: in the closing state, answer the 1st, 2nd, 4th, 8th ... packet.
        self._closing_packets = 0
        self._closing_next_reply = 1
        self._terminated_event_sent = False

        # Peer transport parameters (defaults until received).
        self._peer_params = QuicTransportParameters()
        self._now_hint = 0.0
        self._idle_timeout = cfg.idle_timeout
        self._last_activity = 0.0

        # Observability.
        self._qlog: QlogSink = (cfg.qlog_factory(self._ids.original_dcid, is_client)
                                if cfg.qlog_factory is not None else NullSink())
        self._qlog_frames = self._qlog.wants_frames
        self.datagrams = DatagramQueues(cfg, events=self._events, qlog=self._qlog)
        self.ecn = EcnValidator(enabled=cfg.ecn, recovery=self._recovery, qlog=self._qlog)
        self._paths = PathManager(self._path, cfg, spaces=self._spaces, host_cids=self._host_cids,
                                  peer_cids=self._peer_cids, recovery=self._recovery, qlog=self._qlog)
        # The components that act on the state above.
        self._early = EarlyData(is_client=is_client, events=self._events,
                                recovery=self._recovery, streams=self._stream_mgr)
        self._key_updates = KeyUpdates(
            crypto=self._cryptos[SPACE_APPLICATION], space=self._spaces[SPACE_APPLICATION],
            recovery=self._recovery, rtt=self._rtt, qlog=self._qlog, events=self._events,
            packet_limit=cfg.key_update_packet_limit)
        self._versions = ConnectionVersions(cfg, is_client=is_client, version=version,
                                            cryptos=self._cryptos, ids=self._ids, qlog=self._qlog)
        self._tls = TlsDriver(cfg, is_client=is_client, versions=self._versions,
                              spaces=self._spaces, cryptos=self._cryptos, ids=self._ids,
                              host_cids=self._host_cids, qlog=self._qlog, early=self._early)
        self._receiver = FrameReceiver(
            is_client=is_client, max_datagram_frame_size=cfg.max_datagram_frame_size,
            spaces=self._spaces, recovery=self._recovery, streams=self._stream_mgr,
            host_cids=self._host_cids, peer_cids=self._peer_cids, events=self._events,
            qlog=self._qlog, host=self, ecn=self.ecn, paths=self._paths, datagrams=self.datagrams)
        self._assembler = PacketAssembler(
            cfg, is_client=is_client, versions=self._versions,
            initial_plan=profile if profile is not None and profile.chaos else None,
            spaces=self._spaces, cryptos=self._cryptos, recovery=self._recovery, cc=self._cc,
            pacer=self._pacer, streams=self._stream_mgr, host_cids=self._host_cids, ecn=self.ecn,
            peer_cids=self._peer_cids, ids=self._ids, path=self._path, events=self._events,
            datagrams=self.datagrams, qlog=self._qlog, discard_space=self._discard_space,
            early=self._early)

    # ------------------------------------------------------------ properties

    @property
    def original_destination_connection_id(self) -> bytes:
        """The DCID of the client's first Initial (keys the qlog file name)."""
        return self._ids.original_dcid

    @property
    def initial_destination_connection_id(self) -> bytes:
        """The DCID of the Initial that created this connection (after a Retry: the Retry's SCID)."""
        return self._ids.initial_dcid

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
        return self._tls.alpn

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
        return self._lifecycle.state == TERMINATED

    @property
    def early_data(self) -> EarlyData:
        """0-RTT status (``status``, ``can_send``) and the latest session ticket (``ticket``)."""
        return self._early

    # ----------------------------------------------------------- client API

    def connect(self, addr: NetworkAddress, now: float) -> None:
        """Start the handshake (client only)."""
        if not self.is_client:
            raise LocalProtocolError("connect() is for clients")
        self._path.address = addr
        self._last_activity = now
        self._now_hint = now
        self._ids.peer_initial_scid = None
        self._early.prepare_client(self.configuration.session_ticket
                                   if self.configuration.early_data else None)
        self._qlog.connection_started(now, None, addr, self._versions.current, self.host_cid,
                                      self._peer_cids.current.cid)
        self._apply_tls(self._tls.start(now), now)

    # ------------------------------------------------------------- receive

    def receive_datagram(self, data: bytes, addr: NetworkAddress, now: float, ecn: int = 0) -> None:
        """Process one UDP datagram from ``addr`` (``ecn``: the ECN bits of its IP header)."""
        if self._lifecycle.state >= DRAINING:
            return
        self._now_hint, self.ecn.datagram_codepoint = now, ecn
        # RFC 9000 §8.1: only bytes from the address we answer earn anti-amplification credit.
        self._paths.on_datagram(len(data), addr)
        buf = Buffer(data=data)
        host_len = self._host_cids.length
        was_closing = self._lifecycle.state == CLOSING
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
            if header.is_long_header and not self._versions.accepts(header, data[start:end], now):
                continue
            if header.packet_type == PACKET_TYPE_RETRY:
                self._handle_retry(header, data[start:end], now)
                return
            if self._process_packet(header, data, start, end, now):
                processed_any += 1
            if self._lifecycle.state >= DRAINING:
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
        if ptype in (PACKET_TYPE_ONE_RTT, PACKET_TYPE_ZERO_RTT):  # one space (RFC 9000 §12.3)
            space_id = SPACE_APPLICATION
        elif ptype == PACKET_TYPE_HANDSHAKE:
            space_id = SPACE_HANDSHAKE
        else:
            space_id = SPACE_INITIAL
        space = self._spaces[space_id]
        if space.discarded:
            return False
        pair = self._early.crypto if ptype == PACKET_TYPE_ZERO_RTT else self._cryptos[space_id] \
            if space_id != SPACE_INITIAL else self._versions.keys_for(space_id, header.version)
        if not pair.recv.is_valid():
            return False
        if (header.is_long_header and header.destination_cid not in self._host_cids.cids
                and not self._accepts_first_dcid(ptype, header.destination_cid)):
            return False
        generation = pair.generation
        try:
            plain_header, payload, pn = pair.decrypt_packet(  # a whole datagram is not copied
                data if end - start == len(data) else data[start:end], header.pn_offset - start,
                space.largest_received + 1)
        except CryptoError:
            return False
        if pair.generation != generation:
            self._key_updates.on_peer_update(now)
        # RFC 9000 §17.2/§17.3.1: reserved bits must be zero after header protection removal.
        if plain_header[0] & (0x0C if header.is_long_header else 0x18):
            self._close_with_error(
                QuicConnectionError(QuicErrorCode.PROTOCOL_VIOLATION, None, "reserved bits set"), now
            )
            return True
        if space.is_duplicate(pn):
            return True  # duplicate, or older than every range remembered (RFC 9000 §12.3)
        if self.is_client and ptype == PACKET_TYPE_INITIAL and self._ids.peer_initial_scid is None:
            self._ids.peer_initial_scid = header.source_cid
            self._peer_cids.current.cid = header.source_cid
        if not self.is_client and ptype == PACKET_TYPE_HANDSHAKE:
            self._path.validated = True
            self._discard_space(SPACE_INITIAL)
        if self._lifecycle.state == FIRSTFLIGHT and not self._tls.started:
            self._tls.ensure_started(now)
            self._qlog.connection_started(now, None, self._path.address, self._versions.current,
                                          self.host_cid, self._peer_cids.current.cid)
        if self._qlog_frames:
            self._qlog.packet_received(now, ZERO_RTT_QLOG_TYPE if ptype == PACKET_TYPE_ZERO_RTT else
                                       _QLOG_PACKET_TYPE[space_id], pn, end - start,
                                       describe_frames(payload))
        try:
            ack_eliciting = self._receiver.handle_payload(space_id, payload, now, header)
        except QuicConnectionError as exc:
            self._close_with_error(exc, now)
            return True
        except TlsAlert as alert:
            self._close_with_error(
                QuicConnectionError(QuicErrorCode.CRYPTO_ERROR + alert.description, None,
                                    alert.reason), now)
            return True
        self._paths.on_packet(now, space_id, pn, self._receiver.non_probing)
        delay = self.configuration.max_ack_delay if space_id == SPACE_APPLICATION else None
        space.on_packet_received(pn, ack_eliciting, now, delay, self.ecn.datagram_codepoint)
        return True

    def _accepts_first_dcid(self, ptype: int, dcid: bytes) -> bool:
        """A long-header DCID outside our CIDs: a client's first server Initial, or a server's
        Initial sent to the DCID the client chose (RFC 9000 §7.2)."""
        if self.is_client:
            return ptype == PACKET_TYPE_INITIAL and self._ids.peer_initial_scid is None
        return dcid == self._ids.initial_dcid

    def _handle_version_negotiation(self, header: QuicHeader, now: float) -> None:
        """RFC 9000 §6.2, RFC 9368 §2.1: start again in a common version, or give up."""
        decision = self._versions.on_version_negotiation(header, self.host_cid,
                                                         self._peer_cids.current.cid, now)
        if decision.action == "fail":
            self._terminate(QuicErrorCode.VERSION_NEGOTIATION_ERROR, None, decision.reason,
                            by_peer=True, now=now)
        elif decision.action == "restart":
            self._recovery.forget_sent(SPACE_INITIAL)
            self._apply_tls(self._tls.restart(now), now)

    def _handle_retry(self, header: QuicHeader, packet: bytes, now: float) -> None:
        """RFC 9000 §17.2.5.2: restart the handshake once with the Retry's CID and token."""
        ids = self._ids
        if not self.is_client or ids.received_retry or ids.peer_initial_scid is not None:
            return
        if header.destination_cid != self.host_cid or not header.token:
            return
        expected = get_retry_integrity_tag(packet[:-16], self._peer_cids.current.cid,
                                           self._versions.current)
        if expected != header.integrity_tag:
            return
        ids.received_retry = True
        ids.retry_scid = header.source_cid
        ids.retry_token = header.token
        self._peer_cids.current.cid = header.source_cid
        self._cryptos[SPACE_INITIAL].setup_initial(header.source_cid, is_client=True,
                                                   version=self._versions.current)
        # Resend the ClientHello from offset 0; packet numbers continue (RFC 9000 §17.2.5.3).
        self._recovery.forget_sent(SPACE_INITIAL)
        assert self._tls.first_client_hello is not None
        self._spaces[SPACE_INITIAL].restart_crypto(self._tls.first_client_hello)
        self._qlog.custom(now, "transport:packet_received", {"header": {"packet_type": "retry"}})

    # ----------------------------------------------------------- app API

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        """The ID the next locally opened stream of that kind will get."""
        return self._stream_mgr.local_next_stream[1 if is_unidirectional else 0]

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue ``data`` (and the FIN) on a stream, opening it if it is the next local one."""
        self._stream_mgr.app_send(stream_id, data, end_stream)

    def stream_send_buffered(self, stream_id: int, *, unsent: bool = False) -> int:
        """Bytes written and not yet acknowledged, or with ``unsent`` never sent (0: unknown)."""
        return self._stream_mgr.buffered(stream_id, unsent)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """Abandon sending on a stream (RESET_STREAM)."""
        self._stream_mgr.app_reset(stream_id, error_code)

    def stop_stream(self, stream_id: int, error_code: int) -> None:
        """Ask the peer to stop sending (STOP_SENDING); a no-op once the stream is finished.

        Raises:
            LocalProtocolError: the stream cannot receive or was never opened.
        """
        self._stream_mgr.app_stop(stream_id, error_code)

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
        self._stream_mgr.resume_reading(stream_id)

    def datagrams_pending(self) -> int:
        """DATAGRAM frames queued by :meth:`send_datagram_frame` and not yet put in a packet."""
        return self.datagrams.pending

    def send_datagram_frame(self, data: bytes) -> None:
        """Queue an unreliable DATAGRAM frame (RFC 9221); a full queue drops its oldest frames
        (bounds, drop counters: :attr:`datagrams`, :mod:`.datagrams`)."""
        self.datagrams.send(data, self._peer_params.max_datagram_frame_size, self._now_hint)

    def send_ping(self, uid: int) -> None:
        """Send a PING; :class:`~quicreality.quic.events.PingAcknowledged` follows its ACK."""
        self._spaces[SPACE_APPLICATION].owed.pings.append(uid)

    def migrate(self, now: float, local_address: NetworkAddress = None, *,
                to_preferred_address: bool = False) -> MigrationVerdict:
        """Client active migration (RFC 9000 §9.2, §9.6): :meth:`.migration.PathManager.migrate`."""
        return self._paths.migrate(now, local_address, to_preferred_address=to_preferred_address)

    def request_key_update(self, now: float) -> KeyUpdateVerdict:
        """Initiate a 1-RTT key update (RFC 9001 §6) as soon as §6.1 allows; see the verdict."""
        self._now_hint = now
        return self._key_updates.request(self._handshake_confirmed)

    # --------------------------------------------------------- send path
    def datagrams_to_send(self, now: float) -> list[tuple[bytes, NetworkAddress]]:
        """Build every datagram that may be sent at ``now``."""
        self._now_hint = now
        state = self._lifecycle.state
        if state >= DRAINING:
            return []
        path = self._path
        if state == CLOSING:
            if self._close_sent_at is None:
                self._close_sent_at = now
                if self._close_deadline is None:
                    self._close_deadline = now + 3 * self._rtt.pto_base()
                assert self._close_frame is not None
                close = self._assembler.build_close_datagram(self._close_frame)
                if not close:
                    return []
                path.bytes_sent += len(close)
                return [(close, path.address)]
            return []
        if path.address is None or not self._tls.started:
            return []
        self._key_updates.before_send(now, self._handshake_confirmed)
        addr = path.address
        probes = self._paths.answer_off_path(self._assembler, now) if self._paths.off_path else []
        return probes + [(data, addr) for data in self._assembler.build_datagrams(
            now, handshake_confirmed=self._handshake_confirmed)]

    def client_initial_flight(self, now: float) -> list[bytes]:
        """The client's first Initial flight as ``config.initial_layout`` plans it (once)."""
        return self._assembler.client_initial_flight(now)

    # ------------------------------------------------------- TLS effects

    def on_crypto_frame(self, space_id: int, offset: int, data: bytes, now: float) -> None:
        """:class:`~.receive.ReceiveHost`: CRYPTO data goes to TLS."""
        self._apply_tls(self._tls.receive_crypto(space_id, offset, data, now), now)

    def on_peer_close(self, error_code: int, frame_type: int | None, reason: str,
                      now: float) -> None:
        """:class:`~.receive.ReceiveHost`: the peer closed; enter draining."""
        self._terminate(error_code, frame_type, reason, by_peer=True, now=now)

    def on_handshake_done_frame(self, now: float) -> None:
        """:class:`~.receive.ReceiveHost`: HANDSHAKE_DONE confirms the client's handshake."""
        self._confirm_handshake(now)

    def _apply_tls(self, progress: TlsProgress, now: float) -> None:
        for step in progress.steps:
            if isinstance(step, QuicTransportParameters):
                self._apply_peer_transport_parameters(step, now)
            else:
                self._on_handshake_complete(step, now)

    def _on_handshake_complete(self, done: HandshakeDone, now: float) -> None:
        self._events.append(events.ProtocolNegotiated(alpn_protocol=done.alpn_protocol))
        self._events.append(
            events.HandshakeCompleted(alpn_protocol=done.alpn_protocol, cipher_suite=done.cipher_suite)
        )
        self._set_state(ConnectionState.CONNECTED, now)
        owed = self._spaces[SPACE_APPLICATION].owed
        if not self.is_client:
            owed.handshake_done = True
            self._confirm_handshake(now)
        owed.new_cids.extend(self._host_cids.issue(self._receiver.active_cid_limit))
        for entry in owed.new_cids:
            self._events.append(events.ConnectionIdIssued(connection_id=entry.cid))

    def _apply_peer_transport_parameters(self, params: QuicTransportParameters,
                                         now: float) -> None:
        if self.is_client and params.stateless_reset_token is not None:
            self._peer_cids.set_first_reset_token(params.stateless_reset_token)
        self._peer_params = params
        if params.max_ack_delay is not None:
            self._recovery.set_peer_max_ack_delay(params.max_ack_delay / 1000.0)
        if params.max_idle_timeout:
            peer_idle = params.max_idle_timeout / 1000.0
            if not self._idle_timeout or peer_idle < self._idle_timeout:
                self._idle_timeout = peer_idle
        self._receiver.apply_peer_params(params)
        self._stream_mgr.apply_peer_params(params)
        self._assembler.apply_peer_max_udp_payload_size(params.max_udp_payload_size)
        self._qlog.parameters_set(now, "remote", params_for_qlog(params))

    def _confirm_handshake(self, now: float) -> None:
        """RFC 9001 §4.1.2: discard Handshake keys once the handshake is confirmed."""
        if self._handshake_confirmed:
            return
        self._handshake_confirmed = True
        self._recovery.confirm_handshake()
        self._discard_space(SPACE_HANDSHAKE)

    def _discard_space(self, space_id: int) -> None:
        """RFC 9001 §4.9 key discard."""
        space = self._spaces[space_id]
        if space.discarded:
            return
        self._cryptos[space_id].teardown()
        space.discard()
        self._recovery.discard_space(space_id)
        self._assembler.cancel_probe(space_id)

    # -------------------------------------------------------------- timers

    def get_timer(self) -> float | None:
        """Earliest deadline the edge must call :meth:`handle_timer` at."""
        if self._lifecycle.state == ConnectionState.TERMINATED:
            return None
        if self._close_deadline is not None:
            return self._close_deadline
        timer = self._idle_deadline()
        for t in (self._recovery.get_loss_detection_time(), self._assembler.pacing_until,
                  self._spaces[SPACE_APPLICATION].ack_deadline, self._key_updates.discard_at,
                  self._paths.deadline):
            if t is not None and (timer is None or t < timer):
                timer = t
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
        self._spaces[SPACE_APPLICATION].on_ack_timer(now)
        self._assembler.on_timer(now)
        self._paths.on_timer(now)
        self._key_updates.on_timer(now)
        loss = self._recovery.get_loss_detection_time()
        if loss is not None and now >= loss:
            probe_space = self._recovery.on_loss_detection_timeout(now)
            if probe_space is not None:
                self._assembler.arm_probe(probe_space)

    # -------------------------------------------------------------- events

    def next_event(self) -> events.QuicEvent | None:
        """Pop the next :mod:`~quicreality.quic.events` event, or None."""
        if self._events:
            return self.datagrams.handed_out(self._events.popleft())
        ready = self._stream_mgr.pop_ready()
        if ready is None:
            return None
        return events.StreamDataReceived(stream_id=ready[0], data=ready[1], end_stream=ready[2])

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
        self.ecn.on_packet_lost(packet.space, packet.packet_number, self._now_hint)

    def _on_packet_spurious(self, lost: LostPacket, now: float) -> None:
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
