"""UDP flow table: bounded, idle expiry on caller-supplied time."""

from __future__ import annotations

from quicreality.relay.flows import FlowTable


def test_add_touch_expire() -> None:
    table: FlowTable[str, int] = FlowTable(idle_timeout=10.0, max_flows=2)
    assert table.add("a", 1, now=0.0)
    assert not table.add("a", 9, now=0.0)  # existing key
    assert table.add("b", 2, now=5.0)
    assert table.full and not table.add("c", 3, now=5.0)
    assert table.next_expiry() == 10.0
    table.touch("a", now=8.0)
    assert table.expire(12.0) == []
    assert table.expire(15.0) == [("b", 2)]
    assert "b" not in table and len(table) == 1 and table.get("a") == 1
    assert table.expire(18.0) == [("a", 1)]
    assert table.next_expiry() is None and len(table) == 0


def test_remove_and_iterate() -> None:
    table: FlowTable[int, str] = FlowTable(idle_timeout=1.0, max_flows=10)
    for i in range(5):
        table.add(i, str(i), now=float(i))
    assert table.remove(3) == "3" and table.remove(3) is None
    assert sorted(table) == [0, 1, 2, 4]
    assert sorted(table.values()) == ["0", "1", "2", "4"]
    table.touch(99, now=100.0)  # unknown keys are ignored
    assert [k for k, _ in table.expire(3.5)] == [0, 1, 2]
