"""The gated endpoint end to end, in memory: our REALITY client against our REALITY server."""

from __future__ import annotations

from reality_helpers import (
    SERVER_PUBLIC,
    RealityPair,
    client_configuration,
    plain_credentials,
    seeded_rng,
    server_config,
)

from quicreality.qlog.sink import RecordingSink
from quicreality.quic import events
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.quic.endpoint import QuicServerEndpoint
from quicreality.reality.auth import Reason
from quicreality.reality.cert import certificate_matches
from quicreality.reality.gate import Accept, Forward
from quicreality.reality.keys import generate_key_pair
from quicreality.reality.seal import REAL_CERTIFICATE_REASON
from quicreality.tls.certificates import InsecureVerifier


def _done(pair: RealityPair) -> bool:
    return any(isinstance(e, events.HandshakeCompleted) for e in pair.seen)


def run(pair: RealityPair) -> list[object]:
    pair.seen = []  # type: ignore[attr-defined]

    def until() -> bool:
        pair.seen.extend(pair.client_events())  # type: ignore[attr-defined]
        return any(isinstance(e, (events.HandshakeCompleted, events.ConnectionTerminated))
                   for e in pair.seen)  # type: ignore[attr-defined]

    pair.run(until)
    return pair.seen  # type: ignore[attr-defined,no-any-return]


def test_reality_client_is_accepted_and_completes_with_the_hmac_certificate() -> None:
    recorded: list[RecordingSink] = []

    def qlog(odcid: bytes, is_client: bool) -> RecordingSink:
        sink = RecordingSink()
        recorded.append(sink)
        return sink

    pair = RealityPair(client_configuration(), server_overrides={"qlog_factory": qlog})
    seen = run(pair)
    done = [e for e in seen if isinstance(e, events.HandshakeCompleted)]
    assert done and done[0].alpn_protocol == "h3", seen
    accepts = [d for d in pair.decisions if isinstance(d, Accept)]
    assert len(accepts) == 1 and accepts[0].verdict is not None
    assert accepts[0].verdict.reason is Reason.ACCEPT
    # The target got exactly the ClientHello datagram(s) (the mirror), nothing after the verdict.
    assert pair.target_got == [accepts[0].mirror]
    # The certificate the client accepted is the HMAC one.
    hook = pair.client_config.peer_verifier
    assert len(hook.verified_chain) == 1
    assert certificate_matches(hook.verified_chain[0], hook.auth_key)
    assert pair.gate.identity.certificate_for(hook.auth_key) == hook.verified_chain[0]
    # qlog: reality:verdict on the accepted connection's trace.
    assert len(recorded) == 1
    customs = recorded[0].named("custom")
    verdicts = [c for c in customs if c["name"] == "reality:verdict"]
    assert verdicts, recorded[0].records[:3]
    assert verdicts[0]["data"]["reason"] == "ACCEPT"
    assert verdicts[0]["data"]["sni"] == "www.example.com"


def test_wrong_key_is_forwarded_and_the_endpoint_answers_nothing() -> None:
    other = generate_key_pair(seeded_rng(3))
    pair = RealityPair(client_configuration(server_public_key=other.public_key))
    run(pair)
    assert not pair.endpoint.connections
    assert pair.server_replies == []
    forwards = [d for d in pair.decisions if isinstance(d, Forward)]
    assert forwards and forwards[0].verdict is not None
    assert forwards[0].verdict.reason is Reason.AEAD_OPEN_FAILED
    # Byte for byte: every client datagram went to the target untouched.
    assert pair.target_got and all(isinstance(d, bytes) for d in pair.target_got)
    assert pair.gate.is_fallback(pair.client_addr)


def test_reality_client_against_a_plain_server_reports_a_real_certificate() -> None:
    """A non-REALITY server (or the fallback target) presents a PKI cert: the client says so."""
    rng = seeded_rng(11)

    def factory() -> QuicConfiguration:
        return QuicConfiguration(is_client=False, rng=rng, wall_clock=lambda: 0.0,
                                 certificate_source=plain_credentials())

    endpoint = QuicServerEndpoint(factory, rng=rng)
    client = QuicConnection(configuration=client_configuration())
    client.connect(("203.0.113.1", 443), 0.0)
    now = 0.0
    terminated = None
    for _ in range(50):
        for data, _ in client.datagrams_to_send(now):
            endpoint.receive_datagram(data, ("192.0.2.1", 5000), now)
        for conn in list(endpoint.connections):
            for data, _ in conn.datagrams_to_send(now):
                client.receive_datagram(data, ("203.0.113.1", 443), now)
        while (e := client.next_event()) is not None:
            if isinstance(e, events.ConnectionTerminated):
                terminated = e
        if terminated:
            break
        now += 0.01
    assert terminated is not None
    assert terminated.reason_phrase == REAL_CERTIFICATE_REASON
    assert terminated.error_code == 0x100 + 42  # CRYPTO_ERROR + bad_certificate


def test_plain_client_through_the_gate_is_forwarded_as_bad_session_id() -> None:
    rng = seeded_rng(8)
    cfg = QuicConfiguration(is_client=True, rng=rng, wall_clock=lambda: 0.0,
                            peer_verifier=InsecureVerifier(), server_name="www.example.com")
    pair = RealityPair(cfg)
    run(pair)
    forwards = [d for d in pair.decisions if isinstance(d, Forward) and d.verdict is not None]
    assert forwards[0].verdict.reason is Reason.BAD_SESSION_ID
    assert not pair.endpoint.connections


def test_server_public_key_matches_config() -> None:
    assert server_config().public_key == SERVER_PUBLIC


def test_replayed_first_flight_from_another_address_goes_through_the_gate() -> None:
    pair = RealityPair(client_configuration())
    run(pair)
    assert len(pair.endpoint.connections) == 1
    first = pair.decisions[0].mirror
    conn = next(iter(pair.endpoint.connections))
    # Same address: it is the connection's own (duplicate) Initial.
    again = pair.endpoint.receive_datagram(first, pair.client_addr, pair.now)
    assert again.connection is conn and again.gate is None
    # Another address: a replay, judged by the gate and sent to the target.
    replay = pair.endpoint.receive_datagram(first, ("198.51.100.9", 4444), pair.now)
    assert replay.connection is None and replay.replies == ()
    assert isinstance(replay.gate, Forward) and replay.gate.verdict is not None
    assert replay.gate.verdict.reason is Reason.REPLAY
