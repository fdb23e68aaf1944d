"""Where an idle server connection's memory goes: tracemalloc in the real server process.

    python scripts/perf/idle_memory.py [N] [--by filename|lineno|traceback] [--top K]

Starts ``python -m quicreality server`` (as ``bench connections`` does: HTTP/3, no qlog, tickets
on) in a child process under ``tracemalloc.start(12)``, with the server's idle timeout raised to
900 s (under tracemalloc, N handshakes can outlast the 30 s default). It opens 10 warm-up
connections, has the server snapshot its allocations (SIGUSR1), opens N idle connections (default
200; ``bench connections``' clients: our bare QUIC, one UDP socket each), snapshots again, and
prints the difference per connection grouped ``--by`` file (default), line or traceback.
Compiled (mypyc), allocations inside compiled modules are charged to the last Python frame; run
with ``QR_PURE=1`` for a per-component budget. Used for docs/performance.md, "Idle connection
memory" (branch h15m). The RSS it prints includes tracemalloc's own memory: use
``bench connections`` for RSS.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

_SERVE = "--serve-under-tracemalloc"


def _serve(argv: list[str]) -> int:
    """The child: the CLI server, tracemalloc on, a snapshot per SIGUSR1 to ``QR_TM_OUT.<n>``."""
    import gc

    tracemalloc.start(12)
    count = [0]

    def dump(*_: Any) -> None:
        gc.collect()
        tracemalloc.take_snapshot().dump(f"{os.environ['QR_TM_OUT']}.{count[0]}")
        count[0] += 1

    signal.signal(signal.SIGUSR1, dump)
    from quicreality.quic.config import QuicConfiguration

    derived = QuicConfiguration.derived

    def long_idle(self: QuicConfiguration) -> QuicConfiguration:
        cfg = derived(self)
        cfg.idle_timeout = 900.0
        return cfg

    QuicConfiguration.derived = long_idle  # type: ignore[method-assign]
    from quicreality.cli import main

    return main(argv)


def _wait_for_file(path: Path, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < end:
        time.sleep(0.2)
    time.sleep(1.0)  # the dump may still be writing


def _report(before: Path, after: Path, n: int, by: str, top: int) -> None:
    flt = [tracemalloc.Filter(False, tracemalloc.__file__)]
    a = tracemalloc.Snapshot.load(str(before)).filter_traces(flt)
    b = tracemalloc.Snapshot.load(str(after)).filter_traces(flt)
    stats = b.compare_to(a, by)
    print(f"traced per idle connection: {sum(s.size_diff for s in stats) / n:.0f} B (N = {n})")
    for s in stats[:top]:
        where = "\n      ".join(str(f) for f in list(s.traceback)[-8:]) if by == "traceback" \
            else str(s.traceback)
        print(f"{s.size_diff / n:8.0f} B {s.count_diff / n:6.1f} blocks  {where}")


def main() -> int:
    """Run the probe and print the budget."""
    if len(sys.argv) > 1 and sys.argv[1] == _SERVE:
        return _serve(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", nargs="?", type=int, default=200, help="idle connections")
    ap.add_argument("--by", choices=("filename", "lineno", "traceback"), default="filename")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    from quicreality.bench.connections import Open, _pump_all, rss_kb
    from quicreality.scenarios.peers.base import free_udp_port, udp_bound
    from quicreality.scenarios.peers.certs import make_test_cert

    workdir = Path(tempfile.mkdtemp(prefix="qr-idle-memory-"))
    proc: subprocess.Popen[bytes] | None = None
    opened: list[Any] = []
    try:
        cert, key, _ca = make_test_cert(workdir)
        port = free_udp_port()
        out = workdir / "snap"
        with open(workdir / "server.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, __file__, _SERVE, "server", "--listen", f"127.0.0.1:{port}",
                 "--cert", str(cert), "--key", str(key)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "QR_TM_OUT": str(out)})
        end = time.monotonic() + 120
        while not udp_bound(port):
            if proc.poll() is not None or time.monotonic() > end:
                print((workdir / "server.log").read_text()[-2000:], file=sys.stderr)
                return 1
            time.sleep(0.1)
        for _ in range(10):
            Open(port, 30).close()
        time.sleep(1.0)  # the warm-up connections drain and are freed (3 PTOs)
        os.kill(proc.pid, signal.SIGUSR1)
        _wait_for_file(Path(f"{out}.0"))
        rss_before, started = rss_kb(proc.pid), time.monotonic()
        for _ in range(args.n):
            opened.append(Open(port, 30))
            if len(opened) % 50 == 0:
                _pump_all(opened, 0.02)
        _pump_all(opened, 0.5)
        rss_after = rss_kb(proc.pid)
        os.kill(proc.pid, signal.SIGUSR1)
        _wait_for_file(Path(f"{out}.1"))
        print(f"{args.n} idle connections opened in {time.monotonic() - started:.1f} s; server RSS "
              f"growth {(rss_after - rss_before) / args.n:.1f} KiB each (tracemalloc included)")
        _report(Path(f"{out}.0"), Path(f"{out}.1"), args.n, args.by, args.top)
    finally:
        for o in opened:
            o.close()
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
