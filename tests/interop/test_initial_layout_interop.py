"""Our client with the chrome Initial layout (two 1250-byte Initials, zero-length SCID) against real
servers on loopback: ngtcp2's gtlsserver, a quic-go 0.29 server and aioquic's server each serve a
file byte-exact by sha256. The client's qlog shows that the planned flight was really sent."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from peers_harness import PeerHarness, Pki, WwwDir

from quicreality.scenarios.peers import DownloadRequest, ServeRequest, get_peer
from quicreality.scenarios.peers.base import Command, PeerSpec, sha256_file, url_for

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
