"""DATAGRAM frame queues under attack, on virtual time (issue 17; connection/datagrams.py).

Send side: an application (or the relay) that queues DATAGRAMs faster than the path carries them
meets the queue's bound; the oldest frames are dropped, counted and logged, and what the peer
receives is the newest. Receive side: a peer that packs hundreds of empty DATAGRAM frames into
each packet, towards an application that does not drain its events, meets the receive bound.
"""

from __future__ import annotations

import asyncio
import socket
import tracemalloc
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from simpair import LinkModel, SimPair
from test_sim_core_security import close_code, established, forge, varint

from quicreality.aio.driver import Driver
from quicreality.metrics import DatagramMetrics, render
from quicreality.qlog.sink import RecordingSink
from quicreality.quic import events
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import ConnectionState, QuicConnection
from quicreality.quic.errors import LocalProtocolError

FLOOD = 20_000


def connected(**client_overrides: Any) -> SimPair:
    """A pair on a 2 Mbit/s link: the network, not the application, sets the DATAGRAM pace."""
    pair = SimPair(seed=5, link=LinkModel(delay=0.02, rate_bps=2e6),
                   client_overrides=client_overrides)
    pair.connect()
    pair.run(lambda: pair.client._handshake_confirmed and pair.server is not None
             and pair.server.state == ConnectionState.CONNECTED, max_time=10)
    return pair


def received_indices(pair: SimPair) -> list[int]:
    return [int.from_bytes(e.data[:4], "big") for e in pair.server_events
            if isinstance(e, events.DatagramFrameReceived)]


def test_defaults_are_the_documented_ones() -> None:
    cfg = QuicConfiguration()
    assert (cfg.datagram_send_queue_frames, cfg.datagram_send_queue_bytes) == (1024, 1 << 20)
    assert (cfg.datagram_receive_queue_frames, cfg.datagram_receive_queue_bytes) == (1024, 1 << 20)


def test_a_send_flood_is_held_to_the_frame_bound_and_the_newest_frames_arrive() -> None:
    pair = connected(qlog_factory=lambda _cid, _client: RecordingSink())
    client = pair.client
    for i in range(FLOOD):
        client.send_datagram_frame(i.to_bytes(4, "big") + bytes(196))
        assert client.datagrams_pending() <= 1024
    stats = client.datagrams.stats
    print(stats)
    assert stats.send_queue_frames == 1024 and stats.send_queue_bytes == 1024 * 200
    assert stats.queued == FLOOD and stats.dropped_send_queue_full == FLOOD - 1024
    qlog = client._qlog
    assert isinstance(qlog, RecordingSink)
    drops = [r["data"] for r in qlog.named("custom") if r["name"] == "datagram_frame_dropped"]
    # Logged at the 1st, 2nd, 4th ... drop (18,976 drops: 15 lines, the last at 16,384).
    assert [d["total"] for d in drops] == [1 << k for k in range(15)]
    assert drops[-1] == {"reason": "send_queue_full", "length": 200, "total": 16_384}
    server = pair.server
    assert server is not None
    pair.run(lambda: server.datagrams.stats.received >= 1024, max_time=60)
    pair.run(lambda: client.datagrams_pending() == 0 and not server.datagrams.recv_frames,
             max_time=60)
    got = received_indices(pair)
    # Head drop: only the 1,024 newest were left to send; the link lost none of them.
    assert got == list(range(FLOOD - 1024, FLOOD))
    assert client.datagrams.stats.sent == 1024


def test_the_byte_bound_drops_the_oldest_and_a_frame_above_it_is_dropped_alone() -> None:
    pair = connected(datagram_send_queue_bytes=50_000)
    client = pair.client
    for i in range(500):
        client.send_datagram_frame(i.to_bytes(4, "big") + bytes(996))
    stats = client.datagrams.stats
    assert stats.send_queue_frames == 50 and stats.send_queue_bytes == 50_000
    assert stats.dropped_send_queue_full == 450
    pair.client.datagrams.send_max_bytes = 999  # a frame larger than the whole bound
    client.send_datagram_frame(bytes(1000))
    assert client.datagrams.stats.dropped_too_large == 1
    assert client.datagrams_pending() == 50  # the queued frames were not dropped for it
    server = pair.server
    assert server is not None
    pair.run(lambda: server.datagrams.stats.received >= 50 and not server.datagrams.recv_frames,
             max_time=60)
    assert received_indices(pair) == list(range(450, 500))


def test_a_frame_the_peer_does_not_accept_is_still_refused() -> None:
    pair = connected()
    with pytest.raises(LocalProtocolError):
        pair.client.send_datagram_frame(bytes(70_000))
    assert pair.client.datagrams.stats.queued == 0


def empty_datagram_frames(n: int) -> bytes:
    return (bytes([0x31]) + varint(0)) * n  # DATAGRAM with Length 0 (RFC 9221 §4): 2 bytes each


def test_a_receive_flood_of_empty_datagrams_is_held_to_the_frame_bound() -> None:
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    # 40 packets of 500 empty DATAGRAM frames each (1,000 B of frames): 20,000 events if unbounded.
    for _ in range(40):
        server.receive_datagram(forge(client, empty_datagram_frames(500)), pair.client_addr,
                                pair.now)
    assert close_code(server) is None
    stats = server.datagrams.stats
    print(stats)
    assert stats.received == 1024 and stats.receive_queue_frames == 1024
    assert stats.dropped_receive_queue_full == 40 * 500 - 1024
    handed = [e for e in iter(server.next_event, None) if isinstance(e, events.DatagramFrameReceived)]
    assert len(handed) == 1024
    assert server.datagrams.stats.receive_queue_frames == 0
    # Drained: new frames are accepted again.
    server.receive_datagram(forge(client, empty_datagram_frames(10)), pair.client_addr, pair.now)
    assert server.datagrams.stats.receive_queue_frames == 10


