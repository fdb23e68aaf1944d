"""A server connection with a FlightShape sends exactly that first flight, and still completes."""

from __future__ import annotations

from typing import Any

import pytest
from simpair import LinkModel, SimPair

from quicreality.quic import events
from quicreality.quic.flight_shape import FlightShape, FlightShaper, ShapedDatagram
from quicreality.quic.packet import PACKET_TYPE_HANDSHAKE, PACKET_TYPE_INITIAL, pull_quic_header
from quicreality.wire.buffer import Buffer

#: ngtcp2's answer shape (an ACK-only Initial first), and a longer, three-datagram one.
NGTCP2 = FlightShape((ShapedDatagram(51, (0,), True), ShapedDatagram(1200, (0, 1, 2))))
LONG = FlightShape((ShapedDatagram(1200, (0, 1)), ShapedDatagram(1200, (1,)),
                    ShapedDatagram(333, (1, 2))))
_SPACE = {PACKET_TYPE_INITIAL: 0, PACKET_TYPE_HANDSHAKE: 1}


class RecordingPair(SimPair):
    """Keeps every datagram each side put on the link (before loss)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sent: list[tuple[str, bytes]] = []

    def _transmit(self, direction: str, data: bytes, ecn: int = 0) -> None:
        self.sent.append((direction, data))
        super()._transmit(direction, data, ecn)


def spaces(data: bytes) -> tuple[int, ...]:
    out = []
    buf = Buffer(data=data)
    while not buf.eof():
        if not data[buf.tell()] & 0x80:
            out.append(2)
            break
        header = pull_quic_header(buf, host_cid_length=8)
        out.append(_SPACE[header.packet_type])
        buf.seek(header.packet_end)
    return tuple(out)


def handshake(shape: FlightShape | None, loss: float = 0.0, seed: int = 5,
              client_ecn: bool = False) -> RecordingPair:
    """The shapes were recorded with clients that do not mark ECT(0): with ``client_ecn`` the
    server's ACKs carry ECN counts (ACK_ECN, three more varints) and an ACK-only datagram can
    outgrow its size, which the shaper treats as a floor."""
    overrides: dict[str, Any] = {"flight_shape": FlightShaper(shape)} if shape else {}
    pair = RecordingPair(seed=seed, link=LinkModel(loss=loss), server_overrides=overrides,
                         client_overrides={"ecn": client_ecn})
    pair.connect()
    for _ in range(5000):
        done = (any(isinstance(e, events.HandshakeCompleted) for e in pair.client_events)
                and any(isinstance(e, events.HandshakeCompleted) for e in pair.server_events))
        if done or not pair.step():
            break
    assert any(isinstance(e, events.HandshakeCompleted) for e in pair.client_events)
    assert any(isinstance(e, events.HandshakeCompleted) for e in pair.server_events)
    return pair


def first_server_datagrams(pair: RecordingPair, n: int) -> list[tuple[int, tuple[int, ...]]]:
    out = [(len(d), spaces(d)) for side, d in pair.sent if side == "to_client"]
    return out[:n]


def test_unshaped_server_sends_one_coalesced_datagram() -> None:
    pair = handshake(None)
    assert first_server_datagrams(pair, 1) == [(1200, (0, 1))]  # no application: no 1-RTT


@pytest.mark.parametrize("shape", [NGTCP2, LONG], ids=["ngtcp2", "long"])
def test_shaped_first_flight_is_exactly_the_shape(shape: FlightShape) -> None:
    pair = handshake(shape)
    want = [(d.size, d.spaces) for d in shape.datagrams]
    assert first_server_datagrams(pair, len(want)) == want
    shaper = pair.server.configuration.flight_shape  # type: ignore[union-attr]
    assert shaper.sent == [d.size for d in shape.datagrams]


@pytest.mark.parametrize("seed", [40, 44, 45, 47, 50, 54])  # seeds with loss to_client
def test_shaped_flight_survives_loss(seed: int) -> None:
    """20% loss each way: the shaped flight goes out first, then recovery completes the handshake
    (retransmissions are not shaped)."""
    pair = handshake(NGTCP2, loss=0.2, seed=seed)
    server = [(len(d), spaces(d)) for side, d in pair.sent if side == "to_client"]
    assert server[:2] == [(51, (0,)), (1200, (0, 1, 2))]
    assert pair.dropped["to_client"] > 0  # some of what the server sent was lost
