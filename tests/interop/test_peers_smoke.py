"""The interop peers work among themselves on loopback, before our stack exists.

Every client (curl, gtlsclient, quic-go, aioquic) downloads a 10 MB file from every server
(gtlsserver, quic-go, aioquic) and the bytes must match (sha256). Along the way: key logs and
qlog files are written where asked, clients verify the server with the test CA (gtlsclient
cannot verify), cipher restriction and Retry work, and iperf3's JSON parses.

A missing peer is an installation bug: the test fails with "run scripts/setup.sh".
"""

from __future__ import annotations

import pytest
from peers_harness import DownloadOutcome, PeerHarness, Pki, WwwDir

from quicreality.scenarios.peers import DownloadRequest, ServeRequest, get_peer
from quicreality.scenarios.peers import iperf3 as iperf3_peer
from quicreality.scenarios.peers.base import pattern_sha256, sha256_file, url_for
from quicreality.scenarios.peers.process import PeerProcess

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

SERVERS = ["ngtcp2", "quicgo", "aioquic"]
CLIENTS = ["curl", "ngtcp2", "quicgo", "aioquic"]
#: servers with the /bytes/N pattern endpoint
PATTERN_SERVERS = {"quicgo", "aioquic"}
PATTERN_LEN = 1_000_003


def _serve(h: PeerHarness, server: str, pki: Pki, www: WwwDir, port: int, **kw) -> ServeRequest:
    req = ServeRequest(www=www.path, port=port, cert=pki.cert, key=pki.key,
                       qlog_dir=h.path("qlog", "server"), keylog=h.path("server.keys"), **kw)
    h.serve(server, req)
    return req


def _download(h: PeerHarness, client: str, urls: list[str], pki: Pki, **kw) -> DownloadOutcome:
    req = DownloadRequest(urls=tuple(urls), out_dir=h.path("out"), ca=pki.ca,
                          qlog_dir=h.path("qlog", "client"), keylog=h.path("client.keys"), **kw)
    return h.download(client, req, timeout=120)


def _assert_keylog(path, who: str) -> None:
    assert path.exists(), f"{who}: no key log at {path}"
    text = path.read_text()
    assert "CLIENT_TRAFFIC_SECRET_0" in text and "SERVER_TRAFFIC_SECRET_0" in text, \
        f"{who}: key log lacks 1-RTT secrets:\n{text[:500]}"


MATRIX = [(c, s) for s in SERVERS for c in CLIENTS]


def _ids(pairs: list[tuple[str, str]]) -> list[str]:
    return [f"{c}<-{s}" for c, s in pairs]


@pytest.mark.parametrize(("client", "server"), MATRIX, ids=_ids(MATRIX))
def test_download_10mb_byte_exact(peer_harness: PeerHarness, pki: Pki, www: WwwDir,
                                  udp_port: int, server: str, client: str) -> None:
    h = peer_harness
    _serve(h, server, pki, www, udp_port)
    urls = [url_for("127.0.0.1", udp_port, "10M.bin")]
    if server in PATTERN_SERVERS:
        urls.append(url_for("127.0.0.1", udp_port, f"bytes/{PATTERN_LEN}"))
    out = _download(h, client, urls, pki)

    assert out.finished.returncode == 0, f"{client} <- {server} failed\n{out.describe()}"
    got = {r.url: r for r in out.results}
    r10 = got[urls[0]]
    assert r10.ok, f"{client} <- {server}: {r10}\n{out.describe()}"
    assert r10.file is not None and r10.file.exists(), out.describe()
    assert sha256_file(r10.file) == www.sha256["10M.bin"], f"{client} <- {server}: body differs"
    if r10.status is not None:
        assert r10.status == 200
    if r10.bytes is not None:
        assert r10.bytes == 10_000_000
    if r10.proto is not None:
        assert "3" in r10.proto, r10.proto
    if len(urls) > 1:
        rp = got[urls[1]]
        assert rp.ok and rp.file is not None, f"{rp}\n{out.describe()}"
        assert sha256_file(rp.file) == pattern_sha256(PATTERN_LEN), "/bytes/N pattern differs"

    # the client's key log and qlog; the server's after a clean stop (qlog is flushed on SIGTERM)
    _assert_keylog(h.path("client.keys"), client)
    assert list(h.path("qlog", "client").iterdir()), f"{client}: no client qlog"
    h.close()
    _assert_keylog(h.path("server.keys"), server)
    assert list(h.path("qlog", "server").iterdir()), f"{server}: no server qlog"


