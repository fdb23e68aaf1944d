"""The sans-IO gate: reassembly across datagrams in any order, decisions, limits, relay table."""

from __future__ import annotations

import itertools
import random

import pytest
from reality_helpers import (
    CLIENT_ADDR,
    client_configuration,
    first_flight,
    make_gate,
    seeded_rng,
    server_config,
)

from quicreality.quic.frames import FrameType
from quicreality.reality.auth import Reason
from quicreality.reality.config import GateLimits
from quicreality.reality.gate import (
    Accept,
    Decided,
    FlowClosed,
    Forward,
    Pending,
    TargetAction,
)
from quicreality.reality.keys import generate_key_pair
from quicreality.reality.probe import (
    client_initial_crypto,
    crypto_frame,
    initial_datagrams,
    initial_packet,
    split,
)
from quicreality.wire.buffer import encode_uint_var

DCID = bytes(range(8))
SCID = bytes(range(8, 16))


def sealed_hello_bytes(**reality: object) -> bytes:
    """The sealed ClientHello our client would send (extracted from its first datagram)."""
    cfg = client_configuration(**reality)  # type: ignore[arg-type]
    conn, datagrams = first_flight(cfg)
    chunks = client_initial_crypto(datagrams[0], conn.original_destination_connection_id)
    data = bytearray()
    for offset, chunk in sorted(chunks):
        assert offset == len(data)
        data += chunk
    return bytes(data)


def test_single_datagram_hello_is_accepted_with_the_datagram_to_replay() -> None:
    gate = make_gate()
    _, datagrams = first_flight(client_configuration())
    d = gate.receive_datagram(datagrams[0], CLIENT_ADDR, now=0.0)
    assert isinstance(d, Accept)
    assert d.verdict is not None and d.verdict.accepted
    assert d.datagrams == (datagrams[0],) and d.mirror == datagrams[0] and d.new_flow
    # The target's answer to the mirrored hello is dropped; the flow is not relayed.
    assert gate.receive_target_datagram(CLIENT_ADDR, b"target reply", 0.1) is TargetAction.DROP
    assert not gate.is_fallback(CLIENT_ADDR)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_hello_split_over_three_datagrams_in_any_order(order: tuple[int, ...]) -> None:
    hello = sealed_hello_bytes()
    chunks = split(hello, [100, 50])
    assert len(chunks) == 3
    datagrams = initial_datagrams([chunks[i] for i in order], dcid=DCID, scid=SCID)
    gate = make_gate()
    decisions = [gate.receive_datagram(d, CLIENT_ADDR, now=0.01 * i)
                 for i, d in enumerate(datagrams)]
    assert [type(d) for d in decisions] == [Pending, Pending, Accept]
    assert [d.mirror for d in decisions] == datagrams  # every datagram mirrored untouched
    assert decisions[0].new_flow and not decisions[1].new_flow
    assert decisions[2].datagrams == tuple(datagrams)


def test_hello_split_in_one_datagram_with_two_reordered_crypto_frames() -> None:
    hello = sealed_hello_bytes()
    (a_off, a), (b_off, b) = split(hello, [150])
    frames = crypto_frame(b_off, b) + crypto_frame(a_off, a)
    datagram = initial_packet(frames, dcid=DCID, scid=SCID, packet_number=0, pad_to=1200)
    assert isinstance(make_gate().receive_datagram(datagram, CLIENT_ADDR, 0.0), Accept)


def test_duplicate_datagrams_while_pending_are_harmless() -> None:
    hello = sealed_hello_bytes()
    first, second = initial_datagrams(split(hello, [200]), dcid=DCID, scid=SCID)
    gate = make_gate()
    assert isinstance(gate.receive_datagram(first, CLIENT_ADDR, 0.0), Pending)
    assert isinstance(gate.receive_datagram(first, CLIENT_ADDR, 0.1), Pending)
    d = gate.receive_datagram(second, CLIENT_ADDR, 0.2)
    assert isinstance(d, Accept) and d.datagrams == (first, first, second)


