"""1-RTT key updates (RFC 9001 §6): initiated on request or at the confidentiality limit, and the
retention of the previous receive keys.

:class:`KeyUpdates` decides when the connection rotates its 1-RTT keys. An update is initiated
only once the handshake is confirmed (§6.1) and once a packet sent with the current keys has been
acknowledged (§6.1, §6.5: one update at a time). A request made before that waits, and is carried
out at the first send that allows it. Independently of requests, an update is initiated before the
number of packets protected with one key reaches the AEAD's confidentiality limit (§6.6).
Answering the peer's update is :class:`~quicreality.quic.crypto.CryptoPair`'s job; both kinds keep
the previous receive keys for three PTOs (§6.5).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ...qlog.sink import QlogSink
from ...tls.hkdf import CipherSuite
from .. import events
from ..crypto import CryptoPair
from ..events import QuicEvent
from ..recovery.loss import SPACE_APPLICATION, LossRecovery
from ..recovery.rtt import RttEstimator
from .spaces import PacketSpace

#: Confidentiality limit in packets per key (RFC 9001 §6.6): AES-GCM 2^23, ChaCha20-Poly1305 2^62.
CONFIDENTIALITY_LIMIT = {
    CipherSuite.AES_128_GCM_SHA256: 1 << 23,
    CipherSuite.AES_256_GCM_SHA384: 1 << 23,
    CipherSuite.CHACHA20_POLY1305_SHA256: 1 << 62,
}
#: Packets before the limit at which the update is initiated (it takes a round trip to settle).
LIMIT_MARGIN = 1 << 16


@dataclass(frozen=True, slots=True)
class KeyUpdateVerdict:
    """What became of a key update request: ``pending`` until it can be initiated."""

    pending: bool
    reason: str


class KeyUpdates:
    """When to initiate a 1-RTT key update, and when to drop the previous receive keys."""

    __slots__ = ("_crypto", "_events", "_limit", "_phase_first_pn", "_qlog", "_recovery",
                 "_rtt", "_space", "discard_at", "requested")

    def __init__(self, *, crypto: CryptoPair, space: PacketSpace, recovery: LossRecovery,
                 rtt: RttEstimator, qlog: QlogSink, events: deque[QuicEvent],
                 packet_limit: int | None) -> None:
        """``packet_limit`` overrides the suite's confidentiality limit less the margin."""
        self._crypto = crypto
        self._space = space
        self._recovery = recovery
        self._rtt = rtt
        self._qlog = qlog
        self._events = events
        self._limit = packet_limit
        #: first packet number sent with the current keys (0: the keys of the handshake)
        self._phase_first_pn = 0
        #: an update was asked for and is not initiated yet
        self.requested = False
        #: when the previous receive keys are dropped (RFC 9001 §6.5)
        self.discard_at: float | None = None

    def request(self, handshake_confirmed: bool) -> KeyUpdateVerdict:
        """Ask for an update; it is initiated at the first send that the §6 rules allow."""
        self.requested = True
        return self._blocker(handshake_confirmed) or KeyUpdateVerdict(
            True, "initiated with the next packet")

    def _blocker(self, handshake_confirmed: bool) -> KeyUpdateVerdict | None:
        if not handshake_confirmed:
            return KeyUpdateVerdict(True, "waiting for the handshake to be confirmed")
        if self._recovery.spaces[SPACE_APPLICATION].largest_acked < self._phase_first_pn:
            return KeyUpdateVerdict(True, "waiting for an ACK of a packet under the current keys")
        return None

    def packet_limit(self) -> int:
        """Packets one key may protect before an update is initiated (RFC 9001 §6.6)."""
        if self._limit is not None:
            return self._limit
        suite = self._crypto.send.cipher_suite
        return CONFIDENTIALITY_LIMIT.get(suite, 1 << 23) - LIMIT_MARGIN  # type: ignore[call-overload]

    def before_send(self, now: float, handshake_confirmed: bool) -> None:
        """Initiate the update when requested or at the limit, if the rules allow it now."""
        at_limit = self._space.next_pn - self._phase_first_pn >= self.packet_limit()
        if not (self.requested or at_limit) or self._blocker(handshake_confirmed) is not None:
            return
        self.requested = False
        self._crypto.update_key()
        self._rotated(now, "local_update", initiated=True)

    def on_peer_update(self, now: float) -> None:
        """The peer's update was accepted (the pair rotated while decrypting)."""
        self._rotated(now, "remote_update", initiated=False)

    def _rotated(self, now: float, trigger: str, *, initiated: bool) -> None:
        self._phase_first_pn = self._space.next_pn
        self.discard_at = now + 3 * self._rtt.pto_base()
        self._qlog.key_updated(now, "1RTT", trigger)
        self._events.append(events.KeyUpdated(generation=self._crypto.generation,
                                              initiated=initiated))

    def on_timer(self, now: float) -> None:
        """Drop the previous receive keys once their time is up."""
        if self.discard_at is not None and now >= self.discard_at:
            self.discard_at = None
            self._crypto.discard_previous_keys()
