"""IPv6 and ECN through the userspace emulator on real namespaces (root, TUN).

* IPv6: our server on ``[fd00::2]``; our client and ngtcp2's gtlsclient download from it through
  the emulator; a capture on the client's ``qrlink`` shows only IPv6 (no stray router
  solicitations or MLD) and the emulator forwarded it.
* CE marking: the same 20 Mbit/s link with a deep queue, with and without
  ``ecn_mark_threshold_ms``. With marking, the emulator sets CE on our ECT(0) datagrams, our
  server's qlog shows ECN validated and its congestion controller backing off: the smoothed RTT
  stays near the propagation delay instead of filling the queue.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from quicreality.scenarios.capture import start_capture, tshark_fields
from quicreality.scenarios.model import Impairment, Link
from quicreality.scenarios.peers import DownloadRequest, get_peer
from quicreality.scenarios.peers.base import sha256_file, url_for
from quicreality.scenarios.peers.certs import make_test_cert
from quicreality.scenarios.topology import Topology, new_run_id

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]
REPO = Path(__file__).resolve().parents[2]
PORT = 4433
SIZE = 10_000_000


@pytest.fixture(autouse=True)
def _preconditions() -> None:
    assert os.geteuid() == 0, "lab tests need root (network namespaces, TUN): run them as root"


@pytest.fixture
def work() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="qr-ecnlab-"))
    try:
        (d / "www").mkdir()
        (d / "www" / "f.bin").write_bytes(random.Random(14).randbytes(SIZE))
        for name, path in zip(("cert", "key", "ca"), make_test_cert(d / "pki"), strict=True):
            (d / f"{name}.path").write_text(str(path))
        yield d
    finally:
        subprocess.run(["rm", "-rf", str(d)], check=False)


def _pki(work: Path, name: str) -> str:
    return (work / f"{name}.path").read_text()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _serve(topo: Topology, work: Path, host: str, *extra: str) -> subprocess.Popen[str]:
    literal = f"[{host}]" if ":" in host else host
    srv = topo.popen("server", [sys.executable, "-m", "quicreality", "server", "--listen",
                                f"{literal}:{PORT}", "--cert", _pki(work, "cert"),
                                "--key", _pki(work, "key"), "--www",
                                str(work / "www"), *extra],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                     cwd=REPO)
    assert srv.stdout is not None
    line = srv.stdout.readline()
    assert "listening on" in line, line + (srv.stderr.read() if srv.poll() is not None and srv.stderr else "")
    return srv


def _our_client(topo: Topology, work: Path, url: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(topo.exec_argv("client", [
        sys.executable, "-m", "quicreality", "client", url, "-o", str(out), "--ca",
        _pki(work, "ca"), "--server-name", "localhost", "--json"]),
        capture_output=True, text=True, timeout=120, env=_env(), cwd=REPO)


def _stop(srv: subprocess.Popen[str]) -> None:
    srv.terminate()
    try:
        srv.wait(10)
    except subprocess.TimeoutExpired:
        srv.kill()
        srv.wait()


def test_ipv6_download_through_the_emulator_ours_and_ngtcp2(work: Path) -> None:
    link = Link(to_server=Impairment(delay_ms=10, rate_mbit=50),
                to_client=Impairment(delay_ms=10, rate_mbit=50))
    with Topology.create(new_run_id(), link, workdir=str(work / "topo")) as topo:
        server6 = topo.addr("server", 6)
        url = url_for(server6, PORT, "f.bin")
        cap = start_capture(topo.exec_argv("client", []), "qrlink", str(work / "c.pcap"))
        srv = _serve(topo, work, server6, "--qlog-dir", str(work / "sq"))
        try:
            ours = _our_client(topo, work, url, work / "out-ours")
            assert ours.returncode == 0, ours.stdout + ours.stderr
            print("ours over IPv6:", ours.stdout.strip())
            spec = get_peer("ngtcp2")
            assert spec.download is not None and spec.parse is not None
            req = DownloadRequest(urls=(url,), out_dir=work / "out-ngtcp2",
                                  ca=Path(_pki(work, "ca")), timeout=120)
            cmd = spec.download(req)
            for d in cmd.make_dirs:
                d.mkdir(parents=True, exist_ok=True)
            r = subprocess.run(topo.exec_argv("client", list(cmd.argv)), capture_output=True,
                               text=True, timeout=150, env=cmd.full_env())
            results = spec.parse(r.stdout, r.stderr, req)
            assert r.returncode == 0 and all(x.ok for x in results), r.stderr[-2000:]
        finally:
            _stop(srv)
            cap.stop(settle_s=0.3)
    want = sha256_file(work / "www" / "f.bin")
    assert sha256_file(work / "out-ours" / "f.bin") == want
    assert sha256_file(work / "out-ngtcp2" / "f.bin") == want
    rows = tshark_fields(str(work / "c.pcap"), ("ip.src", "ipv6.src", "icmpv6.type"))
    assert rows and all(row["ipv6.src"] and not row["ip.src"] for row in rows)  # IPv6 only
    # no router solicitations (133) or MLD reports (131, 143) of our own on the link
    assert not {"131", "133", "143"} & {row["icmpv6.type"] for row in rows}
    stats = topo.emulator_stats
    assert stats is not None
    print("packets on the link:", len(rows), "emulator:", stats["to_server"]["packets_in"],
          stats["to_client"]["packets_in"])
    assert stats["to_client"]["packets_in"] >= 2 * SIZE // 1500  # both bodies went through it
    assert stats["to_server"]["dropped_total"] == 0


def _qlog_events(qlog_dir: Path) -> list[dict[str, Any]]:
    (path,) = qlog_dir.glob("*_server.sqlog")
    return [json.loads(r) for r in path.read_text().split("\x1e")[2:] if r.strip()]


def _download_with(work: Path, tag: str, threshold_ms: float | None) -> dict[str, Any]:
    down = Impairment(delay_ms=10, rate_mbit=20, queue_packets=2000,
                      ecn_mark_threshold_ms=threshold_ms)
    link = Link(to_server=Impairment(delay_ms=10), to_client=down)
    run = work / tag
    run.mkdir()
    with Topology.create(new_run_id(), link, workdir=str(run / "topo")) as topo:
        srv = _serve(topo, work, topo.addr("server"), "--qlog-dir", str(run / "sq"))
        try:
            r = _our_client(topo, work, url_for(topo.addr("server"), PORT, "f.bin"), run / "out")
            assert r.returncode == 0, r.stdout + r.stderr
        finally:
            _stop(srv)
    assert sha256_file(run / "out" / "f.bin") == sha256_file(work / "www" / "f.bin")
    events = _qlog_events(run / "sq")
    srtt = [e["data"]["smoothed_rtt"] for e in events
            if e["name"] == "recovery:metrics_updated" and "smoothed_rtt" in e["data"]]
    cwnd = [e["data"]["congestion_window"] for e in events
            if e["name"] == "recovery:metrics_updated" and "congestion_window" in e["data"]]
    states = [e["data"]["new"] for e in events if e["name"] == "recovery:ecn_state_updated"]
    stats = topo.emulator_stats
    assert stats is not None
    out = {"srtt_median_ms": statistics.median(srtt[len(srtt) // 4:]),
           "cwnd_max": max(cwnd), "ecn_states": states,
           "ce_marked": stats["to_client"]["ce_marked"],
           "queue_drops": stats["to_client"]["dropped"]["queue"],
           "seconds": json.loads(r.stdout.splitlines()[-1])["secs"]}
    print(tag, out)
    return out


def test_ce_marking_in_the_emulator_makes_our_sender_back_off(work: Path) -> None:
    plain = _download_with(work, "plain", None)
    marked = _download_with(work, "marked", 5.0)
    assert plain["ce_marked"] == 0
    assert marked["ce_marked"] > 0
    assert marked["ecn_states"][-1] == "capable", marked
    assert marked["queue_drops"] == 0
    # The reaction: the queue (and so the RTT) stays short, the window small.
    assert marked["srtt_median_ms"] < 0.5 * plain["srtt_median_ms"], (plain, marked)
    assert marked["cwnd_max"] < plain["cwnd_max"], (plain, marked)
