#!/usr/bin/env python3
"""Make the fingerprint fixtures: real handshakes of real peers, captured on a namespace's lo.

Run as root from the repository root: ``python tests/data/fingerprint/make_fixtures.py
[--only NAME ...] [--out DIR]``. Everything runs in one fresh network namespace
(:class:`quicreality.scenarios.fingerprint_capture.LoopbackNamespace`: only ``lo``, UDP GSO
segmented in software so that every datagram is captured). Each capture is ``NAME.pcap`` (tcpdump,
``udp port P``) plus ``NAME.keys`` (the client's NSS key log). See README.md next to this file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from quicreality.scenarios.fingerprint_capture import LoopbackNamespace, capture_udp_port
from quicreality.scenarios.peers import DownloadRequest, ServeRequest, get_peer
from quicreality.scenarios.peers import paths as peer_paths
from quicreality.scenarios.peers.base import Command
from quicreality.scenarios.peers.certs import make_test_cert
from quicreality.scenarios.peers.process import PeerProcess

HERE = Path(__file__).resolve().parent
PAGE = b"<!doctype html><title>fingerprint</title><p>hello h3</p>\n"
OURS, NGTCP2, REALITY, TARGET = 4433, 4434, 4435, 4436
HOST = "localhost"


class Lab:
    """The servers in the namespace and helpers to run clients there."""

    def __init__(self, ns: LoopbackNamespace, work: Path) -> None:
        self.ns = ns
        self.work = work
        self.cert, self.key, self.ca = make_test_cert(work / "pki")
        self.www = work / "www"
        self.www.mkdir()
        (self.www / "index.html").write_bytes(PAGE)
        self.procs: list[PeerProcess] = []
        self.n = 0

    def start(self, argv: list[str] | tuple[str, ...], port: int, name: str,
              env: dict[str, str] | None = None) -> PeerProcess:
        """Start a server inside the namespace and wait until it has bound ``port``."""
        cmd = Command(argv=self.ns.wrap(argv), env=env or {}, cwd=peer_paths.REPO_ROOT)
        p = PeerProcess(cmd, name=name, log_dir=self.work / "logs").start()
        self.procs.append(p)
        p.wait_udp_ready(port, timeout=30)
        return p

    def run(self, argv: list[str] | tuple[str, ...], env: dict[str, str] | None = None,
            timeout: float = 90) -> str:
        """Run a client inside the namespace to completion; its stdout (raises on failure)."""
        self.n += 1
        cmd = Command(argv=self.ns.wrap(argv), env=env or {}, cwd=peer_paths.REPO_ROOT)
        fin = PeerProcess(cmd, name=f"client-{self.n}", log_dir=self.work / "logs").start().wait(
            timeout)
        if fin.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed rc={fin.returncode}\n{fin.stderr[-3000:]}\n"
                               f"{fin.stdout[-2000:]}")
        return fin.stdout

    def close(self) -> None:
        """Stop the servers."""
        for p in reversed(self.procs):
            p.stop()


def _url(port: int) -> str:
    return f"https://{HOST}:{port}/index.html"


def chromium(lab: Lab, port: int, keys: Path, reps: int) -> None:
    """``reps`` headless Chromium runs (fresh profile each), pinning the test leaf's SPKI."""
    for i in range(reps):
        out = lab.work / f"dom-{port}-{i}.html"
        line = lab.run([str(peer_paths.python()), "-m", "quicreality.scenarios.peers.chromium",
                        _url(port), "--out", str(out), "--pin", str(lab.cert),
                        "--keylog", str(keys)])
        res = json.loads(line.strip().splitlines()[-1])
        assert res["error"] is None and res["proto"] == "h3", res


def curl(lab: Lab, port: int, keys: Path, reps: int) -> None:
    """curl --http3-only (ngtcp2 + GnuTLS), ``localhost`` resolved to 127.0.0.1."""
    for i in range(reps):
        req = DownloadRequest(urls=(_url(port),), out_dir=lab.work / f"curl-{i}", ca=lab.ca,
                              keylog=keys)
        cmd = _download("curl", req)
        cmd.prepare()
        argv = [cmd.argv[0], "--resolve", f"{HOST}:{port}:127.0.0.1", *cmd.argv[1:]]
        lab.run(argv, env=dict(cmd.env))


def quicgo(lab: Lab, port: int, keys: Path, reps: int) -> None:
    """Our quic-go 0.29 client (qrgo)."""
    for i in range(reps):
        req = DownloadRequest(urls=(_url(port),), out_dir=lab.work / f"qrgo-{i}", ca=lab.ca,
                              keylog=keys)
        cmd = _download("quicgo", req)
        cmd.prepare()
        lab.run(cmd.argv, env=dict(cmd.env))


