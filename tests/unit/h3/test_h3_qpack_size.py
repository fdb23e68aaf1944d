"""The QPACK size bounds (quicreality.h3.qpack) agree with what pylsqpack actually decodes."""

from __future__ import annotations

import random

import pylsqpack
import pytest

from quicreality.h3.qpack import (
    STATIC_LENGTHS,
    FieldSectionSizer,
    QpackSizeError,
    field_section_size,
)


def test_static_lengths_match_the_static_table() -> None:
    for index, (name_len, value_len) in enumerate(STATIC_LENGTHS):
        ref = bytes([0xC0 | index]) if index < 63 else bytes([0xFF, index - 63])
        _dec, [(name, value)] = pylsqpack.Decoder(0, 0).feed_header(0, b"\x00\x00" + ref)
        assert (len(name), len(value)) == (name_len, value_len), index
    assert len(STATIC_LENGTHS) == 99


@pytest.mark.parametrize("seed", range(4))
def test_bounds_contain_the_decoded_size(seed: int) -> None:
    rng = random.Random(seed)
    names = [b":path", b"x-a", b"cookie", b"user-agent", b"x-long-" + b"n" * 50]
    values = [bytes(rng.choice(b"abcdefgh\x00\xff") for _ in range(n)) for n in (0, 3, 30, 200)]
    checked = dynamic = 0
    for capacity in (0, 64, 256, 4096):
        enc, dec = pylsqpack.Encoder(), pylsqpack.Decoder(capacity, 100)
        sizer = FieldSectionSizer(capacity)
        setup = enc.apply_settings(capacity, 100)
        sizer.feed_encoder(setup)
        dec.feed_encoder(setup)
        for stream_id in range(0, 160, 4):
            headers = [
                (rng.choice(names), rng.choice(values) + bytes(rng.randrange(3)))
                for _ in range(rng.randrange(1, 12))
            ]
            encoder_data, block = enc.encode(stream_id, headers)
            cut = rng.randrange(len(encoder_data) + 1)  # instructions split anywhere
            sizer.feed_encoder(encoder_data[:cut])
            sizer.feed_encoder(encoder_data[cut:])
            dec.feed_encoder(encoder_data)
            prefix = sizer.parse_prefix(block)
            dynamic += prefix.required_insert_count > 0
            lo, hi = sizer.bounds(block, prefix, 1 << 40)
            decoder_data, decoded = dec.feed_header(stream_id, block)
            assert lo <= field_section_size(decoded) <= hi
            enc.feed_decoder(decoder_data)
            checked += 1
    assert dynamic > 20 and checked == 160


def test_bounds_stop_early_past_the_limit() -> None:
    sizer = FieldSectionSizer(4096)
    sizer.feed_encoder(
        bytes([0x3F, 0xE1, 0x1F, 0x43]) + b"x-a" + bytes([0x7F, 0xBD, 0x1D]) + b"v" * 3900
    )
    block = bytes([0x02, 0x00]) + b"\x80" * 1_000_000
    lo, _hi = sizer.bounds(block, sizer.parse_prefix(block), 65536)
    assert 65536 < lo < 65536 + 4000  # stopped at the first field past the limit


def test_an_encoder_instruction_larger_than_the_table_is_refused() -> None:
    sizer = FieldSectionSizer(4096)
    sizer.feed_encoder(bytes([0x3F, 0xE1, 0x1F]))
    with pytest.raises(QpackSizeError):
        sizer.feed_encoder(bytes([0x43]) + b"x-a" + bytes([0x7F, 0xFF, 0xFF, 0x7F]) + b"v" * 20000)
