"""The receiving side of QPACK (RFC 9204), with the field-section size limit of RFC 9114 §4.2.2.

:class:`QpackReceiver` wraps the ``pylsqpack`` decoder for :class:`~quicreality.h3.connection.
H3Connection`: it feeds the peer's encoder stream and decodes field sections, and returns each
outcome as a value (:class:`Decoded`, :class:`Blocked` or :class:`TooLarge`).

Theory of operation
-------------------
``pylsqpack`` decodes a whole field section in C and hands back every field, so a few bytes of
references to one large dynamic-table entry decode into megabytes: a 1 MiB HEADERS frame can
expand to about 4 GB. RFC 9114 §4.2.2 lets an endpoint refuse field sections larger than the
``SETTINGS_MAX_FIELD_SECTION_SIZE`` it advertised, where the size is the sum over fields of
``len(name) + len(value) + 32`` (the HTTP/2 rule RFC 9114 §4.2.2 adopts). To refuse *before*
the allocation, :class:`FieldSectionSizer`:

* mirrors the peer's QPACK encoder stream (RFC 9204 §4.3) just far enough to know, for every
  dynamic-table entry that may still be live, bounds on the decoded lengths of its name and
  value. A plain literal's length is exact. A Huffman-coded literal (RFC 7541 §5.2) of ``n``
  bytes decodes to between ``(8n - 7) // 30`` and ``8n // 5`` bytes: codes are 5 to 30 bits
  long and the padding is shorter than 8 bits. No string is decoded or kept;
* walks a field section's representations (RFC 9204 §4.5) and adds up the same bounds,
  stopping as soon as the lower bound exceeds the limit (so the walk is at most
  ``limit / 32`` fields long).

The caller rejects a section whose lower bound exceeds the limit without decoding it; anything
else decodes into at most the upper bound (a small multiple of the limit plus the frame size)
and is then checked exactly with :func:`field_section_size`.

A malformed encoder stream raises :class:`QpackSizeError`, which the connection reports as
QPACK_ENCODER_STREAM_ERROR; a malformed field section (a reference to an entry that cannot
exist, a truncated representation) as QPACK_DECOMPRESSION_FAILED (RFC 9204 §2.2.3, §6).
"""

from __future__ import annotations

from dataclasses import dataclass

import pylsqpack

from quicreality.h3.events import Headers
from quicreality.h3.frames import H3ConnectionError, H3ErrorCode

__all__ = [
    "Blocked",
    "Decoded",
    "FieldSectionSizer",
    "QpackReceiver",
    "QpackSizeError",
    "SectionPrefix",
    "TooLarge",
    "field_section_size",
]

#: Per-field overhead in the size of a field section (RFC 9114 §4.2.2, RFC 9113 §6.5.2).
FIELD_OVERHEAD = 32

#: ``(len(name), len(value))`` of the QPACK static table (RFC 9204 Appendix A), by index.
# fmt: off
STATIC_LENGTHS: tuple[tuple[int, int], ...] = (
    (10, 0), (5, 1), (3, 1), (19, 0), (14, 1), (6, 0), (4, 0), (4, 0), (17, 0),
    (13, 0), (13, 0), (4, 0), (8, 0), (7, 0), (10, 0), (7, 7), (7, 6), (7, 3),
    (7, 4), (7, 7), (7, 4), (7, 3), (7, 4), (7, 5), (7, 3), (7, 3), (7, 3),
    (7, 3), (7, 3), (6, 3), (6, 23), (15, 17), (13, 5), (28, 13), (28, 12), (27, 1),
    (13, 9), (13, 15), (13, 14), (13, 8), (13, 8), (13, 24), (16, 2), (16, 4), (12, 23),
    (12, 22), (12, 16), (12, 33), (12, 9), (12, 10), (12, 9), (12, 8), (12, 24), (12, 10),
    (12, 24), (5, 8), (25, 16), (25, 35), (25, 44), (4, 15), (4, 6), (22, 7), (16, 13),
    (7, 3), (7, 3), (7, 3), (7, 3), (7, 3), (7, 3), (7, 3), (7, 3), (7, 3),
    (15, 0), (32, 5), (32, 4), (28, 1), (28, 3), (28, 18), (28, 7), (29, 14), (30, 12),
    (29, 3), (29, 4), (7, 5), (13, 0), (23, 53), (10, 1), (9, 0), (9, 0), (8, 0),
    (6, 0), (7, 8), (6, 0), (19, 1), (25, 1), (10, 0), (15, 0), (15, 4), (15, 10),
)
# fmt: on