def test_rejected_flow_becomes_a_relay_both_ways() -> None:
    other = generate_key_pair(seeded_rng(4))
    _, datagrams = first_flight(client_configuration(server_public_key=other.public_key))
    gate = make_gate()
    d = gate.receive_datagram(datagrams[0], CLIENT_ADDR, 0.0)
    assert isinstance(d, Forward) and d.new_flow and d.data == datagrams[0]
    assert d.verdict is not None and d.verdict.reason is Reason.AEAD_OPEN_FAILED
    later = gate.receive_datagram(b"\x40" + bytes(30), CLIENT_ADDR, 1.0)
    assert isinstance(later, Forward) and later.verdict is None and not later.new_flow
    assert gate.receive_target_datagram(CLIENT_ADDR, b"reply", 1.1) is TargetAction.RELAY
    assert gate.fallback_flows == 1


def test_target_replies_are_held_while_pending_and_released_on_reject() -> None:
    other = generate_key_pair(seeded_rng(4))
    hello = sealed_hello_bytes(server_public_key=other.public_key)
    first, second = initial_datagrams(split(hello, [200]), dcid=DCID, scid=SCID)
    gate = make_gate()
    assert isinstance(gate.receive_datagram(first, CLIENT_ADDR, 0.0), Pending)
    assert gate.receive_target_datagram(CLIENT_ADDR, b"early ack", 0.01) is TargetAction.HOLD
    d = gate.receive_datagram(second, CLIENT_ADDR, 0.02)
    assert isinstance(d, Forward) and d.release == (b"early ack",)
    assert d.verdict is not None and d.verdict.reason is Reason.AEAD_OPEN_FAILED


def test_held_target_replies_are_dropped_on_accept() -> None:
    hello = sealed_hello_bytes()
    first, second = initial_datagrams(split(hello, [200]), dcid=DCID, scid=SCID)
    gate = make_gate()
    gate.receive_datagram(first, CLIENT_ADDR, 0.0)
    assert gate.receive_target_datagram(CLIENT_ADDR, b"early ack", 0.01) is TargetAction.HOLD
    d = gate.receive_datagram(second, CLIENT_ADDR, 0.02)
    assert isinstance(d, Accept)
    assert gate.receive_target_datagram(CLIENT_ADDR, b"later", 0.03) is TargetAction.DROP


@pytest.mark.parametrize(
    "datagram",
    [
        random.Random(1).randbytes(1200),  # random bytes
        bytes(1300),  # zeros: a short header with the fixed bit clear
        initial_packet(crypto_frame(0, b"\x01\x00\x00\x05hello"), dcid=DCID, scid=SCID,
                       packet_number=0, pad_to=1200)[:900],  # truncated Initial
        initial_packet(crypto_frame(0, b"\x01"), dcid=DCID, scid=SCID, packet_number=0,
                       pad_to=1000),  # an Initial datagram under 1200 bytes
    ],
    ids=["random", "zeros", "truncated", "small"],
)
def test_not_an_initial_is_forwarded_at_once(datagram: bytes) -> None:
    gate = make_gate()
    d = gate.receive_datagram(datagram, CLIENT_ADDR, 0.0)
    assert isinstance(d, Forward) and d.data == datagram and d.new_flow
    assert d.verdict is not None and d.verdict.reason is Reason.NOT_QUIC_INITIAL


def test_crypto_that_is_not_a_client_hello_is_forwarded() -> None:
    datagram = initial_packet(crypto_frame(0, b"\x02\x00\x00\x04abcd"), dcid=DCID, scid=SCID,
                              packet_number=0, pad_to=1200)
    d = make_gate().receive_datagram(datagram, CLIENT_ADDR, 0.0)
    assert isinstance(d, Forward) and d.verdict is not None
    assert d.verdict.reason is Reason.NOT_CLIENT_HELLO


