"""The REALITY listener's asyncio edge on loopback: early mirror, descriptor limits, timer guard."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "reality"))
from reality_helpers import (
    CLIENT_ADDR,
    WALL,
    client_configuration,
    first_flight,
    make_gate,
    seeded_rng,
    server_config,
)

from quicreality.aio.reality_server import RealityServer
from quicreality.h3.server import H3FileServer
from quicreality.metrics import RealityMetrics
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.endpoint import QuicServerEndpoint
from quicreality.reality import gate as gate_module
from quicreality.reality.config import GateLimits
from quicreality.reality.gate import RealityGate

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def target() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def _server(loop: asyncio.AbstractEventLoop, gate: RealityGate,
            target: socket.socket) -> tuple[RealityServer, RealityMetrics]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.setblocking(False)
    rng = seeded_rng(5)
    endpoint = QuicServerEndpoint(
        lambda: QuicConfiguration(is_client=False, rng=rng, wall_clock=lambda: WALL),
        rng=rng, gate=gate)
    metrics = RealityMetrics(CollectorRegistry())
    server = RealityServer(listener, endpoint, H3FileServer(None), gate,
                           target=(socket.AF_INET, target.getsockname()), metrics=metrics,
                           loop=loop)
    return server, metrics


def test_the_completing_datagram_reaches_the_target_before_verification(
    target: socket.socket, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Security finding 12 (audit e5): the edge used to mirror only after verify_client_hello."""
    seen_at_verify: list[bytes] = []
    real_verify = gate_module.verify_client_hello

    def spy(*args: Any) -> Any:
        try:
            seen_at_verify.append(target.recv(65536))
        except BlockingIOError:
            seen_at_verify.append(b"")
        return real_verify(*args)

    monkeypatch.setattr(gate_module, "verify_client_hello", spy)

    async def main() -> None:
        server, _ = _server(asyncio.get_running_loop(), make_gate(), target)
        try:
            _, datagrams = first_flight(client_configuration())
            server.datagram_received(datagrams[0], CLIENT_ADDR, server.now())
        finally:
            server.close()

    asyncio.run(main())
    _, datagrams = first_flight(client_configuration())
    assert seen_at_verify == [datagrams[0]]


def test_a_target_socket_that_cannot_be_opened_is_counted(target: socket.socket) -> None:
    """Security finding 12 (audit e9): out of descriptors, flows used to be dropped silently."""

    async def main() -> float:
        server, metrics = _server(asyncio.get_running_loop(), make_gate(), target)
        try:
            def no_descriptors(addr: Any) -> None:
                raise OSError(24, "Too many open files")

            server.relay.open = no_descriptors  # type: ignore[method-assign]
            for port in range(3):
                server.datagram_received(b"junk", ("192.0.2.7", 1000 + port), server.now())
            return metrics.fallback_socket_failures._value.get()
        finally:
            server.close()

    assert asyncio.run(main()) == 3


def test_a_failing_gate_timer_is_logged_and_the_timer_keeps_running(
    target: socket.socket, caplog: pytest.LogCaptureFixture,
) -> None:
    """Security finding 12: an exception in the gate timer used to escape the callback, and the
    timer was never armed again (pending flows would stay pending, relays never expire)."""
    gate = make_gate(server_config(limits=GateLimits(fallback_idle_timeout=0.02)))
    calls: list[float] = []

    class FlakyTimer:
        """The gate as the server sees it, whose first ``handle_timer`` raises. (A wrapper, not
        an assignment to ``gate.handle_timer``: the compiled RealityGate's methods are read-only.)"""

        def __getattr__(self, name: str) -> object:
            return getattr(gate, name)

        def handle_timer(self, now: float) -> None:
            calls.append(now)
            if len(calls) == 1:
                raise RuntimeError("boom")
            gate.handle_timer(now)

    async def main() -> None:
        server, _ = _server(asyncio.get_running_loop(), gate, target)
        server.gate = FlakyTimer()  # type: ignore[assignment]
        try:
            server.datagram_received(b"junk", ("192.0.2.8", 1), server.now())
            server.service(())
            for _ in range(100):
                await asyncio.sleep(0.01)
                if gate.fallback_flows == 0:
                    break
        finally:
            server.close()

    asyncio.run(main())
    assert len(calls) >= 2 and gate.fallback_flows == 0
    assert any("gate timer failed" in r.getMessage() for r in caplog.records)


