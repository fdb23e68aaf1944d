"""Pacer (RFC 9002 §7.7): burst allowance, spacing, bounded idle credit."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quicreality.quic.recovery.pacer import K_PACING_GAIN, K_PACING_GAIN_SLOW_START, Pacer

MDS = 1200
CWND = 120_000
SRTT = 0.1
SPACING = MDS * SRTT / (K_PACING_GAIN * CWND)  # 0.8 ms


def _pacer(cwnd: int = CWND, srtt: float = SRTT) -> Pacer:
    pacer = Pacer(max_datagram_size=MDS)
    pacer.update_rate(congestion_window=cwnd, smoothed_rtt=srtt)
    return pacer


def _send_paced(pacer: Pacer, now: float, count: int) -> list[float]:
    """Send ``count`` full datagrams as early as the pacer allows; return send times."""
    times = []
    for _ in range(count):
        when = pacer.next_send_time(now)
        if when is not None:
            assert when >= now
            now = when
            assert pacer.next_send_time(now) is None
        pacer.on_packet_sent(now=now, sent_bytes=MDS)
        times.append(now)
    return times


def test_pacing_gain_is_five_quarters() -> None:
    assert K_PACING_GAIN == 1.25


def test_slow_start_paces_at_twice_the_window_per_rtt() -> None:
    assert K_PACING_GAIN_SLOW_START == 2.0
    pacer = Pacer(max_datagram_size=MDS)
    pacer.update_rate(congestion_window=CWND, smoothed_rtt=SRTT, slow_start=True)
    assert pacer.rate == pytest.approx(2.0 * CWND / SRTT)
    pacer.update_rate(congestion_window=CWND, smoothed_rtt=SRTT)
    assert pacer.rate == pytest.approx(1.25 * CWND / SRTT)


def test_unpaced_until_rate_known() -> None:
    pacer = Pacer(max_datagram_size=MDS)
    for _i in range(100):
        assert pacer.next_send_time(0.0) is None
        pacer.on_packet_sent(now=0.0, sent_bytes=MDS)


def test_burst_of_initial_window_then_paced() -> None:
    pacer = _pacer()
    for _ in range(10):
        assert pacer.next_send_time(0.0) is None
        pacer.on_packet_sent(now=0.0, sent_bytes=MDS)
    assert pacer.next_send_time(0.0) == pytest.approx(SPACING)


def test_spacing_after_burst_is_packet_size_times_srtt_over_gain_times_cwnd() -> None:
    pacer = _pacer()
    times = _send_paced(pacer, 0.0, 60)
    assert times[:10] == [0.0] * 10
    gaps = [b - a for a, b in itertools.pairwise(times[10:])]
    assert all(g == pytest.approx(SPACING, rel=1e-6) for g in gaps)
    assert pytest.approx(0.0008) == SPACING


def test_long_run_rate_matches_gain_times_cwnd_over_srtt() -> None:
    pacer = _pacer()
    times = _send_paced(pacer, 5.0, 1010)
    rate = 1000 * MDS / (times[-1] - times[9])
    assert rate == pytest.approx(K_PACING_GAIN * CWND / SRTT, rel=1e-6)


def test_idle_does_not_accumulate_more_than_one_burst() -> None:
    pacer = _pacer()
    _send_paced(pacer, 0.0, 30)
    times = _send_paced(pacer, 1000.0, 12)
    assert times[:10] == [1000.0] * 10
    assert times[10] == pytest.approx(1000.0 + SPACING)


def test_burst_limited_by_small_congestion_window() -> None:
    pacer = _pacer(cwnd=3 * MDS)
    times = _send_paced(pacer, 0.0, 4)
    assert times[:3] == [0.0] * 3
    assert times[3] > 0.0


def test_burst_never_below_minimum_window() -> None:
    pacer = _pacer(cwnd=MDS)
    times = _send_paced(pacer, 0.0, 3)
    assert times[:2] == [0.0, 0.0]
    assert times[2] > 0.0


def test_rate_update_changes_spacing() -> None:
    pacer = _pacer()
    _send_paced(pacer, 0.0, 10)
    pacer.update_rate(congestion_window=2 * CWND, smoothed_rtt=SRTT)
    assert pacer.next_send_time(0.0) == pytest.approx(SPACING / 2)


def test_non_positive_srtt_disables_pacing() -> None:
    pacer = _pacer()
    _send_paced(pacer, 0.0, 10)
    pacer.update_rate(congestion_window=CWND, smoothed_rtt=0.0)
    assert pacer.next_send_time(0.0) is None


def test_unpaced_sends_create_bounded_debt() -> None:
    pacer = _pacer()
    for _ in range(1000):  # e.g. probes sent regardless of the pacer
        pacer.on_packet_sent(now=0.0, sent_bytes=MDS)
    when = pacer.next_send_time(0.0)
    assert when is not None
    # Debt is capped at one bucket (10 datagrams), plus one datagram to earn.
    assert when == pytest.approx(11 * SPACING)


@given(
    ops=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=1.0),
            st.integers(min_value=1, max_value=MDS),
            st.integers(min_value=MDS, max_value=10_000_000),
            st.floats(min_value=1e-4, max_value=2.0),
        ),
        max_size=60,
    )
)
def test_next_send_time_never_before_now(ops: list[tuple[float, int, int, float]]) -> None:
    pacer = Pacer(max_datagram_size=MDS)
    now = 0.0
    for dt, size, cwnd, srtt in ops:
        now += dt
        pacer.update_rate(congestion_window=cwnd, smoothed_rtt=srtt)
        when = pacer.next_send_time(now)
        assert when is None or when >= now
        pacer.on_packet_sent(now=now, sent_bytes=size)
        assert -pacer.capacity <= pacer.credit <= pacer.capacity


def test_burst_covers_one_timer_tick_at_high_rates() -> None:
    """At 1.25 * 12 MB / 1 ms the bucket holds PACER_TICK worth of bytes, capped by the window."""
    from quicreality.quic.recovery.pacer import PACER_TICK

    p = Pacer(max_datagram_size=1200)
    p.update_rate(congestion_window=12_000_000, smoothed_rtt=0.001)
    assert p.capacity == int(1.25 * 12_000_000 / 0.001 * PACER_TICK) or p.capacity == 12_000_000
    p.update_rate(congestion_window=100_000, smoothed_rtt=0.001)
    assert p.capacity == 100_000  # never more than the congestion window
