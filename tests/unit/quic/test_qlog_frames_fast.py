"""describe_frames' fast readers give what the full frame codec gives, frame for frame."""

from __future__ import annotations

from typing import Any

import pytest

from quicreality.qlog.sink import simple_frame
from quicreality.quic import frames as f
from quicreality.quic.errors import QuicConnectionError
from quicreality.quic.frames import fast
from quicreality.quic.qlog_frames import _describe, describe_frames
from quicreality.wire.buffer import Buffer, BufferReadError
from quicreality.wire.rangeset import RangeSet


def reference(payload: bytes) -> list[dict[str, Any]]:
    """The description before the fast readers: every frame through the full codec."""
    out: list[dict[str, Any]] = []
    buf = Buffer(data=payload)
    while not buf.eof():
        try:
            frame = f.pull_frame(buf)
        except (QuicConnectionError, BufferReadError, ValueError):
            out.append(simple_frame("unknown"))
            break
        out.append(_describe(frame))
    return out


def _payload(*parts: str) -> bytes:
    buf = Buffer(capacity=4000)
    for part in parts:
        if part == "stream":
            fast.push_stream_frame_header(buf, 4, 1 << 20, 100, False)
            buf.push_bytes(b"s" * 100)
        elif part == "stream-fin-nolen":
            fast.push_stream_frame_header(buf, 0, 0, 50, True, has_length=False)
            buf.push_bytes(b"e" * 50)
        elif part in ("ack", "ack-ecn"):
            rs = RangeSet()
            for r in (range(0, 3), range(5, 9), range(20, 21)):
                rs.add(r.start, r.stop)
            fast.push_ack_frame(buf, rs, 321, (4, 0, 1) if part == "ack-ecn" else None)
        elif part == "ping":
            fast.push_ping_frame(buf)
        elif part == "padding":
            buf.push_bytes(bytes(37))
        elif part == "max-data":
            fast.push_max_data_frame(buf, 1 << 30)
        elif part == "crypto":
            fast.push_crypto_frame_header(buf, 7, 3)
            buf.push_bytes(b"abc")
        elif part == "handshake-done":
            fast.push_handshake_done_frame(buf)
    return buf.data


PAYLOADS = [
    _payload("stream"),
    _payload("ack", "stream"),
    _payload("ack-ecn", "ping", "padding"),
    _payload("crypto", "padding"),
    _payload("max-data", "handshake-done", "ack", "stream-fin-nolen"),
    _payload("ping"),
    _payload("stream")[:40],  # truncated STREAM
    _payload("ack")[:3],  # truncated ACK
    _payload("ping") + b"\x40",  # truncated frame type
    _payload("ping") + b"\x1f",  # unknown frame type
    b"",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_describe_frames_equals_the_full_codec(payload: bytes) -> None:
    assert describe_frames(payload) == reference(payload)
