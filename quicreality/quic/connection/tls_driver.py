"""TLS integration of :class:`~quicreality.quic.connection.QuicConnection`: transport parameters,
TLS outputs (CRYPTO data, keys, key log), handshake completion and confirmation, key discard."""

from __future__ import annotations

import binascii
from typing import Any

from ...tls.handshake import (
    Direction,
    Epoch,
    HandshakeDone,
    InstallKeys,
    KeyLogLine,
    PeerTransportParameters,
    SendCrypto,
    TlsConfig,
    TlsSession,
)
from ...wire.buffer import Buffer
from .. import events
from ..errors import QuicConnectionError, QuicErrorCode
from ..recovery.loss import SPACE_APPLICATION, SPACE_HANDSHAKE, SPACE_INITIAL
from ..transport_params import (
    QuicTransportParameters,
    pull_transport_parameters,
    push_transport_parameters,
)
from .base import ConnectionBase
from .state import ConnectionState

#: Bound on buffered out-of-order CRYPTO data per epoch (RFC 9000 §7.5).
MAX_CRYPTO_BUFFER = 64 * 1024

_SPACE_OF_EPOCH = {Epoch.INITIAL: SPACE_INITIAL, Epoch.HANDSHAKE: SPACE_HANDSHAKE,
                   Epoch.ONE_RTT: SPACE_APPLICATION}


def _cid_hex(cid: bytes) -> str:
    return binascii.hexlify(cid).decode()


