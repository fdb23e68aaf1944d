"""The incremental HTTP/3 frame reader (RFC 9114 §7.1) every receiving stream runs.

:func:`read_frames` consumes one received chunk for one stream. Frame headers are decoded in place
(a partial header is kept in the stream's small ``partial`` buffer), DATA payload is handed out as
slices of the chunk (a chunk that is all payload is passed through without a copy), other frames
are collected in the stream's ``payload`` until complete and then given to the caller's
``complete`` callback, and unknown frame types are skipped without buffering. Work per chunk is
linear in the chunk. All state is the stream's (:class:`~quicreality.h3.streams.RecvStream`).
"""

from __future__ import annotations

from collections.abc import Callable

from quicreality.h3.events import DataReceived, H3Event
from quicreality.h3.frames import peek_uint_var
from quicreality.h3.streams import DATA_FRAME, NO_FRAME, RecvStream, StreamKind, start_frame

__all__ = ["FrameSink", "read_frames"]

#: Called with a stream whose non-DATA frame is complete (``frame_type`` and ``payload`` set).
FrameSink = Callable[[RecvStream, list[H3Event]], None]


def read_frames(stream: RecvStream, data: bytes, pos: int, events: list[H3Event],
                complete: FrameSink, *, is_client: bool) -> None:
    """Consume ``data[pos:]`` for ``stream``; stop early if ``complete`` discards or blocks it
    (the rest of a blocked stream's chunk is parked)."""
    end = len(data)
    sid = stream.stream_id
    while pos < end:
        frame_type = stream.frame_type
        if frame_type == DATA_FRAME:
            take = min(stream.remaining, end - pos)
            chunk = data if (pos == 0 and take == end) else data[pos : pos + take]
            pos += take
            stream.remaining -= take
            if stream.remaining == 0:
                stream.frame_type = NO_FRAME
            events.append(DataReceived(sid, chunk, False))
            continue
        if frame_type != NO_FRAME:
            take = min(stream.remaining, end - pos)
            if not stream.skip:
                stream.payload += data[pos : pos + take]
            pos += take
            stream.remaining -= take
            if stream.remaining == 0:
                complete(stream, events)
                if stream.kind == StreamKind.DISCARD:
                    return
                if stream.blocked:
                    stream.parked += data[pos:]
                    return
            continue
        # read a frame header, possibly continuing a partial one
        prefix_len = len(stream.partial)
        head: bytes | bytearray = stream.partial + data[pos : pos + 16] if prefix_len else data
        hpos = 0 if prefix_len else pos
        parsed_type = peek_uint_var(head, hpos)
        parsed_len = None if parsed_type is None else peek_uint_var(head, parsed_type[1])
        if parsed_type is None or parsed_len is None:
            stream.partial = bytes(head[hpos:]) if prefix_len else data[pos:]
            return
        stream.partial = b""
        if prefix_len:
            pos += parsed_len[1] - prefix_len
        else:
            pos = parsed_len[1]
        start_frame(stream, parsed_type[0], parsed_len[0], is_client=is_client)
        if stream.remaining == 0 and stream.frame_type != NO_FRAME:
            if stream.frame_type == DATA_FRAME:
                stream.frame_type = NO_FRAME  # empty DATA frame: nothing to report
                continue
            complete(stream, events)
            if stream.kind == StreamKind.DISCARD:
                return
            if stream.blocked:
                stream.parked += data[pos:]
                return
