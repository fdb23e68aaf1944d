"""The established pair's snapshot (the ``frames`` target restores one per input)."""

from __future__ import annotations

from quicreality.fuzz.pair import EstablishedPair, connections_unpickle
from quicreality.quic.events import StreamDataReceived


def _exchange(pair: EstablishedPair, payload: bytes) -> list[bytes]:
    pair.client.send_stream_data(0, payload, end_stream=True)
    wire: list[bytes] = []
    for _ in range(4):
        pair.now += 0.01
        for data, _ in pair.client.datagrams_to_send(pair.now):
            wire.append(data)
            pair.deliver("to_server", data)
        for data, _ in pair.server.datagrams_to_send(pair.now):
            wire.append(data)
            pair.deliver("to_client", data)
    return wire


def test_restored_pairs_are_independent_and_identical() -> None:
    original = EstablishedPair(seed=1)
    snapshot = original.snapshot()
    first, second = EstablishedPair.restore(snapshot), EstablishedPair.restore(snapshot)
    assert first.alive and second.alive
    assert first.client is not second.client and first.server is not original.server
    wire = _exchange(first, b"hello")
    events = first.drain_events()
    assert StreamDataReceived(0, b"hello", True) in events
    # The second copy starts where the snapshot was: it has seen nothing of the first's traffic,
    # and given the same traffic it sends the same bytes (its randomness is its own copy).
    assert second.drain_events() == [] and original.drain_events() == []
    again = _exchange(second, b"hello")
    if connections_unpickle():
        assert again == wire
    else:
        # mypyc-compiled: copies are made by a new handshake, whose ECDSA signature takes its
        # nonce from OpenSSL, so the 1-RTT keys differ; the datagrams match in number and size.
        assert [len(d) for d in again] == [len(d) for d in wire] and again != wire
    assert second.drain_events() == events


def test_a_forged_packet_is_accepted_by_a_restored_pair() -> None:
    pair = EstablishedPair.restore(EstablishedPair(seed=2).snapshot())
    # STREAM frame (type 0x0b: OFF=0, LEN=1, FIN=1) on client stream 0: b"fuzz"
    pair.deliver("to_server", pair.forge("to_server", b"\x0b\x00\x04fuzz"))
    assert StreamDataReceived(0, b"fuzz", True) in pair.drain_events()
    assert pair.alive
