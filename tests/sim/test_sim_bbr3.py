"""BBRv3 end to end on virtual time: the connection, its loss detection and pacer, real packets.

Links as in docs/environment.md §8 and the catalog: lossy-wan (50 Mbit/s, 20 ms one way, 1 %
random loss each way, 250 KB queue), bufferbloat (10 Mbit/s, 15 ms, 2 MB queue) and a 3 % loss
link. Every transfer is checked byte-exact.
"""

from __future__ import annotations

import hashlib
import statistics

from simpair import LinkModel
from test_sim_congestion import LOSSY_WAN, mbps, transfer
from test_sim_pair import EchoPair, handshake

from quicreality.quic.recovery.congestion.bbr3 import Bbr3CongestionController
from quicreality.quic.recovery.congestion.bbr3_model import PROBE_BW_STATES

BUFFERBLOAT = LinkModel(delay=0.015, rate_bps=10e6, queue_bytes=2_000_000)
LOSS3 = LinkModel(delay=0.025, loss=0.03, rate_bps=20e6, queue_bytes=250_000)


def test_bbr3_keeps_most_of_a_lossy_wan_and_beats_cubic() -> None:
    secs3, pair = transfer("bbr3", LOSSY_WAN)
    secs_cubic, _ = transfer("cubic", LOSSY_WAN)
    print(f"lossy-wan 5 MiB: bbr3 {mbps(secs3):.1f} Mbit/s, cubic {mbps(secs_cubic):.1f}")
    assert mbps(secs3) > 30
    assert secs3 * 3 <= secs_cubic
    assert pair.server is not None
    cc = pair.server._cc
    assert isinstance(cc, Bbr3CongestionController)
    assert cc.state in PROBE_BW_STATES
    assert cc.min_rtt < 0.045


def download_rtts(cc: str, link: LinkModel, size: int,
                  seed: int = 1) -> tuple[float, list[float]]:
    """Download ``size`` bytes; return (Mbit/s, the server's RTT samples as they arrived)."""
    pair = EchoPair(seed=seed, link=link, server_overrides={"congestion_control_algorithm": cc})
    pair.response_size = size
    handshake(pair)
    assert pair.server is not None
    rtt = pair.server._recovery.rtt
    samples: list[float] = []

    def done() -> bool:
        if not samples or rtt.latest_rtt != samples[-1]:
            samples.append(rtt.latest_rtt)
        return sid in pair.finished

    (sid,) = pair.request()
    start = pair.now
    pair.run(done, max_time=600)
    assert hashlib.sha256(bytes(pair.received[sid])).digest() == \
        hashlib.sha256(pair.body(size)).digest()
    return mbps(pair.now - start, size), samples


def test_bbr3_keeps_the_deep_queue_short_at_full_rate() -> None:
    rate3, rtts3 = download_rtts("bbr3", BUFFERBLOAT, 3_000_000)
    rate_cubic, rtts_cubic = download_rtts("cubic", BUFFERBLOAT, 3_000_000)
    med3, med_cubic = statistics.median(rtts3), statistics.median(rtts_cubic)
    print(f"bufferbloat: bbr3 {rate3:.2f} Mbit/s RTT median {med3 * 1e3:.0f} ms, "
          f"cubic {rate_cubic:.2f} Mbit/s {med_cubic * 1e3:.0f} ms")
    assert rate3 > 0.9 * rate_cubic
    # Base RTT 30 ms: BBRv3 keeps the standing queue small; CUBIC (with HyStart++) fills more.
    assert med3 < 0.060
    assert med3 * 2 < med_cubic


def test_bbr3_on_three_percent_loss_learns_a_bound_and_still_moves_data() -> None:
    secs, pair = transfer("bbr3", LOSS3, size=2_000_000)
    secs_cubic, _ = transfer("cubic", LOSS3, size=2_000_000)
    print(f"3 % loss: bbr3 {mbps(secs, 2_000_000):.1f} Mbit/s, cubic "
          f"{mbps(secs_cubic, 2_000_000):.1f}")
    assert secs * 3 < secs_cubic
    assert pair.server is not None
    cc = pair.server._cc
    assert isinstance(cc, Bbr3CongestionController)
    assert cc.full_bw_reached


CE_LINK = LinkModel(delay=0.010, rate_bps=20e6, queue_bytes=2_000_000, ecn_ce_backlog=25_000)


def test_bbr3_ce_response_bounds_the_flight_where_marking_began() -> None:
    """CE while probing (docs/quic.md, "BBRv3", ECN): inflight_longterm is the flight when the
    ACK's sampled packet was sent, and samples of packets sent before that cut do not raise it
    again (IsInflightTooHigh has no CE term). Before, the bound was the (one RTT larger) flight
    at the ACK and was raised back by the probe's own samples, so PROBE_BW_DOWN drained a deeper
    queue at gain 0.9: RTT median 31.7-32.0 ms over seeds 1-5, now 28.0-29.9 (v1: 25.4-27.7)."""
    for seed in (1, 3):
        rate, rtts = download_rtts("bbr3", CE_LINK, 3 * 1024 * 1024, seed=seed)
        med = statistics.median(rtts)
        print(f"CE link seed {seed}: bbr3 {rate:.2f} Mbit/s, RTT median {med * 1e3:.1f} ms")
        assert rate > 18.1  # of 20 Mbit/s (was 17.9)
        assert med < 0.0305  # base RTT 20 ms, marking above 25 KB (10 ms) of backlog