def test_serving_raises_the_descriptor_limit_to_the_hard_limit() -> None:
    """Security finding 12 (audit e9): nothing raised RLIMIT_NOFILE (commonly 1024)."""
    code = (
        "import resource\n"
        "from quicreality.aio.reality_server import raise_nofile_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (min(512, hard), hard))\n"
        "got = raise_nofile_limit()\n"
        "print(got, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    got, soft, hard = map(int, out)
    assert got == soft == hard


def test_an_accepted_flight_is_held_until_the_targets_first_reply_time(
        target: socket.socket) -> None:
    """Issue 17 item 4 on virtual time: the edge carries out ``Accept.reply_not_before``."""

    async def main() -> tuple[list[Any], list[Any], list[tuple[float, Any]]]:
        loop = asyncio.get_running_loop()
        gate = make_gate()
        gate.first_reply_source = lambda sni: 0.080
        server, _ = _server(loop, gate, target)
        clock = [100.0]
        server.now = lambda: clock[0]  # type: ignore[method-assign]
        sent: list[Any] = []

        def send(datagrams: list[Any], ecn: int | None = None) -> int:
            sent.extend(datagrams)
            return sum(len(d) for d, _ in datagrams)

        server.send = send  # type: ignore[method-assign]
        timers: list[tuple[float, Any]] = []
        real_call_at = loop.call_at

        def call_at(when: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
            if getattr(callback, "__name__", "") == "_release_paced":
                timers.append((when, lambda: callback(*args)))
            return real_call_at(when + 3600, callback, *args)  # never fires in this test

        loop.call_at = call_at  # type: ignore[method-assign]
        try:
            _, datagrams = first_flight(client_configuration())
            server.process_batch([(datagrams[0], CLIENT_ADDR, 0)], clock[0])
            before = list(sent)
            clock[0] = 100.05  # the connection is serviced early (e.g. its own timer): still held
            server.service(list(server.endpoint.connections), clock[0])
            early = list(sent)
            clock[0] = timers[0][0]
            timers[0][1]()
            return before + early, list(sent), timers
        finally:
            loop.call_at = real_call_at  # type: ignore[method-assign]
            server.close()

    held, after, timers = asyncio.run(main())
    assert held == []
    assert [when for when, _ in timers] == [pytest.approx(100.08)]
    assert after and all(addr == CLIENT_ADDR for _, addr in after)  # the ServerHello flight


class _FakeIO:
    def __init__(self, batch: list[tuple[bytes, Any, int]]) -> None:
        self.batch = batch

    def recv_batch(self, limit: int = 64) -> list[tuple[bytes, Any, int]]:
        out, self.batch = self.batch[:limit], self.batch[limit:]
        return out


def test_under_flood_known_flows_go_first_and_new_ones_wait_in_a_bounded_backlog(
        target: socket.socket) -> None:
    """Issue 17 (flood): a datagram of a flow the gate knows is not queued behind new flows; the
    backlog hands the gate ``per_turn`` per turn and sheds, counted, what waited too long."""

    async def main() -> tuple[list[Any], int, int, float]:
        server, metrics = _server(asyncio.get_running_loop(), make_gate(), target)
        clock = [50.0]
        server.now = lambda: clock[0]  # type: ignore[method-assign]
        try:
            known = ("192.0.2.50", 4000)
            server.process_batch([(b"junk", known, 0)], clock[0])  # now a relayed flow
            assert server.gate.is_fallback(known)
            order: list[Any] = []
            real = server.datagram_received

            def spy(data: bytes, addr: Any, now: float, ecn: int = 0) -> Any:
                order.append(addr)
                return real(data, addr, now, ecn)

            server.datagram_received = spy  # type: ignore[method-assign]
            flood = [(b"\x00" * 1200, ("198.51.100.1", 10000 + i), 0) for i in range(255)]
            server._on_readable(_FakeIO([*flood, (b"later", known, 0)]), 0)  # type: ignore[arg-type]
            first_turn = list(order)
            per_turn, left = server.backlog.per_turn, len(server.backlog)
            assert metrics.hellos_shed._value.get() == 0
            clock[0] += server.backlog.max_age + 0.1  # the rest waited too long
            server._drain_backlog()
            return first_turn, per_turn, left, metrics.hellos_shed._value.get()
        finally:
            server.close()

    first_turn, per_turn, left, shed = asyncio.run(main())
    assert first_turn[0] == ("192.0.2.50", 4000)  # last in the batch, handled first
    assert first_turn[1:] == [("198.51.100.1", 10000 + i) for i in range(per_turn)]
    assert left == 255 - per_turn
    assert shed == left  # shed before the gate, counted


def test_rejected_verdict_log_lines_are_rate_limited(target: socket.socket) -> None:
    """A flood must not become a log flood: rejected verdicts are logged at REJECT_LOG_RATE per
    second (burst 10 s worth); accepted ones always."""
    from quicreality.aio.reality_server import REJECT_LOG_RATE

    async def main() -> tuple[int, int, bool, int]:
        server, _ = _server(asyncio.get_running_loop(), make_gate(), target)
        try:
            burst = sum(server._may_log(False, 10.0) for _ in range(1000))
            later = sum(server._may_log(False, 11.0) for _ in range(1000))
            return burst, later, server._may_log(True, 11.0), server._unlogged
        finally:
            server.close()

    burst, later, accepted, unlogged = asyncio.run(main())
    assert burst == 10 * REJECT_LOG_RATE
    assert later == REJECT_LOG_RATE  # one second refilled this many
    assert accepted
    assert unlogged == 2000 - burst - later  # said in the next line logged
