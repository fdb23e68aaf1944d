"""Client active migration over loopback through the CLI: ``client --migrate`` against
``server --preferred-address`` (RFC 9000 §9.6) and against a server without one (new port)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from quicreality.scenarios.peers.certs import make_test_cert

pytestmark = pytest.mark.timeout(120)
PY = sys.executable
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "quicreality", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def custom_events(qlogs: Path, suffix: str) -> list[dict[str, Any]]:
    out = []
    for path in qlogs.glob(f"*_{suffix}.sqlog"):
        for record in path.read_text().split("\x1e"):
            record = record.strip()
            if record:
                event = json.loads(record)
                if str(event.get("name", "")).startswith("transport:path_"):
                    out.append(event)
    return out


def transfer(tmp_path: Path, *server_args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    cert, key, _ = make_test_cert(tmp_path / "pki")
    www = tmp_path / "www"
    www.mkdir()
    data = os.urandom(2_000_000)
    (www / "file.bin").write_bytes(data)
    port = free_port()
    qlogs = tmp_path / "qlog"
    server = subprocess.Popen([PY, "-m", "quicreality", "server", "--listen", f"127.0.0.1:{port}",
                               "--cert", str(cert), "--key", str(key), "--www", str(www),
                               "--qlog-dir", str(qlogs), *server_args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        assert "listening on" in server.stdout.readline()
        out = tmp_path / "out"
        got = run("client", f"https://127.0.0.1:{port}/file.bin", "-o", str(out), "--insecure",
                  "--migrate", "--qlog-dir", str(qlogs), "-v")
        assert got.returncode == 0, got.stdout + got.stderr[-2000:]
        assert hashlib.sha256((out / "file.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
    finally:
        server.terminate()
        server.wait(10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not list(qlogs.glob("*_server.sqlog")):
        time.sleep(0.1)
    return got, qlogs


def test_client_migrates_to_the_preferred_address(tmp_path: Path) -> None:
    pport = free_port("127.0.0.2")
    got, qlogs = transfer(tmp_path, "--preferred-address", f"127.0.0.2:{pport}")
    assert f"-> ('127.0.0.2', {pport})" in got.stderr
    client = custom_events(qlogs, "client")
    server = custom_events(qlogs, "server")
    moved = [e["data"] for e in client if e["name"] == "transport:path_updated"]
    assert moved and moved[0]["preferred_address"] is True and moved[0]["new"] == ["127.0.0.2", pport]
    assert [e for e in client if e["name"] == "transport:path_validated"]
    # The server saw the client's new port and validated it in turn.
    followed = [e["data"] for e in server if e["name"] == "transport:path_updated"]
    assert followed and followed[0]["trigger"] == "peer_migrated" and followed[0]["port_only"]
    assert [e for e in server if e["name"] == "transport:path_validated"]


def test_client_migrates_to_a_new_port_without_preferred_address(tmp_path: Path) -> None:
    got, qlogs = transfer(tmp_path)
    assert "migrated: local" in got.stderr
    client = custom_events(qlogs, "client")
    moved = [e["data"] for e in client if e["name"] == "transport:path_updated"]
    assert moved and moved[0]["preferred_address"] is False
    server = custom_events(qlogs, "server")
    assert [e for e in server if e["name"] == "transport:path_validated"]


def test_bad_preferred_address_is_a_usage_error(tmp_path: Path) -> None:
    cert, key, _ = make_test_cert(tmp_path / "pki")
    for value, needle in (("localhost:4433", "IP address literal"), ("127.0.0.1:0", "port other")):
        proc = run("server", "--listen", "127.0.0.1:0", "--cert", str(cert), "--key", str(key),
                   "--preferred-address", value, timeout=30)
        assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
