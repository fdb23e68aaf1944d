"""Congestion controllers end to end on virtual time, over a rate-limited lossy link.

The link is docs/environment.md §8's lossy-wan: 50 Mbit/s, 20 ms one way, 1 % random loss each
way, a 250 KB drop-tail queue. There, TCP BBR keeps ~93 % of the link while loss-based
controllers fall to the Mathis regime (3-5 Mbit/s); our stack should show the same split.
Goodput is response bytes over the virtual time from the request to the last byte.
"""

from __future__ import annotations

import hashlib

import pytest
from simpair import LinkModel
from test_sim_pair import EchoPair, handshake

from quicreality.quic.recovery.congestion.bbr import BbrCongestionController, BbrState

SIZE = 5 * 1024 * 1024
LOSSY_WAN = LinkModel(delay=0.020, loss=0.01, rate_bps=50e6, queue_bytes=250_000)


def transfer(cc: str, link: LinkModel, seed: int = 1, size: int = SIZE) -> tuple[float, EchoPair]:
    """Download ``size`` bytes from a server using ``cc``; return (virtual seconds, pair)."""
    pair = EchoPair(seed=seed, link=link, server_overrides={"congestion_control_algorithm": cc})
    pair.response_size = size
    handshake(pair)
    (sid,) = pair.request()
    start = pair.now
    pair.run(lambda: sid in pair.finished, max_time=600)
    got = bytes(pair.received[sid])
    assert hashlib.sha256(got).digest() == hashlib.sha256(pair.body(size)).digest()
    return pair.now - start, pair


def mbps(seconds: float, size: int = SIZE) -> float:
    return size * 8 / seconds / 1e6


def test_bbr_beats_loss_based_controllers_on_a_lossy_wan() -> None:
    secs = {cc: transfer(cc, LOSSY_WAN)[0] for cc in ("bbr", "cubic", "newreno")}
    print("lossy-wan 5 MiB goodput (Mbit/s, virtual time): "
          + ", ".join(f"{cc} {mbps(s):.1f}" for cc, s in secs.items()))
    assert secs["bbr"] * 3 <= secs["cubic"]
    assert secs["bbr"] * 3 <= secs["newreno"]
    # BBR itself gets most of the link (startup included), like TCP BBR and ngtcp2 in §8.
    assert mbps(secs["bbr"]) > 30


def test_bbr_reaches_probe_bw_with_the_links_bandwidth_and_rtt() -> None:
    _, pair = transfer("bbr", LOSSY_WAN, seed=2)
    assert pair.server is not None
    cc = pair.server._cc
    assert isinstance(cc, BbrCongestionController)
    assert cc.state is BbrState.PROBE_BW
    # 50 Mbit/s less 28 bytes of IP/UDP header per 1200-byte datagram.
    assert cc.btl_bw * 8 == pytest.approx(50e6 * 1200 / 1228, rel=0.03)
    assert cc.rt_prop == pytest.approx(0.040, abs=0.002)


def test_rate_limited_link_caps_goodput_and_keeps_existing_behaviour_without_loss() -> None:
    secs, pair = transfer("cubic", LinkModel(delay=0.005, rate_bps=20e6, queue_bytes=100_000),
                          size=2_000_000)
    assert mbps(secs, 2_000_000) < 20
    assert pair.dropped["to_client"] == pair.queue_dropped["to_client"]  # only the queue drops
