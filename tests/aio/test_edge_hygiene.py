"""The asyncio edge's secrets hygiene and timer guard (audit finding 12).

* Servers write key logs only when their command line asks (``--keylog``), never because
  ``SSLKEYLOGFILE`` is set; clients honour ``SSLKEYLOGFILE`` (the curl convention). Key logs are
  created 0600, and an existing one that others could read is narrowed to 0600.
* An exception in a connection's timer closes that connection (INTERNAL_ERROR, fixed reason) and
  the loop keeps running the other connections' timers.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from quicreality.aio import driver as edge
from quicreality.aio.udp import open_udp_socket
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.errors import QuicErrorCode
from quicreality.scenarios.peers.certs import make_test_cert

pytestmark = pytest.mark.timeout(120)
PY = sys.executable
REPO = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- key logs ---------------------------------------------------------------------------------


def test_key_log_is_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        log = edge.KeyLogFile(tmp_path / "keys")
    finally:
        os.umask(old)
    log("CLIENT_RANDOM 00 11")
    log.close()
    assert mode(tmp_path / "keys") == 0o600


def test_existing_world_readable_key_log_is_narrowed_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("OLD\n")
    path.chmod(0o644)
    log = edge.KeyLogFile(path)
    log("NEW")
    log.close()
    assert mode(path) == 0o600
    assert path.read_text() == "OLD\nNEW\n"


def test_servers_ignore_sslkeylogfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "env.keys"))
    server = QuicConfiguration(is_client=False)
    assert edge.apply_observability(server, qlog_dir=None, keylog=None) == []
    assert server.secrets_log is None and not (tmp_path / "env.keys").exists()


def test_cli_server_writes_keys_only_to_its_keylog_option(tmp_path: Path) -> None:
    """End to end: the server's environment names a key log, its command line names another."""
    cert, key, ca = make_test_cert(tmp_path / "pki")
    with open_udp_socket("127.0.0.1", 0) as probe:
        port = probe.getsockname()[1]
    env = {**os.environ, "SSLKEYLOGFILE": str(tmp_path / "server-env.keys")}
    server = subprocess.Popen(
        [PY, "-m", "quicreality", "server", "--listen", f"127.0.0.1:{port}", "--cert", str(cert),
         "--key", str(key), "--keylog", str(tmp_path / "server.keys")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    try:
        assert server.stdout is not None and "listening on" in server.stdout.readline()
        client_env = {**os.environ, "SSLKEYLOGFILE": str(tmp_path / "client.keys")}
        got = subprocess.run(
            [PY, "-m", "quicreality", "client", f"https://127.0.0.1:{port}/bytes/10", "--ca",
             str(ca)],
            check=False, capture_output=True, text=True, timeout=60, cwd=REPO, env=client_env,
        )  # fmt: skip
        assert got.returncode == 0, got.stdout + got.stderr
    finally:
        server.terminate()
        server.wait(10)
    assert not (tmp_path / "server-env.keys").exists()
    for name in ("server.keys", "client.keys"):
        assert "SERVER_TRAFFIC_SECRET_0" in (tmp_path / name).read_text(), name
        assert mode(tmp_path / name) == 0o600, name


# --- timer guard ------------------------------------------------------------------------------


class FakeConnection:
    """The slice of QuicConnection the driver's timer path uses."""

    def __init__(self, at: float, fail: bool):
        self.timer: float | None = at
        self.fail = fail
        self.fired = 0
        self.closed: tuple[Any, ...] | None = None

    def get_timer(self) -> float | None:
        return self.timer

    def handle_timer(self, now: float) -> None:
        self.fired += 1
        if self.fail:
            raise RuntimeError("bug in a timer")
        self.timer = None

    def close(self, error_code: int, frame_type: Any, reason: str, application: bool) -> None:
        self.closed = (error_code, reason, application)
        self.timer = None

    def datagrams_to_send(self, now: float) -> list[Any]:
        return []

    @property
    def is_terminated(self) -> bool:
        return self.closed is not None


class ListDriver(edge.Driver):
    def __init__(self, sock: Any, conns: list[FakeConnection]):
        super().__init__(sock)
        self.conns = conns

    def connections(self) -> list[Any]:
        return list(self.conns)

    def handle_events(self, conn: Any, now: float) -> None:
        pass

    def connection_gone(self, conn: Any) -> None:
        if conn in self.conns:
            self.conns.remove(conn)


def test_failing_timer_closes_its_connection_and_the_loop_goes_on() -> None:
    loop_errors: list[dict[str, Any]] = []

    async def main() -> tuple[FakeConnection, FakeConnection, FakeConnection]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
        with open_udp_socket("127.0.0.1", 0) as sock:
            now = loop.time()
            bad = FakeConnection(now + 0.01, fail=True)
            good = FakeConnection(now + 0.01, fail=False)
            later = FakeConnection(now + 0.05, fail=False)  # needs the timer to be re-armed
            driver = ListDriver(sock, [bad, good, later])
            driver.service([])  # arms the timer
            await asyncio.sleep(0.15)
            driver.close()
        return bad, good, later

    bad, good, later = asyncio.run(main())
    assert loop_errors == []
    assert bad.closed == (QuicErrorCode.INTERNAL_ERROR, "internal error", False)
    assert good.fired == 1 and later.fired == 1


def test_scenario_peer_hands_our_server_its_key_log_on_the_command_line() -> None:
    from quicreality.scenarios.peers import ServeRequest, get_peer

    req = ServeRequest(
        www=Path("/w"), port=4433, cert=Path("/c"), key=Path("/k"), keylog=Path("/keys")
    )
    cmd = get_peer("ours").serve(req)  # type: ignore[misc]
    assert cmd.argv[cmd.argv.index("--keylog") + 1] == "/keys"
    assert "SSLKEYLOGFILE" not in cmd.env