CHACHA = [("quicgo", "aioquic"), ("aioquic", "quicgo"), ("ngtcp2", "quicgo"), ("quicgo", "ngtcp2")]


@pytest.mark.parametrize(("client", "server"), CHACHA, ids=_ids(CHACHA))
def test_chacha20_only(peer_harness: PeerHarness, pki: Pki, www: WwwDir, udp_port: int,
                       client: str, server: str) -> None:
    """Both sides restricted to TLS_CHACHA20_POLY1305_SHA256 still interoperate."""
    h = peer_harness
    _serve(h, server, pki, www, udp_port, cipher="TLS_CHACHA20_POLY1305_SHA256")
    out = _download(h, client, [url_for("127.0.0.1", udp_port, "index.html")], pki,
                    cipher="chacha20")
    assert out.finished.returncode == 0 and out.results[0].ok, out.describe()
    assert sha256_file(out.results[0].file) == www.sha256["index.html"]


def test_cipher_restriction_is_enforced(peer_harness: PeerHarness, pki: Pki, www: WwwDir,
                                        udp_port: int) -> None:
    """A CHACHA20-only server and an AES-128-only client must fail to connect."""
    h = peer_harness
    _serve(h, "aioquic", pki, www, udp_port, cipher="TLS_CHACHA20_POLY1305_SHA256")
    out = _download(h, "quicgo", [url_for("127.0.0.1", udp_port, "index.html")], pki,
                    cipher="TLS_AES_128_GCM_SHA256", timeout=5)
    assert out.finished.returncode != 0 and not out.results[0].ok, out.describe()


RETRY = [("curl", "quicgo"), ("quicgo", "aioquic"), ("aioquic", "ngtcp2")]


@pytest.mark.parametrize(("client", "server"), RETRY, ids=_ids(RETRY))
def test_retry(peer_harness: PeerHarness, pki: Pki, www: WwwDir, udp_port: int,
               client: str, server: str) -> None:
    """Servers that force a Retry are still reachable by the clients."""
    h = peer_harness
    _serve(h, server, pki, www, udp_port, retry=True)
    out = _download(h, client, [url_for("127.0.0.1", udp_port, "index.html")], pki)
    assert out.finished.returncode == 0 and out.results[0].ok, out.describe()
    assert sha256_file(out.results[0].file) == www.sha256["index.html"]


@pytest.mark.parametrize("client", ["curl", "quicgo", "aioquic"])
def test_client_rejects_unknown_ca(peer_harness: PeerHarness, pki: Pki, www: WwwDir,
                                   udp_port: int, client: str) -> None:
    """Clients that verify really verify: a CA that did not sign the leaf is refused."""
    from quicreality.scenarios.peers.certs import make_test_cert

    h = peer_harness
    _serve(h, "quicgo", pki, www, udp_port)
    _, _, other_ca = make_test_cert(h.path("other-pki"))
    req = DownloadRequest(urls=(url_for("127.0.0.1", udp_port, "index.html"),),
                          out_dir=h.path("out"), ca=other_ca, timeout=10)
    out = h.download(client, req, timeout=60)
    assert out.finished.returncode != 0 or not out.results[0].ok, out.describe()
    assert not out.results[0].ok, out.describe()
    assert get_peer(client).verifies_server


def test_iperf3_tcp_loopback(peer_harness: PeerHarness) -> None:
    """iperf3 adapter: a 1 s TCP test on loopback parses to a positive rate on both sides."""
    from quicreality.scenarios.peers.base import free_udp_port

    h = peer_harness
    port = free_udp_port()  # iperf3 listens on TCP (and UDP) of the same number
    server = h.start(PeerProcess(iperf3_peer.server("127.0.0.1", port), name="iperf3-server",
                                 log_dir=h.path("logs")))
    server.wait_tcp_ready(port)
    client_cmd = iperf3_peer.client(iperf3_peer.IperfRequest(host="127.0.0.1", port=port,
                                                             seconds=1))
    fin = h.start(PeerProcess(client_cmd, name="iperf3-client", log_dir=h.path("logs"))).wait(30)
    assert fin.returncode == 0, fin.stderr + fin.stdout[-2000:]
    summary = iperf3_peer.parse(fin.stdout)
    assert summary.protocol == "TCP" and summary.error is None
    assert summary.bits_per_second > 1e8, summary
    srv = server.wait(15)
    assert iperf3_peer.parse(srv.stdout).bits_per_second > 1e8
