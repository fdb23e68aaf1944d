"""The receive side of an HTTP/3 download, replayed into our client, for counting its cost alone.

    python scripts/perf/transfer_instructions.py record FILE --size BYTES [--max-datagram-size 1200]
    python scripts/perf/transfer_instructions.py replay FILE [--count N] [--batch B] [--profile OUT]

``record`` runs one download on virtual time (``tests/sim``: our client, our server with the
asyncio server's body pump, a 1 Gbit/s link with 0.1 ms delay, seeded randomness) and keeps every
datagram the server sent to the client, with its arrival time and ECN codepoint, in ``FILE``.

``replay`` builds the same client connection (the same seed, so the same ClientHello and keys)
inside the real asyncio edge (:class:`quicreality.aio.client.QuicClientSession`, its driver, the
HTTP/3 client and the download sink, on a real UDP socket whose ACKs go to a loopback socket that
is never read) and hands it the recorded datagrams in batches of ``B`` (default 32, the driver
drains up to 64 per wake-up) through ``Driver.process_batch``, on the recorded clock, running due
timers between batches, with the garbage collector tuned as ``python -m quicreality`` tunes it
(``aio/gc_policy.py``). Nothing is sent back to a server, so the count is the client's alone. It
prints the bytes of the body received, the datagrams fed and the process CPU time of the feed.
``--count N`` feeds only the first N datagrams (for the fixed cost: handshake, imports).

The client's cost per byte, load-independent, from two valgrind runs:

    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
        python scripts/perf/transfer_instructions.py replay FILE [--count 200]

per byte = (I(all) - I(--count 200)) / (body(all) - body(--count 200)). Used for
docs/performance.md, "The client budget, compiled".
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pickle
import socket
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sim"))

from simpair import LinkModel, SimPair, seeded_rng  # noqa: E402

from quicreality.aio import gc_policy  # noqa: E402
from quicreality.aio.client import Download, QuicClientSession  # noqa: E402
from quicreality.aio.server import BODY_CHUNK, STREAM_HIGH_WATER  # noqa: E402
from quicreality.h3.client import H3Client  # noqa: E402
from quicreality.h3.connection import H3Connection  # noqa: E402
from quicreality.h3.server import H3FileServer, H3ServerSession  # noqa: E402
from quicreality.quic import events  # noqa: E402
from quicreality.quic.config import QuicConfiguration  # noqa: E402
from quicreality.quic.connection import QuicConnection  # noqa: E402
from quicreality.quic.recovery.loss import SPACE_APPLICATION  # noqa: E402
from quicreality.tls.certificates import InsecureVerifier  # noqa: E402

SEED = 3
#: the ECN codepoint the datagrams are replayed with: ECT(0), as our server marks them (RFC 9000 §13.4)
ECT0 = 0b10
#: the replay client's first 1-RTT packet number (see :func:`replay`)
REPLAY_FIRST_PN = 1 << 20  # below the AES-GCM key-update limit (2^23 packets, RFC 9001 §6.6)
WALL = 1767225600.0  # 2026-01-01 UTC, as simpair.WALL


def client_configuration(max_datagram_size: int) -> QuicConfiguration:
    """The client of the recording, as SimPair builds it (``SimPair.__post_init__``)."""
    return QuicConfiguration(is_client=True, server_name="localhost",
                             rng=seeded_rng(SEED * 2 + 1), wall_clock=lambda: WALL,
                             peer_verifier=InsecureVerifier(), max_datagram_size=max_datagram_size)


class RecordPair(SimPair):
    """A SimPair with an HTTP/3 server session pumping bodies as the asyncio server does."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.h3client = H3Client(H3Connection(self.client, is_client=True), authority="localhost")
        self.session: H3ServerSession | None = None
        self.received: list[tuple[float, bytes, int]] = []

    def on_client_datagram(self, data: bytes) -> None:
        self.received.append((self.now, data, ECT0))

    def _flush(self) -> None:
        if self.server is not None and self.session is None:
            self.session = H3ServerSession(H3Connection(self.server, is_client=False),
                                           H3FileServer(None), chunk_size=BODY_CHUNK,
                                           high_water=STREAM_HIGH_WATER)
        if self.session is not None:
            self.session.pump()
        super()._flush()

    def on_client_event(self, event: Any) -> None:
        self.h3client.handle_event(event)

    def on_server_event(self, event: Any) -> None:
        assert self.session is not None
        self.session.handle_event(event)


