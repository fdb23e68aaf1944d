"""``python -m quicreality.bench profile``: the per-datagram cost budget of our stack.

Runs one of our HTTP/3 downloads on loopback (our client, our server), samples both processes with
py-spy (``--nonblocking``, raw stacks) and measures their CPU (client: wait4 rusage, server:
/proc/PID/stat delta). Every sample is attributed to the innermost stack frame that matches a
stage (syscall, header unprotect, AEAD, frame parse, ...); a stage's share of the samples times
the process's CPU per datagram gives its µs per datagram. Prints the budget per side and, with
``--out DIR``, keeps the raw stacks and a ``budget.json``.

Sampling attributes time to Python frames; time spent in C (OpenSSL, the kernel) counts for the
Python frame that called it, which is what the stages name. Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..scenarios.peers import paths
from ..scenarios.peers.base import free_udp_port
from ..scenarios.peers.certs import make_test_cert
from .transfer import proc_cpu, wait_port

#: Stage rules, checked from the innermost frame outwards: (stage, file suffix, function names or
#: None for any function in that file). The first frame that matches any rule names the stage.
RULES: tuple[tuple[str, str, frozenset[str] | None], ...] = (
    ("recv syscall (recvmsg, GRO split)", "aio/udp.py", frozenset({"recv_batch"})),
    ("sendmsg / GSO", "aio/udp.py", frozenset({"send", "send_batch"})),
    ("header unprotect", "quic/crypto.py", frozenset({"_unprotect_header"})),
    ("AEAD decrypt", "quic/crypto.py", frozenset({"decrypt_packet", "open"})),
    ("AEAD encrypt + header protect", "quic/crypto.py", frozenset({"encrypt_packet"})),
    ("header parse", "quic/packet.py", None),
    ("ACK / recovery", "quic/recovery/", None),
    ("ACK / recovery", "wire/rangeset.py", None),
    ("frame parse", "quic/frames/", None),
    ("stream reassembly / send buffer", "quic/streams.py", None),
    ("stream reassembly / send buffer", "quic/connection/streams.py", None),
    ("packet build (frames, header)", "quic/connection/assembler.py", None),
    ("packet build (frames, header)", "quic/packet_builder.py", None),
    ("packet receive (dispatch)", "quic/connection/receive.py", None),
    ("connection core", "quic/connection/", None),
    ("HTTP/3 + QPACK", "quicreality/h3/", None),
    ("TLS", "quicreality/tls/", None),
    ("asyncio edge (driver, timers)", "quicreality/aio/", None),
    ("asyncio loop", "asyncio/", None),
)


START_UP = "start-up (imports)"
IDLE = "idle (epoll wait)"


def stage_of(stack: list[tuple[str, str]]) -> str:
    """Name the stage of one sampled stack (frames outermost first, each ``(function, file)``)."""
    if any("importlib" in file for _func, file in stack):
        return START_UP
    if stack and stack[-1][0].rsplit(".", 1)[-1] in ("select", "poll"):
        return IDLE
    for func, file in reversed(stack):
        for stage, suffix, funcs in RULES:
            if (suffix in file) and (funcs is None or func.rsplit(".", 1)[-1] in funcs):
                return stage
    return "other"


def parse_raw(text: str) -> Counter[str]:
    """Count py-spy raw output (``frame;frame;... COUNT`` per line) by stage."""
    out: Counter[str] = Counter()
    for line in text.splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not stack_text or not count.isdigit():
            continue
        frames = []
        for frame in stack_text.split(";"):
            func, _, where = frame.partition(" (")
            frames.append((func, where.rsplit(":", 1)[0]))
        out[stage_of(frames)] += int(count)
    return out


@dataclass
class Side:
    """One process's measurement."""

    name: str
    cpu_s: float
    stages: Counter[str]

    def budget(self, datagrams: int) -> list[tuple[str, float, float]]:
        """(stage, share of the working samples, µs per datagram), largest first.

        Start-up and idle samples are left out; ``cpu_s`` is already net of the fixed cost."""
        work = Counter({k: v for k, v in self.stages.items() if k not in (START_UP, IDLE)})
        total = sum(work.values()) or 1
        per_dgram_us = self.cpu_s * 1e6 / max(datagrams, 1)
        return [(stage, n / total, n / total * per_dgram_us) for stage, n in work.most_common()]


