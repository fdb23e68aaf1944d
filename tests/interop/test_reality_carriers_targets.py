"""The REALITY carriers against real targets (docs/reality.md, "Carriers"):

* a REALITY-shaped hello with a wrong key, with either carrier, is relayed to the target, and a
  client that then accepts the target's certificate gets the target's page (the fallback really
  completes, for ngtcp2 and quic-go targets, and for aioquic with the ech carrier);
* our Chrome-shaped hello straight to each real server: the handshake completes, and the group
  the server picks is read from its ServerHello in a capture (none of the peers here has
  X25519MLKEM768, so each answers our X25519 share).
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from peers_harness import PeerHarness, Pki, WwwDir
from reality_support import TARGET_PAGE, RealityLab, capture, handshake

from quicreality.aio.client import fetch_all
from quicreality.analysis.fingerprint import fingerprint_pcap
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.fingerprint import apply_fingerprint
from quicreality.reality.keys import generate_key_pair
from quicreality.scenarios.peers import ServeRequest
from quicreality.scenarios.peers.base import free_udp_port
from quicreality.tls.certificates import InsecureVerifier

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

#: Which (target, carrier) fallbacks complete: aioquic refuses a 32-byte session_id (RFC 9001 §8.4).
COMPLETES = {("ngtcp2", "session_id"): True, ("ngtcp2", "ech"): True,
             ("quicgo", "session_id"): True, ("quicgo", "ech"): True,
             ("aioquic", "session_id"): False, ("aioquic", "ech"): True}
#: The group each real server picks for our Chrome hello (X25519MLKEM768 + X25519 shares).
SERVER_GROUP = {"aioquic": "0x001d", "ngtcp2": "0x001d", "quicgo": "0x001d"}


@pytest.mark.parametrize(("target", "carrier"), list(COMPLETES))
def test_reality_shaped_hello_with_a_wrong_key_gets_the_targets_page(
        peer_harness: PeerHarness, pki: Pki, www: WwwDir, target: str, carrier: str) -> None:
    lab = RealityLab(peer_harness, pki, www, target=target)
    wrong = generate_key_pair(lambda n: b"\x07" * n).public_key

    def make_config(host: str) -> QuicConfiguration:
        cfg = lab.client_config(public_key=wrong, carrier=carrier)
        # Seal as REALITY does (the hello is unchanged), but judge the server like a browser
        # would: the target's real certificate is fine, so the page is fetched.
        return cfg.derived(peer_verifier=InsecureVerifier())

    out = peer_harness.path(f"out-{target}-{carrier}")
    out.mkdir(parents=True, exist_ok=True)
    (got,) = asyncio.run(fetch_all([lab.url("target.html")], make_config, out_dir=out,
                                   timeout=30))
    assert lab.rejected("AEAD_OPEN_FAILED") == 1, lab.describe()
    print(f"{target} ({carrier}): {'page' if got.ok else got.error}")
    if COMPLETES[(target, carrier)]:
        assert got.ok, (got.error, lab.describe())
        assert got.output is not None and got.output.read_bytes() == TARGET_PAGE
    else:
        assert not got.ok and "legacy_session_id" in (got.error or ""), got.error


@pytest.mark.parametrize("server", list(SERVER_GROUP))
def test_chrome_hello_straight_to_each_real_server(peer_harness: PeerHarness, pki: Pki,
                                                   www: WwwDir, server: str) -> None:
    port = free_udp_port()
    peer_harness.serve(server, ServeRequest(www=www.path, port=port, cert=pki.cert, key=pki.key))
    base = QuicConfiguration(is_client=True, rng=os.urandom, wall_clock=time.time,
                             peer_verifier=InsecureVerifier(), server_name="localhost")
    with capture(peer_harness, f"chrome-{server}", port):
        result = handshake(apply_fingerprint(base, "chrome"), port)
    assert result.completed, (server, result.terminated)
    (fp,) = fingerprint_pcap(peer_harness.path(f"chrome-{server}.pcap"))
    assert fp.features["client.tls.key_share_groups"] == ["0x11ec", "0x001d"]
    group = fp.features["server.tls.key_share_group"]
    print(f"{server}: chrome hello -> ServerHello group {group}")
    assert group == SERVER_GROUP[server]
