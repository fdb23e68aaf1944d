"""Server-side demultiplexing, sans-IO: route datagrams to connections, create connections on
Initials, and answer statelessly (Version Negotiation, Retry, stateless reset).

The I/O edge calls :meth:`QuicServerEndpoint.receive_datagram` for each datagram, sends the returned
stateless replies, and afterwards drives the returned connection's send path once per batch.

Connection IDs may have a different length per connection (``connection_id_length`` of each
connection's configuration, e.g. a REALITY connection copies its target's): a short header does not
say how long its DCID is (RFC 9000 §17.3), so the endpoint tries the lengths of the IDs it routes,
longest first, and takes the first that names a connection (a shorter ID that happens to be a
prefix of a longer one cannot capture its packets; a longer one matching a short ID's packet needs
as many random bytes to agree as it is long).
An optional ``gate`` (the REALITY hook, :class:`EndpointGate`) sees every datagram that matches no
connection and decides; on an :class:`Admission` the endpoint creates the connection.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..wire.buffer import Buffer, BufferReadError
from .admission import DEFAULT_MAX_HANDSHAKES, Admit, HandshakeBudget
from .config import QuicConfiguration
from .connection import QuicConnection
from .errors import QuicErrorCode
from .packet import (
    MIN_INITIAL_DATAGRAM_SIZE,
    PACKET_TYPE_INITIAL,
    STATELESS_RESET_MIN_SIZE,
    MalformedPacketError,
    encode_quic_retry,
    encode_quic_version_negotiation,
    encode_stateless_reset,
    pull_quic_header,
)
from .tokens import InvalidTokenError, RetryTokenHandler, stateless_reset_token

#: Connection IDs the peer retired that stay routed, per connection, newest kept: packets the
#: peer sent before its RETIRE_CONNECTION_ID can arrive after it (reordering, or another socket
#: read first after a migration), and a stateless reset for them would end the connection (RFC
#: 9000 §10.3 allows a reset only for packets with no active connection). Bounded, so a peer that
#: keeps retiring cannot grow the table.
RETIRED_ROUTES_KEPT = 8


@dataclass(frozen=True, slots=True)
class Received:
    """What the endpoint did with a datagram.

    ``gate`` is the gate's decision when the datagram went through the gate (the edge acts on it).
    """

    connection: QuicConnection | None
    replies: tuple[tuple[bytes, Any], ...] = ()
    new: bool = False
    gate: Any = None


@dataclass(frozen=True, slots=True)
class Admission:
    """A gate's decision to create a connection from ``datagrams`` (the first is an Initial).

    ``configure`` adjusts the fresh per-connection configuration (e.g. REALITY's certificate source).
    """

    datagrams: tuple[bytes, ...]
    configure: Callable[[QuicConfiguration], None] | None = None


class EndpointGate(Protocol):
    """Sees every datagram that matches no connection, before any state exists (the REALITY hook).

    It returns a decision: an :class:`Admission` (the endpoint creates the connection) or anything
    else, which the endpoint passes to the edge in :attr:`Received.gate` without answering itself.
    """

    def receive_datagram(self, data: bytes, addr: Any, now: float) -> Any:
        """Decide about one datagram."""
        ...


class QuicServerEndpoint:
    """Routes datagrams by destination connection ID (of any length its connections use).

    With a ``gate``, every datagram that matches no connection goes to the gate, and the endpoint
    itself never answers (no Version Negotiation, Retry or stateless reset). Without one, at most
    ``max_handshakes`` connections are kept in their first flight; beyond that new Initials get a
    Retry (:mod:`.admission`).
    """

    def __init__(self, configuration_factory: Callable[[], QuicConfiguration], *,
                 rng: Callable[[int], bytes], retry: bool = False,
                 gate: EndpointGate | None = None,
                 max_handshakes: int = DEFAULT_MAX_HANDSHAKES):
        if gate is not None and retry:
            raise ValueError("a gated endpoint cannot send Retry (it never answers unknown flows)")
        self._factory = configuration_factory
        self._rng = rng
        self._retry = retry
        self._gate = gate
        self._admitted_from: dict[bytes, Any] = {}  # gated: the client's first DCID -> its address
        self._retry_tokens = RetryTokenHandler(rng) if retry else None
        self.handshakes = HandshakeBudget(max_handshakes)
        self._reset_key = rng(32)
        sample = configuration_factory()
        self._cid_length = sample.connection_id_length
        self._versions = sample.supported_versions
        self._by_cid: dict[bytes, QuicConnection] = {}
        self._lengths: Counter[int] = Counter()  # routed IDs per length
        self._longest_first: tuple[int, ...] = ()
        self._routes: dict[QuicConnection, set[bytes]] = {}  # per connection: its keys in _by_cid
        #: per connection: retired IDs still routed (a subset of its routes), oldest first
        self._retired: dict[QuicConnection, deque[bytes]] = {}
        #: per connection: the ``host_cids`` list its routes were last synced with (unchanged:
        #: the same object, so :meth:`refresh` per datagram is one identity check)
        self._synced: dict[QuicConnection, list[bytes]] = {}
        self._received: dict[QuicConnection, Received] = {}  # Received(conn), made once
        self.connections: set[QuicConnection] = set()

    def receive_datagram(self, data: bytes, addr: Any, now: float, ecn: int = 0) -> Received:
        """Route one datagram (``ecn``: its IP ECN bits); create a connection for a new Initial."""
        if data and data[0] & 0xC0 == 0x40:
            # Fast path: a short header with the fixed bit set (RFC 9000 §17.3.1) is routed by its
            # Destination Connection ID alone; the connection parses the header itself.
            length = self._short_cid_length(data)
            conn = self._by_cid.get(data[1:1 + length]) if len(data) > length else None
            if conn is not None:
                return self._deliver(conn, data, addr, now, ecn)
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=self._short_cid_length(data))
        except (MalformedPacketError, BufferReadError, ValueError):
            if self._gate is not None:
                return self._through_gate(data, addr, now, ecn)
            return Received(None)
        conn = self._by_cid.get(header.destination_cid)
        if conn is not None and self._gate is not None and header.packet_type == PACKET_TYPE_INITIAL \
                and self._admitted_from.get(header.destination_cid, addr) != addr:
            # The client's first DCID from another address: a replayed first flight. The gate
            # judges it as a new flow (REALITY: a replay goes to the target, spec §7).
            return self._through_gate(data, addr, now, ecn)
        if conn is not None:
            return self._deliver(conn, data, addr, now, ecn)
        if self._gate is not None:
            return self._through_gate(data, addr, now, ecn)
        if not header.is_long_header:
            return Received(None, self._stateless_reset(header.destination_cid, len(data), addr))
        if header.version not in self._versions:
            if len(data) >= MIN_INITIAL_DATAGRAM_SIZE:
                vn = encode_quic_version_negotiation(
                    source_cid=header.destination_cid, destination_cid=header.source_cid,
                    supported_versions=list(self._versions))
                return Received(None, ((vn, addr),))
            return Received(None)
        if header.packet_type != PACKET_TYPE_INITIAL or len(data) < MIN_INITIAL_DATAGRAM_SIZE:
            return Received(None)
        odcid = header.destination_cid
        retry_scid: bytes | None = None
        if header.token and self._retry_tokens is not None:
            try:
                contents = self._retry_tokens.validate(
                    header.token, addr=addr, destination_cid=header.destination_cid, now=now)
                odcid, retry_scid = contents.original_destination_cid, header.destination_cid
            except InvalidTokenError:
                if self._retry:
                    return Received(None)  # RFC 9000 §8.1.3: drop
        verdict = self.handshakes.judge(validated=retry_scid is not None, retry_always=self._retry)
        if verdict.action is Admit.RETRY:
            return Received(None, (self._retry_packet(header, addr, now),))
        if verdict.action is Admit.DROP:
            return Received(None)
        config = self._factory()
        config.is_client = False
        config.stateless_reset_key = self._reset_key
        conn = QuicConnection(
            configuration=config,
            original_destination_connection_id=odcid,
            retry_source_connection_id=retry_scid,
            initial_destination_connection_id=header.destination_cid,
            peer_cid=header.source_cid,
            version=header.version,
        )
        self.connections.add(conn)
        self._route(header.destination_cid, conn)
        self.handshakes.started(conn, now)
        conn.receive_datagram(data, addr, now, ecn)
        self.refresh(conn)
        return Received(conn, new=True)

    def routes(self, data: bytes) -> bool:
        """True if ``data``'s first packet names a connection of ours by its DCID: a look at the
        header bytes only, nothing decrypted (an edge under load serves these first)."""
        if not data:
            return False
        if data[0] & 0x80:  # long header: the DCID length is in the header (RFC 9000 §17.2)
            n = data[5] if len(data) > 5 else 0
            return 0 < n <= 20 and bytes(data[6:6 + n]) in self._by_cid
        by_cid = self._by_cid
        return any(data[1:1 + length] in by_cid for length in self._longest_first)

    def _retry_packet(self, header: Any, addr: Any, now: float) -> tuple[bytes, Any]:
        """A Retry for ``header``'s Initial (RFC 9000 §17.2.5); keeps no state."""
        if self._retry_tokens is None:
            self._retry_tokens = RetryTokenHandler(self._rng)  # first time under load
        new_scid = self._rng(self._cid_length)
        token = self._retry_tokens.issue(addr=addr, original_destination_cid=header.destination_cid,
                                         retry_source_cid=new_scid, now=now)
        retry = encode_quic_retry(
            version=header.version or self._versions[0], source_cid=new_scid,
            destination_cid=header.source_cid, original_destination_cid=header.destination_cid,
            retry_token=token)
        return retry, addr

    def _deliver(self, conn: QuicConnection, data: bytes, addr: Any, now: float,
                 ecn: int) -> Received:
        """A datagram for a known connection."""
        conn.receive_datagram(data, addr, now, ecn)
        if self.handshakes.in_progress and self.handshakes.overdue(conn, now):  # slowloris
            conn.close(QuicErrorCode.CONNECTION_REFUSED, None, "handshake timeout",
                       application=False)
        self.refresh(conn)
        got = self._received.get(conn)
        if got is None:  # one immutable answer per connection, not one per datagram
            got = self._received[conn] = Received(conn)
        return got

    def _short_cid_length(self, data: bytes) -> int:
        """The DCID length to read a datagram's first packet with (only a short header needs it)."""
        lengths = self._longest_first
        if len(lengths) > 1 and data and not data[0] & 0x80:
            by_cid = self._by_cid
            for length in lengths:
                if data[1:1 + length] in by_cid:
                    return length
        return lengths[0] if len(lengths) == 1 else self._cid_length

    def _route(self, cid: bytes, conn: QuicConnection) -> None:
        if cid not in self._by_cid:
            self._lengths[len(cid)] += 1
            if self._lengths[len(cid)] == 1:
                self._longest_first = tuple(sorted(self._lengths, reverse=True))
        self._by_cid[cid] = conn

    def _unroute(self, cid: bytes) -> None:
        del self._by_cid[cid]
        left = self._lengths[len(cid)] - 1
        if left:
            self._lengths[len(cid)] = left
        else:
            del self._lengths[len(cid)]
            self._longest_first = tuple(sorted(self._lengths, reverse=True))

    def _through_gate(self, data: bytes, addr: Any, now: float, ecn: int = 0) -> Received:
        """Let the gate decide; on an :class:`Admission` create the connection and replay into it."""
        assert self._gate is not None
        decision = self._gate.receive_datagram(data, addr, now)
        if not isinstance(decision, Admission):
            return Received(None, gate=decision)
        header = pull_quic_header(Buffer(data=decision.datagrams[0]),
                                  host_cid_length=self._cid_length)
        config = self._factory()
        config.is_client = False
        config.stateless_reset_key = self._reset_key
        if decision.configure is not None:
            decision.configure(config)
        conn = QuicConnection(
            configuration=config,
            original_destination_connection_id=header.destination_cid,
            initial_destination_connection_id=header.destination_cid,
            peer_cid=header.source_cid,
            version=header.version,
        )
        self.connections.add(conn)
        self._route(header.destination_cid, conn)
        self._admitted_from[header.destination_cid] = addr
        self.handshakes.started(conn, now)
        for datagram in decision.datagrams:  # held by the gate; assumed marked like this one
            conn.receive_datagram(datagram, addr, now, ecn)
        self.refresh(conn)
        return Received(conn, new=True, gate=decision)

    def refresh(self, conn: QuicConnection) -> None:
        """Sync routing with the connection's current IDs; forget terminated connections.

        New IDs are routed. IDs the peer retired (RFC 9000 §5.1.2) stay routed until
        :data:`RETIRED_ROUTES_KEPT` newer ones were retired. The ID the client chose for its first
        Initial stays routed for the connection's lifetime.
        """
        if self.handshakes.in_progress:
            self.handshakes.update(conn)
        if conn.is_terminated:
            self.forget(conn)
            return
        live = conn.host_cids
        if self._synced.get(conn) is live:
            return
        by_cid = self._by_cid
        routes = self._routes.get(conn)
        if routes is None:
            routes = self._routes[conn] = {conn.initial_destination_connection_id}
        complete = True
        for cid in live:
            if cid not in routes:
                if cid in by_cid:  # another connection's: tried again on the next refresh
                    complete = False
                    continue
                self._route(cid, conn)
                routes.add(cid)
        if complete:
            self._synced[conn] = live
        retired = self._retired.get(conn)
        if len(routes) > len(live) + 1 + (len(retired) if retired is not None else 0):
            stale = routes.difference(live)
            stale.discard(conn.initial_destination_connection_id)
            if retired is None:
                retired = self._retired[conn] = deque()
            else:
                stale.difference_update(retired)
            retired.extend(stale)
            while len(retired) > RETIRED_ROUTES_KEPT:
                cid = retired.popleft()
                routes.discard(cid)
                if by_cid.get(cid) is conn:
                    self._unroute(cid)

    def forget(self, conn: QuicConnection) -> None:
        """Remove every route to ``conn`` (costs the number of its own IDs)."""
        known = conn in self.connections
        self.connections.discard(conn)
        self.handshakes.forget(conn)
        self._synced.pop(conn, None)
        self._received.pop(conn, None)
        self._retired.pop(conn, None)
        cids = self._routes.pop(conn, None)
        if cids is None:
            if not known:
                return
            # Never refreshed (its first datagram raised): find its routes the slow way.
            cids = {c for c, v in self._by_cid.items() if v is conn}
        for cid in cids:
            if self._by_cid.get(cid) is conn:
                self._unroute(cid)
            self._admitted_from.pop(cid, None)

    def _stateless_reset(self, dcid: bytes, size: int, addr: Any) -> tuple[tuple[bytes, Any], ...]:
        """RFC 9000 §10.3: answer an unknown short-header packet with a stateless reset."""
        if size <= STATELESS_RESET_MIN_SIZE + 1:
            return ()
        token = stateless_reset_token(self._reset_key, dcid)
        length = min(size - 1, 43)
        packet = encode_stateless_reset(token=token, unpredictable=self._rng(length - 16))
        return ((packet, addr),)
