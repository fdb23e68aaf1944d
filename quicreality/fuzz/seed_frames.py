"""One frame payload per QUIC frame type (RFC 9000 §19, RFC 9221), valid for the ``frames``
target's pair, so that the fuzzer starts with every frame type on the real receive path."""

from __future__ import annotations

from ..quic import frames as f
from ..quic.frames import push_frame
from ..wire.buffer import Buffer

__all__ = ["every_frame_payload"]


def _encode(*frames: f.Frame) -> bytes:
    buf = Buffer(capacity=4096)
    for frame in frames:
        push_frame(buf, frame)
    return buf.data


def every_frame_payload(to_client: bool) -> list[bytes]:
    """Payloads carrying each frame type once (some in the combinations that matter: data,
    then its reset; a new connection ID, then retiring an older one)."""
    # streams the sender may open: client bidi 0 / uni 2, server bidi 1 / uni 3
    bidi, uni = (1, 3) if to_client else (0, 2)
    payloads = [
        _encode(f.PingFrame()),
        _encode(f.PaddingFrame(8), f.PingFrame()),
        _encode(f.AckFrame((range(0, 2),), 0)),
        _encode(f.AckFrame((range(0, 1), range(2, 3)), 5, (1, 0, 0))),
        _encode(f.StreamFrame(bidi, 0, b"GET / HTTP/0.9\r\n"), f.StreamFrame(bidi, 16, b"", True)),
        _encode(f.StreamFrame(uni, 0, b"\x00\x04\x00", False),
                f.StreamFrame(uni, 10, b"later", False)),
        _encode(f.StreamFrame(bidi, 0, b"abc"), f.ResetStreamFrame(bidi, 7, 3)),
        _encode(f.StopSendingFrame(bidi, 9)),
        _encode(f.CryptoFrame(0, b"\x04\x00\x00\x04\x00\x00\x00\x00")),
        _encode(f.MaxDataFrame(1 << 24)),
        _encode(f.MaxStreamDataFrame(bidi, 1 << 22)),
        _encode(f.MaxStreamsFrame(True, 2000), f.MaxStreamsFrame(False, 200)),
        _encode(f.DataBlockedFrame(1000)),
        _encode(f.StreamDataBlockedFrame(bidi, 1000)),
        _encode(f.StreamsBlockedFrame(True, 100), f.StreamsBlockedFrame(False, 3)),
        _encode(f.NewConnectionIdFrame(1, 0, b"\x11" * 8, b"\x22" * 16),
                f.NewConnectionIdFrame(2, 1, b"\x33" * 8, b"\x44" * 16)),
        _encode(f.RetireConnectionIdFrame(0)),
        _encode(f.PathChallengeFrame(b"\x55" * 8)),
        _encode(f.PathResponseFrame(b"\x66" * 8)),
        _encode(f.DatagramFrame(b"datagram")),
        _encode(f.DatagramFrame(b"last datagram", has_length=False)),
        _encode(f.ConnectionCloseFrame(0x0A, 0x08, "bye")),
        _encode(f.ConnectionCloseFrame(0x100, None, "app", application=True)),
    ]
    if to_client:
        payloads.append(_encode(f.HandshakeDoneFrame()))
        payloads.append(_encode(f.NewTokenFrame(b"\x77" * 32)))
    return payloads
