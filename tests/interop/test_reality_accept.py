"""Accept path over real sockets: our REALITY client downloads from OUR server, and the target only
ever sees the mirrored ClientHello (issue 3, "Accept path")."""

from __future__ import annotations

import json

import pytest
from reality_support import RealityLab, capture, flows, handshake, replies, run_cli_client

from quicreality.scenarios.peers.base import sha256_file
from quicreality.scenarios.peers.testing import PeerHarness, Pki, WwwDir

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]


def test_reality_client_downloads_10mb_from_our_server_and_the_target_sees_only_the_hello(
        peer_harness: PeerHarness, pki: Pki, www: WwwDir) -> None:
    h = peer_harness
    lab = RealityLab(h, pki, www, target="ngtcp2")
    out = h.path("out")
    with capture(h, "accept", lab.port, lab.target_port) as wire:
        finished = run_cli_client(h, [lab.url("10M.bin"), "-o", str(out), "--json",
                                      *lab.reality_cli_args()])
    assert finished.returncode == 0, f"{finished.stdout}\n{finished.stderr}\n{lab.describe()}"
    line = json.loads(finished.stdout.strip().splitlines()[-1])
    assert line["error"] is None and line["bytes"] == 10_000_000
    assert sha256_file(out / "10M.bin") == www.sha256["10M.bin"]  # OUR server's file, byte-exact

    # The wire: one client flow to the listener, one relay flow to the target.
    to_listener = flows(wire, to_port=lab.port)
    assert len(to_listener) == 1, to_listener.keys()
    (client_addr, client_datagrams), = to_listener.items()
    to_target = flows(wire, to_port=lab.target_port)
    assert len(to_target) == 1, to_target.keys()
    (relay_addr, mirrored), = to_target.items()
    # The target received exactly the first client datagram(s) carrying the ClientHello, byte for
    # byte, and nothing of this connection after the verdict (dozens of datagrams followed).
    assert len(client_datagrams) > 20  # handshake + ACKs of 10 MB
    assert 1 <= len(mirrored) <= 2
    assert [d.payload for d in mirrored] == [d.payload for d in client_datagrams[:len(mirrored)]]
    last_mirror = mirrored[-1].ts
    assert all(d.ts <= last_mirror for d in mirrored)
    # The target answered the mirrored hello; none of its datagrams reached the client.
    target_said = {d.payload for d in replies(wire, from_port=lab.target_port, to=relay_addr)}
    assert target_said, "the target should have answered the mirrored ClientHello"
    to_client = {d.payload for d in replies(wire, from_port=lab.port, to=client_addr)}
    assert not target_said & to_client

    m = lab.metrics()
    assert m["quicreality_reality_handshakes_accepted_total"] == 1
    assert m["quicreality_reality_target_datagrams_dropped_total"] >= 1
    assert "reality verdict ACCEPT" in lab.log()
    # qlog: the verdict is on the connection's trace and on the endpoint trace.
    traces = {p.name: p.read_text() for p in lab.qlog_dir.glob("*.sqlog")}
    assert any("reality:verdict" in t and '"ACCEPT"' in t for n, t in traces.items()
               if n != "reality_endpoint_server.sqlog"), list(traces)


def test_reality_handshake_in_process_is_accepted(peer_harness: PeerHarness, pki: Pki,
                                                  www: WwwDir) -> None:
    lab = RealityLab(peer_harness, pki, www, target="ngtcp2")
    config = lab.client_config()
    result = handshake(config, lab.port)
    assert result.completed, (result.terminated, lab.describe())
    hook = config.peer_verifier
    assert hook.verified_chain and len(hook.verified_chain[0]) == 178  # the HMAC certificate
    assert lab.accepted() == 1
