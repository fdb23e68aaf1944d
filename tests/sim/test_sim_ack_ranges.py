"""ACK frames of a download's client on a lossy link stay short (RFC 9000 §13.2.4).

Every lost packet leaves a permanent gap in the packet numbers a receiver acknowledges. A range
may be dropped from later ACK frames once an ACK frame that reported it was itself acknowledged;
but a download's client sends only ACK frames, which are not ack-eliciting, so none of them was
ever acknowledged: on lossy-wan (1 % loss) every ACK carried ~58 ranges (the 64 remembered),
which both ends parsed, built and wrote to qlog about 2,000 times per MB (the runner-path CPU
cost of issue 13, docs/performance.md). Now the ACK-only sender adds a PING about once per
round trip while its ACK frames carry gaps, and drops the ranges at or below the Largest
Acknowledged of its acknowledged ACK frames.
"""

from __future__ import annotations

import statistics

from simpair import LinkModel
from test_sim_h3_transfer import ServerPair

from quicreality.h3.server import deterministic_bytes
from quicreality.qlog.sink import RecordingSink
from quicreality.quic import events
from quicreality.quic.connection.spaces import PacketSpace

LOSSY_WAN = LinkModel(delay=0.020, loss=0.01, rate_bps=50e6, queue_bytes=250_000)


def _download(size: int) -> tuple[ServerPair, RecordingSink]:
    sink = RecordingSink()
    pair = ServerPair(seed=1, link=LOSSY_WAN, client_overrides={"qlog_factory": lambda *_: sink},
                      server_overrides={"congestion_control_algorithm": "bbr"})
    pair.connect()
    pair.run(lambda: any(isinstance(e, events.HandshakeCompleted) for e in pair.client_events))
    sid = pair.h3client.get(f"/bytes/{size}")
    pair.run(lambda: pair.h3client.all_done, max_time=120, max_steps=20_000_000)
    rec = pair.h3client.responses[sid]
    assert rec.ok and bytes(rec.body) == deterministic_bytes(0, size)
    return pair, sink


def test_a_downloads_acks_carry_a_few_ranges_on_a_lossy_link() -> None:
    pair, sink = _download(10_000_000)
    acks: list[tuple[float, int]] = []
    pings = 0
    for name, now, args in sink.records:
        if name != "packet_sent" or args["packet_type"] != "1RTT":
            continue
        for frame in args["frames"] or ():
            if frame["frame_type"] == "ack":
                acks.append((now, len(frame["acked_ranges"])))
            pings += frame["frame_type"] == "ping"
    # after BBR's Startup overshoot (its burst of queue drops fills all 64 ranges for a while)
    steady = [n for now, n in acks if now > 1.0]
    print(f"client ACKs: {len(acks)}, ranges after 1 s: median {statistics.median(steady)} "
          f"max {max(steady)}; PINGs {pings} over {pair.now:.2f} virtual s")
    assert statistics.median(steady) <= 8 and max(steady) <= 32  # 58 / 64 before
    # about one PING per round trip (40 ms) of the transfer, not one per ACK
    assert 0 < pings < len(acks) / 4
    assert pings < 2 * pair.now / 0.040


def test_ack_ranges_above_the_floor() -> None:
    space = PacketSpace()
    for pn in (0, 1, 2, 4, 5, 7, 9, 10):  # ranges [0,3) [4,6) [7,8) [9,11)
        space.record_received(pn)
    assert space.ack_ranges_above_floor() == 4  # nothing acknowledged yet: all of them
    space.on_ack_frame_delivered(False, 7)  # a lost ACK frame changes nothing
    assert space.ack_floor == -1
    space.on_ack_frame_delivered(True, 5)
    assert space.ack_ranges_above_floor() == 2  # [7,8) and [9,11)
    space.on_ack_frame_delivered(True, 3)  # an older one does not move the floor back
    assert space.ack_floor == 5
    space.on_ack_frame_delivered(True, 10)
    assert space.ack_ranges_above_floor() == 1  # at least the newest range is always sent
    assert space.is_duplicate(4) and not space.is_duplicate(3)  # duplicates still detected
