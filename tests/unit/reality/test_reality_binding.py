"""Security finding 1: REALITY authentication is bound to the TLS handshake, end to end.

The attack (audit e1/e1b): three Initials on the attacker's own DCID, packet number 0 with the
first bytes of its own ClientHello B, packet number 0 again with a captured sealed hello A, then
packet number 1 with the rest of B. The gate used to keep the last bytes (A, which verifies) while
the connection kept the first (B, the attacker's keys), so the attacker completed a handshake.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from reality_helpers import (
    SNI,
    WALL,
    client_configuration,
    first_flight,
    make_gate,
    seeded_rng,
    server_config,
)

from quicreality.quic import events
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.quic.endpoint import Admission, QuicServerEndpoint
from quicreality.reality.auth import Reason
from quicreality.reality.binding import configure_accepted
from quicreality.reality.cert import RealityIdentity
from quicreality.reality.gate import Accept, Forward, Pending, RealityGate
from quicreality.reality.probe import client_initial_crypto, crypto_frame, initial_packet
from quicreality.tls.alerts import AlertDescription
from quicreality.tls.certificates import InsecureVerifier

SERVER = ("203.0.113.1", 443)
ATTACKER = ("198.51.100.66", 5555)
CRYPTO_ERROR = 0x100


def _hello(datagram: bytes, dcid: bytes) -> bytes:
    return b"".join(chunk for _, chunk in sorted(client_initial_crypto(datagram, dcid)))


def _captured() -> tuple[bytes, bytes]:
    """A genuine client's first datagram and its sealed ClientHello A."""
    legit, datagrams = first_flight(client_configuration(seed=7))
    return datagrams[0], _hello(datagrams[0], legit.original_destination_connection_id)


def _attacker() -> tuple[QuicConnection, list[bytes]]:
    """A plain client without the key (its hello B) and its own first datagrams."""
    cfg = QuicConfiguration(is_client=True, rng=seeded_rng(1234), wall_clock=lambda: WALL,
                            server_name=SNI, peer_verifier=InsecureVerifier())
    conn = QuicConnection(configuration=cfg)
    conn.connect(SERVER, 0.0)
    return conn, [d for d, _ in conn.datagrams_to_send(0.0)]


def _splice(attacker: QuicConnection, own: bytes, sealed: bytes) -> list[bytes]:
    dcid, scid = attacker.original_destination_connection_id, attacker.host_cid
    mine = _hello(own, dcid)
    return [
        initial_packet(crypto_frame(0, mine[:2]), dcid=dcid, scid=scid, packet_number=0,
                       pad_to=1200),
        initial_packet(crypto_frame(0, sealed), dcid=dcid, scid=scid, packet_number=0,
                       pad_to=1200),
        initial_packet(crypto_frame(2, mine[2:]), dcid=dcid, scid=scid, packet_number=1,
                       pad_to=1200),
    ]


def _endpoint(gate: Any) -> QuicServerEndpoint:
    rng = seeded_rng(5)
    return QuicServerEndpoint(
        lambda: QuicConfiguration(is_client=False, rng=rng, wall_clock=lambda: WALL),
        rng=rng, gate=gate)


def _handshake(endpoint: QuicServerEndpoint, client: QuicConnection, now: float) -> list[Any]:
    """Exchange datagrams for a while; the server connections' events."""
    seen: list[Any] = []
    for _ in range(40):
        now += 0.01
        for conn in list(endpoint.connections):
            for data, _ in conn.datagrams_to_send(now):
                client.receive_datagram(data, SERVER, now)
            while (e := conn.next_event()) is not None:
                seen.append(e)
        for data, _ in client.datagrams_to_send(now):
            endpoint.receive_datagram(data, ATTACKER, now)
    return seen


def test_active_bypass_with_a_repeated_packet_number_is_refused_end_to_end() -> None:
    _, sealed = _captured()
    attacker, own = _attacker()
    endpoint = _endpoint(make_gate())
    decisions = [endpoint.receive_datagram(d, ATTACKER, 0.0)
                 for d in _splice(attacker, own[0], sealed)]
    assert isinstance(decisions[0].gate, Pending)
    second = decisions[1].gate
    assert isinstance(second, Forward) and second.verdict is not None
    assert second.verdict.reason is Reason.REPEATED_PACKET_NUMBER
    assert isinstance(decisions[2].gate, Forward)
    assert not any(d.new for d in decisions) and not endpoint.connections
    attacker._spaces[0].next_pn = 2
    _handshake(endpoint, attacker, 0.0)
    while (e := attacker.next_event()) is not None:
        assert not isinstance(e, events.HandshakeCompleted)


def test_overlapping_crypto_with_other_bytes_is_refused() -> None:
    """The same splice with distinct packet numbers: the sealed hello overwrites the attacker's
    first bytes at offset 0 (last-write-wins used to verify A while the connection kept B)."""
    _, sealed = _captured()
    attacker, own = _attacker()
    dcid, scid = attacker.original_destination_connection_id, attacker.host_cid
    mine = _hello(own[0], dcid)
    gate = make_gate()
    first = initial_packet(crypto_frame(0, mine[:100]), dcid=dcid, scid=scid, packet_number=0,
                           pad_to=1200)
    second = initial_packet(crypto_frame(0, sealed), dcid=dcid, scid=scid, packet_number=1,
                            pad_to=1200)
    assert isinstance(gate.receive_datagram(first, ATTACKER, 0.0), Pending)
    d = gate.receive_datagram(second, ATTACKER, 0.01)
    assert isinstance(d, Forward) and d.verdict is not None
    assert d.verdict.reason is Reason.CRYPTO_CONFLICT