def test_an_initial_with_keys_of_another_dcid_is_malformed() -> None:
    datagram = initial_packet(crypto_frame(0, b"\x01\x00\x00\x04abcd"), dcid=DCID, scid=SCID,
                              packet_number=0, pad_to=1200)
    tampered = bytearray(datagram)
    tampered[-1] ^= 1  # breaks the AEAD tag
    d = make_gate().receive_datagram(bytes(tampered), CLIENT_ADDR, 0.0)
    assert isinstance(d, Forward) and d.verdict is not None
    assert d.verdict.reason is Reason.MALFORMED_INITIAL


def test_a_stream_frame_in_an_initial_is_malformed() -> None:
    frames = encode_uint_var(FrameType.STREAM_BASE | 0x02) + b"\x00\x01x"
    datagram = initial_packet(frames, dcid=DCID, scid=SCID, packet_number=0, pad_to=1200)
    d = make_gate().receive_datagram(datagram, CLIENT_ADDR, 0.0)
    assert isinstance(d, Forward) and d.verdict is not None
    assert d.verdict.reason is Reason.MALFORMED_INITIAL


def test_crypto_beyond_the_hello_limit_is_too_large() -> None:
    gate = make_gate(server_config(limits=GateLimits(max_client_hello_bytes=4096)))
    datagram = initial_packet(crypto_frame(5000, b"x"), dcid=DCID, scid=SCID, packet_number=0,
                              pad_to=1200)
    d = gate.receive_datagram(datagram, CLIENT_ADDR, 0.0)
    assert isinstance(d, Forward) and d.verdict is not None
    assert d.verdict.reason is Reason.TOO_LARGE
    declared = initial_packet(crypto_frame(0, b"\x01\x00\x20\x00"), dcid=DCID, scid=SCID,
                              packet_number=0, pad_to=1200)  # claims an 8 KiB ClientHello
    d = gate.receive_datagram(declared, ("192.0.2.99", 1), 0.0)
    assert isinstance(d, Forward) and d.verdict is not None
    assert d.verdict.reason is Reason.TOO_LARGE


def test_too_many_buffered_bytes_is_too_large() -> None:
    gate = make_gate(server_config(limits=GateLimits(max_pending_bytes=3000)))
    hello = sealed_hello_bytes()
    first, _ = initial_datagrams(split(hello, [200]), dcid=DCID, scid=SCID)
    decisions = [gate.receive_datagram(first, CLIENT_ADDR, 0.1 * i) for i in range(3)]
    assert [type(d) for d in decisions] == [Pending, Pending, Forward]
    assert decisions[2].verdict.reason is Reason.TOO_LARGE  # type: ignore[union-attr]
    assert gate.is_fallback(CLIENT_ADDR) and gate.pending_flows == 0


def test_incomplete_hello_times_out_to_the_relay() -> None:
    gate = make_gate(server_config(limits=GateLimits(pending_timeout=1.0, held_timeout=5.0)))
    first, _ = initial_datagrams(split(sealed_hello_bytes(), [200]), dcid=DCID, scid=SCID)
    assert isinstance(gate.receive_datagram(first, CLIENT_ADDR, 10.0), Pending)
    gate.receive_target_datagram(CLIENT_ADDR, b"held", 10.1)
    assert gate.get_timer() == pytest.approx(11.0)
    gate.handle_timer(10.5)
    assert gate.next_event() is None
    gate.handle_timer(11.0)
    event = gate.next_event()
    assert isinstance(event, Decided) and event.verdict.reason is Reason.TIMEOUT
    assert event.release == (b"held",)
    assert gate.is_fallback(CLIENT_ADDR)
    # A late datagram arriving after the deadline but before the timer also times out.
    gate2 = make_gate(server_config(limits=GateLimits(pending_timeout=1.0)))
    gate2.receive_datagram(first, CLIENT_ADDR, 0.0)
    d = gate2.receive_datagram(first, CLIENT_ADDR, 5.0)
    assert isinstance(d, Forward) and d.verdict.reason is Reason.TIMEOUT  # type: ignore[union-attr]


