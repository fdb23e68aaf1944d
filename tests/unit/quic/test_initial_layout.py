"""The first-Initial-flight planner (quicreality.quic.initial_layout) and the client that follows it."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest

from quicreality.quic import initial_layout as il
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.quic.crypto import CryptoPair
from quicreality.quic.frames import CryptoFrame, PaddingFrame, PingFrame, frame_allowed, pull_frame
from quicreality.quic.packet import PACKET_TYPE_INITIAL, pull_quic_header
from quicreality.tls.certificates import InsecureVerifier
from quicreality.wire.buffer import Buffer

#: Chromium 156's hello lengths as measured (docs/camouflage.md): 1873-1977 bytes.
CHROME_HELLO_LENGTHS = (1873, 1908, 1946, 1977)


def seeded(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


def hello_bytes(n: int) -> bytes:
    return bytes((i * 31 + 7) & 0xFF for i in range(n))


def covered_once(plan: il.InitialFlightPlan, total: int) -> bool:
    """Every hello byte is in exactly one CRYPTO frame of the plan."""
    seen = bytearray(total)
    for packet in plan.packets:
        for f in packet.crypto_fragments:
            for i in range(f.offset, f.offset + f.length):
                seen[i] += 1
    return all(c == 1 for c in seen)


def header_size(packet: il.PlannedPacket, dcid: int = 8, scid: int = 0, token: int = 0) -> int:
    return il.long_header_size(dcid_length=dcid, scid_length=scid, token_length=token,
                               packet_number_length=packet.packet_number_length)


# ------------------------------------------------------------------------- the planner


@pytest.mark.parametrize("layout", il.LAYOUTS)
@pytest.mark.parametrize("total", [1, 60, 300, 1200, *CHROME_HELLO_LENGTHS, 2400, 3500])
@pytest.mark.parametrize("seed", range(6))
def test_plan_covers_every_hello_byte_exactly_once(layout: str, total: int, seed: int) -> None:
    plan = il.plan_initial_flight(total, seeded(seed), layout)
    assert covered_once(plan, total)
    assert all(f.length > 0 for p in plan.packets for f in p.crypto_fragments)


@pytest.mark.parametrize("layout", il.LAYOUTS)
@pytest.mark.parametrize("total", [300, 1950, 3500])
@pytest.mark.parametrize(("dcid", "scid", "token"), [(8, 0, 0), (20, 20, 0), (8, 8, 40)])
def test_plan_fills_each_datagram_to_the_profile_size(layout: str, total: int, dcid: int,
                                                       scid: int, token: int) -> None:
    profile = il.profile_for(layout)
    plan = il.plan_initial_flight(total, seeded(total), profile, dcid_length=dcid,
                                  scid_length=scid, token_length=token)
    for packet in plan.packets:
        assert packet.datagram_size == profile.datagram_size >= 1200  # RFC 9000 §14.1
        size = header_size(packet, dcid, scid, token) + packet.payload_length + 16
        assert size == packet.datagram_size


def test_chrome_plan_is_two_1250_byte_initials_numbered_1_and_2() -> None:
    for total in CHROME_HELLO_LENGTHS:
        plan = il.plan_initial_flight(total, seeded(total), "chrome")
        assert [p.packet_number for p in plan.packets] == [1, 2]
        assert [p.packet_number_length for p in plan.packets] == [1, 2]
        assert [p.datagram_size for p in plan.packets] == [1250, 1250]
        assert plan.next_packet_number == 3


def test_minimal_plan_numbers_from_0_with_1_byte_fields() -> None:
    """The send path's shortest field with nothing acknowledged (RFC 9000 §A.2)."""
    plan = il.plan_initial_flight(1950, seeded(1), "minimal")
    assert [p.packet_number for p in plan.packets] == [0, 1]
    assert {p.packet_number_length for p in plan.packets} == {1}
    assert plan.next_packet_number == 2
    assert all(isinstance(p.frames[-1], il.Padding) for p in plan.packets)


def test_a_hello_too_large_for_two_chrome_packets_gets_a_third() -> None:
    plan = il.plan_initial_flight(3500, seeded(2), "chrome")
    assert [p.packet_number for p in plan.packets] == [1, 2, 3]
    assert [p.packet_number_length for p in plan.packets] == [1, 2, 2]


@pytest.mark.parametrize("layout", il.LAYOUTS)
def test_planned_frames_are_legal_in_initial_packets(layout: str) -> None:
    hello = hello_bytes(1950)
    for seed in range(20):
        plan = il.plan_initial_flight(hello, seeded(seed), layout)
        for packet in plan.packets:
            payload = il.encode_payload(packet, hello)
            assert len(payload) == packet.payload_length
            buf = Buffer(data=payload)
            while not buf.eof():
                frame_type = payload[buf.tell()]
                assert frame_allowed(frame_type, PACKET_TYPE_INITIAL)  # RFC 9000 §12.4
                frame = pull_frame(buf)
                assert isinstance(frame, (CryptoFrame, PingFrame, PaddingFrame))
                if isinstance(frame, CryptoFrame):
                    assert frame.data == hello[frame.offset:frame.offset + len(frame.data)]


