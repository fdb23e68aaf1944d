"""A server's first flight cut to a given shape: datagram count, sizes and coalescing (sans-IO).

A REALITY listener answers an accepted client in place of the target, and a passive observer sees
the sizes and long-header types of the server's first datagrams. :class:`FlightShape` says what
the target's first flight looked like; :class:`FlightShaper` is the per-connection cursor the send
path consults (``QuicConfiguration.flight_shape``), one datagram at a time:

* the datagram holds only packets of the step's spaces (``spaces``, in order);
* an ``ack_only`` step (the early ACK-only Initial ngtcp2 sends) carries no CRYPTO;
* a space of the step that has nothing to send gets a PADDING-only packet (encrypted, so an
  observer sees a Handshake or 1-RTT packet of the same size);
* the last packet is filled with PADDING frames (RFC 9000 §19.1) up to ``size``;
* a step of 1200 bytes or more (a padded datagram of the target) is also a ceiling; a smaller one
  (an ACK, the target's 0.5-RTT data) is only a floor: what we have for its spaces is sent in it
  whole, even if that makes it larger, rather than split into more datagrams than the target's.

Padding frames rather than a padded certificate: PADDING needs no change to TLS, works for every
step (also the ACK-only Initial and the 1-RTT packet), and the sizes come out exact; a padded
certificate would only stretch the Handshake CRYPTO stream. Our content that does not fit a
padded step is sent after the plan, unshaped; once every step is sent, or the
connection's keys for a step's space are gone, the shaper is done and the send path is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .crypto import AEAD_TAG_SIZE

#: Packet spaces, as the send path numbers them (Initial, Handshake, Application).
SPACE_NAMES = ("initial", "handshake", "1rtt")
#: RFC 9000 §14.1: a datagram with an ack-eliciting Initial is at least this large; a target's
#: datagram this large is padded (its size is the target's choice, not its content's).
PADDED_SIZE = 1200
#: A shaped first flight may copy datagrams up to this size (quic-go pads to 1252) before the path
#: is known; never beyond the peer's max_udp_payload_size. 1452 = a 1500-byte MTU less IPv6/UDP.
MAX_SHAPED_DATAGRAM_SIZE = 1452
#: PADDING bytes of a packet that has nothing else (also the HP sample minimum, RFC 9001 §5.4.2).
_EMPTY_PAYLOAD = 4


@dataclass(frozen=True, slots=True)
class ShapedDatagram:
    """One datagram of the shape: its UDP payload ``size``, the packet spaces coalesced in it."""

    size: int
    spaces: tuple[int, ...]
    ack_only: bool = False

    def max_size(self, default: int, peer_limit: int | None) -> int:
        """The datagram size limit for this step: exact when padded, else the usual ``default``
        (a floor: our content for a small step is never split)."""
        want = self.size if self.size >= PADDED_SIZE else default
        return min(want, peer_limit or MAX_SHAPED_DATAGRAM_SIZE, MAX_SHAPED_DATAGRAM_SIZE)

    def acks_only(self, space_id: int) -> bool:
        """Whether this step's packet of ``space_id`` carries just an ACK (no CRYPTO): an ACK-only
        Initial of the target, or an Initial in a datagram under 1200 bytes (RFC 9000 §14.1)."""
        return space_id == 0 and (self.ack_only or self.size < PADDED_SIZE)

    def describe(self) -> str:
        """``52:initial(ack)``-style text for logs and docs."""
        kinds = "+".join(SPACE_NAMES[s] for s in self.spaces)
        return f"{self.size}:{kinds}{'(ack)' if self.ack_only else ''}"


@dataclass(frozen=True, slots=True)
class FlightShape:
    """The datagrams of a server's first flight, in order (see the module docstring)."""

    datagrams: tuple[ShapedDatagram, ...]

    def describe(self) -> str:
        """The steps, comma-separated."""
        return ", ".join(d.describe() for d in self.datagrams)


class FlightShaper:
    """The per-connection cursor over a :class:`FlightShape` (not shared between connections)."""

    def __init__(self, shape: FlightShape) -> None:
        self.shape = shape
        self._index = 0
        #: sizes of the datagrams sent under the shape (for tests and the qlog)
        self.sent: list[int] = []

    def step(self) -> ShapedDatagram | None:
        """The next datagram to build, or None when the shape is used up."""
        steps = self.shape.datagrams
        return steps[self._index] if self._index < len(steps) else None

    def advance(self, size: int) -> None:
        """The current step's datagram was built with ``size`` bytes."""
        self.sent.append(size)
        self._index += 1

    def finish(self) -> None:
        """Stop shaping (a step can no longer be built)."""
        self._index = len(self.shape.datagrams)


class Finishable(Protocol):
    """A shaper that can be told to stop (:meth:`FlightShaper.finish`)."""

    def finish(self) -> None:
        """Stop shaping."""


def complete_datagram(drafts: list[Any], used: int, step: ShapedDatagram, shaper: Finishable,
                      new_draft: Callable[[int, int], Any]) -> int:
    """Give every space of ``step`` a packet (PADDING-only if it has nothing) and pad the last one
    to ``step.size``; return the datagram's new size.

    ``drafts`` are the send path's packets being filled (``space_id``, ``header_size``, ``buf``,
    ``in_flight``), sorted in place; ``new_draft(space_id, capacity)`` makes an empty one, or
    None when the space has no keys: then the shape no longer fits and the shaper stops.
    """
    have = {d.space_id for d in drafts}
    for space_id in step.spaces:
        if space_id in have:
            continue
        draft = new_draft(space_id, step.size)
        if draft is None:
            shaper.finish()
            return used
        draft.buf.push_bytes(bytes(_EMPTY_PAYLOAD))
        draft.in_flight = True  # RFC 9002 §2: PADDING-only packets count in flight
        drafts.append(draft)
        used += draft.header_size + _EMPTY_PAYLOAD + AEAD_TAG_SIZE
    drafts.sort(key=lambda d: d.space_id)
    last = drafts[-1]
    deficit = min(step.size - used, last.buf.capacity - last.buf.tell())
    if deficit > 0:
        last.buf.push_bytes(bytes(deficit))
        used += deficit
    return used


class FlightShaping(Protocol):
    """What the send path asks of a first-flight shaper
    (:class:`FlightShaper`), once per datagram until it is done."""

    @property
    def sent(self) -> list[int]:
        """Sizes of the datagrams built under the shape so far."""

    def step(self) -> ShapedDatagram | None:
        """The next datagram to build, or None once the shape is used up."""

    def advance(self, size: int) -> None:
        """The current step's datagram was built with ``size`` bytes."""

    def finish(self) -> None:
        """Stop shaping."""
