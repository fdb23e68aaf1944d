"""Session resumption and 0-RTT (RFC 8446 §2.2, §4.2.10, §4.2.11, §4.6.1, §8; RFC 9001 §4.6).

Client side: a :class:`SessionTicket` is what a NewSessionTicket leaves behind (the PSK, the
ticket's identity and age offset, the negotiated ALPN and suite, and the server's transport
parameters, remembered for 0-RTT, RFC 9000 §7.4.1); it serializes to bytes for a ticket file.

Server side: :class:`ServerTicketStore` seals the resumption state into the ticket itself under a
key (AES-256-GCM, no per-ticket state), and decides on each offered PSK with a verdict. Anti-replay
(RFC 8446 §8): tickets are single use. The store keeps a bounded strike register of the ids of
redeemed tickets until they expire; when it is full the oldest entry is evicted and every ticket
issued before the evicted one's issue time is refused from then on (so a replay can never slip
through an eviction). A refused or replayed ticket falls back to a full handshake, which rejects
its 0-RTT. 0-RTT is also refused when the ticket age is off by more than
:data:`MAX_EARLY_DATA_SKEW` (RFC 8446 §8.3).

Nothing here reads a clock or a random source: times (Unix seconds) and ``rng`` are passed in.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..wire.buffer import Buffer, BufferReadError
from .alerts import AlertDescription, TlsAlert
from .constants import ExtensionType
from .hkdf import SUITE_HASH
from .messages import NewSessionTicket, encode_new_session_ticket

#: max_early_data_size a QUIC server puts in NewSessionTicket (RFC 9001 §4.6.1).
QUIC_MAX_EARLY_DATA_SIZE = 0xFFFFFFFF
#: Longest ticket lifetime allowed (RFC 8446 §4.6.1: seven days).
MAX_TICKET_LIFETIME = 604800
#: Default ticket lifetime (seconds) of our server.
DEFAULT_TICKET_LIFETIME = 7200
#: Largest difference between the ticket age the client reports and the one the server
#: expects before 0-RTT is refused (RFC 8446 §8.3 freshness window), seconds.
MAX_EARLY_DATA_SKEW = 10.0
#: Strike register bound (entries) by default.
DEFAULT_STRIKE_CAPACITY = 4096

_TICKET_FORMAT = b"QRT1"  # client ticket file format
_SEAL_AAD = b"quicreality session ticket v1"
_SEAL_NONCE = 12
_TICKET_ID = 16


def _push_vec(buf: Buffer, data: bytes) -> None:
    buf.push_uint_var(len(data))
    buf.push_bytes(data)


def _pull_vec(buf: Buffer) -> bytes:
    return buf.pull_bytes(buf.pull_uint_var())


# --- client: the stored ticket ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionTicket:
    """A ticket the client keeps to resume with (RFC 8446 §4.6.1).

    Attributes:
        server_name: the SNI of the connection that received it (offered only to the same name).
        alpn_protocol: the ALPN negotiated then (0-RTT needs the same one, RFC 9001 §4.6.2).
        cipher_suite: the suite negotiated then (its hash goes with the PSK, RFC 8446 §4.2.11).
        ticket: the opaque identity to offer.
        psk: the resumption PSK (a secret; the ticket file must stay private).
        ticket_age_add: the server's age obfuscation (RFC 8446 §4.2.11.1).
        lifetime: seconds the ticket is valid after ``received_at``.
        received_at: Unix time (seconds) it was received.
        max_early_data_size: 0 when the server allows no 0-RTT with it.
        transport_parameters: the server's quic_transport_parameters body of that connection,
            remembered for 0-RTT (RFC 9000 §7.4.1).
    """

    server_name: str | None
    alpn_protocol: str | None
    cipher_suite: int
    ticket: bytes
    psk: bytes
    ticket_age_add: int
    lifetime: int
    received_at: float
    max_early_data_size: int = 0
    transport_parameters: bytes = b""

    def serialize(self) -> bytes:
        """The ticket as bytes (see :func:`push_session_ticket`)."""
        buf = Buffer(capacity=640 + len(self.ticket) + len(self.transport_parameters))
        push_session_ticket(buf, self)
        return buf.data

    @classmethod
    def parse(cls, data: bytes) -> SessionTicket:
        """Read :meth:`serialize` output.

        Raises:
            ValueError: not a ticket in this format.
        """
        try:
            buf = Buffer(data=data)
            ticket = pull_session_ticket(buf)
        except BufferReadError as exc:
            raise ValueError("truncated session ticket") from exc
        if not buf.eof():
            raise ValueError("trailing bytes after the session ticket")
        return ticket

    def age_ms(self, now: float) -> int:
        """Milliseconds since the ticket was received."""
        return max(0, int((now - self.received_at) * 1000))

    def obfuscated_age(self, now: float) -> int:
        """obfuscated_ticket_age for the pre_shared_key offer (RFC 8446 §4.2.11.1)."""
        return (self.age_ms(now) + self.ticket_age_add) & 0xFFFFFFFF

    def usable(self, now: float, server_name: str | None) -> bool:
        """Within its lifetime and for the same server name."""
        return self.server_name == server_name and 0 <= now - self.received_at < self.lifetime


def push_session_ticket(buf: Buffer, t: SessionTicket) -> None:
    """Write a ticket: format tag, then varint-length fields."""
    buf.push_bytes(_TICKET_FORMAT)
    _push_vec(buf, (t.server_name or "").encode())
    _push_vec(buf, (t.alpn_protocol or "").encode())
    buf.push_uint16(t.cipher_suite)
    _push_vec(buf, t.ticket)
    _push_vec(buf, t.psk)
    buf.push_uint32(t.ticket_age_add)
    buf.push_uint32(t.lifetime)
    buf.push_uint64(int(t.received_at * 1000))
    buf.push_uint32(t.max_early_data_size)
    _push_vec(buf, t.transport_parameters)


def pull_session_ticket(buf: Buffer) -> SessionTicket:
    """Read a ticket written by :func:`push_session_ticket`.

    Raises:
        ValueError: wrong format tag. BufferReadError: truncated.
    """
    if buf.pull_bytes(4) != _TICKET_FORMAT:
        raise ValueError("not a quicreality session ticket (bad format tag)")
    name = _pull_vec(buf).decode() or None
    alpn = _pull_vec(buf).decode() or None
    suite = buf.pull_uint16()
    ticket = _pull_vec(buf)
    psk = _pull_vec(buf)
    age_add = buf.pull_uint32()
    lifetime = buf.pull_uint32()
    received_at = buf.pull_uint64() / 1000
    max_early = buf.pull_uint32()
    params = _pull_vec(buf)
    return SessionTicket(name, alpn, suite, ticket, psk, age_add, lifetime, received_at,
                         max_early, params)


# --- extensions -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PskOffer:
    """The client's pre_shared_key extension (RFC 8446 §4.2.11): identities and binders."""

    identities: tuple[tuple[bytes, int], ...]
    binders: tuple[bytes, ...]

    @property
    def binders_size(self) -> int:
        """Bytes of the binders list at the end of the ClientHello (its length prefix included)."""
        return 2 + sum(1 + len(b) for b in self.binders)


