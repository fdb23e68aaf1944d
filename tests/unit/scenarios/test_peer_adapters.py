"""Peer adapters are pure: argv lists, env and parsed results, no processes started."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from quicreality.scenarios.peers import (
    DownloadRequest,
    ServeRequest,
    Unsupported,
    get_peer,
    ngtcp2,
    paths,
    peer_names,
)
from quicreality.scenarios.peers import iperf3 as iperf3_peer
from quicreality.scenarios.peers.base import (
    canonical_cipher,
    out_name,
    pattern_bytes,
    pattern_sha256,
    results_from_json_lines,
    url_for,
)


@pytest.fixture(autouse=True)
def fake_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("curl_h3", "qrgo", "gtlsclient", "gtlsserver", "iperf3"):
        monkeypatch.setattr(paths, name, lambda name=name: Path(f"/fake/{name}"))
    monkeypatch.setattr(paths, "aioquic_script", lambda n: Path(f"/fake/interop/{n}"))


SERVE = ServeRequest(www=Path("/w"), port=4433, cert=Path("/c.pem"), key=Path("/k.pem"),
                     qlog_dir=Path("/q"), keylog=Path("/keys"))
DL = DownloadRequest(urls=("https://127.0.0.1:4433/10M.bin", "https://127.0.0.1:4433/bytes/7"),
                     out_dir=Path("/o"), ca=Path("/ca.pem"), qlog_dir=Path("/qc"),
                     keylog=Path("/ck"))


def test_registry_names_every_peer() -> None:
    assert set(peer_names()) >= {"curl", "ngtcp2", "quicgo", "aioquic", "qh3", "ours"}
    assert get_peer("curl").roles == frozenset({"client"})
    assert get_peer("ngtcp2").roles == frozenset({"client", "server"})
    with pytest.raises(KeyError, match="known"):
        get_peer("nope")


@pytest.mark.parametrize("name", ["ngtcp2", "quicgo", "aioquic", "qh3", "ours"])
def test_serve_commands_are_argv_lists_of_str(name: str) -> None:
    cmd = get_peer(name).serve(SERVE)  # type: ignore[misc]
    assert isinstance(cmd.argv, tuple) and all(isinstance(a, str) for a in cmd.argv)
    assert "4433" in " ".join(cmd.argv)


@pytest.mark.parametrize("name", ["curl", "ngtcp2", "quicgo", "aioquic", "qh3", "ours"])
def test_download_commands_are_argv_lists_of_str(name: str) -> None:
    cmd = get_peer(name).download(DL)  # type: ignore[misc]
    assert all(isinstance(a, str) for a in cmd.argv)
    assert DL.urls[0] in cmd.argv
    keylog_in_env = cmd.env.get("SSLKEYLOGFILE") == "/ck"
    keylog_in_argv = "/ck" in cmd.argv
    assert keylog_in_env or keylog_in_argv


def test_qh3_runs_the_aioquic_scripts_on_qh3_with_reno_only() -> None:
    from dataclasses import replace

    from quicreality.scenarios.peers import Unsupported

    qh3, aio = get_peer("qh3"), get_peer("aioquic")
    assert qh3.serve(SERVE).argv == aio.serve(SERVE).argv  # type: ignore[misc]
    assert qh3.serve(SERVE).env["QR_PEER_IMPL"] == "qh3"  # type: ignore[misc]
    assert qh3.download(DL).env["QR_PEER_IMPL"] == "qh3"  # type: ignore[misc]
    assert "QR_PEER_IMPL" not in aio.download(DL).env  # type: ignore[misc]
    with pytest.raises(Unsupported, match="reno only"):
        qh3.serve(replace(SERVE, congestion="cubic"))  # type: ignore[misc]


def test_ngtcp2_argv_order_and_env() -> None:
    cmd = ngtcp2.serve(SERVE)
    assert cmd.argv[-4:] == ("127.0.0.1", "4433", "/k.pem", "/c.pem")  # ADDR PORT KEY CERT
    assert cmd.env == {"SSLKEYLOGFILE": "/keys"}
    assert Path("/q") in cmd.make_dirs
    dl = ngtcp2.download(DL)
    assert dl.argv[-4:-2] == ("127.0.0.1", "4433")
    assert "--download=/o" in dl.argv and Path("/o") in dl.make_dirs


def test_ngtcp2_cipher_is_a_gnutls_priority_string() -> None:
    cmd = ngtcp2.serve(ServeRequest(www=Path("/w"), port=1, cert=Path("c"), key=Path("k"),
                                    cipher="TLS_CHACHA20_POLY1305_SHA256"))
    assert "--ciphers=NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305" in cmd.argv


def test_ngtcp2_client_needs_one_authority() -> None:
    with pytest.raises(ValueError):
        ngtcp2.download(DownloadRequest(urls=("https://a:1/x", "https://b:1/x"), out_dir=Path("/o")))


def test_ngtcp2_parse_statuses_by_stream(tmp_path: Path) -> None:
    req = DownloadRequest(urls=("https://h:1/a", "https://h:1/b"), out_dir=tmp_path)
    (tmp_path / "a").write_bytes(b"x" * 5)
    (tmp_path / "b").write_bytes(b"nf")
    log = "http: stream 0x4 [:status: 404]\nhttp: stream 0x0 [:status: 200]\n"
    a, b = ngtcp2.parse("", log, req)
    assert (a.status, a.bytes, a.ok) == (200, 5, True)
    assert (b.status, b.ok) == (404, False)


def test_curl_cipher_unsupported_and_json_parsed(tmp_path: Path) -> None:
    curl = get_peer("curl")
    with pytest.raises(Unsupported):
        curl.download(DownloadRequest(urls=("https://h:1/a",), out_dir=tmp_path, cipher="chacha20"))
    req = DownloadRequest(urls=("https://h:1/a", "https://h:1/b"), out_dir=tmp_path)
    out = "\n".join(json.dumps(o) for o in [
        {"urlnum": 0, "response_code": 200, "http_version": "3", "size_download": 10,
         "time_total": 0.5, "exitcode": 0, "certs": "PEM..."},
        {"urlnum": 1, "response_code": 0, "http_version": "0", "size_download": 0,
         "time_total": 0.1, "exitcode": 7, "errormsg": "Failed to connect"}])
    a, b = curl.parse(out, "", req)  # type: ignore[misc]
    assert (a.status, a.bytes, a.proto, a.ok) == (200, 10, "HTTP/3", True)
    assert "certs" not in a.raw
    assert not b.ok and b.error == "Failed to connect"


def test_json_lines_results_mark_missing_urls() -> None:
    req = DownloadRequest(urls=("https://h:1/a", "https://h:1/b"), out_dir=Path("/o"))
    out = 'noise\n{"url":"https://h:1/a","status":200,"bytes":3,"secs":0.1,"proto":"HTTP/3.0"}\n'
    a, b = results_from_json_lines(out, req)
    assert a.ok and a.bytes == 3 and a.file == Path("/o/a")
    assert b.error == "no output" and not b.ok


def test_ours_parse_is_lenient(tmp_path: Path) -> None:
    req = DownloadRequest(urls=("https://h:1/a", "https://h:1/b"), out_dir=tmp_path)
    (tmp_path / "b").write_bytes(b"12345")
    out = "GET https://h:1/a status=200 bytes=7 secs=0.25s\nhttps://h:1/b status: 200\n"
    a, b = get_peer("ours").parse(out, "", req)  # type: ignore[misc]
    assert (a.status, a.bytes, a.secs) == (200, 7, 0.25)
    assert (b.status, b.bytes) == (200, 5)


def test_cipher_names_and_helpers() -> None:
    assert canonical_cipher("chacha20") == "TLS_CHACHA20_POLY1305_SHA256"
    assert canonical_cipher("aes_128_gcm_sha256") == "TLS_AES_128_GCM_SHA256"
    with pytest.raises(ValueError):
        canonical_cipher("rc4")
    assert out_name("https://h:1/") == "index.html"
    assert out_name("https://h:1/x/y.bin?q=1") == "y.bin"
    assert url_for("::1", 5, "/a") == "https://[::1]:5/a"


def test_pattern_sha256_matches_pattern_bytes() -> None:
    for n in (0, 1, 255, 256, 1_000_003, (1 << 20) + 17):
        assert pattern_sha256(n) == hashlib.sha256(pattern_bytes(n)).hexdigest()
    assert pattern_bytes(3, offset=255) == b"\xff\x00\x01"


def test_iperf3_argv_and_parse() -> None:
    cmd = iperf3_peer.client(iperf3_peer.IperfRequest(host="127.0.0.1", port=5201, udp=True,
                                                      rate="50M", length=1200, reverse=True))
    assert cmd.argv[1:] == ("-c", "127.0.0.1", "-p", "5201", "-t", "3", "-J", "-R", "-u", "-b",
                            "50M", "-l", "1200")
    tcp = {"start": {"test_start": {"protocol": "TCP"}},
           "end": {"sum_sent": {"bits_per_second": 2e9, "retransmits": 3},
                   "sum_received": {"bits_per_second": 1.9e9, "seconds": 1.0, "bytes": 10}}}
    s = iperf3_peer.parse(json.dumps(tcp))
    assert (s.protocol, s.bits_per_second, s.retransmits) == ("TCP", 1.9e9, 3)
    udp = {"start": {"test_start": {"protocol": "UDP"}},
           "end": {"sum": {"bits_per_second": 5e7, "seconds": 3.0, "bytes": 9, "lost_percent": 1.5,
                           "jitter_ms": 0.1}}}
    u = iperf3_peer.parse(json.dumps(udp))
    assert (u.protocol, u.lost_percent, u.jitter_ms) == ("UDP", 1.5, 0.1)


def test_missing_peer_says_run_setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.undo()  # the real lookup functions
    monkeypatch.setenv("QR_PEERS_DIR", str(tmp_path))
    with pytest.raises(paths.PeerNotInstalled, match=r"run scripts/setup\.sh"):
        paths.curl_h3()
