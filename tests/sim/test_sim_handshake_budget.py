"""A plain server keeps at most ``max_handshakes`` handshakes in progress; beyond it, Retry."""

from __future__ import annotations

import pytest
from simpair import SERVER_ADDR, WALL, SimPair, seeded_rng

from quicreality.bench.flood import InitialForge
from quicreality.quic import events
from quicreality.quic.admission import Admit, HandshakeBudget
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.quic.connection.state import ConnectionState
from quicreality.quic.errors import QuicErrorCode
from quicreality.quic.packet import PACKET_TYPE_RETRY, pull_quic_header
from quicreality.reality.probe import client_initial_crypto, initial_datagrams, split
from quicreality.tls.certificates import InsecureVerifier
from quicreality.wire.buffer import Buffer

LIMIT = 8


def flood(pair: SimPair, forge: InitialForge, n: int, t0: float) -> list[tuple[bytes, object]]:
    """``n`` forged Initials from distinct spoofed sources; returns the stateless replies."""
    rng = seeded_rng(404)
    replies: list[tuple[bytes, object]] = []
    for i in range(n):
        addr = (f"10.9.{i // 200}.{i % 200 + 1}", 30000 + i)
        got = pair.endpoint.receive_datagram(forge.forge(rng(8), rng(8)), addr, t0 + i * 1e-4)
        replies.extend(got.replies)
    return replies


def test_a_spoofed_initial_flood_keeps_at_most_max_handshakes_and_a_client_is_served() -> None:
    pair = SimPair(seed=71)
    pair.endpoint.handshakes = HandshakeBudget(LIMIT)
    forge = InitialForge(rng=seeded_rng(403))
    replies = flood(pair, forge, 300, 0.0)
    assert len(pair.endpoint.connections) == LIMIT
    assert pair.endpoint.handshakes.in_progress == LIMIT
    assert pair.endpoint.handshakes.retried == 300 - LIMIT == len(replies)
    for reply, _ in replies:
        header = pull_quic_header(Buffer(data=reply), host_cid_length=8)
        assert header.packet_type == PACKET_TYPE_RETRY and header.token
        assert len(reply) < forge.size  # a Retry never amplifies
    # A genuine client during the flood: Retry, then admitted with its token (one extra round trip).
    pair.connect()
    pair.run(lambda: any(isinstance(e, events.HandshakeCompleted) for e in pair.server_events),
             max_time=5.0)
    assert pair.client._ids.received_retry
    assert pair.endpoint.handshakes.in_progress == LIMIT  # the client's handshake is done
    # More flood while the spoofed handshakes are pending: still bounded.
    flood(pair, forge, 300, pair.now)
    assert pair.endpoint.handshakes.in_progress == LIMIT
    assert len(pair.endpoint.connections) == LIMIT + 1
    # The spoofed handshakes time out (idle timeout 30 s) and the budget is free again.
    pair.run(lambda: pair.endpoint.handshakes.in_progress == 0, max_time=40.0)
    assert len(pair.endpoint.connections) <= 1
    rng = seeded_rng(405)
    got = pair.endpoint.receive_datagram(forge.forge(rng(8), rng(8)), ("10.9.99.1", 5), pair.now)
    assert got.new and not got.replies


class _Conn:
    """Stands in for a connection: the budget reads only its state."""

    def __init__(self) -> None:
        self.state = ConnectionState.FIRSTFLIGHT


def test_validated_handshakes_are_dropped_beyond_twice_the_budget() -> None:
    budget = HandshakeBudget(2)
    conns = [_Conn() for _ in range(4)]
    for conn in conns[:2]:
        budget.started(conn, 0.0)  # type: ignore[arg-type]
    assert budget.judge(validated=False, retry_always=False).action is Admit.RETRY
    assert budget.judge(validated=True, retry_always=False).action is Admit.ADMIT
    for conn in conns[2:]:
        budget.started(conn, 0.0)  # type: ignore[arg-type]
    verdict = budget.judge(validated=True, retry_always=False)
    assert verdict.action is Admit.DROP and "validated cap" in verdict.reason
    assert (budget.retried, budget.dropped) == (1, 1)
    conns[0].state = ConnectionState.CONNECTED
    budget.update(conns[0])  # type: ignore[arg-type]
    assert budget.in_progress == 3
    assert budget.judge(validated=True, retry_always=False).action is Admit.ADMIT
    assert budget.judge(validated=False, retry_always=True).action is Admit.RETRY