def record(path: Path, size: int, max_datagram_size: int) -> None:
    """Run the download on virtual time and keep the server's datagrams (``max_datagram_size``
    on both sides: 1200, as ``bench transfer``, turns DPLPMTUD off)."""
    sizes = {"max_datagram_size": max_datagram_size}
    pair = RecordPair(seed=SEED, link=LinkModel(delay=0.0001, rate_bps=1e9, queue_bytes=None),
                      client_overrides=sizes, server_overrides=sizes)
    pair.connect()
    pair.run(lambda: any(isinstance(e, events.HandshakeCompleted) for e in pair.client_events))
    sid = pair.h3client.get(f"/bytes/{size}")
    pair.run(lambda: pair.h3client.all_done, max_time=600, max_steps=50_000_000)
    rec = pair.h3client.responses[sid]
    assert rec.ok and len(rec.body) == size, (rec.status, rec.error, len(rec.body))
    with path.open("wb") as out:
        pickle.dump({"size": size, "max_datagram_size": max_datagram_size,
                     "datagrams": pair.received}, out)
    total = sum(len(d) for _, d, _ in pair.received)
    print(f"recorded {len(pair.received)} datagrams, {total} bytes, {pair.now:.3f} s virtual")


class ReplaySession(QuicClientSession):
    """The real client session on a virtual clock (``now`` is the recorded arrival time)."""

    vnow = 0.0

    def now(self) -> float:
        return self.vnow


def replay(path: Path, count: int | None, batch: int) -> tuple[int, int, float]:
    """Feed the recorded datagrams; returns (body bytes, datagrams fed, CPU seconds of the feed)."""
    with path.open("rb") as src:
        recording = pickle.load(src)
    datagrams: list[tuple[float, bytes, int]] = recording["datagrams"]
    if count is not None:
        datagrams = datagrams[:count]
    loop = asyncio.new_event_loop()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    server_addr = sink.getsockname()
    download = Download(url="https://localhost/", path=f"/bytes/{recording['size']}", output=None)
    conn = QuicConnection(configuration=client_configuration(recording["max_datagram_size"]))
    # The server's ACKs name the packet numbers the recording's client used, which sent more
    # packets than this one (it answered every delivery): start 1-RTT numbering above them, so
    # those ACKs are for packets "never sent" by nobody and acknowledge nothing here.
    conn._spaces[SPACE_APPLICATION].next_pn = REPLAY_FIRST_PN
    session = ReplaySession(sock, conn, "localhost", [download], loop=loop)
    session.start(server_addr)
    cpu0 = time.process_time()
    i = 0
    while i < len(datagrams):
        # One at a time until the request is out (the recording's client sent it at once, so
        # its response may follow in the datagram after the handshake's last), then batches.
        chunk = datagrams[i : i + (batch if session.h3 is not None else 1)]
        i += len(chunk)
        now = chunk[-1][0]
        timer = conn.get_timer()
        if timer is not None and timer <= now:
            session.vnow = max(timer, session.vnow)
            session._on_timer()
        session.vnow = now
        session.process_batch([(d, server_addr, ecn) for _, d, ecn in chunk], now)
    cpu = time.process_time() - cpu0
    session.close()
    sock.close()
    sink.close()
    loop.close()
    return download.bytes, len(datagrams), cpu


def main(argv: list[str]) -> int:
    """Command line: ``record`` or ``replay`` (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="transfer_instructions.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("file", type=Path)
    rec.add_argument("--size", type=int, default=20_000_000)
    rec.add_argument("--max-datagram-size", type=int, default=1200)
    rep = sub.add_parser("replay")
    rep.add_argument("file", type=Path)
    rep.add_argument("--count", type=int, default=None)
    rep.add_argument("--batch", type=int, default=32)
    rep.add_argument("--profile", type=Path, default=None)
    rep.add_argument("--repeat", type=int, default=1,
                     help="replay this many times in one process (a fresh connection each)")
    args = ap.parse_args(argv)
    if args.cmd == "record":
        record(args.file, args.size, args.max_datagram_size)
        return 0
    gc_policy.tune()  # as ``python -m quicreality`` does (QR_GC=default keeps CPython's)
    if args.profile is not None:
        prof = cProfile.Profile(time.process_time)
        body, fed, cpu = prof.runcall(replay, args.file, args.count, args.batch)
        prof.dump_stats(str(args.profile))
    else:
        body = fed = 0
        cpu = 0.0
        for _ in range(args.repeat):
            b, n, c = replay(args.file, args.count, args.batch)
            body, fed, cpu = body + b, fed + n, cpu + c
    print(f"body {body} bytes, {fed} datagrams, feed CPU {cpu:.3f} s, "
          f"{cpu * 1e9 / max(body, 1):.2f} ns/B")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
