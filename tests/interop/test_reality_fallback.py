"""Fallback path over real sockets: ordinary QUIC clients pointed at the REALITY listener get the
target's page, byte-identical to asking the target directly, and every datagram is relayed
untouched in both directions (issue 3, "Fallback path")."""

from __future__ import annotations

import pytest
from peers_harness import PeerHarness, Pki, WwwDir
from reality_support import (
    TARGET_PAGE,
    RealityLab,
    assert_relayed,
    capture,
    flows,
    replies,
    run_cli_client,
)

from quicreality.scenarios.peers import DownloadRequest

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

#: The clients that must not notice the listener is not the target.
CLIENTS = ["curl", "quicgo", "ngtcp2"]


def _download(h: PeerHarness, client: str, url: str, pki: Pki, out: str) -> bytes:
    req = DownloadRequest(urls=(url,), out_dir=h.path(out), ca=pki.ca, timeout=30)
    got = h.download(client, req, timeout=60)
    assert got.finished.returncode == 0, got.describe()
    (result,) = got.results
    assert result.ok, got.describe()
    assert result.file is not None and result.file.exists(), got.describe()
    return result.file.read_bytes()


@pytest.mark.parametrize("client", CLIENTS)
def test_client_gets_the_targets_page_through_the_listener(
        peer_harness: PeerHarness, pki: Pki, www: WwwDir, client: str) -> None:
    h = peer_harness
    lab = RealityLab(h, pki, www, target="ngtcp2")
    direct = _download(h, client, lab.url("target.html", direct=True), pki, "direct")
    flows_before = lab.metrics()["quicreality_reality_fallback_flows_total"]
    with capture(h, f"fallback-{client}", lab.port, lab.target_port) as wire:
        relayed = _download(h, client, lab.url("target.html"), pki, "relayed")
    assert direct == relayed == TARGET_PAGE
    # Our server does not have target.html: the listener really relayed the target.
    assert not (www.path / "target.html").exists()

    # Byte-identical relaying, both ways, datagram for datagram and in order (a sender's UDP GSO
    # super-packet, which tcpdump on lo sees before the kernel cuts it, is relayed as its segments).
    to_listener = flows(wire, to_port=lab.port)
    to_target = flows(wire, to_port=lab.target_port)
    assert len(to_listener) == 1 and len(to_target) == 1, (to_listener.keys(), to_target.keys())
    (client_addr, from_client), = to_listener.items()
    (relay_addr, to_target_datagrams), = to_target.items()
    assert_relayed(from_client, to_target_datagrams)
    from_target = replies(wire, from_port=lab.target_port, to=relay_addr)
    to_client = replies(wire, from_port=lab.port, to=client_addr)
    assert len(from_target) > 5
    assert_relayed(from_target, to_client)

    m = lab.metrics()
    assert m["quicreality_reality_fallback_flows_total"] == flows_before + 1
    assert m["quicreality_reality_handshakes_accepted_total"] == 0
    c2t = m["quicreality_reality_fallback_bytes_total{direction=client_to_target}"]
    t2c = m["quicreality_reality_fallback_bytes_total{direction=target_to_client}"]
    assert c2t >= sum(len(d.payload) for d in from_client)
    assert t2c >= sum(len(d.payload) for d in from_target) >= len(TARGET_PAGE)
    assert "reality verdict" in lab.log()


def test_our_plain_client_is_relayed_and_verifies_the_targets_certificate(
        peer_harness: PeerHarness, pki: Pki, www: WwwDir) -> None:
    """Our own non-REALITY client (PKI check against the test CA) gets the target's page."""
    h = peer_harness
    lab = RealityLab(h, pki, www, target="ngtcp2")
    out = h.path("plain")
    finished = run_cli_client(h, [lab.url("target.html"), "-o", str(out), "--ca", str(pki.ca),
                                  "--server-name", "localhost", "--json"])
    assert finished.returncode == 0, finished.stdout + finished.stderr + lab.describe()
    assert (out / "target.html").read_bytes() == TARGET_PAGE
    assert lab.rejected("BAD_SESSION_ID") == 1  # no 32-byte session_id: not a REALITY client
