"""REALITY over QUIC v2 on real sockets: our REALITY client (``--versions v2``) downloads from our
REALITY listener; the gate opened its v2 Initials (RFC 9369 keys) and the connection stays v2."""

from __future__ import annotations

import json

import pytest
from peers_harness import PeerHarness, Pki, WwwDir
from reality_support import RealityLab, capture, flows, replies, run_cli_client

from quicreality.quic.packet import QUIC_VERSION_2, MalformedPacketError, pull_quic_header
from quicreality.scenarios.peers.base import sha256_file
from quicreality.wire.buffer import Buffer

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]


def long_header_versions(payloads: list[bytes]) -> set[int | None]:
    out: set[int | None] = set()
    for data in payloads:
        buf = Buffer(data=data)
        while not buf.eof():
            try:
                header = pull_quic_header(buf, host_cid_length=None)
            except MalformedPacketError:
                break
            out.add(header.version)
            buf.seek(header.packet_end)
    return out


def test_reality_client_in_v2_is_accepted_over_real_sockets(
        peer_harness: PeerHarness, pki: Pki, www: WwwDir) -> None:
    h = peer_harness
    lab = RealityLab(h, pki, www, target="aioquic")
    out = h.path("out")
    with capture(h, "accept-v2", lab.port, lab.target_port) as wire:
        finished = run_cli_client(h, [lab.url("10M.bin"), "-o", str(out), "--json",
                                      "--versions", "v2", *lab.reality_cli_args()])
    assert finished.returncode == 0, f"{finished.stdout}\n{finished.stderr}\n{lab.describe()}"
    line = json.loads(finished.stdout.strip().splitlines()[-1])
    assert line["error"] is None and line["bytes"] == 10_000_000
    assert sha256_file(out / "10M.bin") == www.sha256["10M.bin"]
    (client_addr, sent), = flows(wire, to_port=lab.port).items()
    assert long_header_versions([d.payload for d in sent]) == {QUIC_VERSION_2}
    answered = replies(wire, from_port=lab.port, to=client_addr)
    assert long_header_versions([d.payload for d in answered]) == {QUIC_VERSION_2}
    assert "reality verdict ACCEPT" in lab.log()
