"""iperf3 3.12 through RAW -> QUIC_REALITY -> RAW on loopback: forward, reverse, -P 4, and UDP over DATAGRAM.

Every test keeps iperf3's ``-J`` documents (client and server side) in a results directory that it
prints, ``results/runs/<UTC>-<sha>-relay-iperf3/``. TCP runs name their congestion controller
(``-C cubic``); the JSON records it as ``sender_tcp_congestion``.

UDP uses ``-l 1100``: a DATAGRAM frame cannot be split (RFC 9221 §5), so a UDP payload must fit
one QUIC packet (1200 bytes by default). iperf3's loopback default (the TCP MSS, ~32 KB) would be
dropped and counted as ``quicreality_relay_udp_dropped_total{reason="too_large"}``, which
:func:`test_oversized_udp_datagrams_are_counted` checks.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from peers_harness import PeerHarness, Pki, harness_in_tempdir
from relay_chain import (
    HOST,
    Fwd,
    RelayChain,
    free_tcp_udp_port,
    make_reality_setup,
    results_dir,
    wait_for,
)

from quicreality.scenarios.peers import iperf3
from quicreality.scenarios.peers.base import Command, free_udp_port
from quicreality.scenarios.peers.process import PeerProcess

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 10.0


@pytest.fixture(scope="module")
def harness() -> Iterator[PeerHarness]:
    with harness_in_tempdir("qr-relay-iperf-") as h:
        yield h


@pytest.fixture(scope="module")
def iperf_port() -> int:
    return free_tcp_udp_port()


@pytest.fixture(scope="module")
def chain(harness: PeerHarness, pki: Pki, iperf_port: int) -> RelayChain:
    listen = free_tcp_udp_port()
    fwd = Fwd("iperf", iperf_port, udp=True, listen_port=listen)
    return RelayChain(harness, pki, [fwd], [f"{HOST}:{iperf_port}"],
                      reality=make_reality_setup(free_udp_port())).start()


@pytest.fixture(scope="module")
def out_dir(request: pytest.FixtureRequest) -> Path:
    d = results_dir(ROOT, "relay-iperf3")
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman else _nullcontext():
        print(f"\nrelay iperf3 JSON results: {d}")
    return d


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def run_iperf(chain: RelayChain, harness: PeerHarness, port: int, out_dir: Path, name: str,
              req: iperf3.IperfRequest, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """One iperf3 test through the chain; keeps both JSON documents; returns the client's."""
    server = harness.start(PeerProcess(iperf3.server(HOST, port), name=f"iperf3-server-{name}",
                                       log_dir=harness.path("logs")))
    server.wait_tcp_ready(port)
    cmd = Command(argv=(*iperf3.client(req).argv, *extra))
    client = harness.start(PeerProcess(cmd, name=f"iperf3-client-{name}",
                                       log_dir=harness.path("logs")))
    finished = client.wait(req.seconds + 60)
    server_done = server.wait(30)
    (out_dir / f"{name}.client.json").write_text(finished.stdout)
    (out_dir / f"{name}.server.json").write_text(server_done.stdout)
    doc: dict[str, Any] = json.loads(finished.stdout)
    assert finished.returncode == 0 and not doc.get("error"), (
        f"iperf3 {name}: rc={finished.returncode} {doc.get('error')}\n{chain.describe()}")
    return doc


def tcp_request(chain: RelayChain, **kw: Any) -> iperf3.IperfRequest:
    return iperf3.IperfRequest(host=HOST, port=chain.listen["iperf"], seconds=SECONDS,
                               congestion="cubic", **kw)


def check_tcp(doc: dict[str, Any], streams: int) -> float:
    """Every receiver stream got bytes; returns the receiver goodput in Mbit/s."""
    end = doc["end"]
    assert len(end["streams"]) == streams
    for s in end["streams"]:
        assert s["receiver"]["bytes"] > 0, f"a receiver stream got nothing: {s}"
    assert end.get("sender_tcp_congestion") == "cubic"
    mbps: float = end["sum_received"]["bits_per_second"] / 1e6
    assert mbps > 1.0
    return mbps


def test_iperf3_forward_10s(chain: RelayChain, harness: PeerHarness, iperf_port: int,
                            out_dir: Path) -> None:
    doc = run_iperf(chain, harness, iperf_port, out_dir, "tcp-forward", tcp_request(chain))
    print(f"iperf3 forward through the relay: {check_tcp(doc, 1):.0f} Mbit/s (cubic)")


def test_iperf3_reverse_10s(chain: RelayChain, harness: PeerHarness, iperf_port: int,
                            out_dir: Path) -> None:
    doc = run_iperf(chain, harness, iperf_port, out_dir, "tcp-reverse",
                    tcp_request(chain, reverse=True))
    assert doc["start"]["test_start"]["reverse"] == 1
    print(f"iperf3 reverse through the relay: {check_tcp(doc, 1):.0f} Mbit/s (cubic)")


def test_iperf3_four_parallel_streams_10s(chain: RelayChain, harness: PeerHarness,
                                          iperf_port: int, out_dir: Path) -> None:
    doc = run_iperf(chain, harness, iperf_port, out_dir, "tcp-parallel-4", tcp_request(chain),
                    extra=("-P", "4"))
    print(f"iperf3 -P 4 through the relay: {check_tcp(doc, 4):.0f} Mbit/s (cubic)")
    per_stream = [s["receiver"]["bits_per_second"] / 1e6 for s in doc["end"]["streams"]]
    print("  per receiver stream: " + ", ".join(f"{x:.0f}" for x in per_stream))


def test_iperf3_udp_50m_over_datagrams_reports_loss(chain: RelayChain, harness: PeerHarness,
                                                    iperf_port: int, out_dir: Path) -> None:
    req = iperf3.IperfRequest(host=HOST, port=chain.listen["iperf"], seconds=5, udp=True,
                              rate="50M", length=1100)
    before = chain.metric("server", "quicreality_relay_udp_datagrams_total", direction="up")
    doc = run_iperf(chain, harness, iperf_port, out_dir, "udp-50m", req)
    summary = iperf3.parse(json.dumps(doc))
    assert summary.protocol == "UDP" and summary.lost_percent is not None
    assert summary.bytes and summary.bytes > 0
    relayed = chain.metric("server", "quicreality_relay_udp_datagrams_total", direction="up") - before
    assert relayed > 10_000  # ~28,000 datagrams of 1100 B in 5 s at 50 Mbit/s
    assert summary.lost_percent < 20.0, f"{summary.lost_percent}% lost"
    print(f"iperf3 -u -b 50M through DATAGRAM: {summary.bits_per_second / 1e6:.1f} Mbit/s received, "
          f"{summary.lost_percent:.2f}% lost, jitter {summary.jitter_ms} ms")
    assert chain.metric("client", "quicreality_relay_udp_flows_total") >= 1


def test_oversized_udp_datagrams_are_counted(chain: RelayChain) -> None:
    before = chain.metric("client", "quicreality_relay_udp_dropped_total", reason="too_large")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"a" * 100, (HOST, chain.listen["iperf"]))  # opens a flow
        time.sleep(0.3)
        s.sendto(b"b" * 30_000, (HOST, chain.listen["iperf"]))
        wait_for(lambda: chain.metric("client", "quicreality_relay_udp_dropped_total",
                                      reason="too_large") > before, 10, "the drop to be counted")
