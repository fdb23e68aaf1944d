"""Hostile-peer limits of issue 17 not covered by test_sim_core_security.py, on virtual time:
optimistic ACK of a skipped packet number (RFC 9000 §13.1, §21.4), CRYPTO data buffered in the
Handshake and 1-RTT epochs (RFC 9000 §7.5; the Initial epoch's tests are in
test_sim_core_security.py), out-of-order stream data across many windows, NEW_CONNECTION_ID floods
and retire_prior_to abuse, and PATH_CHALLENGEs from many addresses. DATAGRAM queues:
test_sim_datagram_queues.py."""

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


# ------------------------------------------------------------ the audit of issue 17's other limits
# Streams beyond the windows, CRYPTO in the 1-RTT epoch, NEW_CONNECTION_ID floods and
# retire_prior_to abuse, PATH_CHALLENGEs from many addresses. Each attacks one bound.


def stream_frame(stream_id: int, offset: int, data: bytes) -> bytes:
    """STREAM with OFF and LEN bits (0x0e, RFC 9000 §19.8)."""
    return bytes([0x0E]) + varint(stream_id) + varint(offset) + varint(len(data)) + data


def test_out_of_order_data_at_the_end_of_many_stream_windows_meets_the_connection_window() -> None:
    """Each stream may hold data out of order up to its window (4 MiB); the connection window
    (16 MiB) counts every stream's highest offset (RFC 9000 §4.1), so the 5th stream whose last
    window byte arrives first is FLOW_CONTROL_ERROR, while 4 KB were actually buffered."""
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    window = server.configuration.max_stream_data
    assert (window, server.configuration.max_data) == (4 << 20, 16 << 20)
    for n in range(4):
        frame = stream_frame(4 * n, window - 1000, bytes(1000))
        server.receive_datagram(forge(client, frame), CLIENT_ADDR, pair.now)
        assert close_code(server) is None, n
    assert server._stream_mgr.data_received == 16 << 20
    server.receive_datagram(forge(client, stream_frame(16, window - 1000, bytes(1000))),
                            CLIENT_ADDR, pair.now)
    assert close_code(server) == QuicErrorCode.FLOW_CONTROL_ERROR


def test_one_byte_fragments_with_holes_on_a_stream_are_refused_before_the_window_fills() -> None:
    """Parked 1-byte STREAM frames with holes cost a range each: the range bound (128 + 1 per
    256 B buffered) closes the connection long before the 4 MiB window is used."""
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    pn = 0
    for pn in range(200):
        frames = b"".join(stream_frame(0, 1000 + 2 * (pn * 60 + i), b"x") for i in range(60))
        server.receive_datagram(forge(client, frames), CLIENT_ADDR, pair.now)
        if close_code(server) is not None:
            break
    assert close_code(server) == QuicErrorCode.FLOW_CONTROL_ERROR
    assert pn < 10, f"closed only after {pn * 60} fragments"


def test_one_rtt_crypto_beyond_the_buffer_limit_is_crypto_buffer_exceeded() -> None:
    """The 64 KiB CRYPTO bound holds in the 1-RTT epoch too (where a client has nothing to send)."""
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    server.receive_datagram(forge(client, crypto_frame(MAX_CRYPTO_BUFFER + 10, bytes(100))),
                            CLIENT_ADDR, pair.now)
    assert close_code(server) == QuicErrorCode.CRYPTO_BUFFER_EXCEEDED


def _ncid(seq: int, retire_prior_to: int) -> bytes:
    cid, token = seq.to_bytes(8, "big"), (seq + 7).to_bytes(16, "big")
    return bytes([0x18]) + varint(seq) + varint(retire_prior_to) + bytes([len(cid)]) + cid + token


def test_more_new_connection_ids_than_the_active_limit_is_connection_id_limit_error() -> None:
    """RFC 9000 §5.1.1: at most active_connection_id_limit (4) IDs are active; the client
    announced 3 spares; one more is fine, the next is CONNECTION_ID_LIMIT_ERROR."""
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    assert len(server._peer_cids.available) + 1 == server.configuration.active_connection_id_limit
    server.receive_datagram(forge(client, _ncid(20, 0)), CLIENT_ADDR, pair.now)
    assert close_code(server) == QuicErrorCode.CONNECTION_ID_LIMIT_ERROR