def test_pending_table_is_bounded_and_overflow_is_forwarded() -> None:
    gate = make_gate(server_config(limits=GateLimits(max_pending_flows=4)))
    first, _ = initial_datagrams(split(sealed_hello_bytes(), [200]), dcid=DCID, scid=SCID)
    kinds = [type(gate.receive_datagram(first, ("192.0.2.1", 1000 + i), 0.0)) for i in range(6)]
    assert kinds == [Pending] * 4 + [Forward] * 2
    assert gate.pending_flows == 4 and gate.fallback_flows == 2


def test_relay_table_evicts_the_least_recently_active_flow_and_expires_idle_ones() -> None:
    gate = make_gate(server_config(limits=GateLimits(max_fallback_flows=3,
                                                     fallback_idle_timeout=10.0)))
    for i in range(3):
        gate.receive_datagram(b"junk", ("192.0.2.1", i), float(i))
    gate.receive_datagram(b"junk", ("192.0.2.1", 0), 3.0)  # flow 0 is active again
    gate.receive_datagram(b"junk", ("192.0.2.1", 9), 4.0)  # evicts flow 1
    closed = gate.next_event()
    assert closed == FlowClosed(("192.0.2.1", 1), "evicted: fallback table full")
    assert gate.fallback_flows == 3
    assert gate.get_timer() == pytest.approx(12.0)  # flow 2, last active at 2.0
    gate.handle_timer(13.5)
    assert gate.next_event() == FlowClosed(("192.0.2.1", 2), "idle")
    assert gate.next_event() == FlowClosed(("192.0.2.1", 0), "idle")
    assert gate.next_event() is None and gate.fallback_flows == 1


def test_accepted_flow_drain_ends_with_flow_closed() -> None:
    gate = make_gate(server_config(limits=GateLimits(accepted_drain=5.0)))
    _, datagrams = first_flight(client_configuration())
    assert isinstance(gate.receive_datagram(datagrams[0], CLIENT_ADDR, 1.0), Accept)
    assert gate.draining_flows == 1 and gate.get_timer() == pytest.approx(6.0)
    gate.handle_timer(6.0)
    assert gate.next_event() == FlowClosed(CLIENT_ADDR, "accepted: drain over")
    assert gate.draining_flows == 0


def test_replayed_hello_from_another_address_goes_to_the_target() -> None:
    gate = make_gate()
    _, datagrams = first_flight(client_configuration())
    assert isinstance(gate.receive_datagram(datagrams[0], CLIENT_ADDR, 0.0), Accept)
    d = gate.receive_datagram(datagrams[0], ("198.51.100.7", 5555), 0.5)
    assert isinstance(d, Forward) and d.verdict is not None
    assert d.verdict.reason is Reason.REPLAY


def test_flood_of_flows_keeps_every_table_bounded() -> None:
    limits = GateLimits(max_pending_flows=64, max_fallback_flows=256, pending_timeout=0.5)
    gate = make_gate(server_config(limits=limits))
    rng = random.Random(7)
    hello = sealed_hello_bytes()
    first, _ = initial_datagrams(split(hello, [200]), dcid=DCID, scid=SCID)
    now = 0.0
    for i in range(5000):
        addr = ("10.9.0.1", 1024 + i)
        kind = i % 3
        data = first if kind == 0 else (rng.randbytes(1250) if kind == 1 else b"x")
        gate.receive_datagram(data, addr, now)
        now += 0.001
        if gate.get_timer() is not None and gate.get_timer() <= now:  # type: ignore[operator]
            gate.handle_timer(now)
        while gate.next_event() is not None:
            pass
        assert gate.pending_flows <= 64 and gate.fallback_flows <= 256
    assert gate.pending_flows + gate.fallback_flows + gate.draining_flows <= 64 + 256