def test_same_seed_same_plan_other_seed_other_plan() -> None:
    first = il.plan_initial_flight(1950, seeded(7), "chrome")
    assert il.plan_initial_flight(1950, seeded(7), "chrome") == first
    others = {il.plan_initial_flight(1950, seeded(s), "chrome") for s in range(8, 18)}
    assert first not in others and len(others) == 10


def test_chrome_plan_draws_within_the_measured_ranges() -> None:
    """Head/tail split, frame counts and PINGs stay within what Chromium 156 was seen to send."""
    rng = seeded(99)
    heads, crypto_counts, pings = set(), [set(), set()], [set(), set()]
    for i in range(300):
        total = CHROME_HELLO_LENGTHS[i % len(CHROME_HELLO_LENGTHS)]
        plan = il.plan_initial_flight(total, rng, "chrome")
        first, second = plan.packets
        assert sum(f.length for f in first.crypto_fragments) == (total - 4) // 2
        middle = sorted((f.offset, f.length) for f in second.crypto_fragments)
        head = middle[0][0]
        heads.add(head)
        assert 55 <= head <= 86
        # The first packet holds [0, head) and the tail, the second the middle.
        assert all(f.offset < head or f.offset >= head + sum(n for _, n in middle)
                   for f in first.crypto_fragments)
        for k, packet in enumerate(plan.packets):
            crypto_counts[k].add(len(packet.crypto_fragments))
            pings[k].add(sum(isinstance(f, il.Ping) for f in packet.frames))
            kinds = [type(f) for f in packet.frames]
            assert all(not (a is b is il.Padding) for a, b in itertools.pairwise(kinds))
    assert len(heads) > 20
    assert min(crypto_counts[0]) >= 2 and max(crypto_counts[0]) == 12
    assert min(crypto_counts[1]) >= 1 and max(crypto_counts[1]) == 11
    assert pings[0] == pings[1] == set(range(2, 11))


def test_chrome_plan_shuffles_crypto_frames_out_of_order() -> None:
    plans = [il.plan_initial_flight(1950, seeded(s), "chrome") for s in range(20)]
    offsets = [[f.offset for p in plan.packets for f in p.crypto_fragments] for plan in plans]
    assert all(o != sorted(o) for o in offsets)


def test_unknown_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown initial layout"):
        il.plan_initial_flight(100, seeded(1), "firefox")
    with pytest.raises(ValueError, match="unknown initial layout"):
        QuicConnection(configuration=client_config("firefox"))


def test_pool_below_is_uniform_and_in_range() -> None:
    pool = il._Pool(seeded(3))
    counts = [0] * 5
    for _ in range(5000):
        counts[pool.below(5)] += 1
    assert all(900 < c < 1100 for c in counts)
    assert pool.below(1) == 0
    assert {pool.uniform((55, 86)) for _ in range(2000)} == set(range(55, 87))


def test_pool_serves_the_bytes_in_order() -> None:
    """Drawing through the pool reads the rng's byte stream in order, whatever the draw sizes."""
    stream = seeded(4)(4096)
    pos = 0

    def rng(n: int) -> bytes:
        nonlocal pos
        pos += n
        return stream[pos - n:pos]

    pool = il._Pool(rng)
    got = b"".join(pool(k) for k in (1, 7, 250, 3, 300, 2))
    assert got == stream[:len(got)]


# ------------------------------------------------------------ the client follows the plan


def client_config(layout: str, **changes: object) -> QuicConfiguration:
    cfg = QuicConfiguration(is_client=True, server_name="localhost", rng=seeded(5),
                            wall_clock=lambda: 1.7e9, peer_verifier=InsecureVerifier(),
                            initial_layout=layout)
    return cfg.derived(**changes) if changes else cfg


def first_flight(cfg: QuicConfiguration) -> tuple[QuicConnection, list[bytes]]:
    conn = QuicConnection(configuration=cfg)
    conn.connect(("127.0.0.1", 4433), now=0.0)
    return conn, [d for d, _ in conn.datagrams_to_send(0.0)]


def open_initial(datagram: bytes, odcid: bytes) -> tuple[object, int, int, bytes]:
    """(header, packet number, its length, plaintext payload) of a lone Initial packet."""
    header = pull_quic_header(Buffer(data=datagram), host_cid_length=8)
    assert header.packet_type == PACKET_TYPE_INITIAL and header.packet_end == len(datagram)
    server = CryptoPair()
    server.setup_initial(odcid, is_client=False, version=1)
    plain_header, payload, pn = server.decrypt_packet(datagram, header.pn_offset, 0)
    return header, pn, (plain_header[0] & 0x03) + 1, payload


def crypto_ranges(payload: bytes) -> list[tuple[int, int]]:
    buf, out = Buffer(data=payload), []
    while not buf.eof():
        frame = pull_frame(buf)
        if isinstance(frame, CryptoFrame):
            out.append((frame.offset, len(frame.data)))
    return out


