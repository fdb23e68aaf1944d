"""QUIC error codes (RFC 9000 §20) and the two error families (peer violation vs local misuse)."""

from __future__ import annotations

from enum import IntEnum


class QuicErrorCode(IntEnum):
    """Transport error codes (RFC 9000 §20.1); CRYPTO_ERROR is 0x0100 + TLS alert (RFC 9001 §4.8)."""

    NO_ERROR = 0x0
    INTERNAL_ERROR = 0x1
    CONNECTION_REFUSED = 0x2
    FLOW_CONTROL_ERROR = 0x3
    STREAM_LIMIT_ERROR = 0x4
    STREAM_STATE_ERROR = 0x5
    FINAL_SIZE_ERROR = 0x6
    FRAME_ENCODING_ERROR = 0x7
    TRANSPORT_PARAMETER_ERROR = 0x8
    CONNECTION_ID_LIMIT_ERROR = 0x9
    PROTOCOL_VIOLATION = 0xA
    INVALID_TOKEN = 0xB
    APPLICATION_ERROR = 0xC
    CRYPTO_BUFFER_EXCEEDED = 0xD
    KEY_UPDATE_ERROR = 0xE
    AEAD_LIMIT_REACHED = 0xF
    NO_VIABLE_PATH = 0x10
    CRYPTO_ERROR = 0x100


class QuicConnectionError(Exception):
    """A peer violated the protocol; the connection closes with ``error_code``.

    Converted to CONNECTION_CLOSE in exactly one place (the connection's receive path).
    """

    def __init__(self, error_code: int, frame_type: int | None, reason_phrase: str):
        super().__init__(f"{error_code:#x} (frame {frame_type}): {reason_phrase}")
        self.error_code = error_code
        self.frame_type = frame_type
        self.reason_phrase = reason_phrase


class LocalProtocolError(Exception):
    """The local application misused the API (e.g. wrote to a closed stream)."""