class TlsIntegrationMixin(ConnectionBase):
    """Drives the TLS session and applies what it produces."""

    _alpn: str | None = None

    def _local_transport_parameters(self) -> bytes:
        cfg = self.configuration
        server_only: dict[str, Any] = {}
        if not self.is_client:
            server_only = {
                "original_destination_connection_id": self._original_dcid,
                "retry_source_connection_id": self._retry_scid,
                "stateless_reset_token": self._host_cids.entries[0].stateless_reset_token,
            }
        params = QuicTransportParameters(
            initial_source_connection_id=self.host_cid,
            max_idle_timeout=int(cfg.idle_timeout * 1000),
            initial_max_data=cfg.max_data,
            initial_max_stream_data_bidi_local=cfg.max_stream_data,
            initial_max_stream_data_bidi_remote=cfg.max_stream_data,
            initial_max_stream_data_uni=cfg.max_stream_data,
            initial_max_streams_bidi=cfg.max_streams_bidi,
            initial_max_streams_uni=cfg.max_streams_uni,
            ack_delay_exponent=cfg.ack_delay_exponent,
            max_ack_delay=int(cfg.max_ack_delay * 1000),
            active_connection_id_limit=cfg.active_connection_id_limit,
            max_udp_payload_size=cfg.max_udp_payload_size,
            max_datagram_frame_size=cfg.max_datagram_frame_size,
            **server_only,
        )
        buf = Buffer(capacity=1024)
        push_transport_parameters(buf, params)
        self._qlog.parameters_set(self._now_hint, "local", _params_for_qlog(params))
        return buf.data

    def _init_tls(self) -> None:
        cfg = self.configuration
        tls_config = TlsConfig(
            alpn_protocols=list(cfg.alpn_protocols),
            server_name=cfg.server_name,
            cipher_suites=tuple(cfg.cipher_suites),
            groups=tuple(cfg.groups),
            key_share_groups=tuple(cfg.key_share_groups),
            transport_parameters=self._local_transport_parameters(),
            certificate_source=cfg.certificate_source,
            peer_verifier=cfg.peer_verifier,
            client_hello_hook=cfg.client_hello_hook,
            legacy_session_id_length=cfg.legacy_session_id_length,
            expected_client_hello=cfg.expected_client_hello,
            wall_clock=cfg.wall_clock,
            server_hello_shape=cfg.server_hello_shape,
        )
        self._tls = TlsSession(tls_config, is_client=self.is_client, rng=self._rng)
        self._crypto_initialized = True

    def _process_tls(self, outputs: list[Any], now: float) -> None:
        for out in outputs:
            if isinstance(out, SendCrypto):
                space = _SPACE_OF_EPOCH[out.epoch]
                if self.is_client and space == SPACE_INITIAL and self._first_initial_hello is None:
                    self._first_initial_hello = out.data
                self._crypto_streams[space].write(out.data, False)
            elif isinstance(out, InstallKeys):
                space = _SPACE_OF_EPOCH[out.epoch]
                pair = self._cryptos[space]
                ctx = pair.send if out.direction == Direction.ENCRYPT else pair.recv
                ctx.setup(cipher_suite=out.cipher_suite, secret=out.secret, version=self._version)
            elif isinstance(out, KeyLogLine):
                if self.configuration.secrets_log is not None:
                    self.configuration.secrets_log(
                        f"{out.label} {out.client_random.hex()} {out.secret.hex()}"
                    )
            elif isinstance(out, PeerTransportParameters):
                self._apply_peer_transport_parameters(out.data, now)
            elif isinstance(out, HandshakeDone):
                self._on_handshake_complete(out, now)

    def _on_handshake_complete(self, done: HandshakeDone, now: float) -> None:
        self._alpn = done.alpn_protocol
        self._events.append(events.ProtocolNegotiated(alpn_protocol=done.alpn_protocol))
        self._events.append(
            events.HandshakeCompleted(alpn_protocol=done.alpn_protocol, cipher_suite=done.cipher_suite)
        )
        self._set_state(ConnectionState.CONNECTED, now)
        if not self.is_client:
            self._handshake_done_pending = True
            self._confirm_handshake(now)
        self._cids_to_announce.extend(
            self._host_cids.issue(min(self._peer_params.active_connection_id_limit or 2, 4))
        )
        for entry in self._cids_to_announce:
            self._events.append(events.ConnectionIdIssued(connection_id=entry.cid))

    def _on_key_update(self, now: float, trigger: str) -> None:
        """RFC 9001 §6.5: keep the previous receive keys for about 3 PTO, then discard them."""
        self._previous_keys_discard_at = now + 3 * self._rtt.pto_base()
        self._qlog.key_updated(now, "1RTT", trigger)

    def _confirm_handshake(self, now: float) -> None:
        """RFC 9001 §4.1.2: discard Handshake keys once the handshake is confirmed."""
        if self._handshake_confirmed:
            return
        self._handshake_confirmed = True
        self._recovery.handshake_confirmed = True
        self._recovery.peer_completed_address_validation = True
        self._discard_space(SPACE_HANDSHAKE)

    def _discard_space(self, space: int) -> None:
        """RFC 9001 §4.9 key discard."""
        if self._recovery.spaces[space].discarded:
            return
        self._cryptos[space].teardown()
        self._recovery.discard_space(space)
        if self._probe_space == space:
            self._probe_space = None
            self._probe_count = 0

    def _apply_peer_transport_parameters(self, data: bytes, now: float) -> None:
        params = pull_transport_parameters(Buffer(data=data))
        if self.is_client:
            if params.original_destination_connection_id != self._original_dcid:
                raise QuicConnectionError(QuicErrorCode.TRANSPORT_PARAMETER_ERROR, None,
                                          "original_destination_connection_id does not match")
            if self._received_retry and params.retry_source_connection_id != self._retry_scid:
                raise QuicConnectionError(QuicErrorCode.TRANSPORT_PARAMETER_ERROR, None,
                                          "retry_source_connection_id does not match")
            if not self._received_retry and params.retry_source_connection_id is not None:
                raise QuicConnectionError(QuicErrorCode.TRANSPORT_PARAMETER_ERROR, None,
                                          "unexpected retry_source_connection_id")
            if params.stateless_reset_token is not None:
                self._peer_cids.set_first_reset_token(params.stateless_reset_token)
        else:
            if (
                params.original_destination_connection_id is not None
                or params.retry_source_connection_id is not None
                or params.stateless_reset_token is not None
                or params.preferred_address is not None
            ):
                raise QuicConnectionError(QuicErrorCode.TRANSPORT_PARAMETER_ERROR, None,
                                          "client sent a server-only transport parameter")
        if params.initial_source_connection_id != self._peer_initial_scid:
            raise QuicConnectionError(QuicErrorCode.TRANSPORT_PARAMETER_ERROR, None,
                                      "initial_source_connection_id does not match")
        self._peer_params = params
        if params.max_ack_delay is not None:
            self._peer_max_ack_delay = params.max_ack_delay / 1000.0
            self._recovery.peer_max_ack_delay = self._peer_max_ack_delay
        if params.ack_delay_exponent is not None:
            self._peer_ack_delay_exponent = params.ack_delay_exponent
        if params.max_idle_timeout:
            peer_idle = params.max_idle_timeout / 1000.0
            if not self._idle_timeout or peer_idle < self._idle_timeout:
                self._idle_timeout = peer_idle
        self._stream_mgr.apply_peer_params(params)
        if params.max_udp_payload_size is not None:
            self._max_datagram_size = min(self._max_datagram_size, params.max_udp_payload_size)
        self._qlog.parameters_set(now, "remote", _params_for_qlog(params))

    def _handle_crypto_data(self, space_id: int, offset: int, data: bytes, now: float) -> None:
        stream = self._crypto_streams[space_id]
        if offset + len(data) > stream.recv_delivered + MAX_CRYPTO_BUFFER:
            raise QuicConnectionError(QuicErrorCode.CRYPTO_BUFFER_EXCEEDED, 0x06,
                                      "CRYPTO data too far ahead")
        stream.handle_frame(offset, data, False)
        if not stream.has_ready_data():
            return
        chunk, _ = stream.pull_ready()
        if self._tls is None:
            self._init_tls()
        assert self._tls is not None
        epoch = (Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT)[space_id]
        self._process_tls(self._tls.receive(epoch, chunk), now)


def _params_for_qlog(params: QuicTransportParameters) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("max_idle_timeout", "initial_max_data", "initial_max_stream_data_bidi_local",
                 "initial_max_stream_data_bidi_remote", "initial_max_stream_data_uni",
                 "initial_max_streams_bidi", "initial_max_streams_uni", "ack_delay_exponent",
                 "max_ack_delay", "active_connection_id_limit", "max_udp_payload_size",
                 "max_datagram_frame_size"):
        value = getattr(params, name, None)
        if value is not None:
            out[name] = value
    for name in ("original_destination_connection_id", "initial_source_connection_id",
                 "retry_source_connection_id"):
        value = getattr(params, name, None)
        if value is not None:
            out[name] = _cid_hex(value)
    return out

