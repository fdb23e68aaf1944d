"""RttEstimator against hand-computed RFC 9002 §5 examples."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quicreality.quic.recovery.rtt import K_GRANULARITY, K_INITIAL_RTT, RttEstimator


def _sampled(latest: float = 0.1) -> RttEstimator:
    rtt = RttEstimator()
    rtt.update(latest, 0.0, handshake_confirmed=False, max_ack_delay=0.025)
    return rtt


def test_constants_match_rfc9002_appendix_a2() -> None:
    assert K_INITIAL_RTT == 0.333
    assert K_GRANULARITY == 0.001


def test_before_first_sample_uses_initial_rtt() -> None:
    rtt = RttEstimator()
    assert not rtt.has_sample
    assert rtt.smoothed_rtt == 0.333
    assert rtt.rttvar == pytest.approx(0.1665)
    assert rtt.min_rtt == 0.0
    # 0.333 + 4 * 0.1665 (RFC 9002 §6.2.2: the first PTO is 999 ms before backoff).
    assert rtt.pto_base() == pytest.approx(0.999)


def test_custom_initial_rtt_seeds_smoothed_and_rttvar() -> None:
    rtt = RttEstimator(initial_rtt=0.1)
    assert rtt.smoothed_rtt == 0.1
    assert rtt.rttvar == pytest.approx(0.05)


def test_first_sample_sets_smoothed_to_latest_and_rttvar_to_half_ignoring_ack_delay() -> None:
    rtt = RttEstimator()
    rtt.update(0.1, 0.05, handshake_confirmed=True, max_ack_delay=0.025)
    assert rtt.has_sample
    assert rtt.latest_rtt == 0.1
    assert rtt.min_rtt == 0.1
    assert rtt.smoothed_rtt == 0.1
    assert rtt.rttvar == 0.05


def test_second_sample_subtracts_ack_delay_and_smooths() -> None:
    rtt = _sampled(0.1)
    rtt.update(0.2, 0.025, handshake_confirmed=True, max_ack_delay=0.025)
    # adjusted = 0.2 - 0.025 = 0.175
    # rttvar = 3/4 * 0.05 + 1/4 * |0.1 - 0.175| = 0.0375 + 0.01875
    # smoothed = 7/8 * 0.1 + 1/8 * 0.175 = 0.0875 + 0.021875
    assert rtt.latest_rtt == 0.2
    assert rtt.min_rtt == 0.1
    assert rtt.rttvar == pytest.approx(0.05625)
    assert rtt.smoothed_rtt == pytest.approx(0.109375)


def test_ack_delay_capped_at_max_ack_delay_after_handshake_confirmed() -> None:
    rtt = _sampled(0.1)
    rtt.update(0.2, 0.05, handshake_confirmed=True, max_ack_delay=0.025)
    # capped to 0.025, so adjusted = 0.175 exactly as in the previous test.
    assert rtt.rttvar == pytest.approx(0.05625)
    assert rtt.smoothed_rtt == pytest.approx(0.109375)


def test_ack_delay_not_capped_before_handshake_confirmed() -> None:
    rtt = _sampled(0.1)
    rtt.update(0.2, 0.05, handshake_confirmed=False, max_ack_delay=0.025)
    # adjusted = 0.15; rttvar = 0.0375 + 0.0125; smoothed = 0.0875 + 0.01875
    assert rtt.rttvar == pytest.approx(0.05)
    assert rtt.smoothed_rtt == pytest.approx(0.10625)


def test_ack_delay_ignored_when_it_would_take_sample_below_min_rtt() -> None:
    rtt = _sampled(0.1)
    rtt.update(0.12, 0.03, handshake_confirmed=True, max_ack_delay=0.05)
    # 0.12 < min_rtt + ack_delay = 0.13, so adjusted = latest = 0.12
    # rttvar = 0.0375 + 0.25 * 0.02 = 0.0425; smoothed = 0.0875 + 0.015 = 0.1025
    assert rtt.rttvar == pytest.approx(0.0425)
    assert rtt.smoothed_rtt == pytest.approx(0.1025)


def test_ack_delay_subtracted_when_exactly_at_min_rtt_boundary() -> None:
    rtt = _sampled(0.1)
    rtt.update(0.125, 0.025, handshake_confirmed=True, max_ack_delay=0.025)
    # 0.125 >= 0.1 + 0.025, adjusted = 0.1 -> no change to smoothed, rttvar decays
    assert rtt.smoothed_rtt == pytest.approx(0.1)
    assert rtt.rttvar == pytest.approx(0.0375)


def test_path_rtt_removes_the_ack_delay_clamped_at_min_rtt() -> None:
    rtt = _sampled(0.1)
    assert rtt.path_rtt == pytest.approx(0.1)
    # §5.3 keeps all of 0.12 (0.12 < 0.1 + 0.03); the path sample clamps at min_rtt instead.
    rtt.update(0.12, 0.03, handshake_confirmed=True, max_ack_delay=0.05)
    assert rtt.path_rtt == pytest.approx(0.1)
    rtt.update(0.15, 0.03, handshake_confirmed=True, max_ack_delay=0.05)
    assert rtt.path_rtt == pytest.approx(0.12)
    # ack_delay capped at max_ack_delay once confirmed (RFC 9002 §5.3).
    rtt.update(0.15, 0.04, handshake_confirmed=True, max_ack_delay=0.025)
    assert rtt.path_rtt == pytest.approx(0.125)


def test_min_rtt_tracks_lowest_sample_without_ack_delay() -> None:
    rtt = _sampled(0.1)
    rtt.update(0.08, 0.01, handshake_confirmed=True, max_ack_delay=0.025)
    assert rtt.min_rtt == 0.08
    # 0.08 < 0.08 + 0.01, so the sample is used unadjusted.
    assert rtt.smoothed_rtt == pytest.approx(0.0875 + 0.01)
    rtt.update(0.3, 0.0, handshake_confirmed=True, max_ack_delay=0.025)
    assert rtt.min_rtt == 0.08
    assert rtt.latest_rtt == 0.3


def test_pto_base_is_smoothed_plus_four_rttvar() -> None:
    rtt = _sampled(0.1)
    assert rtt.pto_base() == pytest.approx(0.1 + 4 * 0.05)


def test_pto_base_floors_variance_term_at_granularity() -> None:
    rtt = _sampled(0.1)
    for _ in range(100):
        rtt.update(0.1, 0.0, handshake_confirmed=True, max_ack_delay=0.025)
    assert 4 * rtt.rttvar < K_GRANULARITY
    assert rtt.pto_base() == pytest.approx(0.1 + K_GRANULARITY)


_rtts = st.floats(min_value=1e-4, max_value=10.0, allow_nan=False)
_delays = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@given(
    samples=st.lists(st.tuples(_rtts, _delays, st.booleans()), min_size=1, max_size=50),
    max_ack_delay=st.floats(min_value=0.0, max_value=0.5),
)
def test_estimates_stay_within_sample_bounds(
    samples: list[tuple[float, float, bool]], max_ack_delay: float
) -> None:
    rtt = RttEstimator()
    for latest, delay, confirmed in samples:
        rtt.update(latest, delay, handshake_confirmed=confirmed, max_ack_delay=max_ack_delay)
        assert rtt.latest_rtt == latest
    latests = [s[0] for s in samples]
    assert rtt.min_rtt == min(latests)
    # Adjusted samples never go below min_rtt, so neither does the average.
    assert min(latests) * (1 - 1e-9) <= rtt.smoothed_rtt <= max(latests) * (1 + 1e-9)
    assert 0.0 <= rtt.rttvar <= max(latests)
    assert rtt.pto_base() >= rtt.smoothed_rtt + K_GRANULARITY * (1 - 1e-9)