def _spy(pid: int, out: Path, rate: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
                             "--nonblocking", "-r", str(rate), "-f", "raw", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_spy(spy: subprocess.Popen[bytes]) -> None:
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def run(size: int, max_datagram: int, rate: int, workdir: Path) -> tuple[Side, Side, dict[str, float]]:
    """Profile one download; returns the client side, the server side (CPU net of the fixed cost
    of a 1 kB download) and the client's JSON line."""
    cert, key, ca = make_test_cert(workdir)
    py, port = str(paths.python()), free_udp_port()
    server = subprocess.Popen([py, "-m", "quicreality", "server", "--listen", f"127.0.0.1:{port}",
                               "--cert", str(cert), "--key", str(key),
                               "--max-datagram-size", str(max_datagram)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=paths.REPO_ROOT)
    spies: list[subprocess.Popen[bytes]] = []
    client: subprocess.Popen[bytes] | None = None
    try:
        wait_port(port, server)

        def client_argv(n: int) -> list[str]:
            return [py, "-m", "quicreality", "client", f"https://127.0.0.1:{port}/bytes/{n}",
                    "--ca", str(ca), "--json", "--max-datagram-size", str(max_datagram)]

        # The fixed cost (interpreter start, imports, handshake) of a 1 kB download, subtracted.
        before = proc_cpu(server.pid)
        tiny = subprocess.Popen(client_argv(1000), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=paths.REPO_ROOT)
        _pid, status, tiny_usage = os.wait4(tiny.pid, 0)
        fixed_server = proc_cpu(server.pid) - before
        fixed_client = tiny_usage.ru_utime + tiny_usage.ru_stime
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError("the 1 kB download failed")
        spies.append(_spy(server.pid, workdir / "server.txt", rate))
        before = proc_cpu(server.pid)
        client = subprocess.Popen(client_argv(size), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  cwd=paths.REPO_ROOT)
        spies.append(_spy(client.pid, workdir / "client.txt", rate))
        _pid, status, usage = os.wait4(client.pid, 0)
        client.returncode = os.waitstatus_to_exitcode(status)
        server_cpu = proc_cpu(server.pid) - before - fixed_server
        stdout = client.stdout.read().decode() if client.stdout else ""
        line = next((json.loads(ln) for ln in stdout.splitlines() if ln.startswith("{")), None)
        if client.returncode != 0 or line is None or int(line.get("bytes") or 0) != size:
            raise RuntimeError(f"download failed (rc={client.returncode}): {stdout[-300:]}")
    finally:
        for spy in spies:
            _stop_spy(spy)
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        if client is not None and client.stdout:
            client.stdout.close()
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    time.sleep(0.2)
    sides = []
    client_cpu = usage.ru_utime + usage.ru_stime - fixed_client
    for name, cpu in (("client (receiver)", client_cpu), ("server (sender)", server_cpu)):
        raw = workdir / ("client.txt" if name.startswith("client") else "server.txt")
        text = raw.read_text() if raw.exists() else ""
        sides.append(Side(name, cpu, parse_raw(text)))
    return sides[0], sides[1], line


def main(argv: list[str]) -> int:
    """Run the profile and print the budget."""
    ap = argparse.ArgumentParser(prog="python -m quicreality.bench profile", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=20_000_000, help="bytes to download")
    ap.add_argument("--max-datagram-size", type=int, default=1200)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--out", help="keep the raw stacks and budget.json here")
    args = ap.parse_args(argv)
    if args.size <= 0 or args.rate <= 0:
        print("error: --size and --rate must be positive", file=sys.stderr)
        return 2
    if not (Path(sys.executable).parent / "py-spy").exists():
        print("error: py-spy is not installed next to this python (pip install py-spy)", file=sys.stderr)
        return 2
    workdir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="qr-profile-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        client, server, line = run(args.size, args.max_datagram_size, args.rate, workdir)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.out:
            shutil.rmtree(workdir, ignore_errors=True)
    # Stream payload per full datagram: size minus short header (1 + 8-byte CID + up to 4-byte PN),
    # the AEAD tag (16) and a STREAM frame header (~8); the count is an estimate, to +-1 %.
    payload = args.max_datagram_size - 1 - 8 - 4 - 16 - 8
    datagrams = -(-args.size // payload)
    secs = float(line["secs"])
    print(f"{args.size / 1e6:.0f} MB download, {args.max_datagram_size}-byte datagrams, "
          f"~{datagrams} datagrams, {args.size * 8 / secs / 1e6:.1f} Mbit/s")
    report = {}
    for side in (client, server):
        rows = side.budget(datagrams)
        total_us = side.cpu_s * 1e6 / datagrams
        print(f"\n{side.name}: {side.cpu_s:.2f} s CPU net of start-up, "
              f"{side.cpu_s * 1e9 / args.size:.1f} ns/B, "
              f"{total_us:.1f} µs per datagram ({sum(side.stages.values())} samples)")
        for stage, share, us in rows:
            print(f"  {stage:36s} {share * 100:5.1f} %  {us:6.2f} µs")
        report[side.name] = {"cpu_s": side.cpu_s, "us_per_datagram": total_us,
                             "stages": {s: {"share": sh, "us": us} for s, sh, us in rows}}
    if args.out:
        (workdir / "budget.json").write_text(json.dumps(report, indent=2))
    return 0
