"""Handshakes on an in-memory pair, for counting instructions with valgrind (load-independent).

    python scripts/perf/handshake_instructions.py MODE N [--profile OUT]

MODE: ``plain`` (our client, minimal hello -> plain endpoint, ECDSA P-256 certificate),
``plain-chrome`` (the same with the chrome fingerprint), ``reality`` (our REALITY client, chrome
hello, ech carrier -> an endpoint behind a RealityGate; nothing answers the mirrored hello). Runs N
handshakes to HandshakeCompleted on both sides, one after another, with seeded randomness (the
same bytes every run). The per-handshake count is (count(8) - count(2)) / 6:

    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
        python scripts/perf/handshake_instructions.py reality 8

``--profile OUT`` writes a cProfile (process-CPU timer) of the N handshakes instead, to see where
the difference goes. Used for docs/reality.md, "Handshake benchmark".
"""

from __future__ import annotations

import argparse
import cProfile
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "unit" / "reality"))

from reality_helpers import (
    CLIENT_ADDR,
    WALL,
    client_configuration,
    make_gate,
    plain_credentials,
    seeded_rng,
)

from quicreality.quic import events
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.quic.endpoint import QuicServerEndpoint
from quicreality.quic.fingerprint import apply_fingerprint
from quicreality.tls.certificates import InsecureVerifier

SERVER = ("203.0.113.1", 443)


def _client(mode: str, seed: int) -> QuicConfiguration:
    if mode == "reality":
        return client_configuration(seed=seed, fingerprint="chrome")
    cfg = QuicConfiguration(is_client=True, rng=seeded_rng(seed), wall_clock=lambda: WALL,
                            server_name="www.example.com", peer_verifier=InsecureVerifier())
    return apply_fingerprint(cfg, "chrome") if mode == "plain-chrome" else cfg


def server(mode: str, creds: Any) -> QuicServerEndpoint:
    """One endpoint (behind one gate for ``reality``) for all the handshakes, as a listener."""
    rng = seeded_rng(1000)

    def factory() -> QuicConfiguration:
        cfg = QuicConfiguration(is_client=False, rng=rng, wall_clock=lambda: WALL)
        if mode != "reality":
            cfg.certificate_source = creds
        return cfg

    return QuicServerEndpoint(factory, rng=rng, gate=make_gate() if mode == "reality" else None)


def handshake(mode: str, seed: int, endpoint: QuicServerEndpoint) -> None:
    """One handshake to completion on both sides (raises if it does not complete)."""
    addr = (CLIENT_ADDR[0], 20000 + seed)
    client = QuicConnection(configuration=_client(mode, seed))
    now = 0.0
    client.connect(SERVER, now)
    done_c = done_s = False
    for _ in range(200):
        for data, _ in client.datagrams_to_send(now):
            endpoint.receive_datagram(data, addr, now)
        conns = list(endpoint.connections)  # only this handshake's: the last ones were forgotten
        for conn in conns:
            for data, _ in conn.datagrams_to_send(now):
                client.receive_datagram(data, SERVER, now)
            while (ev := conn.next_event()) is not None:
                done_s = done_s or isinstance(ev, events.HandshakeCompleted)
        while (ev := client.next_event()) is not None:
            done_c = done_c or isinstance(ev, events.HandshakeCompleted)
        if done_c and done_s:
            for conn in conns:
                endpoint.forget(conn)
            return
        now += 0.01
    raise RuntimeError(f"{mode} handshake {seed} did not complete")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("plain", "plain-chrome", "reality"))
    ap.add_argument("n", type=int)
    ap.add_argument("--profile", type=Path)
    args = ap.parse_args()
    endpoint = server(args.mode, plain_credentials())
    if args.profile is not None:
        prof = cProfile.Profile(time.process_time)
        prof.enable()
    for i in range(args.n):
        handshake(args.mode, i, endpoint)
    if args.profile is not None:
        prof.disable()
        prof.dump_stats(str(args.profile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
