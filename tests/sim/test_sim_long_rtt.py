"""The catalog's long-rtt link on virtual time: 10 Mbit/s, 750 ms one way, a 1.9 MB (1-BDP)
drop-tail queue, a 5 MB download (scenarios/long-rtt.toml).

A 5 MB transfer on a 1.5 s RTT is slow start from end to end: with the RFC 9002 §7.2 initial
window (10 datagrams, 14.5 KB) the window reaches the BDP after about 7 rounds. What it may lose
is growth per round. Two defects cost 0.49 s of 13.60 (virtual seconds from the first response
byte to the last, as the runner's wire goodput counts it), found here and fixed:

* HyStart++ took the receiver's delayed-ACK wait for queueing. Slow start paces a round's
  packets ~60 ms apart at first; the client acknowledges every second packet or after its 25 ms
  ``max_ack_delay``, so each sample of such a round carried +25 ms, above RFC 9406's 16 ms
  threshold, and CUBIC entered CSS (1/4 growth) at ~100 KB for a round. HyStart++ now takes
  ``RttEstimator.path_rtt`` (the sample less the ACK Delay, clamped at min_rtt). 0.21 s.
* The pacer's RFC 9002 §7.7 rate of 1.25 x cwnd / srtt capped slow start's growth at ~1.9x
  per round (each ACK adds what it acknowledges, so a round may send twice the last). Slow start
  now paces at 2 x cwnd / srtt (Linux's and Chromium's slow-start ratio). 0.28 s.

The flow-control windows (16 MB connection, 4 MB stream, updated at half) never bind here: the
same transfer with 1 GB windows takes exactly as long. What is left against quic-go is its initial
window (32 datagrams): with that the same transfer takes 10.77 s; RFC 9002 §7.2 sets ours.
"""

from __future__ import annotations

from typing import Any

from simpair import LinkModel
from test_sim_pair import EchoPair, timed_response

from quicreality.quic.recovery.congestion.cubic import CubicCongestionController

SIZE = 5_000_000
LONG_RTT = LinkModel(delay=0.750, rate_bps=10e6, queue_bytes=1_875_000)


def download(overrides: dict[str, Any] | None = None) -> tuple[float, EchoPair]:
    """5 MB from a CUBIC server; (virtual seconds from the first response byte to the last, pair)."""
    ov = overrides or {}
    pair = EchoPair(seed=4, link=LONG_RTT, client_overrides=dict(ov),
                    server_overrides={"congestion_control_algorithm": "cubic", **ov})
    return timed_response(pair, SIZE, max_steps=2_000_000), pair


def test_long_rtt_slow_start_doubles_each_round_without_a_false_hystart_exit() -> None:
    secs, pair = download()
    assert pair.server is not None
    cc = pair.server._cc
    assert isinstance(cc, CubicCongestionController) and cc.hystart is not None
    print(f"long-rtt 5 MB: {secs:.2f} virtual s, {SIZE * 8 / secs / 1e6:.2f} Mbit/s, "
          f"HyStart++ CSS entries {cc.hystart.exits}")
    # No queue builds before the window passes the BDP: a CSS entry is a false exit (was 1).
    assert cc.hystart.exits == 0
    assert pair.dropped == {"to_server": 0, "to_client": 0}
    # Doubling per round from 14.5 KB: 13.11 s (13.60 before: paced at 1.25x and one CSS round).
    assert secs < 13.25


def test_long_rtt_is_not_flow_control_limited() -> None:
    secs, _ = download()
    big, _ = download({"max_data": 1 << 30, "max_stream_data": 1 << 29})
    assert abs(secs - big) < 0.01
