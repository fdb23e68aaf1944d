"""The REALITY gate: decide per client address, before any connection exists (sans-IO).

Theory of operation. Datagrams whose destination connection ID belongs to none of our connections
come here, keyed by the client's address ("flow"). A flow is in one of three tables:

* **pending**: its first datagram was a QUIC v1 Initial of at least 1200 bytes. Every datagram is
  mirrored to the target untouched (:class:`Pending`), kept, and its Initial packets are decrypted
  with the keys anyone can derive from the DCID (RFC 9001 §5.2). CRYPTO frames are reassembled by
  offset, in any order, across datagrams, until the ClientHello is complete; then
  :func:`~quicreality.reality.auth.verify_client_hello` decides. The target's replies are held
  meanwhile (the client must not see them if we accept).
* **fallback**: rejected (any :class:`~quicreality.reality.auth.Reason` but ACCEPT), or not a
  ClientHello at all. The flow is a transparent UDP relay in both directions (:class:`Forward`,
  :meth:`RealityGate.receive_target_datagram` -> RELAY) until it has been idle for
  ``fallback_idle_timeout``. Held target replies are released to the client at the decision. A
  client Initial to a connection ID that is neither the flow's first DCID nor one the target chose
  (read from the unprotected long headers) is a new connection from a reused address: it is
  judged afresh.
* **accepted**: the verdict was ACCEPT (:class:`Accept`): nothing more goes to the target, and the
  target's replies to the mirrored ClientHello are dropped until ``accepted_drain`` has passed. The
  endpoint creates the connection from the kept datagrams; later datagrams carry our connection IDs
  and never reach the gate.

Bounds: a pending flow keeps at most ``max_pending_bytes`` of datagrams (TOO_LARGE) for at most
``pending_timeout`` (TIMEOUT), a ClientHello is at most ``max_client_hello_bytes`` (TOO_LARGE), at most
``max_pending_flows`` are pending (TOO_MANY_PENDING) and at most ``max_fallback_flows`` relay (the
least recently active is evicted, :class:`FlowClosed`). Over a limit a flow is relayed: never dropped
silently, never answered by us. Datagrams of a flow are forwarded byte for byte, never modified.

Driving verbs: ``receive_datagram``, ``receive_target_datagram``, ``get_timer``, ``handle_timer``,
``next_event``.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..quic.crypto import CryptoError, CryptoPair
from ..quic.endpoint import Admission
from ..quic.errors import QuicConnectionError
from ..quic.frames import FrameType, frame_allowed, pull_frame_body
from ..quic.packet import (
    PACKET_TYPE_INITIAL,
    QUIC_VERSION_1,
    MalformedPacketError,
    pull_quic_header,
)
from ..wire.buffer import Buffer, BufferReadError
from .auth import RealityVerdict, Reason, ReplayCache, verify_client_hello
from .binding import configure_accepted
from .cert import RealityIdentity
from .config import GateLimits, RealityServerConfig
from .reassembly import Chunk, HelloAssembly, PacketCheck

#: RFC 9000 §14.1: a server drops Initial datagrams smaller than this; so do we (-> fallback).
MIN_INITIAL_DATAGRAM = 1200
#: At most this many target datagrams are held for a pending flow (released on reject).
MAX_HELD_TARGET_DATAGRAMS = 16
#: At most this many connection IDs are remembered per relay flow.
_MAX_FLOW_CIDS = 8
#: TLS handshake type of ClientHello (RFC 8446 §4).
_CLIENT_HELLO = 0x01


# --- decisions and events ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pending:
    """Undecided: mirror ``mirror`` to the target on ``addr``'s flow (open it if ``new_flow``)."""

    addr: Any
    mirror: bytes
    new_flow: bool


@dataclass(frozen=True, slots=True)
class Forward:
    """Relay ``data`` to the target on ``addr``'s flow.

    Attributes:
        new_flow: open the flow's target socket first.
        verdict: set when this datagram decided the flow (a reject); log it.
        release: target datagrams held while pending; send them to the client now.
    """

    addr: Any
    data: bytes
    new_flow: bool
    verdict: RealityVerdict | None = None
    release: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Accept(Admission):
    """ACCEPT: mirror ``mirror`` (the datagram that completed the ClientHello) to the target, stop
    relaying ``addr``, and let the endpoint create the connection from ``datagrams`` (all of the
    flow's datagrams in arrival order) configured by ``configure``."""

    addr: Any = None
    verdict: RealityVerdict | None = None
    mirror: bytes = b""
    new_flow: bool = False


