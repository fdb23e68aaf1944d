"""TLS integration (RFC 9001): drives the TLS session and applies what stays inside QUIC's crypto.

:class:`TlsDriver` owns the :class:`~quicreality.tls.handshake.TlsSession`. It writes the TLS
messages into the spaces' CRYPTO streams, installs packet protection keys, feeds the key log and
checks the peer's transport parameters against the handshake's connection IDs (RFC 9000 §7.3).
What changes the rest of the connection is returned as values, in order, in a
:class:`TlsProgress`: the peer's transport parameters and the handshake's completion; the
connection applies them.
"""

from __future__ import annotations

import binascii
import ipaddress
from dataclasses import dataclass
from typing import Any

from ...qlog.sink import QlogSink
from ...tls.handshake import (
    Direction,
    Epoch,
    HandshakeDone,
    InstallKeys,
    KeyLogLine,
    PeerTransportParameters,
    SendCrypto,
    TlsConfig,
    TlsOutput,
    TlsSession,
)
from ...tls.outputs import EarlyDataOutcome, NewTicket
from ...wire.buffer import Buffer
from ..config import QuicConfiguration
from ..crypto import CryptoPair
from ..errors import QuicConnectionError, QuicErrorCode
from ..recovery.loss import SPACE_APPLICATION, SPACE_HANDSHAKE, SPACE_INITIAL
from ..transport_params import (
    PreferredAddress,
    QuicTransportParameters,
    pull_transport_parameters,
    push_transport_parameters,
)
from .cids import HandshakeIds, HostConnectionIds
from .early_data import EarlyData, early_data_context
from .spaces import PacketSpace
from .versions import ConnectionVersions

#: Bound on buffered out-of-order CRYPTO data per epoch (RFC 9000 §7.5).
MAX_CRYPTO_BUFFER = 64 * 1024

_SPACE_OF_EPOCH = {Epoch.INITIAL: SPACE_INITIAL, Epoch.HANDSHAKE: SPACE_HANDSHAKE,
                   Epoch.ONE_RTT: SPACE_APPLICATION}
_EPOCH_OF_SPACE = (Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT)

#: What TLS produced that the connection applies: checked peer parameters, or completion.
TlsStep = QuicTransportParameters | HandshakeDone


@dataclass(frozen=True, slots=True)
class TlsProgress:
    """The steps of one TLS call the connection must apply, in the order TLS produced them."""

    steps: tuple[TlsStep, ...] = ()


_NOTHING = TlsProgress()


