"""BBR's PROBE_BW start phase is drawn per connection (draft-ietf-ccwg-bbr §5.3.3.6).

Before, every connection built its controller with seed 0 and entered PROBE_BW in the same
phase; now the connection derives the seed from its config's rng (no extra draw).
"""

from __future__ import annotations

from simpair import LinkModel
from test_sim_pair import EchoPair, handshake

from quicreality.quic.recovery.congestion.bbr import BbrCongestionController, BbrState


def first_probe_bw_phase(seed: int) -> int:
    pair = EchoPair(seed=seed, link=LinkModel(delay=0.01, rate_bps=10e6, queue_bytes=100_000),
                    server_overrides={"congestion_control_algorithm": "bbr"})
    pair.response_size = 3_000_000
    handshake(pair)
    pair.request()
    assert pair.server is not None
    cc = pair.server._cc
    assert isinstance(cc, BbrCongestionController)
    pair.run(lambda: cc.state is BbrState.PROBE_BW, max_time=30)
    return cc.cycle_index


def test_connections_start_probe_bw_in_different_phases() -> None:
    phases = [first_probe_bw_phase(seed) for seed in range(1, 9)]
    print("PROBE_BW start phases by seed:", phases)
    assert len(set(phases)) >= 3
    assert first_probe_bw_phase(3) == phases[2]  # the same config rng, the same phase
