"""Describe a decrypted packet payload as qlog frame dicts (only when a qlog sink wants frames)."""

from __future__ import annotations

from typing import Any

from ..qlog.sink import ack_frame, crypto_frame, simple_frame, stream_frame
from ..wire.buffer import Buffer, BufferReadError
from . import frames as f
from .errors import QuicConnectionError
from .frames import fast


def describe_frames(payload: bytes) -> list[dict[str, Any]]:
    """Parse ``payload`` and map each frame to its qlog 0.3 shape.

    STREAM, ACK, PING and PADDING (nearly every packet of a transfer) are read with the
    allocation-light readers of :mod:`.frames.fast` straight into their dicts; any other frame
    goes through the full frame codec. Malformed input yields the frames parsed so far plus an
    ``unknown`` entry; the connection's own handlers decide what the error means.
    """
    out: list[dict[str, Any]] = []
    buf = Buffer(data=payload)
    while not buf.eof():
        start = buf.tell()
        try:
            frame_type = buf.pull_uint_var()
            if 0x08 <= frame_type <= 0x0F:  # STREAM (RFC 9000 §19.8)
                stream_id, offset, data, fin = fast.pull_stream_frame(buf, frame_type)
                out.append(stream_frame(stream_id, offset, len(data), fin))
                continue
            if frame_type == 0x02 or frame_type == 0x03:  # ACK, ACK_ECN (RFC 9000 §19.3)
                ranges, delay = fast.pull_ack_frame(buf, False)
                ecn = fast.pull_ecn_counts(buf) if frame_type == 0x03 else None
                out.append(ack_frame(ranges, delay / 1e6, ecn))
                continue
            if frame_type == 0x01:  # PING (RFC 9000 §19.2)
                out.append(simple_frame("ping"))
                continue
            if frame_type == 0x00:  # PADDING (RFC 9000 §19.1): the run counts as one frame
                out.append(simple_frame("padding", length=1 + fast.skip_padding(buf)))
                continue
            buf.seek(start)
            frame = f.pull_frame(buf)
        except (QuicConnectionError, BufferReadError, ValueError):
            out.append(simple_frame("unknown"))
            break
        out.append(_describe(frame))
    return out


def _describe(frame: Any) -> dict[str, Any]:
    match frame:
        case f.PaddingFrame(length=length):
            return simple_frame("padding", length=length)
        case f.PingFrame():
            return simple_frame("ping")
        case f.AckFrame(ranges=ranges, ack_delay=delay, ecn_counts=ecn):
            return ack_frame(ranges, delay / 1e6, ecn)
        case f.StreamFrame(stream_id=sid, offset=offset, data=data, fin=fin):
            return stream_frame(sid, offset, len(data), fin)
        case f.CryptoFrame(offset=offset, data=data):
            return crypto_frame(offset, len(data))
        case f.ResetStreamFrame(stream_id=sid, error_code=code, final_size=size):
            return simple_frame("reset_stream", stream_id=sid, error_code=code, final_size=size)
        case f.StopSendingFrame(stream_id=sid, error_code=code):
            return simple_frame("stop_sending", stream_id=sid, error_code=code)
        case f.MaxDataFrame(maximum=maximum):
            return simple_frame("max_data", maximum=maximum)
        case f.MaxStreamDataFrame(stream_id=sid, maximum=maximum):
            return simple_frame("max_stream_data", stream_id=sid, maximum=maximum)
        case f.MaxStreamsFrame(bidirectional=bidi, maximum=maximum):
            return simple_frame("max_streams", stream_type="bidirectional" if bidi else "unidirectional",
                                maximum=maximum)
        case f.NewConnectionIdFrame(sequence_number=seq, retire_prior_to=rpt, connection_id=cid):
            return simple_frame("new_connection_id", sequence_number=seq, retire_prior_to=rpt,
                                connection_id=cid.hex(), length=len(cid))
        case f.RetireConnectionIdFrame(sequence_number=seq):
            return simple_frame("retire_connection_id", sequence_number=seq)
        case f.ConnectionCloseFrame(error_code=code, reason_phrase=reason, application=app):
            return simple_frame("connection_close", error_space="application" if app else "transport",
                                error_code=code, reason=reason)
        case f.PathChallengeFrame(data=data):
            return simple_frame("path_challenge", data=data.hex())
        case f.PathResponseFrame(data=data):
            return simple_frame("path_response", data=data.hex())
        case f.HandshakeDoneFrame():
            return simple_frame("handshake_done")
        case f.DatagramFrame(data=data):
            return simple_frame("datagram", length=len(data))
    return simple_frame(type(frame).__name__.removesuffix("Frame").lower())