# (name_lo, name_hi, value_lo, value_hi) of one dynamic-table entry
_Entry = tuple[int, int, int, int]


class QpackSizeError(Exception):
    """The encoder stream or a field section is malformed (RFC 9204 §2.2.3, §4.3, §4.5)."""


class _Truncated(Exception):
    """More bytes are needed to finish the instruction (encoder stream only)."""


@dataclass(frozen=True, slots=True)
class SectionPrefix:
    """The decoded prefix of an encoded field section (RFC 9204 §4.5.1).

    Attributes:
        required_insert_count: entries the section needs; above the received count it blocks.
        base: the base that relative and post-base indices are counted from.
        offset: where the field line representations start.
    """

    required_insert_count: int
    base: int
    offset: int


def field_section_size(headers: Headers) -> int:
    """The size of a decoded field section as RFC 9114 §4.2.2 counts it."""
    return sum(len(name) + len(value) + FIELD_OVERHEAD for name, value in headers)


def _prefix_int(data: bytes | bytearray, pos: int, bits: int) -> tuple[int, int]:
    """Decode an ``bits``-bit prefix integer at ``data[pos]`` (RFC 7541 §5.1)."""
    end = len(data)
    if pos >= end:
        raise _Truncated
    mask = (1 << bits) - 1
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        if pos >= end:
            raise _Truncated
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if shift > 62:
            raise QpackSizeError("integer too large")
        if not byte & 0x80:
            return value, pos


