"""pause_stream_reading / resume_stream_reading: end-to-end backpressure through flow control.

A paused stream's data stays inside the connection, its receive window is not re-opened, so the
peer stops after one window; other streams keep flowing; resuming delivers everything byte-exact.
"""

from __future__ import annotations

from typing import Any

from simpair import SimPair

from quicreality.quic import events

WINDOW = 64_000
SIZE = 1_000_000


class PausePair(SimPair):
    """The server collects stream data; streams in ``paused`` are paused on first sight."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.received: dict[int, bytearray] = {}
        self.finished: set[int] = set()
        self.pause_on_sight: set[int] = set()
        self.handshakes = 0

    def flush(self) -> None:
        """Send what the application just queued (the pair only flushes after a step)."""
        self._flush()

    def on_client_event(self, event: Any) -> None:
        if isinstance(event, events.HandshakeCompleted):
            self.handshakes += 1

    def on_server_event(self, event: Any) -> None:
        if isinstance(event, events.HandshakeCompleted):
            self.handshakes += 1
        if isinstance(event, events.StreamDataReceived):
            self.received.setdefault(event.stream_id, bytearray()).extend(event.data)
            if event.end_stream:
                self.finished.add(event.stream_id)
            if event.stream_id in self.pause_on_sight:
                self.pause_on_sight.discard(event.stream_id)
                assert self.server is not None
                self.server.pause_stream_reading(event.stream_id)


def payload(seed: int) -> bytes:
    return bytes((i * seed + 11) & 0xFF for i in range(SIZE))


def test_paused_stream_is_flow_controlled_and_others_keep_flowing() -> None:
    pair = PausePair(seed=31, server_overrides={"max_stream_data": WINDOW, "max_data": 4 * WINDOW})
    pair.connect()
    pair.run(lambda: pair.handshakes == 2)
    assert pair.server is not None
    slow = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(slow, payload(3), end_stream=True)
    pair.pause_on_sight.add(slow)
    pair.run(lambda: slow in pair.received)
    fast = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(fast, payload(5), end_stream=True)
    pair.run(lambda: fast in pair.finished, max_time=60)
    # The paused stream got at most one window to the application and the sender still holds
    # (almost) everything: it was stopped by stream flow control, not by memory on our side.
    assert len(pair.received[slow]) <= WINDOW
    assert pair.client.stream_send_buffered(slow) >= SIZE - WINDOW
    assert bytes(pair.received[fast]) == payload(5)
    pair.server.resume_stream_reading(slow)
    pair.run(lambda: slow in pair.finished, max_time=120)
    assert bytes(pair.received[slow]) == payload(3)


def test_datagrams_pending_counts_the_queue() -> None:
    pair = PausePair(seed=32)
    pair.connect()
    pair.run(lambda: pair.handshakes == 2)
    for i in range(5):
        pair.client.send_datagram_frame(bytes([i]) * 100)
    assert pair.client.datagrams_pending() == 5
    pair.run(lambda: pair.client.datagrams_pending() == 0)
    pair.run(lambda: sum(isinstance(e, events.DatagramFrameReceived)
                         for e in pair.server_events) == 5)


def test_reset_final_size_counts_only_sent_bytes() -> None:
    """RFC 9000 §4.5: a RESET_STREAM's final size is what was sent (flow-control credit used).

    A stream with far more data queued than the peer's windows allow is reset: the final size
    must not include the unsent bytes, or the peer sees FLOW_CONTROL_ERROR and closes.
    """
    pair = PausePair(seed=33, server_overrides={"max_stream_data": WINDOW, "max_data": 2 * WINDOW})
    pair.connect()
    pair.run(lambda: pair.handshakes == 2)
    assert pair.server is not None
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, payload(7))
    pair.pause_on_sight.add(sid)  # the server stops reading: the client is window-limited
    pair.run(lambda: sid in pair.received)
    assert pair.client.stream_send_buffered(sid) >= SIZE - WINDOW  # most of it was never sent
    pair.client.reset_stream(sid, 0x99)
    pair.run(lambda: any(isinstance(e, events.StreamReset) for e in pair.server_events))
    # The connection survives and still carries data.
    sid2 = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid2, b"still alive", end_stream=True)
    pair.run(lambda: sid2 in pair.finished)
    assert not any(isinstance(e, events.ConnectionTerminated)
                   for e in pair.server_events + pair.client_events)


def test_reset_of_a_paused_stream_returns_its_unread_bytes_to_the_connection_window() -> None:
    """Bytes a paused stream held unread count as consumed once the peer resets it (RFC 9000
    §4.5), and the connection window is re-opened: otherwise they leak until it is exhausted."""
    pair = PausePair(seed=34, server_overrides={"max_stream_data": WINDOW, "max_data": 2 * WINDOW})
    pair.connect()
    pair.run(lambda: pair.handshakes == 2)
    assert pair.server is not None
    held = []
    for seed in (8, 9):
        sid = pair.client.get_next_available_stream_id()
        pair.server.pause_stream_reading(sid)  # before any of it arrives: nothing is read
        pair.client.send_stream_data(sid, payload(seed))
        held.append(sid)
    for uid in range(30):  # ~30 round trips: the client fills both windows
        pair.client.send_ping(uid)
        pair.flush()
        pair.run(lambda uid=uid: any(isinstance(e, events.PingAcknowledged) and e.uid == uid
                                     for e in pair.client_events))
    assert not any(s in pair.received for s in held)
    for sid in held:
        pair.client.reset_stream(sid, 0x98)
    pair.flush()
    pair.run(lambda: sum(isinstance(e, events.StreamReset) for e in pair.server_events) == 2)
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, payload(10)[:300_000], end_stream=True)
    pair.flush()
    pair.run(lambda: sid in pair.finished, max_time=60)
    assert bytes(pair.received[sid]) == payload(10)[:300_000]
