"""The TLS layer's public vocabulary: epochs, outputs for the connection, and :class:`TlsConfig`.

Everything here is re-exported by :mod:`quicreality.tls.handshake`, the documented import path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any, Protocol

from . import messages as m
from .certificates import CertificateSource, PeerVerifier
from .hkdf import CipherSuite
from .key_exchange import KeySharePrivateKey
from .resumption import ServerTicketStore, SessionTicket


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


@dataclass(frozen=True, slots=True)
class NewTicket:
    """Client: the server issued a ticket to resume with (RFC 8446 §4.6.1)."""

    ticket: SessionTicket


@dataclass(frozen=True, slots=True)
class EarlyDataOutcome:
    """0-RTT was accepted or rejected (RFC 9001 §4.6.2): the server decided, and the client
    learnt it from EncryptedExtensions. ``resumed`` says whether the PSK was accepted."""

    accepted: bool
    resumed: bool
    reason: str


TlsOutput = (SendCrypto | InstallKeys | KeyLogLine | PeerTransportParameters | HandshakeDone
             | NewTicket | EarlyDataOutcome)


class ClientHelloHook(Protocol):
    """Called with the serialized ClientHello before it is hashed or sent (the REALITY seam, and
    the one that shapes a browser-like hello, :mod:`.chrome_hello`).

    A hook may also define ``retry_hello(raw: bytearray, *, first: bytes) -> None``: it is then
    called with the second ClientHello (after a HelloRetryRequest) and the first one as sent, so
    that it can keep the second consistent with the first (RFC 8446 §4.1.2). Without it the second
    ClientHello is our own encoding.
    """

    def __call__(
        self, raw: bytearray, *, random: bytes, key_shares: Mapping[int, KeySharePrivateKey]
    ) -> None:
        """Mutate ``raw`` (the handshake message, 4-byte header included) in place; it may change
        its length (the caller re-parses it)."""
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
            ClientHello, and for the second one (after a HelloRetryRequest) through its optional
            ``retry_hello`` method (the second ClientHello keeps the same session_id).
        legacy_session_id_length: client: 0 as RFC 9001 §8.4 requires, 32 for REALITY.
        reject_legacy_session_id: server: refuse a non-empty legacy_session_id (RFC 9001 §8.4
            SHOULD); off by default because REALITY clients send one.
        server_preferred_groups: server: groups selected ahead of ``groups`` whenever the client
            sent a share for them (or, with no usable share, asked for in a HelloRetryRequest).
            The default prefers the post-quantum hybrid X25519MLKEM768
            (draft-ietf-tls-ecdhe-mlkem-05); ``()`` turns that off. A group also listed in
            ``groups`` keeps its place there.
        certificate_compression: server: RFC 8879 algorithms it compresses its Certificate with
            when the client offers one (in this order of preference); default none. The client
            decompresses whatever algorithm its (possibly hook-shaped) ClientHello offered.
        application_settings: ALPS (draft-vvv-tls-alps) settings per ALPN protocol. Client: what
            its ClientEncryptedExtensions carries when a server negotiates ALPS for a protocol
            the (hook-shaped) hello offered; the default for ``h3`` is an empty HTTP/3 SETTINGS
            frame. Server: used only with ``server_alps``.
        server_alps: server: negotiate ALPS when the client offers it for the selected protocol
            and ``application_settings`` has an entry for it (off by default: our server, like
            the targets here, does not speak ALPS).
        expected_client_hello: server: when set, the first ClientHello (4-byte header included)
            must be exactly these bytes, else the handshake fails with illegal_parameter. A
            component that judged the hello before TLS saw it (the REALITY gate) binds the
            handshake to what it judged.
        verified_client_hello: server: the :class:`~.messages.ClientHello` that component parsed
            from exactly ``expected_client_hello`` (its ``raw``); used instead of parsing the
            same bytes again. Ignored without ``expected_client_hello``.
        wall_clock: seconds since the epoch, for components that need real time (certificate
            validity lives in :class:`PkiVerifier`, which takes its own clock).
        server_hello_shape: server: another server's ServerHello choices to copy (an object
            with ``cipher_suite``, ``extension_order``, ``key_share_group`` and ``hello_retry``,
            e.g. REALITY's learned target shape): its suite and group are selected first when
            the client offers them (a retry for the group when the other server retried), and
            the ServerHello's extensions follow its order.
        session_ticket: client: a ticket to offer as a PSK (psk_dhe_ke, RFC 8446 §4.2.11); used
            only when it is for ``server_name``, unexpired, its suite is offered and there is no
            ``client_hello_hook`` (a shaped hello is never changed).
        early_data: client: also offer 0-RTT with that ticket (when it allows early data);
            the 0-RTT key is installed right after the ClientHello.
        ticket_store: server: issue a NewSessionTicket after the handshake and accept PSKs
            (:class:`~.resumption.ServerTicketStore`, shared by the server's connections).
        early_data_context: server: the settings 0-RTT depends on (QUIC: the remembered
            transport parameters); sealed into tickets, and 0-RTT is refused when they differ.
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
    server_preferred_groups: Sequence[int] = (m.Group.X25519MLKEM768,)
    certificate_compression: Sequence[int] = ()
    application_settings: Mapping[str, bytes] = field(
        default_factory=lambda: MappingProxyType({"h3": b"\x04\x00"}))
    server_alps: bool = False
    expected_client_hello: bytes | None = None
    verified_client_hello: m.ClientHello | None = None
    wall_clock: Callable[[], float] | None = None
    server_hello_shape: Any = None
    session_ticket: SessionTicket | None = None
    early_data: bool = False
    ticket_store: ServerTicketStore | None = None
    early_data_context: bytes = b""