class TlsDriver:
    """The TLS session of one connection and the CRYPTO streams and keys it feeds."""

    __slots__ = ("_cfg", "_cryptos", "_early", "_hello", "_host_cids", "_ids", "_is_client",
                 "_qlog", "_session", "_spaces", "_started", "_versions", "alpn",
                 "first_client_hello")

    def __init__(self, config: QuicConfiguration, *, is_client: bool,
                 versions: ConnectionVersions, spaces: list[PacketSpace],
                 cryptos: list[CryptoPair], ids: HandshakeIds, host_cids: HostConnectionIds,
                 qlog: QlogSink, early: EarlyData) -> None:
        """``early`` receives the 0-RTT keys, tickets and the 0-RTT decision."""
        self._cfg = config
        self._early = early
        self._is_client = is_client
        self._versions = versions
        self._started = False
        #: server: the first ClientHello's bytes until whole (the version is chosen on it)
        self._hello = bytearray()
        self._spaces = spaces
        self._cryptos = cryptos
        self._ids = ids
        self._host_cids = host_cids
        self._qlog = qlog
        self._session: TlsSession | None = None
        #: the negotiated ALPN protocol, once the handshake completed
        self.alpn: str | None = None
        #: the client's first ClientHello (resent from offset 0 after a Retry)
        self.first_client_hello: bytes | None = None

    @property
    def started(self) -> bool:
        """True once the handshake started (the server's session waits for the ClientHello)."""
        return self._started

    def start(self, now: float) -> TlsProgress:
        """Create the session; a client also produces its ClientHello."""
        self._started = True
        session = self._ensure_session(now)
        if not self._is_client:
            return _NOTHING
        return self._apply(session.start(), now)

    def ensure_started(self, now: float) -> None:
        """Start the (server's) handshake; its session is created once the ClientHello is whole
        and the version chosen on it (RFC 9368 §2.3)."""
        self._started = True

    def restart(self, now: float) -> TlsProgress:
        """Client: a new first flight after Version Negotiation (RFC 9368 §2.1): a fresh session
        whose ClientHello carries the new version_information, sent from CRYPTO offset 0."""
        self._session = None
        self.first_client_hello = None
        self._spaces[SPACE_INITIAL].restart_crypto(b"")
        return self.start(now)

    def receive_crypto(self, space_id: int, offset: int, data: bytes, now: float) -> TlsProgress:
        """A CRYPTO frame (RFC 9000 §19.6): reassemble and hand in-order bytes to TLS."""
        stream = self._spaces[space_id].crypto
        if offset + len(data) > stream.recv_delivered + MAX_CRYPTO_BUFFER:
            raise QuicConnectionError(QuicErrorCode.CRYPTO_BUFFER_EXCEEDED, 0x06,
                                      "CRYPTO data too far ahead")
        stream.handle_frame(offset, data, False)
        if not stream.has_ready_data():
            return _NOTHING
        chunk, _ = stream.pull_ready()
        if self._session is None and not self._is_client:
            hello = self._hello
            hello += chunk
            if len(hello) < 4 or (hello[0] == 1 and len(hello) < 4 + int.from_bytes(hello[1:4])
                                  and len(hello) <= MAX_CRYPTO_BUFFER):
                return _NOTHING  # wait for the whole ClientHello (bounded like CRYPTO data)
            chunk = bytes(hello)
            verified = self._cfg.verified_client_hello
            self._versions.on_client_hello(
                chunk, now, parsed=verified if verified is not None and verified.raw == chunk
                else None)
            hello.clear()
        session = self._ensure_session(now)
        return self._apply(session.receive(_EPOCH_OF_SPACE[space_id], chunk), now)

    # ------------------------------------------------------------ internals

    def _ensure_session(self, now: float) -> TlsSession:
        if self._session is None:
            cfg = self._cfg
            params = self._local_transport_parameters(now)
            buf = Buffer(capacity=1024)
            push_transport_parameters(buf, params)
            tls_config = TlsConfig(
                alpn_protocols=list(cfg.alpn_protocols),
                server_name=cfg.server_name,
                cipher_suites=tuple(cfg.cipher_suites),
                groups=tuple(cfg.groups),
                key_share_groups=tuple(cfg.key_share_groups),
                transport_parameters=buf.data,
                certificate_source=cfg.certificate_source,
                peer_verifier=cfg.peer_verifier,
                client_hello_hook=cfg.client_hello_hook,
                legacy_session_id_length=cfg.legacy_session_id_length,
                expected_client_hello=cfg.expected_client_hello,
                verified_client_hello=cfg.verified_client_hello,
                wall_clock=cfg.wall_clock,
                server_hello_shape=cfg.server_hello_shape,
                session_ticket=cfg.session_ticket,
                early_data=cfg.early_data,
                ticket_store=None if self._is_client else cfg.ticket_store,
                # only a server with tickets seals or checks it (RFC 9001 §4.6.2)
                early_data_context=early_data_context(params, list(cfg.alpn_protocols))
                if not self._is_client and cfg.ticket_store is not None else b"",
            )
            self._session = TlsSession(tls_config, is_client=self._is_client, rng=cfg.rng)
        return self._session

    def _local_transport_parameters(self, now: float) -> QuicTransportParameters:
        cfg = self._cfg
        ids = self._ids
        server_only: dict[str, Any] = {}
        if not self._is_client:
            server_only = {
                "original_destination_connection_id": ids.original_dcid,
                "retry_source_connection_id": ids.retry_scid,
                "stateless_reset_token": self._host_cids.entries[0].stateless_reset_token,
                "preferred_address": preferred_address_parameter(cfg.preferred_address,
                                                                 self._host_cids),
            }
        params = QuicTransportParameters(
            initial_source_connection_id=self._host_cids.entries[0].cid,
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
            version_information=self._versions.local_information(),
            **server_only,
        )
        self._qlog.parameters_set(now, "local", params_for_qlog(params))
        return params

    def _apply(self, outputs: list[TlsOutput], now: float) -> TlsProgress:
        steps: list[TlsStep] = []
        for out in outputs:
            if isinstance(out, SendCrypto):
                space = _SPACE_OF_EPOCH[out.epoch]
                if self._is_client and space == SPACE_INITIAL and self.first_client_hello is None:
                    self.first_client_hello = out.data
                self._spaces[space].crypto.write(out.data, False)
            elif isinstance(out, InstallKeys):
                zero_rtt = out.epoch == Epoch.ZERO_RTT
                pair = self._early.crypto if zero_rtt else self._cryptos[_SPACE_OF_EPOCH[out.epoch]]
                ctx = pair.send if out.direction == Direction.ENCRYPT else pair.recv
                # 0-RTT is in the version of the client's first Initial (RFC 9368 §2.3)
                ctx.setup(cipher_suite=out.cipher_suite, secret=out.secret,
                          version=self._versions.chosen if zero_rtt else self._versions.current)
                if zero_rtt:
                    self._early.on_key_installed()
                elif out.epoch == Epoch.ONE_RTT and out.direction == Direction.ENCRYPT \
                        and self._is_client:
                    self._early.discard()  # RFC 9001 §4.9.3
            elif isinstance(out, NewTicket | EarlyDataOutcome):
                self._early.apply(out)
            elif isinstance(out, KeyLogLine):
                if self._cfg.secrets_log is not None:
                    self._cfg.secrets_log(
                        f"{out.label} {out.client_random.hex()} {out.secret.hex()}"
                    )
            elif isinstance(out, PeerTransportParameters):
                params = pull_transport_parameters(Buffer(data=out.data))
                check_peer_transport_parameters(params, self._ids, is_client=self._is_client)
                self._versions.check_peer(params, now)
                steps.append(params)
            elif isinstance(out, HandshakeDone):
                self.alpn = out.alpn_protocol
                if not self._is_client:
                    self._early.discard()
                    if self._session is not None:  # the ticket went out in these outputs
                        self._session.release_handshake_state()
                steps.append(out)
        return TlsProgress(tuple(steps)) if steps else _NOTHING


