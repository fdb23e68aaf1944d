"""The connection's lifecycle (RFC 9000 §10) and the one table of the transitions it may take.

Every state change goes through :meth:`ConnectionLifecycle.advance`, which refuses what the table
does not list (a handshake that completes while we close does not reopen the connection; nothing
leaves TERMINATED) and returns the transition taken, so the caller logs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final


class ConnectionState(IntEnum):
    """Lifecycle (RFC 9000 §10)."""

    FIRSTFLIGHT = 0
    CONNECTED = 1
    CLOSING = 2
    DRAINING = 3
    TERMINATED = 4


#: The states the per-packet code compares with, as plain ints equal to the members: a compiled
#: module inlines a Final literal, while ``ConnectionState.X`` is an attribute lookup on the enum
#: class every time. DRAINING and TERMINATED are the highest (``>= DRAINING``: RFC 9000 §10.2).
FIRSTFLIGHT: Final = 0
CLOSING: Final = 2
DRAINING: Final = 3
TERMINATED: Final = 4

_S = ConnectionState
#: state -> the states it may move to (RFC 9000 §10.2: closing and draining only move forward).
TRANSITIONS: dict[ConnectionState, frozenset[ConnectionState]] = {
    _S.FIRSTFLIGHT: frozenset({_S.CONNECTED, _S.CLOSING, _S.DRAINING, _S.TERMINATED}),
    _S.CONNECTED: frozenset({_S.CLOSING, _S.DRAINING, _S.TERMINATED}),
    _S.CLOSING: frozenset({_S.DRAINING, _S.TERMINATED}),
    _S.DRAINING: frozenset({_S.TERMINATED}),
    _S.TERMINATED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change that was taken."""

    old: ConnectionState
    new: ConnectionState


class ConnectionLifecycle:
    """Owns the connection state; :meth:`advance` is the only way to change it."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = ConnectionState.FIRSTFLIGHT

    @property
    def is_closing_or_gone(self) -> bool:
        """True in CLOSING, DRAINING and TERMINATED: close() has nothing left to do."""
        return self.state >= ConnectionState.CLOSING

    @property
    def is_draining_or_gone(self) -> bool:
        """True in DRAINING and TERMINATED: nothing is received or sent any more."""
        return self.state >= ConnectionState.DRAINING

    def advance(self, new: ConnectionState) -> Transition | None:
        """Move to ``new`` if the table allows it; returns the transition, or None if refused."""
        old = self.state
        if new not in TRANSITIONS[old]:
            return None
        self.state = new
        return Transition(old, new)
