"""The client's --session-ticket / --0rtt / --key-update flags on loopback, and their errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from test_cli import PY, certs, free_port, one_error_line, run  # noqa: F401 - certs is a fixture

pytestmark = pytest.mark.timeout(120)


def test_0rtt_needs_a_ticket_file() -> None:
    proc = run("client", "--insecure", "--0rtt", "https://127.0.0.1:1/x")
    assert proc.returncode == 2
    one_error_line(proc, "--0rtt needs --session-ticket")


def test_a_file_that_is_not_a_ticket_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "ticket"
    bad.write_bytes(b"not a ticket at all")
    proc = run("client", "--insecure", "--session-ticket", str(bad), "https://127.0.0.1:1/x")
    assert proc.returncode == 2
    one_error_line(proc, "not a quicreality session ticket")


def test_ticket_saved_then_0rtt_accepted_with_key_update(tmp_path: Path,
                                                        certs: tuple[Path, Path, Path]) -> None:  # noqa: F811
    cert, key, ca = certs
    port = free_port()
    server = subprocess.Popen([PY, "-m", "quicreality", "server", "--listen", f"127.0.0.1:{port}",
                               "--cert", str(cert), "--key", str(key)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ticket = tmp_path / "ticket"
    try:
        assert server.stdout is not None
        assert "listening on" in server.stdout.readline()
        seen = []
        for _ in range(2):
            proc = run("client", "--ca", str(ca), "--server-name", "localhost", "--json",
                       "--session-ticket", str(ticket), "--0rtt", "--key-update",
                       f"https://127.0.0.1:{port}/bytes/300000")
            assert proc.returncode == 0, proc.stderr
            line = json.loads(proc.stdout.strip().splitlines()[-1])
            assert line["bytes"] == 300000 and line["error"] is None
            seen.append(line["early_data"])
            assert ticket.exists() and os.stat(ticket).st_mode & 0o777 == 0o600
        assert seen == ["none", "accepted"]
    finally:
        server.terminate()
        server.wait(10)
