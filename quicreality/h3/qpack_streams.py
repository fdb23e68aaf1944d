"""Our two QPACK streams and the codecs behind them (RFC 9204 §4.2), one component of
:class:`~quicreality.h3.connection.H3Connection`.

:class:`QpackStreams` owns the ``pylsqpack`` encoder (our header blocks), our decoder
(:class:`~quicreality.h3.qpack.QpackReceiver`) and the IDs of the unidirectional streams that carry
their instructions to the peer. Those named in ``early`` are opened at once, in that order (by
default both, encoder first: what we have always done); the others only when they first have
something to carry. RFC 9204 §4.2 lets an endpoint leave out an encoder stream
it will not use and a decoder stream when its table capacity is 0, and a stream not yet opened
can be opened later, when first needed (at most one of each, ever). Opening them late is how an
accepted REALITY connection copies a target that opens no QPACK stream in its first flight
(quic-go: ``docs/camouflage.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pylsqpack

from quicreality.h3.events import Headers
from quicreality.h3.frames import H3ConnectionError, H3ErrorCode, StreamType
from quicreality.h3.qpack import DecodeResult, QpackReceiver
from quicreality.h3.streams import QuicTransport, open_uni_stream

__all__ = ["EARLY_DEFAULT", "QpackStreams"]

#: Our QPACK streams opened at once unless told otherwise: both, encoder first.
EARLY_DEFAULT: tuple[int, ...] = (StreamType.QPACK_ENCODER, StreamType.QPACK_DECODER)


class QpackStreams:
    """QPACK encoder and decoder, and our encoder and decoder streams (see the module docstring).

    Args:
        quic: the QUIC connection the streams are opened on.
        max_table_capacity: dynamic table size we allow the peer's encoder (bytes).
        blocked_streams: how many streams the peer may leave blocked on our decoder.
        max_field_section_size: largest decoded field section we accept (RFC 9114 §4.2.2).
        early: the QPACK stream types to open now, in order; the others open when first needed.
    """

    def __init__(self, quic: QuicTransport, max_table_capacity: int, blocked_streams: int,
                 max_field_section_size: int, *, early: Sequence[int] = EARLY_DEFAULT) -> None:
        self._quic = quic
        self.receiver = QpackReceiver(max_table_capacity, blocked_streams, max_field_section_size)
        self._encoder = pylsqpack.Encoder()
        self.encoder_stream_id: int | None = None
        self.decoder_stream_id: int | None = None
        for stream_type in early:
            if stream_type == StreamType.QPACK_ENCODER and self.encoder_stream_id is None:
                self.encoder_stream_id = open_uni_stream(quic, StreamType.QPACK_ENCODER)
            elif stream_type == StreamType.QPACK_DECODER and self.decoder_stream_id is None:
                self.decoder_stream_id = open_uni_stream(quic, StreamType.QPACK_DECODER)

    def is_ours(self, stream_id: int) -> bool:
        """Whether ``stream_id`` is one of our (opened) QPACK streams."""
        return stream_id in (self.encoder_stream_id, self.decoder_stream_id)

    def send_encoder(self, data: bytes) -> None:
        """Queue encoder instructions, opening the encoder stream first if needed."""
        if not data:
            return
        if self.encoder_stream_id is None:
            self.encoder_stream_id = open_uni_stream(self._quic, StreamType.QPACK_ENCODER)
        self._quic.send_stream_data(self.encoder_stream_id, data)

    def send_decoder(self, data: bytes) -> None:
        """Queue decoder instructions, opening the decoder stream first if needed."""
        if not data:
            return
        if self.decoder_stream_id is None:
            self.decoder_stream_id = open_uni_stream(self._quic, StreamType.QPACK_DECODER)
        self._quic.send_stream_data(self.decoder_stream_id, data)

    def encode(self, stream_id: int, headers: Headers) -> bytes:
        """Encode a field section for ``stream_id``; its encoder instructions are queued."""
        encoder_data, block = self._encoder.encode(stream_id, headers)
        self.send_encoder(encoder_data)
        return block

    def apply_peer_settings(self, max_table_capacity: int, blocked_streams: int) -> None:
        """Use the dynamic table the peer's SETTINGS allow (RFC 9204 §5)."""
        self.send_encoder(self._encoder.apply_settings(max_table_capacity, blocked_streams))

    def feed_peer_decoder(self, data: bytes) -> None:
        """Feed the peer's decoder stream (acknowledgements of our blocks)."""
        try:
            self._encoder.feed_decoder(data)
        except pylsqpack.DecoderStreamError:
            raise H3ConnectionError(
                H3ErrorCode.QPACK_DECODER_STREAM_ERROR, "invalid QPACK decoder stream"
            ) from None

    def feed_peer_encoder(self, data: bytes) -> list[int]:
        """Feed the peer's encoder stream; return the streams it unblocked."""
        return self.receiver.feed_encoder(data)

    def decode(self, stream_id: int, block: bytes) -> DecodeResult:
        """Decode a field section received on ``stream_id`` (see :class:`QpackReceiver`)."""
        return self.receiver.decode(stream_id, block)

    def resume(self, stream_id: int) -> DecodeResult:
        """Decode a field section that was blocked and is now unblocked."""
        return self.receiver.resume(stream_id)

    def cancel(self, stream_id: int) -> None:
        """Forget a blocked stream the peer reset; tell the peer's encoder (RFC 9204 §4.4.2)."""
        self.send_decoder(self.receiver.cancel(stream_id))
