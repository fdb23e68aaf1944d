"""``python -m quicreality.bench handshake``: QUIC handshakes per second on loopback, same run.

Configurations, interleaved round by round so drift on a shared machine hits all alike:

* ``plain TLS``: our client -> our server (PKI certificate);
* ``plain TLS, chrome hello``: the same with ``fingerprint="chrome"`` (Chromium's hello and Initial
  layout, as the REALITY client sends them by default): what the hello costs without REALITY;
* ``REALITY accept``: our REALITY client -> our REALITY listener (HMAC certificate), whose target
  is the aioquic server below;
* ``REALITY accept, ngtcp2 target``: the same against a third listener whose target is ngtcp2's
  ``gtlsserver`` (C): the listener's own cost with a target that, like a real site, costs these
  two cores little (``--no-ngtcp2`` leaves it out);
* ``REALITY accept, unpaced``: the same against a second listener with ``pace_first_reply =
  false`` (no wait for the target's learned first-reply time);
* ``REALITY reject->fallback``: our plain client -> our REALITY listener -> relayed to an aioquic
  target (the gate rejects the empty session_id; the aioquic target completes the handshake);
* ``ours->aioquic direct``: our plain client -> the same aioquic server (the relay's baseline);
* ``ours->ngtcp2 direct``: our plain client -> the ngtcp2 target (what that target costs);
* ``aioquic plain``: aioquic's client -> aioquic's server;
* ``qh3 plain``: qh3's client -> qh3's server (the same peer script, ``QR_PEER_IMPL=qh3``; qh3 is
  the Rust-accelerated aioquic fork, the speed anchor; ``--no-qh3`` leaves it out).

Every client runs in this process, one handshake at a time on a fresh UDP socket, through the same
driver loop (:func:`drive`; aioquic's connection has the same five verbs). A handshake counts from
``connect`` to HandshakeCompleted; the connection is then closed. Printed: handshakes/s (median of
rounds), server CPU ms per handshake (for the REALITY rows: the listener plus its target, which
receives every mirrored ClientHello and answers it, accepted or not), the listener's share of it,
this process's CPU ms per handshake (the client and its driver loop), and ratios, among them
REALITY accept / plain TLS by handshakes/s and by CPU per handshake (client + servers), for each
target. In deployment the target is a remote site whose CPU is not the listener's; here it shares
the two cores, so the aioquic target (Python) slows the REALITY rows by its own handshake on every
mirrored hello. Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..scenarios.peers import paths
from ..scenarios.peers.base import free_udp_port, udp_bound
from ..scenarios.peers.certs import make_test_cert

_TICK = os.sysconf("SC_CLK_TCK")


# --- a blocking driver for one client connection (also used by the interop tests) ----------


def _named(event: Any, name: str) -> bool:
    return type(event).__name__ == name


def handshake_done(events: list[Any]) -> bool:
    """Stop condition: the handshake completed."""
    return any(_named(e, "HandshakeCompleted") for e in events)


@dataclass
class DriveResult:
    """What happened while driving a connection."""

    events: list[Any] = field(default_factory=list)
    secs: float = 0.0
    timed_out: bool = False
    received: int = 0

    @property
    def terminated(self) -> Any:
        """The ConnectionTerminated event, if any."""
        return next((e for e in self.events if _named(e, "ConnectionTerminated")), None)

    @property
    def completed(self) -> bool:
        """True if the handshake completed."""
        return handshake_done(self.events)


def drive(
    conn: Any,
    server: Any,
    *,
    sock: socket.socket,
    timeout: float,
    until: Callable[[list[Any]], bool] = handshake_done,
    clock: Callable[[], float] = time.monotonic,
) -> DriveResult:
    """Run an already ``connect``-ed client connection over ``sock`` until ``until(events)``, a
    ConnectionTerminated event, or ``timeout`` seconds.

    Works with our :class:`~quicreality.quic.connection.QuicConnection` and with aioquic's.
    """
    result = DriveResult()
    start = clock()
    deadline = start + timeout
    sock.setblocking(False)
    while True:
        now = clock()
        for data, _addr in conn.datagrams_to_send(now):
            try:
                sock.sendto(data, server)
            except OSError:
                pass
        while (event := conn.next_event()) is not None:
            result.events.append(event)
        if until(result.events) or result.terminated is not None:
            break
        timer = conn.get_timer()
        wake = deadline if timer is None else min(deadline, timer)
        wait = wake - clock()
        if wait > 0:
            readable, _, _ = select.select([sock], [], [], wait)
            if readable:
                for _ in range(64):
                    try:
                        data, addr = sock.recvfrom(65536)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    result.received += 1
                    conn.receive_datagram(data, addr, clock())
                continue
        now = clock()
        if now >= deadline:
            result.timed_out = True
            break
        if timer is not None and now >= timer:
            conn.handle_timer(now)
    result.secs = clock() - start
    return result


def close_and_flush(conn: Any, server: Any, sock: socket.socket) -> None:
    """Close the connection and send its CONNECTION_CLOSE (best effort)."""
    try:
        conn.close()
        for data, _ in conn.datagrams_to_send(time.monotonic()):
            sock.sendto(data, server)
    except Exception:  # noqa: BLE001 - a benchmark client must not die on cleanup
        pass


# --- the benchmark ---------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass
class Setup:
    """One configuration: how to make a connected client, and which servers do the work."""

    name: str
    port: int
    make: Callable[[], Any]
    server_pids: list[int]
    """The server processes whose CPU is counted; the first is the one the client talks to."""
    rates: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    first_cpu_ms: list[float] = field(default_factory=list)
    client_cpu_ms: list[float] = field(default_factory=list)


def _one(setup: Setup, timeout: float) -> float:
    addr = ("127.0.0.1", setup.port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        conn = setup.make()
        t0 = time.monotonic()
        conn.connect(addr, now=t0)
        result = drive(conn, addr, sock=sock, timeout=timeout)
        if not result.completed:
            why = result.terminated or ("timeout" if result.timed_out else "no handshake")
            raise RuntimeError(f"{setup.name}: handshake failed: {why}")
        elapsed = time.monotonic() - t0
        close_and_flush(conn, addr, sock)
        return elapsed
    finally:
        sock.close()


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate (then kill after 5 s) every process still running, and reap it."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_server_process(argv: list[str], port: int, log: Path,
                         env: dict[str, str] | None = None,
                         cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a server (its output to ``log``; in ``cwd``, default the repository) and wait until it
    has bound UDP ``port``."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                cwd=cwd or paths.REPO_ROOT,
                                start_new_session=True, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 15
    while not udp_bound(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{argv[:4]} did not start: {log.read_text()[-500:]}")
        time.sleep(0.05)
    return proc


def _reality_toml(path: Path, private_key: str, target_port: int, pace: bool) -> None:
    path.write_text(
        "[reality]\n"
        f'private_key = "{private_key}"\n'
        'server_names = ["localhost"]\nshort_ids = ["0a0b"]\n'
        f'target = "127.0.0.1:{target_port}"\nmax_time_diff_ms = 60000\n'
        f"max_fallback_flows = 256\npace_first_reply = {'true' if pace else 'false'}\n")


def _setups(workdir: Path, procs: list[subprocess.Popen[bytes]], qh3: bool,
            ngtcp2: bool) -> list[Setup]:
    from aioquic.quic.configuration import QuicConfiguration as AioConfiguration
    from aioquic.quic.connection import QuicConnection as AioConnection

    from ..quic.config import QuicConfiguration
    from ..quic.connection import QuicConnection
    from ..reality.keys import generate_key_pair, parse_short_id
    from ..reality.seal import reality_client_configuration
    from ..tls.certificates import InsecureVerifier

    cert, key, _ca = make_test_cert(workdir)
    py = str(paths.python())
    p_plain, p_target, p_reality, p_qh3, p_unpaced = (free_udp_port() for _ in range(5))
    pair = generate_key_pair(os.urandom)
    _reality_toml(workdir / "reality.toml", pair.private_key_text, p_target, True)
    _reality_toml(workdir / "reality-unpaced.toml", pair.private_key_text, p_target, False)
    ours = start_server_process([py, "-m", "quicreality", "server", "--listen", f"127.0.0.1:{p_plain}",
                   "--cert", str(cert), "--key", str(key)], p_plain, workdir / "ours.log")
    procs.append(ours)
    target = start_server_process([py, str(paths.aioquic_script("h3server.py")), "--host", "127.0.0.1",
                     "--port", str(p_target), "--certificate", str(cert), "--private-key",
                     str(key)], p_target, workdir / "aioquic.log")
    procs.append(target)
    reality = start_server_process([py, "-m", "quicreality", "server", "--listen", f"127.0.0.1:{p_reality}",
                      "--reality-config", str(workdir / "reality.toml")], p_reality,
                     workdir / "reality.log")
    procs.append(reality)
    # The same listener without first-reply pacing: what the accept path costs apart from the
    # wait for the target's learned answer time (docs/reality.md, timing side channel).
    unpaced = start_server_process([py, "-m", "quicreality", "server", "--listen",
                                    f"127.0.0.1:{p_unpaced}", "--reality-config",
                                    str(workdir / "reality-unpaced.toml")], p_unpaced,
                                   workdir / "reality-unpaced.log")
    procs.append(unpaced)

    def plain_config() -> QuicConfiguration:
        return QuicConfiguration(is_client=True, rng=os.urandom, wall_clock=time.time,
                                 peer_verifier=InsecureVerifier(), server_name="localhost")

    def ours_plain() -> Any:
        return QuicConnection(configuration=plain_config())

    def ours_plain_chrome() -> Any:
        from ..quic.fingerprint import apply_fingerprint

        return QuicConnection(configuration=apply_fingerprint(plain_config(), "chrome"))

    def ours_reality() -> Any:
        base = QuicConfiguration(is_client=True, rng=os.urandom, wall_clock=time.time)
        cfg = reality_client_configuration(base, server_public_key=pair.public_key,
                                           short_id=parse_short_id("0a0b"), server_name="localhost")
        return QuicConnection(configuration=cfg)

    def aioquic_plain() -> Any:
        import ssl

        cfg = AioConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost",
                               verify_mode=ssl.CERT_NONE)
        return AioConnection(configuration=cfg)

    setups = [
        Setup("plain TLS", p_plain, ours_plain, [ours.pid]),
        Setup("plain TLS, chrome hello", p_plain, ours_plain_chrome, [ours.pid]),
        # The target handles every mirrored ClientHello too: its CPU is part of the cost.
        Setup("REALITY accept", p_reality, ours_reality, [reality.pid, target.pid]),
        Setup("REALITY accept, unpaced", p_unpaced, ours_reality, [unpaced.pid, target.pid]),
        Setup("REALITY reject->fallback", p_reality, ours_plain, [reality.pid, target.pid]),
        Setup("ours->aioquic direct", p_target, ours_plain, [target.pid]),
        Setup("aioquic plain", p_target, aioquic_plain, [target.pid]),
    ]
    if ngtcp2:
        p_ng, p_ng_reality = free_udp_port(), free_udp_port()
        www = workdir / "www"
        www.mkdir()
        ng = start_server_process([str(paths.gtlsserver()), "-q", "-d", str(www), "127.0.0.1",
                                   str(p_ng), str(key), str(cert)], p_ng, workdir / "ngtcp2.log")
        procs.append(ng)
        _reality_toml(workdir / "reality-ngtcp2.toml", pair.private_key_text, p_ng, True)
        ng_reality = start_server_process(
            [py, "-m", "quicreality", "server", "--listen", f"127.0.0.1:{p_ng_reality}",
             "--reality-config", str(workdir / "reality-ngtcp2.toml")], p_ng_reality,
            workdir / "reality-ngtcp2.log")
        procs.append(ng_reality)
        setups[3:3] = [Setup("REALITY accept, ngtcp2 target", p_ng_reality, ours_reality,
                             [ng_reality.pid, ng.pid])]
        setups.append(Setup("ours->ngtcp2 direct", p_ng, ours_plain, [ng.pid]))
    if qh3:
        qh3_argv = [py, str(paths.aioquic_script("h3server.py")), "--host", "127.0.0.1",
                    "--port", str(p_qh3), "--certificate", str(cert), "--private-key", str(key)]
        qh3_server = start_server_process(qh3_argv, p_qh3, workdir / "qh3.log",
                                          env={"QR_PEER_IMPL": "qh3"})
        procs.append(qh3_server)

        def qh3_plain() -> Any:
            import ssl

            from qh3.quic.configuration import QuicConfiguration as Qh3Configuration
            from qh3.quic.connection import QuicConnection as Qh3Connection

            cfg = Qh3Configuration(is_client=True, alpn_protocols=["h3"], server_name="localhost",
                                   verify_mode=ssl.CERT_NONE)
            return Qh3Connection(configuration=cfg)

        setups.append(Setup("qh3 plain", p_qh3, qh3_plain, [qh3_server.pid]))
    return setups


def main(argv: list[str]) -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(prog="python -m quicreality.bench handshake", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-round", type=int, default=40, help="handshakes per config per round")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per handshake")
    ap.add_argument("--no-qh3", action="store_true", help="leave the qh3 row out")
    ap.add_argument("--no-ngtcp2", action="store_true",
                    help="leave out the rows with ngtcp2's gtlsserver as the target")
    args = ap.parse_args(argv)
    if args.rounds <= 0 or args.per_round <= 0:
        print("error: --rounds and --per-round must be positive", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="qr-bench-hs-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        qh3 = not args.no_qh3
        if qh3 and importlib.util.find_spec("qh3") is None:
            print("error: qh3 does not import (run scripts/setup.sh, or pass --no-qh3)",
                  file=sys.stderr)
            return 2
        setups = _setups(workdir, procs, qh3, not args.no_ngtcp2)
        for s in setups:  # warm-up (imports, caches), not counted
            _one(s, args.timeout)
        for rnd in range(1, args.rounds + 1):
            for s in setups:
                cpu0 = sum(proc_cpu(pid) for pid in s.server_pids)
                first0 = proc_cpu(s.server_pids[0])
                t0, c0 = time.monotonic(), time.process_time()
                for _ in range(args.per_round):
                    _one(s, args.timeout)
                secs = time.monotonic() - t0
                client_cpu = time.process_time() - c0
                cpu = sum(proc_cpu(pid) for pid in s.server_pids) - cpu0
                first = proc_cpu(s.server_pids[0]) - first0
                s.rates.append(args.per_round / secs)
                s.cpu_ms.append(cpu * 1000 / args.per_round)
                s.first_cpu_ms.append(first * 1000 / args.per_round)
                s.client_cpu_ms.append(client_cpu * 1000 / args.per_round)
                print(f"round {rnd} {s.name:31s} {s.rates[-1]:7.1f} hs/s  "
                      f"server CPU {s.cpu_ms[-1]:5.1f} ms/hs  client CPU "
                      f"{s.client_cpu_ms[-1]:5.2f} ms/hs", flush=True)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_processes(procs)
        shutil.rmtree(workdir, ignore_errors=True)
    med = {s.name: statistics.median(s.rates) for s in setups}
    cpu_med = {s.name: statistics.median(s.cpu_ms) for s in setups}
    first_med = {s.name: statistics.median(s.first_cpu_ms) for s in setups}
    client_med = {s.name: statistics.median(s.client_cpu_ms) for s in setups}
    print(f"\nhandshakes/s on loopback, {args.rounds} rounds x {args.per_round}, interleaved, "
          "one at a time (client in this process)")
    print(f"{'configuration':31s} {'median':>8s} {'min':>8s} {'max':>8s} {'servers CPU ms/hs':>17s} "
          f"{'of it listener':>14s} {'client CPU ms/hs':>16s}")
    for s in setups:
        own = f"{first_med[s.name]:14.2f}" if len(s.server_pids) > 1 else f"{'':14s}"
        print(f"{s.name:31s} {med[s.name]:8.1f} {min(s.rates):8.1f} {max(s.rates):8.1f} "
              f"{cpu_med[s.name]:17.2f} {own} {client_med[s.name]:16.2f}")
    base = med["aioquic plain"]
    print("\nratios (median handshakes/s):")
    for s in setups:
        print(f"  {s.name:31s} / aioquic plain = {med[s.name] / base:.2f}x")
    if "qh3 plain" in med:
        print(f"  plain TLS / qh3 plain = {med['plain TLS'] / med['qh3 plain']:.2f}x (goal >= 1.0x)")
    total = {name: cpu_med[name] + client_med[name] for name in med}
    for row, target in (("REALITY accept", "aioquic"), ("REALITY accept, ngtcp2 target", "ngtcp2")):
        if row not in med:
            continue
        print(f"  {row} / plain TLS = {med[row] / med['plain TLS']:.2f}x "
              f"(goal >= 0.7x; {target} target)")
        print(f"  {row} / plain TLS by CPU per handshake (client + servers, plain / REALITY) = "
              f"{total['plain TLS'] / total[row]:.2f}x; without the target's CPU "
              f"{total['plain TLS'] / (first_med[row] + client_med[row]):.2f}x")
        print(f"  {row} / plain TLS, chrome hello = "
              f"{med[row] / med['plain TLS, chrome hello']:.2f}x (the same hello)")
    print(f"  REALITY accept, unpaced / plain TLS = "
          f"{med['REALITY accept, unpaced'] / med['plain TLS']:.2f}x (no first-reply pacing)")
    print(f"  plain TLS, chrome hello / plain TLS = "
          f"{med['plain TLS, chrome hello'] / med['plain TLS']:.2f}x (the hello's own cost)")
    print(f"  REALITY reject->fallback / ours->aioquic direct = "
          f"{med['REALITY reject->fallback'] / med['ours->aioquic direct']:.2f}x")
    return 0
