"""Property tests shared by every registered congestion controller."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicreality.quic.recovery.congestion import (
    CONGESTION_CONTROLLERS,
    create_congestion_controller,
    minimum_window,
)
from quicreality.quic.recovery.rtt import RttEstimator

MDS = 1200

MODEL_BASED = {"bbr", "bbr3"}
"""Controllers whose window follows a path model rather than loss (BBR): ACKs may shrink it
(PROBE_RTT, a lower bandwidth estimate) and there is no slow-start threshold, so only the
shared invariants below apply to them."""

# (kind, dt, bytes, sent_age, flag)
_op = st.tuples(
    st.sampled_from(["sent", "acked", "lost", "persistent", "discarded"]),
    st.floats(min_value=0.0, max_value=0.5),
    st.integers(min_value=0, max_value=200_000),
    st.floats(min_value=0.0, max_value=2.0),
    st.booleans(),
)


@pytest.mark.parametrize("name", sorted(CONGESTION_CONTROLLERS))
@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(_op, max_size=120),
    srtt=st.floats(min_value=1e-4, max_value=1.0),
    mds=st.sampled_from([1200, 1350, 1452]),
)
def test_window_never_below_minimum_and_ssthresh_consistent(
    name: str, ops: list[tuple[str, float, int, float, bool]], srtt: float, mds: int
) -> None:
    cc = create_congestion_controller(name, max_datagram_size=mds)
    rtt = RttEstimator()
    rtt.update(srtt, 0.0, handshake_confirmed=True, max_ack_delay=0.025)
    minimum = minimum_window(mds)
    loss_based = name not in MODEL_BASED
    now = 0.0
    reduced = False
    for kind, dt, nbytes, age, flag in ops:
        now += dt
        before = cc.congestion_window
        if kind == "sent":
            cc.on_packet_sent(now=now, sent_bytes=nbytes, bytes_in_flight=nbytes * (1 + flag))
        elif kind == "acked":
            cc.on_packets_acked(
                now=now,
                acked_bytes=nbytes,
                largest_acked_sent_time=now - age,
                rtt=rtt,
                bytes_in_flight=0 if flag else nbytes,
                app_limited=flag and nbytes % 2 == 0,
            )
            # Acknowledgements never shrink a loss-based window.
            assert cc.congestion_window >= before or not loss_based
        elif kind == "lost":
            cc.on_congestion_event(
                now=now, largest_lost_sent_time=now - age, lost_bytes=nbytes, bytes_in_flight=0
            )
            reduced = reduced or cc.congestion_window != before
            assert cc.congestion_window <= before or before < minimum
        elif kind == "persistent":
            cc.on_persistent_congestion(now=now)
            reduced = True
            assert cc.congestion_window == minimum
        else:
            cc.on_packets_discarded(discarded_bytes=nbytes)
            assert cc.congestion_window == before
        cwnd = cc.congestion_window
        assert isinstance(cwnd, int)
        assert cwnd >= minimum
        ssthresh = cc.ssthresh
        if not loss_based:
            assert ssthresh is None
        elif ssthresh is None:
            assert not reduced
        else:
            assert isinstance(ssthresh, int)
            assert ssthresh >= minimum
            if kind == "lost" and cwnd != before:
                # A reduction leaves the sender at ssthresh: in congestion avoidance.
                assert cwnd == ssthresh
