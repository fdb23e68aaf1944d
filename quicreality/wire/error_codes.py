"""QUIC transport error codes (RFC 9000 §20.1), as they appear on the wire.

They live here, below both :mod:`quicreality.quic` (which raises and sends them) and
:mod:`quicreality.qlog` (which names them in ``connection_closed`` events), so that neither package
imports the other's internals.  :mod:`quicreality.quic.errors` re-exports :class:`QuicErrorCode`.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["QuicErrorCode"]


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
    #: RFC 9368 §10.2: a version downgrade or a version_information mismatch.
    VERSION_NEGOTIATION_ERROR = 0x11
    CRYPTO_ERROR = 0x100
