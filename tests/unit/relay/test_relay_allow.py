"""The allow-list: deny by default, networks, ports, names, resolution."""

from __future__ import annotations

import pytest

from quicreality.relay.allow import (
    Allowed,
    AllowList,
    AllowRuleError,
    Denied,
    ResolveFirst,
    parse_rule,
)
from quicreality.relay.protocol import Destination

RULES = AllowList.parse(["127.0.0.1:5201", "10.0.0.0/8:*", "[::1]:*", "192.168.1.0/24:8000-8080",
                         "DB.internal.:5432"])


def test_empty_list_denies_everything() -> None:
    deny = AllowList()
    for dest in (Destination("127.0.0.1", 5201), Destination("::1", 1), Destination("x.y", 80)):
        assert isinstance(deny.decide(dest), Denied)
    assert not deny.is_open


@pytest.mark.parametrize(("host", "port", "ok"), [
    ("127.0.0.1", 5201, True),
    ("127.0.0.1", 5202, False),
    ("127.0.0.2", 5201, False),
    ("10.255.0.1", 1, True),
    ("11.0.0.1", 1, False),
    ("::1", 65535, True),
    ("::2", 1, False),
    ("::ffff:10.1.1.1", 22, True),  # IPv4-mapped matches as IPv4
    ("192.168.1.7", 8000, True),
    ("192.168.1.7", 8081, False),
])
def test_address_matching(host: str, port: int, ok: bool) -> None:
    decision = RULES.decide(Destination(host, port))
    assert isinstance(decision, Allowed) == ok
    assert isinstance(decision, Denied) == (not ok)


def test_names_match_exactly_or_resolve_against_networks() -> None:
    assert RULES.decide(Destination("db.internal", 5432)) == Allowed("db.internal")
    assert RULES.decide(Destination("DB.Internal.", 5432)) == Allowed("DB.Internal.")
    # Another name: must be resolved; only addresses the networks allow are kept.
    assert RULES.decide(Destination("other.example", 22)) == ResolveFirst("other.example")
    assert RULES.permitted_addresses(["8.8.8.8", "10.1.2.3", "::1"], 22) == ("10.1.2.3", "::1")
    assert RULES.permitted_addresses(["8.8.8.8"], 22) == ()
    # No network rule covers port 9 for names: refused without resolving.
    only_exact = AllowList.parse(["127.0.0.1:5201"])
    assert isinstance(only_exact.decide(Destination("evil.example", 9)), Denied)


def test_open_rule_is_reported() -> None:
    assert AllowList.parse(["0.0.0.0/0:*"]).is_open
    assert AllowList.parse(["[::/0]:443"]).is_open
    assert not RULES.is_open


@pytest.mark.parametrize("bad", ["", "127.0.0.1", "*:*", "*.example.com:443", "::1:80",
                                 "[::1]", "[1.2.3.4]:80", "300.1.1.1:80", "10.0.0.0/33:1",
                                 "host:0", "host:5-3", "host:x", "bad host:1", "1.2.3.4:99999"])
def test_bad_rules_are_rejected(bad: str) -> None:
    with pytest.raises(AllowRuleError):
        parse_rule(bad)


def test_rule_fields() -> None:
    rule = parse_rule(" 10.0.0.0/8:100-200 ")
    assert (rule.port_min, rule.port_max, rule.hostname) == (100, 200, None)
    assert str(rule.network) == "10.0.0.0/8"
    assert parse_rule("10.1.2.3/8:*").network is not None  # host bits tolerated
