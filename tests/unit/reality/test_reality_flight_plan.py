"""The padding planner of a shaped first flight (quicreality.quic.flight_shape), without a
connection: step limits, ACK-only steps, PADDING-only packets and padding to the step's size."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quicreality.quic.flight_shape import (
    MAX_SHAPED_DATAGRAM_SIZE,
    FlightShape,
    FlightShaper,
    ShapedDatagram,
    complete_datagram,
)
from quicreality.wire.buffer import Buffer


@dataclass
class Draft:
    space_id: int
    capacity: int
    header_size: int = 20
    in_flight: bool = False
    buf: Buffer = field(init=False)

    def __post_init__(self) -> None:
        self.buf = Buffer(capacity=self.capacity)


def size(drafts: list[Draft]) -> int:
    return sum(d.header_size + d.buf.tell() + 16 for d in drafts)


def test_padded_steps_are_exact_and_small_ones_a_floor() -> None:
    assert ShapedDatagram(1252, (0, 1)).max_size(1200, 1472) == 1252
    assert ShapedDatagram(1252, (0, 1)).max_size(1200, 1250) == 1250  # the client's limit
    assert ShapedDatagram(1500, (0,)).max_size(1200, None) == MAX_SHAPED_DATAGRAM_SIZE
    assert ShapedDatagram(32, (2,)).max_size(1200, 1472) == 1200  # content is not split


def test_small_initial_steps_carry_only_acks() -> None:
    assert ShapedDatagram(52, (0,), True).acks_only(0)
    assert ShapedDatagram(600, (0, 1)).acks_only(0)  # RFC 9000 §14.1: no CRYPTO under 1200
    assert not ShapedDatagram(1200, (0, 1)).acks_only(0)
    assert not ShapedDatagram(600, (0, 1)).acks_only(1)


def test_missing_spaces_get_padding_only_packets_and_the_last_is_padded() -> None:
    shaper = FlightShaper(FlightShape((ShapedDatagram(1200, (0, 1, 2)),)))
    step = shaper.step()
    assert step is not None
    first = Draft(0, 1200)
    first.buf.push_bytes(b"\x06" * 100)  # stands for a CRYPTO frame
    drafts: list[Any] = [first]
    used = complete_datagram(drafts, size(drafts), step, shaper, lambda s, c: Draft(s, c))
    assert [d.space_id for d in drafts] == [0, 1, 2]
    assert used == size(drafts) == 1200
    assert drafts[1].in_flight and drafts[1].buf.data == bytes(4)  # PADDING only
    assert not any(drafts[2].buf.data)  # the padding went into the last packet


def test_a_space_without_keys_stops_the_shaper() -> None:
    shaper = FlightShaper(FlightShape((ShapedDatagram(1200, (0, 1)), ShapedDatagram(900, (1,)))))
    step = shaper.step()
    assert step is not None
    drafts: list[Any] = [Draft(0, 1200)]
    complete_datagram(drafts, size(drafts), step, shaper, lambda s, c: None)
    assert shaper.step() is None


def test_cursor() -> None:
    shape = FlightShape((ShapedDatagram(52, (0,), True), ShapedDatagram(1200, (0, 1, 2))))
    shaper = FlightShaper(shape)
    assert shaper.step() == shape.datagrams[0]
    shaper.advance(52)
    assert shaper.step() == shape.datagrams[1]
    shaper.advance(1200)
    assert shaper.step() is None and shaper.sent == [52, 1200]
    assert shape.describe() == "52:initial(ack), 1200:initial+handshake+1rtt"
