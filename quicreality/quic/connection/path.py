"""The network path of a connection and its anti-amplification budget (RFC 9000 §8.1).

The receive path credits bytes from the address we answer, the send path spends them; until the
peer's address is validated a server sends at most three times what it received. A path being
validated also owes a PATH_CHALLENGE (RFC 9000 §8.2.1): the send path writes it with
:meth:`NetworkPath.take_challenge`, and :class:`~.migration.PathManager` matches the response.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ..frames import PATH_CHALLENGE_DATA_SIZE

#: RFC 9000 §8.1 anti-amplification factor.
AMPLIFICATION_LIMIT_FACTOR: Final = 3
#: Outstanding challenges remembered per path (a lost one is replaced by a new one).
MAX_OUTSTANDING_CHALLENGES: Final = 8

#: The edge's address of the peer (an ``(host, port)`` tuple for UDP); opaque to the core, which
#: only compares it and hands it back with each datagram.
NetworkAddress = Any


def _no_rng(n: int) -> bytes:
    raise RuntimeError("NetworkPath.rng was not set (the connection sets it from its config)")


class NetworkPath:
    """The peer's address, the bytes exchanged with it, whether it is validated, and the
    PATH_CHALLENGE data owed or outstanding on it."""

    __slots__ = ("address", "bytes_received", "bytes_sent", "challenge_owed", "challenges",
                 "rng", "validated")

    def __init__(self, *, validated: bool, rng: Callable[[int], bytes] = _no_rng) -> None:
        self.address: NetworkAddress = None
        self.bytes_received = 0
        self.bytes_sent = 0
        self.validated = validated
        #: the send path owes a PATH_CHALLENGE on this path
        self.challenge_owed = False
        #: data of the challenges sent and not yet answered (RFC 9000 §8.2.3)
        self.challenges: list[bytes] = []
        #: the connection's randomness (challenge data must be unpredictable, §8.2.1)
        self.rng = rng

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

    def move_to(self, addr: NetworkAddress, bytes_received: int, *, validated: bool) -> None:
        """Start over on a new peer address: fresh counters, no challenge state."""
        self.address = addr
        self.bytes_received = bytes_received
        self.bytes_sent = 0
        self.validated = validated
        self.challenge_owed = False
        self.challenges.clear()

    def take_challenge(self) -> bytes:
        """Fresh PATH_CHALLENGE data for the packet being built (RFC 9000 §8.2.1)."""
        data = self.rng(PATH_CHALLENGE_DATA_SIZE)
        self.challenge_owed = False
        self.challenges.append(data)
        del self.challenges[:-MAX_OUTSTANDING_CHALLENGES]
        return data

    def on_challenge_delivery(self, delivered: bool, data: bytes) -> None:
        """Delivery callback of a PATH_CHALLENGE: a lost one is replaced by a new one while the
        path is still being validated (the frame itself is never resent, RFC 9000 §13.3)."""
        if not delivered and data in self.challenges:
            self.challenge_owed = True
