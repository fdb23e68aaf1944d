"""CPU per MB of an HTTP/3 download on virtual time (both ends in this process), qlog on or off.

``PYTHONPATH=$PWD python3 scripts/perf/sim_cpu.py on|off [CC] [BYTES]`` runs the lossy-wan link model
(50 Mbit/s, 20 ms one-way, 1 % loss, 250 KB queue) through the server's real body pump
(``ServerPair`` of ``tests/sim/test_sim_h3_transfer.py``), with the CLI's GC policy, both qlogs
written to a temporary directory when ``on``, and prints ``time.process_time()`` per 10^6 payload
bytes. It includes the link model's own cost, so compare two checkouts with it, alternated
(docs/performance.md, "The runner path").
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd() / "tests" / "sim"))

from simpair import LinkModel
from test_sim_h3_transfer import ServerPair

from quicreality.aio.driver import qlog_factory
from quicreality.aio.gc_policy import tune
from quicreality.quic import events


def run(qlog: bool, cc: str, size: int) -> float:
    """Seconds of CPU per 10^6 payload bytes."""
    server: dict[str, Any] = {"congestion_control_algorithm": cc}
    client: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        if qlog:
            server["qlog_factory"] = client["qlog_factory"] = qlog_factory(d)
        pair = ServerPair(seed=1, link=LinkModel(delay=0.020, loss=0.01, rate_bps=50e6,
                                                 queue_bytes=250_000),
                          server_overrides=server, client_overrides=client)
        t0 = time.process_time()
        pair.connect()
        pair.run(lambda: any(isinstance(e, events.HandshakeCompleted) for e in pair.client_events))
        sid = pair.h3client.get(f"/bytes/{size}")
        pair.run(lambda: pair.h3client.all_done, max_time=120, max_steps=20_000_000)
        cpu = time.process_time() - t0
        assert pair.h3client.responses[sid].ok
    return cpu / (size / 1e6)


if __name__ == "__main__":
    tune()
    mode = sys.argv[1] if len(sys.argv) > 1 else "on"
    cc = sys.argv[2] if len(sys.argv) > 2 else "bbr"
    size = int(float(sys.argv[3])) if len(sys.argv) > 3 else 10_000_000
    print(f"qlog {mode} {cc} {size / 1e6:.0f} MB: {run(mode == 'on', cc, size) * 1000:.1f} ms/MB "
          "(both ends + link model)")