def test_the_receive_byte_bound_holds_large_frames() -> None:
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    server.datagrams.recv_max_bytes = 10_000
    frame = bytes([0x31]) + varint(1000) + bytes(1000)
    for _ in range(30):
        server.receive_datagram(forge(client, frame), pair.client_addr, pair.now)
    stats = server.datagrams.stats
    assert stats.receive_queue_frames == 10 and stats.receive_queue_bytes == 10_000
    assert stats.dropped_receive_queue_full == 20


def test_received_datagrams_keep_their_order_among_other_events() -> None:
    """The bound accounts for the shared event queue without reordering it."""
    pair = established()
    server, client = pair.server, pair.client
    assert server is not None
    frames = b"".join(bytes([0x31]) + varint(1) + bytes([i]) for i in range(5))
    server.receive_datagram(forge(client, frames), pair.client_addr, pair.now)
    got: list[int] = []
    for event in iter(server.next_event, None):
        if isinstance(event, events.DatagramFrameReceived):
            got.append(event.data[0])
    assert got == [0, 1, 2, 3, 4]



def test_memory_held_by_a_send_flood_stays_at_the_byte_bound() -> None:
    """20 MB of DATAGRAMs queued at once (20,000 x 1,000 B) hold about the 1 MiB bound, not 20 MB."""
    pair = connected()
    client = pair.client
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(FLOOD):
            client.send_datagram_frame(i.to_bytes(4, "big") + bytes(996))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    stats = client.datagrams.stats
    print(f"held {held} B for {stats.send_queue_frames} frames, {stats.send_queue_bytes} B queued")
    assert stats.send_queue_bytes <= 1 << 20 and stats.send_queue_frames == 1024
    assert held < 2 * (1 << 20), held


def dropped_series(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    """``{(direction, reason): value}`` of the exported counter, parsed from the text format."""
    out = {}
    for family in text_string_to_metric_families(render(registry)):
        for sample in family.samples:
            if sample.name == "quicreality_quic_datagrams_dropped_total":
                out[(sample.labels["direction"], sample.labels["reason"])] = sample.value
    return out


def test_drops_are_exported_as_prometheus_counters_summed_over_connections() -> None:
    registry = CollectorRegistry()
    metrics = DatagramMetrics(registry)
    assert dropped_series(registry) == {("send", "send_queue_full"): 0.0,
                                        ("send", "too_large"): 0.0,
                                        ("receive", "receive_queue_full"): 0.0}
    # Send side: 3,000 frames into a 1,024-frame queue, then one above the byte bound.
    pair = connected()
    client = pair.client
    for i in range(3000):
        client.send_datagram_frame(i.to_bytes(4, "big") + bytes(196))
    client.datagrams.send_max_bytes = 999
    client.send_datagram_frame(bytes(1000))
    client.datagrams.send_max_bytes = 1 << 20
    metrics.observe(client)
    metrics.observe(client)  # nothing new: nothing added twice
    assert dropped_series(registry) == {("send", "send_queue_full"): 3000 - 1024,
                                        ("send", "too_large"): 1.0,
                                        ("receive", "receive_queue_full"): 0.0}
    # Receive side, another connection: 40 packets of 500 empty DATAGRAM frames.
    rpair = established()
    server = rpair.server
    assert server is not None
    for _ in range(40):
        server.receive_datagram(forge(rpair.client, empty_datagram_frames(500)),
                                rpair.client_addr, rpair.now)
    metrics.observe(server)
    got = dropped_series(registry)
    assert got[("receive", "receive_queue_full")] == 40 * 500 - 1024
    assert got[("send", "send_queue_full")] == 3000 - 1024  # the first connection's, kept
    # More drops later on the first connection are added to the same series.
    for i in range(10):
        client.send_datagram_frame(i.to_bytes(4, "big") + bytes(196))
    metrics.observe(client)
    assert dropped_series(registry)[("send", "send_queue_full")] == 3000 - 1024 + 10
    assert client.datagrams.stats.dropped_send_queue_full == 3000 - 1024 + 10


def test_the_asyncio_edge_counts_drops_after_each_send_path_run() -> None:
    """``Driver.transmit`` (every server, client and relay process) feeds the counters."""

    sent: list[bytes] = []

    class Edge(Driver):
        def send(self, datagrams: list[tuple[bytes, Any]], ecn: int | None = None) -> int:
            sent.extend(d for d, _ in datagrams)  # in memory: nothing leaves the process
            return sum(len(d) for d, _ in datagrams)

        def handle_events(self, conn: QuicConnection, now: float) -> None:
            while conn.next_event() is not None:
                pass

    pair = connected()
    client = pair.client
    loop = asyncio.new_event_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        edge = Edge(sock, loop, ecn=False)
        registry = CollectorRegistry()
        edge.datagram_metrics = DatagramMetrics(registry)
        for i in range(2000):
            client.send_datagram_frame(i.to_bytes(4, "big") + bytes(196))
        edge.transmit(client, pair.now)
        edge.close()
    finally:
        sock.close()
        loop.close()
    assert sent  # the send path ran and put queued frames in packets
    assert dropped_series(registry)[("send", "send_queue_full")] == 2000 - 1024
