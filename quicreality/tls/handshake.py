"""Sans-IO TLS 1.3 handshake for QUIC, client and server (RFC 8446, RFC 9001 §4).

Theory of operation: QUIC hands us the in-order CRYPTO bytes of one epoch at a time
(:meth:`TlsSession.receive`); we re-frame them into handshake messages, check that each one is
expected in the current state *and* epoch (a table), update the transcript and key schedule, and
return a list of outputs for the connection to perform: bytes to send in an epoch
(:class:`SendCrypto`), packet-protection secrets to install (:class:`InstallKeys`), key-log lines,
the peer's transport parameters and, once, :class:`HandshakeDone`. Any problem raises
:class:`TlsAlert`, which QUIC turns into CRYPTO_ERROR 0x100 + description (RFC 9001 §4.8).

Scope: 1-RTT full handshakes with (EC)DHE, HelloRetryRequest both ways. No TLS records or
ChangeCipherSpec (RFC 9001 §8.4), no PSK/resumption/0-RTT; NewSessionTicket is parsed and ignored;
KeyUpdate is forbidden (RFC 9001 §6). A CertificateRequest is answered with an empty Certificate.

Key timing: the client installs handshake keys after the ServerHello and 1-RTT keys after the
server Finished. The server installs handshake keys after its ServerHello, the 1-RTT ENCRYPT key
after its Finished and the 1-RTT DECRYPT key only once the client Finished is verified, because it
must not process 1-RTT packets before the handshake completes (RFC 9001 §5.7).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType
from typing import Protocol, TypeVar, Union

from ..wire.buffer import Buffer, BufferReadError
from . import messages as m
from .alerts import AlertDescription, TlsAlert
from .certificates import (
    CertificateSource,
    PeerVerifier,
    PublicKey,
    ServerCredentials,
    certificate_verify_content,
    leaf_public_key,
    sign,
    signature_schemes_for_key,
    verify,
)
from .hkdf import CipherSuite
from .key_exchange import (
    SUPPORTED_GROUPS,
    KeySharePrivateKey,
    generate_private_key,
    key_exchange,
    public_bytes,
)
from .key_schedule import (
    CLIENT_HANDSHAKE_TRAFFIC_SECRET,
    CLIENT_TRAFFIC_SECRET_0,
    SERVER_HANDSHAKE_TRAFFIC_SECRET,
    SERVER_TRAFFIC_SECRET_0,
    KeySchedule,
    Transcript,
    hash_name_for_suite,
)

__all__ = [
    "ClientHelloHook",
    "Direction",
    "Epoch",
    "HandshakeDone",
    "InstallKeys",
    "KeyLogLine",
    "PeerTransportParameters",
    "SendCrypto",
    "State",
    "TlsAlert",
    "TlsConfig",
    "TlsOutput",
    "TlsSession",
]


class Epoch(IntEnum):
    """QUIC encryption levels that carry TLS data (RFC 9001 §4.1.4)."""

    INITIAL = 0
    ZERO_RTT = 1
    HANDSHAKE = 2
    ONE_RTT = 3


class Direction(IntEnum):
    """Which way a secret protects packets."""

    DECRYPT = 0
    ENCRYPT = 1


@dataclass(frozen=True, slots=True)
class SendCrypto:
    """Send ``data`` in CRYPTO frames of ``epoch``."""

    epoch: Epoch
    data: bytes


@dataclass(frozen=True, slots=True)
class InstallKeys:
    """Install a packet-protection secret for ``epoch`` and ``direction`` (RFC 9001 §5.1)."""

    epoch: Epoch
    direction: Direction
    cipher_suite: CipherSuite
    secret: bytes


@dataclass(frozen=True, slots=True)
class KeyLogLine:
    """One NSS key-log entry; the QUIC layer formats ``label client_random secret`` in hex."""

    label: str
    client_random: bytes
    secret: bytes


@dataclass(frozen=True, slots=True)
class PeerTransportParameters:
    """The peer's quic_transport_parameters extension body, opaque (RFC 9001 §8.2)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class HandshakeDone:
    """The handshake completed (RFC 9001 §4.1.1)."""

    alpn_protocol: str | None
    cipher_suite: CipherSuite


TlsOutput = Union[SendCrypto, InstallKeys, KeyLogLine, PeerTransportParameters, HandshakeDone]


class ClientHelloHook(Protocol):
    """Called with the serialized ClientHello before it is hashed or sent (the REALITY seam)."""

    def __call__(
        self, raw: bytearray, *, random: bytes, key_shares: Mapping[int, KeySharePrivateKey]
    ) -> None:
        """Mutate ``raw`` (the handshake message, 4-byte header included) in place."""
        ...


