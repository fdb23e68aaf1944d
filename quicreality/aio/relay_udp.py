"""The relay's UDP sockets: the client's local listeners and flows, the server's destination flows.

Each side reads its non-blocking UDP sockets from ``loop.add_reader`` in batches (asyncio's
datagram protocol costs ~19 µs per datagram here, see the performance notes) and hands the
payloads to its link, which frames them into QUIC DATAGRAMs (:mod:`quicreality.relay.protocol`).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from ..quic.errors import LocalProtocolError
from ..relay.protocol import (
    Destination,
    StatusAnswer,
    StatusReader,
    encode_datagram,
    flow_id_of_stream,
)

if TYPE_CHECKING:
    from .relay_client import ClientLink, Forward, RelayClient
    from .relay_server import ServerLink

#: Largest UDP payload read from a socket.
UDP_READ_SIZE = 65535


def queue_udp_datagram(conn: Any, flow_id: int, payload: bytes, *, queue_limit: int,
                       max_datagram: int, metrics: Any) -> bool:
    """Frame one UDP payload into a QUIC DATAGRAM on ``conn``; count drops by cause.

    Returns True when queued. Drops: the connection's DATAGRAM queue is full, or the frame does
    not fit a packet (DATAGRAM frames cannot be split, RFC 9221 §5).
    """
    if conn.datagrams_pending() >= queue_limit:
        metrics.udp_dropped("queue_full")
        return False
    datagram = encode_datagram(flow_id, payload)
    if len(datagram) > max_datagram:
        metrics.udp_dropped("too_large")
        return False
    try:
        conn.send_datagram_frame(datagram)
    except LocalProtocolError:
        metrics.udp_dropped("too_large")
        return False
    return True


class UdpListener:
    """A local UDP socket; each sender address is one flow."""

    def __init__(self, client: RelayClient, forward: Forward, sock: socket.socket) -> None:
        self.client = client
        self.forward = forward
        self.sock = sock
        client.loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        recvfrom = self.sock.recvfrom
        for _ in range(64):
            try:
                data, addr = recvfrom(UDP_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue
            self.client.udp_datagram(self, data, addr)

    def send(self, payload: bytes, addr: Any) -> None:
        """Send a datagram to a local sender."""
        try:
            self.sock.sendto(payload, addr)
        except OSError:
            self.client.side_metrics.udp_dropped("local_send_error")

    def close(self) -> None:
        """Stop reading and close the socket."""
        try:
            self.client.loop.remove_reader(self.sock.fileno())
        except (ValueError, OSError):
            pass
        self.sock.close()


class ClientUdpFlow:
    """One local UDP sender relayed to the forward's destination."""

    def __init__(self, listener: UdpListener, addr: Any, link: ClientLink, stream_id: int) -> None:
        self.listener = listener
        self.addr = addr
        self.link = link
        self.stream_id = stream_id
        self.flow_id = flow_id_of_stream(stream_id)
        self.status: StatusAnswer | None = None
        self.queue: list[bytes] = []
        self._reader = StatusReader()

    @property
    def key(self) -> tuple[int, Any]:
        """The flow table key."""
        return (id(self.listener), self.addr)


class ServerUdpFlow:
    """One relayed UDP flow: a connected UDP socket towards the destination."""

    def __init__(self, link: ServerLink, stream_id: int, destination: Destination,
                 sock: socket.socket) -> None:
        self.link = link
        self.stream_id = stream_id
        self.flow_id = flow_id_of_stream(stream_id)
        self.destination = destination
        self.sock = sock
        link.loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        recv = self.sock.recv
        link = self.link
        got = False
        for _ in range(64):
            try:
                data = recv(UDP_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. ICMP port unreachable on a connected socket
                link.metrics.udp_dropped("destination_error")
                continue
            got = True
            link.send_udp(self, data)
        if got:
            link.flows.touch(self.flow_id, link.loop.time())
            link.wake()

    def send(self, payload: bytes) -> None:
        """Send a datagram to the destination."""
        try:
            self.sock.send(payload)
        except (BlockingIOError, InterruptedError):
            self.link.metrics.udp_dropped("destination_busy")
        except OSError:
            self.link.metrics.udp_dropped("destination_error")

    def close(self) -> None:
        """Stop reading and close the socket."""
        try:
            self.link.loop.remove_reader(self.sock.fileno())
        except (ValueError, OSError):
            pass
        self.sock.close()
