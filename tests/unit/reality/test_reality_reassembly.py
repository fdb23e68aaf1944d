"""The gate's CRYPTO reassembly: first write wins, contradictions and repeated packets refused."""

from __future__ import annotations

import random

from quicreality.reality.reassembly import Chunk, HelloAssembly, PacketCheck


def test_chunks_in_any_order_merge_into_one_range() -> None:
    data = bytes(range(200))
    pieces = [(o, data[o:o + 10]) for o in range(0, 200, 10)]
    random.Random(3).shuffle(pieces)
    asm = HelloAssembly(max_fragments=64)
    for offset, chunk in pieces:
        assert asm.add(offset, chunk) is Chunk.STORED
    assert asm.ranges == 1 and asm.contiguous() == 200 and bytes(asm.data) == data


def test_gaps_keep_ranges_apart_until_filled() -> None:
    asm = HelloAssembly(max_fragments=64)
    asm.add(10, b"bb")
    asm.add(20, b"cc")
    assert asm.ranges == 2 and asm.contiguous() == 0
    asm.add(0, b"a" * 10)
    assert asm.ranges == 2 and asm.contiguous() == 12
    asm.add(11, b"b" + b"x" * 8 + b"c")  # overlaps both ends with equal bytes, fills the gap
    assert asm.ranges == 1 and asm.contiguous() == 22


def test_an_overlap_with_other_bytes_is_a_conflict_and_changes_nothing() -> None:
    asm = HelloAssembly(max_fragments=64)
    asm.add(0, b"hello")
    assert asm.add(3, b"LOxx") is Chunk.CONFLICT
    assert bytes(asm.data) == b"hello" and asm.contiguous() == 5
    assert asm.add(3, b"lo!!") is Chunk.STORED
    assert bytes(asm.data) == b"hello!!"


def test_repeated_packet_numbers() -> None:
    asm = HelloAssembly(max_fragments=64)
    assert asm.packet(0, b"payload") is PacketCheck.NEW
    assert asm.packet(0, b"payload") is PacketCheck.DUPLICATE
    assert asm.packet(0, b"another") is PacketCheck.CONFLICT
    assert asm.packet(1, b"another") is PacketCheck.NEW


def test_fragments_are_capped() -> None:
    asm = HelloAssembly(max_fragments=3)
    assert [asm.add(i * 2, b"x") for i in range(4)] == [Chunk.STORED] * 3 + [Chunk.TOO_FRAGMENTED]
    assert asm.add(100, b"") is Chunk.STORED  # empty frames cost nothing
