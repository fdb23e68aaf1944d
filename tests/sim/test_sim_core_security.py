"""Regression tests for the QUIC-core findings of the security issue (see docs/security.md).

Each test replays the attack of the audit's reproducer against the sans-IO stack: CRYPTO and
STREAM reassembly bounds (finding 6), CONNECTION_CLOSE in the closing state against the
anti-amplification limit (7), replayed old packet numbers (8), connection-ID floods (10) and the
PATH_RESPONSE queue (11).
"""

from __future__ import annotations

import os
import tracemalloc

import simpair
from simpair import CLIENT_ADDR, WALL, SimPair, seeded_rng

from quicreality.quic import events
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import ConnectionState, QuicConnection
from quicreality.quic.crypto import CryptoPair
from quicreality.quic.endpoint import RETIRED_ROUTES_KEPT, QuicServerEndpoint
from quicreality.quic.errors import QuicErrorCode
from quicreality.quic.packet import PACKET_TYPE_INITIAL, PACKET_TYPE_ONE_RTT
from quicreality.quic.packet_builder import seal_packet
from quicreality.reality.probe import crypto_frame, initial_packet
from quicreality.tls.certificates import InsecureVerifier
from quicreality.wire.buffer import Buffer

VICTIM = ("192.0.2.77", 443)
ATTACKER = ("203.0.113.5", 1111)


def established() -> SimPair:
    pair = SimPair(seed=11)
    pair.connect()
    pair.run(lambda: pair.server is not None and pair.server.state == ConnectionState.CONNECTED
             and pair.client.state == ConnectionState.CONNECTED, max_time=10)
    pair.run(lambda: pair.client._handshake_confirmed, max_time=10)
    assert pair.server is not None
    while pair.server.next_event() is not None:
        pass
    return pair


def forge(client: QuicConnection, payload: bytes, dcid: bytes | None = None) -> bytes:
    """A 1-RTT packet protected with the client's real keys, carrying ``payload``."""
    space = client._spaces[2]
    pn = space.next_pn
    space.next_pn += 1
    if len(payload) < 8:
        payload = payload + bytes(8 - len(payload))
    return seal_packet(client._cryptos[2], PACKET_TYPE_ONE_RTT, version=1,
                       dcid=dcid or client._peer_cids.current.cid,
                       scid=client.host_cid, token=None, packet_number=pn, payload=payload)


def varint(v: int) -> bytes:
    b = Buffer(capacity=8)
    b.push_uint_var(v)
    return b.data


def close_code(conn: QuicConnection) -> int | None:
    frame = conn._close_frame
    return None if frame is None else frame[0]


def plain_endpoint() -> QuicServerEndpoint:
    rng = seeded_rng(3)
    return QuicServerEndpoint(
        lambda: QuicConfiguration(
            is_client=False, rng=rng, wall_clock=lambda: WALL, certificate_source=simpair.test_credentials()),
        rng=rng)


def first_client_initial() -> tuple[QuicConnection, bytes]:
    client = QuicConnection(configuration=QuicConfiguration(
        is_client=True, rng=seeded_rng(1), wall_clock=lambda: WALL, server_name="localhost",
        peer_verifier=InsecureVerifier()))
    client.connect(("10.0.0.2", 443), 0.0)
    return client, client.datagrams_to_send(0.0)[0][0]


# ------------------------------------------------------------ finding 6: CRYPTO reassembly


