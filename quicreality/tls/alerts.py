"""TLS alerts (RFC 8446 §6) as a Python exception.

QUIC never sends TLS alert records: an alert becomes a CONNECTION_CLOSE with the
error code CRYPTO_ERROR (0x100) + description (RFC 9001 §4.8). The connection layer does
that conversion; TLS code only raises :class:`TlsAlert`.
"""

from __future__ import annotations

from enum import IntEnum


class AlertDescription(IntEnum):
    """AlertDescription values (RFC 8446 §6, plus RFC 7301 §3.2 for ALPN)."""

    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    record_overflow = 22
    handshake_failure = 40
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    missing_extension = 109
    unsupported_extension = 110
    unrecognized_name = 112
    bad_certificate_status_response = 113
    unknown_psk_identity = 115
    certificate_required = 116
    no_application_protocol = 120


class TlsAlert(Exception):
    """A fatal TLS error: the handshake must stop and the peer be told ``description``.

    Attributes:
        description: the RFC 8446 §6.2 alert description (an :class:`AlertDescription` value).
        reason: a human-readable explanation (goes into the QUIC reason phrase).
    """

    def __init__(self, description: int, reason: str = "") -> None:
        super().__init__(description, reason)
        self.description = int(description)
        self.reason = reason

    def __str__(self) -> str:
        try:
            name = AlertDescription(self.description).name
        except ValueError:
            name = str(self.description)
        return f"TLS alert {name} ({self.description}): {self.reason}"
