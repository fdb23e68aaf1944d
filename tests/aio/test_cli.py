"""The CLI contract: clear one-line errors with non-zero exits, and a loopback round trip."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quicreality.scenarios.peers.certs import make_test_cert

pytestmark = pytest.mark.timeout(120)
PY = sys.executable


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "quicreality", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=Path(__file__).resolve().parents[2])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_test_cert(tmp_path_factory.mktemp("pki"))


def one_error_line(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]


def test_server_bad_address(certs: tuple[Path, Path, Path]) -> None:
    cert, key, _ = certs
    one_error_line(run("server", "--listen", "nonsense", "--cert", str(cert), "--key", str(key)),
                   "HOST:PORT")


def test_server_missing_cert(tmp_path: Path, certs: tuple[Path, Path, Path]) -> None:
    _, key, _ = certs
    one_error_line(run("server", "--listen", "127.0.0.1:0", "--cert", str(tmp_path / "nope.pem"),
                       "--key", str(key)), "nope.pem")


def test_server_garbage_cert(tmp_path: Path, certs: tuple[Path, Path, Path]) -> None:
    _, key, _ = certs
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    one_error_line(run("server", "--listen", "127.0.0.1:0", "--cert", str(bad), "--key", str(key)),
                   "certificate")


def test_server_unreadable_www(tmp_path: Path, certs: tuple[Path, Path, Path]) -> None:
    cert, key, _ = certs
    one_error_line(run("server", "--listen", "127.0.0.1:0", "--cert", str(cert), "--key", str(key),
                       "--www", str(tmp_path / "missing")), "not a readable directory")


def test_server_port_in_use(certs: tuple[Path, Path, Path]) -> None:
    cert, key, _ = certs
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        one_error_line(run("server", "--listen", f"127.0.0.1:{port}", "--cert", str(cert),
                           "--key", str(key)), "cannot listen")


def test_client_bad_url() -> None:
    one_error_line(run("client", "http://example/", "--insecure"), "expected https://")


def test_client_needs_a_trust_choice() -> None:
    one_error_line(run("client", "https://127.0.0.1:1/x"), "--insecure or --ca")


def test_client_unknown_cipher() -> None:
    one_error_line(run("client", "https://127.0.0.1:1/x", "--insecure", "--cipher-suites", "RC4"),
                   "unknown cipher suite")


@pytest.mark.parametrize(("versions", "needle"), [
    ("v3", "unknown QUIC version 'v3'"),
    ("v1,v1", "listed twice"),
    ("0x1a2a3a4a", "list v1 or v2 too"),
    ("0x12345678,v1", "we speak only v1 and v2, not 0x12345678"),
])
def test_client_bad_versions(versions: str, needle: str) -> None:
    one_error_line(run("client", "https://127.0.0.1:1/x", "--insecure", "--versions", versions),
                   needle)


def test_server_refuses_reserved_versions(certs: tuple[Path, Path, Path]) -> None:
    cert, key, _ = certs
    one_error_line(run("server", "--listen", "127.0.0.1:0", "--cert", str(cert), "--key", str(key),
                       "--versions", "0x1a2a3a4a,v1"), "we speak only v1 and v2")


def test_client_reports_unreachable_server_and_exits_1() -> None:
    port = free_port()
    proc = run("client", f"https://127.0.0.1:{port}/x", "--insecure", "--timeout", "3")
    assert proc.returncode == 1
    assert "FAILED" in proc.stdout
    assert "1 of 1 downloads failed" in proc.stderr


def test_round_trip_with_ca_verification_and_404(tmp_path: Path,
                                                  certs: tuple[Path, Path, Path]) -> None:
    cert, key, ca = certs
    www = tmp_path / "www"
    www.mkdir()
    data = os.urandom(300_000)
    (www / "file.bin").write_bytes(data)
    port = free_port()
    qlogs = tmp_path / "qlog"
    server = subprocess.Popen([PY, "-m", "quicreality", "server", "--listen", f"127.0.0.1:{port}",
                               "--cert", str(cert), "--key", str(key), "--www", str(www),
                               "--qlog-dir", str(qlogs)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert "listening on" in server.stdout.readline()
        out = tmp_path / "out"
        ok = run("client", f"https://127.0.0.1:{port}/file.bin", f"https://127.0.0.1:{port}/bytes/1234",
                 "-o", str(out), "--ca", str(ca), "--keylog", str(tmp_path / "keys"))
        assert ok.returncode == 0, ok.stdout + ok.stderr
        lines = ok.stdout.splitlines()
        assert len(lines) == 2 and all("Mbit/s" in ln for ln in lines)
        assert hashlib.sha256((out / "file.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
        assert (out / "1234").stat().st_size == 1234
        assert "CLIENT_TRAFFIC_SECRET_0" in (tmp_path / "keys").read_text()
        missing = run("client", f"https://127.0.0.1:{port}/missing", "--ca", str(ca))
        assert missing.returncode == 1 and "HTTP status 404" in missing.stdout
        wrong_name = run("client", f"https://127.0.0.1:{port}/file.bin", "--ca", str(ca),
                         "--server-name", "other.example")
        assert wrong_name.returncode == 1 and "FAILED" in wrong_name.stdout
    finally:
        server.terminate()
        server.wait(10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not list(qlogs.glob("*_server.sqlog")):
        time.sleep(0.1)
    assert list(qlogs.glob("*_server.sqlog"))


def test_server_shutdown_sends_goaway_and_close(tmp_path: Path,
                                                certs: tuple[Path, Path, Path]) -> None:
    """SIGTERM mid-download: the server says GOAWAY + CONNECTION_CLOSE, so the client fails at once
    with a clear reason instead of waiting for the idle timeout."""
    import signal

    cert, key, ca = certs
    port = free_port()
    server = subprocess.Popen([PY, "-m", "quicreality", "server", "--listen", f"127.0.0.1:{port}",
                               "--cert", str(cert), "--key", str(key)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = None
    try:
        assert server.stdout is not None
        assert "listening on" in server.stdout.readline()
        client = subprocess.Popen([PY, "-m", "quicreality", "client", "--ca", str(ca),
                                   f"https://127.0.0.1:{port}/bytes/100000000000"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.0)
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0
        t0 = time.monotonic()
        out, err = client.communicate(timeout=20)
        assert client.returncode == 1
        assert time.monotonic() - t0 < 10
        assert "FAILED" in out and ("server shutting down" in out or "GOAWAY" in out), out + err
    finally:
        for proc in (client, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_every_subcommand_gets_its_transport_options() -> None:
    """relay-client has no --versions (it speaks the default, v1); it must still start (the v2
    merge once made every relay-client die with AttributeError: 'versions')."""
    from quicreality.cli import _transport_options, build_parser

    parser = build_parser()
    relay = parser.parse_args(["relay-client", "--server", "127.0.0.1:4433", "--insecure",
                               "--tcp-listen", "127.0.0.1:0", "--forward", "127.0.0.1:9"])
    assert "supported_versions" not in _transport_options(relay)
    client = parser.parse_args(["client", "--insecure", "--versions", "v2,v1",
                                "https://127.0.0.1:4433/"])
    assert _transport_options(client)["supported_versions"] == (0x6B3343CF, 0x00000001)


def test_connection_per_url_makes_one_connection_for_each(tmp_path: Path,
                                                          certs: tuple[Path, Path, Path]) -> None:
    cert, key, ca = certs
    www = tmp_path / "www"
    www.mkdir()
    for n in ("a", "b", "c"):
        (www / n).write_bytes(os.urandom(2000))
    port = free_port()
    server = subprocess.Popen([PY, "-m", "quicreality", "server", "--listen", f"127.0.0.1:{port}",
                               "--cert", str(cert), "--key", str(key), "--www", str(www)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    urls = [f"https://127.0.0.1:{port}/{n}" for n in ("a", "b", "c")]

    def handshakes(keys: Path) -> int:
        return sum(1 for ln in keys.read_text().splitlines()
                   if ln.startswith("CLIENT_HANDSHAKE_TRAFFIC_SECRET"))

    try:
        assert server.stdout is not None
        assert "listening on" in server.stdout.readline()
        out = tmp_path / "out"
        each = run("client", *urls, "-o", str(out), "--ca", str(ca), "--connection-per-url",
                   "--keylog", str(tmp_path / "each.keys"))
        assert each.returncode == 0, each.stdout + each.stderr
        assert len(each.stdout.splitlines()) == 3
        assert all((out / n).read_bytes() == (www / n).read_bytes() for n in ("a", "b", "c"))
        assert handshakes(tmp_path / "each.keys") == 3  # three connections, one process
        one = run("client", *urls, "--ca", str(ca), "--keylog", str(tmp_path / "one.keys"))
        assert one.returncode == 0 and handshakes(tmp_path / "one.keys") == 1
        stop = run("client", f"https://127.0.0.1:{port}/missing", *urls, "--ca", str(ca),
                   "--connection-per-url")
        assert stop.returncode == 1 and len(stop.stdout.splitlines()) == 1  # stops at the first
    finally:
        server.terminate()
        server.wait(10)