def test_a_new_connection_from_a_reused_relay_address_is_judged_afresh() -> None:
    gate = make_gate()
    other = generate_key_pair(seeded_rng(4))
    _, rejected = first_flight(client_configuration(server_public_key=other.public_key))
    d = gate.receive_datagram(rejected[0], CLIENT_ADDR, 0.0)
    assert isinstance(d, Forward) and d.verdict is not None  # a relay flow now
    # Its own Initial again (a retransmission, same DCID): still the relay.
    again = gate.receive_datagram(rejected[0], CLIENT_ADDR, 0.1)
    assert isinstance(again, Forward) and again.verdict is None
    # A genuine REALITY client that happens to get the same source port: accepted (on the flow's
    # existing target socket: a new connection does not reset the old one's socket).
    _, genuine = first_flight(client_configuration(seed=21))
    d = gate.receive_datagram(genuine[0], CLIENT_ADDR, 0.2)
    assert isinstance(d, Accept) and not d.new_flow


def test_client_initials_to_the_targets_connection_id_stay_on_the_relay() -> None:
    gate = make_gate()
    d = gate.receive_datagram(b"junk", CLIENT_ADDR, 0.0)
    assert isinstance(d, Forward)
    target_scid = bytes(range(30, 38))
    # The target's Initial (long header; only its unprotected SCID is read).
    reply = bytes([0xC0]) + b"\x00\x00\x00\x01" + bytes([8]) + DCID + bytes([8]) + target_scid \
        + bytes(40)
    assert gate.receive_target_datagram(CLIENT_ADDR, reply, 0.1) is TargetAction.RELAY
    follow_up = initial_packet(crypto_frame(0, b"\x01"), dcid=target_scid, scid=SCID,
                               packet_number=1, pad_to=1200)
    d = gate.receive_datagram(follow_up, CLIENT_ADDR, 0.2)
    assert isinstance(d, Forward) and d.verdict is None and not d.new_flow


def test_a_flood_of_tiny_crypto_fragments_is_refused_after_the_cap() -> None:
    """Security finding 4 (audit e14): 1-byte CRYPTO frames in front of a far one made the range
    set quadratic (0.3 s of CPU per 15 KB); now the 65th fragment sends the flow to the target."""
    gate = make_gate()
    frames = crypto_frame(8150, b"s") + b"".join(crypto_frame(o, b"a") for o in range(2, 402, 2))
    datagram = initial_packet(frames, dcid=DCID, scid=SCID, packet_number=0, pad_to=1200)
    d = gate.receive_datagram(datagram, CLIENT_ADDR, 0.0)
    assert isinstance(d, Forward) and d.verdict is not None
    assert d.verdict.reason is Reason.TOO_FRAGMENTED
    assert gate.pending_flows == 0 and gate.is_fallback(CLIENT_ADDR)


def test_a_hello_in_64_fragments_is_still_accepted() -> None:
    hello = sealed_hello_bytes()
    pieces = [(o, hello[o:o + 4]) for o in range(0, 252, 4)] + [(252, hello[252:])]
    assert len(pieces) == 64
    frames = b"".join(crypto_frame(o, c) for o, c in reversed(pieces))
    datagram = initial_packet(frames, dcid=DCID, scid=SCID, packet_number=0, pad_to=1200)
    assert isinstance(make_gate().receive_datagram(datagram, CLIENT_ADDR, 0.0), Accept)


def _half_hello(dcid: bytes) -> bytes:
    """The first datagram of a ClientHello that needs a second one (it takes a pending slot)."""
    return initial_datagrams([(0, b"\x01\x00\x01\x00" + bytes(100))], dcid=dcid, scid=b"")[0]


