"""Connection ID bookkeeping for both directions (RFC 9000 §5.1, §19.15, §19.16).

Both sides are bounded against a peer that floods CID frames: the peer may retire only IDs we
sent it (each replacement we issue therefore costs it a round trip), the RETIRE_CONNECTION_ID
frames we owe are capped (RFC 9000 §5.1.2), and a retired ID's stateless reset token no longer
terminates the connection (§10.3.1).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import QuicConnectionError, QuicErrorCode

if TYPE_CHECKING:
    from .spaces import OwedFrames

#: RFC 9000 §19.15: NEW_CONNECTION_ID frame type, cited in errors.
_FRAME_NEW_CONNECTION_ID = 0x18
_FRAME_RETIRE_CONNECTION_ID = 0x19
#: RETIRE_CONNECTION_ID frames owed (queued or unacknowledged) at most, per active ID allowed.
#: RFC 9000 §5.1.2: at least twice active_connection_id_limit; beyond, CONNECTION_ID_LIMIT_ERROR.
RETIRE_LIMIT_FACTOR = 4


@dataclass(slots=True)
class HandshakeIds:
    """The connection IDs and token of the handshake, checked against the peer's transport
    parameters (RFC 9000 §7.3) and changed by a Retry (§17.2.5)."""

    #: the DCID of the client's first Initial
    original_dcid: bytes
    #: the DCID the Initial keys derive from (after a Retry: the Retry's SCID)
    initial_dcid: bytes
    #: the SCID of the Retry (server: the one it sent; client: the one it received)
    retry_scid: bytes | None
    #: the SCID of the peer's first Initial (client: unknown until it arrives)
    peer_initial_scid: bytes | None
    #: the Retry token a client repeats in its Initials
    retry_token: bytes = b""
    #: a client received (and accepted) a Retry
    received_retry: bool = False


@dataclass(slots=True)
class ConnectionIdEntry:
    """One connection ID with its sequence number and stateless reset token."""

    sequence_number: int
    cid: bytes
    stateless_reset_token: bytes
    retired: bool = False
    announced: bool = False


class HostConnectionIds:
    """Connection IDs we issued to the peer (the peer uses them as DCID)."""

    def __init__(
        self, first_cid: bytes, rng: Callable[[int], bytes], reset_token: Callable[[bytes], bytes]
    ):
        self._rng = rng
        self._reset_token = reset_token
        self.length = len(first_cid)
        self.entries: list[ConnectionIdEntry] = [
            ConnectionIdEntry(0, first_cid, reset_token(first_cid), announced=True)
        ]
        self.next_sequence = 1
        self.highest_announced = 0  # sequence 0 is the handshake's source connection ID
        self._cids: list[bytes] | None = None  # :attr:`cids`, until the entries change

    @property
    def cids(self) -> list[bytes]:
        """All active connection IDs. The same list object until an ID is issued or retired (a
        server endpoint compares it by identity to skip re-routing on every datagram); callers
        must not change it."""
        cids = self._cids
        if cids is None:
            cids = self._cids = [e.cid for e in self.entries]
        return cids

    def issue(self, limit: int) -> list[ConnectionIdEntry]:
        """Issue new IDs until ``limit`` are active. Returns the new entries (to announce).

        A zero-length connection ID is never joined by others: an endpoint using one sends no
        NEW_CONNECTION_ID and ignores the peer's active_connection_id_limit (RFC 9000 §5.1.1,
        §18.2).
        """
        new: list[ConnectionIdEntry] = []
        if self.length == 0:
            return new
        while len(self.entries) < limit:
            cid = self._rng(self.length)
            entry = ConnectionIdEntry(self.next_sequence, cid, self._reset_token(cid))
            self.next_sequence += 1
            self.entries.append(entry)
            new.append(entry)
            self._cids = None
        return new

    def on_announced(self, entry: ConnectionIdEntry) -> None:
        """A NEW_CONNECTION_ID frame for ``entry`` was put in a packet."""
        entry.announced = True
        self.highest_announced = max(self.highest_announced, entry.sequence_number)

    def retire(self, sequence_number: int, packet_dcid: bytes) -> ConnectionIdEntry | None:
        """Handle RETIRE_CONNECTION_ID (RFC 9000 §19.16). Returns the retired entry, if any.

        A sequence number greater than any we sent is a PROTOCOL_VIOLATION (§19.16), and so is any
        RETIRE_CONNECTION_ID towards a zero-length connection ID.
        """
        if self.length == 0:
            raise QuicConnectionError(
                QuicErrorCode.PROTOCOL_VIOLATION,
                _FRAME_RETIRE_CONNECTION_ID,
                "RETIRE_CONNECTION_ID for a zero-length connection ID",
            )
        if sequence_number > self.highest_announced:
            raise QuicConnectionError(
                QuicErrorCode.PROTOCOL_VIOLATION,
                _FRAME_RETIRE_CONNECTION_ID,
                "Cannot retire a connection ID never sent",
            )
        for i, entry in enumerate(self.entries):
            if entry.sequence_number == sequence_number:
                if entry.cid == packet_dcid:
                    raise QuicConnectionError(
                        QuicErrorCode.PROTOCOL_VIOLATION,
                        _FRAME_RETIRE_CONNECTION_ID,
                        "Cannot retire the connection ID in use",
                    )
                entry.retired = True
                self._cids = None
                return self.entries.pop(i)
        return None


class PeerConnectionIds:
    """Connection IDs the peer issued to us (we use them as DCID)."""

    def __init__(self, first_cid: bytes, active_limit: int, owed: OwedFrames):
        self.active_limit = active_limit
        self.current = ConnectionIdEntry(0, first_cid, b"")
        self.available: list[ConnectionIdEntry] = []
        self.retire_prior_to = 0
        #: RETIRE_CONNECTION_ID frames to send: the 1-RTT space's owed record
        self.pending_retire = owed.retire_cids
        self.retire_unacked: set[int] = set()  # sent, not yet acknowledged
        self.retire_limit = RETIRE_LIMIT_FACTOR * max(active_limit, 2)

    def set_first_reset_token(self, token: bytes) -> None:
        """The stateless_reset_token transport parameter belongs to sequence 0 (RFC 9000 §18.2)."""
        self.current.stateless_reset_token = token

    @property
    def reset_tokens(self) -> set[bytes]:
        """Tokens that may end the connection: the ID in use only (RFC 9000 §10.3.1).

        IDs only held in reserve were never used, and retired ones must not be checked.
        """
        token = self.current.stateless_reset_token
        return {token} if token else set()

    def is_stateless_reset(self, tail: bytes) -> bool:
        """True if ``tail`` (a datagram's last 16 bytes) is the token of the ID in use.

        Compared in constant time (RFC 9000 §10.3.1).
        """
        token = self.current.stateless_reset_token
        return bool(token) and hmac.compare_digest(tail, token)

    def _retire(self, sequence_number: int) -> None:
        """Owe a RETIRE_CONNECTION_ID frame, once (RFC 9000 §5.1.2 bounds how many)."""
        if sequence_number in self.retire_unacked or sequence_number in self.pending_retire:
            return
        self.pending_retire.append(sequence_number)
        if len(self.pending_retire) + len(self.retire_unacked) > self.retire_limit:
            raise QuicConnectionError(
                QuicErrorCode.CONNECTION_ID_LIMIT_ERROR,
                _FRAME_NEW_CONNECTION_ID,
                "Too many connection IDs waiting to be retired",
            )

    def switch_to(self, entry: ConnectionIdEntry) -> None:
        """Use the spare ``entry`` from now on (a new path, RFC 9000 §9.5); retire the old ID."""
        self.available.remove(entry)
        self._retire(self.current.sequence_number)
        self.current = entry

    def on_retire_sent(self, sequence_number: int) -> None:
        """A RETIRE_CONNECTION_ID frame was put in a packet."""
        self.retire_unacked.add(sequence_number)

    def on_retire_delivery(self, delivered: bool, sequence_number: int) -> None:
        """Delivery callback of a RETIRE_CONNECTION_ID frame: done, or send it again."""
        self.retire_unacked.discard(sequence_number)
        if not delivered and sequence_number not in self.pending_retire:
            self.pending_retire.append(sequence_number)

    def add(self, sequence_number: int, retire_prior_to: int, cid: bytes, token: bytes) -> None:
        """Handle NEW_CONNECTION_ID (RFC 9000 §19.15)."""
        if not self.current.cid:
            raise QuicConnectionError(
                QuicErrorCode.PROTOCOL_VIOLATION,
                _FRAME_NEW_CONNECTION_ID,
                "NEW_CONNECTION_ID with a zero-length connection ID in use",
            )
        known = [self.current, *self.available]
        for entry in known:
            if entry.sequence_number == sequence_number:
                if entry.cid != cid or entry.stateless_reset_token != token:
                    raise QuicConnectionError(
                        QuicErrorCode.PROTOCOL_VIOLATION,
                        _FRAME_NEW_CONNECTION_ID,
                        "Connection ID sequence number reused",
                    )
                return
        if sequence_number < self.retire_prior_to:
            self._retire(sequence_number)
            return
        self.available.append(ConnectionIdEntry(sequence_number, cid, token))
        if retire_prior_to > self.retire_prior_to:
            self.retire_prior_to = retire_prior_to
            keep: list[ConnectionIdEntry] = []
            for entry in self.available:
                if entry.sequence_number < retire_prior_to:
                    self._retire(entry.sequence_number)
                else:
                    keep.append(entry)
            self.available = keep
            if self.current.sequence_number < retire_prior_to:
                self._retire(self.current.sequence_number)
                if not self.available:
                    raise QuicConnectionError(
                        QuicErrorCode.PROTOCOL_VIOLATION,
                        _FRAME_NEW_CONNECTION_ID,
                        "All connection IDs retired",
                    )
                self.current = self.available.pop(0)
        if len(self.available) + 1 > self.active_limit:
            raise QuicConnectionError(
                QuicErrorCode.CONNECTION_ID_LIMIT_ERROR,
                _FRAME_NEW_CONNECTION_ID,
                "Too many active connection IDs",
            )
