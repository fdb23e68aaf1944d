"""The relay over real sockets: RAW TCP -> relay-client -> QUIC REALITY -> server -> RAW TCP.

One REALITY chain (server + relay client processes) serves most of the module; destinations are
threads of this process. Byte integrity is checked with sha256, terminations with what the
sockets observe. The plain-TLS path (``--ca``/``--insecure`` instead of REALITY) has its own tests
at the end (echo, refusal, reconnect, wrong CA).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from peers_harness import PeerHarness, Pki, harness_in_tempdir
from relay_chain import (
    HOST,
    SLOW_SINK,
    EchoServer,
    Fwd,
    HalfCloseServer,
    ObserverServer,
    RelayChain,
    ResetServer,
    StallServer,
    UdpEchoServer,
    free_tcp_port,
    make_reality_setup,
    rss_bytes,
    rst_close,
    sha256_of_stream,
    wait_for,
)

from quicreality.scenarios.peers import paths
from quicreality.scenarios.peers.base import Command, free_udp_port
from quicreality.scenarios.peers.process import PeerProcess

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def harness() -> Iterator[PeerHarness]:
    """A harness living as long as the module (processes stopped, dir removed at the end)."""
    with harness_in_tempdir("qr-relay-") as h:
        yield h


class Destinations:
    """The module's destination servers."""

    def __init__(self) -> None:
        self.echo = EchoServer()
        self.half = HalfCloseServer()
        self.observer = ObserverServer()
        self.reset = ResetServer()
        self.not_allowed = ObserverServer()  # must never see a connection
        self.sink_port = free_tcp_port()  # the killable destination process binds it later
        self.stall = StallServer()
        self.udp_echo = UdpEchoServer()
        self.udp_not_allowed = UdpEchoServer()  # must never see a datagram

    def close(self) -> None:
        for s in (self.echo, self.half, self.observer, self.reset, self.not_allowed, self.stall,
                  self.udp_echo, self.udp_not_allowed):
            s.close()


@pytest.fixture(scope="module")
def dests() -> Iterator[Destinations]:
    d = Destinations()
    try:
        yield d
    finally:
        d.close()


@pytest.fixture(scope="module")
def chain(harness: PeerHarness, pki: Pki, dests: Destinations) -> RelayChain:
    forwards = [Fwd("echo", dests.echo.port), Fwd("half", dests.half.port),
                Fwd("observer", dests.observer.port), Fwd("reset", dests.reset.port),
                Fwd("refused", dests.not_allowed.port), Fwd("sink", dests.sink_port),
                Fwd("stall", dests.stall.port),
                Fwd("udp", dests.udp_echo.port, udp=True, tcp=False),
                Fwd("udp_refused", dests.udp_not_allowed.port, udp=True, tcp=False)]
    allow = [f"{HOST}:{p}" for p in (dests.echo.port, dests.half.port, dests.observer.port,
                                      dests.reset.port, dests.sink_port, dests.stall.port,
                                      dests.udp_echo.port)]
    return RelayChain(harness, pki, forwards, allow, reality=make_reality_setup(free_udp_port()),
                      client_args=("--udp-idle-timeout", "3")).start()


# ------------------------------------------------------------------------------ helpers