def test_one_source_cannot_take_every_pending_slot() -> None:
    """Security finding 5 (audit e15): 1024 half-hellos from one address used to fill the pending
    table, and genuine clients were then relayed to the target (TOO_MANY_PENDING)."""
    gate = make_gate()
    decisions = [gate.receive_datagram(_half_hello(i.to_bytes(8, "big")), ("203.0.113.7", 10000 + i),
                                       0.0) for i in range(1024)]
    assert gate.pending_flows == 32
    assert all(isinstance(d, Pending) for d in decisions[:32])
    refused = decisions[32]
    assert isinstance(refused, Forward) and refused.verdict is not None
    assert refused.verdict.reason is Reason.TOO_MANY_PENDING_FROM_SOURCE
    # Another source still gets a slot, and a genuine single-datagram hello is accepted.
    assert isinstance(gate.receive_datagram(_half_hello(b"otherdcid"), ("192.0.2.50", 1), 0.1),
                      Pending)
    _, genuine = first_flight(client_configuration())
    assert isinstance(gate.receive_datagram(genuine[0], CLIENT_ADDR, 0.2), Accept)
    # Slots are given back when flows leave the pending table.
    gate.handle_timer(10.0)
    assert gate.pending_flows == 0
    assert isinstance(gate.receive_datagram(_half_hello(b"laterdcid"), ("203.0.113.7", 9), 10.0),
                      Pending)


def test_a_complete_single_datagram_hello_needs_no_pending_slot() -> None:
    """Security finding 5: the global limit used to be checked before the hello was parsed."""
    gate = make_gate(server_config(limits=GateLimits(max_pending_flows=4)))
    for i in range(4):
        gate.receive_datagram(_half_hello(bytes([i]) * 8), (f"198.51.100.{i}", 1000), 0.0)
    assert gate.pending_flows == 4
    full = gate.receive_datagram(_half_hello(b"fulldcid"), ("198.51.100.9", 1000), 0.0)
    assert isinstance(full, Forward) and full.verdict is not None
    assert full.verdict.reason is Reason.TOO_MANY_PENDING
    _, genuine = first_flight(client_configuration())
    assert isinstance(gate.receive_datagram(genuine[0], CLIENT_ADDR, 0.1), Accept)


def test_ipv6_sources_are_counted_per_64() -> None:
    gate = make_gate(server_config(limits=GateLimits(max_pending_per_source=1)))
    first = gate.receive_datagram(_half_hello(b"dcid0001"), ("2001:db8::1", 1, 0, 0), 0.0)
    same_64 = gate.receive_datagram(_half_hello(b"dcid0002"), ("2001:db8::ffff:2", 2, 0, 0), 0.0)
    other_64 = gate.receive_datagram(_half_hello(b"dcid0003"), ("2001:db8:0:1::1", 3, 0, 0), 0.0)
    mapped = gate.receive_datagram(_half_hello(b"dcid0004"), ("::ffff:192.0.2.1", 4, 0, 0), 0.0)
    plain = gate.receive_datagram(_half_hello(b"dcid0005"), ("192.0.2.1", 5), 0.0)
    assert [type(d) for d in (first, same_64, other_64, mapped, plain)] == \
        [Pending, Forward, Pending, Pending, Forward]


def test_target_replies_to_a_partial_hello_are_released_after_held_timeout() -> None:
    """Security finding 12 (audit e13): they used to be held until pending_timeout (2 s), a timing
    tell; now the flow is decided after held_timeout (100 ms) and they are released."""
    gate = make_gate()
    assert isinstance(gate.receive_datagram(_half_hello(DCID), CLIENT_ADDR, 0.0), Pending)
    assert gate.receive_target_datagram(CLIENT_ADDR, b"target ack", 0.02) is TargetAction.HOLD
    assert gate.get_timer() == pytest.approx(0.12)
    gate.handle_timer(0.1)
    assert gate.next_event() is None
    gate.handle_timer(gate.get_timer())  # type: ignore[arg-type]
    event = gate.next_event()
    assert isinstance(event, Decided) and event.verdict.reason is Reason.TIMEOUT
    assert event.release == (b"target ack",)
    assert gate.is_fallback(CLIENT_ADDR) and gate.pending_flows == 0
    assert gate.receive_target_datagram(CLIENT_ADDR, b"more", 0.13) is TargetAction.RELAY


