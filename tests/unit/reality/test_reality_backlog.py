"""The new-flow backlog of a REALITY listener under flood: bounded, oldest shed first, FIFO."""

from __future__ import annotations

import pytest

from quicreality.reality.backlog import NewFlowBacklog


def test_the_backlog_hands_out_per_turn_items_in_arrival_order() -> None:
    backlog: NewFlowBacklog[int] = NewFlowBacklog(limit=10, per_turn=3)
    for i in range(5):
        assert backlog.offer(i)
    assert backlog.take() == [0, 1, 2]
    assert backlog.take() == [3, 4]
    assert backlog.take() == [] and len(backlog) == 0 and backlog.shed == 0


def test_a_full_backlog_sheds_the_oldest() -> None:
    backlog: NewFlowBacklog[int] = NewFlowBacklog(limit=4, per_turn=10)
    results = [backlog.offer(i) for i in range(10)]
    assert results == [True] * 4 + [False] * 6
    assert backlog.shed == 6 and len(backlog) == 4
    assert backlog.take() == [6, 7, 8, 9]  # the newest survive: a fresh retransmission gets in


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        NewFlowBacklog(limit=0)
    with pytest.raises(ValueError):
        NewFlowBacklog(per_turn=0)
