"""The connection's transition table (RFC 9000 §10): closing only moves forward."""

from __future__ import annotations

from simpair import SimPair

from quicreality.quic.connection import TRANSITIONS, ConnectionState


def test_terminated_is_final_and_closing_never_reopens() -> None:
    assert TRANSITIONS[ConnectionState.TERMINATED] == frozenset()
    for state in (ConnectionState.CLOSING, ConnectionState.DRAINING):
        assert ConnectionState.CONNECTED not in TRANSITIONS[state]
        assert ConnectionState.FIRSTFLIGHT not in TRANSITIONS[state]


def test_close_during_the_handshake_is_not_undone_by_its_completion() -> None:
    """A client that closes while the server's flight is on its way stays closed when it lands."""
    pair = SimPair(seed=5)
    pair.connect()
    pair.run(lambda: pair.server is not None)
    pair.client.close(0x10, reason_phrase="changed my mind")
    seen: list[ConnectionState] = []
    pair.run(lambda: seen.append(pair.client.state) is not None or pair.client.is_terminated,
             max_time=30)
    assert ConnectionState.CONNECTED not in seen
    assert pair.client.is_terminated
