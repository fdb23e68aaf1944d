"""Server-side REALITY authentication of one ClientHello: a pure function returning a verdict.

:func:`verify_client_hello` follows Xray's server (spec §3.1) step by step and names the first check
that fails; the gate and the metrics use that :class:`Reason`. Order: parse, TLS 1.3 offered, SNI
listed, a token carrier, an X25519 share (0x001d first, else the last 32 bytes of 0x11ec),
X25519, AES-GCM open, then version range, timestamp, short ID, and finally our replay cache.

Carriers (:class:`~quicreality.reality.token.Carrier`): the server accepts the token in the
32-byte session_id (Xray's) or in the first 32 bytes of the GREASE ECH payload, and tries each
one the hello has, session_id first. The AEAD open runs once per carrier kind in every case
(stand-in input where the hello lacks it), so the work does not depend on which carriers a hello
has. ``BAD_SESSION_ID`` means the hello has neither.

Nothing here reads a clock: ``now_wall`` (Unix seconds) is an argument.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import Enum

from cryptography.hazmat.primitives.asymmetric import x25519

from ..tls import messages as m
from ..tls.alerts import TlsAlert
from ..tls.constants import Group
from ..wire.buffer import Buffer, BufferReadError
from .config import RealityServerConfig
from .keys import ClientVersion, short_id_fingerprint, version_value
from .token import (
    SESSION_ID_END,
    SESSION_ID_LENGTH,
    SESSION_ID_LENGTH_OFFSET,
    SESSION_ID_OFFSET,
    Carrier,
    derive_auth_key,
    open_client_hello,
    token_span,
)

#: The carriers the server looks for, in the order it tries them.
CARRIERS: tuple[Carrier, ...] = (Carrier.SESSION_ID, Carrier.ECH)

#: TLS group ids (RFC 8446 §4.2.7; draft-kwiatkowski-tls-ecdhe-mlkem for 0x11ec).
GROUP_X25519 = int(Group.X25519)
GROUP_X25519MLKEM768 = int(Group.X25519MLKEM768)
#: X25519MLKEM768 client share: ML-KEM-768 encapsulation key (1184) then X25519 (32) (spec §3.1).
X25519MLKEM768_CLIENT_SHARE_LENGTH = 1184 + 32


class Reason(Enum):
    """Why the gate decided as it did. ``ACCEPT`` is the only accepting value."""

    ACCEPT = "accept"
    # Not a ClientHello in a QUIC v1 Initial (decided by the gate).
    NOT_QUIC_INITIAL = "not_quic_initial"
    MALFORMED_INITIAL = "malformed_initial"
    NOT_CLIENT_HELLO = "not_client_hello"
    REPEATED_PACKET_NUMBER = "repeated_packet_number"
    CRYPTO_CONFLICT = "crypto_conflict"
    # Limits of the gate.
    TOO_LARGE = "too_large"
    TOO_FRAGMENTED = "too_fragmented"
    TIMEOUT = "timeout"
    TOO_MANY_PENDING = "too_many_pending"
    TOO_MANY_PENDING_FROM_SOURCE = "too_many_pending_from_source"
    # verify_client_hello, in the order the checks run.
    PARSE_ERROR = "parse_error"
    NOT_TLS13 = "not_tls13"
    SNI_NOT_ALLOWED = "sni_not_allowed"
    BAD_SESSION_ID = "bad_session_id"
    NO_X25519_SHARE = "no_x25519_share"
    BAD_X25519_SHARE = "bad_x25519_share"
    AEAD_OPEN_FAILED = "aead_open_failed"
    VERSION_OUT_OF_RANGE = "version_out_of_range"
    TIME_SKEW = "time_skew"
    UNKNOWN_SHORT_ID = "unknown_short_id"
    REPLAY = "replay"
    REPLAY_CACHE_FULL = "replay_cache_full"


@dataclass(frozen=True, slots=True)
class RealityVerdict:
    """The outcome for one flow.

    Attributes:
        reason: ``Reason.ACCEPT`` or why the flow goes to the target.
        auth_key: the 32-byte AuthKey, on ACCEPT only (the HMAC certificate needs it).
        server_name: the SNI, when the ClientHello parsed.
        client_version: x.y.z from the token, once it opened.
        client_time: Unix seconds from the token, once it opened.
        short_id: the 8-byte short ID from the token, once it opened (a credential: never in
            ``repr`` or :meth:`describe`, which give its :func:`short_id_fingerprint`).
        carrier: where the token that opened travelled, once it opened.
        detail: a short human explanation for logs.
        client_hello: on ACCEPT, the ClientHello as the gate parsed it (its ``raw`` is the
            verified bytes), so that the accepted connection does not parse it again.
    """

    reason: Reason
    auth_key: bytes | None = field(default=None, repr=False)
    server_name: str | None = None
    client_version: ClientVersion | None = None
    client_time: int | None = None
    short_id: bytes | None = field(default=None, repr=False)
    carrier: Carrier | None = None
    detail: str = ""
    client_hello: m.ClientHello | None = field(default=None, repr=False, compare=False)

    @property
    def accepted(self) -> bool:
        """True only for ``Reason.ACCEPT``."""
        return self.reason is Reason.ACCEPT

    def describe(self) -> dict[str, object]:
        """A JSON-friendly summary for logs and qlog: no key material, no short ID (its
        fingerprint as ``short_id_fp``)."""
        out: dict[str, object] = {"accepted": self.accepted, "reason": self.reason.name}
        if self.server_name is not None:
            out["sni"] = self.server_name
        if self.client_version is not None:
            out["client_version"] = ".".join(map(str, self.client_version))
        if self.client_time is not None:
            out["client_time"] = self.client_time
        if self.short_id is not None:
            out["short_id_fp"] = short_id_fingerprint(self.short_id)
        if self.carrier is not None:
            out["carrier"] = self.carrier.value
        if self.detail:
            out["detail"] = self.detail
        return out


class ReplayCheck(Enum):
    """What :meth:`ReplayCache.admit` found."""

    FRESH = "fresh"  #: not seen; now remembered
    REPLAY = "replay"  #: seen before, and its token time is still inside the window
    FULL = "full"  #: not seen, but there is no room to remember it: refuse (-> the target)


class ReplayCache:
    """Tokens of accepted ClientHellos, each remembered until its token time + ``window`` (spec §7).

    Our addition; Xray has none. A token whose time ``t`` passed the timestamp check can pass it
    again while ``now <= t + window``, so that is how long it is kept, whatever the client's clock
    (a client 50 s ahead with a 60 s window is remembered for 110 s). Keys are the 32-byte sealed
    session_ids (unique per ClientHello: the nonce is the client random).

    Bounded: at most ``capacity`` live entries. A full cache never forgets a live entry early (that
    would let its replay in); it answers :attr:`ReplayCheck.FULL` and the caller sends the flow to
    the target. Forwarding is safe (the target answers with its own certificate); accepting would
    not be.
    """

    def __init__(self, capacity: int, window: float) -> None:
        if capacity <= 0 or window <= 0:
            raise ValueError("capacity and window must be positive")
        self.capacity = capacity
        self.window = window
        self._expiry: dict[bytes, float] = {}
        self._heap: list[tuple[float, bytes]] = []  # (expiry, token), one per live entry

    def __len__(self) -> int:
        return len(self._expiry)

    def expire(self, now_wall: float) -> None:
        """Forget tokens whose time + window has passed."""
        heap, expiry = self._heap, self._expiry
        while heap and heap[0][0] < now_wall:
            _, token = heapq.heappop(heap)
            del expiry[token]

    def admit(self, token: bytes, token_time: float, now_wall: float) -> ReplayCheck:
        """Look ``token`` (sealed at ``token_time``, Unix seconds) up and remember it if fresh."""
        self.expire(now_wall)
        if token in self._expiry:
            return ReplayCheck.REPLAY
        if len(self._expiry) >= self.capacity:
            return ReplayCheck.FULL
        until = max(token_time + self.window, now_wall)
        self._expiry[token] = until
        heapq.heappush(self._heap, (until, token))
        return ReplayCheck.FRESH


#: The X25519 public key used when a hello has none (RFC 7748 §6.1, Bob's): keeps the work equal.
_STAND_IN_SHARE = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")


def _stand_in_hello(raw: bytes) -> bytes:
    """A buffer of the same length shaped like a sealed hello, to open when ``raw`` failed early."""
    length = max(len(raw), SESSION_ID_END)
    return bytes(SESSION_ID_LENGTH_OFFSET) + bytes([SESSION_ID_LENGTH]) + bytes(
        length - SESSION_ID_LENGTH_OFFSET - 1)


def select_x25519_share(key_shares: tuple[m.KeyShareEntry, ...]) -> bytes | None:
    """The peer X25519 key per spec §3.1 step 4.

    The first 0x001d share of exactly 32 bytes; otherwise the last 32 bytes of the first 0x11ec share
    of exactly 1216 bytes; otherwise None.
    """
    for entry in key_shares:
        if entry.group == GROUP_X25519 and len(entry.key_exchange) == 32:
            return entry.key_exchange
    for entry in key_shares:
        if (
            entry.group == GROUP_X25519MLKEM768
            and len(entry.key_exchange) == X25519MLKEM768_CLIENT_SHARE_LENGTH
        ):
            return entry.key_exchange[-32:]
    return None


def _in_version_range(version: ClientVersion, config: RealityServerConfig) -> bool:
    value = version_value(version)
    if config.min_client_ver is not None and value < version_value(config.min_client_ver):
        return False
    return config.max_client_ver is None or value <= version_value(config.max_client_ver)


def verify_client_hello(
    raw_client_hello: bytes,
    config: RealityServerConfig,
    now_wall: float,
    replay_cache: ReplayCache | None,
) -> RealityVerdict:
    """Authenticate one complete ClientHello handshake message (4-byte header included).

    Args:
        raw_client_hello: the message exactly as the client sent it (not modified).
        config: the server configuration.
        now_wall: Unix time in seconds.
        replay_cache: remembers accepted tokens; None disables the replay check.

    Returns:
        A verdict; never raises for bad input.
    """
    try:
        ch = m.pull_client_hello(Buffer(data=raw_client_hello))
    except (TlsAlert, BufferReadError) as exc:
        return RealityVerdict(Reason.PARSE_ERROR, detail=str(exc))
    sni = ch.server_name
    failed: RealityVerdict | None = None
    if not ch.supported_versions or m.TLS_VERSION_1_3 not in ch.supported_versions:
        failed = RealityVerdict(Reason.NOT_TLS13, server_name=sni)
    elif (sni or "") not in config.server_names:
        failed = RealityVerdict(Reason.SNI_NOT_ALLOWED, server_name=sni)
    spans = {carrier: token_span(raw_client_hello, carrier) for carrier in CARRIERS}
    if failed is None and not any(spans.values()):
        failed = RealityVerdict(
            Reason.BAD_SESSION_ID, server_name=sni,
            detail=f"no token carrier: legacy_session_id has {len(ch.legacy_session_id)} bytes "
                   "and there is no ECH payload of 32 bytes or more",
        )
    peer = select_x25519_share(ch.key_share or ())
    if failed is None and peer is None:
        failed = RealityVerdict(Reason.NO_X25519_SHARE, server_name=sni)
    # X25519, HKDF and the AEAD open run whichever check failed above (with stand-in inputs where
    # the hello has none), so the time spent does not tell a prober which one its hello failed,
    # e.g. whether its SNI is listed (security finding 12). The first failure is still the reason.
    try:
        shared = config.private_key_object.exchange(
            x25519.X25519PublicKey.from_public_bytes(peer or _STAND_IN_SHARE))
    except ValueError as exc:  # e.g. an all-zero result (small-order point)
        shared = bytes(32)
        if failed is None:
            failed = RealityVerdict(Reason.BAD_X25519_SHARE, server_name=sni, detail=str(exc))
    auth_key = derive_auth_key(shared, ch.random)
    stand_in = _stand_in_hello(raw_client_hello)
    opened = None
    for carrier in CARRIERS:  # one open per carrier kind, always (see the module docstring)
        span = spans[carrier]
        if failed is None and span is not None:
            plain = open_client_hello(raw_client_hello, auth_key, span)
            if plain is not None and opened is None:
                opened = (carrier, span, plain)
        else:
            open_client_hello(stand_in, auth_key, (SESSION_ID_OFFSET, SESSION_ID_END))
    if failed is not None:
        return failed
    if opened is None:
        return RealityVerdict(Reason.AEAD_OPEN_FAILED, server_name=sni)
    carrier, (start, end), plaintext = opened
    fields = {
        "server_name": sni,
        "client_version": plaintext.version,
        "client_time": plaintext.unix_time,
        "short_id": plaintext.short_id,
        "carrier": carrier,
    }
    if not _in_version_range(plaintext.version, config):
        return RealityVerdict(Reason.VERSION_OUT_OF_RANGE, **fields)  # type: ignore[arg-type]
    skew_ms = abs(now_wall - plaintext.unix_time) * 1000.0
    if skew_ms > config.time_window_ms:  # always on (config.time_window_ms is never 0)
        return RealityVerdict(
            Reason.TIME_SKEW, detail=f"{skew_ms / 1000:.0f} s off", **fields  # type: ignore[arg-type]
        )
    if plaintext.short_id not in config.short_ids:
        return RealityVerdict(Reason.UNKNOWN_SHORT_ID, **fields)  # type: ignore[arg-type]
    token = bytes(raw_client_hello[start:end])
    seen = ReplayCheck.FRESH
    if replay_cache is not None:
        seen = replay_cache.admit(token, plaintext.unix_time, now_wall)
    if seen is ReplayCheck.REPLAY:
        return RealityVerdict(Reason.REPLAY, **fields)  # type: ignore[arg-type]
    if seen is ReplayCheck.FULL:
        return RealityVerdict(
            Reason.REPLAY_CACHE_FULL, detail="cannot remember another token: forwarded",
            **fields,  # type: ignore[arg-type]
        )
    return RealityVerdict(Reason.ACCEPT, auth_key=auth_key, client_hello=ch,
                          **fields)  # type: ignore[arg-type]