def test_overlapping_retransmission_with_the_same_bytes_is_still_accepted() -> None:
    _, sealed = _captured()
    dcid, scid = bytes(range(8)), bytes(range(8, 16))
    gate = make_gate()
    a = initial_packet(crypto_frame(0, sealed[:200]), dcid=dcid, scid=scid, packet_number=0,
                       pad_to=1200)
    b = initial_packet(crypto_frame(100, sealed[100:]), dcid=dcid, scid=scid, packet_number=1,
                       pad_to=1200)
    assert isinstance(gate.receive_datagram(a, ATTACKER, 0.0), Pending)
    assert isinstance(gate.receive_datagram(b, ATTACKER, 0.01), Accept)


def test_passive_replay_121_s_later_is_refused_end_to_end() -> None:
    """e1b: the genuine client is accepted at t=0; 121 s later (max_time_diff_ms = 0, which used to
    mean "no timestamp check") neither its datagram nor the splice gets a connection."""
    clock = [WALL]
    gate = RealityGate(server_config(max_time_diff_ms=0), RealityIdentity.generate(seeded_rng(99)),
                       wall_clock=lambda: clock[0])
    endpoint = _endpoint(gate)
    datagram, sealed = _captured()
    got = endpoint.receive_datagram(datagram, ("192.0.2.10", 40000), 0.0)
    assert isinstance(got.gate, Accept) and got.new
    clock[0] = WALL + 121
    replay = endpoint.receive_datagram(datagram, ("192.0.2.77", 40001), 121.0).gate
    assert isinstance(replay, Forward) and replay.verdict is not None
    assert replay.verdict.reason is Reason.TIME_SKEW
    attacker, own = _attacker()
    spliced = [endpoint.receive_datagram(d, ATTACKER, 121.0)
               for d in _splice(attacker, own[0], sealed)]
    assert not any(d.new for d in spliced) and len(endpoint.connections) == 1


class _LooseGate:
    """A gate with a reassembly bug: it admits the attacker's datagrams with the configuration
    that the real gate built for the hello it verified (a captured, genuine one)."""

    def __init__(self, verified: Accept, datagrams: list[bytes]) -> None:
        self.verified = verified
        self.datagrams = datagrams

    def receive_datagram(self, data: bytes, addr: Any, now: float) -> Any:
        if data is self.datagrams[0]:
            return Admission(datagrams=tuple(self.datagrams), configure=self.verified.configure)
        return None


def test_connection_refuses_a_hello_other_than_the_one_the_gate_verified() -> None:
    """Even if the gate were fooled, TLS aborts: the processed hello must equal the verified one."""
    datagram, _ = _captured()
    verified = make_gate().receive_datagram(datagram, ("192.0.2.10", 40000), 0.0)
    assert isinstance(verified, Accept)
    attacker, own = _attacker()
    endpoint = _endpoint(_LooseGate(verified, own))
    got = endpoint.receive_datagram(own[0], ATTACKER, 0.0)
    assert got.new and got.connection is not None
    seen = _handshake(endpoint, attacker, 0.0)
    assert not any(isinstance(e, events.HandshakeCompleted) for e in seen)
    closes = [e for e in seen if isinstance(e, events.ConnectionTerminated)]
    assert closes and closes[0].error_code == CRYPTO_ERROR + AlertDescription.illegal_parameter
    client_seen = []
    while (e := attacker.next_event()) is not None:
        client_seen.append(e)
    assert not any(isinstance(e, events.HandshakeCompleted) for e in client_seen)


def test_the_accepted_connection_gets_the_gates_parse_of_exactly_the_verified_hello() -> None:
    """The ACCEPT verdict carries the gate's parse so the connection does not parse the hello
    again; it is handed on only when it is a parse of the very bytes TLS must see."""
    datagram, sealed = _captured()
    accept = make_gate().receive_datagram(datagram, ("192.0.2.10", 40000), 0.0)
    assert isinstance(accept, Accept) and accept.verdict is not None
    parsed = accept.verdict.client_hello
    assert parsed is not None and parsed.raw == sealed and parsed.server_name == SNI
    cfg = QuicConfiguration(is_client=False, rng=seeded_rng(5), wall_clock=lambda: WALL)
    assert accept.configure is not None
    accept.configure(cfg)
    assert cfg.expected_client_hello == sealed and cfg.verified_client_hello is parsed
    # A parse of other bytes is not handed on: TLS then parses the verified bytes itself.
    other = dataclasses.replace(parsed, raw=bytes(len(sealed)))
    verdict = dataclasses.replace(accept.verdict, client_hello=other)
    cfg2 = QuicConfiguration(is_client=False, rng=seeded_rng(5), wall_clock=lambda: WALL)
    configure_accepted(RealityIdentity.generate(seeded_rng(99)), verdict, sealed, 0.0)(cfg2)
    assert cfg2.expected_client_hello == sealed and cfg2.verified_client_hello is None
    # The verdict's parse is not part of its identity or its log line.
    assert verdict == accept.verdict and "client_hello" not in repr(verdict)
