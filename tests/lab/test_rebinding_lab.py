"""NAT rebinding through the emulator's rebinding stage, checked on the wire as QIR checks it.

Our server runs in the server namespace; a client (ours, quic-go's qrgo, ngtcp2's gtlsclient)
downloads a file while the emulator's NAT gives the client a new port (or address and port)
every 1.5 s. From the server-side capture, decrypted with the server's key log: every new path
the server sends on starts with a PATH_CHALLENGE, every challenge is answered by a
PATH_RESPONSE from the client, more than one path (address) was used, and the body is
byte-exact (QIR ``rebind-port`` / ``rebind-addr``, testcases_quic.py).

A client with zero-length connection IDs (qrgo: quic-go's client owns its socket) leaves tshark
no way to attach the server's packets on a new path to the connection ("Unknown QUIC
connection"), so they cannot be decrypted. For those packets the server's qlog says which
PATH_CHALLENGE it sent, and the capture must show the client echoing each of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from quicreality.scenarios.capture import start_capture, tshark_fields
from quicreality.scenarios.model import Impairment, Link, Rebind
from quicreality.scenarios.pathcheck import PATH_FIELDS, PathVerdict, path_verdict, qlog_sent_challenges
from quicreality.scenarios.peers import DownloadRequest, get_peer
from quicreality.scenarios.peers.certs import make_test_cert
from quicreality.scenarios.topology import ADDRESSES, LINK_IF, Topology, new_run_id

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
SIZE = 6_000_000
PORT = 443


@pytest.fixture(autouse=True)
def _preconditions() -> None:
    assert os.geteuid() == 0, "lab tests need root (network namespaces, TUN): run them as root"
    missing = [t for t in ("tcpdump", "tshark") if shutil.which(t) is None]
    assert not missing, f"not installed: {', '.join(missing)}: run scripts/setup.sh"


def run_rebinding(tmp_path: Path, client: str, kind: str | None, *,
                  migrate: bool = False) -> tuple[PathVerdict, dict[str, Any]]:
    """One download through the emulator: with ``kind`` the NAT rebinds; with ``migrate`` the
    server offers ADDRESSES["server_preferred"] and our client gets ``--migrate``."""
    cert, key, ca = make_test_cert(tmp_path / "pki", extra_sans=[ADDRESSES["server"]])
    www = tmp_path / "www"
    www.mkdir()
    body = os.urandom(SIZE)
    (www / "file.bin").write_bytes(body)
    link = Link(to_server=Impairment(delay_ms=10, rate_mbit=20, queue_packets=100),
                to_client=Impairment(delay_ms=10, rate_mbit=20, queue_packets=100),
                rebind=Rebind(kind=kind, first_s=0.6, interval_s=1.5) if kind else None)
    preferred = (ADDRESSES["server_preferred"], PORT)
    extra = ["--preferred-address", f"{preferred[0]}:{PORT}"] if migrate else []
    keys = tmp_path / "server.keys"
    qlogs = tmp_path / "qlog"
    with Topology.create(new_run_id(), link, seed=5, workdir=str(tmp_path)) as topo:
        cap = start_capture(topo.exec_argv("server", []), LINK_IF, str(tmp_path / "server.pcap"),
                            f"udp port {PORT}")
        server = topo.popen("server", [sys.executable, "-m", "quicreality", "server",
                                       "--listen", f"{topo.addr('server')}:{PORT}",
                                       "--cert", str(cert), "--key", str(key), "--www", str(www),
                                       "--keylog", str(keys), "--qlog-dir", str(qlogs), *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert server.stdout is not None and "listening on" in server.stdout.readline()
        url = f"https://{topo.addr('server')}:{PORT}/file.bin"
        cmd = get_peer(client).download(DownloadRequest(
            urls=(url,), out_dir=tmp_path / "out", ca=ca, keylog=tmp_path / "client.keys",
            timeout=90))
        if migrate and client == "ours":
            argv = list(cmd.argv)
            argv.insert(argv.index("client") + 1, "--migrate")
            cmd = dataclasses.replace(cmd, argv=tuple(argv))
        cmd.prepare()
        (tmp_path / "out").mkdir(exist_ok=True)
        topo.rearm()  # the NAT's schedule starts with the download
        done = subprocess.run(topo.exec_argv("client", list(cmd.argv)), env=cmd.full_env(),
                              cwd=cmd.cwd, capture_output=True, text=True, timeout=120)
        cap.stop(settle_s=0.3)
    stats = topo.emulator_stats or {}
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    got = (tmp_path / "out" / "file.bin").read_bytes()
    diff = next((i for i, (x, y) in enumerate(zip(got, body, strict=False)) if x != y), None)
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest(), \
        f"{client}: body differs: {len(got)} of {len(body)} bytes, first difference at {diff}; " \
        f"{stats.get('rebind')} {done.stdout[-600:]} {done.stderr[-1500:]}"
    rows = tshark_fields(str(tmp_path / "server.pcap"), list(PATH_FIELDS), "quic", keylog=str(keys))
    logged = qlog_sent_challenges(p.read_text() for p in qlogs.glob("*_server.sqlog"))
    verdict = path_verdict(rows, [(topo.addr("server"), PORT), preferred],
                           logged_challenges=logged, need_new_address=kind == "addr")
    facts = {"rebinds": stats.get("rebind", {}).get("rebinds"),
             "dropped_stale": stats.get("rebind", {}).get("dropped_stale")}
    print(client, kind, verdict, facts)
    return verdict, facts


@pytest.mark.parametrize("client", ["ours", "quicgo", "ngtcp2"])
def test_port_rebinding_on_the_wire(tmp_path: Path, client: str) -> None:
    verdict, facts = run_rebinding(tmp_path, client, "port")
    assert verdict.ok, f"{verdict} {facts}"
    assert facts["rebinds"] and facts["rebinds"] >= 1
    assert verdict.challenges >= 1


@pytest.mark.parametrize("client", ["ours", "quicgo"])
def test_address_rebinding_on_the_wire(tmp_path: Path, client: str) -> None:
    verdict, facts = run_rebinding(tmp_path, client, "addr")
    assert verdict.ok, f"{verdict} {facts}"
    assert len(verdict.client_addresses) >= 2, verdict


@pytest.mark.parametrize("client", ["ours", "ngtcp2"])
def test_connection_migration_to_our_preferred_address(tmp_path: Path, client: str) -> None:
    """QIR ``connectionmigration`` with us as the server: the client moves to the preferred
    address across the emulated link; the server challenges the new path and it is answered."""
    verdict, _ = run_rebinding(tmp_path, client, None, migrate=True)
    assert verdict.ok, verdict
    assert any(p[0] == ADDRESSES["server_preferred"] for p in verdict.paths), verdict
