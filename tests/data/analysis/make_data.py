#!/usr/bin/env python3
"""Regenerate the small real files under ``tests/data/analysis/`` (needs root: namespaces).

    python tests/data/analysis/make_data.py [--only NAME ...] [--keep-tmp]

Every file is produced by a real peer over a real (emulated) link: a client and a server
namespace joined by the project's userspace link emulator
(:class:`quicreality.scenarios.topology.Topology`), 20 Mbit/s, 10 ms one-way delay,
2 % random loss each way, a 60-packet queue. Small transfers (``SIZE`` bytes) keep the files
small while still showing losses, retransmissions and congestion-window changes.

Outputs (see README.md next to this script for what each file is used for):

* ``qlog/ours-0.3/``    our client and server, ``--qlog-flavour 0.3`` (JSON-SEQ, qvis names)
* ``qlog/ours-draft/``  the same with ``--qlog-flavour draft`` (``quic:`` names)
* ``qlog/aioquic/``     aioquic 1.7.2 client and server (JSON, absolute ms)
* ``qlog/quicgo/``      quic-go 0.29 client and server (NDJSON draft-02)
* ``qlog/ngtcp2/``      ngtcp2 0.12 gtlsclient and gtlsserver (JSON-SEQ 0.3, integer ms)
* ``pcap/``             our client ← our server: client- and server-side pcaps of the impaired
                        link, the merged key log, the client-side pcapng with the keys injected,
                        and both endpoints' qlogs
* ``pcap-quicgo/``      the same for quic-go ← quic-go (its last STREAM frame in a packet has no
                        Length field, which the pcap loader must reconstruct)
* ``iperf3/tcp.json``   ``iperf3 -J`` TCP, 2 s, 0.5 s intervals, reverse direction

The script is also imported by ``captures/make_sample.py`` (:func:`link_topology`,
:func:`run_pair`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # this checkout, not an install

from quicreality.scenarios.capture import Capture, inject_secrets, merge_keylogs, start_capture
from quicreality.scenarios.model import Impairment, Link
from quicreality.scenarios.peers import DownloadRequest, ServeRequest, get_peer
from quicreality.scenarios.peers.certs import make_test_cert
from quicreality.scenarios.topology import ADDRESSES, LINK_IF, Topology, new_run_id

HERE = Path(__file__).resolve().parent
SIZE = 150_000
PORT = 4433


def small_link(rate_mbit: float = 20.0, delay_ms: float = 10.0, loss: float = 0.02,
               queue_packets: int = 60) -> Link:
    """The symmetric impaired link used for the test files."""
    return Link.symmetric(Impairment(delay_ms=delay_ms, rate_mbit=rate_mbit, loss=loss,
                                     queue_packets=queue_packets))


@contextmanager
def link_topology(link: Link, seed: int = 1) -> Iterator[Topology]:
    """A client/server namespace pair joined by the userspace emulator (torn down after)."""
    with Topology.create(new_run_id(), link, "userspace", seed=seed) as topo:
        yield topo


def _wait_udp(topo: Topology, host: str, port: int, timeout: float = 15.0) -> None:
    """Poll ``ss`` in ``host``'s namespace until something listens on UDP ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = topo.run(host, ["ss", "-H", "-u", "-l", "-n", f"sport = :{port}"], timeout=5).stdout
        if out.strip():
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on udp/{port} in {host}")


@dataclass
class PairResult:
    """What :func:`run_pair` produced."""

    client_rc: int
    secs: float
    client_stdout: str
    server_argv: list[str]
    client_argv: list[str]
    captures: dict[str, int | None]