def ours(lab: Lab, port: int, keys: Path, reps: int, extra: list[str] | None = None,
         url: str | None = None) -> None:
    """Our client (plain with ``--ca``, or REALITY with ``extra``)."""
    for i in range(reps):
        argv = [str(peer_paths.python()), "-m", "quicreality", "client", url or _url(port),
                "-o", str(lab.work / f"ours-{port}-{i}"), "--keylog", str(keys), "--json",
                *(extra or ["--ca", str(lab.ca)])]
        lab.run(argv)


def _download(peer: str, req: DownloadRequest) -> Command:
    download = get_peer(peer).download
    assert download is not None
    return download(req)


def _ngtcp2(lab: Lab, port: int) -> Command:
    serve = get_peer("ngtcp2").serve
    assert serve is not None
    return serve(ServeRequest(www=lab.www, port=port, cert=lab.cert, key=lab.key))


def reality_args(lab: Lab) -> list[str]:
    """Start ngtcp2 as the target and our REALITY listener; the client's REALITY options."""
    keys = json.loads(subprocess.run([str(peer_paths.python()), "-m", "quicreality", "keygen",
                                      "--json"], capture_output=True, text=True, check=True,
                                     cwd=peer_paths.REPO_ROOT).stdout)
    tcmd = _ngtcp2(lab, TARGET)
    lab.start(tcmd.argv, TARGET, "target", env=dict(tcmd.env))
    conf = lab.work / "reality.toml"
    conf.write_text("\n".join([
        "[reality]", f'private_key = "{keys["private_key"]}"', f'server_names = ["{HOST}"]',
        f'short_ids = ["{keys["short_id"]}"]', f'target = "127.0.0.1:{TARGET}"',
        "max_time_diff_ms = 30000", ""]))
    lab.start([str(peer_paths.python()), "-m", "quicreality", "server", "--listen",
               f"127.0.0.1:{REALITY}", "--reality-config", str(conf), "--www", str(lab.www)],
              REALITY, "reality-listener")
    return [f"--reality-public-key={keys['public_key']}", "--short-id", keys["short_id"],
            "--server-name", HOST]


def main(argv: list[str] | None = None) -> int:
    """Make every fixture (or ``--only`` some) into ``--out`` (default: this directory)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--reps", type=int, default=0, help="override the connections per capture")
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="qrfp-fixtures-"))
    try:
        with LoopbackNamespace() as ns:
            lab = Lab(ns, work)
            try:
                lab.start([str(peer_paths.python()), "-m", "quicreality", "server", "--listen",
                           f"127.0.0.1:{OURS}", "--cert", str(lab.cert), "--key", str(lab.key),
                           "--www", str(lab.www)], OURS, "ours-server")
                ncmd = _ngtcp2(lab, NGTCP2)
                lab.start(ncmd.argv, NGTCP2, "ngtcp2-server", env=dict(ncmd.env))
                real = reality_args(lab)
                jobs: dict[str, tuple[int, int, Callable[[Path, int], None]]] = {
                    "chromium-ours": (OURS, 3, lambda k, n: chromium(lab, OURS, k, n)),
                    "chromium-ngtcp2": (NGTCP2, 2, lambda k, n: chromium(lab, NGTCP2, k, n)),
                    "curl-ours": (OURS, 2, lambda k, n: curl(lab, OURS, k, n)),
                    "quicgo-ours": (OURS, 2, lambda k, n: quicgo(lab, OURS, k, n)),
                    "ours-plain": (OURS, 2, lambda k, n: ours(lab, OURS, k, n)),
                    "ours-reality": (REALITY, 2, lambda k, n: ours(
                        lab, REALITY, k, n, real, f"https://127.0.0.1:{REALITY}/index.html")),
                    # Not committed (docs/camouflage.md's table): the other carrier/fingerprint
                    # pairs, and the plain client with the chrome fingerprint.
                    "ours-reality-session_id": (REALITY, 2, lambda k, n: ours(
                        lab, REALITY, k, n, [*real, "--carrier", "session_id"],
                        f"https://127.0.0.1:{REALITY}/index.html")),
                    "ours-reality-minimal": (REALITY, 2, lambda k, n: ours(
                        lab, REALITY, k, n, [*real, "--fingerprint", "minimal"],
                        f"https://127.0.0.1:{REALITY}/index.html")),
                    "ours-plain-chrome": (OURS, 2, lambda k, n: ours(
                        lab, OURS, k, n, ["--ca", str(lab.ca), "--fingerprint", "chrome"])),
                }
                for name, (port, reps, job) in jobs.items():
                    if a.only is not None and name not in a.only:
                        continue
                    pcap, keys = work / f"{name}.pcap", work / f"{name}.keys"
                    cap = capture_udp_port(ns, port, pcap)
                    try:
                        job(keys, a.reps or reps)
                    finally:
                        cap.stop(settle_s=0.5)
                    print(f"{name}: {cap.packets} packets, dropped {cap.dropped}", flush=True)
                    a.out.mkdir(parents=True, exist_ok=True)
                    shutil.copy(pcap, a.out / pcap.name)
                    shutil.copy(keys, a.out / keys.name)
                    time.sleep(0.2)
            finally:
                lab.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