GateDecision = Pending | Forward | Accept


@dataclass(frozen=True, slots=True)
class Decided:
    """A pending flow was decided by the timer (TIMEOUT); send ``release`` to the client."""

    addr: Any
    verdict: RealityVerdict
    release: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class FlowClosed:
    """Forget ``addr``'s target socket (idle, evicted, or the accepted drain is over)."""

    addr: Any
    why: str


GateEvent = Decided | FlowClosed


class TargetAction(Enum):
    """What to do with a datagram the target sent on a flow."""

    RELAY = "relay"  #: send it to the client
    HOLD = "hold"  #: kept by the gate until the verdict
    DROP = "drop"  #: accepted flow (or unknown): the client must not see it


# --- flow state -------------------------------------------------------------------------


@dataclass(slots=True)
class _PendingFlow:
    created: float
    dcid: bytes
    scid: bytes
    crypto: CryptoPair
    assembly: HelloAssembly
    datagrams: list[bytes] = field(default_factory=list)
    size: int = 0
    largest_pn: int = -1
    held: list[bytes] = field(default_factory=list)
    #: the complete ClientHello, once judged (on ACCEPT, TLS must process exactly these bytes)
    hello: bytes = b""


@dataclass(slots=True)
class _RelayFlow:
    """A fallback flow: last activity, and the connection IDs that belong to its connection."""

    last: float
    #: the client's first DCID and the target's SCIDs (read from long headers, never decrypted):
    #: a client Initial to any other DCID is a new connection from a reused address.
    cids: set[bytes] = field(default_factory=set)


