"""The new-flow backlog of a REALITY listener under flood: FIFO, bounded in bytes and in age."""

from __future__ import annotations

import pytest

from quicreality.reality.backlog import NewFlowBacklog


def test_the_backlog_hands_out_per_turn_items_in_arrival_order() -> None:
    backlog: NewFlowBacklog[int] = NewFlowBacklog(max_bytes=100, max_age=1.0, per_turn=3)
    for i in range(5):
        assert backlog.offer(i, 10, now=0.0) == 0
    assert backlog.bytes == 50
    assert backlog.take(0.5) == ([0, 1, 2], 0)
    assert backlog.take(0.5) == ([3, 4], 0)
    assert backlog.take(0.5) == ([], 0) and len(backlog) == 0 and backlog.bytes == 0
    assert backlog.shed == 0


def test_beyond_its_bytes_the_oldest_are_shed() -> None:
    backlog: NewFlowBacklog[int] = NewFlowBacklog(max_bytes=40, max_age=1.0, per_turn=10)
    shed = [backlog.offer(i, 10, now=0.0) for i in range(10)]
    assert shed == [0] * 4 + [1] * 6
    assert backlog.shed == 6 and backlog.bytes == 40
    assert backlog.take(0.0) == ([6, 7, 8, 9], 0)  # the newest survive: a fresh retransmission


def test_items_older_than_max_age_are_shed_when_the_gate_would_take_them() -> None:
    backlog: NewFlowBacklog[str] = NewFlowBacklog(max_bytes=1000, max_age=2.0, per_turn=2)
    for i in range(3):
        backlog.offer(f"old{i}", 10, now=0.0)
    backlog.offer("fresh", 10, now=1.5)
    assert backlog.take(2.5) == (["fresh"], 3)  # waited 2.5 s > 2 s: shed, counted
    assert backlog.shed == 3 and backlog.bytes == 0


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        NewFlowBacklog(max_bytes=0)
    with pytest.raises(ValueError):
        NewFlowBacklog(max_age=0.0)
    with pytest.raises(ValueError):
        NewFlowBacklog(per_turn=0)


def test_a_retransmission_is_served_ahead_of_the_flood() -> None:
    backlog: NewFlowBacklog[str] = NewFlowBacklog(max_bytes=30, max_age=2.0, per_turn=1)
    backlog.offer("hello", 10, now=0.0, key=("client", b"dcid"))
    for i in range(3):  # the flood pushes the client's hello out
        backlog.offer(f"flood{i}", 10, now=0.1, key=(f"spoofed{i}", b"x"))
    assert backlog.shed == 1 and backlog.prioritized == 0
    backlog.offer("hello again", 10, now=1.0, key=("client", b"dcid"))  # its PTO
    assert backlog.prioritized == 1
    assert backlog.take(1.0) == (["hello again"], 0)
    assert backlog.take(1.0) == (["flood1"], 0)  # flood0 was shed for the retransmission's room


def test_a_duplicate_of_a_queued_hello_is_a_retransmission_too() -> None:
    backlog: NewFlowBacklog[str] = NewFlowBacklog(max_bytes=1000, max_age=2.0, per_turn=1)
    backlog.offer("flood", 10, now=0.0, key="a")
    backlog.offer("hello", 10, now=0.0, key="b")
    backlog.offer("hello again", 10, now=0.5, key="b")
    assert [backlog.take(0.5)[0] for _ in range(4)] == [["hello"], ["hello again"], ["flood"], []]
    assert len(backlog) == 0 and backlog.bytes == 0


def test_remembered_keys_are_bounded() -> None:
    backlog: NewFlowBacklog[int] = NewFlowBacklog(max_bytes=10, max_age=2.0, remember=2)
    for i in range(5):
        backlog.offer(i, 10, now=0.0, key=i)  # each pushes out the one before
    backlog.offer(99, 10, now=0.0, key=0)  # shed long ago, forgotten: not a retransmission
    assert backlog.prioritized == 0
    backlog.offer(98, 10, now=0.0, key=4)  # shed just now: remembered
    assert backlog.prioritized == 1


def test_a_hello_over_two_datagrams_moves_ahead_whole_and_in_order() -> None:
    backlog: NewFlowBacklog[str] = NewFlowBacklog(max_bytes=1000, max_age=2.0, per_turn=2)
    backlog.offer("flood0", 10, now=0.0, key="f0")
    backlog.offer("hello part 1", 10, now=0.0, key="c")
    backlog.offer("flood1", 10, now=0.0, key="f1")
    backlog.offer("hello part 2", 10, now=0.0, key="c")  # same attempt: both go ahead
    assert backlog.take(0.0) == (["hello part 1", "hello part 2"], 0)
    assert backlog.take(0.0) == (["flood0", "flood1"], 0)
    assert len(backlog) == 0 and backlog.bytes == 0
