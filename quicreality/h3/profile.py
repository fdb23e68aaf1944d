"""How a server's HTTP/3 layer opens, as seen by its client (sans-IO).

A server's first flight often carries its HTTP/3 start as 0.5-RTT data: its control stream with
SETTINGS (RFC 9114 §6.2.1), and perhaps its QPACK encoder and decoder streams (RFC 9204 §4.2).
Their size shows on the wire even though the bytes are encrypted: quic-go's is one 24-byte
datagram (the control stream with an empty SETTINGS, no QPACK stream), ours was 42 bytes.
:func:`read_h3_profile` reads, from what a server sent on its unidirectional streams, an
:class:`H3Profile`; :meth:`H3Profile.settings_to_send` and :attr:`H3Profile.early_qpack_streams`
are what an :class:`~quicreality.h3.connection.H3Connection` needs to open the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from quicreality.h3.frames import (
    FrameType,
    H3ConnectionError,
    Setting,
    StreamType,
    parse_settings,
    peek_uint_var,
)

__all__ = ["H3Profile", "read_h3_profile", "reserved_setting"]

#: Settings we can honour whatever their value; the QPACK ones configure our decoder.
_HONOURED = frozenset({Setting.QPACK_MAX_TABLE_CAPACITY, Setting.QPACK_BLOCKED_STREAMS,
                       Setting.MAX_FIELD_SECTION_SIZE})
#: Settings of extensions we do not implement whose value 0 means "off" (RFC 9220 §3, RFC 9297 §2.1.1).
_OFF_AT_ZERO = frozenset({Setting.ENABLE_CONNECT_PROTOCOL, Setting.H3_DATAGRAM})
#: The largest QPACK values we copy (a larger table is memory we would have to keep per client).
_MAX_TABLE_CAPACITY = 1 << 16
_MAX_BLOCKED_STREAMS = 1000


def _is_reserved(ident: int) -> bool:
    """Reserved (GREASE) setting identifiers are ``0x1f * N + 0x21`` (RFC 9114 §7.2.4.1)."""
    return ident >= 0x21 and (ident - 0x21) % 0x1F == 0


def reserved_setting(like: int) -> int:
    """The smallest reserved identifier whose varint is as long as ``like``'s (RFC 9000 §16)."""
    floor = 0 if like < 1 << 6 else 1 << 6 if like < 1 << 14 else 1 << 14 if like < 1 << 30 \
        else 1 << 30
    n = max(0, -(-(floor - 0x21) // 0x1F))
    return 0x1F * n + 0x21


@dataclass(frozen=True, slots=True)
class H3Profile:
    """A server's HTTP/3 start: its SETTINGS in order, and the unidirectional stream types it
    opened (in stream-ID order) in the data read."""

    settings: tuple[tuple[int, int], ...]
    stream_types: tuple[int, ...]

    @property
    def early_qpack_streams(self) -> tuple[int, ...]:
        """The QPACK stream types the server opened early, in its order."""
        return tuple(t for t in self.stream_types
                     if t in (StreamType.QPACK_ENCODER, StreamType.QPACK_DECODER))

    def settings_to_send(self) -> list[tuple[int, int]]:
        """SETTINGS of the same identifiers' lengths, order and (mostly) values that we can keep:

        * the QPACK limits are copied (capped at 64 KiB and 1000) and honoured by our decoder;
        * MAX_FIELD_SECTION_SIZE is copied; our decoder still refuses a field section above its
          own limit (:class:`~quicreality.h3.connection.H3Connection`), which RFC 9114 §4.2.2
          allows (431);
        * reserved identifiers are copied with their values (they mean nothing, RFC 9114 §9);
        * ENABLE_CONNECT_PROTOCOL and H3_DATAGRAM are sent as 0: we implement neither;
        * any other identifier becomes a reserved one of the same length, with the same value
          (we cannot promise what we do not know).
        """
        out = []
        for ident, value in self.settings:
            if ident == Setting.QPACK_MAX_TABLE_CAPACITY:
                value = min(value, _MAX_TABLE_CAPACITY)
            elif ident == Setting.QPACK_BLOCKED_STREAMS:
                value = min(value, _MAX_BLOCKED_STREAMS)
            elif ident in _OFF_AT_ZERO:
                value = 0
            elif ident not in _HONOURED and not _is_reserved(ident):
                ident = reserved_setting(ident)
            out.append((ident, value))
        return out

    def describe(self) -> dict[str, object]:
        """Plain values for logs and qlog."""
        return {"settings": [[f"{i:#x}", v] for i, v in self.settings],
                "stream_types": [f"{t:#x}" for t in self.stream_types]}


def read_h3_profile(uni_streams: Mapping[int, bytes]) -> H3Profile | None:
    """The profile of a server that sent ``uni_streams`` (stream ID -> bytes from offset 0).

    Returns None without a control stream whose first frame, a SETTINGS frame, is complete (or
    with one that does not parse): then nothing is known.
    """
    types: list[int] = []
    settings: tuple[tuple[int, int], ...] | None = None
    for sid in sorted(uni_streams):
        data = uni_streams[sid]
        head = peek_uint_var(data, 0)
        if head is None:
            continue
        stream_type, pos = head
        types.append(stream_type)
        if stream_type != StreamType.CONTROL or settings is not None:
            continue
        frame_type = peek_uint_var(data, pos)
        length = None if frame_type is None else peek_uint_var(data, frame_type[1])
        if frame_type is None or length is None or frame_type[0] != FrameType.SETTINGS:
            return None
        end = length[1] + length[0]
        if len(data) < end:
            return None
        try:
            settings = parse_settings(bytes(data[length[1]:end])).settings
        except H3ConnectionError:
            return None
    return None if settings is None else H3Profile(settings, tuple(types))