def encode_psk_offer(offer: PskOffer) -> bytes:
    """The pre_shared_key extension body of a ClientHello."""
    ids = b"".join(len(i).to_bytes(2, "big") + i + age.to_bytes(4, "big")
                   for i, age in offer.identities)
    binders = b"".join(bytes([len(b)]) + b for b in offer.binders)
    return len(ids).to_bytes(2, "big") + ids + len(binders).to_bytes(2, "big") + binders


def parse_psk_offer(data: bytes) -> PskOffer:
    """Parse a ClientHello pre_shared_key body.

    Raises:
        TlsAlert: decode_error when malformed or when identities and binders do not pair up.
    """
    try:
        buf = Buffer(data=data)
        ids_buf = Buffer(data=buf.pull_bytes(buf.pull_uint16()))
        identities = []
        while not ids_buf.eof():
            identity = ids_buf.pull_bytes(ids_buf.pull_uint16())
            identities.append((identity, ids_buf.pull_uint32()))
        binders_buf = Buffer(data=buf.pull_bytes(buf.pull_uint16()))
        binders = []
        while not binders_buf.eof():
            binders.append(binders_buf.pull_bytes(binders_buf.pull_uint8()))
    except BufferReadError:
        raise TlsAlert(AlertDescription.decode_error, "malformed pre_shared_key") from None
    if not buf.eof() or not identities or len(identities) != len(binders) or \
            any(len(b) < 32 for b in binders):
        raise TlsAlert(AlertDescription.decode_error, "malformed pre_shared_key")
    return PskOffer(tuple(identities), tuple(binders))


def encode_early_data_indication(max_early_data_size: int) -> bytes:
    """early_data in NewSessionTicket: uint32 max_early_data_size (RFC 8446 §4.2.10)."""
    return max_early_data_size.to_bytes(4, "big")


def ticket_max_early_data(extensions: tuple[tuple[int, bytes], ...]) -> int:
    """max_early_data_size of a NewSessionTicket's extensions (0 without early_data).

    Raises:
        TlsAlert: decode_error for a malformed early_data extension.
    """
    for ext_type, data in extensions:
        if ext_type == ExtensionType.EARLY_DATA:
            if len(data) != 4:
                raise TlsAlert(AlertDescription.decode_error, "malformed early_data")
            return int.from_bytes(data, "big")
    return 0


