"""Headless Chromium 156 fetches a page from our server over HTTP/3; the fingerprint tool reads
the capture. Everything runs in a fresh network namespace whose lo segments UDP GSO in software
(:class:`~quicreality.scenarios.fingerprint_capture.LoopbackNamespace`), so every datagram is seen.

Skipped (with the reason) when Debian's chromium is not installed; scripts/setup.sh installs it.
"""

from __future__ import annotations

import json

import pytest
from peers_harness import PeerHarness, Pki, WwwDir

from quicreality.analysis.fingerprint import fingerprint_pcap, load_profile
from quicreality.analysis.fingerprint_compare import compare, profile
from quicreality.scenarios.fingerprint_capture import LoopbackNamespace, capture_udp_port
from quicreality.scenarios.peers import chromium
from quicreality.scenarios.peers import paths as peer_paths
from quicreality.scenarios.peers.base import Command
from quicreality.scenarios.peers.paths import PeerNotInstalled
from quicreality.scenarios.peers.process import PeerProcess

pytestmark = pytest.mark.interop

PORT = 4433
COMMITTED = peer_paths.REPO_ROOT / "tests" / "data" / "fingerprint" / "chromium-ours.pcap"


def _require_chromium() -> None:
    try:
        chromium.binary()
        chromium.certutil()
    except PeerNotInstalled as exc:
        pytest.fail(f"{exc}: run scripts/setup.sh (Debian packages chromium and libnss3-tools)")


def test_chromium_fetches_from_our_server_and_its_hello_matches_the_committed_one(
        peer_harness: PeerHarness, pki: Pki, www: WwwDir) -> None:
    _require_chromium()
    h = peer_harness
    pcap, keys = h.path("chromium.pcap"), h.path("chromium.keys")
    with LoopbackNamespace() as ns:
        server = h.start(PeerProcess(Command(argv=ns.wrap([
            str(peer_paths.python()), "-m", "quicreality", "server", "--listen",
            f"127.0.0.1:{PORT}", "--cert", str(pki.cert), "--key", str(pki.key),
            "--www", str(www.path)]), cwd=peer_paths.REPO_ROOT), name="ours-server",
            log_dir=h.path("logs")))
        server.wait_udp_ready(PORT, timeout=30)
        cap = capture_udp_port(ns, PORT, pcap)
        results = []
        try:
            for i, trust in enumerate((["--pin", str(pki.cert)], ["--ca", str(pki.ca)])):
                run = h.start(PeerProcess(Command(argv=ns.wrap([
                    str(peer_paths.python()), "-m", "quicreality.scenarios.peers.chromium",
                    f"https://localhost:{PORT}/index.html", "--out", str(h.path(f"dom-{i}")),
                    "--keylog", str(keys), *trust]), cwd=peer_paths.REPO_ROOT),
                    name=f"chromium-{i}", log_dir=h.path("logs")))
                fin = run.wait(120)
                results.append(json.loads(fin.stdout.strip().splitlines()[-1]))
        finally:
            cap.stop(settle_s=0.5)
    # both trust routes (SPKI pin, NSS CA) load the page over HTTP/3
    for i, res in enumerate(results):
        assert res["error"] is None and res["proto"] == "h3", (res, server.describe())
        assert "hello h3" in h.path(f"dom-{i}").read_text()
    assert cap.dropped == 0
    fps = fingerprint_pcap(pcap, keylog=keys)
    assert len(fps) == 2
    for fp in fps:
        f = fp.features
        assert f["client.flight.sizes"] == [1250, 1250]
        assert f["client.tls.key_share_groups"] == ["0x11ec", "0x001d"]
        assert f["client.tls.session_id_len"] == 0 and f["client.quic.scid_len"] == 0
        assert f["server.tls.decrypted"] and f["server.tls.cipher_suite"] == "0x1301"
    live = profile((fp.features for fp in fps), label="live")
    assert live.features["client.order_permuted.extensions"] is True
    diffs = compare(load_profile(str(COMMITTED)), live, prefixes=("client.",))
    assert diffs == [], [d.to_json() for d in diffs]
