"""SIGHUP reload of a REALITY relay server, and restarts inside a chain, over real sockets.

Every test runs real ``server`` and ``relay-client`` processes on loopback
(:mod:`chain_hops`). A reload rewrites the server's TOML file and sends SIGHUP; the server
answers with one ``reloaded ...`` or ``reload refused: ...`` line, which the tests wait for.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from chain_hops import Hop, build_chain, client_of, describe, new_hop, reload
from peers_harness import PeerHarness, Pki, harness_in_tempdir
from relay_chain import HOST, EchoServer, Fwd, HalfCloseServer, sha256_of_stream, wait_for

from quicreality.scenarios.peers.base import free_udp_port

pytestmark = pytest.mark.interop

BIG = 100 * 1000 * 1000  # the Must-show transfer: 100 MB


@pytest.fixture(scope="module")
def harness() -> Iterator[PeerHarness]:
    with harness_in_tempdir("qr-reload-") as h:
        yield h


class Dests:
    def __init__(self) -> None:
        self.echo = EchoServer()
        self.half = HalfCloseServer()
        self.later = EchoServer()  # only a reload puts it on the allow-list

    def close(self) -> None:
        for d in (self.echo, self.half, self.later):
            d.close()


@pytest.fixture(scope="module")
def dests() -> Iterator[Dests]:
    d = Dests()
    try:
        yield d
    finally:
        d.close()


def forwards(d: Dests) -> list[Fwd]:
    return [Fwd("echo", d.echo.port), Fwd("half", d.half.port), Fwd("later", d.later.port)]


def one_hop(harness: PeerHarness, pki: Pki, d: Dests, name: str) -> Hop:
    """A REALITY relay server (echo and half allowed, not ``later``) and its relay client."""
    hop = new_hop(harness, pki, name, forwards(d), [f"{HOST}:{d.echo.port}",
                                                    f"{HOST}:{d.half.port}"])
    hop.start_server()
    hop.start_client()
    return hop


def echo_once(hop: Hop, name: str = "echo", payload: bytes = b"") -> bytes:
    """One short echo through ``hop``'s relay client; returns what came back."""
    payload = payload or secrets.token_bytes(20000)
    with socket.create_connection((HOST, hop.listen[name]), timeout=30) as s:
        s.settimeout(30)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    return got


def accepted(hop: Hop) -> float:
    """The server's accepted REALITY handshakes (the reality metrics have no ``side``)."""
    return hop.metrics("server").get("quicreality_reality_handshakes_accepted_total", 0.0)


def rejected(hop: Hop, reason: str) -> float:
    """The server's flows sent to the fallback target for ``reason``."""
    return hop.metrics("server").get(
        f'quicreality_reality_handshakes_rejected_total{{reason="{reason}"}}', 0.0)