def test_a_flood_of_one_repeated_new_connection_id_is_harmless() -> None:
    """The same NEW_CONNECTION_ID 2,000 times: a retransmission, not a new ID (RFC 9000 §19.15)."""
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    peer = server._peer_cids
    peer.available.pop()  # room for one (the client announced 3 spares)
    for _ in range(40):
        server.receive_datagram(forge(client, _ncid(20, 0) * 50), CLIENT_ADDR, pair.now)
    assert close_code(server) is None
    assert len(peer.available) + 1 == 4 and not peer.pending_retire


def test_retire_prior_to_far_ahead_retires_only_known_ids_then_old_ids_meet_the_retire_bound() -> None:
    """retire_prior_to = 1,000,000 in one frame owes RETIREs only for the IDs we hold (RFC 9000
    §19.15), not a million. IDs sent afterwards below it must each be retired at once; more owed
    than 4x the active limit is CONNECTION_ID_LIMIT_ERROR (RFC 9000 §5.1.2)."""
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    peer = server._peer_cids
    held = 1 + len(peer.available)
    server.receive_datagram(forge(client, _ncid(1_000_000, 1_000_000)), CLIENT_ADDR, pair.now)
    assert close_code(server) is None
    assert len(peer.pending_retire) == held and peer.current.sequence_number == 1_000_000
    # Old IDs, never acknowledged retirements: each one owes a RETIRE.
    for seq in range(100, 200):
        server.receive_datagram(forge(client, _ncid(seq, 0)), CLIENT_ADDR, pair.now)
        if close_code(server) is not None:
            break
        assert len(peer.pending_retire) <= peer.retire_limit
    assert close_code(server) == QuicErrorCode.CONNECTION_ID_LIMIT_ERROR
    assert seq - 100 + held == peer.retire_limit, seq


def test_path_challenges_from_a_thousand_addresses_get_bounded_answers() -> None:
    """Probing packets (PATH_CHALLENGE only) from 1,000 spoofed addresses: at most 16 answers
    wait (the newest), each within 3x what its address sent (RFC 9000 §8.1, §8.2.2), and the
    path never moves (§9.1)."""
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    sizes = {}
    for i in range(1000):
        addr = (f"198.51.{i // 250}.{i % 250 + 1}", 5000 + i)
        datagram = forge(client, b"\x1a" + i.to_bytes(8, "big"))
        sizes[addr] = len(datagram)
        server.receive_datagram(datagram, addr, pair.now)
        assert len(server._paths.off_path) <= 16
    assert close_code(server) is None
    out = [(d, a) for d, a in server.datagrams_to_send(pair.now) if a != CLIENT_ADDR]
    assert len(out) == 16
    assert {a[1] for _, a in out} == set(range(5984, 6000))  # the 16 newest
    for datagram, addr in out:
        assert len(datagram) <= 3 * sizes[addr], (len(datagram), sizes[addr])
    assert server._path.address == CLIENT_ADDR and server._paths.migrations == 0
    assert len(server._paths._probe_challenges) <= 16


def test_a_flood_of_stop_sending_for_one_stream_is_reported_once() -> None:
    """12,000 STOP_SENDING frames for one open stream were 12,000 events waiting in next_event;
    the stream is reset in answer once and the application hears of it once."""
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    server.receive_datagram(forge(client, stream_frame(0, 0, b"GET")), CLIENT_ADDR, pair.now)
    stop = bytes([0x05]) + varint(0) + varint(7)  # STOP_SENDING stream 0, error 7 (§19.5)
    for _ in range(40):
        server.receive_datagram(forge(client, stop * 300), CLIENT_ADDR, pair.now)
    assert close_code(server) is None
    got = [e for e in iter(server.next_event, None) if isinstance(e, events.StopSendingReceived)]
    assert got == [events.StopSendingReceived(stream_id=0, error_code=7)]