def test_a_spoofed_short_initial_does_not_replace_a_fallback_flow() -> None:
    """Security finding 12 (audit e12): 14 spoofed bytes shaped like an Initial header used to
    replace a fallback client's flow and its target socket (new_flow=True)."""
    gate = make_gate()
    d = gate.receive_datagram(initial_packet(crypto_frame(0, b"\x01\x00\x00\x40" + bytes(64)),
                                             dcid=DCID, scid=SCID, packet_number=0, pad_to=1200),
                              CLIENT_ADDR, 0.0)
    assert isinstance(d, Forward) and d.verdict is not None
    spoof = b"\xc0\x00\x00\x00\x01\x08" + bytes(range(100, 108))
    d = gate.receive_datagram(spoof, CLIENT_ADDR, 2.0)
    assert isinstance(d, Forward) and not d.new_flow and d.verdict is None
    assert gate.is_fallback(CLIENT_ADDR)


def test_a_new_connection_on_a_relay_address_keeps_the_old_one_relayed() -> None:
    """Security finding 12: a full spoofed Initial is judged afresh, but on the same target socket,
    and the old connection's target datagrams are still relayed meanwhile."""
    gate = make_gate()
    gate.receive_datagram(b"junk", CLIENT_ADDR, 0.0)
    victim_cid = bytes(range(40, 48))
    to_victim = b"\x41" + victim_cid + bytes(30)  # a short-header datagram for the old connection
    assert gate.receive_target_datagram(CLIENT_ADDR, to_victim, 0.1) is TargetAction.RELAY
    spoof = initial_datagrams([(0, b"\x01\x00\x01\x00" + bytes(100))], dcid=bytes(range(60, 68)),
                              scid=bytes(range(70, 78)))[0]
    d = gate.receive_datagram(spoof, CLIENT_ADDR, 0.2)
    assert isinstance(d, Pending) and not d.new_flow
    assert gate.receive_target_datagram(CLIENT_ADDR, to_victim, 0.21) is TargetAction.RELAY
    to_new = b"\x41" + bytes(range(70, 78)) + bytes(30)
    assert gate.receive_target_datagram(CLIENT_ADDR, to_new, 0.22) is TargetAction.HOLD
    gate.handle_timer(5.0)
    assert isinstance(gate.next_event(), Decided) and gate.is_fallback(CLIENT_ADDR)
    d = gate.receive_datagram(b"junk again", CLIENT_ADDR, 5.1)
    assert isinstance(d, Forward) and not d.new_flow


def test_the_target_sink_gets_the_completing_datagram_before_verification(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Security finding 12 (audit e5): the completing datagram used to be mirrored only after
    verify_client_hello, whose cost depended on the SNI."""
    import quicreality.reality.gate as gate_module

    order: list[str] = []
    real_verify = gate_module.verify_client_hello

    def spy(*args: object) -> object:
        order.append("verify")
        return real_verify(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(gate_module, "verify_client_hello", spy)
    sent: list[tuple[bytes, bool]] = []
    gate = make_gate()
    gate.target_sink = lambda addr, data, new_flow: (order.append("mirror"),
                                                     sent.append((data, new_flow)))
    first, second = initial_datagrams(split(sealed_hello_bytes(), [200]), dcid=DCID, scid=SCID)
    a = gate.receive_datagram(first, CLIENT_ADDR, 0.0)
    b = gate.receive_datagram(second, CLIENT_ADDR, 0.01)
    assert isinstance(a, Pending) and a.sent and isinstance(b, Accept) and b.sent
    assert order == ["mirror", "mirror", "verify"]
    assert sent == [(first, True), (second, False)]
