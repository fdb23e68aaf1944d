"""Unit tests of the pure emulator core on virtual time (no root)."""

from __future__ import annotations

import itertools
import math
import random
import struct

import pytest

from quicreality.scenarios.emulator.core import DirectionCore, corrupt_packet
from quicreality.scenarios.model import Blackhole, GilbertElliott, Impairment


def udp_packet(seq: int, payload_len: int = 1172) -> bytes:
    """An IPv4/UDP packet 10.99.1.2 -> 10.99.2.2 with a valid UDP checksum."""
    payload = struct.pack("!I", seq) + bytes(payload_len - 4)
    src, dst = bytes([10, 99, 1, 2]), bytes([10, 99, 2, 2])
    ulen = 8 + len(payload)
    udp = struct.pack("!HHHH", 40000, 5000, ulen, 0) + payload
    cs = checksum(src + dst + struct.pack("!BBH", 0, 17, ulen) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", cs) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, seq & 0xFFFF, 0, 64, 17, 0, src, dst)
    return ip + udp


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_checksum_ok(pkt: bytes) -> bool:
    udp = pkt[20:]
    pseudo = pkt[12:20] + struct.pack("!BBH", 0, 17, len(udp))
    return checksum(pseudo + udp) == 0


def run(core: DirectionCore, n: int, interval: float, size: int = 1200,
        until: float | None = None) -> list[tuple[float, int]]:
    """Submit n packets every ``interval`` s; return (release time, seq) in release order."""
    out: list[tuple[float, int]] = []
    events = sorted([(i * interval, i) for i in range(n)])
    for t, i in events:
        due = core.next_due()
        while due is not None and due <= t:
            core.release(due, lambda p, d=due: out.append((d, struct.unpack("!I", p[28:32])[0])))
            due = core.next_due()
        core.submit(udp_packet(i, size - 28), t)
    while (due := core.next_due()) is not None:
        core.release(due, lambda p, d=due: out.append((d, struct.unpack("!I", p[28:32])[0])))
    return out


def test_fixed_delay_is_exact_on_virtual_time() -> None:
    core = DirectionCore(Impairment(delay_ms=25), seed=1, direction="to_server")
    out = run(core, 100, 0.001)
    assert [s for _, s in out] == list(range(100))
    assert all(t == pytest.approx(s * 0.001 + 0.025) for t, s in out)


def test_rate_serializer_spaces_packets_and_adds_delay() -> None:
    core = DirectionCore(Impairment(delay_ms=10, rate_mbit=8, queue_packets=1000),
                         seed=1, direction="to_server")
    out = run(core, 50, 0.0)  # a burst of 50 x 1200 B at t=0
    tx = 1200 * 8 / 8e6  # 1.2 ms per packet
    assert [t for t, _ in out] == pytest.approx([(i + 1) * tx + 0.010 for i in range(50)])


def test_packet_queue_limit_counts_waiting_packets() -> None:
    core = DirectionCore(Impairment(rate_mbit=10, queue_packets=25), seed=1, direction="to_client")
    sent = [core.submit(udp_packet(i), 0.0) for i in range(40)]
    assert sum(sent) == 26  # 25 waiting + 1 in service
    assert core.drops["queue"] == 14


def test_byte_queue_limit() -> None:
    core = DirectionCore(Impairment(rate_mbit=10, queue_bytes=12000), seed=1, direction="to_client")
    sent = [core.submit(udp_packet(i, 1172), 0.0) for i in range(20)]
    assert sum(sent) == 10  # 10 x 1200 B fit in 12000 B


def test_saturated_rate_delivers_the_cap() -> None:
    core = DirectionCore(Impairment(rate_mbit=10, queue_packets=25), seed=1, direction="to_client")
    out = run(core, 4000, 1200 * 8 / 20e6)  # offered at 20 Mbit/s for 1.92 s
    span = out[-1][0] - out[0][0]
    rate = (len(out) - 1) * 1200 * 8 / span
    assert rate == pytest.approx(10e6, rel=1e-3)
    assert core.drops["queue"] == pytest.approx(2000, abs=30)


def test_queue_delay_bounded_by_queue_size() -> None:
    core = DirectionCore(Impairment(delay_ms=15, rate_mbit=10, queue_packets=25),
                         seed=1, direction="to_client")
    out = run(core, 2000, 1200 * 8 / 20e6)
    sent_at = {s: s * 1200 * 8 / 20e6 for s in range(2000)}
    worst = max(t - sent_at[s] for t, s in out)
    assert worst <= 0.015 + 26 * 1200 * 8 / 10e6 + 1e-9


def test_jitter_without_reorder_keeps_fifo() -> None:
    core = DirectionCore(Impairment(delay_ms=20, jitter_ms=5), seed=7, direction="to_server")
    out = run(core, 2000, 0.001)
    assert [s for _, s in out] == list(range(2000))
    delays = [t - s * 0.001 for t, s in out]
    assert min(delays) >= 0.015 - 1e-9 and max(delays) <= 0.025 + 1e-9


def test_jitter_with_reorder_reorders() -> None:
    core = DirectionCore(Impairment(delay_ms=20, jitter_ms=5, reorder=True), seed=7,
                         direction="to_server")
    out = run(core, 2000, 0.001)
    seqs = [s for _, s in out]
    assert sorted(seqs) == list(range(2000))
    inversions = sum(1 for a, b in itertools.pairwise(seqs) if b < a)
    assert inversions > 200
    delays = [t - s * 0.001 for t, s in out]
    assert sum(delays) / len(delays) == pytest.approx(0.020, abs=0.0005)


def binomial_ok(k: int, n: int, p: float, z: float = 3.29) -> bool:
    """k within the 99.9 % normal-approximation interval of Binomial(n, p)."""
    return abs(k - n * p) <= z * math.sqrt(n * p * (1 - p))


def test_random_loss_within_binomial_bound() -> None:
    core = DirectionCore(Impairment(loss=0.05), seed=3, direction="to_server")
    sent = sum(core.submit(udp_packet(i), i * 1e-4) for i in range(20000))
    assert binomial_ok(20000 - sent, 20000, 0.05)
    assert core.drops["loss"] == 20000 - sent


def test_same_seed_same_drop_pattern_and_other_seed_differs() -> None:
    def pattern(seed: int, interval: float) -> list[int]:
        core = DirectionCore(Impairment(loss=0.05, jitter_ms=3, delay_ms=5,
                                        gilbert_elliott=GilbertElliott(p=0.01, r=0.3)),
                             seed=seed, direction="to_client")
        return [core.submit(udp_packet(i), i * interval) for i in range(5000)]

    assert pattern(42, 0.001) == pattern(42, 0.0003)  # timing does not change decisions
    assert pattern(42, 0.001) != pattern(43, 0.001)


def test_directions_use_independent_streams() -> None:
    a = DirectionCore(Impairment(loss=0.1), seed=5, direction="to_server")
    b = DirectionCore(Impairment(loss=0.1), seed=5, direction="to_client")
    pa = [a.submit(udp_packet(i), 0) for i in range(2000)]
    pb = [b.submit(udp_packet(i), 0) for i in range(2000)]
    assert pa != pb


def test_gilbert_elliott_statistics() -> None:
    ge = GilbertElliott(p=0.01, r=0.25)  # stationary loss 0.0385, mean burst 4
    core = DirectionCore(Impairment(gilbert_elliott=ge), seed=11, direction="to_server")
    n = 200_000
    kept = [core.submit(b"\x45" + bytes(27), 0.0) for _ in range(n)]
    lost = kept.count(0)
    assert lost / n == pytest.approx(ge.stationary_loss, rel=0.1)
    bursts, run_len = [], 0
    for k in kept:
        if k == 0:
            run_len += 1
        elif run_len:
            bursts.append(run_len)
            run_len = 0
    assert sum(bursts) / len(bursts) == pytest.approx(4.0, rel=0.1)


def test_reset_replays_the_same_pattern() -> None:
    core = DirectionCore(Impairment(loss=0.2), seed=9, direction="to_server")
    first = [core.submit(udp_packet(i), 0) for i in range(500)]
    core.reset(9, origin=100.0)
    second = [core.submit(udp_packet(i), 100.0) for i in range(500)]
    assert first == second
    assert core.n_in == 500


def test_blackhole_drops_only_inside_windows() -> None:
    core = DirectionCore(Impairment(blackhole=Blackhole(on_s=1, off_s=0.5, repeat=2)),
                         seed=1, direction="to_client", origin=10.0)
    times = [10 + i * 0.01 for i in range(400)]
    kept = {round(t - 10, 2): core.submit(udp_packet(i), t) for i, t in enumerate(times)}
    assert kept[0.99] == 1 and kept[1.0] == 0 and kept[1.49] == 0 and kept[1.5] == 1
    assert kept[2.5] == 0 and kept[3.0] == 1 and kept[3.99] == 1
    assert core.drops["blackhole"] == 100


def test_duplicate_sends_two_copies() -> None:
    core = DirectionCore(Impairment(duplicate=0.1, delay_ms=1), seed=2, direction="to_server")
    copies = [core.submit(udp_packet(i), 0) for i in range(10000)]
    assert binomial_ok(copies.count(2), 10000, 0.1)
    out: list[bytes] = []
    core.release(1.0, out.append)
    assert len(out) == sum(copies)


def test_corruption_breaks_checksum_by_default() -> None:
    rng = random.Random(1)
    for i in range(200):
        pkt = udp_packet(i)
        c = corrupt_packet(pkt, rng, fix_checksum=False)
        assert c is not None and len(c) == len(pkt)
        assert sum((a ^ b).bit_count() for a, b in zip(pkt, c, strict=False)) == 1
        assert c[:20] == pkt[:20]  # the IP header is left intact
        assert not udp_checksum_ok(c)


def test_corruption_with_fixed_checksum_is_deliverable() -> None:
    rng = random.Random(2)
    for i in range(500):
        pkt = udp_packet(i, payload_len=4 + (i % 7))  # odd and even lengths
        assert udp_checksum_ok(pkt)
        c = corrupt_packet(pkt, rng, fix_checksum=True)
        assert c is not None and c[28:] != pkt[28:]
        assert c[:28][:26] == pkt[:26]
        assert udp_checksum_ok(c)


def test_corrupt_stage_counts() -> None:
    core = DirectionCore(Impairment(corrupt=0.5), seed=4, direction="to_server")
    for i in range(1000):
        core.submit(udp_packet(i), 0)
    assert binomial_ok(core.n_corrupted, 1000, 0.5)
