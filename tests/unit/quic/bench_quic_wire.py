"""Micro-benchmark of the per-packet wire work (not collected by pytest).

Run: ``python tests/unit/quic/bench_quic_wire.py``. Prints the best-of-5 ns per operation for a 1200-byte
1-RTT packet: protect, unprotect (CryptoPair, so including the key-phase check), header parse, and the hot
frame parsers.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

from quicreality.quic.crypto import CryptoPair
from quicreality.quic.frames import (
    pull_ack_frame,
    pull_stream_frame,
    push_ack_frame,
    push_stream_frame_header,
)
from quicreality.quic.packet import pull_quic_header, push_short_header
from quicreality.tls.hkdf import CipherSuite
from quicreality.wire.buffer import Buffer
from quicreality.wire.rangeset import RangeSet


def best_ns(fn: Callable[[], object], number: int = 100_000) -> float:
    """Best of 5 runs, ns per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e9


def main() -> None:
    """Print the measurements."""
    dcid = bytes(range(8))
    for suite, secret_len in (
        (CipherSuite.AES_128_GCM_SHA256, 32),
        (CipherSuite.AES_256_GCM_SHA384, 48),
        (CipherSuite.CHACHA20_POLY1305_SHA256, 32),
    ):
        sender, receiver = CryptoPair(), CryptoPair()
        for pair in (sender, receiver):
            pair.send.setup(suite, b"k" * secret_len, 1)
            pair.recv.setup(suite, b"k" * secret_len, 1)
        buf = Buffer(capacity=32)
        push_short_header(buf, destination_cid=dcid, packet_number=1000, packet_number_length=2)
        header = buf.data
        payload = bytes(1200 - len(header) - 16)
        packet = sender.encrypt_packet(header, payload, 1000)
        assert len(packet) == 1200
        enc = best_ns(lambda: sender.encrypt_packet(header, payload, 1000))  # noqa: B023
        dec = best_ns(lambda: receiver.decrypt_packet(packet, 9, 1000))  # noqa: B023
        print(
            f"{suite.name:26s} encrypt {enc:6.0f} ns   decrypt {dec:6.0f} ns   (1200-byte packet)"
        )

    print(
        f"pull_quic_header (short)   {best_ns(lambda: pull_quic_header(Buffer(data=packet), 8)):6.0f} ns"
    )
    ack = Buffer(capacity=64)
    push_ack_frame(ack, RangeSet([range(100), range(102, 200)]), 25)
    ack_body = ack.data[1:]
    print(
        f"pull_ack_frame (2 ranges)  {best_ns(lambda: pull_ack_frame(Buffer(data=ack_body), False)):6.0f} ns"
    )
    stream = Buffer(capacity=1200)
    push_stream_frame_header(stream, 4, 1 << 20, 1100, False)
    stream.push_bytes(bytes(1100))
    stream_body = stream.data[1:]
    frame_type = stream.data[0]
    print(
        "pull_stream_frame (1100 B) "
        f"{best_ns(lambda: pull_stream_frame(Buffer(data=stream_body), frame_type)):6.0f} ns"
    )


if __name__ == "__main__":
    main()
