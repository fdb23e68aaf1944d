"""The DPLPMTUD state machine alone (connection/pmtud.py; RFC 8899 §5)."""

from __future__ import annotations

from quicreality.quic.connection.pmtud import (
    BASE_PLPMTU,
    MAX_PROBES,
    PMTU_RAISE_INTERVAL,
    MtuUpdate,
    PathMtuDiscovery,
    PmtudState,
)


def run_search(pmtud: PathMtuDiscovery, path_max: int, now: float = 0.0) -> list[int]:
    """Answer every probe as a path carrying up to ``path_max`` bytes would; return the sizes."""
    probed = []
    while (size := pmtud.probe_size(now)) is not None:
        probed.append(size)
        pmtud.on_probe_sent(size)
        pmtud.probe_result(size <= path_max, size)
        assert len(probed) < 50
    return probed


def test_a_wide_path_is_confirmed_by_one_probe() -> None:
    pmtud = PathMtuDiscovery(cap=1452)
    assert pmtud.datagram_size == BASE_PLPMTU and pmtud.probe_size(0.0) == 1452
    pmtud.on_probe_sent(1452)
    assert pmtud.probe_size(0.0) is None  # one probe at a time
    assert pmtud.probe_result(True, 1452) == MtuUpdate(1200, 1452, "probe_acked", True)
    assert pmtud.state == PmtudState.SEARCH_COMPLETE and pmtud.probe_size(1e6) is None
    assert [u.qlog() for u in pmtud.take_updates()] == [
        {"old": 1200, "new": 1452, "done": True, "trigger": "probe_acked"}]
    assert pmtud.take_updates() == []


def test_bisection_gives_each_size_max_probes_and_stops_within_granularity() -> None:
    pmtud = PathMtuDiscovery(cap=1452)
    probed = run_search(pmtud, 1272)
    # 1452 three times, then halves of [1200, 1452): 1326 (x3), 1263 ok, 1294 (x3), 1278 (x3).
    assert probed == [1452] * MAX_PROBES + [1326] * MAX_PROBES + [1263] + [1294] * MAX_PROBES \
        + [1278] * MAX_PROBES
    assert pmtud.datagram_size == 1263 and pmtud.state == PmtudState.SEARCH_COMPLETE


def test_a_single_lost_probe_does_not_give_a_size_up() -> None:
    pmtud = PathMtuDiscovery(cap=1452)
    pmtud.on_probe_sent(1452)
    assert pmtud.probe_result(False, 1452) is None
    assert pmtud.probe_size(0.0) == 1452
    pmtud.on_probe_sent(1452)
    assert pmtud.probe_result(True, 1452) is not None and pmtud.datagram_size == 1452


def test_cap_at_base_disables_probing() -> None:
    pmtud = PathMtuDiscovery(cap=1200)
    assert pmtud.state == PmtudState.DISABLED and pmtud.probe_size(0.0) is None


def test_peer_limit_lowers_the_ceiling() -> None:
    pmtud = PathMtuDiscovery(cap=1452)
    assert pmtud.apply_peer_limit(65527) is None and pmtud.apply_peer_limit(None) is None
    assert pmtud.apply_peer_limit(1300) is None  # nothing confirmed above it yet
    assert run_search(pmtud, 1500) == [1300] and pmtud.datagram_size == 1300


def test_repeated_ptos_fall_back_to_base_and_search_again() -> None:
    pmtud = PathMtuDiscovery(cap=1452)
    run_search(pmtud, 1500)
    assert pmtud.on_pto(1) is None  # one PTO is no black hole
    assert pmtud.on_pto(2) == MtuUpdate(1452, BASE_PLPMTU, "black_hole", False)
    assert pmtud.datagram_size == BASE_PLPMTU and pmtud.state == PmtudState.SEARCHING
    run_search(pmtud, 1280)
    assert 1264 <= pmtud.datagram_size <= 1280
    assert pmtud.on_pto(5) is not None and pmtud.on_pto(6) is None  # already at the base


def test_a_completed_search_below_the_cap_is_raised_again_later() -> None:
    pmtud = PathMtuDiscovery(cap=1452)
    run_search(pmtud, 1300, now=10.0)  # its last probe_size() call arms PMTU_RAISE_TIMER
    assert pmtud.probe_size(10.0 + PMTU_RAISE_INTERVAL - 1) is None
    assert pmtud.probe_size(10.0 + PMTU_RAISE_INTERVAL) == 1452
