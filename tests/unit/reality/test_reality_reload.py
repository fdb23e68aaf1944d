"""plan_reload (SIGHUP, sans-IO): what a reload swaps in, whom it closes, what it keeps."""

from __future__ import annotations

from reality_helpers import SHORT_ID, server_config

from quicreality.reality.config import GateLimits
from quicreality.reality.keys import short_id_fingerprint
from quicreality.reality.reload import REVOKED_REASON, plan_reload

OTHER = bytes.fromhex("aabbccdd")
NEW = bytes.fromhex("0011223344556677")


def test_added_ids_and_names_apply_and_nobody_is_closed() -> None:
    old = server_config(short_ids=frozenset({SHORT_ID}))
    new = server_config(short_ids=frozenset({SHORT_ID, NEW}),
                        server_names=frozenset({"www.example.com", "cdn.example.net"}))
    plan = plan_reload(old, new, [("a", SHORT_ID), ("fallback", None)])
    assert plan.config.short_ids == {SHORT_ID, NEW}
    assert plan.config.server_names == {"www.example.com", "cdn.example.net"}
    assert plan.close == ()
    line = plan.describe()
    assert f"short IDs added: {short_id_fingerprint(NEW)}" in line
    assert "server names: cdn.example.net, www.example.com" in line
    assert NEW.hex() not in line  # IDs are named by fingerprint only


def test_connections_whose_id_was_removed_are_closed_with_the_reason() -> None:
    old = server_config(short_ids=frozenset({SHORT_ID, OTHER}))
    new = server_config(short_ids=frozenset({SHORT_ID}))
    plan = plan_reload(old, new, [("a", SHORT_ID), ("b", OTHER), ("c", OTHER)])
    assert plan.close == (("b", REVOKED_REASON), ("c", REVOKED_REASON))
    assert "short IDs removed" in plan.describe() and "2 connection(s) closed" in plan.describe()


def test_key_target_and_limits_are_kept_and_said() -> None:
    old = server_config()
    new = server_config(private_key=bytes(range(32)), target=("other.example", 443),
                        limits=GateLimits(max_pending_flows=7))
    plan = plan_reload(old, new, [])
    assert plan.config.private_key == old.private_key
    assert plan.config.target == old.target and plan.config.limits == old.limits
    assert len(plan.kept) == 3 and "restart" in plan.describe()
    assert plan_reload(old, old, []).describe() == "no change to [reality]"