def test_overlapping_initial_crypto_chunks_hold_at_most_the_crypto_limit() -> None:
    """Unauthenticated Initials, each with a distinct 1100-byte CRYPTO chunk one byte further:
    every chunk was kept (22 MB for 20 000 Initials against a 64 KiB limit)."""
    ep = plain_endpoint()
    dcid, scid = os.urandom(8), os.urandom(8)
    keys = CryptoPair()
    keys.setup_initial(dcid, is_client=True, version=1)
    first = initial_packet(crypto_frame(1, os.urandom(1100)), dcid=dcid, scid=scid,
                           packet_number=0, pad_to=1200, crypto=keys)
    conn = ep.receive_datagram(first, ("203.0.113.9", 4444), 0.0).connection
    assert conn is not None
    datagrams = [initial_packet(crypto_frame(off, os.urandom(1100)), dcid=dcid, scid=scid,
                                packet_number=off, crypto=keys) for off in range(2, 3002)]
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for datagram in datagrams:
            ep.receive_datagram(datagram, ("203.0.113.9", 4444), 0.0)
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 1_000_000, f"{grown} bytes held after 3000 overlapping CRYPTO chunks"
    assert conn.state == ConnectionState.FIRSTFLIGHT  # nothing illegal: just no memory kept


def test_fragmented_initial_crypto_data_is_crypto_buffer_exceeded() -> None:
    """Thousands of parked one-byte CRYPTO frames with holes (which made every later frame cost
    a re-sort of all of them) close the connection with CRYPTO_BUFFER_EXCEEDED (RFC 9000 §7.5)."""
    ep = plain_endpoint()
    dcid, scid = os.urandom(8), os.urandom(8)
    keys = CryptoPair()
    keys.setup_initial(dcid, is_client=True, version=1)
    offsets = list(range(30_000, 62_000, 2))
    conn = None
    for pn, i in enumerate(range(0, len(offsets), 170)):
        frames = b"".join(crypto_frame(o, b"p") for o in offsets[i:i + 170])
        got = ep.receive_datagram(initial_packet(frames, dcid=dcid, scid=scid, packet_number=pn,
                                                 pad_to=1200 if pn == 0 else 0, crypto=keys),
                                  ("203.0.113.9", 4444), 0.0)
        conn = conn or got.connection
        if conn is not None and close_code(conn) is not None:
            break
    assert conn is not None
    assert close_code(conn) == QuicErrorCode.CRYPTO_BUFFER_EXCEEDED


# -------------------------------------------------- finding 7: closing-state amplification


def test_closing_state_sends_at_most_three_times_what_the_address_sent() -> None:
    """A spoofed ClientHello from the victim's address, then Initials that make the server close
    sent from the attacker's own address: every CONNECTION_CLOSE went to the victim, uncounted
    (6060 B for 1200 B the victim 'sent'). RFC 9000 §8.1, §10.2.1."""
    ep = plain_endpoint()
    client, first = first_client_initial()
    conn = ep.receive_datagram(first, VICTIM, 0.0).connection
    assert conn is not None
    to_victim = 0
    for data, addr in conn.datagrams_to_send(0.0):
        assert addr == VICTIM
        to_victim += len(data)
    closes = 0
    now = 0.01
    for pn in range(1, 41):
        # A STREAM frame is not allowed in an Initial: PROTOCOL_VIOLATION, then the closing state.
        trigger = seal_packet(client._cryptos[0], PACKET_TYPE_INITIAL, version=1,
                              dcid=client._ids.initial_dcid, scid=client.host_cid,
                              token=b"", packet_number=pn, payload=b"\x08\x00\x01x" + bytes(4))
        ep.receive_datagram(trigger, ATTACKER, now)
        for data, addr in conn.datagrams_to_send(now):
            assert addr == VICTIM
            to_victim += len(data)
            closes += 1
        now += 0.01
    assert conn.state == ConnectionState.CLOSING
    assert to_victim <= 3 * len(first), f"{to_victim} B to a victim that sent {len(first)} B"
    assert 1 <= closes <= 7  # the first close, then at the 1st, 2nd, 4th, ... packet


def test_closing_state_repeats_close_at_exponentially_spaced_packets() -> None:
    """On a validated path the close is still rate-limited: 1, 2, 4, 8, ... packets received."""
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    server.close(0x100, None, "bye")
    assert len(server.datagrams_to_send(pair.now)) == 1
    replies = 0
    for _ in range(100):
        server.receive_datagram(forge(client, b"\x01"), CLIENT_ADDR, pair.now)  # PING
        replies += len(server.datagrams_to_send(pair.now))
    assert replies == 7  # after packets 1, 2, 4, 8, 16, 32 and 64


