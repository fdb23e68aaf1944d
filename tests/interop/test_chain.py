"""Relay chains over real sockets: relay-client -> hop 1 -> hop 2 -> destination, all REALITY.

Bytes are checked with sha256 both ways, half-close and resets end to end, the last hop's refusal
comes back to the client as the same status, a middle hop that is restarted is reconnected to
with backoff, and a loop between two hops is stopped by the hop limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from chain_hops import Hop, build_chain, describe, new_hop
from peers_harness import PeerHarness, Pki, harness_in_tempdir
from relay_chain import (
    HOST,
    EchoServer,
    Fwd,
    HalfCloseServer,
    UdpEchoServer,
    free_tcp_port,
    sha256_of_stream,
    wait_for,
)

from quicreality.scenarios.peers.base import free_udp_port

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def harness() -> Iterator[PeerHarness]:
    with harness_in_tempdir("qr-chain-") as h:
        yield h


class Dests:
    def __init__(self) -> None:
        self.echo = EchoServer()
        self.half = HalfCloseServer()
        self.udp = UdpEchoServer()
        self.closed_port = free_tcp_port()  # nothing listens there

    def close(self) -> None:
        self.echo.close()
        self.half.close()
        self.udp.close()


@pytest.fixture(scope="module")
def dests() -> Iterator[Dests]:
    d = Dests()
    try:
        yield d
    finally:
        d.close()


@pytest.fixture(scope="module")
def chain(harness: PeerHarness, pki: Pki, dests: Dests) -> list[Hop]:
    forwards = [Fwd("echo", dests.echo.port), Fwd("half", dests.half.port),
                Fwd("closed", dests.closed_port), Fwd("denied", 9),
                Fwd("udp", dests.udp.port, udp=True, tcp=False)]
    allow = [f"{HOST}:{dests.echo.port}", f"{HOST}:{dests.half.port}",
             f"{HOST}:{dests.closed_port}", f"{HOST}:{dests.udp.port}"]
    return build_chain(harness, pki, 2, forwards, allow)


def connect(chain: list[Hop], name: str) -> socket.socket:
    return socket.create_connection((HOST, chain[0].listen[name]), timeout=30)


def test_echo_through_two_hops_is_byte_exact_both_ways(chain: list[Hop]) -> None:
    size = 8 << 20
    next_chunk, sent = sha256_of_stream(7, size)
    got = hashlib.sha256()
    received = [0]
    with connect(chain, "echo") as s:
        def reader() -> None:
            while received[0] < size:
                data = s.recv(1 << 16)
                if not data:
                    return
                got.update(data)
                received[0] += len(data)
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        while (chunk := next_chunk()) is not None:
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        t.join(120)
        assert received[0] == size, describe(chain)
        assert s.recv(1) == b""  # the echo's FIN crossed both hops
    assert got.hexdigest() == sent.hexdigest()
    # Both hops relayed the bytes: the middle hop as a server and as a client of hop 2.
    assert chain[0].metric("server", "quicreality_relay_bytes_total", direction="up") >= size
    assert chain[0].metric("client", "quicreality_relay_bytes_total", direction="up") >= size
    assert chain[1].metric("server", "quicreality_relay_bytes_total", direction="down") >= size


def test_udp_datagrams_cross_both_hops_and_come_back(chain: list[Hop], dests: Dests) -> None:
    """A UDP echo through two hops: every datagram rides DATAGRAM frames on both REALITY
    connections; the replies come back to the sender, intact."""
    n = 300
    sent = {i: secrets.token_bytes(1000) for i in range(n)}
    echoed: dict[int, bytes] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.connect((HOST, chain[0].listen_udp["udp"]))
        for i in range(n):
            s.send(i.to_bytes(4, "big") + sent[i])
            time.sleep(0.002)  # ~4 Mbit/s: no queue overflows anywhere
            with contextlib.suppress(TimeoutError, BlockingIOError):
                while True:
                    s.settimeout(0)
                    reply = s.recv(2048)
                    echoed[int.from_bytes(reply[:4], "big")] = reply[4:]
        s.settimeout(2)
        with contextlib.suppress(TimeoutError):
            while len(echoed) < n:
                reply = s.recv(2048)
                echoed[int.from_bytes(reply[:4], "big")] = reply[4:]
    assert all(echoed[i] == sent[i] for i in echoed)  # nothing corrupted or mixed up
    assert len(echoed) >= 0.95 * n, (len(echoed), describe(chain))
    assert dests.udp.received >= len(echoed)
    for hop in chain:  # each hop's server relayed them up; the middle one also as a client
        assert hop.metric("server", "quicreality_relay_udp_datagrams_total",
                          direction="up") >= len(echoed)
    assert chain[0].metric("client", "quicreality_relay_udp_datagrams_total",
                           direction="down") >= len(echoed)


def test_half_close_crosses_the_chain(chain: list[Hop]) -> None:
    with connect(chain, "half") as s:
        s.sendall(b"question")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\n")
    assert head == f"8 {hashlib.sha256(b'question').hexdigest()}".encode(), data[:100]
    assert body == HalfCloseServer.reply  # sent after our FIN crossed both hops


def test_the_last_hops_refusal_comes_back_with_its_status(chain: list[Hop]) -> None:
    before = chain[0].metric("client", "quicreality_relay_streams_total", outcome="unreachable")
    with connect(chain, "closed") as s:
        s.settimeout(30)
        with pytest.raises(ConnectionResetError):
            s.sendall(b"x")
            s.recv(10)
    wait_for(lambda: chain[0].metric("client", "quicreality_relay_streams_total",
                                     outcome="unreachable") > before, 20,
             "the client to count an UNREACHABLE answer")
    assert chain[0].server is not None and "via 127.0.0.1" in chain[0].server.stdout() + \
        chain[0].server.stderr(), describe(chain)


def test_a_loop_between_two_hops_is_stopped_by_the_hop_limit(harness: PeerHarness, pki: Pki,
                                                              dests: Dests) -> None:
    """Hop A forwards to B and B to A: each forward spends one hop; after 8 the stream is
    refused (HOP_LIMIT) and the refusal travels back to the client."""
    allow = [f"{HOST}:{dests.echo.port}"]
    fwd = [Fwd("echo", dests.echo.port)]
    b = new_hop(harness, pki, "loop-b", fwd, allow)
    a = new_hop(harness, pki, "loop-a", fwd, allow, upstream=b)
    b.server_port = free_udp_port()  # a's file names it before b runs
    a.start_server()
    b.upstream = a
    b.start_server(port=b.server_port)
    a.start_client()
    with socket.create_connection((HOST, a.listen["echo"]), timeout=30) as s:
        s.settimeout(60)
        with pytest.raises(ConnectionResetError):
            s.sendall(b"x")
            s.recv(10)
    wait_for(lambda: a.metric("client", "quicreality_relay_streams_total",
                              outcome="hop_limit") >= 1, 30, "a HOP_LIMIT answer at the client")
