"""``python -m quicreality.bench NAME ...``: benchmarks that print ratios against a peer measured in
the same run (never timed assertions). Each NAME is a module ``quicreality.bench.NAME`` with
``main(argv) -> int``."""

from __future__ import annotations

import importlib
import sys

BENCHES = {
    "transfer": "100 MB HTTP/3 downloads: ours vs aioquic vs qh3 (each its own pair), interleaved",
    "handshake": "handshakes/s: plain TLS, REALITY accept, REALITY reject->fallback, aioquic, qh3",
    "connections": "server memory: KiB per idle connection, RSS after 10,000 vs 1,000 short ones",
    "relay": "iperf3 through RAW -> QUIC_REALITY -> RAW vs direct TCP",
    "profile": "per-datagram cost budget of our client and server (py-spy), by stage",
    "flood": "server RSS under a spoofed-source Initial flood, with and without the handshake budget",
    "reality-flood": "the REALITY listener under a spoofed Initial flood: hellos judged/s, a genuine "
                     "client's download time (--compare TREE: before/after, same run)",
    "gate-timing": "REALITY gate timing side channel: time to the first reply, accepted (paced, "
                   "unpaced) / rejected->target / target direct, delayed target",
    "analysis": "a run's analysis: derive (cold), every notebook and report (warm), in seconds",
}


def main(argv: list[str]) -> int:
    """Dispatch to a benchmark module."""
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m quicreality.bench NAME [options]\n")
        for name, text in BENCHES.items():
            print(f"  {name:10s} {text}")
        return 0 if argv else 2
    name = argv[0]
    if name not in BENCHES:
        print(f"error: unknown benchmark {name!r} (choose from {', '.join(BENCHES)})", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"quicreality.bench.{name.replace('-', '_')}")
    except ModuleNotFoundError as exc:
        if exc.name == f"quicreality.bench.{name.replace('-', '_')}":
            print(f"error: benchmark {name!r} is not implemented yet", file=sys.stderr)
            return 2
        raise
    return int(module.main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
