"""QUIC's two error families (peer violation vs local misuse) and its error codes (RFC 9000 §20).

:class:`QuicErrorCode` is defined in :mod:`quicreality.wire.error_codes` (below both ``quic`` and
``qlog``) and re-exported here.
"""

from __future__ import annotations

from ..wire.error_codes import QuicErrorCode

__all__ = ["LocalProtocolError", "QuicConnectionError", "QuicErrorCode"]


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
