"""The probe suite: what an active prober sends to a suspected REALITY listener, over raw UDP.

Each :class:`Probe` builds fresh datagrams (new connection IDs every time, so sending the same probe
to the listener and then to the target directly are two independent attempts). The test sends every
probe both ways and checks that the listener answers exactly like the target: only the target's
bytes come back, and silence where the target is silent.

Probes (issue 3): random bytes, a truncated Initial, an Initial whose CRYPTO data is not a
ClientHello, and a genuine REALITY first flight with one extension changed after sealing.
"""

from __future__ import annotations

import os
import random
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from quicreality.quic.connection import QuicConnection
from quicreality.quic.packet import QUIC_VERSION_1, pull_quic_header
from quicreality.reality.probe import (
    client_initial_crypto,
    crypto_frame,
    initial_datagrams,
    initial_packet,
)
from quicreality.tls import messages as m
from quicreality.wire.buffer import Buffer


@dataclass(frozen=True)
class Probe:
    """A named probe and the gate reason the listener must count for it."""

    name: str
    reason: str
    build: Callable[[Callable[[], object]], list[bytes]]


def _cids() -> tuple[bytes, bytes]:
    return os.urandom(8), os.urandom(8)


def random_long_header(_config: Callable[[], object]) -> list[bytes]:
    """1200 random bytes that start like a long header of an unknown version."""
    data = bytearray(random.Random(os.urandom(8)).randbytes(1200))
    data[0] |= 0xC0
    data[1:5] = b"\x1a\x2a\x3a\x4a"  # a reserved version pattern (RFC 9000 §15): not v1
    return [bytes(data)]


def random_small(_config: Callable[[], object]) -> list[bytes]:
    """50 random bytes."""
    return [os.urandom(50)]


def truncated_initial(config: Callable[[], object]) -> list[bytes]:
    """A genuine client Initial cut short: its Length runs past the datagram."""
    first = _first_flight(config)[0]
    return [first[: len(first) - 60]]


def not_a_client_hello(_config: Callable[[], object]) -> list[bytes]:
    """A valid Initial whose CRYPTO data is a (bogus) Certificate message, not a ClientHello."""
    dcid, scid = _cids()
    body = os.urandom(300)
    message = bytes([m.HandshakeType.CERTIFICATE]) + len(body).to_bytes(3, "big") + body
    return [initial_packet(crypto_frame(0, message), dcid=dcid, scid=scid, packet_number=0,
                           pad_to=1200)]


def tampered_extension(config: Callable[[], object]) -> list[bytes]:
    """A sealed REALITY ClientHello (right key, short ID, SNI, time) with two entries of its
    signature_algorithms extension swapped after sealing, re-sent in fresh Initials."""
    conn, first = _client(config)
    dcid = conn.original_destination_connection_id
    header = pull_quic_header(Buffer(data=first[0]), host_cid_length=None)
    chunks = [c for d in first for c in client_initial_crypto(d, dcid)]
    hello = bytearray(sum(len(c) for _, c in chunks))
    for offset, chunk in chunks:
        hello[offset:offset + len(chunk)] = chunk
    ch = m.pull_client_hello(Buffer(data=bytes(hello)))
    algs = ch.signature_algorithms or ()
    assert len(algs) >= 2
    old = b"".join(a.to_bytes(2, "big") for a in algs)
    swapped = algs[1].to_bytes(2, "big") + algs[0].to_bytes(2, "big") + old[4:]
    at = bytes(hello).index(old)
    hello[at:at + len(old)] = swapped
    m.pull_client_hello(Buffer(data=bytes(hello)))  # still a well-formed ClientHello
    return initial_datagrams([(0, bytes(hello))], dcid=dcid, scid=header.source_cid)


def _client(config: Callable[[], object]) -> tuple[QuicConnection, list[bytes]]:
    conn = QuicConnection(configuration=config())  # type: ignore[arg-type]
    conn.connect(("127.0.0.1", 9), time.monotonic())
    return conn, [d for d, _ in conn.datagrams_to_send(time.monotonic())]


def _first_flight(config: Callable[[], object]) -> list[bytes]:
    return _client(config)[1]


PROBES = [
    Probe("random long header", "NOT_QUIC_INITIAL", random_long_header),
    Probe("random small", "NOT_QUIC_INITIAL", random_small),
    Probe("truncated initial", "NOT_QUIC_INITIAL", truncated_initial),
    Probe("crypto not a ClientHello", "NOT_CLIENT_HELLO", not_a_client_hello),
    Probe("extension changed after sealing", "AEAD_OPEN_FAILED", tampered_extension),
]


def send_and_listen(datagrams: list[bytes], addr: tuple[str, int], *,
                    listen: float = 1.5) -> tuple[tuple[str, int], list[bytes]]:
    """Send ``datagrams`` from a fresh socket and collect what comes back for ``listen`` s."""
    got: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        for d in datagrams:
            sock.sendto(d, addr)
        deadline = time.monotonic() + listen
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if ready:
                got.append(sock.recv(65536))
        return sock.getsockname(), got


def shape(datagram: bytes) -> str:
    """A coarse description of a reply: Version Negotiation, Initial, other long header, short."""
    if not datagram:
        return "empty"
    if not datagram[0] & 0x80:
        return "short"
    version = int.from_bytes(datagram[1:5], "big")
    if version == 0:
        return "version-negotiation"
    if version == QUIC_VERSION_1 and (datagram[0] & 0x30) >> 4 == 0:
        return "initial"
    return f"long-{version:#x}"
