"""When the receive side owes an ACK (connection/spaces.py; RFC 9000 §13.2.1, §13.2.2)."""

from __future__ import annotations

from quicreality.quic.connection.spaces import (
    ACK_DECIMATION_AFTER,
    ACK_DECIMATION_WINDOW,
    PacketSpace,
)


def acks_sent(space: PacketSpace, count: int, *, first_pn: int, gap: float, start: float) -> int:
    """Receive ``count`` in-order ack-eliciting packets ``gap`` seconds apart; count the ACKs."""
    acks = 0
    for i in range(count):
        space.on_packet_received(first_pn + i, True, start + i * gap, 0.025)
        if space.owed.ack:
            space.on_ack_sent()
            acks += 1
    return acks


def test_default_acknowledges_every_second_packet() -> None:
    space = PacketSpace()
    assert acks_sent(space, 400, first_pn=0, gap=0.0001, start=0.0) == 200


def test_decimation_starts_after_100_packets_and_only_for_fast_flows() -> None:
    space = PacketSpace(ack_every=10)
    assert acks_sent(space, ACK_DECIMATION_AFTER, first_pn=0, gap=0.0001, start=0.0) == 50
    # Fast: 10 packets within the 5 ms window -> one ACK per 10.
    assert acks_sent(space, 200, first_pn=100, gap=0.0001, start=1.0) == 20
    # Slow: 6 ms apart -> the second unacknowledged packet is past the window: every second.
    assert ACK_DECIMATION_WINDOW < 0.006
    assert acks_sent(space, 200, first_pn=300, gap=0.006, start=2.0) == 100


def test_out_of_order_packets_are_acknowledged_at_once_even_when_decimating() -> None:
    space = PacketSpace(ack_every=10)
    acks_sent(space, 200, first_pn=0, gap=0.0001, start=0.0)
    space.on_packet_received(205, True, 1.0, 0.025)  # 200-204 missing
    assert space.owed.ack
