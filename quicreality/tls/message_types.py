"""The TLS 1.3 handshake messages as values (RFC 8446 §4): frozen dataclasses, no codecs.

:mod:`quicreality.tls.messages` parses and encodes them (``pull_x``/``push_x``/``encode_x``) and
re-exports every name here, so callers import from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .constants import HELLO_RETRY_REQUEST_RANDOM, TLS_VERSION_1_2

Extensions = tuple[tuple[int, bytes], ...]



@dataclass(frozen=True, slots=True)
class KeyShareEntry:
    """One KeyShareEntry (RFC 8446 §4.2.8)."""

    group: int
    key_exchange: bytes


@dataclass(frozen=True, slots=True)
class ClientHello:
    """ClientHello (RFC 8446 §4.1.2). ``None`` means the extension is absent.

    ``raw`` is the whole handshake message (header included) as received; REALITY reads
    ``legacy_session_id`` at bytes 39..70 of it.
    """

    random: bytes
    legacy_session_id: bytes
    cipher_suites: tuple[int, ...]
    legacy_compression_methods: bytes = b"\x00"
    legacy_version: int = TLS_VERSION_1_2
    server_name: str | None = None
    supported_groups: tuple[int, ...] | None = None
    signature_algorithms: tuple[int, ...] | None = None
    alpn_protocols: tuple[str, ...] | None = None
    key_share: tuple[KeyShareEntry, ...] | None = None
    supported_versions: tuple[int, ...] | None = None
    psk_key_exchange_modes: tuple[int, ...] | None = None
    cookie: bytes | None = None
    quic_transport_parameters: bytes | None = None
    other_extensions: Extensions = ()
    raw: bytes = field(default=b"", compare=False)


@dataclass(frozen=True, slots=True)
class ServerHello:
    """ServerHello or HelloRetryRequest (RFC 8446 §4.1.3, §4.1.4).

    In a ServerHello ``key_share`` is the server's share; in a HelloRetryRequest
    (``random == HELLO_RETRY_REQUEST_RANDOM``) ``selected_group`` and ``cookie`` are used instead.
    """

    random: bytes
    legacy_session_id_echo: bytes
    cipher_suite: int
    legacy_compression_method: int = 0
    legacy_version: int = TLS_VERSION_1_2
    supported_version: int | None = None
    key_share: KeyShareEntry | None = None
    selected_group: int | None = None
    cookie: bytes | None = None
    other_extensions: Extensions = ()
    raw: bytes = field(default=b"", compare=False)

    @property
    def is_hello_retry_request(self) -> bool:
        """True when this is a HelloRetryRequest (RFC 8446 §4.1.3)."""
        return self.random == HELLO_RETRY_REQUEST_RANDOM


@dataclass(frozen=True, slots=True)
class EncryptedExtensions:
    """EncryptedExtensions (RFC 8446 §4.3.1)."""

    alpn_protocol: str | None = None
    quic_transport_parameters: bytes | None = None
    server_name_acknowledged: bool = False
    supported_groups: tuple[int, ...] | None = None
    other_extensions: Extensions = ()
    raw: bytes = field(default=b"", compare=False)


@dataclass(frozen=True, slots=True)
class CertificateEntry:
    """CertificateEntry of type X509 (RFC 8446 §4.4.2): DER bytes plus per-entry extensions."""

    cert_data: bytes
    extensions: Extensions = ()


@dataclass(frozen=True, slots=True)
class Certificate:
    """Certificate (RFC 8446 §4.4.2)."""

    request_context: bytes
    certificate_list: tuple[CertificateEntry, ...]
    raw: bytes = field(default=b"", compare=False)


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    """CertificateRequest (RFC 8446 §4.3.2)."""

    request_context: bytes
    signature_algorithms: tuple[int, ...] | None = None
    other_extensions: Extensions = ()
    raw: bytes = field(default=b"", compare=False)


@dataclass(frozen=True, slots=True)
class CertificateVerify:
    """CertificateVerify (RFC 8446 §4.4.3)."""

    algorithm: int
    signature: bytes
    raw: bytes = field(default=b"", compare=False)


@dataclass(frozen=True, slots=True)
class Finished:
    """Finished (RFC 8446 §4.4.4)."""

    verify_data: bytes
    raw: bytes = field(default=b"", compare=False)


@dataclass(frozen=True, slots=True)
class NewSessionTicket:
    """NewSessionTicket (RFC 8446 §4.6.1); parsed for validity and otherwise ignored."""

    ticket_lifetime: int
    ticket_age_add: int
    ticket_nonce: bytes
    ticket: bytes
    extensions: Extensions = ()
    raw: bytes = field(default=b"", compare=False)
