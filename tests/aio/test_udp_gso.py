"""UdpIO's GSO send path on loopback: long runs of full-sized datagrams are split so that each
sendmsg fits one UDP length, and GSO stays on (a run of 55 x 1200 bytes used to fail with EMSGSIZE
and switch GSO off for the socket's lifetime)."""

from __future__ import annotations

import socket

import pytest

from quicreality.aio.udp import UdpIO, open_udp_socket


def _drain(sock: socket.socket, want: int) -> list[bytes]:
    sock.settimeout(2.0)
    got: list[bytes] = []
    while len(got) < want:
        got.append(sock.recv(65536))
    return got


@pytest.mark.parametrize("count, size", [(120, 1200), (64, 1452), (3, 1200)])
def test_gso_runs_fit_one_udp_length_and_stay_on(count: int, size: int) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    rx.bind(("127.0.0.1", 0))
    tx = open_udp_socket("127.0.0.1", 0)
    try:
        io = UdpIO(tx, gso=True, gro=False)
        dest = rx.getsockname()
        datagrams = [(bytes([i % 256]) * size, dest) for i in range(count)]
        datagrams[-1] = (b"\xff" * (size // 2), dest)  # a short last one, as a flight ends
        assert io.send(datagrams) == sum(len(d) for d, _ in datagrams)
        assert io.gso, "GSO was switched off by an oversized run"
        got = _drain(rx, count)
        assert got == [d for d, _ in datagrams]  # each segment arrives as its own datagram, in order
    finally:
        rx.close()
        tx.close()
