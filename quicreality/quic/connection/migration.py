"""Path validation and connection migration (RFC 9000 §8.2, §9): :class:`PathManager`.

The connection sends on one :class:`~.path.NetworkPath` (shared with the send path, which spends
its anti-amplification budget and writes the PATH_CHALLENGE it owes). This component decides
when that path changes:

* **Server, NAT rebinding or the client's migration** (§9.3): a 1-RTT packet from a new address
  that is non-probing (§9.1) and carries the largest packet number so far moves the path to the
  new address at once. The new path is unvalidated (3x limit, §8.1, §9.3) until a PATH_RESPONSE
  echoes our PATH_CHALLENGE (§8.2); we move to a spare peer connection ID (§9.5) and retire the
  old one; unless only the port changed, the congestion controller and RTT estimator start over
  (§9.4). Before the handshake is confirmed only a NAT rebinding mid-handshake is followed (the
  newest Initial or Handshake packet moves the path; no challenge, the handshake validates).
* **Client, active migration** (:meth:`PathManager.migrate`, §9.2, §9.6): the edge has opened a
  new local socket; we switch to a new peer connection ID (the preferred_address one when going
  there) and challenge the new path.

Validation is abandoned after three times the larger of the current PTO and the PTO of a new
path with kInitialRtt (§8.2.4); a server then falls back to the last validated address (§9.3.2).
A PATH_CHALLENGE from another address (a peer probing a path before moving to it) is answered on
that path (§8.2.2): a datagram of its own to that address, expanded to 1200 bytes within three
times what came from there (§8.1), with a spare peer connection ID when there is one (§9.5), and
with a PATH_CHALLENGE of ours whose answer validates that address for a later move there.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ...qlog.sink import QlogSink
from ...wire.bounded import push_bounded
from ..config import QuicConfiguration
from ..frames import PATH_CHALLENGE_DATA_SIZE
from ..packet import MIN_INITIAL_DATAGRAM_SIZE
from ..recovery.loss import SPACE_APPLICATION, SPACE_HANDSHAKE, LossRecovery
from ..recovery.rtt import K_INITIAL_RTT, RttEstimator
from .path import AMPLIFICATION_LIMIT_FACTOR, NetworkAddress, NetworkPath
from .spaces import MAX_PATH_RESPONSES

if TYPE_CHECKING:
    from ..transport_params import PreferredAddress, QuicTransportParameters
    from .cids import HostConnectionIds, PeerConnectionIds
    from .spaces import PacketSpace

#: RFC 9000 §8.2.4: validation is abandoned after this many PTOs.
VALIDATION_TIMEOUT_PTOS = 3
#: RFC 9000 §5.1.1: the connection ID in preferred_address has sequence number 1.
PREFERRED_ADDRESS_CID_SEQUENCE = 1
#: Peer addresses remembered as validated (a NAT that maps back needs no new challenge).
MAX_VALIDATED_ADDRESSES = 8
#: Off-path PATH_CHALLENGEs queued at most (a flood keeps only the newest, like on-path ones).
MAX_OFF_PATH = 16


class ProbeBuilder(Protocol):
    """What answering a probe asks of the send path (:class:`~.assembler.PacketAssembler`)."""

    def build_path_probe(self, now: float, response: bytes, challenge: bytes, size: int,
                         dcid: bytes) -> bytes:
        """One datagram with PATH_RESPONSE(``response``) and PATH_CHALLENGE(``challenge``)."""
        ...


@dataclass(frozen=True, slots=True)
class MigrationVerdict:
    """The answer to :meth:`PathManager.migrate`: whether the path moved, and why (not)."""

    accepted: bool
    reason: str
    #: where the connection now sends (the preferred address when migrating there)
    peer_address: NetworkAddress = None
    #: refused for now only: ask again later (the handshake is not confirmed yet)
    retry: bool = False


def same_host(a: NetworkAddress, b: NetworkAddress) -> bool:
    """True if two ``(host, port, ...)`` addresses differ at most in the port (RFC 9000 §9.4)."""
    try:
        return bool(a[0] == b[0])
    except (TypeError, IndexError, KeyError):
        return False


def preferred_socket_address(pa: PreferredAddress, *, ipv6: bool = False) -> tuple[str, int] | None:
    """The ``(host, port)`` of a preferred_address value: IPv4 unless ``ipv6`` (or IPv4 absent)."""
    v4 = (str(ipaddress.IPv4Address(pa.ipv4_address)), pa.ipv4_port) if any(pa.ipv4_address) \
        or pa.ipv4_port else None
    v6 = (str(ipaddress.IPv6Address(pa.ipv6_address)), pa.ipv6_port) if any(pa.ipv6_address) \
        or pa.ipv6_port else None
    return (v6 or v4) if ipv6 else (v4 or v6)


class PathManager:
    """Owns the decision to change the connection's path and the validation of new paths."""

    __slots__ = ("_host_cids", "_initial_rtt", "_is_client", "_max_datagram_size", "_owed",
                 "_peer_cids", "_probe_challenges", "_qlog", "_recovery", "_rtt", "_spaces",
                 "_validated", "deadline", "disable_active_migration", "migrations", "off_path",
                 "path", "preferred_address", "previous", "recovery_resets", "rx_address",
                 "rx_size", "validation_failures", "validations")

    def __init__(self, path: NetworkPath, config: QuicConfiguration, *, spaces: list[PacketSpace],
                 host_cids: HostConnectionIds, peer_cids: PeerConnectionIds,
                 recovery: LossRecovery, qlog: QlogSink) -> None:
        """A server with ``config.preferred_address`` issues connection ID 1 at once (RFC 9000
        §5.1.1): the transport parameter announces it, not a NEW_CONNECTION_ID frame."""
        self.path = path
        path.rng = config.rng
        self._is_client = config.is_client
        self._spaces = spaces
        self._host_cids = host_cids
        self._peer_cids = peer_cids
        self._recovery = recovery
        self._rtt: RttEstimator = recovery.rtt
        self._max_datagram_size = config.max_datagram_size
        self._initial_rtt = config.initial_rtt
        self._qlog = qlog
        self._validated: list[NetworkAddress] = []  # push_bounded(..., MAX_VALIDATED_ADDRESSES)
        #: the source address and size of the datagram being processed
        self.rx_address: NetworkAddress = None
        self.rx_size = 0
        #: when validation of the current path is abandoned
        self.deadline: float | None = None
        #: the last validated path to fall back to: (address, bytes received, bytes sent)
        self.previous: tuple[NetworkAddress, int, int] | None = None
        #: client: the server's preferred address as (host, port), once its parameters arrive
        self.preferred_address: tuple[str, int] | None = None
        #: client: the server sent disable_active_migration (RFC 9000 §18.2)
        self.disable_active_migration = False
        #: PATH_CHALLENGEs from other addresses: (address, data, datagram size) to answer there
        self.off_path: list[tuple[NetworkAddress, bytes, int]] = []  # push_bounded(.., MAX_OFF_PATH)
        self._owed = spaces[SPACE_APPLICATION].owed
        #: our challenges sent with off-path answers -> the address they validate
        self._probe_challenges: dict[bytes, NetworkAddress] = {}
        self.migrations = 0
        self.recovery_resets = 0
        self.validations = 0
        self.validation_failures = 0
        if config.preferred_address is not None and not self._is_client:
            for entry in host_cids.issue(PREFERRED_ADDRESS_CID_SEQUENCE + 1):
                host_cids.on_announced(entry)

    @property
    def handshake_confirmed(self) -> bool:
        """The Handshake space is discarded exactly when the handshake is confirmed."""
        return self._spaces[SPACE_HANDSHAKE].discarded

    # ------------------------------------------------------------ setup

    def apply_peer_params(self, params: QuicTransportParameters) -> None:
        """Client: remember disable_active_migration and the preferred address, whose
        connection ID becomes a spare peer ID with sequence number 1 (RFC 9000 §5.1.1)."""
        self.disable_active_migration = params.disable_active_migration
        pa = params.preferred_address
        if not self._is_client or pa is None:
            return
        self.preferred_address = preferred_socket_address(pa)
        self._peer_cids.add(PREFERRED_ADDRESS_CID_SEQUENCE, 0, pa.connection_id,
                            pa.stateless_reset_token)

    # ---------------------------------------------------------- receive

    def on_datagram(self, size: int, addr: NetworkAddress) -> None:
        """A datagram arrived from ``addr``: credit the path (if it is its address) and remember
        where it came from for :meth:`on_packet`."""
        self.rx_address = addr
        self.rx_size = size
        self.path.on_datagram_received(size, addr)

    def on_packet(self, now: float, space_id: int, pn: int, non_probing: bool) -> None:
        """A packet was processed (before its number is recorded): one from an address other
        than the path's may move the path (RFC 9000 §9.3).

        Before the handshake is confirmed a server only follows a NAT that rebound mid-handshake:
        the newest Initial or Handshake packet moves the path, unvalidated unless it is a
        Handshake packet (which only the client can send, §8.1); the handshake itself is the
        validation, so no PATH_CHALLENGE. After it, see the module docstring.
        """
        path = self.path
        if self.rx_address == path.address or self._is_client or \
                pn <= self._spaces[space_id].largest_received:
            return  # clients follow no server address; reordered packets move nothing
        old, new = path.address, self.rx_address
        if not self.handshake_confirmed:
            if space_id == SPACE_APPLICATION:
                return
            path.move_to(new, self.rx_size, validated=space_id == SPACE_HANDSHAKE)
            self._qlog.custom(now, "transport:path_updated", {
                "old": _qlog_address(old), "new": _qlog_address(new), "trigger": "handshake",
                "port_only": same_host(old, new), "validated": path.validated})
            return
        if space_id != SPACE_APPLICATION or not non_probing:
            return  # probes move nothing (§9.1)
        if path.validated:
            self.previous = (old, path.bytes_received, path.bytes_sent)
        known = new in self._validated
        path.move_to(new, self.rx_size, validated=known)
        self.migrations += 1
        if not same_host(old, new):
            self._reset_recovery()
        self._rotate_peer_cid()
        if known:
            self.deadline = None
        else:
            self._start_validation(now)
        self._qlog.custom(now, "transport:path_updated", {
            "old": _qlog_address(old), "new": _qlog_address(new), "trigger": "peer_migrated",
            "port_only": same_host(old, new), "validated": known})

    def on_path_challenge(self, data: bytes) -> bool:
        """PATH_CHALLENGE from another address than the path's (a probe, RFC 9000 §9.1): owe the
        response on the path it came from (§8.2.2). False: it came on the path (answer there)."""
        if self.rx_address == self.path.address:
            return False
        budget = AMPLIFICATION_LIMIT_FACTOR * self.rx_size  # unvalidated address (§8.1)
        push_bounded(self.off_path, (self.rx_address, data, min(MIN_INITIAL_DATAGRAM_SIZE, budget)),
                     MAX_OFF_PATH)
        return True

    def answer_off_path(self, builder: ProbeBuilder, now: float) -> list[tuple[bytes, NetworkAddress]]:
        """The datagrams answering :meth:`on_path_challenge` probes, each to its own address,
        with a spare peer connection ID when there is one (§9.5). Each also challenges that
        path, so a peer that moves there after its probe finds it validated both ways."""
        out = []
        while self.off_path:
            addr, data, size = self.off_path.pop(0)
            if addr == self.path.address:  # the path moved there meanwhile: answer on it
                push_bounded(self._owed.path_responses, data, MAX_PATH_RESPONSES)
                continue
            spare = self._peer_cids.available
            challenge = self.path.rng(PATH_CHALLENGE_DATA_SIZE)
            datagram = builder.build_path_probe(now, data, challenge, size,
                                                (spare[0] if spare else self._peer_cids.current).cid)
            if datagram:
                out.append((datagram, addr))
                self._probe_challenges[challenge] = addr
                while len(self._probe_challenges) > MAX_OFF_PATH:
                    del self._probe_challenges[next(iter(self._probe_challenges))]
        return out

    def on_path_response(self, data: bytes, now: float) -> None:
        """PATH_RESPONSE (RFC 9000 §8.2.3): echoing an outstanding challenge validates the path;
        any other data is ignored."""
        path = self.path
        probed = self._probe_challenges.pop(data, None)
        if probed is not None and probed not in self._validated:  # a path probed off-path
            push_bounded(self._validated, probed, MAX_VALIDATED_ADDRESSES)
            self._qlog.custom(now, "transport:path_validated", {"address": _qlog_address(probed)})
        if data not in path.challenges:
            return
        path.validated = True
        path.challenges.clear()
        path.challenge_owed = False
        self.deadline = None
        self.validations += 1
        if path.address not in self._validated:
            push_bounded(self._validated, path.address, MAX_VALIDATED_ADDRESSES)
        self._qlog.custom(now, "transport:path_validated", {"address": _qlog_address(path.address)})

    # ------------------------------------------------------------ timer

    def on_timer(self, now: float) -> None:
        """RFC 9000 §8.2.4: give up validating; a server reverts to the last validated path."""
        if self.deadline is None or now < self.deadline:
            return
        self.deadline = None
        self.validation_failures += 1
        path = self.path
        failed = path.address
        path.challenges.clear()
        path.challenge_owed = False
        reverted = not self._is_client and self.previous is not None
        if reverted:
            assert self.previous is not None
            addr, received, sent = self.previous
            path.move_to(addr, received, validated=True)
            path.bytes_sent = sent
            self.previous = None
        self._qlog.custom(now, "transport:path_validation_failed", {
            "address": _qlog_address(failed), "reverted": reverted})

    # ------------------------------------------------------- client API

    def migrate(self, now: float, local_address: NetworkAddress = None, *,
                to_preferred_address: bool = False) -> MigrationVerdict:
        """Client active migration (RFC 9000 §9.2): the edge sends from a new local address.

        With ``to_preferred_address``, if the server offered one (:attr:`preferred_address`), the
        connection moves to the server's preferred address and its connection ID (§9.6);
        otherwise the server's address stays and a spare peer connection ID is used (§9.5). The
        new path is challenged at once.
        ``local_address`` is only logged. The verdict's ``peer_address`` is where we now send.
        """
        if not self._is_client:
            return MigrationVerdict(False, "only a client initiates migration (RFC 9000 §9)")
        if not self.handshake_confirmed:
            return MigrationVerdict(False, "handshake not confirmed (RFC 9000 §9)", retry=True)
        path = self.path
        to_preferred = to_preferred_address and self.preferred_address is not None
        target = self.preferred_address if to_preferred else path.address
        if self.disable_active_migration and not to_preferred:
            return MigrationVerdict(False, "the server sent disable_active_migration (§18.2)")
        peer = self._peer_cids
        spare = [e for e in peer.available if not to_preferred
                 or e.sequence_number == PREFERRED_ADDRESS_CID_SEQUENCE]
        if not spare:
            return MigrationVerdict(False, "no spare peer connection ID (RFC 9000 §9.5)")
        old = path.address
        self._peer_cids.switch_to(spare[0])
        path.move_to(target, 0, validated=True)  # the client is never amplification-limited
        self.migrations += 1
        if not same_host(old, target):
            self._reset_recovery()
        self._start_validation(now)
        self._qlog.custom(now, "transport:path_updated", {
            "old": _qlog_address(old), "new": _qlog_address(target), "trigger": "active_migration",
            "local": _qlog_address(local_address), "preferred_address": to_preferred})
        return MigrationVerdict(True, "migrating to the preferred address" if to_preferred
                                else "migrating to a new local address", target)

    # --------------------------------------------------------- internals

    def _start_validation(self, now: float) -> None:
        path = self.path
        path.challenges.clear()
        path.challenge_owed = True
        new_path_pto = 3 * K_INITIAL_RTT  # kInitialRtt + 4 * kInitialRtt/2 (RFC 9002 §6.2.2)
        self.deadline = now + VALIDATION_TIMEOUT_PTOS * max(self._rtt.pto_base(), new_path_pto)

    def _rotate_peer_cid(self) -> None:
        """RFC 9000 §9.5: a new path gets a new peer connection ID when one is spare."""
        available = self._peer_cids.available
        spare = [e for e in available if e.sequence_number != PREFERRED_ADDRESS_CID_SEQUENCE] \
            or available
        if spare:
            self._peer_cids.switch_to(spare[0])

    def _reset_recovery(self) -> None:
        """RFC 9000 §9.4: the congestion controller, pacer and RTT estimator start over."""
        self.recovery_resets += 1
        self._recovery.reset_path_state(initial_rtt=self._initial_rtt,
                                        max_datagram_size=self._max_datagram_size)


def _qlog_address(addr: NetworkAddress) -> Any:
    """An address as qlog JSON (tuples become lists of their parts)."""
    if type(addr) is tuple:
        return [str(part) if not isinstance(part, int) else part for part in addr[:2]]
    return None if addr is None else str(addr)
