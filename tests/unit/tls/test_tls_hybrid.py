"""X25519MLKEM768 (draft-ietf-tls-ecdhe-mlkem-05): vectors, share checks, server preference, HRR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_tls_handshake import assert_matching_keys, configs, handshake
from tls_helpers import seeded_rng

from quicreality.tls import messages as m
from quicreality.tls.alerts import AlertDescription, TlsAlert
from quicreality.tls.handshake import Epoch
from quicreality.tls.key_exchange import (
    HybridPrivateKey,
    generate_private_key,
    key_exchange,
    public_bytes,
    server_key_exchange,
)
from quicreality.tls.messages import Group

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
MLKEM = json.loads((VECTORS / "mlkem" / "wycheproof_mlkem768.json").read_text())
X25519 = json.loads((VECTORS / "reality" / "primitives.json").read_text())["rfc7748_6_1"]
HYBRID = Group.X25519MLKEM768


def feeder(*chunks: bytes):  # type: ignore[no-untyped-def]
    """An rng that returns ``chunks`` in order (each request must take exactly one)."""
    queue = list(chunks)

    def rng(n: int) -> bytes:
        chunk = queue.pop(0)
        assert len(chunk) == n
        return chunk

    return rng


@pytest.mark.parametrize("vector", MLKEM["mlkem_768_decaps"], ids=lambda v: f"tc{v['tcId']}")
def test_hybrid_share_and_secret_follow_the_published_vectors(vector: dict) -> None:
    """Client share = ML-KEM ek || X25519 public; secret = ML-KEM K || X25519 secret (draft §3-4):
    ML-KEM from Wycheproof (seed -> ek, c -> K), X25519 from RFC 7748 §6.1 (Bob = client)."""
    key = generate_private_key(
        HYBRID, feeder(bytes.fromhex(vector["seed"]), bytes.fromhex(X25519["bob_private"])))
    assert isinstance(key, HybridPrivateKey)
    share = public_bytes(key)
    assert share == bytes.fromhex(vector["ek"]) + bytes.fromhex(X25519["bob_public"])
    assert len(share) == 1216
    server_share = bytes.fromhex(vector["c"]) + bytes.fromhex(X25519["alice_public"])
    secret = key_exchange(key, HYBRID, server_share)
    assert secret == bytes.fromhex(vector["K"]) + bytes.fromhex(X25519["shared"])


def test_hybrid_round_trip_gives_both_sides_the_same_64_byte_secret() -> None:
    client = generate_private_key(HYBRID, seeded_rng(1))
    server_share, server_secret = server_key_exchange(HYBRID, public_bytes(client), seeded_rng(2))
    assert len(server_share) == 1120 and len(server_secret) == 64
    assert key_exchange(client, HYBRID, server_share) == server_secret


@pytest.mark.parametrize("vector", MLKEM["mlkem_768_invalid_encapsulation_keys"],
                         ids=lambda v: f"tc{v['tcId']}")
def test_server_refuses_an_encapsulation_key_failing_the_modulus_check(vector: dict) -> None:
    share = bytes.fromhex(vector["ek"]) + bytes.fromhex(X25519["bob_public"])
    with pytest.raises(TlsAlert) as err:
        server_key_exchange(HYBRID, share, seeded_rng(3))
    assert err.value.description == AlertDescription.illegal_parameter


@pytest.mark.parametrize("size", [0, 32, 1184, 1215, 1217])
def test_server_refuses_a_client_share_of_the_wrong_size(size: int) -> None:
    with pytest.raises(TlsAlert) as err:
        server_key_exchange(HYBRID, bytes(size), seeded_rng(3))
    assert err.value.description == AlertDescription.illegal_parameter


@pytest.mark.parametrize("size", [0, 32, 1088, 1119, 1121])
def test_client_refuses_a_server_share_of_the_wrong_size(size: int) -> None:
    client = generate_private_key(HYBRID, seeded_rng(1))
    with pytest.raises(TlsAlert) as err:
        key_exchange(client, HYBRID, bytes(size))
    assert err.value.description == AlertDescription.illegal_parameter


def test_all_zero_x25519_half_is_refused_on_both_sides() -> None:
    client = generate_private_key(HYBRID, seeded_rng(1))
    with pytest.raises(TlsAlert):  # a small-order X25519 point: all-zero secret (RFC 7748 §6.1)
        server_key_exchange(HYBRID, public_bytes(client)[:1184] + bytes(32), seeded_rng(2))
    share, _ = server_key_exchange(HYBRID, public_bytes(client), seeded_rng(2))
    with pytest.raises(TlsAlert):
        key_exchange(client, HYBRID, share[:1088] + bytes(32))


def _server_hello(pair) -> m.ServerHello:  # type: ignore[no-untyped-def]
    assert pair.client.server_hello is not None
    return pair.client.server_hello


def test_server_selects_x25519mlkem768_when_offered() -> None:
    """Chrome's order: both shares; our server prefers the hybrid (default server config)."""
    cc, sc = configs(client={"groups": (HYBRID, Group.X25519, Group.SECP256R1),
                             "key_share_groups": (HYBRID, Group.X25519)})
    pair = handshake(cc, sc)
    assert pair.client.handshake_complete and pair.server.handshake_complete
    assert_matching_keys(pair)
    sh = _server_hello(pair)
    assert sh.key_share is not None and sh.key_share.group == HYBRID
    assert len(sh.key_share.key_exchange) == 1120
    initial = [d for s, e, d in pair.wire if e == Epoch.INITIAL]
    assert len(initial) == 2  # no HelloRetryRequest


