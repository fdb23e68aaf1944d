"""The emulator's CE-marking stage (RFC 3168 §5) on virtual time, and its link-model field."""

from __future__ import annotations

import struct

import pytest
from test_emulator_core import checksum, udp_checksum_ok, udp_packet

from quicreality.scenarios.emulator.core import DirectionCore, ecn_of_packet, mark_ce
from quicreality.scenarios.model import Impairment, ModelError, load_link
from quicreality.scenarios.netem import NetemUnsupported, netem_args

ECT0, ECT1, CE = 0b10, 0b01, 0b11


def with_ecn(pkt: bytes, ecn: int) -> bytes:
    """The IPv4 packet with its ECN bits set and the header checksum recomputed."""
    hdr = bytearray(pkt[:20])
    hdr[1] = (hdr[1] & 0xFC) | ecn
    hdr[10:12] = b"\0\0"
    hdr[10:12] = struct.pack("!H", checksum(bytes(hdr)))
    return bytes(hdr) + pkt[20:]


def ipv6_udp(ecn: int, payload: bytes = b"quic") -> bytes:
    src, dst = bytes.fromhex("fd00" + "00" * 13 + "01"), bytes.fromhex("fd00" + "00" * 13 + "02")
    udp = struct.pack("!HHHH", 40000, 443, 8 + len(payload), 0) + payload
    first = (6 << 28) | (ecn << 20) | 0x12345  # version, traffic class (DSCP 0), flow label
    return struct.pack("!IHBB", first, len(udp), 17, 64) + src + dst + udp


def test_mark_ce_sets_the_codepoint_and_keeps_the_ipv4_checksum_valid() -> None:
    for ecn in (ECT0, ECT1):
        pkt = with_ecn(udp_packet(7), ecn)
        assert checksum(pkt[:20]) == 0 and ecn_of_packet(pkt) == ecn
        marked = mark_ce(pkt)
        assert marked is not None
        assert ecn_of_packet(marked) == CE
        assert checksum(marked[:20]) == 0, "IPv4 header checksum broken"
        assert marked[20:] == pkt[20:] and udp_checksum_ok(marked)
        assert marked[1] >> 2 == pkt[1] >> 2  # DSCP untouched


def test_mark_ce_leaves_not_ect_and_ce_alone() -> None:
    assert mark_ce(udp_packet(1)) is None  # Not-ECT: a non-ECN sender's packets are never marked
    assert mark_ce(with_ecn(udp_packet(1), CE)) is None


def test_mark_ce_on_ipv6_changes_only_the_traffic_class_ecn_bits() -> None:
    pkt = ipv6_udp(ECT0)
    marked = mark_ce(pkt)
    assert marked is not None and ecn_of_packet(marked) == CE
    (first,) = struct.unpack("!I", marked[:4])
    assert first >> 28 == 6 and (first >> 20) & 0xFF == CE and first & 0xFFFFF == 0x12345
    assert marked[4:] == pkt[4:]


def _burst(core: DirectionCore, n: int, ecn: int) -> list[int]:
    for i in range(n):
        core.submit(with_ecn(udp_packet(i, 1250 - 28), ecn), 0.0)
    out: list[int] = []
    while (due := core.next_due()) is not None:
        core.release(due, lambda p: out.append(ecn_of_packet(p)))
    return out


def test_queue_above_the_threshold_marks_ect_packets_ce() -> None:
    # 10 Mbit/s: a 1250-byte packet takes 1 ms. A burst of 30 at t=0: packet i starts after
    # i ms in the queue, so those with i > 5 (waiting more than 5 ms) are marked.
    imp = Impairment(rate_mbit=10, queue_packets=100, ecn_mark_threshold_ms=5)
    core = DirectionCore(imp, seed=1, direction="to_client")
    got = _burst(core, 30, ECT0)
    assert got == [ECT0] * 6 + [CE] * 24
    assert core.stats()["ce_marked"] == 24
    assert core.stats()["dropped_total"] == 0  # marked, not dropped


def test_not_ect_traffic_queues_and_drops_as_before() -> None:
    imp = Impairment(rate_mbit=10, queue_packets=20, ecn_mark_threshold_ms=5)
    core = DirectionCore(imp, seed=1, direction="to_client")
    got = _burst(core, 30, 0)
    assert got == [0] * 21
    assert core.stats()["ce_marked"] == 0 and core.drops["queue"] == 9


def test_no_threshold_never_marks() -> None:
    core = DirectionCore(Impairment(rate_mbit=10, queue_packets=100), seed=1, direction="to_client")
    assert _burst(core, 30, ECT0) == [ECT0] * 30


def test_link_field_loads_validates_and_is_refused_by_netem() -> None:
    link = load_link({"rate_mbit": 20, "ecn_mark_threshold_ms": 5, "delay_ms": 10})
    assert link.to_client.ecn_mark_threshold_ms == 5
    with pytest.raises(ModelError, match=r"ecn_mark_threshold_ms.*rate_mbit"):
        load_link({"ecn_mark_threshold_ms": 5})
    with pytest.raises(ModelError, match="ecn_mark_threshold_ms"):
        load_link({"rate_mbit": 20, "ecn_mark_threshold_ms": -1})
    with pytest.raises(NetemUnsupported, match="ecn_mark_threshold_ms"):
        netem_args(link.to_client)
