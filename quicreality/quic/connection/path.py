"""The network path of a connection and its anti-amplification budget (RFC 9000 §8.1).

The receive path credits bytes from the address we answer, the send path spends them; until the
peer's address is validated a server sends at most three times what it received.
"""

from __future__ import annotations

from typing import Any

#: RFC 9000 §8.1 anti-amplification factor.
AMPLIFICATION_LIMIT_FACTOR = 3

#: The edge's address of the peer (an ``(host, port)`` tuple for UDP); opaque to the core, which
#: only compares it and hands it back with each datagram.
NetworkAddress = Any


class NetworkPath:
    """The peer's address, the bytes exchanged with it and whether it is validated."""

    __slots__ = ("address", "bytes_received", "bytes_sent", "validated")

    def __init__(self, *, validated: bool) -> None:
        self.address: NetworkAddress = None
        self.bytes_received = 0
        self.bytes_sent = 0
        self.validated = validated

    def on_datagram_received(self, size: int, addr: NetworkAddress) -> None:
        """Credit ``size`` bytes if they came from the address we answer (the first one seen)."""
        if self.address is None:
            self.address = addr
        if addr == self.address:
            self.bytes_received += size

    def send_budget(self) -> int | None:
        """Bytes we may still send before validation (RFC 9000 §8.1), or None: unlimited."""
        if self.validated:
            return None
        return AMPLIFICATION_LIMIT_FACTOR * self.bytes_received - self.bytes_sent
