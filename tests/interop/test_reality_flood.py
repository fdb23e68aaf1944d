"""A flood of new flows from thousands of source ports must not grow the listener without bound
(issue 3, "Bad input and limits"): every flow is decided and relayed (none dropped silently), the
pending and relay tables stay within their limits, sockets and memory level off, and a genuine
client is still accepted afterwards."""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Callable

import pytest
from peers_harness import PeerHarness, Pki, WwwDir
from reality_support import RealityLab, handshake, open_fds, rss_kib, wait_for

from quicreality.reality.probe import initial_datagrams, split

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

MAX_PENDING = 64
MAX_FALLBACK = 512
WAVE = 3000
BATCH = 150


def _half_hello() -> bytes:
    """An Initial with the first 100 bytes of a 260-byte ClientHello: pending until it times out
    (or is refused a place when the pending table is full)."""
    hello = b"\x01\x00\x01\x00" + os.urandom(256)
    return initial_datagrams(split(hello, [100]), dcid=os.urandom(8), scid=os.urandom(8))[0]


def _decided(lab: RealityLab) -> float:
    m = lab.metrics()
    return sum(v for k, v in m.items()
               if k.startswith("quicreality_reality_handshakes_rejected_total{"))


def _wave(lab: RealityLab, rng: random.Random, sample: Callable[[], None]) -> int:
    """WAVE new flows, one datagram each, from as many distinct source ports (all sockets stay
    open until the wave is over, so no port is used twice)."""
    addr = ("127.0.0.1", lab.port)
    socks = []
    try:
        for i in range(WAVE):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
            kind = i % 3
            if kind == 0:
                data = _half_hello()  # pending until it times out or the table is full
            elif kind == 1:
                data = bytes([0xC3]) + b"\x0a\x0a\x0a\x0a" + rng.randbytes(1195)  # unknown version
            else:
                data = rng.randbytes(rng.randrange(20, 1400))  # junk
            s.sendto(data, addr)
            if i % BATCH == BATCH - 1:
                time.sleep(0.05)  # let the listener keep up: we test its tables, not the kernel's
                sample()
        return len({s.getsockname() for s in socks})
    finally:
        for s in socks:
            s.close()


def test_flood_of_thousands_of_flows_is_bounded(peer_harness: PeerHarness, pki: Pki,
                                                www: WwwDir) -> None:
    lab = RealityLab(peer_harness, pki, www, target="ngtcp2", extra_config={
        "max_pending_flows": str(MAX_PENDING), "max_fallback_flows": str(MAX_FALLBACK),
        "pending_timeout_ms": "500", "fallback_idle_timeout_ms": "4000"})
    pid = lab.server.pid
    assert handshake(lab.client_config(), lab.port).completed  # warm up every code path
    fds0, rss0 = open_fds(pid), rss_kib(pid)
    rng = random.Random(11)
    peaks = {"pending": 0.0, "fallback": 0.0, "fds": 0}
    growth = []
    sent_total = 0

    def sample() -> None:
        m = lab.metrics()
        peaks["pending"] = max(peaks["pending"], m["quicreality_reality_pending_flows"])
        peaks["fallback"] = max(peaks["fallback"], m["quicreality_reality_fallback_flows_active"])
        peaks["fds"] = max(peaks["fds"], open_fds(pid))

    for _wave_no in range(2):
        sent_total += _wave(lab, rng, sample)
        assert wait_for(lambda n=sent_total: _decided(lab) >= n, timeout=60), (
            _decided(lab), sent_total, lab.log()[-1500:])
        sample()
        growth.append(rss_kib(pid) - rss0)
        # Idle relays expire and give their sockets back before the next wave.
        assert wait_for(
            lambda: lab.metrics()["quicreality_reality_fallback_flows_active"] == 0, timeout=15)
    print(f"flood: {sent_total} flows, peaks {peaks}, RSS growth after each wave {growth} KiB, "
          f"fds {fds0} -> {peaks['fds']}")
    # Every flow was decided (relayed), none dropped silently.
    assert _decided(lab) == sent_total
    m = lab.metrics()
    assert m["quicreality_reality_handshakes_rejected_total{reason=TOO_MANY_PENDING}"] > 0 or \
        m["quicreality_reality_handshakes_rejected_total{reason=TIMEOUT}"] > 0
    assert m["quicreality_reality_fallback_flows_total"] == sent_total
    # Bounded tables, bounded sockets, bounded memory.
    assert peaks["pending"] <= MAX_PENDING
    assert peaks["fallback"] <= MAX_FALLBACK
    assert peaks["fds"] <= fds0 + MAX_FALLBACK + MAX_PENDING + 16
    assert growth[-1] < 48 * 1024, growth  # < 48 MiB after 6000 flows
    assert growth[1] - growth[0] < 16 * 1024, growth  # the second wave adds little
    # Every relay socket was given back; a genuine client still gets in.
    assert open_fds(pid) <= fds0 + 8
    assert handshake(lab.client_config(), lab.port).completed