def _string(data: bytes | bytearray, pos: int, huffman_bit: int, bits: int) -> tuple[int, int, int]:
    """Skip a string literal (RFC 9204 §4.1.2); return ``(lo, hi, next_pos)`` of its decoded length."""
    huffman = data[pos] & huffman_bit if pos < len(data) else 0
    length, pos = _prefix_int(data, pos, bits)
    if pos + length > len(data):
        raise _Truncated
    if not huffman:
        return length, length, pos + length
    return max(0, (8 * length - 7) // 30), (8 * length) // 5, pos + length


class FieldSectionSizer:
    """Mirror of the peer encoder's dynamic-table entry sizes, and field-section size bounds.

    Args:
        max_table_capacity: the ``SETTINGS_QPACK_MAX_TABLE_CAPACITY`` we advertised (RFC 9204 §5).
    """

    def __init__(self, max_table_capacity: int):
        self._max_capacity = max_table_capacity
        self._max_entries = max_table_capacity // 32  # RFC 9204 §3.2.2: no entry is under 32 B
        self._capacity = 0
        self._entries: dict[int, _Entry] = {}  # absolute index -> bounds, last max_entries only
        self._pending = bytearray()  # an encoder instruction not yet complete
        self.insert_count = 0

    # --- encoder stream (RFC 9204 §4.3) ----------------------------------------------------

    def feed_encoder(self, data: bytes) -> None:
        """Follow encoder-stream bytes (the same bytes given to ``pylsqpack``).

        Raises:
            QpackSizeError: the instructions are malformed or exceed the table.
        """
        buf = self._pending
        buf += data
        pos = 0
        end = len(buf)
        try:
            while pos < end:
                pos = self._instruction(buf, pos)
        except _Truncated:
            # an entry is at most the capacity; its encoding at most 30/8 of that plus headers
            if end - pos > 4 * self._max_capacity + 64:
                raise QpackSizeError("encoder instruction larger than the table") from None
        del buf[:pos]

    def _instruction(self, buf: bytearray, pos: int) -> int:
        """Apply one complete encoder instruction at ``buf[pos]``; return the position after it."""
        first = buf[pos]
        if first & 0x80:  # Insert with Name Reference (§4.3.2)
            index, pos = _prefix_int(buf, pos, 6)
            if first & 0x40:
                name = self._static(index)
                name_lo = name_hi = name[0]
            else:
                name_lo, name_hi, _, _ = self._dynamic(self.insert_count - 1 - index)
            value_lo, value_hi, pos = _string(buf, pos, 0x80, 7)
        elif first & 0x40:  # Insert with Literal Name (§4.3.3)
            name_lo, name_hi, pos = _string(buf, pos, 0x20, 5)
            value_lo, value_hi, pos = _string(buf, pos, 0x80, 7)
        elif first & 0x20:  # Set Dynamic Table Capacity (§4.3.1)
            capacity, pos = _prefix_int(buf, pos, 5)
            if capacity > self._max_capacity:
                raise QpackSizeError("dynamic table capacity above our maximum")
            self._capacity = capacity
            return pos
        else:  # Duplicate (§4.3.4)
            index, pos = _prefix_int(buf, pos, 5)
            name_lo, name_hi, value_lo, value_hi = self._dynamic(self.insert_count - 1 - index)
        self._insert(name_lo, name_hi, value_lo, value_hi)
        return pos

    def _insert(self, name_lo: int, name_hi: int, value_lo: int, value_hi: int) -> None:
        """Record a new entry; an entry never exceeds the capacity (RFC 9204 §3.2.2)."""
        room = self._capacity - FIELD_OVERHEAD
        if name_lo + value_lo > room:
            raise QpackSizeError("entry larger than the dynamic table capacity")
        entry = (name_lo, min(name_hi, room - value_lo), value_lo, min(value_hi, room - name_lo))
        self._entries[self.insert_count] = entry
        self.insert_count += 1
        self._entries.pop(self.insert_count - 1 - self._max_entries, None)

    def _static(self, index: int) -> tuple[int, int]:
        if index >= len(STATIC_LENGTHS):
            raise QpackSizeError(f"static table index {index} out of range")
        return STATIC_LENGTHS[index]

    def _dynamic(self, absolute: int) -> _Entry:
        entry = self._entries.get(absolute)
        if entry is None:
            raise QpackSizeError(f"dynamic table entry {absolute} does not exist")
        return entry

    # --- field sections (RFC 9204 §4.5) ----------------------------------------------------

    def parse_prefix(self, block: bytes) -> SectionPrefix:
        """Decode the Required Insert Count and Base (RFC 9204 §4.5.1.1, §4.5.1.2).

        Call it when the section arrives: the count is decoded against the inserts received so far.

        Raises:
            QpackSizeError: the prefix is malformed.
        """
        try:
            encoded, pos = _prefix_int(block, 0, 8)
            sign = block[pos] & 0x80 if pos < len(block) else 0
            delta, pos = _prefix_int(block, pos, 7)
        except _Truncated:
            raise QpackSizeError("truncated field section prefix") from None
        ric = 0
        if encoded:
            full_range = 2 * self._max_entries
            if encoded > full_range:
                raise QpackSizeError("invalid Required Insert Count")
            max_value = self.insert_count + self._max_entries
            ric = (max_value // full_range) * full_range + encoded - 1
            if ric > max_value:
                if ric <= full_range:
                    raise QpackSizeError("invalid Required Insert Count")
                ric -= full_range
            if ric == 0:
                raise QpackSizeError("invalid Required Insert Count")
        base = ric - delta - 1 if sign else ric + delta
        if base < 0:
            raise QpackSizeError("negative Base")
        return SectionPrefix(ric, base, pos)

    def bounds(self, block: bytes, prefix: SectionPrefix, limit: int) -> tuple[int, int]:
        """Bounds ``(lo, hi)`` on the decoded size of a field section whose entries have arrived.

        The walk stops as soon as ``lo`` exceeds ``limit`` (then only ``lo > limit`` is meaningful).

        Raises:
            QpackSizeError: the section is malformed or refers to an entry that cannot exist.
        """
        ric, base = prefix.required_insert_count, prefix.base
        pos, end = prefix.offset, len(block)
        lo = hi = 0
        try:
            while pos < end and lo <= limit:
                first = block[pos]
                if first & 0x80:  # Indexed Field Line (§4.5.2)
                    index, pos = _prefix_int(block, pos, 6)
                    if first & 0x40:
                        n, v = self._static(index)
                        lo += n + v
                        hi += n + v
                    else:
                        n_lo, n_hi, v_lo, v_hi = self._section_entry(base - 1 - index, ric)
                        lo += n_lo + v_lo
                        hi += n_hi + v_hi
                elif first & 0x40:  # Literal Field Line with Name Reference (§4.5.4)
                    index, pos = _prefix_int(block, pos, 4)
                    if first & 0x10:
                        n_lo = n_hi = self._static(index)[0]
                    else:
                        n_lo, n_hi, _, _ = self._section_entry(base - 1 - index, ric)
                    v_lo, v_hi, pos = _string(block, pos, 0x80, 7)
                    lo += n_lo + v_lo
                    hi += n_hi + v_hi
                elif first & 0x20:  # Literal Field Line with Literal Name (§4.5.6)
                    n_lo, n_hi, pos = _string(block, pos, 0x08, 3)
                    v_lo, v_hi, pos = _string(block, pos, 0x80, 7)
                    lo += n_lo + v_lo
                    hi += n_hi + v_hi
                elif first & 0x10:  # Indexed Field Line with Post-Base Index (§4.5.3)
                    index, pos = _prefix_int(block, pos, 4)
                    n_lo, n_hi, v_lo, v_hi = self._section_entry(base + index, ric)
                    lo += n_lo + v_lo
                    hi += n_hi + v_hi
                else:  # Literal Field Line with Post-Base Name Reference (§4.5.5)
                    index, pos = _prefix_int(block, pos, 3)
                    n_lo, n_hi, _, _ = self._section_entry(base + index, ric)
                    v_lo, v_hi, pos = _string(block, pos, 0x80, 7)
                    lo += n_lo + v_lo
                    hi += n_hi + v_hi
                lo += FIELD_OVERHEAD
                hi += FIELD_OVERHEAD
        except _Truncated:
            raise QpackSizeError("truncated field line") from None
        return lo, hi

    def _section_entry(self, absolute: int, ric: int) -> _Entry:
        """A dynamic entry a field section refers to: it must be below its Required Insert Count."""
        if not 0 <= absolute < ric:
            raise QpackSizeError("field line refers to an entry outside the section's range")
        return self._dynamic(absolute)


# --- the decoder seen by H3Connection ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decoded:
    """A field section was decoded; ``decoder_data`` goes on our QPACK decoder stream."""

    headers: Headers
    decoder_data: bytes


@dataclass(frozen=True, slots=True)
class Blocked:
    """The section needs encoder-stream data not received yet (RFC 9204 §2.1.2)."""


@dataclass(frozen=True, slots=True)
class TooLarge:
    """The section exceeds our limit; it was not (or no longer) kept.

    Attributes:
        size: its size, or a lower bound on it when it was refused without decoding.
        decoder_data: what goes on our decoder stream (a Stream Cancellation, RFC 9204 §4.4.2,
            or the Section Acknowledgement of a section that was decoded).
    """

    size: int
    decoder_data: bytes


DecodeResult = Decoded | Blocked | TooLarge

# fixed reason phrases for pylsqpack's errors (RFC 9204 §6)
_BAD_ENCODER = "invalid QPACK encoder stream"
_BAD_SECTION = "QPACK decompression failed"


class QpackReceiver:
    """Our QPACK decoder: ``pylsqpack`` plus the field-section size limit.

    Args:
        max_table_capacity: dynamic table size we allow the peer's encoder (bytes).
        blocked_streams: how many streams may wait for encoder-stream data.
        max_field_section_size: the ``SETTINGS_MAX_FIELD_SECTION_SIZE`` we advertise.

    Peer errors raise :class:`~quicreality.h3.frames.H3ConnectionError` with the RFC 9204 §6 code.
    """

    def __init__(self, max_table_capacity: int, blocked_streams: int, max_field_section_size: int):
        # pylsqpack's decoder is made at first use: about 4.5 KB an idle connection never needs
        # (docs/performance.md, "Idle connection memory"); a new one has no state to miss
        self._decoder: pylsqpack.Decoder | None = None
        self._decoder_args = (max_table_capacity, blocked_streams)
        self._sizer = FieldSectionSizer(max_table_capacity)
        self._limit = max_field_section_size
        self._blocked: dict[int, tuple[bytes, SectionPrefix]] = {}  # at most blocked_streams

    @property
    def limit(self) -> int:
        """The largest field section we accept (RFC 9114 §4.2.2)."""
        return self._limit

    def _lsqpack(self) -> pylsqpack.Decoder:
        decoder = self._decoder
        if decoder is None:
            decoder = self._decoder = pylsqpack.Decoder(*self._decoder_args)
        return decoder

    def feed_encoder(self, data: bytes) -> list[int]:
        """Feed the peer's encoder stream; return the streams it unblocked."""
        try:
            self._sizer.feed_encoder(data)
            return list(self._lsqpack().feed_encoder(data))
        except QpackSizeError as exc:
            raise H3ConnectionError(H3ErrorCode.QPACK_ENCODER_STREAM_ERROR, str(exc)) from None
        except pylsqpack.EncoderStreamError:  # its text is the library's, not for the peer
            raise H3ConnectionError(H3ErrorCode.QPACK_ENCODER_STREAM_ERROR, _BAD_ENCODER) from None

    def decode(self, stream_id: int, block: bytes) -> DecodeResult:
        """Decode a field section received on ``stream_id``, unless it is too large."""
        try:
            prefix = self._sizer.parse_prefix(block)
        except QpackSizeError as exc:
            raise H3ConnectionError(H3ErrorCode.QPACK_DECOMPRESSION_FAILED, str(exc)) from None
        if prefix.required_insert_count <= self._sizer.insert_count:
            refused = self._refuse(stream_id, block, prefix)
            if refused is not None:
                return refused
        try:
            decoder_data, headers = self._lsqpack().feed_header(stream_id, block)
        except pylsqpack.StreamBlocked:
            self._blocked[stream_id] = (block, prefix)
            return Blocked()
        except pylsqpack.DecompressionFailed:
            raise H3ConnectionError(H3ErrorCode.QPACK_DECOMPRESSION_FAILED, _BAD_SECTION) from None
        return self._checked(headers, decoder_data)

    def resume(self, stream_id: int) -> DecodeResult:
        """Decode the section of a stream :meth:`feed_encoder` reported as unblocked."""
        block, prefix = self._blocked.pop(stream_id)
        refused = self._refuse(stream_id, block, prefix)
        if refused is not None:
            return refused
        try:
            decoder_data, headers = self._lsqpack().resume_header(stream_id)
        except pylsqpack.DecompressionFailed:
            raise H3ConnectionError(H3ErrorCode.QPACK_DECOMPRESSION_FAILED, _BAD_SECTION) from None
        return self._checked(headers, decoder_data)

    def cancel(self, stream_id: int) -> bytes:
        """Forget a blocked stream that was reset; return its Stream Cancellation (RFC 9204 §4.4.2)."""
        self._blocked.pop(stream_id, None)
        return self._lsqpack().cancel_stream(stream_id)

    def _refuse(self, stream_id: int, block: bytes, prefix: SectionPrefix) -> TooLarge | None:
        """Refuse, without decoding, a section whose size is certainly above the limit."""
        try:
            lo, _hi = self._sizer.bounds(block, prefix, self._limit)
        except QpackSizeError as exc:
            raise H3ConnectionError(H3ErrorCode.QPACK_DECOMPRESSION_FAILED, str(exc)) from None
        if lo <= self._limit:
            return None
        # The section's references are released with a Stream Cancellation (RFC 9204 §2.2.2.2);
        # a section without references needs none (and pylsqpack never saw it).
        cancel = b""
        if prefix.required_insert_count:
            cancel = self._lsqpack().cancel_stream(stream_id)
        return TooLarge(lo, cancel)

    def _checked(self, headers: Headers, decoder_data: bytes) -> DecodeResult:
        """Apply the exact limit to a decoded section."""
        size = field_section_size(headers)
        if size > self._limit:
            return TooLarge(size, decoder_data)
        return Decoded(headers, decoder_data)
