"""A Buffer made from ``bytes`` reads them in place and reads like one made from a bytearray;
pushing onto it copies the bytes first (the caller's object is never changed)."""

from __future__ import annotations

import pytest

from quicreality.wire.buffer import Buffer, BufferReadError

#: every varint form (RFC 9000 §16: 1, 2, 4 and 8 bytes), then fixed-width fields and bytes
WIRE = bytes.fromhex("25" "7bbd" "9d7f3e7d" "c2197c5eff14e88c") + bytes(range(1, 16))


def _read_all(buf: Buffer) -> list[object]:
    return [buf.pull_uint_var(), buf.pull_uint_var(), buf.pull_uint_var(), buf.pull_uint_var(),
            buf.pull_uint8(), buf.pull_uint16(), buf.pull_uint24(), buf.pull_uint32(),
            buf.pull_bytes(5), buf.eof()]


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_every_pull_reads_the_same_whatever_the_input_type(kind: type) -> None:
    buf = Buffer(data=kind(WIRE))
    assert _read_all(buf) == [37, 15293, 494878333, 151288809941952652, 1, 0x0203, 0x040506,
                              0x0708090A, bytes(range(11, 16)), True]
    with pytest.raises(BufferReadError):
        buf.pull_uint8()
    assert buf.data == WIRE and buf.data_slice(1, 3) == WIRE[1:3]


def test_pushing_onto_a_bytes_buffer_copies_first() -> None:
    original = bytes(WIRE)
    buf = Buffer(data=original)
    assert buf.view() is original  # read in place: no copy
    buf.push_uint8(0xFF)  # overwrites the first byte of the buffer's own copy
    assert original == WIRE
    assert buf.view()[0] == 0xFF and buf.view()[1:] == WIRE[1:]
    buf.seek(0)
    assert buf.pull_uint8() == 0xFF


def test_raw_of_a_bytes_buffer_is_its_own_writable_copy() -> None:
    original = bytes(WIRE)
    buf = Buffer(data=original)
    raw = buf.raw
    raw[0] = 0
    assert original == WIRE and buf.pull_uint8() == 0
