"""The chromium peer adapter: pure argv builders, the SPKI pin, and the runner's verdicts
(driven by a stand-in binary; the real Chromium runs in tests/interop/test_fingerprint_chromium.py)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from quicreality.scenarios.peers import DownloadRequest, Unsupported, chromium, get_peer
from quicreality.scenarios.peers.certs import make_test_cert


def _flag(argv: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in argv if a.startswith(name + "="))


def test_argv_forces_quic_and_keeps_chromium_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chromium, "binary", lambda: Path("/x/chromium"))
    argv = chromium.chromium_argv("https://localhost:4433/index.html", profile=Path("/p"),
                                  pins=["AAA=", "BBB="], netlog=Path("/n.json"))
    assert argv[0] == "/x/chromium" and "--headless" in argv and argv[-2:] == [
        "--dump-dom", "https://localhost:4433/index.html"]
    assert _flag(argv, "--origin-to-force-quic-on") == "localhost:4433"
    assert _flag(argv, "--host-resolver-rules") == (
        "MAP localhost 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
    assert _flag(argv, "--ignore-certificate-errors-spki-list") == "AAA=,BBB="
    assert _flag(argv, "--user-data-dir") == "/p" and _flag(argv, "--log-net-log") == "/n.json"
    ip = chromium.chromium_argv("https://127.0.0.1:9/", profile=Path("/p"))
    assert _flag(ip, "--host-resolver-rules") == "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
    assert not any(a.startswith("--ignore-certificate-errors") for a in ip)


def test_spki_pin_matches_openssl(tmp_path: Path) -> None:
    cert, _, _ = make_test_cert(tmp_path)
    pub = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         capture_output=True, check=True).stdout
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der,
                            capture_output=True, check=True).stdout
    assert chromium.spki_pin(cert.read_bytes()) == base64.b64encode(digest).decode()


def test_download_runs_the_runner_with_the_request(tmp_path: Path) -> None:
    spec = get_peer("chromium")
    assert spec.roles == frozenset({"client"})
    req = DownloadRequest(urls=("https://localhost:4433/a.html",), out_dir=tmp_path / "o",
                          ca=tmp_path / "ca.pem", keylog=tmp_path / "k", qlog_dir=tmp_path / "q")
    argv = list(spec.download(req).argv)
    assert argv[1:3] == ["-m", "quicreality.scenarios.peers.chromium"]
    assert argv[argv.index("--out") + 1] == str(tmp_path / "o" / "a.html")
    assert argv[argv.index("--ca") + 1] == str(tmp_path / "ca.pem")
    assert argv[argv.index("--netlog") + 1] == str(tmp_path / "q" / "chromium-netlog.json")
    with pytest.raises(Unsupported):
        spec.download(DownloadRequest(urls=req.urls, out_dir=tmp_path, insecure=True))
    with pytest.raises(Unsupported):
        spec.download(DownloadRequest(urls=req.urls, out_dir=tmp_path, cipher="AES128"))
    with pytest.raises(ValueError, match="one URL"):
        spec.download(DownloadRequest(urls=req.urls * 2, out_dir=tmp_path))
    dbs = chromium.nss_db_argvs(Path("/h"), Path("/ca.pem"))
    assert [a[a.index("-d") + 1] for a in dbs] == ["sql:/h/.pki/nssdb"] * 2
    assert dbs[1][-2:] == ["-i", "/ca.pem"] and "C,," in dbs[1]


def _fake_chromium(tmp_path: Path, body: str) -> Path:
    exe = tmp_path / "fake-chromium"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(0o755)
    return exe


def test_runner_reports_a_failed_page_although_chromium_exits_0(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, _, _ = make_test_cert(tmp_path / "pki")
    monkeypatch.setattr(chromium, "binary", lambda: _fake_chromium(
        tmp_path, "echo '[1:2:ERROR:headless_command_handler.cc:403] Page load failed: "
                  "net::ERR_QUIC_PROTOCOL_ERROR' >&2; exit 0"))
    res = chromium.fetch("https://localhost:1/", out=tmp_path / "dom.html", pin_certs=[cert])
    assert res["error"] == "net::ERR_QUIC_PROTOCOL_ERROR" and res["proto"] is None
    monkeypatch.setattr(chromium, "binary", lambda: _fake_chromium(
        tmp_path, 'echo "HOME=$HOME KEYS=$SSLKEYLOGFILE"; echo "<html></html>"'))
    res = chromium.fetch("https://localhost:1/", out=tmp_path / "dom.html", pin_certs=[cert],
                         keylog=tmp_path / "k.log")
    dom = (tmp_path / "dom.html").read_text()
    assert res["error"] is None and res["bytes"] == len(dom.encode())
    assert f"KEYS={tmp_path / 'k.log'}" in dom and "/qrchromium-" in dom  # throwaway HOME
    home = dom.split("HOME=")[1].split()[0]
    assert not Path(home).exists()  # removed after the run
