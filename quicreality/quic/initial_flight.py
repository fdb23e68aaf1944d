"""The seam for the client's first Initial flight (RFC 9000 §14.1, §17.2.2).

The assembler builds the client's first flight (the datagrams carrying the ClientHello, before
anything was received or retransmitted) through one call, :meth:`InitialLayout.first_flight`,
of the layout object in ``QuicConfiguration.initial_layout``. Retransmissions and everything after
the first flight take the normal path. :class:`DefaultInitialLayout` is today's behaviour: one
CRYPTO frame per packet, as much of the hello as fits, padded to 1200 bytes. A camouflage layout
(a Chrome-like split of the hello into several CRYPTO frames with PING and PADDING, 1250-byte
datagrams, a first packet number above 0) implements :class:`InitialLayout` against
:class:`FirstFlightBuilder` without touching the rest of the send path.
"""

from __future__ import annotations

from typing import Protocol

from .packet import MIN_INITIAL_DATAGRAM_SIZE


class FirstFlightBuilder(Protocol):
    """What the assembler offers a layout while it builds the first flight."""

    @property
    def client_hello(self) -> bytes:
        """The CRYPTO bytes of the first Initial (the ClientHello)."""
        ...

    def regular_datagram(self, datagram_size: int, now: float) -> bytes | None:
        """Build the next datagram the normal way, padded to ``datagram_size``; None if nothing."""
        ...


class InitialLayout(Protocol):
    """A policy for the layout of the client's first Initial flight."""

    def first_flight(self, builder: FirstFlightBuilder, now: float) -> bytes | None:
        """Return the next datagram of the first flight, or None when there is nothing more."""
        ...


class DefaultInitialLayout:
    """Today's layout: CRYPTO as it fits, datagrams padded to 1200 bytes (RFC 9000 §14.1)."""

    __slots__ = ("datagram_size",)

    def __init__(self, datagram_size: int = MIN_INITIAL_DATAGRAM_SIZE) -> None:
        if datagram_size < MIN_INITIAL_DATAGRAM_SIZE:
            raise ValueError("a client Initial datagram is at least 1200 bytes (RFC 9000 §14.1)")
        self.datagram_size = datagram_size

    def first_flight(self, builder: FirstFlightBuilder, now: float) -> bytes | None:
        """One regular datagram of :attr:`datagram_size` bytes."""
        return builder.regular_datagram(self.datagram_size, now)


#: The layout a configuration uses unless told otherwise.
DEFAULT_INITIAL_LAYOUT = DefaultInitialLayout()
