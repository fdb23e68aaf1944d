"""The relay's UDP sockets: the client's local listeners and the server's destination flows.

Each reads its non-blocking socket from ``loop.add_reader`` in batches (asyncio's datagram
protocol costs ~19 µs per datagram here, see the performance notes) and hands the payloads to a
callback; the sessions frame them into QUIC DATAGRAMs (:mod:`quicreality.relay.protocol`).
Neither knows who owns it: errors are reported as drop reasons through ``on_drop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Protocol

from ..relay.actions import SockAddr
from ..relay.protocol import StatusAnswer

#: Largest UDP payload read from a socket.
UDP_READ_SIZE = 65535
#: Datagrams read per wake-up.
UDP_READ_BATCH = 64


def _remove_reader(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    with contextlib.suppress(ValueError, OSError):
        loop.remove_reader(sock.fileno())


class UdpListener:
    """A local UDP socket of the client; each sender address is one flow.

    Args:
        loop: the event loop.
        sock: a bound non-blocking UDP socket.
        on_datagram: ``(payload, sender address)`` for every datagram read.
        on_drop: a drop reason (``local_send_error``).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 on_datagram: Callable[[bytes, SockAddr], None],
                 on_drop: Callable[[str], None]) -> None:
        self.loop = loop
        self.sock = sock
        self._on_datagram = on_datagram
        self._on_drop = on_drop
        loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        recvfrom = self.sock.recvfrom
        on_datagram = self._on_datagram
        for _ in range(UDP_READ_BATCH):
            try:
                data, addr = recvfrom(UDP_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue
            on_datagram(data, addr)

    def send(self, payload: bytes, addr: SockAddr) -> None:
        """Send a datagram to a local sender."""
        try:
            self.sock.sendto(payload, addr)
        except OSError:
            self._on_drop("local_send_error")

    def flow_answered(self, addr: SockAddr, answer: StatusAnswer) -> None:
        """Local flows are never bridged: nothing to do."""

    def flow_ended(self, addr: SockAddr, reason: str) -> None:
        """Local flows are never bridged: nothing to do."""

    def close(self) -> None:
        """Stop reading and close the socket."""
        _remove_reader(self.loop, self.sock)
        self.sock.close()


class UdpRoute(Protocol):
    """Where a client connection sends what a route's flows receive: a local
    :class:`UdpListener`, or a middle relay's bridged leg
    (:class:`~quicreality.aio.relay_upstream.UpstreamUdpLeg`)."""

    def send(self, payload: bytes, addr: SockAddr) -> None:
        """A datagram for the sender at ``addr``."""

    def flow_answered(self, addr: SockAddr, answer: StatusAnswer) -> None:
        """A bridged flow's status answer."""

    def flow_ended(self, addr: SockAddr, reason: str) -> None:
        """A bridged flow is gone."""

    def close(self) -> None:
        """The route is closed."""


class UdpFlowSocket:
    """One server flow's connected UDP socket towards the destination.

    Args:
        loop: the event loop.
        sock: a connected non-blocking UDP socket.
        on_datagrams: the payloads of one read batch (never empty).
        on_drop: a drop reason (``destination_error``, ``destination_busy``).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 on_datagrams: Callable[[list[bytes]], None],
                 on_drop: Callable[[str], None]) -> None:
        self.loop = loop
        self.sock = sock
        self._on_datagrams = on_datagrams
        self._on_drop = on_drop
        loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        recv = self.sock.recv
        got: list[bytes] = []
        for _ in range(UDP_READ_BATCH):
            try:
                got.append(recv(UDP_READ_SIZE))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. ICMP port unreachable on a connected socket
                self._on_drop("destination_error")
        if got:
            self._on_datagrams(got)

    def send(self, payload: bytes) -> None:
        """Send a datagram to the destination."""
        try:
            self.sock.send(payload)
        except (BlockingIOError, InterruptedError):
            self._on_drop("destination_busy")
        except OSError:
            self._on_drop("destination_error")

    def close(self) -> None:
        """Stop reading and close the socket."""
        _remove_reader(self.loop, self.sock)
        self.sock.close()
