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


def timed_response(pair: EchoPair, size: int, *, max_time: float = 120,
                   max_steps: int = 20_000_000) -> float:
    """Handshake, one request for ``size`` bytes; virtual seconds from the first response byte
    at the client to the last (the runner's wire goodput window), the body checked byte-exact."""
    pair.response_size = size
    handshake(pair)
    (sid,) = pair.request()
    first: list[float] = []

    def done() -> bool:
        if not first and pair.received.get(sid):
            first.append(pair.now)
        return sid in pair.finished

    pair.run(done, max_time=max_time, max_steps=max_steps)
    assert hashlib.sha256(bytes(pair.received[sid])).digest() == \
        hashlib.sha256(pair.body(size)).digest()
    return pair.now - first[0]


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
    assert pair.client._ids.received_retry


def test_close_reaches_peer() -> None:
    pair = EchoPair(seed=9)
    handshake(pair)
    pair.client.close(error_code=0x42, reason_phrase="bye")
    pair.run(lambda: any(isinstance(e, events.ConnectionTerminated) for e in pair.server_events))
    term = next(e for e in pair.server_events if isinstance(e, events.ConnectionTerminated))
    assert term.error_code == 0x42 and term.reason_phrase == "bye" and term.by_peer


def test_key_update_mid_transfer() -> None:
    pair = EchoPair(seed=12, link=LinkModel(loss=0.02))
    pair.response_size = 2_000_000
    handshake(pair)
    pair.run(lambda: pair.client._handshake_confirmed)
    (sid,) = pair.request()
    pair.run(lambda: len(pair.received.get(sid, b"")) > 200_000, max_time=60)
    pair.client.request_key_update(pair.now)
    pair.run(lambda: sid in pair.finished, max_time=120)
    assert bytes(pair.received[sid]) == pair.body(pair.response_size)
    assert pair.server is not None
    # Both directions moved to the next key generation (RFC 9001 §6).
    assert pair.client._cryptos[2].generation == 1
    assert pair.server._cryptos[2].generation == 1


def test_idle_timeout_terminates_both_sides() -> None:
    pair = EchoPair(seed=13, client_overrides={"idle_timeout": 2.0})
    handshake(pair)
    pair.run(lambda: pair.client.is_terminated and pair.server is not None
             and pair.server.is_terminated, max_time=30)
    assert 2.0 <= pair.now < 5.0


def test_datagram_frames_both_ways() -> None:
    pair = EchoPair(seed=14)
    handshake(pair)
    assert pair.server is not None
    pair.client.send_datagram_frame(b"ping-dgram")
    pair.server.send_datagram_frame(b"pong-dgram")
    pair.run(lambda: any(isinstance(e, events.DatagramFrameReceived) for e in pair.server_events)
             and any(isinstance(e, events.DatagramFrameReceived) for e in pair.client_events))
    got_s = [e.data for e in pair.server_events if isinstance(e, events.DatagramFrameReceived)]
    got_c = [e.data for e in pair.client_events if isinstance(e, events.DatagramFrameReceived)]
    assert got_s == [b"ping-dgram"] and got_c == [b"pong-dgram"]


def test_stateless_reset_terminates_the_client() -> None:
    pair = EchoPair(seed=15)
    handshake(pair)
    assert pair.server is not None
    # The server loses all state; the client's next packet gets a stateless reset.
    pair.endpoint.forget(pair.server)
    pair.endpoint.connections.clear()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"x" * 100, end_stream=True)
    pair.run(lambda: pair.client.state.name in ("DRAINING", "TERMINATED"), max_time=10)
    term = [e for e in pair.client_events if isinstance(e, events.ConnectionTerminated)]
    assert term and term[0].reason_phrase == "stateless reset"


def test_stream_reset_and_stop_sending_propagate() -> None:
    pair = EchoPair(seed=16)
    handshake(pair)
    assert pair.server is not None
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"partial")
    pair.run(lambda: any(isinstance(e, events.StreamDataReceived) for e in pair.server_events))
    pair.client.reset_stream(sid, 0x77)
    pair.run(lambda: any(isinstance(e, events.StreamReset) for e in pair.server_events))
    reset = next(e for e in pair.server_events if isinstance(e, events.StreamReset))
    assert (reset.stream_id, reset.error_code) == (sid, 0x77)
    # STOP_SENDING on a second, still open stream; the client answers with RESET_STREAM.
    sid2 = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid2, b"more")
    pair.run(lambda: any(isinstance(e, events.StreamDataReceived) and e.stream_id == sid2
                         for e in pair.server_events))
    pair.server.stop_stream(sid2, 0x55)
    pair.run(lambda: any(isinstance(e, events.StopSendingReceived) for e in pair.client_events))
    stop = next(e for e in pair.client_events if isinstance(e, events.StopSendingReceived))
    assert (stop.stream_id, stop.error_code) == (sid2, 0x55)
    pair.run(lambda: any(isinstance(e, events.StreamReset) and e.stream_id == sid2
                         for e in pair.server_events))


def test_flow_control_windows_are_reopened_for_large_transfers() -> None:
    """A response far larger than the initial connection and stream windows completes."""
    pair = EchoPair(seed=17, client_overrides={"max_data": 100_000, "max_stream_data": 50_000})
    pair.response_size = 3_000_000
    handshake(pair)
    (sid,) = pair.request()
    pair.run(lambda: sid in pair.finished, max_time=120)
    assert bytes(pair.received[sid]) == pair.body(pair.response_size)
