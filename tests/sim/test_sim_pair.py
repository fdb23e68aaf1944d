"""Client/server on virtual time: handshakes and transfers under seeded loss, reorder, duplication."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from simpair import LinkModel, SimPair

from quicreality.quic import events
from quicreality.tls.hkdf import CipherSuite

REQUEST = b"GET please"


class EchoPair(SimPair):
    """The server answers each client stream (once it ends) with ``response_size`` bytes."""

    response_size: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.received: dict[int, bytearray] = {}
        self.finished: set[int] = set()
        self.payload = bytes((i * 7 + 3) & 0xFF for i in range(65536))

    def body(self, n: int) -> bytes:
        reps = n // len(self.payload) + 1
        return (self.payload * reps)[:n]

    def on_server_event(self, event: Any) -> None:
        if isinstance(event, events.StreamDataReceived) and event.end_stream:
            assert self.server is not None
            self.server.send_stream_data(event.stream_id, self.body(self.response_size), True)

    def on_client_event(self, event: Any) -> None:
        if isinstance(event, events.StreamDataReceived):
            self.received.setdefault(event.stream_id, bytearray()).extend(event.data)
            if event.end_stream:
                self.finished.add(event.stream_id)

    def handshaken(self) -> bool:
        return any(isinstance(e, events.HandshakeCompleted) for e in self.client_events) and any(
            isinstance(e, events.HandshakeCompleted) for e in self.server_events
        )

    def request(self, count: int = 1) -> list[int]:
        ids = []
        for _ in range(count):
            sid = self.client.get_next_available_stream_id()
            self.client.send_stream_data(sid, REQUEST, end_stream=True)
            ids.append(sid)
        return ids


def handshake(pair: EchoPair) -> None:
    pair.connect()
    pair.run(pair.handshaken, max_time=30)


def test_handshake_completes_on_clean_link() -> None:
    pair = EchoPair(seed=1)
    handshake(pair)
    assert pair.client.alpn_protocol == "h3"
    assert pair.server is not None and pair.server.alpn_protocol == "h3"
    # One round trip for the handshake on a 20 ms RTT link, plus nothing else.
    assert pair.now < 0.1


@pytest.mark.parametrize("suite", list(CipherSuite))
def test_handshake_with_each_cipher_suite(suite: CipherSuite) -> None:
    pair = EchoPair(seed=2, client_overrides={"cipher_suites": (suite,)})
    handshake(pair)
    done = [e for e in pair.client_events if isinstance(e, events.HandshakeCompleted)]
    assert done[0].cipher_suite == suite


def test_handshake_survives_first_flight_loss() -> None:
    for seed in range(5):
        pair = EchoPair(seed=seed, link=LinkModel(loss=0.3))
        handshake(pair)


def test_transfer_small_response_byte_exact() -> None:
    pair = EchoPair(seed=3)
    pair.response_size = 1000
    handshake(pair)
    (sid,) = pair.request()
    pair.run(lambda: sid in pair.finished)
    assert bytes(pair.received[sid]) == pair.body(1000)


def test_transfer_5mb_under_10_percent_loss_byte_exact() -> None:
    pair = EchoPair(seed=4, link=LinkModel(loss=0.10, reorder=0.05, duplicate=0.02))
    pair.response_size = 5 * 1024 * 1024
    handshake(pair)
    (sid,) = pair.request()
    pair.run(lambda: sid in pair.finished, max_time=600)
    got = bytes(pair.received[sid])
    assert hashlib.sha256(got).digest() == hashlib.sha256(pair.body(pair.response_size)).digest()
    assert pair.dropped["to_client"] > 100  # the loss really happened


def test_transfer_with_reordering_duplication_and_small_mtu() -> None:
    pair = EchoPair(seed=5, link=LinkModel(reorder=0.3, duplicate=0.1, reorder_extra=0.02, mtu=1300))
    pair.response_size = 1_000_000
    handshake(pair)
    (sid,) = pair.request()
    pair.run(lambda: sid in pair.finished, max_time=120)
    assert bytes(pair.received[sid]) == pair.body(pair.response_size)


def test_many_concurrent_streams() -> None:
    pair = EchoPair(seed=6, link=LinkModel(loss=0.02))
    pair.response_size = 10_000
    handshake(pair)
    ids = pair.request(150)
    pair.run(lambda: all(i in pair.finished for i in ids), max_time=120)
    for i in ids:
        assert bytes(pair.received[i]) == pair.body(10_000)


def test_zero_length_response() -> None:
    pair = EchoPair(seed=7)
    pair.response_size = 0
    handshake(pair)
    (sid,) = pair.request()
    pair.run(lambda: sid in pair.finished)
    assert bytes(pair.received.get(sid, b"")) == b""


def test_retry_handshake() -> None:
    pair = EchoPair(seed=8, retry=True)
    pair.response_size = 100
    handshake(pair)
    (sid,) = pair.request()
    pair.run(lambda: sid in pair.finished)
    assert pair.client._received_retry  # noqa: SLF001 - the path under test


def test_close_reaches_peer() -> None:
    pair = EchoPair(seed=9)
    handshake(pair)
    pair.client.close(error_code=0x42, reason_phrase="bye")
    pair.run(lambda: any(isinstance(e, events.ConnectionTerminated) for e in pair.server_events))
    term = [e for e in pair.server_events if isinstance(e, events.ConnectionTerminated)][0]
    assert term.error_code == 0x42 and term.reason_phrase == "bye" and term.by_peer
