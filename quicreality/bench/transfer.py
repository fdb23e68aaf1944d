"""``python -m quicreality.bench transfer``: 100 MB HTTP/3 downloads on loopback, interleaved:
our client <-> our server, aioquic <-> aioquic and qh3 <-> qh3 (an aioquic fork whose crypto, TLS
and QPACK run in Rust; the speed anchor), in the same run. Each stack uses its own client and
server; aioquic and qh3 run the same peer scripts (``interop/aioquic``, ``QR_PEER_IMPL``) at their
default datagram sizes (aioquic 1200 bytes, qh3 1280 with datagram-size probing). ``--pure`` adds
our stack from this checkout with ``QR_PURE=1`` (the pure-Python fallback of the mypyc build) and
``--baseline DIR`` our stack from another checkout; the mode of each of our pairs (``python -m
quicreality.build --status``) is printed first, so a figure says whether it was compiled.

Prints goodput (min/median/max Mbit/s) per pair, the median ratio ours/aioquic, and CPU ns per
byte for each side (client from wait4 rusage, server from /proc/PID/stat deltas), which is robust
against the noise of a shared machine. Nothing here asserts a speed: it reports. Before the runs
it writes the bytecode of each of our checkouts (``compileall``), as pip does for the peers at
install, so our processes do not compile their sources at every start.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..scenarios.peers import paths
from ..scenarios.peers.base import free_udp_port
from ..scenarios.peers.certs import make_test_cert

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    """One download."""

    pair: str
    rep: int
    mbps: float
    secs: float
    client_cpu_ns_per_byte: float
    server_cpu_ns_per_byte: float


def proc_cpu(pid: int) -> float:
    """User+system CPU seconds of a process (and its reaped children) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Wait until ``proc`` binds UDP ``port``; RuntimeError if it exits or the time runs out
    (60 s: at load 30 a server's start-up took longer than 15 s)."""
    from ..scenarios.peers.base import udp_bound

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}")
        if udp_bound(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not bind UDP port {port}")


class Pair:
    """A server process kept for all reps, and how to run the matching client."""

    def __init__(self, name: str, server_argv: list[str], client_argv: list[str], port: int,
                 env: dict[str, str] | None = None, cwd: Path | None = None):
        self.name = name
        self.cwd = cwd or paths.REPO_ROOT
        self.server_argv = server_argv
        self.client_argv = client_argv
        self.port = port
        self.env = {**os.environ, **(env or {})}
        self.server: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.server = subprocess.Popen(self.server_argv, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, cwd=self.cwd, env=self.env)
        wait_port(self.port, self.server)

    def run(self, size: int, rep: int, timeout: float) -> Sample:
        assert self.server is not None
        before = proc_cpu(self.server.pid)
        client = subprocess.Popen(self.client_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  cwd=self.cwd, env=self.env)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(client.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                client.kill()
                client.wait()
                raise RuntimeError(f"{self.name}: client timed out")
            time.sleep(0.01)
        client.returncode = os.waitstatus_to_exitcode(status)
        stdout = client.stdout.read().decode() if client.stdout else ""
        stderr = client.stderr.read().decode() if client.stderr else ""
        if client.stdout:
            client.stdout.close()
        if client.stderr:
            client.stderr.close()
        server_cpu = proc_cpu(self.server.pid) - before
        line = next((json.loads(ln) for ln in stdout.splitlines() if ln.startswith("{")), None)
        if client.returncode != 0 or line is None or int(line.get("bytes") or 0) != size:
            raise RuntimeError(f"{self.name}: download failed (rc={client.returncode}): "
                               f"{stdout[-300:]} {stderr[-500:]}")
        secs = float(line["secs"])
        client_cpu = usage.ru_utime + usage.ru_stime
        return Sample(self.name, rep, size * 8 / secs / 1e6, secs,
                      client_cpu * 1e9 / size, server_cpu * 1e9 / size)

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(5)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()


def _python_peer_pair(impl: str, certs: tuple[Path, Path, Path], size: int) -> Pair:
    """aioquic's or qh3's own client and server (the same scripts, ``QR_PEER_IMPL=impl``)."""
    cert, key, ca = certs
    py, port = str(paths.python()), free_udp_port()
    return Pair(
        f"{impl}<->{impl}",
        [py, str(paths.aioquic_script("h3server.py")), "--host", "127.0.0.1", "--port", str(port),
         "--certificate", str(cert), "--private-key", str(key)],
        [py, str(paths.aioquic_script("h3client.py")), "--ca", str(ca),
         f"https://127.0.0.1:{port}/bytes/{size}"],
        port, env={"QR_PEER_IMPL": impl},
    )


def qh3_available() -> bool:
    """Whether the qh3 package imports in the peers' interpreter (scripts/setup.sh installs it)."""
    probe = subprocess.run([str(paths.python()), "-c", "import qh3"], capture_output=True, check=False)
    return probe.returncode == 0


def _our_pair(name: str, certs: tuple[Path, Path, Path], size: int, max_datagram: int,
              tree: Path | None = None, ack_every: int | None = None, pure: bool = False) -> Pair:
    """Our client and server; from another checkout ``tree`` (cwd and PYTHONPATH) if given;
    ``ack_every``: the client's ``--ack-every`` (None: its default); ``pure``: ``QR_PURE=1``."""
    cert, key, ca = certs
    py, port = str(paths.python()), free_udp_port()
    return Pair(
        name,
        [py, "-m", "quicreality", "server", "--listen", f"127.0.0.1:{port}", "--cert", str(cert),
         "--key", str(key), "--max-datagram-size", str(max_datagram)],
        [py, "-m", "quicreality", "client", f"https://127.0.0.1:{port}/bytes/{size}", "--ca", str(ca),
         "--json", "--max-datagram-size", str(max_datagram),
         *(["--ack-every", str(ack_every)] if ack_every is not None else [])],
        port, env={**({"PYTHONPATH": str(tree)} if tree else {}), **({"QR_PURE": "1"} if pure else {})},
        cwd=tree,
    )


def ensure_bytecode(tree: Path) -> None:
    """Write the ``.pyc`` of ``tree``'s ``quicreality`` package (``compileall``; the
    ``__pycache__`` directories are git-ignored). The peers are pip-installed, with their
    bytecode written at install; our checkout is an editable install, so under
    ``PYTHONDONTWRITEBYTECODE=1`` (set on the project machine) every one of our processes would
    otherwise compile its ~270 modules from source: about 0.08 s of CPU per client start
    (measured 2026-12-07, 0.46 against 0.38 s to import the client), which is 0.8 ns/B of a
    100 MB download."""
    subprocess.run([str(paths.python()), "-m", "compileall", "-q", str(tree / "quicreality")],
                   stdout=subprocess.DEVNULL, check=False)


def our_mode(pair: Pair) -> str:
    """The first line of ``python -m quicreality.build --status`` in ``pair``'s environment:
    ``mode: compiled (...)`` or ``mode: pure (...)`` (``mode: unknown`` from an older checkout)."""
    probe = subprocess.run([str(paths.python()), "-m", "quicreality.build", "--status"],
                           capture_output=True, text=True, cwd=pair.cwd, env=pair.env, check=False)
    first = probe.stdout.splitlines()[0] if probe.stdout else ""
    return first if probe.returncode == 0 and first.startswith("mode: ") else "mode: unknown"


def build_pairs(certs: tuple[Path, Path, Path], size: int, max_datagram: int,
                qh3: bool = True, aioquic: bool = True, baseline: Path | None = None,
                ack_every: int | None = None, pure: bool = False) -> list[Pair]:
    """Our pair, (if ``pure``) our pair with ``QR_PURE=1``, (if ``baseline``) our pair from that
    checkout, aioquic's pair and (if ``qh3``) qh3's pair, each on its own port, serving
    ``/bytes/<size>``."""
    pairs = [_our_pair("ours<->ours", certs, size, max_datagram, ack_every=ack_every)]
    if pure:
        pairs.append(_our_pair("pure<->pure", certs, size, max_datagram, ack_every=ack_every,
                               pure=True))
    if baseline is not None:
        pairs.append(_our_pair("base<->base", certs, size, max_datagram, baseline))
    if aioquic:
        pairs.append(_python_peer_pair("aioquic", certs, size))
    if qh3:
        pairs.append(_python_peer_pair("qh3", certs, size))
    return pairs


def summarize(samples: list[Sample]) -> dict[str, dict[str, float]]:
    """Per pair: min/median/max Mbit/s and median CPU ns/B per side."""
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(s.pair for s in samples):
        mine = [s for s in samples if s.pair == name]
        mbps = [s.mbps for s in mine]
        out[name] = {
            "min": min(mbps), "median": statistics.median(mbps), "max": max(mbps),
            "client_ns_per_byte": statistics.median(s.client_cpu_ns_per_byte for s in mine),
            "server_ns_per_byte": statistics.median(s.server_cpu_ns_per_byte for s in mine),
        }
    return out


def main(argv: list[str]) -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(prog="python -m quicreality.bench transfer", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000_000, help="bytes per download")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--max-datagram-size", type=int, default=1200,
                    help="our stack's datagram size (aioquic uses its default 1200)")
    ap.add_argument("--ack-every", type=int, default=2,
                    help="our client's ACK decimation (client --ack-every; default 2)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per download")
    ap.add_argument("--json", dest="json_out", help="also write the raw samples here")
    ap.add_argument("--no-qh3", action="store_true", help="leave the qh3 pair out")
    ap.add_argument("--no-aioquic", action="store_true", help="leave the aioquic pair out")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also run our stack from another checkout (e.g. pure Python vs mypyc, or "
                         "before/after a change) as the pair base<->base, interleaved")
    ap.add_argument("--pure", action="store_true",
                    help="also run our stack from this checkout with QR_PURE=1 (the pure-Python "
                         "fallback of the mypyc build) as the pair pure<->pure, interleaved")
    args = ap.parse_args(argv)
    baseline = Path(args.baseline).resolve() if args.baseline else None
    if baseline is not None and not (baseline / "quicreality" / "__init__.py").exists():
        print(f"error: --baseline {args.baseline}: no quicreality package there", file=sys.stderr)
        return 2
    if args.size <= 0 or args.reps <= 0:
        print("error: --size and --reps must be positive", file=sys.stderr)
        return 2
    if not args.no_qh3 and not qh3_available():
        print("error: qh3 does not import (run scripts/setup.sh, or pass --no-qh3)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="qr-bench-"))
    pairs = build_pairs(make_test_cert(workdir), args.size, args.max_datagram_size, qh3=not args.no_qh3,
                        aioquic=not args.no_aioquic, baseline=baseline,
                        ack_every=args.ack_every if args.ack_every != 2 else None, pure=args.pure)
    samples: list[Sample] = []
    for tree in dict.fromkeys([Path(__file__).resolve().parents[2],
                               *([baseline] if baseline is not None else [])]):
        ensure_bytecode(tree)
    modes = {p.name: our_mode(p) for p in pairs if p.name.split("<->")[0] in ("ours", "pure", "base")}
    for name, mode in modes.items():
        print(f"{name:18s} {mode}", flush=True)
    try:
        for pair in pairs:
            pair.start()
        for rep in range(1, args.reps + 1):
            for pair in pairs:  # interleaved, so drift on the machine hits both alike
                s = pair.run(args.size, rep, args.timeout)
                samples.append(s)
                print(f"rep {rep} {s.pair:18s} {s.mbps:8.1f} Mbit/s  {s.secs:6.2f} s  "
                      f"client {s.client_cpu_ns_per_byte:5.1f} ns/B  "
                      f"server {s.server_cpu_ns_per_byte:5.1f} ns/B", flush=True)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for pair in pairs:
            pair.stop()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    table = summarize(samples)
    print(f"\n{args.size / 1e6:.0f} MB over HTTP/3 on loopback, {args.reps} reps, interleaved")
    print(f"{'pair':18s} {'min':>8s} {'median':>8s} {'max':>8s}  {'client ns/B':>11s} {'server ns/B':>11s}")
    for name, row in table.items():
        print(f"{name:18s} {row['min']:8.1f} {row['median']:8.1f} {row['max']:8.1f}  "
              f"{row['client_ns_per_byte']:11.1f} {row['server_ns_per_byte']:11.1f}")
    ours = table["ours<->ours"]
    for peer, goal in (("pure", "> 1 means ours is faster"), ("base", "> 1 means ours is faster"),
                       ("aioquic", ">= 6x"), ("qh3", ">= 1.0x")):
        other = table.get(f"{peer}<->{peer}")
        if other is None:
            continue
        print(f"median goodput ratio ours/{peer}: {ours['median'] / other['median']:.2f}x "
              f"(goal {goal}); CPU per byte {peer}/ours (> 1 means ours is cheaper): client "
              f"{other['client_ns_per_byte'] / ours['client_ns_per_byte']:.2f}x, "
              f"server {other['server_ns_per_byte'] / ours['server_ns_per_byte']:.2f}x")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {"samples": [asdict(s) for s in samples], "summary": table, "modes": modes}, indent=2))
    return 0