# --- server: sealed tickets, strike register, verdicts ----------------------------------


@dataclass(frozen=True, slots=True)
class TicketState:
    """What a ticket seals: everything the server needs to resume (RFC 8446 §4.6.1).

    ``early_data_context`` holds the server settings 0-RTT depends on (the QUIC layer puts its
    remembered transport parameters there, RFC 9000 §7.4.1): 0-RTT is refused when they changed.
    """

    ticket_id: bytes
    issued_at: float
    cipher_suite: int
    alpn_protocol: str | None
    psk: bytes
    ticket_age_add: int
    lifetime: int
    max_early_data_size: int
    early_data_context: bytes


@dataclass(frozen=True, slots=True)
class PskVerdict:
    """The server's decision on an offered PSK: ``state`` is set only when ``accepted``."""

    accepted: bool
    reason: str
    state: TicketState | None = None


@dataclass(frozen=True, slots=True)
class EarlyDataVerdict:
    """Whether 0-RTT is accepted (RFC 9001 §4.6.2), with the reason."""

    accepted: bool
    reason: str


class StrikeRegister:
    """Ids of redeemed tickets until they expire, at most ``capacity`` of them (RFC 8446 §8.2)."""

    __slots__ = ("_entries", "capacity", "refuse_issued_before")

    def __init__(self, capacity: int = DEFAULT_STRIKE_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("strike register capacity must be at least 1")
        self.capacity = capacity
        self._entries: OrderedDict[bytes, tuple[float, float]] = OrderedDict()
        #: tickets issued at or before this time are refused (set by evictions)
        self.refuse_issued_before = float("-inf")

    def __len__(self) -> int:
        return len(self._entries)

    def redeem(self, ticket_id: bytes, issued_at: float, expires_at: float,
               now: float) -> PskVerdict:
        """Record one use of a ticket; refuse a second one."""
        for tid, (_, expiry) in list(self._entries.items()):
            if expiry <= now:
                del self._entries[tid]
        if issued_at <= self.refuse_issued_before:
            return PskVerdict(False, "ticket older than the strike register remembers")
        if ticket_id in self._entries:
            return PskVerdict(False, "ticket already used (single-use tickets)")
        if len(self._entries) >= self.capacity:
            _, (evicted_issued, _) = self._entries.popitem(last=False)
            self.refuse_issued_before = max(self.refuse_issued_before, evicted_issued)
        self._entries[ticket_id] = (issued_at, expires_at)
        return PskVerdict(True, "first use")


class ServerTicketStore:
    """Issues and redeems a server's tickets; shared by all its connections.

    Args:
        key: 32-byte ticket sealing key (from the server's randomness; a restart forgets tickets).
        lifetime: ticket_lifetime in seconds (at most :data:`MAX_TICKET_LIFETIME`).
        max_early_data_size: what NewSessionTicket allows (QUIC: :data:`QUIC_MAX_EARLY_DATA_SIZE`;
            0 turns 0-RTT off).
        strike_capacity: bound of the :class:`StrikeRegister`.
    """

    def __init__(self, key: bytes, *, lifetime: int = DEFAULT_TICKET_LIFETIME,
                 max_early_data_size: int = QUIC_MAX_EARLY_DATA_SIZE,
                 strike_capacity: int = DEFAULT_STRIKE_CAPACITY) -> None:
        if len(key) != 32:
            raise ValueError("the ticket key must be 32 bytes")
        if not 0 < lifetime <= MAX_TICKET_LIFETIME:
            raise ValueError(f"ticket lifetime must be within 1..{MAX_TICKET_LIFETIME} s")
        self._aead = AESGCM(key)
        self.lifetime = lifetime
        self.max_early_data_size = max_early_data_size
        self.strikes = StrikeRegister(strike_capacity)

    def seal(self, state: TicketState, rng: Callable[[int], bytes]) -> bytes:
        """The ticket identity: nonce || AES-GCM(state)."""
        buf = Buffer(capacity=512 + len(state.early_data_context))
        buf.push_bytes(state.ticket_id)
        buf.push_uint64(int(state.issued_at * 1000))
        buf.push_uint16(state.cipher_suite)
        _push_vec(buf, (state.alpn_protocol or "").encode())
        _push_vec(buf, state.psk)
        buf.push_uint32(state.ticket_age_add)
        buf.push_uint32(state.lifetime)
        buf.push_uint32(state.max_early_data_size)
        _push_vec(buf, state.early_data_context)
        nonce = rng(_SEAL_NONCE)
        return nonce + self._aead.encrypt(nonce, buf.data, _SEAL_AAD)

    def open(self, identity: bytes) -> TicketState | None:
        """The state sealed in ``identity``; None when it is not one of ours (or was altered)."""
        if len(identity) <= _SEAL_NONCE + 16:
            return None
        try:
            plain = self._aead.decrypt(identity[:_SEAL_NONCE], identity[_SEAL_NONCE:], _SEAL_AAD)
            buf = Buffer(data=plain)
            tid = buf.pull_bytes(_TICKET_ID)
            issued = buf.pull_uint64() / 1000
            suite = buf.pull_uint16()
            alpn = _pull_vec(buf).decode() or None
            psk = _pull_vec(buf)
            age_add = buf.pull_uint32()
            lifetime = buf.pull_uint32()
            max_early = buf.pull_uint32()
            context = _pull_vec(buf)
        except (InvalidTag, BufferReadError, UnicodeDecodeError):
            return None
        return TicketState(tid, issued, suite, alpn, psk, age_add, lifetime, max_early, context)

    def lookup(self, identity: bytes, *, hash_name: str, now: float) -> PskVerdict:
        """Decide on an offered identity before its binder is checked: ours, unexpired and with
        the selected suite's hash (RFC 8446 §4.2.11). It is not consumed yet (:meth:`consume`)."""
        state = self.open(identity)
        if state is None:
            return PskVerdict(False, "unknown or altered ticket")
        if not 0 <= now - state.issued_at < state.lifetime:
            return PskVerdict(False, "ticket expired")
        if hash_name_for_suite(state.cipher_suite) != hash_name:
            return PskVerdict(False, "ticket suite hash differs from the selected suite's")
        return PskVerdict(True, "ticket valid", state)

    def consume(self, state: TicketState, now: float) -> PskVerdict:
        """Redeem a ticket whose binder verified: refused when it was used before."""
        verdict = self.strikes.redeem(state.ticket_id, state.issued_at,
                                      state.issued_at + state.lifetime, now)
        return PskVerdict(True, "ticket accepted", state) if verdict.accepted else verdict

    def issue(self, *, cipher_suite: int, alpn_protocol: str | None, psk_of: Callable[[bytes], bytes],
              early_data_context: bytes, rng: Callable[[int], bytes], now: float) -> bytes:
        """A NewSessionTicket message (RFC 8446 §4.6.1); ``psk_of(nonce)`` derives its PSK."""
        nonce = b"\x00"  # one ticket per connection: the nonce only has to be unique within it
        state = TicketState(
            ticket_id=rng(_TICKET_ID), issued_at=now, cipher_suite=cipher_suite,
            alpn_protocol=alpn_protocol, psk=psk_of(nonce),
            ticket_age_add=int.from_bytes(rng(4), "big"), lifetime=self.lifetime,
            max_early_data_size=self.max_early_data_size, early_data_context=early_data_context)
        extensions: tuple[tuple[int, bytes], ...] = ()
        if self.max_early_data_size:
            extensions = ((ExtensionType.EARLY_DATA,
                           encode_early_data_indication(self.max_early_data_size)),)
        return encode_new_session_ticket(NewSessionTicket(
            self.lifetime, state.ticket_age_add, nonce, self.seal(state, rng), extensions))


def hash_name_for_suite(cipher_suite: int) -> str:
    """hashlib name of a suite's hash; "" for a suite we do not know."""
    return SUITE_HASH.get(cipher_suite, "")


def decide_early_data(state: TicketState, *, obfuscated_age: int, offered: bool,
                      first_identity: bool, hello_retry: bool, alpn_protocol: str | None,
                      cipher_suite: int, early_data_context: bytes,
                      now: float) -> EarlyDataVerdict:
    """RFC 8446 §4.2.10 and RFC 9001 §4.6.2: accept 0-RTT only with the first PSK, no
    HelloRetryRequest, the same suite and ALPN, unchanged settings and a fresh ticket age."""
    if not offered:
        return EarlyDataVerdict(False, "client did not offer early data")
    if state.max_early_data_size == 0:
        return EarlyDataVerdict(False, "ticket allows no early data")
    if not first_identity:
        return EarlyDataVerdict(False, "PSK is not the first identity")
    if hello_retry:
        return EarlyDataVerdict(False, "after a HelloRetryRequest")
    if cipher_suite != state.cipher_suite:
        return EarlyDataVerdict(False, "cipher suite differs from the ticket's")
    if alpn_protocol != state.alpn_protocol:
        return EarlyDataVerdict(False, "ALPN differs from the ticket's")
    if not hmac.compare_digest(early_data_context, state.early_data_context):
        return EarlyDataVerdict(False, "transport parameters differ from the remembered ones")
    client_age = ((obfuscated_age - state.ticket_age_add) & 0xFFFFFFFF) / 1000
    if abs((now - state.issued_at) - client_age) > MAX_EARLY_DATA_SKEW:
        return EarlyDataVerdict(False, "ticket age outside the freshness window")
    return EarlyDataVerdict(True, "accepted")
