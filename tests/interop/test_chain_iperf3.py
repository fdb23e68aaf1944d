"""iperf3 3.12 through a two-hop REALITY chain on loopback, next to a one-hop chain in the same run.

``relay-client -> hop 1 -> hop 2 -> iperf3 -s`` against ``relay-client -> hop -> iperf3 -s``:
forward, reverse and ``-P 4`` (``-C cubic``), one-hop and two-hop runs interleaved. Byte counts
must agree on both ends: what the iperf3 sender wrote is what its receiver read (the two JSON
documents), and what the relay client took from iperf3 is what the last hop gave the server
(the relay byte counters). The JSON documents and ``summary.json`` (goodput, ratio two-hop /
one-hop) go to ``results/runs/<UTC>-<sha>-chain-iperf3/``, which the test prints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chain_hops import Hop, build_chain, describe
from peers_harness import PeerHarness, Pki, harness_in_tempdir
from relay_chain import HOST, Fwd, free_tcp_udp_port, results_dir

from quicreality.scenarios.peers import iperf3
from quicreality.scenarios.peers.base import Command
from quicreality.scenarios.peers.process import PeerProcess

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
SECONDS = float(os.environ.get("QR_CHAIN_IPERF_SECONDS", "8"))
SUMMARY: dict[str, dict[str, float]] = {}
COUNTS: dict[str, dict[str, float]] = {}
#: Most a stream can hold inside one hop: QUIC stream window + socket write high water + kernel
#: buffers on loopback (a few MB each way), with room to spare.
IN_FLIGHT_BOUND = 16 << 20


@pytest.fixture(scope="module")
def harness() -> Iterator[PeerHarness]:
    with harness_in_tempdir("qr-chain-iperf-") as h:
        yield h


@pytest.fixture(scope="module")
def iperf_port() -> int:
    return free_tcp_udp_port()


@pytest.fixture(scope="module")
def chains(harness: PeerHarness, pki: Pki, iperf_port: int) -> dict[int, list[Hop]]:
    allow = [f"{HOST}:{iperf_port}"]
    # iperf3 -u needs its TCP control port and its UDP port to be the same number.
    return {hops: build_chain(harness, pki, hops, [Fwd("iperf", iperf_port, udp=True,
                                                       listen_port=free_tcp_udp_port())],
                              allow, prefix=prefix)
            for hops, prefix in ((1, "one"), (2, "two"))}


@pytest.fixture(scope="module")
def out_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    d = results_dir(ROOT, "chain-iperf3")
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman:
        with capman.global_and_fixture_disabled():
            print(f"\nchain iperf3 JSON results: {d}")
    yield d
    (d / "summary.json").write_text(json.dumps({"goodput": SUMMARY, "bytes": COUNTS}, indent=2))


def relay_bytes(chain: list[Hop], side: str, hop: int, direction: str) -> float:
    return chain[hop].metric(side, "quicreality_relay_bytes_total", direction=direction)


def run(chain: list[Hop], harness: PeerHarness, port: int, out_dir: Path, name: str,
        reverse: bool, parallel: int) -> dict[str, Any]:
    """One iperf3 test; checks the byte counts on both ends; returns the client's document."""
    up0 = relay_bytes(chain, "client", 0, "up")
    down0 = relay_bytes(chain, "client", 0, "down")
    last_up0 = relay_bytes(chain, "server", -1, "up")
    last_down0 = relay_bytes(chain, "server", -1, "down")
    server = harness.start(PeerProcess(iperf3.server(HOST, port), name=f"iperf3-s-{name}",
                                       log_dir=harness.path("logs")))
    server.wait_tcp_ready(port)
    req = iperf3.IperfRequest(host=HOST, port=chain[0].listen["iperf"], seconds=SECONDS,
                              congestion="cubic", reverse=reverse)
    cmd = Command(argv=(*iperf3.client(req).argv, "-P", str(parallel)))
    client = harness.start(PeerProcess(cmd, name=f"iperf3-c-{name}", log_dir=harness.path("logs")))
    done = client.wait(SECONDS + 60)
    server_done = server.wait(30)
    (out_dir / f"{name}.client.json").write_text(done.stdout)
    (out_dir / f"{name}.server.json").write_text(server_done.stdout)
    doc: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == 0 and not doc.get("error"), f"{name}: {doc.get('error')}\n" + \
        describe(chain)
    sdoc: dict[str, Any] = json.loads(server_done.stdout)
    end = doc["end"]
    assert len(end["streams"]) == parallel
    for s in end["streams"]:
        assert s["receiver"]["bytes"] > 0, s
    # Both ends' counts: the receiver read at most what the sender wrote, and the difference is
    # what was still in flight inside the chain when iperf3 ended the test. (iperf3's server
    # closes its data sockets when TEST_END arrives on the control connection; that connection
    # is another relay stream, which overtakes the data stream's buffered tail, so a relay that
    # buffers always shows a gap. Direct TCP on loopback shows none: its buffers are empty.)
    sender_doc, receiver_doc = (sdoc, doc) if reverse else (doc, sdoc)
    sent = sender_doc["end"]["sum_sent"]["bytes"]
    received = receiver_doc["end"]["sum_received"]["bytes"]
    gap = sent - received
    assert 0 <= gap <= IN_FLIGHT_BOUND * len(chain) * parallel, (name, sent, received)
    # The relays' counts: the last hop never gives the server more than the relay client took
    # (nothing is made up or duplicated) and the client's side covers what iperf3 received.
    took = relay_bytes(chain, "client", 0, "down" if reverse else "up") - (
        down0 if reverse else up0)
    gave = relay_bytes(chain, "server", -1, "down" if reverse else "up") - (
        last_down0 if reverse else last_up0)
    if reverse:
        took, gave = gave, took  # reverse: the last hop takes from iperf3, the client gives
    assert received <= gave <= took, (name, received, gave, took)
    COUNTS[name] = {"iperf3_sender_bytes": sent, "iperf3_receiver_bytes": received,
                    "in_flight_at_end": gap, "relay_took": took, "relay_gave": gave}
    print(f"{name}: iperf3 sender {sent} B, receiver {received} B (in flight at the end: {gap} B); "
          f"relay took {took:.0f} B, gave {gave:.0f} B")
    return doc