def run_pair(topo: Topology, client: str, server: str, out: Path, *, www: Path, pki: Path,
             path: str, capture: bool = False, qlog_split: bool = True,
             server_extra: tuple[str, ...] = (), client_extra: tuple[str, ...] = (),
             timeout: float = 60.0) -> PairResult:
    """Run ``client`` ← ``server`` (peer names) once; qlogs, keys and logs go to ``out``.

    Args:
        topo: The topology (client and server namespaces).
        client: Client peer name (``ours``, ``quicgo``, ``aioquic``, ``ngtcp2``).
        server: Server peer name.
        out: Output directory (``qlog-client/``, ``qlog-server/`` or ``qlog/``, ``keys-*.log``,
            ``*.stdout``/``*.stderr``, and with ``capture`` ``client.pcap``/``server.pcap``).
        www: Served directory.
        pki: Directory with ``cert.pem``/``key.pem``/``ca.pem``.
        path: URL path to fetch (``/file`` or ``/bytes/N``).
        capture: Capture both sides of the impaired link with tcpdump.
        qlog_split: Separate qlog dirs for client and server (else one ``qlog/``).
        server_extra: Extra server argv (appended).
        client_extra: Extra client argv (appended).
        timeout: Client timeout in seconds.
    """
    out.mkdir(parents=True, exist_ok=True)
    qc = out / ("qlog-client" if qlog_split else "qlog")
    qs = out / ("qlog-server" if qlog_split else "qlog")
    srv = get_peer(server).serve(ServeRequest(
        www=www, port=PORT, cert=pki / "cert.pem", key=pki / "key.pem",
        host=ADDRESSES["server"], qlog_dir=qs, keylog=out / "keys-server.log"))
    url = f"https://{ADDRESSES['server']}:{PORT}{path}"
    dl_req = DownloadRequest(urls=(url,), out_dir=out / "download", ca=pki / "ca.pem",
                             qlog_dir=qc, keylog=out / "keys-client.log", timeout=timeout)
    cli = get_peer(client).download(dl_req)
    srv.prepare()
    cli.prepare()
    qc.mkdir(parents=True, exist_ok=True)
    qs.mkdir(parents=True, exist_ok=True)
    caps: list[tuple[str, Capture]] = []
    if capture:
        for host in ("client", "server"):
            caps.append((host, start_capture(topo.exec_argv(host, []), LINK_IF,
                                             str(out / f"{host}.pcap"), "udp")))
    server_argv = [*srv.argv, *server_extra]
    client_argv = [*cli.argv, *client_extra]
    with open(out / "server.stdout", "w") as so, open(out / "server.stderr", "w") as se:
        sp = topo.popen("server", server_argv, env=srv.full_env(), cwd=srv.cwd, stdout=so,
                        stderr=se, stdin=subprocess.DEVNULL)
    try:
        _wait_udp(topo, "server", PORT)
        topo.rearm()
        t0 = time.monotonic()
        r = subprocess.run(topo.exec_argv("client", client_argv), env=cli.full_env(), cwd=cli.cwd,
                           capture_output=True, text=True, timeout=timeout + 30,
                           stdin=subprocess.DEVNULL, check=False)
        secs = time.monotonic() - t0
        (out / "client.stdout").write_text(r.stdout)
        (out / "client.stderr").write_text(r.stderr)
    finally:
        time.sleep(0.5)
        sp.terminate()  # peers flush their qlogs on SIGTERM
        try:
            sp.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sp.kill()
            sp.wait()
    counts = {host: cap.stop() for host, cap in caps}
    return PairResult(client_rc=r.returncode, secs=secs, client_stdout=r.stdout,
                      server_argv=server_argv, client_argv=client_argv, captures=counts)


