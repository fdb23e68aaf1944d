"""Unit tests of the link impairment model (no root)."""

from __future__ import annotations

import tomllib

import pytest

from quicreality.scenarios.model import (
    Blackhole,
    GilbertElliott,
    Impairment,
    Link,
    ModelError,
    link_to_dict,
    load_link,
)


def test_symmetric_link_table_applies_to_both_directions() -> None:
    link = load_link(tomllib.loads("""
[link]
delay_ms = 20
rate_mbit = 50
queue_bytes = 250000
loss = "1%"
""")["link"])
    assert link.to_server == link.to_client
    assert link.to_server.loss == pytest.approx(0.01)
    assert link.to_server.queue_bytes == 250000
    assert link.base_rtt_ms == 40


def test_per_direction_tables_override_common_keys() -> None:
    link = load_link({"delay_ms": 15, "rate_mbit": 10, "queue_packets": 25,
                      "to_client": {"rate_mbit": 100, "loss": 0.02}})
    assert link.to_server.rate_mbit == 10 and link.to_server.loss == 0
    assert link.to_client.rate_mbit == 100 and link.to_client.loss == 0.02
    assert link.to_client.delay_ms == 15


def test_blackhole_direction_distributes_schedule() -> None:
    link = load_link({"blackhole": {"on_s": 5, "off_s": 2, "direction": "to_client"}})
    assert link.to_server.blackhole is None
    assert link.to_client.blackhole == Blackhole(on_s=5, off_s=2, repeat=1)


def test_gilbert_elliott_loss_and_burst_form() -> None:
    link = load_link({"gilbert_elliott": {"loss": 0.02, "mean_burst": 4}})
    ge = link.to_server.gilbert_elliott
    assert ge is not None
    assert ge.r == pytest.approx(0.25)
    assert ge.stationary_loss == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ({"loss": 1.5}, "link.to_server.loss"),
        ({"to_client": {"loss": -0.1}}, "link.to_client.loss"),
        ({"loss": "5"}, "link.to_server.loss"),
        ({"delay_ms": -1}, "link.to_server.delay_ms"),
        ({"rate_mbit": 0}, "link.to_server.rate_mbit"),
        ({"queue_packets": 10}, "link.to_server.queue_packets"),
        ({"rate_mbit": 10, "queue_packets": 10, "queue_bytes": 10000},
         "link.to_server.queue_packets"),
        ({"rate_mbit": 10, "queue_bytes": 100}, "link.to_server.queue_bytes"),
        ({"reorder": True}, "link.to_server.reorder"),
        ({"delay_msec": 3}, "link.to_server.delay_msec"),
        ({"gilbert_elliott": {"p": 0.1, "r": 0}}, "link.to_server.gilbert_elliott.r"),
        ({"gilbert_elliott": {"p": 0.1}}, "link.to_server.gilbert_elliott"),
        ({"blackhole": {"on_s": 1}}, "link.blackhole.off_s"),
        ({"blackhole": {"on_s": 1, "off_s": 1, "direction": "up"}}, "link.blackhole.direction"),
        ({"blackhole": {"on_s": 1, "off_s": 1, "repeat": 0}}, "link.blackhole.repeat"),
    ],
)
def test_invalid_values_name_the_field(table: dict, field: str) -> None:
    with pytest.raises(ModelError) as ei:
        load_link(table)
    assert ei.value.field_path == field
    assert field in str(ei.value)


def test_default_queue_applies_only_with_rate() -> None:
    assert Impairment().queue_limit_packets is None
    assert Impairment(rate_mbit=10).queue_limit_packets == 1000
    assert Impairment(rate_mbit=10, queue_bytes=3000).queue_limit_packets is None


def test_blackhole_schedule_windows() -> None:
    bh = Blackhole(on_s=5, off_s=2, repeat=2)
    assert not bh.is_black(0) and not bh.is_black(4.99)
    assert bh.is_black(5.0) and bh.is_black(6.99)
    assert not bh.is_black(7.0) and bh.is_black(12.5)
    assert not bh.is_black(14.0) and not bh.is_black(100)
    assert bh.windows() == [(5, 7), (12, 14)]


def test_link_dict_round_trip() -> None:
    link = load_link({"delay_ms": 10, "jitter_ms": 2, "reorder": True, "rate_mbit": 5,
                      "queue_packets": 30, "gilbert_elliott": {"p": 0.01, "r": 0.5},
                      "blackhole": {"on_s": 1, "off_s": 2}})
    assert load_link({"to_server": link_to_dict(link)["to_server"],
                      "to_client": link_to_dict(link)["to_client"]}) == link


def test_expected_loss_combines_random_and_ge() -> None:
    imp = Impairment(loss=0.1, gilbert_elliott=GilbertElliott(p=0.1, r=0.9))
    assert imp.expected_loss == pytest.approx(1 - 0.9 * 0.9)


def test_link_symmetric_validates() -> None:
    with pytest.raises(ModelError):
        Link.symmetric(Impairment(loss=2.0))