def test_chrome_client_sends_the_planned_first_flight() -> None:
    conn, datagrams = first_flight(client_config("chrome"))
    odcid = conn.original_destination_connection_id
    assert len(odcid) == 8 and conn.host_cid == b""
    assert [len(d) for d in datagrams] == [1250, 1250]
    ranges: list[tuple[int, int]] = []
    for expected_pn, expected_len, datagram in zip((1, 2), (1, 2), datagrams, strict=False):
        header, pn, pn_len, payload = open_initial(datagram, odcid)
        assert header.source_cid == b"" and header.destination_cid == odcid
        assert (pn, pn_len) == (expected_pn, expected_len)
        got = crypto_ranges(payload)
        assert len(got) >= 2 and got != sorted(got)
        ranges += got
    ranges.sort()
    assert ranges[0][0] == 0
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(ranges))


def test_minimal_plan_is_what_the_plain_send_path_sends() -> None:
    """The ``minimal`` profile describes the unplanned path exactly (frames, sizes, numbers)."""
    conn, datagrams = first_flight(client_config("minimal"))
    odcid = conn.original_destination_connection_id
    total = 0
    sent = []
    for datagram in datagrams:
        _, pn, pn_len, payload = open_initial(datagram, odcid)
        sent.append((pn, pn_len, len(datagram), crypto_ranges(payload)))
        total += sum(n for _, n in crypto_ranges(payload))
    plan = il.plan_initial_flight(total, seeded(0), "minimal", dcid_length=8, scid_length=8)
    assert sent == [(p.packet_number, p.packet_number_length, p.datagram_size,
                     [(f.offset, f.length) for f in p.crypto_fragments]) for p in plan.packets]


def test_scid_length_overrides_the_layout_default() -> None:
    conn, datagrams = first_flight(client_config("chrome", scid_length=8))
    assert len(conn.host_cid) == 8
    header, *_ = open_initial(datagrams[0], conn.original_destination_connection_id)
    assert len(header.source_cid) == 8
    conn, _ = first_flight(client_config("minimal", scid_length=0))
    assert conn.host_cid == b""
    conn, _ = first_flight(client_config("minimal"))
    assert len(conn.host_cid) == 8


def test_retransmitted_hello_is_chaos_shaped_like_chromium() -> None:
    """After a PTO the hello goes again as Chromium's quiche sends any hello-only Initial:
    1250-byte datagrams, CRYPTO frames cut and shuffled among PING and PADDING, every byte once."""
    conn, first = first_flight(client_config("chrome"))
    odcid = conn.original_destination_connection_id
    total = sum(n for d in first for _, n in crypto_ranges(open_initial(d, odcid)[3]))
    timer = conn.get_timer()
    assert timer is not None
    conn.handle_timer(timer)
    again = [d for d, _ in conn.datagrams_to_send(timer)]
    assert again and all(len(d) == 1250 for d in again)
    ranges: list[tuple[int, int]] = []
    kinds: set[str] = set()
    for number, datagram in enumerate(again, start=3):
        _, pn, pn_len, payload = open_initial(datagram, odcid)
        assert (pn, pn_len) == (number, 1)  # shortest field, nothing acked (RFC 9000 §A.2)
        buf = Buffer(data=payload)
        while not buf.eof():
            kinds.add(type(pull_frame(buf)).__name__)
        ranges += crypto_ranges(payload)
    assert kinds == {"CryptoFrame", "PingFrame", "PaddingFrame"}
    assert len(ranges) > len(again)  # cut into more frames than packets
    ranges.sort()
    assert ranges[0][0] == 0 and sum(n for _, n in ranges) == total
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(ranges))


def test_only_hello_only_initials_are_chaos_shaped() -> None:
    """A payload with anything but CRYPTO and PADDING (an ACK) keeps our layout, as in quiche."""
    crypto = bytes([0x06, 0x00, 0x05]) + b"hello"
    assert il.chaos_retransmission(crypto + bytes(20), 200, seeded(1)) is not None
    assert il.chaos_retransmission(bytes([0x02, 0x00, 0x00, 0x00, 0x00]) + crypto, 200,
                                   seeded(1)) is None
    assert il.chaos_retransmission(bytes(30), 200, seeded(1)) is None  # no CRYPTO at all


# ------------------------------------------------------------ zero-length connection IDs


def test_zero_length_host_cid_issues_nothing_and_refuses_retire() -> None:
    """RFC 9000 §5.1.1, §19.16: no NEW_CONNECTION_ID; RETIRE_CONNECTION_ID is a violation."""
    from quicreality.quic.connection.cids import HostConnectionIds
    from quicreality.quic.errors import QuicConnectionError, QuicErrorCode

    cids = HostConnectionIds(b"", seeded(1), lambda cid: bytes(16))
    assert cids.issue(4) == [] and cids.cids == [b""]
    with pytest.raises(QuicConnectionError) as info:
        cids.retire(0, b"")
    assert info.value.error_code == QuicErrorCode.PROTOCOL_VIOLATION
    assert len(HostConnectionIds(b"12345678", seeded(1), lambda cid: bytes(16)).issue(4)) == 3
