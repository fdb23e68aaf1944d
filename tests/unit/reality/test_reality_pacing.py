"""The gate's timing side channel (issue 17 item 4), on virtual time: an accepted flow's first reply
is due no earlier than its first datagram plus the target's learned first-reply time."""

from __future__ import annotations

import pytest
from reality_helpers import CLIENT_ADDR, client_configuration, first_flight, make_gate, server_config

from quicreality.reality.auth import Reason
from quicreality.reality.gate import Accept, Forward, Pending
from quicreality.reality.shape_cache import ShapeCache
from quicreality.reality.target_shape import TargetShape

TARGET_FIRST_REPLY = 0.080


def test_an_accept_is_due_the_targets_first_reply_time_after_the_first_datagram() -> None:
    gate = make_gate()
    asked: list[str | None] = []
    gate.first_reply_source = lambda sni: asked.append(sni) or TARGET_FIRST_REPLY
    _, datagrams = first_flight(client_configuration())
    d = gate.receive_datagram(datagrams[0], CLIENT_ADDR, now=5.0)
    assert isinstance(d, Accept)
    assert d.reply_not_before == pytest.approx(5.0 + TARGET_FIRST_REPLY)
    assert asked == ["www.example.com"]  # per SNI


def test_a_hello_over_two_datagrams_is_paced_from_the_first() -> None:
    gate = make_gate()
    gate.first_reply_source = lambda sni: TARGET_FIRST_REPLY
    _, datagrams = first_flight(client_configuration(fingerprint="chrome"))
    assert len(datagrams) == 2
    first = gate.receive_datagram(datagrams[0], CLIENT_ADDR, now=5.0)
    assert isinstance(first, Pending)
    d = gate.receive_datagram(datagrams[1], CLIENT_ADDR, now=5.03)
    assert isinstance(d, Accept)
    assert d.reply_not_before == pytest.approx(5.0 + TARGET_FIRST_REPLY)


def test_no_pacing_without_a_learned_time_or_when_turned_off() -> None:
    _, datagrams = first_flight(client_configuration())
    unknown = make_gate()
    unknown.first_reply_source = lambda sni: None
    d = unknown.receive_datagram(datagrams[0], CLIENT_ADDR, now=5.0)
    assert isinstance(d, Accept) and d.reply_not_before is None
    off = make_gate(server_config(pace_first_reply=False))
    off.first_reply_source = lambda sni: TARGET_FIRST_REPLY
    d = off.receive_datagram(datagrams[0], CLIENT_ADDR, now=5.0)
    assert isinstance(d, Accept) and d.reply_not_before is None


def test_a_rejected_hello_is_relayed_at_once() -> None:
    gate = make_gate()
    gate.first_reply_source = lambda sni: TARGET_FIRST_REPLY
    _, datagrams = first_flight(client_configuration(short_id=bytes.fromhex("ffff") + bytes(6)))
    d = gate.receive_datagram(datagrams[0], CLIENT_ADDR, now=5.0)
    assert isinstance(d, Forward) and d.verdict is not None
    assert d.verdict.reason is Reason.UNKNOWN_SHORT_ID


def test_the_first_reply_time_lives_as_long_as_the_shape() -> None:
    cache = ShapeCache(ttl=10.0)
    shape = TargetShape(server_hello=None, datagrams=(), scid_len=8, client_scid_len=8)
    assert cache.first_reply("a", 0.0) is None
    cache.learned("a", shape, 0.0, first_reply=0.05)
    cache.start("a")  # a refresh in progress keeps it
    cache.failed("a", "down", 12.0)  # a failed refresh too, while the shape is kept
    assert cache.first_reply("a", 19.0) == 0.05
    assert cache.first_reply("a", 20.0) is None  # the shape expired: no pacing either
    cache.learned("b", shape, 0.0)
    assert cache.first_reply("b", 1.0) is None
