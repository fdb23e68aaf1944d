"""Hostile-peer limits of issue 17 not covered by test_sim_core_security.py, on virtual time:
optimistic ACK of a skipped packet number (RFC 9000 §13.1, §21.4)."""

from __future__ import annotations

import itertools

from simpair import CLIENT_ADDR
from test_sim_core_security import close_code, established, forge, varint

from quicreality.quic import events
from quicreality.quic.connection import QuicConnection
from quicreality.quic.connection.pn_skip import SKIP_INTERVAL_MAX, PacketNumberSkipper
from quicreality.quic.errors import QuicErrorCode
from quicreality.wire.rangeset import RangeSet

BODY = 3_000_000  # ~2,500 packets: several skips


def skipped(conn: QuicConnection) -> list[int]:
    skip = conn._spaces[2].skip
    return list(skip.skipped) if skip is not None else []


def test_a_transfer_skips_packet_numbers_and_an_honest_peer_never_acknowledges_them() -> None:
    pair = established()
    assert pair.server is not None
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"GET", end_stream=True)
    pair.run(lambda: any(isinstance(e, events.StreamDataReceived) for e in pair.server_events))
    pair.server.send_stream_data(sid, bytes(BODY), end_stream=True)
    got = 0

    def done() -> bool:
        nonlocal got
        got = sum(len(e.data) for e in pair.client_events if isinstance(e, events.StreamDataReceived))
        return got == BODY

    pair.run(done, max_time=60)
    gaps = skipped(pair.server)
    assert len(gaps) >= 2, gaps
    # The client never received those numbers: no ACK it sent covers them, no error happened.
    received = pair.client._spaces[2].received
    assert all(pn not in received for pn in gaps)
    assert close_code(pair.server) is None and close_code(pair.client) is None


def test_an_optimistic_ack_of_a_skipped_packet_number_is_a_protocol_violation() -> None:
    pair = established()
    assert pair.server is not None
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"GET", end_stream=True)
    pair.run(lambda: any(isinstance(e, events.StreamDataReceived) for e in pair.server_events))
    pair.server.send_stream_data(sid, bytes(BODY), end_stream=True)
    pair.run(lambda: len(skipped(pair.server)) >= 1, max_time=60)  # type: ignore[arg-type]
    # The attacker acknowledges every packet number up to the largest sent, skipped ones included.
    largest = pair.server._spaces[2].next_pn - 1
    ack = bytes([0x02]) + varint(largest) + varint(0) + varint(0) + varint(largest)
    pair.server.receive_datagram(forge(pair.client, ack), CLIENT_ADDR, pair.now)
    assert close_code(pair.server) == QuicErrorCode.PROTOCOL_VIOLATION
    assert pair.server._close_frame is not None
    assert pair.server._close_frame[2] == "ACK of a skipped packet number"


def test_the_skip_schedule_is_bounded_and_depends_on_the_secret() -> None:
    a, b = PacketNumberSkipper(b"k" * 32), PacketNumberSkipper(b"j" * 32)

    def run(s: PacketNumberSkipper) -> list[int]:
        pn = 0
        for _ in range(20_000):
            pn = s.allocate(pn) + 1
        return list(s.skipped)

    sa, sb = run(a), run(b)
    assert sa != sb  # the peer cannot compute the schedule without the secret
    assert all(0 < y - x <= SKIP_INTERVAL_MAX for x, y in itertools.pairwise(sa))
    ranges = RangeSet()
    ranges.add(0, sa[-1])
    assert a.acknowledged_skipped(ranges) == sa[0]
    honest = RangeSet()
    honest.add(sa[-1] + 1, sa[-1] + 50)
    assert a.acknowledged_skipped(honest) is None
