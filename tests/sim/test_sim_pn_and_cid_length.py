"""The send path's packet-number length (RFC 9000 §17.1, §A.2) and per-connection server CID
lengths routed by one endpoint (RFC 9000 §5.1, §17.3)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from simpair import LinkModel, seeded_rng
from simpair import test_credentials as credentials
from test_sim_pair import EchoPair, handshake

from quicreality.quic import events
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.quic.connection import assembler as assembler_module
from quicreality.quic.connection.assembler import PacketAssembler
from quicreality.quic.endpoint import QuicServerEndpoint
from quicreality.tls.certificates import InsecureVerifier


@pytest.fixture
def pn_choices(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int, int]]]:
    """Every packet-number length the send path chose: ``(packet number, largest acked, length)``."""
    if not str(assembler_module.__file__).endswith(".py"):
        # mypyc-compiled (python -m quicreality.build): native calls bypass a patched method.
        pytest.skip("PacketAssembler is compiled with mypyc; the pure-Python run covers this")
    seen: list[tuple[int, int, int]] = []
    original = PacketAssembler._header

    def recording(self: Any, space_id: int) -> tuple[int, int]:
        size, length = original(self, space_id)
        seen.append((self._spaces[space_id].next_pn,
                     self._recovery.spaces[space_id].largest_acked, length))
        return size, length

    monkeypatch.setattr(PacketAssembler, "_header", recording)
    yield seen


@pytest.mark.parametrize("link", [
    LinkModel(loss=0.05, reorder=0.05, delay=0.03),
    # a deep flight (400 ms RTT, 50 Mbit/s): more than 128 packets unacknowledged, 2-byte fields
    LinkModel(loss=0.01, delay=0.2, rate_bps=50e6, queue_bytes=2_000_000),
], ids=["loss-reorder", "deep-flight"])
def test_packet_numbers_are_the_shortest_that_decode_under_loss(
        pn_choices: list[tuple[int, int, int]], link: LinkModel) -> None:
    """A 3 MB response under loss (and reordering) arrives byte-exact; every packet number field
    covers more than twice the unacknowledged range and is no longer than that needs.

    Until the ACK-only sender's ACK frames were acknowledged (RFC 9000 §13.2.4: a PING about
    once per round trip, connection/assembler.py), the client's largest acknowledged packet
    stood still, and its ACK-only packets alone grew their numbers to 2 bytes on the first link.
    """
    pair = EchoPair(seed=6, link=link)
    pair.response_size = 3 * 1024 * 1024
    handshake(pair)
    (sid,) = pair.request()
    pair.run(lambda: sid in pair.finished, max_time=600)
    got = bytes(pair.received[sid])
    assert hashlib.sha256(got).digest() == hashlib.sha256(pair.body(pair.response_size)).digest()
    for pn, largest, length in pn_choices:
        unacked = pn - largest  # largest is -1 before any ACK: pn + 1
        assert 2 ** (8 * length - 1) > unacked, (pn, largest, length)
        assert length == 1 or 2 ** (8 * (length - 1) - 1) <= unacked, (pn, largest, length)
    lengths = {length for _, _, length in pn_choices}
    assert lengths >= ({1} if link.reorder else {1, 2})  # the deep flight grows its fields


def test_first_packets_have_one_byte_numbers(pn_choices: list[tuple[int, int, int]]) -> None:
    pair = EchoPair(seed=7)
    handshake(pair)
    assert pn_choices and all(length == 1 for _, _, length in pn_choices[:6])


# ------------------------------------------------------------ per-connection CID lengths

SERVER = ("10.0.0.2", 443)


def test_one_endpoint_routes_connections_with_different_cid_lengths() -> None:
    """Three clients; the server's connections use 4-, 18- and 8-byte IDs. Every request and
    response (1-RTT, short headers with no length field) reaches the right connection."""
    lengths = iter([8, 4, 18, 8])  # the first: the sample configuration the endpoint reads
    rng = seeded_rng(40)

    def factory() -> QuicConfiguration:
        return QuicConfiguration(is_client=False, rng=rng, wall_clock=lambda: 1.7e9,
                                 certificate_source=credentials(),
                                 connection_id_length=next(lengths, 8))

    endpoint = QuicServerEndpoint(factory, rng=rng)
    clients = {}
    for i in range(3):
        cfg = QuicConfiguration(is_client=True, server_name="localhost", rng=seeded_rng(50 + i),
                                wall_clock=lambda: 1.7e9, peer_verifier=InsecureVerifier())
        conn = QuicConnection(configuration=cfg)
        conn.connect(SERVER, 0.0)
        clients[(f"10.0.1.{i}", 5000 + i)] = conn
    by_addr: dict[Any, QuicConnection] = {}
    got: dict[Any, bytearray] = {addr: bytearray() for addr in clients}
    asked: set[Any] = set()
    now = 0.0
    for _ in range(400):
        now += 0.005
        for addr, client in clients.items():
            for data, _ in client.datagrams_to_send(now):
                received = endpoint.receive_datagram(data, addr, now)
                if received.connection is not None:
                    by_addr.setdefault(addr, received.connection)
            while (ev := client.next_event()) is not None:
                if isinstance(ev, events.HandshakeCompleted) and addr not in asked:
                    asked.add(addr)
                    client.send_stream_data(0, f"hello from {addr[0]}".encode(), end_stream=True)
                elif isinstance(ev, events.StreamDataReceived):
                    got[addr].extend(ev.data)
        for addr, server in by_addr.items():
            while (ev := server.next_event()) is not None:
                if isinstance(ev, events.StreamDataReceived) and ev.end_stream:
                    server.send_stream_data(ev.stream_id, b"echo " + ev.data, end_stream=True)
            for data, _ in server.datagrams_to_send(now):
                clients[addr].receive_datagram(data, SERVER, now)
            endpoint.refresh(server)
        if all(got[a].startswith(b"echo ") for a in clients):
            break
    assert {a: bytes(g) for a, g in got.items()} == {
        a: f"echo hello from {a[0]}".encode() for a in clients}
    assert sorted(len(c.host_cid) for c in by_addr.values()) == [4, 8, 18]
    assert all(len(cid) == len(c.host_cid) for c in by_addr.values() for cid in c.host_cids)