@pytest.mark.parametrize(("mode", "reverse", "parallel"), [
    ("forward", False, 1), ("reverse", True, 1), ("parallel-4", False, 4)])
def test_iperf3_through_two_hops_against_one_hop(chains: dict[int, list[Hop]],
                                                 harness: PeerHarness, iperf_port: int,
                                                 out_dir: Path, mode: str, reverse: bool,
                                                 parallel: int) -> None:
    mbps: dict[int, float] = {}
    for hops in (1, 2):
        doc = run(chains[hops], harness, iperf_port, out_dir, f"{mode}-{hops}hop", reverse,
                  parallel)
        mbps[hops] = doc["end"]["sum_received"]["bits_per_second"] / 1e6
        assert doc["end"].get("sender_tcp_congestion") == "cubic"
    ratio = mbps[2] / mbps[1]
    SUMMARY[mode] = {"one_hop_mbps": round(mbps[1], 1), "two_hop_mbps": round(mbps[2], 1),
                     "ratio": round(ratio, 3)}
    print(f"iperf3 {mode}: one hop {mbps[1]:.0f} Mbit/s, two hops {mbps[2]:.0f} Mbit/s, "
          f"ratio {ratio:.2f}")
    assert mbps[2] > 1.0


def test_iperf3_udp_through_two_hops_against_one_hop(chains: dict[int, list[Hop]],
                                                     harness: PeerHarness, iperf_port: int,
                                                     out_dir: Path) -> None:
    """``iperf3 -u -b 50M -l 1100``: the datagrams ride DATAGRAM frames through every hop."""
    got: dict[int, dict[str, float]] = {}
    for hops in (1, 2):
        chain = chains[hops]
        before = [c.metric("server", "quicreality_relay_udp_datagrams_total", direction="up")
                  for c in chain]
        server = harness.start(PeerProcess(iperf3.server(HOST, iperf_port),
                                           name=f"iperf3-s-udp-{hops}",
                                           log_dir=harness.path("logs")))
        server.wait_tcp_ready(iperf_port)
        req = iperf3.IperfRequest(host=HOST, port=chain[0].listen["iperf"], seconds=5, udp=True,
                                  rate="50M", length=1100)
        done = harness.start(PeerProcess(iperf3.client(req), name=f"iperf3-c-udp-{hops}",
                                         log_dir=harness.path("logs"))).wait(60)
        server.wait(30)
        (out_dir / f"udp-{hops}hop.client.json").write_text(done.stdout)
        doc: dict[str, Any] = json.loads(done.stdout)
        assert done.returncode == 0 and not doc.get("error"), f"{doc.get('error')}\n" + \
            describe(chain)
        summary = doc["end"]["sum"]
        relayed = [c.metric("server", "quicreality_relay_udp_datagrams_total", direction="up") - b
                   for c, b in zip(chain, before, strict=True)]
        # Every hop relayed the datagrams (the middle hop as a server and on to the next).
        assert all(n > 1000 for n in relayed), relayed
        assert chain[-1].metric("server", "quicreality_relay_udp_flows_total") >= 1
        drops = {f"hop{i + 1}": {k.split("reason=")[1].split('"')[1]: v
                                 for k, v in c.metrics("server").items()
                                 if k.startswith("quicreality_relay_udp_dropped_total") and v}
                 for i, c in enumerate(chain)}  # both sides of each hop's process, by reason
        got[hops] = {"mbps": summary["bits_per_second"] / 1e6,
                     "lost_percent": summary["lost_percent"], "packets": summary["packets"],
                     "relayed_per_hop": relayed, "relay_drops": drops}
        print(f"iperf3 -u -b 50M through {hops} hop(s): {got[hops]['mbps']:.1f} Mbit/s sent, "
              f"{summary['lost_percent']:.1f} % lost of {summary['packets']} datagrams; "
              f"relayed per hop {[int(n) for n in relayed]}; relay drops {drops}")
    SUMMARY["udp-50m"] = {"one_hop_mbps": round(got[1]["mbps"], 1),
                          "two_hop_mbps": round(got[2]["mbps"], 1),
                          "two_hop_lost_percent": round(got[2]["lost_percent"], 2)}
    (out_dir / "udp.json").write_text(json.dumps(got, indent=2))
    assert got[2]["mbps"] > 10