def make_www(directory: Path, size: int = SIZE) -> Path:
    """A served directory with ``file.bin`` (``size`` bytes, byte i = i % 256)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "file.bin").write_bytes(bytes(i % 256 for i in range(size)))
    return directory


def make_pki(directory: Path) -> Path:
    """Test CA + leaf valid for the namespace addresses."""
    make_test_cert(directory, extra_sans=tuple(ADDRESSES.values()))
    return directory


def _copy_qlogs(src: Path, dst: Path, suffix: str) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    copied = []
    for f in sorted(src.iterdir()) if src.exists() else []:
        if f.is_file() and f.stat().st_size > 0:
            target = dst / (f.stem + suffix + f.suffix)
            shutil.copyfile(f, target)
            copied.append(target)
    return copied


def gen_qlogs(topo: Topology, tmp: Path, www: Path, pki: Path, only: set[str]) -> None:
    """One transfer per producer; copy the qlogs into ``qlog/<producer>/``."""
    jobs: dict[str, dict[str, Any]] = {
        "ours-0.3": {"peer": "ours", "extra": ("--qlog-flavour", "0.3")},
        "ours-draft": {"peer": "ours", "extra": ("--qlog-flavour", "draft")},
        "aioquic": {"peer": "aioquic", "extra": ()},
        "quicgo": {"peer": "quicgo", "extra": ()},
        "ngtcp2": {"peer": "ngtcp2", "extra": ()},
    }
    for name, job in jobs.items():
        if only and name not in only:
            continue
        peer = job["peer"]
        path = "/file.bin"
        out = tmp / name
        extra = job["extra"]
        res = run_pair(topo, peer, peer, out, www=www, pki=pki, path=path,
                       server_extra=extra, client_extra=extra)
        print(f"{name}: client rc={res.client_rc} {res.secs:.2f}s", flush=True)
        if res.client_rc != 0:
            print((out / "client.stderr").read_text()[-2000:], file=sys.stderr)
            raise RuntimeError(f"{name}: client failed")
        dst = HERE / "qlog" / name
        shutil.rmtree(dst, ignore_errors=True)
        files = _copy_qlogs(out / "qlog-client", dst, "" if peer != "ngtcp2" else "_client")
        files += _copy_qlogs(out / "qlog-server", dst, "" if peer != "ngtcp2" else "_server")
        if peer == "aioquic":  # aioquic names files <odcid>.qlog on both sides
            files = []
            for side in ("client", "server"):
                files += _copy_qlogs(out / f"qlog-{side}", dst, f"_{side}")
            for f in dst.iterdir():
                if not f.stem.endswith(("_client", "_server")):
                    f.unlink()
        print("  ", [f.name for f in files], flush=True)


def gen_pcap(topo: Topology, tmp: Path, www: Path, pki: Path, peer: str = "ours") -> None:
    """``peer`` client ← ``peer`` server with both-side captures, keys injected, and qlogs.

    Output in ``pcap/`` (ours) or ``pcap-<peer>/``.
    """
    name = "pcap" if peer == "ours" else f"pcap-{peer}"
    out = tmp / name
    res = run_pair(topo, peer, peer, out, www=www, pki=pki, path="/file.bin", capture=True)
    print(f"{name}: client rc={res.client_rc} {res.secs:.2f}s captures={res.captures}", flush=True)
    if res.client_rc != 0:
        raise RuntimeError(f"{name}: client failed")
    dst = HERE / name
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    for side in ("client", "server"):
        shutil.copyfile(out / f"{side}.pcap", dst / f"{side}.pcap")
        _copy_qlogs(out / f"qlog-{side}", dst, "")
    merge_keylogs([str(out / "keys-client.log"), str(out / "keys-server.log")],
                  str(dst / "keys.log"))
    inject_secrets(str(dst / "client.pcap"), str(dst / "keys.log"), str(dst / "client.pcapng"))


def gen_iperf3(topo: Topology) -> None:
    """``iperf3 -J`` TCP, reverse (server sends), 2 s, 0.5 s intervals."""
    srv = topo.popen("server", ["iperf3", "-s", "-1", "-B", ADDRESSES["server"]],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = topo.run("server", ["ss", "-H", "-t", "-l", "-n", "sport = :5201"]).stdout
            if out.strip():
                break
            time.sleep(0.1)
        r = topo.run("client", ["iperf3", "-c", ADDRESSES["server"], "-J", "-R", "-t", "2",
                                "-i", "0.5"], timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"iperf3 failed: {r.stderr}{r.stdout[-500:]}")
        dst = HERE / "iperf3"
        dst.mkdir(parents=True, exist_ok=True)
        (dst / "tcp.json").write_text(r.stdout)
        print("iperf3: ok", flush=True)
    finally:
        if srv.poll() is None:
            srv.terminate()
        srv.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    """Regenerate the files (all, or ``--only`` some of them)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=[],
                    help="ours-0.3 ours-draft aioquic quicgo ngtcp2 pcap pcap-quicgo iperf3")
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args(argv)
    only = set(args.only)
    tmp = Path(tempfile.mkdtemp(prefix="qr-analysis-data-"))
    try:
        www = make_www(tmp / "www")
        pki = make_pki(tmp / "pki")
        with link_topology(small_link()) as topo:
            gen_qlogs(topo, tmp, www, pki, only)
            if not only or "pcap" in only:
                gen_pcap(topo, tmp, www, pki)
            if not only or "pcap-quicgo" in only:
                gen_pcap(topo, tmp, www, pki, "quicgo")
            if not only or "iperf3" in only:
                gen_iperf3(topo)
    finally:
        if args.keep_tmp:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    os.sync()
    return 0


if __name__ == "__main__":
    sys.exit(main())
