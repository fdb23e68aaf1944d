"""TLS 1.3 code points and limits (RFC 8446 §4, §4.2; RFC 7301; RFC 9001 §8.2; RFC 8879;
draft-ietf-tls-ecdhe-mlkem; draft-ietf-tls-esni; draft-vvv-tls-alps; draft-ietf-tls-trust-anchor-ids).

Re-exported by :mod:`quicreality.tls.messages`.
"""

from __future__ import annotations

from enum import IntEnum

#: legacy_version value carried in hellos (RFC 8446 §4.1.2).
TLS_VERSION_1_2 = 0x0303
#: The TLS 1.3 value in supported_versions (RFC 8446 §4.2.1).
TLS_VERSION_1_3 = 0x0304
#: ServerHello.random value that marks a HelloRetryRequest (RFC 8446 §4.1.3).
HELLO_RETRY_REQUEST_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)
#: Largest handshake message we accept (ours; a cert chain of ~16 KiB is typical).
MAX_MESSAGE_SIZE = 1 << 17
#: psk_key_exchange_modes value psk_dhe_ke (RFC 8446 §4.2.9).
PSK_DHE_KE = 1


class HandshakeType(IntEnum):
    """HandshakeType (RFC 8446 §4)."""

    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    NEW_SESSION_TICKET = 4
    END_OF_EARLY_DATA = 5
    ENCRYPTED_EXTENSIONS = 8
    CERTIFICATE = 11
    CERTIFICATE_REQUEST = 13
    CERTIFICATE_VERIFY = 15
    FINISHED = 20
    KEY_UPDATE = 24
    COMPRESSED_CERTIFICATE = 25  # RFC 8879 §4
    MESSAGE_HASH = 254


class ExtensionType(IntEnum):
    """ExtensionType (RFC 8446 §4.2; ALPN RFC 7301; quic_transport_parameters RFC 9001 §8.2)."""

    SERVER_NAME = 0
    SUPPORTED_GROUPS = 10
    SIGNATURE_ALGORITHMS = 13
    ALPN = 16
    PADDING = 21
    PRE_SHARED_KEY = 41
    EARLY_DATA = 42
    SUPPORTED_VERSIONS = 43
    COOKIE = 44
    PSK_KEY_EXCHANGE_MODES = 45
    CERTIFICATE_AUTHORITIES = 47
    SIGNATURE_ALGORITHMS_CERT = 50
    KEY_SHARE = 51
    QUIC_TRANSPORT_PARAMETERS = 57
    COMPRESS_CERTIFICATE = 27  # RFC 8879 §3
    APPLICATION_SETTINGS = 0x44CD  # ALPS, draft-vvv-tls-alps (the code point Chrome uses)
    TRUST_ANCHORS = 0xCA34  # draft-ietf-tls-trust-anchor-ids (Chrome's code point)
    ENCRYPTED_CLIENT_HELLO = 0xFE0D  # draft-ietf-tls-esni §11.1


class Group(IntEnum):
    """NamedGroup (RFC 8446 §4.2.7)."""

    SECP256R1 = 0x0017
    SECP384R1 = 0x0018
    SECP521R1 = 0x0019
    X25519 = 0x001D
    X448 = 0x001E
    X25519MLKEM768 = 0x11EC  # draft-ietf-tls-ecdhe-mlkem-05 §4


class SignatureScheme(IntEnum):
    """SignatureScheme (RFC 8446 §4.2.3)."""

    RSA_PKCS1_SHA256 = 0x0401
    RSA_PKCS1_SHA384 = 0x0501
    RSA_PKCS1_SHA512 = 0x0601
    ECDSA_SECP256R1_SHA256 = 0x0403
    ECDSA_SECP384R1_SHA384 = 0x0503
    ECDSA_SECP521R1_SHA512 = 0x0603
    RSA_PSS_RSAE_SHA256 = 0x0804
    RSA_PSS_RSAE_SHA384 = 0x0805
    RSA_PSS_RSAE_SHA512 = 0x0806
    ED25519 = 0x0807
    ED448 = 0x0808


class CertificateCompressionAlgorithm(IntEnum):
    """CertificateCompressionAlgorithm (RFC 8879 §3, §7.3)."""

    ZLIB = 1
    BROTLI = 2
    ZSTD = 3