def test_server_prefers_the_hybrid_even_when_the_client_lists_x25519_first() -> None:
    cc, sc = configs(client={"groups": (Group.X25519, HYBRID),
                             "key_share_groups": (Group.X25519, HYBRID)})
    sh = _server_hello(handshake(cc, sc))
    assert sh.key_share is not None and sh.key_share.group == HYBRID


def test_server_without_the_hybrid_preference_selects_x25519() -> None:
    cc, sc = configs(client={"groups": (HYBRID, Group.X25519),
                             "key_share_groups": (HYBRID, Group.X25519)},
                     server={"server_preferred_groups": ()})
    sh = _server_hello(handshake(cc, sc))
    assert sh.key_share is not None and sh.key_share.group == Group.X25519


def test_minimal_client_with_x25519_only_still_gets_x25519() -> None:
    sh = _server_hello(handshake(*configs()))
    assert sh.key_share is not None and sh.key_share.group == Group.X25519


def test_hello_retry_request_asks_for_the_hybrid_share() -> None:
    cc, sc = configs(client={"groups": (Group.SECP256R1, HYBRID),
                             "key_share_groups": (Group.SECP256R1,)},
                     server={"groups": (Group.X25519,)})
    pair = handshake(cc, sc)
    assert pair.client.handshake_complete and pair.server.handshake_complete
    assert_matching_keys(pair)
    initial = [d for s, e, d in pair.wire if e == Epoch.INITIAL]
    hrr = m.pull_server_hello(m.Buffer(data=initial[1]))
    assert hrr.is_hello_retry_request and hrr.selected_group == HYBRID
    ch2 = m.pull_client_hello(m.Buffer(data=initial[2]))
    assert [(e.group, len(e.key_exchange)) for e in ch2.key_share or ()] == [(HYBRID, 1216)]
    sh = _server_hello(pair)
    assert sh.key_share is not None and sh.key_share.group == HYBRID


def test_hello_retry_request_away_from_the_hybrid_to_x25519() -> None:
    cc, sc = configs(client={"groups": (HYBRID, Group.X25519), "key_share_groups": (HYBRID,)},
                     server={"groups": (Group.X25519,), "server_preferred_groups": ()})
    pair = handshake(cc, sc)
    assert pair.client.handshake_complete
    initial = [d for s, e, d in pair.wire if e == Epoch.INITIAL]
    assert m.pull_server_hello(m.Buffer(data=initial[1])).selected_group == Group.X25519
    sh = _server_hello(pair)
    assert sh.key_share is not None and sh.key_share.group == Group.X25519