#: Cipher suites in our default preference order (RFC 8446 §9.1).
DEFAULT_CIPHER_SUITES: tuple[int, ...] = (
    CipherSuite.AES_128_GCM_SHA256,
    CipherSuite.AES_256_GCM_SHA384,
    CipherSuite.CHACHA20_POLY1305_SHA256,
)
#: CertificateVerify schemes offered/accepted by default; Ed25519 is needed by REALITY.
DEFAULT_SIGNATURE_ALGORITHMS: tuple[int, ...] = (
    m.SignatureScheme.ECDSA_SECP256R1_SHA256,
    m.SignatureScheme.ED25519,
    m.SignatureScheme.RSA_PSS_RSAE_SHA256,
    m.SignatureScheme.RSA_PSS_RSAE_SHA384,
    m.SignatureScheme.RSA_PSS_RSAE_SHA512,
)


@dataclass(frozen=True)
class TlsConfig:
    """TLS settings shared by many sessions.

    Attributes:
        alpn_protocols: client: offered, in order; server: accepted, in preference order. QUIC
            requires ALPN (RFC 9001 §8.1): a server with a list and no overlap sends alert 120.
        server_name: client: SNI to send (omitted for IP literals, RFC 6066 §3) and name to verify.
        cipher_suites: offered (client) or accepted in preference order (server).
        groups: supported_groups (client) / acceptable groups in preference order (server).
        key_share_groups: groups the client sends key shares for up front (subset of ``groups``).
        signature_algorithms: CertificateVerify schemes offered/accepted (RFC 8446 §4.2.3).
        transport_parameters: our quic_transport_parameters body; None omits the extension
            and stops requiring the peer's (non-QUIC use and tests only).
        certificate_source: server: where the chain and key come from.
        peer_verifier: client: who judges the server's chain.
        client_hello_hook: client: see :class:`ClientHelloHook`; called for the first
            ClientHello only (a ClientHello after HelloRetryRequest keeps the same session_id).
        legacy_session_id_length: client: 0 as RFC 9001 §8.4 requires, 32 for REALITY.
        reject_legacy_session_id: server: refuse a non-empty legacy_session_id (RFC 9001 §8.4
            SHOULD); off by default because REALITY clients send one.
        wall_clock: seconds since the epoch, for components that need real time (certificate
            validity lives in :class:`PkiVerifier`, which takes its own clock).
    """

    alpn_protocols: Sequence[str] = ()
    server_name: str | None = None
    cipher_suites: Sequence[int] = DEFAULT_CIPHER_SUITES
    groups: Sequence[int] = (m.Group.X25519, m.Group.SECP256R1)
    key_share_groups: Sequence[int] = (m.Group.X25519,)
    signature_algorithms: Sequence[int] = DEFAULT_SIGNATURE_ALGORITHMS
    transport_parameters: bytes | None = b""
    certificate_source: CertificateSource | None = None
    peer_verifier: PeerVerifier | None = None
    client_hello_hook: ClientHelloHook | None = None
    legacy_session_id_length: int = 0
    reject_legacy_session_id: bool = False
    wall_clock: Callable[[], float] | None = None


class State(Enum):
    """Handshake states (RFC 8446 Appendix A, without the PSK/early-data branches)."""

    CLIENT_START = "client_start"
    CLIENT_WAIT_SERVER_HELLO = "client_wait_sh"
    CLIENT_WAIT_ENCRYPTED_EXTENSIONS = "client_wait_ee"
    CLIENT_WAIT_CERTIFICATE_OR_REQUEST = "client_wait_cert_cr"
    CLIENT_WAIT_CERTIFICATE = "client_wait_cert"
    CLIENT_WAIT_CERTIFICATE_VERIFY = "client_wait_cv"
    CLIENT_WAIT_FINISHED = "client_wait_finished"
    SERVER_WAIT_CLIENT_HELLO = "server_wait_ch"
    SERVER_WAIT_SECOND_CLIENT_HELLO = "server_wait_ch2"
    SERVER_WAIT_FINISHED = "server_wait_finished"
    CLIENT_CONNECTED = "client_connected"
    SERVER_CONNECTED = "server_connected"
    FAILED = "failed"


H = m.HandshakeType
_Handler = Callable[["TlsSession", bytes, list[TlsOutput]], None]

# Extensions a server may put in each message (RFC 8446 §4.2 table); the others we
# offered are illegal_parameter, those we did not offer are unsupported_extension.
_OFFERED_BY_CLIENT = frozenset(
    {
        m.ExtensionType.SERVER_NAME,
        m.ExtensionType.SUPPORTED_GROUPS,
        m.ExtensionType.SIGNATURE_ALGORITHMS,
        m.ExtensionType.ALPN,
        m.ExtensionType.QUIC_TRANSPORT_PARAMETERS,
        m.ExtensionType.PSK_KEY_EXCHANGE_MODES,
        m.ExtensionType.KEY_SHARE,
        m.ExtensionType.SUPPORTED_VERSIONS,
        m.ExtensionType.COOKIE,
    }
)


