"""ShapeCache (TTL, retry, stale use), most_common, and the shape_ttl_s setting."""

from __future__ import annotations

import base64

import pytest
from reality_helpers import server_config

from quicreality.quic.flight_shape import ShapedDatagram
from quicreality.reality.config import RealityConfigError, parse_reality_table
from quicreality.reality.shape_cache import ShapeCache
from quicreality.reality.target_shape import TargetShape, most_common

A = TargetShape(None, (ShapedDatagram(1200, (0, 1, 2)),), 8, 8)
B = TargetShape(None, (ShapedDatagram(52, (0,), True), ShapedDatagram(1200, (0, 1, 2))), 18, 8)


def test_unknown_names_are_wanted_and_busy_ones_are_not() -> None:
    cache = ShapeCache(600)
    assert cache.get("a", 0.0) is None
    assert cache.wanted(["a", "b"], 0.0) == ["a", "b"]
    cache.start("a")
    assert cache.wanted(["a", "b"], 0.0) == ["b"]
    cache.learned("a", A, 1.0)
    assert cache.get("a", 1.0) is A
    assert cache.wanted(["a"], 600.0) == []
    assert cache.next_due(["a"], 2.0) == 601.0


def test_refresh_after_ttl_and_stale_shape_kept_for_one_more_period() -> None:
    cache = ShapeCache(600)
    cache.learned("a", A, 0.0)
    assert cache.wanted(["a"], 600.0) == ["a"]
    cache.start("a")
    cache.failed("a", "target down", 601.0)
    assert cache.get("a", 1199.0) is A  # the old shape, until 2 x TTL
    assert cache.get("a", 1200.0) is None  # then our own flight again
    assert cache.wanted(["a"], 620.0) == []  # retried after retry_after, not at once
    assert cache.wanted(["a"], 631.0) == ["a"]
    cache.learned("a", B, 632.0)
    assert cache.get("a", 633.0) is B


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ShapeCache(0)


def test_most_common() -> None:
    assert most_common([A, B, A]) is A
    assert most_common([A, B]) is B  # a tie: the latest
    with pytest.raises(ValueError):
        most_common([])


def _table(**extra: object) -> dict[str, object]:
    key = base64.urlsafe_b64encode(server_config().private_key).rstrip(b"=").decode()
    return {"private_key": key, "server_names": ["a"], "short_ids": [""],
            "target": "127.0.0.1:9", **extra}


def test_shape_ttl_setting() -> None:
    assert parse_reality_table(_table()).shape_ttl_s == 600
    assert parse_reality_table(_table(shape_ttl_s=30)).shape_ttl_s == 30
    assert parse_reality_table(_table(shape_ttl_s=0)).shape_ttl_s == 0  # off
    with pytest.raises(RealityConfigError, match="shape_ttl_s"):
        parse_reality_table(_table(shape_ttl_s=-1))


def test_close_target_setting() -> None:
    assert parse_reality_table(_table()).close_target is False
    assert parse_reality_table(_table(close_target=True)).close_target is True
    with pytest.raises(RealityConfigError, match="close_target"):
        parse_reality_table(_table(close_target=1))