class RealityGate:
    """Per-flow accept / fallback decisions for a REALITY listener.

    Args:
        config: the validated ``[reality]`` configuration (limits included).
        identity: the per-process Ed25519 identity for accepted connections.
        wall_clock: ``() -> Unix seconds`` for the token timestamp and the replay cache.
    """

    def __init__(
        self,
        config: RealityServerConfig,
        identity: RealityIdentity,
        *,
        wall_clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.limits: GateLimits = config.limits
        self.identity = identity
        self._wall_clock = wall_clock
        self.replay_cache = ReplayCache(
            config.limits.replay_cache_size, config.replay_window_ms / 1000.0
        )
        self._pending: OrderedDict[Any, _PendingFlow] = OrderedDict()  # by creation time
        self._fallback: OrderedDict[Any, _RelayFlow] = OrderedDict()  # LRU by last activity
        self._accepted: OrderedDict[Any, float] = OrderedDict()  # addr -> drain deadline
        self._events: deque[GateEvent] = deque()

    # --- sizes (metrics) ------------------------------------------------------------------

    @property
    def pending_flows(self) -> int:
        """Flows waiting for their ClientHello."""
        return len(self._pending)

    @property
    def fallback_flows(self) -> int:
        """Flows relayed to the target."""
        return len(self._fallback)

    @property
    def draining_flows(self) -> int:
        """Accepted flows whose target replies are still being dropped."""
        return len(self._accepted)

    def is_fallback(self, addr: Any) -> bool:
        """True if ``addr``'s flow is relayed to the target."""
        return addr in self._fallback

    # --- client datagrams -----------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Any, now: float) -> GateDecision:
        """Decide what to do with one datagram from ``addr`` that matched no connection."""
        relay = self._fallback.get(addr)
        if relay is not None:
            dcid = _new_initial_dcid(data)
            if dcid is None or dcid in relay.cids:
                relay.last = now
                self._fallback.move_to_end(addr)
                return Forward(addr, data, new_flow=False)
            # A new connection from an address that still had a relay flow (a reused port):
            # judge it afresh; the old flow's socket is replaced (new_flow on the decision).
            del self._fallback[addr]
            return self._start(data, addr, now)
        flow = self._pending.get(addr)
        if flow is not None:
            return self._continue(flow, data, addr, now)
        # A new flow (an accepted address whose datagram matched no connection starts over).
        self._accepted.pop(addr, None)
        return self._start(data, addr, now)

    def _start(self, data: bytes, addr: Any, now: float) -> GateDecision:
        header = _first_initial_header(data)
        if header is None:
            return self._reject_new(data, addr, now, RealityVerdict(Reason.NOT_QUIC_INITIAL))
        if len(self._pending) >= self.limits.max_pending_flows:
            return self._reject_new(data, addr, now, RealityVerdict(Reason.TOO_MANY_PENDING))
        dcid, scid = header
        crypto = CryptoPair()
        crypto.setup_initial(dcid, is_client=False, version=QUIC_VERSION_1)
        flow = _PendingFlow(created=now, dcid=dcid, scid=scid, crypto=crypto,
                            assembly=HelloAssembly(self.limits.max_crypto_fragments))
        outcome = self._ingest(flow, data)
        if outcome is None and flow.largest_pn < 0:
            outcome = RealityVerdict(Reason.MALFORMED_INITIAL, detail="no Initial packet opened")
        if outcome is not None:
            return self._reject_new(data, addr, now, outcome)
        flow.datagrams.append(data)
        flow.size = len(data)
        verdict = self._maybe_verdict(flow)
        if verdict is None:
            self._pending[addr] = flow
            return Pending(addr, data, new_flow=True)
        if verdict.accepted:
            return self._accept(flow, addr, now, verdict, data, new_flow=True)
        return self._reject_new(data, addr, now, verdict)

    def _continue(self, flow: _PendingFlow, data: bytes, addr: Any, now: float) -> GateDecision:
        flow.datagrams.append(data)
        flow.size += len(data)
        if flow.size > self.limits.max_pending_bytes:
            return self._reject_pending(addr, flow, data, now, RealityVerdict(Reason.TOO_LARGE))
        if now - flow.created > self.limits.pending_timeout:
            return self._reject_pending(addr, flow, data, now, RealityVerdict(Reason.TIMEOUT))
        verdict = self._ingest(flow, data) or self._maybe_verdict(flow)
        if verdict is None:
            return Pending(addr, data, new_flow=False)
        del self._pending[addr]
        if verdict.accepted:
            return self._accept(flow, addr, now, verdict, data, new_flow=False)
        return self._reject_pending(addr, flow, data, now, verdict)

    # --- target datagrams -----------------------------------------------------------------

    def receive_target_datagram(self, addr: Any, data: bytes, now: float) -> TargetAction:
        """The target sent ``data`` on ``addr``'s flow: relay, hold (pending) or drop (accepted)."""
        relay = self._fallback.get(addr)
        if relay is not None:
            relay.last = now
            self._fallback.move_to_end(addr)
            if data and data[0] & 0x80 and len(relay.cids) < _MAX_FLOW_CIDS:
                scid = _long_header_scid(data)
                if scid is not None:
                    relay.cids.add(scid)
            return TargetAction.RELAY
        flow = self._pending.get(addr)
        if flow is not None and len(flow.held) < MAX_HELD_TARGET_DATAGRAMS:
            flow.held.append(data)
            return TargetAction.HOLD
        return TargetAction.DROP

    # --- timers and events ----------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest deadline (pending timeout, fallback idle, accepted drain), or None."""
        deadlines = []
        if self._pending:
            deadlines.append(next(iter(self._pending.values())).created + self.limits.pending_timeout)
        if self._fallback:
            deadlines.append(next(iter(self._fallback.values())).last
                             + self.limits.fallback_idle_timeout)
        if self._accepted:
            deadlines.append(next(iter(self._accepted.values())))
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        """Time out pending flows (-> fallback), expire idle relays and finished drains."""
        limits = self.limits
        while self._pending:
            addr, flow = next(iter(self._pending.items()))
            if flow.created + limits.pending_timeout > now:
                break
            del self._pending[addr]
            verdict = RealityVerdict(Reason.TIMEOUT, detail="ClientHello incomplete")
            self._add_fallback(addr, now, flow.dcid)
            self._events.append(Decided(addr, verdict, tuple(flow.held)))
        while self._fallback:
            addr, relay = next(iter(self._fallback.items()))
            if relay.last + limits.fallback_idle_timeout > now:
                break
            del self._fallback[addr]
            self._events.append(FlowClosed(addr, "idle"))
        while self._accepted:
            addr, deadline = next(iter(self._accepted.items()))
            if deadline > now:
                break
            del self._accepted[addr]
            self._events.append(FlowClosed(addr, "accepted: drain over"))

    def next_event(self) -> GateEvent | None:
        """The next :class:`Decided` / :class:`FlowClosed`, or None."""
        return self._events.popleft() if self._events else None

    # --- decisions ------------------------------------------------------------------------

    def _add_fallback(self, addr: Any, now: float, client_dcid: bytes | None) -> None:
        """Make ``addr`` a relay flow, evicting the least recently active one when full."""
        self._fallback[addr] = _RelayFlow(now, {client_dcid} if client_dcid is not None else set())
        self._fallback.move_to_end(addr)
        while len(self._fallback) > self.limits.max_fallback_flows:
            old, _ = self._fallback.popitem(last=False)
            self._events.append(FlowClosed(old, "evicted: fallback table full"))

    def _reject_new(self, data: bytes, addr: Any, now: float, verdict: RealityVerdict) -> Forward:
        self._add_fallback(addr, now, _new_initial_dcid(data))
        return Forward(addr, data, new_flow=True, verdict=verdict)

    def _reject_pending(
        self, addr: Any, flow: _PendingFlow, data: bytes, now: float, verdict: RealityVerdict
    ) -> Forward:
        self._pending.pop(addr, None)
        self._add_fallback(addr, now, flow.dcid)
        return Forward(addr, data, new_flow=False, verdict=verdict, release=tuple(flow.held))

    def _accept(
        self,
        flow: _PendingFlow,
        addr: Any,
        now: float,
        verdict: RealityVerdict,
        data: bytes,
        *,
        new_flow: bool,
    ) -> Accept:
        self._accepted[addr] = now + self.limits.accepted_drain
        self._accepted.move_to_end(addr)
        while len(self._accepted) > self.limits.max_fallback_flows:  # bounded like the relays
            old, _ = self._accepted.popitem(last=False)
            self._events.append(FlowClosed(old, "accepted: drain table full"))
        return Accept(
            datagrams=tuple(flow.datagrams),
            configure=configure_accepted(self.identity, verdict, flow.hello, now),
            addr=addr,
            verdict=verdict,
            mirror=data,
            new_flow=new_flow,
        )

    def _maybe_verdict(self, flow: _PendingFlow) -> RealityVerdict | None:
        """Verify the ClientHello once its bytes are complete; None while incomplete."""
        have = flow.assembly.contiguous()
        if have == 0:
            return None
        hello = flow.assembly.data
        if hello[0] != _CLIENT_HELLO:
            return RealityVerdict(Reason.NOT_CLIENT_HELLO, detail=f"handshake type {hello[0]}")
        if have < 4:
            return None
        total = 4 + int.from_bytes(hello[1:4], "big")
        if total > self.limits.max_client_hello_bytes:
            return RealityVerdict(Reason.TOO_LARGE, detail=f"ClientHello of {total} bytes")
        if have < total:
            return None
        flow.hello = bytes(hello[:total])
        return verify_client_hello(flow.hello, self.config, self._wall_clock(), self.replay_cache)

    def _ingest(self, flow: _PendingFlow, data: bytes) -> RealityVerdict | None:
        """Open the datagram's Initial packets and collect CRYPTO data; a verdict on bad input."""
        buf = Buffer(data=data)
        while not buf.eof():
            start = buf.tell()
            try:
                header = pull_quic_header(buf, host_cid_length=None)
            except MalformedPacketError:
                break  # the rest of the datagram (a short header or junk) is not ours to read
            end = header.packet_end
            buf.seek(end)
            if (
                header.packet_type != PACKET_TYPE_INITIAL
                or header.version != QUIC_VERSION_1
                or header.destination_cid != flow.dcid
            ):
                continue
            try:
                plain, payload, pn = flow.crypto.decrypt_packet(
                    data[start:end], header.pn_offset - start, flow.largest_pn + 1
                )
            except CryptoError:
                continue  # a real server drops it too (RFC 9001 §5.5)
            if plain[0] & 0x0C:
                return RealityVerdict(Reason.MALFORMED_INITIAL, detail="reserved bits set")
            flow.largest_pn = max(flow.largest_pn, pn)
            seen = flow.assembly.packet(pn, payload)
            if seen is PacketCheck.DUPLICATE:
                continue  # a network duplicate: the connection drops it as well
            if seen is PacketCheck.CONFLICT:
                # The connection keeps the first packet with a number and drops the rest: the two
                # would read different hellos (security finding 1).
                return RealityVerdict(Reason.REPEATED_PACKET_NUMBER,
                                      detail=f"packet {pn} again with another payload")
            verdict = self._frames(flow, payload)
            if verdict is not None:
                return verdict
        return None

    def _frames(self, flow: _PendingFlow, payload: bytes) -> RealityVerdict | None:
        """Walk an Initial payload: only PADDING, PING, ACK, CRYPTO, CONNECTION_CLOSE (RFC 9000 §12.4)."""
        if not payload:
            return RealityVerdict(Reason.MALFORMED_INITIAL, detail="packet without frames")
        buf = Buffer(data=payload)
        limit = self.limits.max_client_hello_bytes
        try:
            while not buf.eof():
                frame_type = buf.pull_uint_var()
                if not frame_allowed(frame_type, PACKET_TYPE_INITIAL):
                    return RealityVerdict(
                        Reason.MALFORMED_INITIAL, detail=f"frame {frame_type:#x} in an Initial"
                    )
                frame = pull_frame_body(buf, frame_type)
                if frame_type != FrameType.CRYPTO:
                    continue
                offset, chunk = frame.offset, frame.data  # type: ignore[union-attr]
                stop = offset + len(chunk)
                if stop > limit:
                    return RealityVerdict(Reason.TOO_LARGE, detail=f"CRYPTO data up to {stop}")
                stored = flow.assembly.add(offset, chunk)
                if stored is Chunk.CONFLICT:
                    return RealityVerdict(Reason.CRYPTO_CONFLICT,
                                          detail=f"CRYPTO {offset}..{stop} contradicts earlier bytes")
                if stored is Chunk.TOO_FRAGMENTED:
                    return RealityVerdict(
                        Reason.TOO_FRAGMENTED,
                        detail=f"more than {self.limits.max_crypto_fragments} CRYPTO frames")
        except (QuicConnectionError, BufferReadError) as exc:
            return RealityVerdict(Reason.MALFORMED_INITIAL, detail=str(exc))
        return None


def _new_initial_dcid(data: bytes) -> bytes | None:
    """The DCID if ``data`` starts with a QUIC v1 Initial packet (a cheap look, no parsing of the
    rest), else None."""
    if len(data) < 7 or data[0] & 0xF0 != 0xC0 or data[1:5] != b"\x00\x00\x00\x01":
        return None
    n = data[5]
    if n > 20 or len(data) < 6 + n:
        return None
    return bytes(data[6 : 6 + n])


def _long_header_scid(data: bytes) -> bytes | None:
    """The Source Connection ID of a long-header packet (not Version Negotiation), else None."""
    if len(data) < 7 or data[1:5] == b"\x00\x00\x00\x00":
        return None
    dcid_len = data[5]
    at = 6 + dcid_len
    if at >= len(data):
        return None
    scid_len = data[at]
    if scid_len > 20 or at + 1 + scid_len > len(data):
        return None
    return bytes(data[at + 1 : at + 1 + scid_len])


def _first_initial_header(data: bytes) -> tuple[bytes, bytes] | None:
    """``(dcid, scid)`` if ``data`` starts with a QUIC v1 Initial and is >= 1200 bytes, else None."""
    if len(data) < MIN_INITIAL_DATAGRAM:
        return None
    try:
        header = pull_quic_header(Buffer(data=data), host_cid_length=None)
    except MalformedPacketError:
        return None
    if header.packet_type != PACKET_TYPE_INITIAL or header.version != QUIC_VERSION_1:
        return None
    if not 8 <= len(header.destination_cid) <= 20:
        return None  # RFC 9000 §7.2: a client's first DCID has at least 8 bytes
    return header.destination_cid, header.source_cid