class Transfer(threading.Thread):
    """``size`` seeded bytes to a :class:`HalfCloseServer` through the relay, then its
    ``<length> <sha256>`` answer and reply read back."""

    def __init__(self, port: int, size: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.port, self.size, self.seed = port, size, seed
        self.sent = 0
        self.sha = ""
        self.answer = b""
        self.error: BaseException | None = None
        self.finished_at = 0.0

    def run(self) -> None:
        try:
            next_chunk, h = sha256_of_stream(self.seed, self.size)
            with socket.create_connection((HOST, self.port), timeout=60) as s:
                s.settimeout(120)
                while (chunk := next_chunk()) is not None:
                    s.sendall(chunk)
                    self.sent += len(chunk)
                s.shutdown(socket.SHUT_WR)
                data = b""
                while chunk := s.recv(1 << 16):
                    data += chunk
            self.sha = h.hexdigest()
            self.answer = data
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        self.finished_at = time.monotonic()


def test_adding_a_short_id_during_a_100_mb_transfer(harness: PeerHarness, pki: Pki,
                                                    dests: Dests) -> None:
    hop = one_hop(harness, pki, dests, "add")
    transfer = Transfer(hop.listen["half"], BIG, seed=18)
    transfer.start()
    wait_for(lambda: transfer.sent >= 10 << 20 or not transfer.is_alive(), 60,
             "10 MB of the transfer to be sent")
    new_id = secrets.token_hex(8)
    hop.extra_short_ids = (new_id,)
    line = reload(hop)
    reloaded_at = time.monotonic()
    sent_at_reload = transfer.sent
    assert line.startswith("reloaded ") and "short IDs added" in line, line
    before = accepted(hop)
    newcomer = client_of(hop, "add-new", short_id=new_id)
    newcomer.start_client()  # waits for its handshake: accepted by the new configuration
    connected_at = time.monotonic()
    assert accepted(hop) == before + 1
    payload = secrets.token_bytes(50000)
    assert echo_once(newcomer, payload=payload) == payload
    transfer.join(300)
    assert not transfer.is_alive() and transfer.error is None, (transfer.error, describe([hop]))
    head, _, body = transfer.answer.partition(b"\n")
    assert head == f"{BIG} {transfer.sha}".encode(), (head, describe([hop]))
    assert body == HalfCloseServer.reply
    print(f"\nreload at {sent_at_reload / 1e6:.0f} MB of {BIG / 1e6:.0f} MB; new short ID "
          f"accepted {connected_at - reloaded_at:.2f} s after the reload, transfer finished "
          f"{transfer.finished_at - reloaded_at:.2f} s after it, byte-exact (sha256 {transfer.sha[:16]})")


def test_removing_a_short_id_closes_its_connections_with_a_reason(harness: PeerHarness,
                                                                  pki: Pki, dests: Dests) -> None:
    hop = new_hop(harness, pki, "remove", forwards(dests), [f"{HOST}:{dests.echo.port}"])
    doomed_id = secrets.token_hex(8)
    hop.extra_short_ids = (doomed_id,)
    hop.start_server()
    hop.start_client()
    doomed = client_of(hop, "remove-doomed", short_id=doomed_id)
    doomed.start_client()
    with socket.create_connection((HOST, doomed.listen["echo"]), timeout=30) as s:
        s.settimeout(30)
        s.sendall(b"ping")
        assert s.recv(4) == b"ping"
        hop.extra_short_ids = ()
        line = reload(hop)
        assert "short IDs removed" in line and "1 connection(s) closed" in line, line
        client = doomed.client
        assert client is not None
        wait_for(lambda: "REALITY short ID removed from the configuration" in client.stdout(),
                 20, "the doomed client to hear why it was closed")
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            s.recv(10)  # the relayed socket of the closed connection is reset
            s.sendall(b"x" * 100000)
            s.recv(10)
    lost = [line for line in client.stdout().splitlines() if "connection lost" in line]
    assert lost and "short ID removed" in lost[0], client.stdout()
    # The removed ID is judged by the new configuration from now on: never accepted again.
    time.sleep(3)
    assert client.stdout().count("connected to") == 1, client.stdout()
    # The other client's short ID stayed: its connection is the same one and still relays.
    main = hop.client
    assert main is not None and main.stdout().count("connected to") == 1
    assert echo_once(hop) != b""


def test_new_server_names_and_allow_list_entries_take_effect_at_once(
        harness: PeerHarness, pki: Pki, dests: Dests) -> None:
    hop = one_hop(harness, pki, dests, "names")
    # Not allowed yet: the stream is refused.
    with pytest.raises(ConnectionResetError):
        echo_once(hop, "later")
    # A client with a server name the server does not have yet is turned away (fallback).
    newcomer = client_of(hop, "names-new", server_name="cdn.example.net")
    newcomer.start_client(wait=False)
    wait_for(lambda: rejected(hop, "SNI_NOT_ALLOWED") >= 1, 30,
             "the server to reject the unknown server name")
    client = newcomer.client
    assert client is not None and "connected to" not in client.stdout()
    hop.allow = [*hop.allow, f"{HOST}:{dests.later.port}"]
    hop.extra_server_names = ("cdn.example.net",)
    line = reload(hop)
    assert "server names: cdn.example.net, www.example.com" in line, line
    page = urllib.request.urlopen(f"http://{HOST}:{hop.server_metrics}/", timeout=10).read()
    assert b"cdn.example.net" in page and f"{HOST}:{dests.later.port}".encode() in page
    assert b"1 (refused: 0)" in page  # the status page shows the configuration in force
    payload = secrets.token_bytes(30000)
    assert echo_once(hop, "later", payload) == payload  # the old connection, a new entry
    newcomer.wait_connected(1, timeout=30)  # its next attempt (backoff) is accepted
    assert echo_once(newcomer, payload=payload) == payload


def test_an_invalid_config_is_refused_and_the_old_one_stays(harness: PeerHarness, pki: Pki,
                                                            dests: Dests) -> None:
    hop = one_hop(harness, pki, dests, "invalid")
    good = hop.config_text()
    hop.extra_short_ids = ("not-hex!",)
    line = reload(hop)
    assert line.startswith("reload refused: ") and "short_ids" in line, line
    assert "the old configuration stays in force" in line
    hop.extra_short_ids = ()
    hop.allow = [*hop.allow, f"{HOST}:{dests.later.port}"]
    hop.extra_relay = ("no_such_key = 1",)
    line = reload(hop)
    assert line.startswith("reload refused: ") and "no_such_key" in line, line
    server = hop.server
    assert server is not None
    n = server.stderr().count("reload refused")
    hop.extra_relay = ()
    hop.upstream = hop  # its own key as upstream: a loop visible at load
    line = reload(hop)
    assert line.startswith("reload refused: ") and "own public key" in line, line
    hop.upstream = None
    hop.config_path.write_text("[reality\nbroken")
    os.kill(server.pid, signal.SIGHUP)
    wait_for(lambda: server.stderr().count("reload refused") > n, 20, "a refusal of bad TOML")
    # The old configuration is in force: the old allow-list (no "later"), the old short ID.
    with pytest.raises(ConnectionResetError):
        echo_once(hop, "later")
    again = client_of(hop, "invalid-again")
    again.start_client()
    payload = secrets.token_bytes(10000)
    assert echo_once(again, payload=payload) == payload
    assert "reloaded " not in server.stdout()
    hop.config_path.write_text(good)


def test_restarting_the_middle_hop_of_a_chain(harness: PeerHarness, pki: Pki,
                                              dests: Dests) -> None:
    """client -> hop 1 -> hop 2 -> hop 3 -> echo: hop 2 is stopped and started again on the
    same port; hop 1's pooled upstream connection reconnects with backoff and traffic
    resumes through all three hops."""
    chain = build_chain(harness, pki, 3, [Fwd("echo", dests.echo.port)],
                        [f"{HOST}:{dests.echo.port}"], prefix="mid")
    payload = secrets.token_bytes(200000)
    assert echo_once(chain[0], payload=payload) == payload
    middle = chain[1]
    assert middle.server is not None
    middle.server.stop()
    # While hop 2 is down a new stream fails (reset), it is not silently held.
    with pytest.raises(ConnectionResetError):
        echo_once(chain[0])
    time.sleep(2)  # let hop 1's pool back off a few times
    middle.start_server(port=middle.server_port)
    first = chain[0].server
    assert first is not None

    def reconnected() -> bool:
        return first.stderr().count(f"relay upstream {HOST}:{middle.server_port}: connected") >= 2

    # hop 2 said goodbye (CONNECTION_CLOSE on SIGTERM): hop 1 did not wait for its idle timeout.
    assert "connection lost: server shutting down" in first.stderr(), first.stderr()[-2000:]
    wait_for(reconnected, 15, "hop 1's upstream pool to reconnect to hop 2")
    got = b""
    deadline = time.monotonic() + 30
    while got != payload and time.monotonic() < deadline:
        try:
            got = echo_once(chain[0], payload=payload)
        except ConnectionResetError:
            time.sleep(0.5)
    assert got == payload, describe(chain)
    logs = first.stderr()
    assert f"relay upstream {HOST}:{middle.server_port}: connection lost" in logs, logs[-2000:]
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    # The relay client in front of hop 1 never lost its own connection.
    client = chain[0].client
    assert client is not None and client.stdout().count("connected to") == 1


def test_restarting_the_first_hop_the_relay_client_reconnects(harness: PeerHarness, pki: Pki,
                                                              dests: Dests) -> None:
    hop = new_hop(harness, pki, "restart", [Fwd("echo", dests.echo.port)],
                  [f"{HOST}:{dests.echo.port}"])
    hop.start_server(port=free_udp_port())
    hop.start_client()
    assert hop.server is not None
    hop.server.stop()
    hop.start_server(port=hop.server_port)
    hop.wait_connected(2, timeout=30)
    payload = secrets.token_bytes(50000)
    assert echo_once(hop, payload=payload) == payload
