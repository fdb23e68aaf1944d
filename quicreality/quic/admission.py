"""How many handshakes a plain server keeps in progress, and what it does beyond that. Sans-IO.

Every connection a server creates from an Initial costs state (about 24 KB: TLS, keys, three packet
spaces, recovery) until its handshake completes or it times out, and a spoofed-source Initial costs
the sender one datagram. :class:`HandshakeBudget` bounds the connections still in their first flight
(state ``FIRSTFLIGHT``). Beyond ``max_handshakes`` a new Initial without a valid Retry token is
answered statelessly with a Retry (RFC 9000 §8.1.2: a server may validate addresses with Retry when
it is under load), which keeps no state, is smaller than the Initial it answers (no amplification)
and is answered only by a client that really owns its address; a client that does comes back with a
token and is admitted (one extra round trip). Dropping instead would keep out genuine clients for
as long as a flood lasts, so we drop only token-validated Initials beyond ``2 * max_handshakes``,
which an attacker needs real addresses and a round trip per connection to reach.

Under pressure a handshake may also last at most ``handshake_timeout`` seconds (the slowloris of
QUIC: a client that trickles its ClientHello a byte at a time keeps resetting the idle timer, RFC
9000 §10.1, and would hold its place for ever): once half the budget is in progress, the endpoint
closes a handshake older than that with CONNECTION_REFUSED at its first packet after the deadline.
Below half the budget no deadline applies, as the state is bounded anyway and a genuine handshake on
a bad path (30 % loss, backed-off probes) may need longer; an idle one ends at the idle timeout as
before.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .connection import QuicConnection
from .connection.state import ConnectionState

#: Handshakes in progress before new unvalidated Initials get a Retry (~24 KB each: ~6 MB).
DEFAULT_MAX_HANDSHAKES = 256
#: Validated (Retry-token) handshakes may take the budget to this multiple before Initials are dropped.
VALIDATED_FACTOR = 2
#: Seconds a handshake may take once half the budget is in progress (quic-go: 10 s, always).
DEFAULT_HANDSHAKE_TIMEOUT = 10.0


class Admit(enum.Enum):
    """What to do with a new Initial."""

    ADMIT = "admit"
    RETRY = "retry"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class AdmissionVerdict:
    """A decision about one new Initial, with its reason."""

    action: Admit
    reason: str


class HandshakeBudget:
    """Tracks the server's connections whose handshake is in progress and judges new Initials.

    Args:
        max_handshakes: handshakes in progress before new unvalidated Initials get a Retry
            (at least 1).
        handshake_timeout: seconds after which a handshake still in progress is overdue, while at
            least half of ``max_handshakes`` (rounded up) are in progress.
    """

    __slots__ = ("_in_progress", "handshake_timeout", "max_handshakes", "retried", "dropped",
                 "timed_out")

    def __init__(self, max_handshakes: int = DEFAULT_MAX_HANDSHAKES,
                 handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT) -> None:
        if max_handshakes < 1:
            raise ValueError(f"max_handshakes must be at least 1, not {max_handshakes}")
        if handshake_timeout <= 0:
            raise ValueError(f"handshake_timeout must be positive, not {handshake_timeout}")
        self.max_handshakes = max_handshakes
        self.handshake_timeout = handshake_timeout
        self._in_progress: dict[QuicConnection, float] = {}  # -> when it started
        #: handshakes closed because they took longer than ``handshake_timeout``
        self.timed_out = 0
        #: Initials answered with Retry because the budget was full
        self.retried = 0
        #: validated Initials dropped because twice the budget was in progress
        self.dropped = 0

    @property
    def in_progress(self) -> int:
        """Connections created whose handshake has neither completed nor ended."""
        return len(self._in_progress)

    def judge(self, *, validated: bool, retry_always: bool) -> AdmissionVerdict:
        """Decide about a new Initial; ``validated``: it carried a valid Retry token."""
        n = len(self._in_progress)
        if validated:
            if n >= VALIDATED_FACTOR * self.max_handshakes:
                self.dropped += 1
                return AdmissionVerdict(Admit.DROP, f"{n} handshakes in progress (validated cap)")
            return AdmissionVerdict(Admit.ADMIT, "address validated by a Retry token")
        if retry_always:
            return AdmissionVerdict(Admit.RETRY, "server always validates addresses")
        if n >= self.max_handshakes:
            self.retried += 1
            return AdmissionVerdict(Admit.RETRY, f"{n} handshakes in progress (RFC 9000 §8.1.2)")
        return AdmissionVerdict(Admit.ADMIT, "under the handshake budget")

    def started(self, conn: QuicConnection, now: float) -> None:
        """A connection was created from an Initial at ``now``."""
        if conn.state == ConnectionState.FIRSTFLIGHT:
            self._in_progress[conn] = now

    def overdue(self, conn: QuicConnection, now: float) -> bool:
        """True (once) if ``conn``'s handshake is still in progress past its deadline and the
        server is under pressure (at least half the budget in progress)."""
        start = self._in_progress.get(conn)
        if start is None or now - start <= self.handshake_timeout \
                or conn.state != ConnectionState.FIRSTFLIGHT \
                or 2 * len(self._in_progress) < self.max_handshakes:
            return False
        del self._in_progress[conn]
        self.timed_out += 1
        return True

    def update(self, conn: QuicConnection) -> None:
        """The connection may have left its first flight (handshake done, closing, gone)."""
        if conn.state != ConnectionState.FIRSTFLIGHT:
            self._in_progress.pop(conn, None)

    def forget(self, conn: QuicConnection) -> None:
        """The connection is gone."""
        self._in_progress.pop(conn, None)