def test_max_handshakes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HandshakeBudget(0)


def test_a_slowloris_handshake_is_closed_at_the_handshake_timeout() -> None:
    """Four clients trickle their ClientHello one byte per 0.5 s: each resets the idle timer, so
    only the handshake deadline ends them. It applies while half the budget is in progress, so
    three are closed and the fourth, alone, is left to its idle timer; the budget is then free
    for new clients."""
    pair = SimPair(seed=74)
    budget = pair.endpoint.handshakes = HandshakeBudget(4, handshake_timeout=10.0)
    trickles = []
    for i in range(4):
        client = QuicConnection(configuration=QuicConfiguration(
            is_client=True, rng=seeded_rng(500 + i), wall_clock=lambda: WALL,
            server_name="localhost", peer_verifier=InsecureVerifier()))
        client.connect(SERVER_ADDR, 0.0)
        first = client.datagrams_to_send(0.0)[0][0]
        dcid = pull_quic_header(Buffer(data=first), host_cid_length=8).destination_cid
        hello = b"".join(chunk for _, chunk in sorted(client_initial_crypto(first, dcid)))
        trickles.append((f"10.8.0.{i + 1}", initial_datagrams(
            split(hello, [1] * 60), dcid=dcid, scid=client.host_cid)))
    now = 0.0
    for step in range(60):
        now = step * 0.5
        for host, datagrams in trickles:
            pair.endpoint.receive_datagram(datagrams[step], (host, 4000), now)
        for conn in list(pair.endpoint.connections):
            conn.datagrams_to_send(now)  # the server answers what it can (nothing: no hello yet)
            pair.endpoint.refresh(conn)
        if now <= 10.0:
            assert budget.in_progress == 4  # held by 1-byte trickles
    assert budget.timed_out == 3 and budget.in_progress == 1
    assert sum(c.state == ConnectionState.FIRSTFLIGHT for c in pair.endpoint.connections) == 1
    codes = {c._close_frame[0] for c in pair.endpoint.connections if c._close_frame is not None}
    assert codes <= {QuicErrorCode.CONNECTION_REFUSED}
    rng = seeded_rng(407)
    got = pair.endpoint.receive_datagram(InitialForge(rng=rng).forge(rng(8), rng(8)),
                                         ("10.8.1.1", 5), now)
    assert got.new and not got.replies  # admitted at once: no Retry


def test_a_slow_handshake_below_half_the_budget_has_no_deadline() -> None:
    """One client whose hello takes 15 s to arrive (a lossy path, backed-off probes) completes
    its handshake: with 1 of 4 in progress the server is not under pressure."""
    pair = SimPair(seed=75)
    budget = pair.endpoint.handshakes = HandshakeBudget(4, handshake_timeout=10.0)
    client = QuicConnection(configuration=QuicConfiguration(
        is_client=True, rng=seeded_rng(510), wall_clock=lambda: WALL,
        server_name="localhost", peer_verifier=InsecureVerifier()))
    client.connect(SERVER_ADDR, 0.0)
    first = client.datagrams_to_send(0.0)[0][0]
    dcid = pull_quic_header(Buffer(data=first), host_cid_length=8).destination_cid
    hello = b"".join(chunk for _, chunk in sorted(client_initial_crypto(first, dcid)))
    pieces = initial_datagrams(split(hello, [len(hello) - 1, 1]), dcid=dcid, scid=client.host_cid)
    pair.endpoint.receive_datagram(pieces[0], ("10.8.2.1", 4000), 0.0)
    (conn,) = pair.endpoint.connections
    conn.datagrams_to_send(0.0)
    pair.endpoint.refresh(conn)
    assert budget.in_progress == 1
    pair.endpoint.receive_datagram(pieces[1], ("10.8.2.1", 4000), 15.0)  # the last byte, late
    assert budget.timed_out == 0 and conn._close_frame is None
    out = conn.datagrams_to_send(15.0)
    assert out  # the server's flight: the handshake goes on
