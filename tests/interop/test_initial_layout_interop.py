"""Our client with the chrome Initial layout (two 1250-byte Initials, zero-length SCID) against real
servers on loopback: ngtcp2's gtlsserver, a quic-go 0.29 server and aioquic's server each serve a
file byte-exact by sha256. The client's qlog shows that the planned flight was really sent, and a
capture of it, read by the fingerprint tool, has Chromium 156's Initial layout."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from peers_harness import PeerHarness, Pki, WwwDir

from quicreality.analysis.fingerprint import fingerprint_pcap, load_profile
from quicreality.analysis.fingerprint_compare import compare, profile
from quicreality.scenarios.fingerprint_capture import LoopbackNamespace, capture_udp_port
from quicreality.scenarios.peers import DownloadRequest, ServeRequest, get_peer
from quicreality.scenarios.peers import paths as peer_paths
from quicreality.scenarios.peers.base import Command, PeerSpec, sha256_file, url_for
from quicreality.scenarios.peers.process import PeerProcess

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

FILE, SIZE = "1M.bin", 1_000_000


def chrome_layout_client() -> PeerSpec:
    """The ``ours`` peer whose client adds ``--initial-layout chrome``."""
    ours = get_peer("ours")
    assert ours.download is not None
    build = ours.download

    def download(req: DownloadRequest) -> Command:
        cmd = build(req)
        return dataclasses.replace(cmd, argv=(*cmd.argv, "--initial-layout", "chrome"))

    return dataclasses.replace(ours, download=download)


def qlog_events(path: Path) -> list[dict[str, Any]]:
    records = [json.loads(r) for r in path.read_bytes().split(b"\x1e") if r.strip()]
    return [r for r in records if "name" in r]


@pytest.mark.parametrize("server", ["ngtcp2", "quicgo", "aioquic"])
def test_chrome_layout_client_downloads_from(peer_harness: PeerHarness, pki: Pki, www: WwwDir,
                                             udp_port: int, server: str) -> None:
    h = peer_harness
    if FILE not in www.sha256:
        www.add(FILE, bytes(range(256)) * (SIZE // 256) + bytes(SIZE % 256))
    h.serve(server, ServeRequest(www=www.path, port=udp_port, cert=pki.cert, key=pki.key))
    url = url_for("127.0.0.1", udp_port, FILE)
    req = DownloadRequest(urls=(url,), out_dir=h.path("out"), ca=pki.ca,
                          qlog_dir=h.path("qlog", "client"), keylog=h.path("client.keys"))
    out = h.download(chrome_layout_client(), req, timeout=180)
    assert out.finished.returncode == 0, out.describe()
    (result,) = out.results
    assert result.ok and result.file is not None, out.describe()
    assert result.file.stat().st_size == SIZE
    assert sha256_file(result.file) == www.sha256[FILE]
    (qlog,) = h.path("qlog", "client").glob("*_client.sqlog")
    evs = qlog_events(qlog)
    started = next(e for e in evs if e["name"].endswith("connection_started"))
    assert started["data"]["src_cid"] == "" and len(started["data"]["dst_cid"]) == 16
    sent = [e["data"] for e in evs if e["name"].endswith("packet_sent")][:2]
    assert [(s["header"]["packet_type"], s["header"]["packet_number"]) for s in sent] == \
        [("initial", 1), ("initial", 2)]
    assert [s["raw"]["length"] for s in sent] == [1250, 1250]


#: The features that make up the Initial layout (the TLS hello itself is shaped elsewhere).
LAYOUT_FEATURES = ("client.quic.version", "client.quic.dcid_len", "client.quic.scid_len",
                   "client.quic.token_len", "client.quic.tp.initial_source_connection_id",
                   "client.flight.")
CHROME_PROFILE = peer_paths.REPO_ROOT / "docs" / "data" / "chrome156-hello.json"


def test_chrome_layout_on_the_wire_matches_chromium_156(peer_harness: PeerHarness, pki: Pki,
                                                        www: WwwDir) -> None:
    """Captured in a fresh namespace (software GSO), our client's first flight has no Initial-layout
    feature that differs from Chromium 156's profile (random draws aside, as the tool compares)."""
    h = peer_harness
    pcap, port = h.path("ours-chrome.pcap"), 4433
    with LoopbackNamespace() as ns:
        server = h.start(PeerProcess(Command(argv=ns.wrap([
            str(peer_paths.python()), "-m", "quicreality", "server", "--listen",
            f"127.0.0.1:{port}", "--cert", str(pki.cert), "--key", str(pki.key),
            "--www", str(www.path)]), cwd=peer_paths.REPO_ROOT), name="ours-server",
            log_dir=h.path("logs")))
        server.wait_udp_ready(port, timeout=30)
        cap = capture_udp_port(ns, port, pcap)
        try:
            for i in range(3):
                req = DownloadRequest(urls=(url_for("127.0.0.1", port, "index.html"),),
                                      out_dir=h.path(f"out-{i}"), ca=pki.ca)
                client = chrome_layout_client().download
                assert client is not None
                cmd = client(req)
                run = h.start(PeerProcess(Command(argv=ns.wrap(cmd.argv), cwd=cmd.cwd),
                                          name=f"ours-client-{i}", log_dir=h.path("logs")))
                cmd.prepare()
                fin = run.wait(60)
                assert fin.returncode == 0, (fin.stdout, fin.stderr[-2000:])
        finally:
            cap.stop(settle_s=0.5)
    assert cap.dropped == 0
    fps = fingerprint_pcap(pcap)
    assert len(fps) == 3
    for fp in fps:
        assert fp.features["client.flight.sizes"] == [1250, 1250]
        assert fp.features["client.flight.packet_numbers"] == [1, 2]
        assert fp.features["client.quic.scid_len"] == 0
    live = profile((fp.features for fp in fps), label="ours, chrome layout")
    diffs = compare(load_profile(str(CHROME_PROFILE)), live, prefixes=LAYOUT_FEATURES)
    assert diffs == [], [d.to_json() for d in diffs]
