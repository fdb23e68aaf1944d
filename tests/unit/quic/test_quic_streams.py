"""QuicStream: send ranges and retransmission, receive reassembly, flow control, final size."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicreality.quic.errors import QuicConnectionError, QuicErrorCode
from quicreality.quic.streams import QuicStream, StreamRecvState, StreamSendState


def stream(**kw: int) -> QuicStream:
    return QuicStream(0, can_send=True, can_receive=True,
                      local_max_stream_data=kw.get("local", 1 << 20),
                      peer_max_stream_data=kw.get("peer", 1 << 20))


def drain(s: QuicStream, max_size: int = 100) -> list[tuple[int, bytes, bool]]:
    out = []
    while (frame := s.get_frame(max_size, 1 << 62)) is not None:
        out.append(frame)
    return out


def test_send_splits_by_size_and_sets_fin_on_last_frame() -> None:
    s = stream()
    s.write(b"a" * 250, end_stream=True)
    frames = drain(s)
    assert [(o, len(d), f) for o, d, f in frames] == [(0, 100, False), (100, 100, False), (200, 50, True)]
    assert s.send_state == StreamSendState.DATA_SENT


def test_lost_ranges_are_resent_minus_what_was_acked_since() -> None:
    s = stream()
    s.write(bytes(range(256)) * 4, end_stream=False)
    f0, f1, _f2 = drain(s, 400)[:3]
    s.on_frame_acked(f1[0], len(f1[1]), False)
    s.on_frame_lost(0, 1024, False)  # a coarse loss report covering everything
    again = drain(s, 2000)
    assert [(o, len(d)) for o, d, _ in again] == [(0, 400), (800, 224)]
    assert again[0][1] == f0[1]


def test_a_range_lost_then_acknowledged_is_not_resent() -> None:
    s = stream()
    s.write(b"x" * 300, end_stream=True)
    f0, f1, f2 = drain(s)
    for o, d, f in (f0, f1, f2):
        s.on_frame_lost(o, len(d), f)  # all declared lost ...
    s.on_frame_acked(f1[0], len(f1[1]), f1[2])  # ... the middle one (and f2's FIN) acked late
    s.on_frame_acked(f2[0], len(f2[1]), f2[2])
    assert [(o, len(d), f) for o, d, f in drain(s)] == [(0, 100, False)]
    assert not s.has_data_to_send()
    s.on_frame_acked(0, 100, False)
    assert s.send_state == StreamSendState.DATA_RECVD


def test_send_respects_max_offset() -> None:
    s = stream()
    s.write(b"x" * 1000, end_stream=False)
    frame = s.get_frame(5000, 300)
    assert frame is not None and frame[0] == 0 and len(frame[1]) == 300
    assert s.get_frame(5000, 300) is None


def test_fin_only_frame_after_data_was_sent() -> None:
    s = stream()
    s.write(b"abc", end_stream=False)
    drain(s)
    s.write(b"", end_stream=True)
    assert drain(s) == [(3, b"", True)]


def test_fully_acked_stream_reaches_data_recvd_and_frees_its_buffer() -> None:
    s = stream()
    s.write(b"z" * 200_000, end_stream=True)
    for off, data, fin in drain(s, 1200):
        s.on_frame_acked(off, len(data), fin)
    assert s.send_state == StreamSendState.DATA_RECVD and s.send_finished
    assert s.buffered == 0


def test_receive_reorders_and_deduplicates() -> None:
    s = stream()
    s.handle_frame(5, b"fghij", False)
    assert not s.has_ready_data()
    s.handle_frame(0, b"abcde", False)
    s.handle_frame(3, b"defgh", False)  # overlapping duplicate
    s.handle_frame(10, b"k", True)
    data, fin = s.pull_ready()
    assert data == b"abcdefghijk" and fin
    assert s.recv_state == StreamRecvState.DATA_READ


def test_receive_flow_control_violation() -> None:
    s = stream(local=100)
    with pytest.raises(QuicConnectionError) as exc:
        s.handle_frame(90, b"x" * 20, False)
    assert exc.value.error_code == QuicErrorCode.FLOW_CONTROL_ERROR


@pytest.mark.parametrize(("first", "second"), [((0, b"abc", True), (0, b"abcd", False)),
                                               ((0, b"abc", True), (0, b"ab", True)),
                                               ((0, b"abcdef", False), (0, b"abc", True))])
def test_final_size_violations(first: tuple[int, bytes, bool], second: tuple[int, bytes, bool]) -> None:
    s = stream()
    s.handle_frame(*first)
    with pytest.raises(QuicConnectionError) as exc:
        s.handle_frame(*second)
    assert exc.value.error_code == QuicErrorCode.FINAL_SIZE_ERROR


def test_window_update_after_half_is_consumed() -> None:
    s = stream(local=1000)
    s.handle_frame(0, b"x" * 400, False)
    s.pull_ready()
    assert not s.maybe_update_max_stream_data()
    s.handle_frame(400, b"x" * 200, False)
    s.pull_ready()
    assert s.maybe_update_max_stream_data() and s.local_max_stream_data == 1600


def test_reset_abandons_pending_data() -> None:
    s = stream()
    s.write(b"data" * 100, end_stream=False)
    s.reset(7)
    assert s.reset_pending and s.get_frame(1000, 1 << 62) is None
    s.on_frame_lost(0, 100, False)
    assert not s.has_data_to_send()


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=3000), st.integers(1, 400), st.integers(0, 2**32),
       st.floats(0, 0.5))
def test_any_chunking_and_order_reassembles(payload: bytes, chunk: int, seed: int,
                                            dup: float) -> None:
    rng = random.Random(seed)
    pieces = [(i, payload[i : i + chunk]) for i in range(0, len(payload), chunk)] or [(0, b"")]
    pieces += [p for p in pieces if rng.random() < dup]
    rng.shuffle(pieces)
    s = stream()
    out = bytearray()
    fin_seen = False
    for off, data in pieces:
        s.handle_frame(off, data, off + len(data) == len(payload))
        if s.has_ready_data():
            got, fin = s.pull_ready()
            out += got
            fin_seen = fin_seen or fin
    assert bytes(out) == payload and fin_seen


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 20_000), st.integers(50, 1500), st.integers(0, 2**32))
def test_send_side_delivers_everything_despite_losses(size: int, mtu: int, seed: int) -> None:
    """Random loss/ack of every frame until all is acked: the receiver gets exactly the bytes."""
    rng = random.Random(seed)
    data = bytes(rng.getrandbits(8) for _ in range(size))
    tx, rx = stream(), stream()
    tx.write(data, end_stream=True)
    for _ in range(10_000):
        frame = tx.get_frame(mtu, 1 << 62)
        if frame is None:
            if tx.send_finished:
                break
            continue
        off, chunk, fin = frame
        if rng.random() < 0.3:
            tx.on_frame_lost(off, len(chunk), fin)
        else:
            rx.handle_frame(off, chunk, fin)
            tx.on_frame_acked(off, len(chunk), fin)
    received, fin = rx.pull_ready()
    assert received == data and fin and tx.send_finished


# ----------------------------------------------- finding 6: reassembly bounds (security issue)


def test_overlapping_frames_keep_the_first_bytes_received() -> None:
    """RFC 9000 §2.2 lets a receiver keep either copy; we keep the first, everywhere, so what is
    delivered never depends on how a peer overlaps its frames."""
    s = stream()
    s.handle_frame(5, b"AAAAA", False)
    s.handle_frame(3, b"bbbbbbbbbb", False)  # covers 3..12: only 3..4 and 10..12 are new
    s.handle_frame(0, b"ccccc", False)  # covers 0..4: only 0..2 are new
    data, _ = s.pull_ready()
    assert data == b"cccbbAAAAAbbb"


def test_an_empty_frame_beyond_the_delivered_offset_is_accepted() -> None:
    """An empty STREAM/CRYPTO frame past a gap carries nothing to buffer (found by f_conn.py)."""
    s = stream()
    s.handle_frame(10, b"", False)
    s.handle_frame(5, b"fghij", False)
    s.handle_frame(20, b"", False)
    s.handle_frame(0, b"abcde", False)
    assert s.pull_ready() == (b"abcdefghij", False)


def test_overlapping_out_of_order_frames_buffer_no_more_than_the_window() -> None:
    """60 000 overlapping 1000-byte chunks in a 64 KiB window once took 60 MB (every chunk kept)."""
    import tracemalloc

    s = stream(local=65536)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for off in range(1, 20_001):
            s.handle_frame(off, bytes([off & 0xFF]) * 1000, False)
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 200_000, f"{grown} bytes held for a 64 KiB window"
    assert not s.has_ready_data()
    s.handle_frame(0, b"0", False)
    data, _ = s.pull_ready()
    assert len(data) == 20_000 + 1000 and data[1:1001] == bytes([1]) * 1000


def test_in_order_frames_stay_cheap_while_many_ranges_wait_beyond_a_gap() -> None:
    """Every in-order frame used to re-sort all parked chunks (O(n) each, O(n^2) in all)."""
    import time

    n = 12_000
    s = stream(local=8 << 20)
    for off in range(100_000, 100_000 + 256 * n, 256):
        s.handle_frame(off, b"y", False)
    start = time.process_time()
    for off in range(n):
        s.handle_frame(off, b"z", False)
    spent = time.process_time() - start
    assert spent < 0.3, f"{n} in-order frames took {spent:.2f} s of CPU"
    assert s.pull_ready()[0] == b"z" * n


def test_a_fragmented_receive_buffer_is_a_flow_control_error() -> None:
    """One-byte pieces with holes between them: each range costs bookkeeping beyond its byte, so
    their number is bounded in proportion to the buffer (RFC 9000 §4.1 spirit, §21.9)."""
    s = stream(local=65536)
    with pytest.raises(QuicConnectionError) as exc:
        for off in range(2, 65536, 2):
            s.handle_frame(off, b"x", False)
    assert exc.value.error_code == QuicErrorCode.FLOW_CONTROL_ERROR
    assert s.recv_buffered <= 65536


def test_a_fragmented_crypto_buffer_is_crypto_buffer_exceeded() -> None:
    s = QuicStream(-1, can_send=True, can_receive=True, local_max_stream_data=1 << 62,
                   peer_max_stream_data=1 << 62, crypto=True)
    with pytest.raises(QuicConnectionError) as exc:
        for off in range(2, 65536, 2):
            s.handle_frame(off, b"x", False)
    assert exc.value.error_code == QuicErrorCode.CRYPTO_BUFFER_EXCEEDED
    assert exc.value.frame_type == 0x06


def test_ordinary_loss_patterns_stay_within_the_range_bound() -> None:
    """A full 4 MiB window of 1200-byte frames with every third one lost is accepted."""
    s = stream(local=4 << 20)
    size = 1200
    offsets = range(0, (4 << 20) - size, size)
    lost = [o for i, o in enumerate(offsets) if i % 3 == 0]
    for i, off in enumerate(offsets):
        if i % 3:
            s.handle_frame(off, bytes(size), False)
    for off in lost:
        s.handle_frame(off, bytes(size), False)
    assert len(s.pull_ready()[0]) == len(offsets) * size