# --------------------------------------------------------- finding 8: old packet numbers


def test_a_replayed_packet_older_than_every_tracked_range_is_dropped() -> None:
    """Every other packet lost: 64 ACK ranges cover only the last ~128 packet numbers, and a
    replay of packet 0 was delivered again (a relayed UDP datagram re-sent). RFC 9000 §12.3."""
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    captured = []
    for i in range(140):
        client.send_datagram_frame(b"relay-udp-payload-%d" % i)
        pair.now += 0.001
        datagram = client.datagrams_to_send(pair.now)[0][0]
        captured.append(datagram)
        if i % 2 == 0:
            server.receive_datagram(datagram, CLIENT_ADDR, pair.now)
    got = [e.data for e in iter(server.next_event, None) if isinstance(e, events.DatagramFrameReceived)]
    assert len(got) == 70
    server.receive_datagram(captured[0], CLIENT_ADDR, pair.now)
    server.receive_datagram(captured[70], CLIENT_ADDR, pair.now)
    again = [e for e in iter(server.next_event, None) if isinstance(e, events.DatagramFrameReceived)]
    assert again == []
    # Not too eager: a recent packet that was never received is still accepted.
    server.receive_datagram(captured[139], CLIENT_ADDR, pair.now)
    late = [e.data for e in iter(server.next_event, None) if isinstance(e, events.DatagramFrameReceived)]
    assert late == [b"relay-udp-payload-139"]


# ------------------------------------------------------------- finding 10: connection IDs


def _ncid(seq: int, retire_prior_to: int, cid: bytes, token: bytes) -> bytes:
    return bytes([0x18]) + varint(seq) + varint(retire_prior_to) + bytes([len(cid)]) + cid + token


def test_a_retired_connection_ids_reset_token_no_longer_terminates() -> None:
    """RFC 9000 §10.3.1: tokens of retired connection IDs must not be checked."""
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    old_token, new_token = b"T" * 16, b"N" * 16
    # The client announced 1..3 already: 10 replaces them all and is used, then 11 replaces 10.
    payload = _ncid(10, 10, b"\x11" * 8, old_token) + _ncid(11, 11, b"\x22" * 8, new_token)
    server.receive_datagram(forge(client, payload), CLIENT_ADDR, pair.now)
    assert close_code(server) is None
    server.receive_datagram(b"\x40" + os.urandom(30) + old_token, CLIENT_ADDR, pair.now)
    assert server.state == ConnectionState.CONNECTED
    server.receive_datagram(b"\x40" + os.urandom(30) + new_token, CLIENT_ADDR, pair.now)
    assert server.state == ConnectionState.DRAINING  # the token of the ID in use still works


def test_new_connection_ids_that_retire_each_other_are_connection_id_limit_error() -> None:
    """NEW_CONNECTION_ID frames with a growing Retire Prior To queued a RETIRE for each, without
    bound (11 704 queued from 12 000 frames). RFC 9000 §5.1.2 allows CONNECTION_ID_LIMIT_ERROR."""
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    payload = b"".join(_ncid(seq, seq, seq.to_bytes(8, "big"), seq.to_bytes(16, "big"))
                       for seq in range(10, 50))
    server.receive_datagram(forge(client, payload), CLIENT_ADDR, pair.now)
    assert close_code(server) == QuicErrorCode.CONNECTION_ID_LIMIT_ERROR


def test_retiring_a_connection_id_never_sent_is_a_protocol_violation() -> None:
    """Each RETIRE_CONNECTION_ID made the server issue a replacement at once, and the peer could
    retire that one in the same packet, unseen: tens of thousands of CIDs queued per second
    (RFC 9000 §19.16: retiring a sequence number greater than any sent is PROTOCOL_VIOLATION)."""
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    announced = max(e.sequence_number for e in server._host_cids.entries)
    payload = bytes([0x19]) + varint(1) + bytes([0x19]) + varint(announced + 1)
    server.receive_datagram(forge(client, payload), CLIENT_ADDR, pair.now)
    assert close_code(server) == QuicErrorCode.PROTOCOL_VIOLATION