def preferred_address_parameter(address: tuple[str, int] | None,
                                host_cids: HostConnectionIds) -> PreferredAddress | None:
    """The preferred_address value for ``address`` (RFC 9000 §18.2) with connection ID 1
    (§5.1.1); the other address family is all zeros.

    Raises:
        ValueError: ``address`` is not an IP literal, or connection ID 1 was not issued.
    """
    if address is None:
        return None
    ip = ipaddress.ip_address(address[0])
    entry = next((e for e in host_cids.entries if e.sequence_number == 1), None)
    if entry is None:
        raise ValueError("preferred_address needs connection ID 1 (issued by the PathManager)")
    v4 = (ip.packed, address[1]) if ip.version == 4 else (bytes(4), 0)
    v6 = (ip.packed, address[1]) if ip.version == 6 else (bytes(16), 0)
    return PreferredAddress(v4[0], v4[1], v6[0], v6[1], entry.cid, entry.stateless_reset_token)


def check_peer_transport_parameters(params: QuicTransportParameters, ids: HandshakeIds, *,
                                    is_client: bool) -> None:
    """RFC 9000 §7.3 and §18.2: the peer's connection IDs and server-only parameters.

    Raises:
        QuicConnectionError: TRANSPORT_PARAMETER_ERROR naming what does not match.
    """
    if is_client:
        if params.original_destination_connection_id != ids.original_dcid:
            raise QuicConnectionError(QuicErrorCode.TRANSPORT_PARAMETER_ERROR, None,
                                      "original_destination_connection_id does not match")
        if ids.received_retry and params.retry_source_connection_id != ids.retry_scid:
            raise QuicConnectionError(QuicErrorCode.TRANSPORT_PARAMETER_ERROR, None,
                                      "retry_source_connection_id does not match")
        if not ids.received_retry and params.retry_source_connection_id is not None:
            raise QuicConnectionError(QuicErrorCode.TRANSPORT_PARAMETER_ERROR, None,
                                      "unexpected retry_source_connection_id")
    elif (
        params.original_destination_connection_id is not None
        or params.retry_source_connection_id is not None
        or params.stateless_reset_token is not None
        or params.preferred_address is not None
    ):
        raise QuicConnectionError(QuicErrorCode.TRANSPORT_PARAMETER_ERROR, None,
                                  "client sent a server-only transport parameter")
    if params.initial_source_connection_id != ids.peer_initial_scid:
        raise QuicConnectionError(QuicErrorCode.TRANSPORT_PARAMETER_ERROR, None,
                                  "initial_source_connection_id does not match")


def params_for_qlog(params: QuicTransportParameters) -> dict[str, Any]:
    """The transport parameters as qlog's ``parameters_set`` lists them (CIDs in hex)."""
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
            out[name] = binascii.hexlify(value).decode()
    return out