def _check_unsolicited(extensions: m.Extensions, where: str) -> None:
    """Extensions left in ``other_extensions`` of a server message are never acceptable."""
    for ext_type, _ in extensions:
        if ext_type in _OFFERED_BY_CLIENT:
            raise TlsAlert(AlertDescription.illegal_parameter, f"extension {ext_type} not allowed in {where}")
        raise TlsAlert(AlertDescription.unsupported_extension, f"unsolicited extension {ext_type} in {where}")


_M = TypeVar("_M")


def _parse(pull: Callable[[Buffer], _M], raw: bytes) -> _M:
    return pull(Buffer(data=raw))


class TlsSession:
    """One side of one TLS 1.3 handshake inside QUIC.

    Args:
        config: shared settings.
        is_client: which side we are.
        rng: ``rng(n) -> n bytes``; supplies randoms, session_id and (EC)DHE private keys.
    """

    def __init__(self, config: TlsConfig, *, is_client: bool, rng: Callable[[int], bytes]) -> None:
        if is_client and config.peer_verifier is None:
            raise ValueError("a TLS client needs config.peer_verifier")
        if not is_client and config.certificate_source is None:
            raise ValueError("a TLS server needs config.certificate_source")
        if not 0 <= config.legacy_session_id_length <= 32:
            raise ValueError("legacy_session_id_length must be within 0..32")
        for group in config.groups:
            if group not in SUPPORTED_GROUPS:
                raise ValueError(f"unsupported group {group:#06x}")
        if is_client and not set(config.key_share_groups) <= set(config.groups):
            raise ValueError("key_share_groups must be a subset of groups")
        self._config = config
        self._rng = rng
        self._is_client = is_client
        self._state = State.CLIENT_START if is_client else State.SERVER_WAIT_CLIENT_HELLO
        self._failure: TlsAlert | None = None
        self._readers: dict[int, m.MessageReader] = {
            int(e): m.MessageReader() for e in (Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT)
        }
        self._transcript = Transcript()
        self._key_schedule: KeySchedule | None = None
        self._key_shares: dict[int, KeySharePrivateKey] = {}
        self._client_hello: m.ClientHello | None = None
        self._server_hello: m.ServerHello | None = None
        self._hello_retry: m.ServerHello | None = None
        self._cipher_suite: CipherSuite | None = None
        self._alpn_protocol: str | None = None
        self._peer_chain: tuple[bytes, ...] = ()
        self._peer_key: PublicKey | None = None
        self._certificate_request: m.CertificateRequest | None = None
        self._credentials: ServerCredentials | None = None
        self._signature_scheme: int | None = None

    # --- public surface -------------------------------------------------------------

    @property
    def is_client(self) -> bool:
        """True for the client side."""
        return self._is_client

    @property
    def state(self) -> State:
        """The current handshake state."""
        return self._state

    @property
    def handshake_complete(self) -> bool:
        """True once the peer's Finished was verified (server) or ours was sent (client)."""
        return self._state in (State.CLIENT_CONNECTED, State.SERVER_CONNECTED)

    @property
    def alpn_protocol(self) -> str | None:
        """The negotiated application protocol, once known."""
        return self._alpn_protocol

    @property
    def cipher_suite(self) -> CipherSuite | None:
        """The negotiated cipher suite, once known."""
        return self._cipher_suite

    @property
    def client_hello(self) -> m.ClientHello | None:
        """The ClientHello sent (client, after the hook) or received (server); ``raw`` is exact."""
        return self._client_hello

    @property
    def server_hello(self) -> m.ServerHello | None:
        """The ServerHello sent or received (not a HelloRetryRequest)."""
        return self._server_hello

    @property
    def peer_certificate_chain(self) -> tuple[bytes, ...]:
        """The server's DER chain as received (client side)."""
        return self._peer_chain

    def start(self) -> list[TlsOutput]:
        """Client: build and return the first ClientHello. Server: nothing to do."""
        if not self._is_client:
            return []
        if self._state is not State.CLIENT_START:
            raise RuntimeError("start() called twice")
        config = self._config
        self._key_shares = {g: generate_private_key(g, self._rng) for g in config.key_share_groups}
        random = self._rng(32)
        session_id = self._rng(config.legacy_session_id_length) if config.legacy_session_id_length else b""
        raw = bytearray(m.encode_client_hello(self._build_client_hello(random, session_id, None)))
        if config.client_hello_hook is not None:
            config.client_hello_hook(raw, random=random, key_shares=MappingProxyType(dict(self._key_shares)))
        data = bytes(raw)
        try:
            self._client_hello = m.pull_client_hello(Buffer(data=data))
        except TlsAlert as exc:
            raise ValueError(f"client_hello_hook produced an invalid ClientHello: {exc}") from exc
        self._transcript.add(data)
        self._state = State.CLIENT_WAIT_SERVER_HELLO
        return [SendCrypto(Epoch.INITIAL, data)]

    def receive(self, epoch: int, data: bytes) -> list[TlsOutput]:
        """Feed in-order CRYPTO bytes of ``epoch``; return what to do.

        Raises:
            TlsAlert: on any protocol violation; the session is then dead and re-raises it.
        """
        if self._failure is not None:
            raise self._failure
        outputs: list[TlsOutput] = []
        try:
            self._receive(int(epoch), data, outputs)
        except TlsAlert as exc:
            self._fail(exc)
        except BufferReadError as exc:
            self._fail(TlsAlert(AlertDescription.decode_error, f"malformed message: {exc}"))
        except Exception as exc:  # a bug must still end the handshake cleanly
            self._fail(TlsAlert(AlertDescription.internal_error, f"{type(exc).__name__}: {exc}"))
        return outputs

    # --- plumbing -------------------------------------------------------------------

    def _fail(self, alert: TlsAlert) -> None:
        self._state = State.FAILED
        self._failure = alert
        raise alert

    def _receive(self, epoch: int, data: bytes, outputs: list[TlsOutput]) -> None:
        reader = self._readers.get(epoch)
        if reader is None:
            raise TlsAlert(AlertDescription.unexpected_message, f"no TLS data allowed in epoch {epoch}")
        if not data:
            return
        reader.feed(data)
        for msg_type, raw in reader.messages():
            expected_epoch, handlers = _TABLE[self._state]
            handler = handlers.get(msg_type)
            if handler is None or epoch != expected_epoch:
                raise TlsAlert(
                    AlertDescription.unexpected_message,
                    f"unexpected message {msg_type} in epoch {epoch} in state {self._state.value}",
                )
            handler(self, raw, outputs)
        if reader.buffered and _TABLE[self._state][0] != epoch:
            # RFC 9001 §4.1.3: a message must not span a change of encryption level.
            raise TlsAlert(AlertDescription.unexpected_message, "data left over at a key change")

    def _ks(self) -> KeySchedule:
        assert self._key_schedule is not None
        return self._key_schedule

    def _hash(self) -> bytes:
        return self._transcript.digest(self._ks().hash_name)

    def _key_log(self, outputs: list[TlsOutput], label: str, secret: bytes) -> None:
        assert self._client_hello is not None
        outputs.append(KeyLogLine(label, self._client_hello.random, secret))

    def _install(self, outputs: list[TlsOutput], epoch: Epoch, direction: Direction, secret: bytes) -> None:
        assert self._cipher_suite is not None
        outputs.append(InstallKeys(epoch, direction, self._cipher_suite, secret))

    # --- client -----------------------------------------------------------------------

    def _build_client_hello(self, random: bytes, session_id: bytes, cookie: bytes | None) -> m.ClientHello:
        config = self._config
        sni = config.server_name
        if sni is not None:
            try:
                ipaddress.ip_address(sni)
                sni = None  # RFC 6066 §3: no IP literals in server_name
            except ValueError:
                pass
        return m.ClientHello(
            random=random,
            legacy_session_id=session_id,
            cipher_suites=tuple(config.cipher_suites),
            server_name=sni,
            supported_groups=tuple(config.groups),
            signature_algorithms=tuple(config.signature_algorithms),
            alpn_protocols=tuple(config.alpn_protocols) or None,
            quic_transport_parameters=config.transport_parameters,
            psk_key_exchange_modes=(m.PSK_DHE_KE,),
            key_share=tuple(m.KeyShareEntry(g, public_bytes(k)) for g, k in self._key_shares.items()),
            supported_versions=(m.TLS_VERSION_1_3,),
            cookie=cookie,
        )

    def _client_handle_server_hello(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        sh = _parse(m.pull_server_hello, raw)
        ch = self._client_hello
        assert ch is not None
        if sh.supported_version is None:
            raise TlsAlert(AlertDescription.protocol_version, "server did not select TLS 1.3")
        if sh.supported_version != m.TLS_VERSION_1_3 or sh.legacy_version != m.TLS_VERSION_1_2:
            raise TlsAlert(AlertDescription.illegal_parameter, "bad version in ServerHello")
        if sh.legacy_session_id_echo != ch.legacy_session_id:
            raise TlsAlert(AlertDescription.illegal_parameter, "legacy_session_id_echo mismatch")
        if sh.cipher_suite not in ch.cipher_suites or sh.cipher_suite not in CipherSuite._value2member_map_:
            raise TlsAlert(AlertDescription.illegal_parameter, "server chose a cipher suite we did not offer")
        if sh.legacy_compression_method != 0:
            raise TlsAlert(AlertDescription.illegal_parameter, "non-null compression")
        _check_unsolicited(sh.other_extensions, "ServerHello")
        if sh.is_hello_retry_request:
            self._client_handle_hello_retry(sh, raw, outputs)
            return
        hrr = self._hello_retry
        if hrr is not None and sh.cipher_suite != hrr.cipher_suite:
            raise TlsAlert(AlertDescription.illegal_parameter, "cipher suite changed after HelloRetryRequest")
        if sh.key_share is None:
            raise TlsAlert(AlertDescription.missing_extension, "ServerHello without key_share")
        private = self._key_shares.get(sh.key_share.group)
        if private is None:
            raise TlsAlert(AlertDescription.illegal_parameter, "key_share for a group we sent no share for")
        shared = key_exchange(private, sh.key_share.group, sh.key_share.key_exchange)
        self._server_hello = sh
        self._cipher_suite = CipherSuite(sh.cipher_suite)
        self._key_schedule = ks = KeySchedule(sh.cipher_suite)
        self._transcript.add(raw)
        ks.handshake(shared, self._hash())
        self._install(outputs, Epoch.HANDSHAKE, Direction.DECRYPT, ks.server_handshake_traffic_secret)
        self._install(outputs, Epoch.HANDSHAKE, Direction.ENCRYPT, ks.client_handshake_traffic_secret)
        self._key_log(outputs, CLIENT_HANDSHAKE_TRAFFIC_SECRET, ks.client_handshake_traffic_secret)
        self._key_log(outputs, SERVER_HANDSHAKE_TRAFFIC_SECRET, ks.server_handshake_traffic_secret)
        self._state = State.CLIENT_WAIT_ENCRYPTED_EXTENSIONS

    def _client_handle_hello_retry(self, hrr: m.ServerHello, raw: bytes, outputs: list[TlsOutput]) -> None:
        """RFC 8446 §4.1.4: answer with a second ClientHello."""
        if self._hello_retry is not None:
            raise TlsAlert(AlertDescription.unexpected_message, "second HelloRetryRequest")
        group = hrr.selected_group
        if group is None and hrr.cookie is None:
            raise TlsAlert(AlertDescription.illegal_parameter, "HelloRetryRequest would change nothing")
        if group is not None and (group not in self._config.groups or group in self._key_shares):
            raise TlsAlert(AlertDescription.illegal_parameter, "HelloRetryRequest selected a bad group")
        ch1 = self._client_hello
        assert ch1 is not None
        self._hello_retry = hrr
        self._transcript.restart_after_hello_retry(hash_name_for_suite(hrr.cipher_suite))
        self._transcript.add(raw)
        if group is not None:
            self._key_shares = {group: generate_private_key(group, self._rng)}
        data = m.encode_client_hello(self._build_client_hello(ch1.random, ch1.legacy_session_id, hrr.cookie))
        self._client_hello = _parse(m.pull_client_hello, data)
        self._transcript.add(data)
        outputs.append(SendCrypto(Epoch.INITIAL, data))

    def _client_handle_encrypted_extensions(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        ee = _parse(m.pull_encrypted_extensions, raw)
        _check_unsolicited(ee.other_extensions, "EncryptedExtensions")
        offered = tuple(self._config.alpn_protocols)
        if ee.alpn_protocol is not None:
            if ee.alpn_protocol not in offered:
                raise TlsAlert(AlertDescription.illegal_parameter, "server selected an ALPN we did not offer")
        elif offered:
            raise TlsAlert(AlertDescription.no_application_protocol, "server selected no ALPN")
        self._alpn_protocol = ee.alpn_protocol
        if self._config.transport_parameters is not None:
            if ee.quic_transport_parameters is None:
                raise TlsAlert(AlertDescription.missing_extension, "no quic_transport_parameters")
            outputs.append(PeerTransportParameters(ee.quic_transport_parameters))
        self._transcript.add(raw)
        self._state = State.CLIENT_WAIT_CERTIFICATE_OR_REQUEST

    def _client_handle_certificate_request(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        req = _parse(m.pull_certificate_request, raw)
        if req.signature_algorithms is None:
            raise TlsAlert(AlertDescription.missing_extension, "CertificateRequest without signature_algorithms")
        self._certificate_request = req
        self._transcript.add(raw)
        self._state = State.CLIENT_WAIT_CERTIFICATE

    def _client_handle_certificate(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        cert = _parse(m.pull_certificate, raw)
        if cert.request_context:
            raise TlsAlert(AlertDescription.illegal_parameter, "non-empty certificate_request_context")
        if not cert.certificate_list:
            raise TlsAlert(AlertDescription.decode_error, "server sent no certificate")  # §4.4.2.4
        chain = tuple(entry.cert_data for entry in cert.certificate_list)
        verifier = self._config.peer_verifier
        assert verifier is not None
        try:
            verifier.verify_chain(chain=chain, server_name=self._config.server_name)
        except TlsAlert:
            raise
        except Exception as exc:
            raise TlsAlert(AlertDescription.bad_certificate, f"peer verifier failed: {exc}") from exc
        self._peer_key = leaf_public_key(chain[0])
        self._peer_chain = chain
        self._transcript.add(raw)
        self._state = State.CLIENT_WAIT_CERTIFICATE_VERIFY

    def _client_handle_certificate_verify(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        cv = _parse(m.pull_certificate_verify, raw)
        if cv.algorithm not in self._config.signature_algorithms:
            raise TlsAlert(AlertDescription.illegal_parameter, f"signature scheme {cv.algorithm:#06x} not offered")
        assert self._peer_key is not None
        verify(self._peer_key, cv.algorithm, cv.signature, certificate_verify_content(self._hash(), server=True))
        self._transcript.add(raw)
        self._state = State.CLIENT_WAIT_FINISHED

    def _client_handle_finished(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        fin = _parse(m.pull_finished, raw)
        ks = self._ks()
        expected = ks.verify_data(ks.server_handshake_traffic_secret, self._hash())
        if not hmac.compare_digest(fin.verify_data, expected):
            raise TlsAlert(AlertDescription.decrypt_error, "server Finished does not verify")
        self._transcript.add(raw)
        ks.application(self._hash())
        self._install(outputs, Epoch.ONE_RTT, Direction.DECRYPT, ks.server_application_traffic_secret)
        flight = b""
        if self._certificate_request is not None:
            empty = m.encode_certificate(m.Certificate(self._certificate_request.request_context, ()))
            self._transcript.add(empty)
            flight += empty
        finished = m.encode_finished(m.Finished(ks.verify_data(ks.client_handshake_traffic_secret, self._hash())))
        self._transcript.add(finished)
        outputs.append(SendCrypto(Epoch.HANDSHAKE, flight + finished))
        self._install(outputs, Epoch.ONE_RTT, Direction.ENCRYPT, ks.client_application_traffic_secret)
        self._key_log(outputs, CLIENT_TRAFFIC_SECRET_0, ks.client_application_traffic_secret)
        self._key_log(outputs, SERVER_TRAFFIC_SECRET_0, ks.server_application_traffic_secret)
        assert self._cipher_suite is not None
        outputs.append(HandshakeDone(self._alpn_protocol, self._cipher_suite))
        self._state = State.CLIENT_CONNECTED

    def _client_handle_new_session_ticket(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        _parse(m.pull_new_session_ticket, raw)  # validated, then ignored: no resumption

    # --- server -----------------------------------------------------------------------

    def _server_handle_client_hello(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        ch = _parse(m.pull_client_hello, raw)
        config = self._config
        if ch.supported_versions is None or m.TLS_VERSION_1_3 not in ch.supported_versions:
            raise TlsAlert(AlertDescription.protocol_version, "client does not offer TLS 1.3")
        if ch.legacy_compression_methods != b"\x00":
            raise TlsAlert(AlertDescription.illegal_parameter, "compression methods must be [null]")
        if ch.legacy_session_id and config.reject_legacy_session_id:
            raise TlsAlert(AlertDescription.illegal_parameter, "non-empty legacy_session_id (RFC 9001 §8.4)")
        if ch.signature_algorithms is None:
            raise TlsAlert(AlertDescription.missing_extension, "no signature_algorithms")
        if ch.supported_groups is None or ch.key_share is None:
            raise TlsAlert(AlertDescription.missing_extension, "no supported_groups/key_share")
        share_groups = [e.group for e in ch.key_share]
        if len(set(share_groups)) != len(share_groups) or not set(share_groups) <= set(ch.supported_groups):
            raise TlsAlert(AlertDescription.illegal_parameter, "bad key_share list")  # §4.2.8
        if config.transport_parameters is not None and ch.quic_transport_parameters is None:
            raise TlsAlert(AlertDescription.missing_extension, "no quic_transport_parameters")
        alpn = self._select_alpn(ch)
        hrr = self._hello_retry
        if hrr is None:
            suite = next((s for s in config.cipher_suites if s in ch.cipher_suites), None)
            if suite is None:
                raise TlsAlert(AlertDescription.handshake_failure, "no common cipher suite")
            self._select_credentials(ch)
        else:
            ch1 = self._client_hello
            assert ch1 is not None
            suite = hrr.cipher_suite
            if ch.random != ch1.random or ch.legacy_session_id != ch1.legacy_session_id:
                raise TlsAlert(AlertDescription.illegal_parameter, "second ClientHello changed random/session_id")
            if suite not in ch.cipher_suites or ch.cookie != hrr.cookie:
                raise TlsAlert(AlertDescription.illegal_parameter, "second ClientHello does not match the retry")
            if share_groups != [hrr.selected_group]:
                raise TlsAlert(AlertDescription.illegal_parameter, "second ClientHello has the wrong key_share")
        shares = {e.group: e for e in ch.key_share}
        group = next((g for g in config.groups if g in shares), None)
        self._client_hello = ch
        self._cipher_suite = CipherSuite(suite)
        if group is None:
            if hrr is not None:
                raise TlsAlert(AlertDescription.illegal_parameter, "no usable key share after retry")
            retry_group = next((g for g in config.groups if g in ch.supported_groups), None)
            if retry_group is None:
                raise TlsAlert(AlertDescription.handshake_failure, "no common group")
            self._server_send_hello_retry(ch, raw, suite, retry_group, outputs)
            return
        self._alpn_protocol = alpn
        if ch.quic_transport_parameters is not None and config.transport_parameters is not None:
            outputs.append(PeerTransportParameters(ch.quic_transport_parameters))
        self._transcript.add(raw)
        self._server_send_flight(ch, suite, shares[group], outputs)

    def _select_alpn(self, ch: m.ClientHello) -> str | None:
        """Server preference among the client's offers (RFC 7301 §3.2)."""
        ours = self._config.alpn_protocols
        if not ours:
            return None
        theirs = ch.alpn_protocols or ()
        for proto in ours:
            if proto in theirs:
                return proto
        raise TlsAlert(AlertDescription.no_application_protocol, "no common application protocol")

    def _select_credentials(self, ch: m.ClientHello) -> None:
        source = self._config.certificate_source
        assert source is not None and ch.signature_algorithms is not None
        creds = source.credentials_for(server_name=ch.server_name, signature_algorithms=ch.signature_algorithms)
        possible = [s for s in signature_schemes_for_key(creds.private_key) if s in ch.signature_algorithms]
        preferred = [s for s in possible if s in self._config.signature_algorithms]
        if not (preferred or possible):
            raise TlsAlert(AlertDescription.handshake_failure, "no common signature algorithm")
        self._credentials = creds
        self._signature_scheme = (preferred or possible)[0]

    def _server_send_hello_retry(
        self, ch: m.ClientHello, raw: bytes, suite: int, group: int, outputs: list[TlsOutput]
    ) -> None:
        hrr = m.ServerHello(
            random=m.HELLO_RETRY_REQUEST_RANDOM,
            legacy_session_id_echo=ch.legacy_session_id,
            cipher_suite=suite,
            supported_version=m.TLS_VERSION_1_3,
            selected_group=group,
            cookie=self._rng(16),
        )
        data = m.encode_server_hello(hrr)
        self._hello_retry = hrr
        self._transcript.add(raw)
        self._transcript.restart_after_hello_retry(hash_name_for_suite(suite))
        self._transcript.add(data)
        outputs.append(SendCrypto(Epoch.INITIAL, data))
        self._state = State.SERVER_WAIT_SECOND_CLIENT_HELLO

    def _server_send_flight(
        self, ch: m.ClientHello, suite: int, share: m.KeyShareEntry, outputs: list[TlsOutput]
    ) -> None:
        """ServerHello in Initial; EncryptedExtensions..Finished in Handshake (RFC 8446 §2)."""
        private = generate_private_key(share.group, self._rng)
        shared = key_exchange(private, share.group, share.key_exchange)
        sh = m.ServerHello(
            random=self._rng(32),
            legacy_session_id_echo=ch.legacy_session_id,
            cipher_suite=suite,
            supported_version=m.TLS_VERSION_1_3,
            key_share=m.KeyShareEntry(share.group, public_bytes(private)),
        )
        sh_raw = m.encode_server_hello(sh)
        self._server_hello = _parse(m.pull_server_hello, sh_raw)
        self._transcript.add(sh_raw)
        self._key_schedule = ks = KeySchedule(suite)
        ks.handshake(shared, self._hash())
        outputs.append(SendCrypto(Epoch.INITIAL, sh_raw))
        self._install(outputs, Epoch.HANDSHAKE, Direction.ENCRYPT, ks.server_handshake_traffic_secret)
        self._install(outputs, Epoch.HANDSHAKE, Direction.DECRYPT, ks.client_handshake_traffic_secret)
        self._key_log(outputs, CLIENT_HANDSHAKE_TRAFFIC_SECRET, ks.client_handshake_traffic_secret)
        self._key_log(outputs, SERVER_HANDSHAKE_TRAFFIC_SECRET, ks.server_handshake_traffic_secret)

        creds, scheme = self._credentials, self._signature_scheme
        assert creds is not None and scheme is not None
        ee = m.encode_encrypted_extensions(
            m.EncryptedExtensions(
                alpn_protocol=self._alpn_protocol,
                quic_transport_parameters=self._config.transport_parameters,
            )
        )
        self._transcript.add(ee)
        cert = m.encode_certificate(
            m.Certificate(b"", tuple(m.CertificateEntry(der) for der in creds.certificate_chain))
        )
        self._transcript.add(cert)
        signature = sign(creds.private_key, scheme, certificate_verify_content(self._hash(), server=True))
        cv = m.encode_certificate_verify(m.CertificateVerify(scheme, signature))
        self._transcript.add(cv)
        fin = m.encode_finished(m.Finished(ks.verify_data(ks.server_handshake_traffic_secret, self._hash())))
        self._transcript.add(fin)
        outputs.append(SendCrypto(Epoch.HANDSHAKE, ee + cert + cv + fin))
        ks.application(self._hash())
        self._install(outputs, Epoch.ONE_RTT, Direction.ENCRYPT, ks.server_application_traffic_secret)
        self._key_log(outputs, CLIENT_TRAFFIC_SECRET_0, ks.client_application_traffic_secret)
        self._key_log(outputs, SERVER_TRAFFIC_SECRET_0, ks.server_application_traffic_secret)
        self._state = State.SERVER_WAIT_FINISHED

    def _server_handle_finished(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        fin = _parse(m.pull_finished, raw)
        ks = self._ks()
        expected = ks.verify_data(ks.client_handshake_traffic_secret, self._hash())
        if not hmac.compare_digest(fin.verify_data, expected):
            raise TlsAlert(AlertDescription.decrypt_error, "client Finished does not verify")
        self._transcript.add(raw)
        self._install(outputs, Epoch.ONE_RTT, Direction.DECRYPT, ks.client_application_traffic_secret)
        assert self._cipher_suite is not None
        outputs.append(HandshakeDone(self._alpn_protocol, self._cipher_suite))
        self._state = State.SERVER_CONNECTED


#: State -> (epoch the next message must arrive in, {message type: handler}). Anything else,
#: including KeyUpdate (RFC 9001 §6) and EndOfEarlyData (RFC 9001 §8.3), is unexpected_message.
_TABLE: dict[State, tuple[Epoch, dict[int, _Handler]]] = {
    State.CLIENT_START: (Epoch.INITIAL, {}),
    State.CLIENT_WAIT_SERVER_HELLO: (Epoch.INITIAL, {H.SERVER_HELLO: TlsSession._client_handle_server_hello}),
    State.CLIENT_WAIT_ENCRYPTED_EXTENSIONS: (
        Epoch.HANDSHAKE,
        {H.ENCRYPTED_EXTENSIONS: TlsSession._client_handle_encrypted_extensions},
    ),
    State.CLIENT_WAIT_CERTIFICATE_OR_REQUEST: (
        Epoch.HANDSHAKE,
        {
            H.CERTIFICATE: TlsSession._client_handle_certificate,
            H.CERTIFICATE_REQUEST: TlsSession._client_handle_certificate_request,
        },
    ),
    State.CLIENT_WAIT_CERTIFICATE: (Epoch.HANDSHAKE, {H.CERTIFICATE: TlsSession._client_handle_certificate}),
    State.CLIENT_WAIT_CERTIFICATE_VERIFY: (
        Epoch.HANDSHAKE,
        {H.CERTIFICATE_VERIFY: TlsSession._client_handle_certificate_verify},
    ),
    State.CLIENT_WAIT_FINISHED: (Epoch.HANDSHAKE, {H.FINISHED: TlsSession._client_handle_finished}),
    State.CLIENT_CONNECTED: (Epoch.ONE_RTT, {H.NEW_SESSION_TICKET: TlsSession._client_handle_new_session_ticket}),
    State.SERVER_WAIT_CLIENT_HELLO: (Epoch.INITIAL, {H.CLIENT_HELLO: TlsSession._server_handle_client_hello}),
    State.SERVER_WAIT_SECOND_CLIENT_HELLO: (
        Epoch.INITIAL,
        {H.CLIENT_HELLO: TlsSession._server_handle_client_hello},
    ),
    State.SERVER_WAIT_FINISHED: (Epoch.HANDSHAKE, {H.FINISHED: TlsSession._server_handle_finished}),
    State.SERVER_CONNECTED: (Epoch.ONE_RTT, {}),
    State.FAILED: (Epoch.INITIAL, {}),
}
