"""Hostile-peer limits of issue 17 not covered by test_sim_core_security.py, on virtual time:
optimistic ACK of a skipped packet number (RFC 9000 §13.1, §21.4) and CRYPTO data buffered in the
Handshake epoch (RFC 9000 §7.5; the Initial epoch's tests are in test_sim_core_security.py)."""

from __future__ import annotations

import itertools

from simpair import CLIENT_ADDR, SimPair
from test_sim_core_security import close_code, established, forge, varint

from quicreality.quic import events
from quicreality.quic.connection import ConnectionState, QuicConnection
from quicreality.quic.connection.pn_skip import SKIP_INTERVAL_MAX, PacketNumberSkipper
from quicreality.quic.connection.tls_driver import MAX_CRYPTO_BUFFER
from quicreality.quic.errors import QuicErrorCode
from quicreality.quic.packet import PACKET_TYPE_HANDSHAKE
from quicreality.quic.packet_builder import seal_packet
from quicreality.reality.probe import crypto_frame
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


# ------------------------------------------------------------ CRYPTO buffered in the Handshake epoch


def handshake_keys_pair() -> SimPair:
    """A pair whose client holds Handshake keys while the server still waits for its Finished."""
    pair = SimPair(seed=75)
    pair.connect()
    pair.run(lambda: pair.server is not None and pair.client._cryptos[1].send.is_valid(), max_time=5)
    assert pair.server is not None and pair.server.state == ConnectionState.FIRSTFLIGHT
    return pair


def handshake_packet(client: QuicConnection, pn: int, payload: bytes) -> bytes:
    return seal_packet(client._cryptos[1], PACKET_TYPE_HANDSHAKE, version=1,
                       dcid=client._peer_cids.current.cid, scid=client.host_cid, token=None,
                       packet_number=1000 + pn, payload=payload)


def test_handshake_crypto_beyond_the_buffer_limit_is_crypto_buffer_exceeded() -> None:
    """CRYPTO data in Handshake packets that ends more than 64 KiB past the delivered offset
    (RFC 9000 §7.5) closes the connection; below the limit it is only buffered."""
    pair = handshake_keys_pair()
    server = pair.server
    assert server is not None
    near = crypto_frame(MAX_CRYPTO_BUFFER - 2000, bytes(1000))  # parked: within the limit
    server.receive_datagram(handshake_packet(pair.client, 0, near), CLIENT_ADDR, pair.now)
    assert close_code(server) is None
    far = crypto_frame(MAX_CRYPTO_BUFFER + 10, bytes(100))
    server.receive_datagram(handshake_packet(pair.client, 1, far), CLIENT_ADDR, pair.now)
    assert close_code(server) == QuicErrorCode.CRYPTO_BUFFER_EXCEEDED


def test_fragmented_handshake_crypto_is_crypto_buffer_exceeded() -> None:
    """Thousands of parked one-byte CRYPTO frames with holes in the Handshake epoch hit the range
    bound long before 64 KiB of memory."""
    pair = handshake_keys_pair()
    server = pair.server
    assert server is not None
    offsets = list(range(30_000, 62_000, 2))
    for pn, i in enumerate(range(0, len(offsets), 170)):
        frames = b"".join(crypto_frame(o, b"p") for o in offsets[i:i + 170])
        server.receive_datagram(handshake_packet(pair.client, pn, frames), CLIENT_ADDR, pair.now)
        if close_code(server) is not None:
            break
    assert close_code(server) == QuicErrorCode.CRYPTO_BUFFER_EXCEEDED
    assert pn < len(offsets) // 170 - 1  # closed before the attacker ran out of frames
