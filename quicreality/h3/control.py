"""Our HTTP/3 control stream and what travels on the two control streams (RFC 9114 §6.2.1),
one component of :class:`~quicreality.h3.connection.H3Connection`.

:class:`ControlStream` opens our control stream and sends our SETTINGS on it first, keeps the
peer's SETTINGS once they arrive (checked, RFC 9114 §7.2.4) and both directions' GOAWAY
(RFC 9114 §5.2). The SETTINGS are a list, sent in its order: by default ours
(:func:`default_settings`), or a list given by the owner (a REALITY accept copies the target's,
:mod:`quicreality.h3.profile`).
"""

from __future__ import annotations

from collections.abc import Sequence

from quicreality.h3.frames import (
    GoawayFrame,
    H3ConnectionError,
    H3ErrorCode,
    Setting,
    SettingsFrame,
    StreamType,
    encode_h3_frame,
)
from quicreality.h3.streams import QuicTransport, open_uni_stream

__all__ = ["ControlStream", "default_settings"]


def default_settings(max_table_capacity: int, blocked_streams: int, max_field_section_size: int,
                     extra: dict[int, int] | None = None) -> list[tuple[int, int]]:
    """The SETTINGS we advertise unless told otherwise (RFC 9204 §5, RFC 9114 §7.2.4.1)."""
    out: dict[int, int] = {
        Setting.QPACK_MAX_TABLE_CAPACITY: max_table_capacity,
        Setting.QPACK_BLOCKED_STREAMS: blocked_streams,
        Setting.MAX_FIELD_SECTION_SIZE: max_field_section_size,
    }
    if extra:
        out.update(extra)
    return [(int(k), v) for k, v in out.items()]


class ControlStream:
    """Our control stream, our SETTINGS, the peer's SETTINGS and GOAWAY state.

    Args:
        quic: the QUIC connection.
        settings: the SETTINGS to send, in order (opened and sent at once).
        is_client: our role (what a GOAWAY ID means, RFC 9114 §5.2).
    """

    def __init__(self, quic: QuicTransport, settings: Sequence[tuple[int, int]], *,
                 is_client: bool) -> None:
        self._quic = quic
        self._is_client = is_client
        self.local_settings: dict[int, int] = dict(settings)
        self.peer_settings: dict[int, int] | None = None
        self.goaway_received: int | None = None
        self.goaway_sent: int | None = None
        self.stream_id = open_uni_stream(quic, StreamType.CONTROL)
        quic.send_stream_data(self.stream_id, encode_h3_frame(SettingsFrame(tuple(settings))))

    def send_goaway(self, stream_id: int) -> None:
        """Send GOAWAY; a server's ID never increases (RFC 9114 §5.2)."""
        if not self._is_client and self.goaway_sent is not None:
            stream_id = min(stream_id, self.goaway_sent)
        self.goaway_sent = stream_id
        self._quic.send_stream_data(self.stream_id, encode_h3_frame(GoawayFrame(stream_id)))

    def on_settings(self, settings: dict[int, int]) -> None:
        """Check and keep the peer's SETTINGS (RFC 9114 §7.2.4, RFC 9297 §2.1.1, RFC 9220 §3)."""
        for ident in (Setting.H3_DATAGRAM, Setting.ENABLE_CONNECT_PROTOCOL):
            if settings.get(ident, 0) not in (0, 1):
                raise H3ConnectionError(
                    H3ErrorCode.H3_SETTINGS_ERROR, f"setting {ident:#x} must be 0 or 1"
                )
        self.peer_settings = settings

    def on_goaway(self, ident: int) -> None:
        """Check and keep the peer's GOAWAY: valid IDs that never increase (RFC 9114 §5.2)."""
        if self._is_client and (ident % 4 != 0):
            raise H3ConnectionError(H3ErrorCode.H3_ID_ERROR, "GOAWAY with a non-request stream ID")
        if self.goaway_received is not None and ident > self.goaway_received:
            raise H3ConnectionError(H3ErrorCode.H3_ID_ERROR, "GOAWAY ID increased")
        self.goaway_received = ident