async def echo_hash(port: int, seed: int, size: int) -> tuple[str, str, int]:
    """Stream ``size`` seeded bytes through the echo forward; (sent sha256, received, count)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    next_chunk, sent = sha256_of_stream(seed, size, chunk=256 * 1024)

    async def pump() -> None:
        while (chunk := next_chunk()) is not None:
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()

    task = asyncio.create_task(pump())
    received = hashlib.sha256()
    count = 0
    while chunk := await reader.read(1 << 20):
        received.update(chunk)
        count += len(chunk)
    await task
    writer.close()
    return sent.hexdigest(), received.hexdigest(), count


def read_all(sock: socket.socket) -> bytes:
    out = bytearray()
    while chunk := sock.recv(1 << 20):
        out += chunk
    return bytes(out)


def expect_reset(sock: socket.socket, timeout: float = 15.0) -> None:
    """Read until the connection ends; it must end with an RST, not a FIN."""
    sock.settimeout(timeout)
    with pytest.raises(ConnectionResetError):
        while sock.recv(65536):
            pass


# -------------------------------------------------------------------------------- tests


def test_echo_100mb_through_one_stream_sha256(chain: RelayChain) -> None:
    size = 100 * 1000 * 1000
    t0 = time.monotonic()
    sent, got, count = asyncio.run(asyncio.wait_for(echo_hash(chain.listen["echo"], 1, size), 150))
    secs = time.monotonic() - t0
    assert count == size, chain.describe()
    assert got == sent
    print(f"100 MB echo through one stream: {secs:.1f} s, "
          f"{2 * size * 8 / secs / 1e6:.0f} Mbit/s both directions together")


def test_200_concurrent_streams_of_1mb_byte_exact(chain: RelayChain) -> None:
    size = 1_000_000

    async def many() -> list[tuple[str, str, int]]:
        return await asyncio.gather(*(echo_hash(chain.listen["echo"], 1000 + i, size)
                                      for i in range(200)))

    results = asyncio.run(asyncio.wait_for(many(), 150))
    bad = [i for i, (sent, got, n) in enumerate(results) if n != size or sent != got]
    assert not bad, f"streams not byte-exact: {bad[:10]}\n{chain.describe()}"
    assert len({sent for sent, _, _ in results}) == 200  # 200 distinct payloads


def test_half_close_client_still_receives_full_reply(chain: RelayChain) -> None:
    payload = os.urandom(3_000_000)
    with socket.create_connection((HOST, chain.listen["half"]), timeout=30) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        reply = read_all(sock)  # ends with a clean FIN (a reset would raise)
    header, _, body = reply.partition(b"\n")
    assert header.decode() == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"
    assert body == HalfCloseServer.reply


def test_client_reset_reaches_the_destination(chain: RelayChain, dests: Destinations) -> None:
    before = len(dests.observer.observations)
    before_resets = chain.metric("server", "quicreality_relay_resets_total")
    sock = socket.create_connection((HOST, chain.listen["observer"]), timeout=10)
    sock.sendall(b"x" * 200_000)
    wait_for(lambda: len(dests.observer.observations) > before
             and dests.observer.observations[-1].bytes >= 200_000, 15, "the destination to read")
    obs = dests.observer.observations[-1]
    rst_close(sock)
    assert obs.done.wait(15), chain.describe()
    assert obs.outcome == "reset", f"destination saw {obs.outcome}, not a reset"
    assert chain.metric("client", "quicreality_relay_resets_total", cause="tcp_reset") >= 1
    wait_for(lambda: chain.metric("server", "quicreality_relay_resets_total") > before_resets, 5,
             "the server to count the reset")


def test_destination_reset_reaches_the_client(chain: RelayChain) -> None:
    with socket.create_connection((HOST, chain.listen["reset"]), timeout=10) as sock:
        sock.sendall(b"y" * ResetServer.limit)
        expect_reset(sock)
    assert chain.metric("server", "quicreality_relay_resets_total", cause="tcp_reset") >= 1


def test_destination_outside_the_allow_list_is_refused(chain: RelayChain,
                                                       dests: Destinations) -> None:
    with socket.create_connection((HOST, chain.listen["refused"]), timeout=10) as sock:
        sock.sendall(b"let me in")
        expect_reset(sock)
    assert dests.not_allowed.accepted == 0, "the server connected to a destination it must refuse"
    assert chain.metric("server", "quicreality_relay_resets_total", cause="refused") >= 1
    assert chain.metric("server", "quicreality_relay_streams_total", outcome="refused") >= 1
    assert chain.metric("client", "quicreality_relay_resets_total", cause="refused") >= 1
    server = chain.server
    assert server is not None
    wait_for(lambda: "refused" in server.stderr(), 5, "the server's log line")
    line = [x for x in server.stderr().splitlines() if "refused" in x][-1]
    assert f"{HOST}:{dests.not_allowed.port}" in line and "allow-list" in line


def _metric_is(chain: RelayChain, side: str, name: str, value: float) -> bool:
    return chain.metric(side, name) == value


def _fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_destination_killed_mid_transfer(chain: RelayChain, dests: Destinations,
                                         harness: PeerHarness) -> None:
    assert chain.server is not None and chain.client is not None
    fds = (_fd_count(chain.server.pid), _fd_count(chain.client.pid))
    sink = harness.start(PeerProcess(
        Command(argv=(str(paths.python()), "-c", SLOW_SINK, str(dests.sink_port))),
        name="slow-sink", log_dir=harness.path("logs")))
    wait_for(lambda: "ready" in sink.stdout() or not sink.running(), 15, "the sink")
    sent = [0]
    error: list[BaseException] = []

    def feed() -> None:
        sock = socket.create_connection((HOST, chain.listen["sink"]), timeout=30)
        try:
            while True:
                sock.sendall(b"z" * 65536)
                sent[0] += 65536
        except OSError as exc:
            error.append(exc)
            # What is left to read must end in an RST too.
            try:
                sock.settimeout(10)
                while sock.recv(65536):
                    pass
            except OSError as exc2:
                error.append(exc2)
        finally:
            sock.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    wait_for(lambda: sent[0] >= 2_000_000, 30, "2 MB towards the sink")

    async def other_stream_during_kill() -> tuple[str, str, int]:
        task = asyncio.create_task(echo_hash(chain.listen["echo"], 7, 20_000_000))
        await asyncio.sleep(0.2)
        os.killpg(sink.pid, signal.SIGKILL)
        return await task

    sent_hash, got_hash, count = asyncio.run(asyncio.wait_for(other_stream_during_kill(), 60))
    feeder.join(30)
    assert not feeder.is_alive(), "the local side never saw the end of the killed destination"
    assert error and isinstance(error[0], (ConnectionResetError, BrokenPipeError)), error
    assert all(isinstance(e, (ConnectionResetError, BrokenPipeError)) for e in error), error
    assert count == 20_000_000 and sent_hash == got_hash, "the other stream was disturbed"
    # Nothing leaks: no stream left open on either side, descriptors back to where they were.
    for side in ("server", "client"):
        wait_for(partial(_metric_is, chain, side, "quicreality_relay_streams_active", 0), 10,
                 f"{side} streams to close")
    wait_for(lambda: _fd_count(chain.server.pid) <= fds[0]  # type: ignore[union-attr]
             and _fd_count(chain.client.pid) <= fds[1], 10,  # type: ignore[union-attr]
             f"descriptors back to {fds}")


def test_backpressure_bounds_memory_when_the_destination_stalls(chain: RelayChain,
                                                               dests: Destinations) -> None:
    """A destination that reads nothing stops the sender after a bounded amount (socket buffers
    plus the relay's windows and water marks), relay memory stays flat; then all of it arrives."""
    import random

    assert chain.server is not None and chain.client is not None
    rss0 = rss_bytes(chain.server.pid), rss_bytes(chain.client.pid)
    rnd = random.Random(99)
    digest = hashlib.sha256()
    sock = socket.create_connection((HOST, chain.listen["stall"]), timeout=10)
    sock.setblocking(False)
    sent = 0
    pending = memoryview(b"")
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 2.0 and sent < 200_000_000:
        if not pending:
            chunk = rnd.randbytes(65536)
            digest.update(chunk)
            pending = memoryview(chunk)
        try:
            n = sock.send(pending)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        pending = pending[n:]
        sent += n
        idle_since = time.monotonic()
    plateau = sent
    growth = rss_bytes(chain.server.pid) - rss0[0], rss_bytes(chain.client.pid) - rss0[1]
    assert plateau < 64_000_000, f"the sender was never stopped ({plateau} bytes accepted)"
    assert max(growth) < 48_000_000, f"relay memory grew by {growth} bytes"
    dests.stall.go.set()
    sock.setblocking(True)
    sock.settimeout(30)
    sock.sendall(pending)
    sent += len(pending)
    for _ in range(160):  # 10 MB more after the stall
        chunk = rnd.randbytes(65536)
        digest.update(chunk)
        sock.sendall(chunk)
        sent += len(chunk)
    sock.shutdown(socket.SHUT_WR)
    wait_for(lambda: bool(dests.stall.digests), 60, "the destination to read everything")
    sock.close()
    assert dests.stall.digests[-1] == (sent, digest.hexdigest())
    print(f"stalled destination: sender stopped after {plateau / 1e6:.1f} MB; relay RSS growth "
          f"server {growth[0] / 1e6:.1f} MB, client {growth[1] / 1e6:.1f} MB")


def test_udp_flows_relay_both_ways_then_expire(chain: RelayChain, dests: Destinations) -> None:
    target = (HOST, chain.listen_udp["udp"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        a.settimeout(5)
        b.settimeout(5)
        sent = {b"a%03d" % i + bytes(i) for i in range(50)}
        for payload in sorted(sent):
            a.sendto(payload, target)
        got: set[bytes] = set()
        while len(got) < len(sent):
            got.add(a.recvfrom(4096)[0])
        assert got == sent
        b.sendto(b"from b", target)
        assert b.recvfrom(4096)[0] == b"from b"
        for side in ("client", "server"):
            assert chain.metric(side, "quicreality_relay_udp_flows_active") == 2
        # Both flows go idle: the client (3 s) and the server (3 s) close them.
        for side in ("client", "server"):
            wait_for(partial(_metric_is, chain, side, "quicreality_relay_udp_flows_active", 0),
                     15, f"{side} UDP flows to expire")
        a.sendto(b"again", target)  # a new flow after expiry
        assert a.recvfrom(4096)[0] == b"again"
    assert dests.udp_echo.received == 52
    assert chain.metric("server", "quicreality_relay_udp_flows_total") >= 3
    expired = sum(chain.metric(side, "quicreality_relay_udp_flows_expired_total")
                  for side in ("client", "server"))
    assert expired >= 2  # whichever end's timer fired first closed each flow


def test_udp_destination_outside_the_allow_list_is_refused(chain: RelayChain,
                                                           dests: Destinations) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"let me in", (HOST, chain.listen_udp["udp_refused"]))
        wait_for(lambda: chain.metric("client", "quicreality_relay_streams_total", kind="udp",
                                      outcome="refused") >= 1, 10, "the refusal")
    assert chain.metric("server", "quicreality_relay_streams_total", kind="udp",
                        outcome="refused") >= 1
    time.sleep(0.2)
    assert dests.udp_not_allowed.received == 0


def test_metrics_count_streams_and_bytes(chain: RelayChain) -> None:
    for side in ("server", "client"):
        assert chain.metric(side, "quicreality_relay_streams_active") == 0
        assert chain.metric(side, "quicreality_relay_streams_total", outcome="ok") >= 200
        up = chain.metric(side, "quicreality_relay_bytes_total", direction="up")
        down = chain.metric(side, "quicreality_relay_bytes_total", direction="down")
        assert up >= 300e6 and down >= 300e6, (side, up, down)


def test_server_log_shows_reality_accepted(chain: RelayChain) -> None:
    assert chain.server is not None and chain.client is not None
    assert "connected to" in chain.client.stdout()
    accepted = sum(v for k, v in chain.metrics("server").items()
                   if k.startswith("quicreality_reality_handshakes_accepted_total"))
    assert accepted >= 1, chain.describe()


def test_reality_client_with_a_wrong_key_gets_no_relay(peer_harness: PeerHarness, pki: Pki) -> None:
    good = make_reality_setup(free_udp_port())
    chain = RelayChain(peer_harness, pki, [Fwd("x", 9)], [f"{HOST}:9"], reality=good)
    chain.start_server()
    wrong = make_reality_setup(free_udp_port())
    argv = [str(paths.python()), "-m", "quicreality", "relay-client", "--server",
            f"{HOST}:{chain.server_port}", f"--reality-public-key={wrong.public_key}",
            "--short-id", good.short_id, "--server-name", good.server_name,
            "--handshake-timeout", "1", "--tcp-listen", f"{HOST}:0", "--forward", f"{HOST}:9"]
    proc = peer_harness.start(PeerProcess(Command(argv=tuple(argv)), name="wrong-key-client",
                                          log_dir=peer_harness.path("logs")))
    wait_for(lambda: "connection lost" in proc.stdout(), 15, "a failed attempt")
    assert "connected to" not in proc.stdout() and proc.running()


def test_plain_tls_chain_echo_and_refusal(peer_harness: PeerHarness, pki: Pki) -> None:
    echo = EchoServer()
    refused = ObserverServer()
    try:
        chain = RelayChain(peer_harness, pki, [Fwd("echo", echo.port), Fwd("no", refused.port)],
                           [f"{HOST}:{echo.port}"]).start()
        sent, got, count = asyncio.run(asyncio.wait_for(
            echo_hash(chain.listen["echo"], 5, 10_000_000), 60))
        assert (count, got) == (10_000_000, sent)
        with socket.create_connection((HOST, chain.listen["no"]), timeout=10) as sock:
            sock.sendall(b"nope")
            expect_reset(sock)
        assert refused.accepted == 0
        # The relay-enabled server still serves HTTP/3 to ordinary clients.
        h3 = peer_harness.start(PeerProcess(Command(argv=(
            str(paths.python()), "-m", "quicreality", "client", "--ca", str(pki.ca),
            "--server-name", "localhost", f"https://127.0.0.1:{chain.server_port}/bytes/100000")),
            name="h3-client", log_dir=peer_harness.path("logs"))).wait(60)
        assert h3.returncode == 0 and "100000 bytes" in h3.stdout, h3.stderr
    finally:
        echo.close()
        refused.close()


def test_reconnects_after_the_server_dies(peer_harness: PeerHarness, pki: Pki) -> None:
    echo = EchoServer()
    try:
        chain = RelayChain(peer_harness, pki, [Fwd("echo", echo.port)], [f"{HOST}:{echo.port}"],
                           client_args=("--idle-timeout", "2")).start()
        assert chain.server is not None
        with socket.create_connection((HOST, chain.listen["echo"]), timeout=10) as sock:
            sock.sendall(b"before")
            assert sock.recv(100) == b"before"
            os.killpg(chain.server.pid, signal.SIGKILL)  # no CONNECTION_CLOSE: idle timeout
            sock.sendall(b"half-written")
            expect_reset(sock, timeout=20)  # never a clean FIN for a stream cut short
        chain.start_server(port=chain.server_port)
        chain.wait_connected(2, timeout=30)
        with socket.create_connection((HOST, chain.listen["echo"]), timeout=10) as sock:
            sock.sendall(b"after")
            sock.shutdown(socket.SHUT_WR)
            assert read_all(sock) == b"after"
        assert chain.client is not None and "connection lost" in chain.client.stdout()
    finally:
        echo.close()


def test_plain_tls_relay_rejects_a_wrong_ca(peer_harness: PeerHarness, pki: Pki,
                                            tmp_path: Path) -> None:
    """The plain-TLS path verifies the server: a foreign CA never gets a connection."""
    from quicreality.scenarios.peers.certs import make_test_cert

    _, _, other_ca = make_test_cert(tmp_path)
    chain = RelayChain(peer_harness, pki, [Fwd("x", 9)], [f"{HOST}:9"])
    chain.start_server()
    argv = [str(paths.python()), "-m", "quicreality", "relay-client", "--server",
            f"{HOST}:{chain.server_port}", "--ca", str(other_ca), "--server-name", "localhost",
            "--handshake-timeout", "1", "--tcp-listen", f"{HOST}:0", "--forward", f"{HOST}:9"]
    proc = peer_harness.start(PeerProcess(Command(argv=tuple(argv)), name="bad-ca-client",
                                          log_dir=peer_harness.path("logs")))
    wait_for(lambda: "connection lost" in proc.stdout(), 15, "a failed handshake")
    assert "connected to" not in proc.stdout()
    assert proc.running()  # it keeps retrying with backoff
