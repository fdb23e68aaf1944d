"""ECN at the asyncio edge on loopback: the TOS / Traffic Class byte really is set on send and
read on receive (IP_TOS / IPV6_TCLASS, IP_RECVTOS / IPV6_RECVTCLASS), with GSO and GRO on; and
our client and server validate ECN with each other over IPv4 and IPv6 (qlog as the oracle)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quicreality.aio.udp import UdpIO, open_udp_socket
from quicreality.quic.connection.ecn import ECN_CE, ECN_ECT0, ECN_NOT_ECT
from quicreality.scenarios.peers.certs import make_test_cert

pytestmark = pytest.mark.timeout(120)
PY = sys.executable
ROOT = Path(__file__).resolve().parents[2]


def _recv(io: UdpIO, want: int) -> list[tuple[bytes, object, int]]:
    got: list[tuple[bytes, object, int]] = []
    deadline = time.monotonic() + 3
    while len(got) < want and time.monotonic() < deadline:
        got.extend(io.recv_batch())
        time.sleep(0.005)
    return got


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_codepoints_set_and_read_through_the_kernel(host: str) -> None:
    rx_sock, tx_sock = open_udp_socket(host, 0), open_udp_socket(host, 0)
    try:
        rx, tx = UdpIO(rx_sock, gro=True), UdpIO(tx_sock, gso=True)
        assert rx.ecn and tx.ecn
        dest = rx_sock.getsockname()
        # a GSO run of ten marked ECT(0), then one CE, then one unmarked
        assert tx.send([(bytes([i]) * 1200, dest) for i in range(10)], ECN_ECT0) == 12_000
        tx.send([(b"ce", dest)], ECN_CE)
        tx.send([(b"plain", dest)], ECN_NOT_ECT)
        got = _recv(rx, 12)
        assert [(len(d), e) for d, _, e in got] == [(1200, ECN_ECT0)] * 10 + \
            [(2, ECN_CE), (5, ECN_NOT_ECT)]
        assert tx.gso
    finally:
        rx_sock.close()
        tx_sock.close()


def test_ecn_off_reads_nothing_and_sets_nothing() -> None:
    rx_sock, tx_sock = open_udp_socket("127.0.0.1", 0), open_udp_socket("127.0.0.1", 0)
    try:
        rx, tx = UdpIO(rx_sock, ecn=False), UdpIO(tx_sock, ecn=False)
        tx.send([(b"x", rx_sock.getsockname())], ECN_ECT0)
        assert tx_sock.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 0
        assert [e for _, _, e in _recv(rx, 1)] == [0]
    finally:
        rx_sock.close()
        tx_sock.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_test_cert(tmp_path_factory.mktemp("pki"))


def _free_port(family: socket.AddressFamily, host: str) -> int:
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _qlog_ecn(path: Path) -> tuple[list[str], int]:
    """ECN states a qlog went through, and the largest ECT(0) count in ACKs it received."""
    states, ect0 = [], 0
    for rec in path.read_text().split("\x1e"):
        if not rec.strip():
            continue
        ev = json.loads(rec)
        if ev.get("name") == "recovery:ecn_state_updated":
            states.append(ev["data"]["new"])
        if ev.get("name") == "transport:packet_received":
            for fr in ev["data"].get("frames", ()):
                if fr.get("frame_type") == "ack":
                    ect0 = max(ect0, fr.get("ect0", 0))
    return states, ect0


@pytest.mark.parametrize("host, ecn", [("127.0.0.1", True), ("::1", True), ("127.0.0.1", False)],
                         ids=["v4", "v6", "v4-no-ecn"])
def test_our_pair_validates_ecn_over_loopback(tmp_path: Path, certs: tuple[Path, Path, Path],
                                              host: str, ecn: bool) -> None:
    cert, key, ca = certs
    www = tmp_path / "www"
    www.mkdir()
    data = os.urandom(500_000)
    (www / "f.bin").write_bytes(data)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    port = _free_port(family, host)
    literal = f"[{host}]" if ":" in host else host
    flag = "--ecn" if ecn else "--no-ecn"
    server = subprocess.Popen(
        [PY, "-m", "quicreality", "server", "--listen", f"{literal}:{port}", "--cert", str(cert),
         "--key", str(key), "--www", str(www), "--qlog-dir", str(tmp_path / "sq"), flag],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        assert "listening on" in server.stdout.readline()
        out = tmp_path / "out"
        ok = subprocess.run(
            [PY, "-m", "quicreality", "client", f"https://{literal}:{port}/f.bin", "-o", str(out),
             "--ca", str(ca), "--server-name", "localhost", "--qlog-dir", str(tmp_path / "cq"),
             flag], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert hashlib.sha256((out / "f.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
    finally:
        server.terminate()
        server.wait(10)
    (client_qlog,) = (tmp_path / "cq").glob("*_client.sqlog")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not list((tmp_path / "sq").glob("*_server.sqlog")):
        time.sleep(0.1)
    (server_qlog,) = (tmp_path / "sq").glob("*_server.sqlog")
    c_states, c_ect0 = _qlog_ecn(client_qlog)
    s_states, s_ect0 = _qlog_ecn(server_qlog)
    if ecn:
        # Each side's marks arrived (the peer counted them in ACK_ECN) and validated.
        assert c_states[-1] == "capable" and s_states[-1] == "capable", (c_states, s_states)
        assert s_ect0 > 300  # the server saw the client count its ~400 marked 1-RTT packets
        assert c_ect0 > 0
    else:
        assert c_states == [] and s_states == [] and c_ect0 == 0 and s_ect0 == 0