def test_retired_connection_ids_stop_routing_to_the_connection() -> None:
    """The endpoint's routing table only grew (every CID ever issued kept routing)."""
    pair = established()
    server, client, ep = pair.server, pair.client, pair.endpoint
    assert server is not None
    short = os.urandom(40)
    retired: list[bytes] = []
    to_retire = [1, 2, 3]  # announced in the handshake's flights
    for _ in range(5):
        payload = b"".join(bytes([0x19]) + varint(seq) for seq in to_retire)
        ep.receive_datagram(forge(client, payload), CLIENT_ADDR, pair.now)
        issued = set()
        for event in iter(server.next_event, None):
            if isinstance(event, events.ConnectionIdRetired):
                retired.append(event.connection_id)
            elif isinstance(event, events.ConnectionIdIssued):
                issued.add(event.connection_id)
        to_retire = [e.sequence_number for e in server._host_cids.entries
                     if e.cid in issued]
        pair.now += 0.01
        server.datagrams_to_send(pair.now)  # announces the replacements (lost on the way)
    assert len(retired) >= RETIRED_ROUTES_KEPT + 5
    still = [cid for cid in retired
             if ep.receive_datagram(b"\x40" + cid + short, CLIENT_ADDR, pair.now).connection is server]
    assert len(still) == RETIRED_ROUTES_KEPT, "retired CIDs kept routing without bound"
    recent = retired[-3:]  # the last datagram's: kept for packets sent before the RETIRE
    assert set(recent) <= set(still)
    assert not set(retired[:-RETIRED_ROUTES_KEPT - 2]) & set(still), "the oldest are not dropped first"
    live = server.host_cids
    for cid in live:
        assert ep.receive_datagram(b"\x40" + cid + short, CLIENT_ADDR, pair.now).connection is server
    ep.forget(server)
    for cid in live + recent:
        assert ep.receive_datagram(b"\x40" + cid + short, CLIENT_ADDR, pair.now).connection is None


def test_a_packet_sent_before_its_cids_retirement_is_processed_not_reset() -> None:
    """ngtcp2, migrating to our preferred address, retired the handshake's CID on the new path
    while its last packets on the old path (same CID) were still unread: the endpoint answered them
    with a stateless reset, which ngtcp2 honoured, ending the download early (CI, 2026-12-07)."""
    pair = established()
    server, client, ep = pair.server, pair.client, pair.endpoint
    assert server is not None
    first = client._peer_cids.current.cid
    late = forge(client, bytes([0x01]))  # PING on the old CID, delayed
    nxt = next(e for e in server._host_cids.entries if e.cid != first)
    retire = forge(client, bytes([0x19]) + varint(0), dcid=nxt.cid)
    assert ep.receive_datagram(retire, CLIENT_ADDR, pair.now).connection is server
    assert first not in server.host_cids
    got = ep.receive_datagram(late, CLIENT_ADDR, pair.now)
    assert got.connection is server and got.replies == ()
    assert server._close_frame is None


# ------------------------------------------------------------ finding 11: PATH_RESPONSE


def test_a_path_challenge_flood_queues_a_bounded_number_of_responses() -> None:
    """130 PATH_CHALLENGEs per packet from a peer: every echo was queued (195 000 for 1.75 MB)."""
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    payload = (b"\x1a" + b"12345678") * 130
    for _ in range(40):
        server.receive_datagram(forge(client, payload), CLIENT_ADDR, pair.now)
    sent = 0
    for _ in range(20):
        out = server.datagrams_to_send(pair.now)
        sent += sum(len(d) for d, _ in out)
        pair.now += 0.05
    assert 16 * 9 <= sent < 2 * 1200, f"{sent} B of PATH_RESPONSE answers"
