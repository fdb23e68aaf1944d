"""The profile budget's stage attribution of py-spy raw stacks."""

from __future__ import annotations

from collections import Counter

from quicreality.bench.profile import IDLE, START_UP, Side, parse_raw, stage_of

RAW = "\n".join([
    "<module> (quicreality/__main__.py:5);Driver._on_readable (quicreality/aio/driver.py:155);"
    "QuicConnection.receive_datagram (quicreality/quic/connection/core.py:256);"
    "CryptoPair.decrypt_packet (quicreality/quic/crypto.py:448) 30",
    "<module> (quicreality/__main__.py:5);Driver._flush (quicreality/aio/driver.py:180);"
    "UdpIO.send (quicreality/aio/udp.py:135) 10",
    "<module> (quicreality/__main__.py:5);_find_and_load (<frozen importlib._bootstrap>:1);"
    "<module> (quicreality/tls/x.py:3) 50",
    "<module> (quicreality/__main__.py:5);BaseEventLoop.run_forever (asyncio/base_events.py:607);"
    "EpollSelector.select (selectors.py:468) 40",
    "garbage line without a count",
])


def test_innermost_matching_frame_names_the_stage() -> None:
    stack = [("PacketAssembler._build_datagram", "quicreality/quic/connection/assembler.py"),
             ("CryptoContext.encrypt_packet", "quicreality/quic/crypto.py"),
             ("Buffer.push_bytes", "quicreality/wire/buffer.py")]
    assert stage_of(stack) == "AEAD encrypt + header protect"
    assert stage_of(stack[:1]) == "packet build (frames, header)"
    assert stage_of([("main", "elsewhere.py")]) == "other"


def test_parse_raw_counts_by_stage_and_budget_leaves_out_start_up_and_idle() -> None:
    counts = parse_raw(RAW)
    assert counts == Counter({"AEAD decrypt": 30, "sendmsg / GSO": 10, START_UP: 50, IDLE: 40})
    rows = Side("x", cpu_s=1.0, stages=counts).budget(datagrams=1000)
    assert [r[0] for r in rows] == ["AEAD decrypt", "sendmsg / GSO"]
    # 1 s over 1000 datagrams = 1000 µs each, split 3:1 between the two working stages.
    assert rows[0][1:] == (0.75, 750.0)
    assert rows[1][1:] == (0.25, 250.0)
