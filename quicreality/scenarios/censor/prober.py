"""The censor's active prober: probe a suspected server and the real site, compare (sans-IO).

Theory of operation
-------------------
A :class:`ProbeSession` is made for one :class:`~.core.ProbeRequest`. It builds the probe
classes of the REALITY issue (``tests/interop/reality_probes.py``; ``quicreality.reality.probe``
builds the Initials) plus a replay of the client's own first Initials, and lists, per probe,
one endpoint for the suspected server and one for the target (the real site for the same SNI):
:meth:`ProbeSession.endpoints` gives ``(address, datagrams)`` in order and the I/O layer sends
each list from its own socket, so every answer is attributed (:meth:`ProbeSession.receive`).
After ``timeout_s`` (:meth:`ProbeSession.handle_timer`) the answers are reduced to shapes
(:func:`answer_shape`: packet type, and for a server Initial the ServerHello's cipher suite,
key share group and extension list, all readable by anyone since Initial keys are public,
RFC 9001 §5.2; Handshake and 1-RTT packets only as ``encrypted``, :func:`comparable`) and
compared probe by probe: ``target-like`` if the server answered every probe like the target,
else ``distinct``.

Probes: ``replay`` (the client's first datagrams, as sent), ``rekeyed-replay`` (the client's
ClientHello re-sealed under a fresh connection ID, one per endpoint: an exact replay reuses a
connection ID the target may already hold, and then both sides stay silent), ``random-long-header``,
``random-small``, ``truncated-initial`` (the client's first datagram cut 60 bytes short) and
``not-a-client-hello`` (an Initial carrying a bogus Certificate message).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ...quic.crypto import (
    INITIAL_CIPHER_SUITE,
    CryptoContext,
    CryptoError,
    CryptoPair,
    derive_initial_secrets,
)
from ...quic.errors import QuicConnectionError
from ...quic.packet import QUIC_VERSION_1
from ...reality.probe import client_initial_crypto, crypto_frame, initial_packet
from ...wire.buffer import BufferReadError
from .core import ProbeRequest
from .initial import walk_frames

__all__ = ["OPAQUE_SHAPES", "PROBE_CLASSES", "Probe", "ProbeSession", "answer_shape",
           "build_probes", "comparable"]

PROBE_CLASSES = ("replay", "rekeyed-replay", "random-long-header", "random-small",
                 "truncated-initial", "not-a-client-hello")
_LONG_TYPES = {0: "initial", 1: "0rtt", 2: "handshake", 3: "retry"}


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe class: what goes to the server and to the target.

    Attributes:
        name: One of :data:`PROBE_CLASSES`.
        server: ``(dcid, datagrams)`` sent to the suspected server; ``dcid`` opens its answer.
        target: The same for the target. Probes whose point is a fresh connection use their
            own connection ID per endpoint: the suspect relays to the very target, which would
            otherwise see one connection ID from two addresses and answer only the first.
    """

    name: str
    server: tuple[bytes, tuple[bytes, ...]]
    target: tuple[bytes, tuple[bytes, ...]]


def _rekeyed(req: ProbeRequest, dcid: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    """The client's ClientHello, read out of its Initials, re-sealed for ``dcid`` (RFC 9001 §5.2:
    Initial keys are public, so anyone can move a hello to a connection ID of their own); one
    datagram per original datagram, with that datagram's CRYPTO frames."""
    first = req.datagrams[0] if req.datagrams else b""
    odcid = first[6:6 + first[5]] if len(first) > 6 else b""
    pos = 6 + len(odcid)
    scid = first[pos + 1:pos + 1 + first[pos]] if len(first) > pos else b""
    try:
        per_datagram = [client_initial_crypto(d, odcid) for d in req.datagrams]
    except (CryptoError, QuicConnectionError, BufferReadError, ValueError):
        return dcid, ()  # not a v1 Initial we can open: nothing to re-seal
    pair = CryptoPair()
    pair.setup_initial(dcid, is_client=True, version=QUIC_VERSION_1)
    out = [initial_packet(b"".join(crypto_frame(o, c) for o, c in chunks), dcid=dcid, scid=scid,
                          packet_number=pn, pad_to=1200, crypto=pair)
           for pn, chunks in enumerate(c for c in per_datagram if c)]
    return dcid, tuple(out)


def build_probes(req: ProbeRequest, rng: Callable[[int], bytes]) -> list[Probe]:
    """Every probe class for one request (random parts from ``rng``)."""
    first = req.datagrams[0] if req.datagrams else b""
    dcid = first[6:6 + first[5]] if len(first) > 6 else b""

    def both(name: str, cid: bytes, datagrams: list[bytes]) -> Probe:
        return Probe(name, (cid, tuple(datagrams)), (cid, tuple(datagrams)))

    out = [both("replay", dcid, list(req.datagrams)),
           Probe("rekeyed-replay", _rekeyed(req, rng(8)), _rekeyed(req, rng(8)))]
    junk = bytearray(rng(1200))
    junk[0] |= 0xC0
    junk[1:5] = b"\x1a\x2a\x3a\x4a"  # a reserved version (RFC 9000 §15)
    out.append(both("random-long-header", b"", [bytes(junk)]))
    out.append(both("random-small", b"", [rng(50)]))
    out.append(both("truncated-initial", dcid, [first[:max(0, len(first) - 60)]]))
    body = rng(300)
    message = bytes([11]) + len(body).to_bytes(3, "big") + body  # a Certificate message

    def bogus() -> tuple[bytes, tuple[bytes, ...]]:
        cid = rng(8)
        return cid, (initial_packet(crypto_frame(0, message), dcid=cid, scid=rng(8),
                                    packet_number=0, pad_to=1200),)

    out.append(Probe("not-a-client-hello", bogus(), bogus()))
    return out


def _server_hello_shape(data: bytes) -> str:
    """Cipher suite, key share group and extension types of a ServerHello (RFC 8446 §4.1.3)."""
    if len(data) < 4 + 2 + 32 + 1 or data[0] != 2:
        return "no-server-hello"
    pos = 38
    pos += 1 + data[pos]
    if pos + 3 > len(data):
        return "server-hello-cut"
    suite = int.from_bytes(data[pos:pos + 2], "big")
    pos += 3 + 2
    exts, group = [], None
    while pos + 4 <= len(data):
        etype = int.from_bytes(data[pos:pos + 2], "big")
        elen = int.from_bytes(data[pos + 2:pos + 4], "big")
        if etype == 51 and elen >= 2:
            group = int.from_bytes(data[pos + 4:pos + 6], "big")
        exts.append(f"{etype:#06x}")
        pos += 4 + elen
    ks = f"{group:#06x}" if group is not None else "none"
    return f"sh cs={suite:#06x} ks={ks} ext={','.join(exts)}"


def answer_shape(datagram: bytes, odcid: bytes) -> str:
    """A coarse, comparable description of one answer datagram.

    A v1 server Initial is opened with the server Initial keys of ``odcid`` (RFC 9001 §5.2) and
    its ServerHello summarised; other packets are named by type.
    """
    if not datagram:
        return "empty"
    if not datagram[0] & 0x80:
        return "short"
    if len(datagram) < 7:
        return "long-cut"
    version = int.from_bytes(datagram[1:5], "big")
    if version == 0:
        return "version-negotiation"
    if version != QUIC_VERSION_1:
        return f"long-{version:#x}"
    kind = _LONG_TYPES[(datagram[0] & 0x30) >> 4]
    if kind != "initial" or not odcid:
        return kind
    try:
        pos = 5
        dlen = datagram[pos]
        pos += 1 + dlen
        slen = datagram[pos]
        scid_len = slen
        pos += 1 + slen
        tlen, n = _varint(datagram, pos)
        pos += n + tlen
        length, n = _varint(datagram, pos)
        pos += n
        _, server_secret = derive_initial_secrets(odcid, QUIC_VERSION_1)
        ctx = CryptoContext()
        ctx.setup(INITIAL_CIPHER_SUITE, server_secret, QUIC_VERSION_1)
        _, payload, _ = ctx.decrypt_packet(datagram[:pos + length], pos, 0)
    except (IndexError, CryptoError, ValueError):
        return "initial-unreadable"
    frames, _ = walk_frames(payload)
    crypto = sorted((f.offset, f.data) for f in frames if f.type == 0x06)
    hello = b"".join(d for o, d in crypto) if crypto and crypto[0][0] == 0 else b""
    return f"initial scid={scid_len} {_server_hello_shape(hello)}"


#: Answer shapes the prober cannot read into (Handshake and 1-RTT keys are not public).
OPAQUE_SHAPES = frozenset({"handshake", "short", "0rtt"})


def comparable(shapes: set[str]) -> list[str]:
    """Shapes as compared: readable ones as they are, unreadable ones only as ``encrypted``.

    Whether a Handshake or 1-RTT packet leads a datagram of its own (and so shows as a shape)
    depends on the sender's coalescing and pacing, not on who the server is.
    """
    out = {x for x in shapes if x not in OPAQUE_SHAPES}
    if len(out) < len(shapes):
        out.add("encrypted")
    return sorted(out)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, size) of the QUIC varint at ``pos`` (RFC 9000 §16)."""
    size = 1 << (data[pos] >> 6)
    v = data[pos] & 0x3F
    for b in data[pos + 1:pos + size]:
        v = (v << 8) | b
    if pos + size > len(data):
        raise IndexError("varint cut")
    return v, size


@dataclass
class ProbeSession:
    """One prober visit: every probe class to the server and to the target, then a verdict.

    Args:
        request: What the censor asked for.
        server: The suspected server (address, port).
        target: The real site for the same SNI.
        timeout_s: How long to listen after sending.
        rng: Random bytes for the probes.
        now: The caller's clock when the probes are sent.
    """

    request: ProbeRequest
    server: tuple[str, int]
    target: tuple[str, int]
    timeout_s: float
    rng: Callable[[int], bytes]
    now: float
    probes: list[Probe] = field(init=False)
    answers: list[list[bytes]] = field(init=False)
    done: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.probes = build_probes(self.request, self.rng)
        self.answers = [[] for _ in range(2 * len(self.probes))]

    def endpoints(self) -> list[tuple[tuple[str, int], list[bytes]]]:
        """Per probe: the server endpoint, then the target endpoint, with the datagrams to send."""
        out = []
        for p in self.probes:
            out.append((self.server, list(p.server[1])))
            out.append((self.target, list(p.target[1])))
        return out

    def receive(self, index: int, data: bytes, now: float) -> None:
        """An answer that came back to endpoint ``index``'s socket."""
        if not self.done:
            self.answers[index].append(data)

    def get_timer(self) -> float | None:
        """When the listening ends."""
        return None if self.done else self.now + self.timeout_s

    def handle_timer(self, now: float) -> None:
        """Stop listening once the timeout has passed."""
        if now >= self.now + self.timeout_s:
            self.done = True

    def shapes(self) -> list[tuple[str, list[str], list[str]]]:
        """Per probe: name, the server's answer shapes, the target's (:func:`comparable`)."""
        out = []
        for i, p in enumerate(self.probes):
            s = comparable({answer_shape(d, p.server[0]) for d in self.answers[2 * i]})
            t = comparable({answer_shape(d, p.target[0]) for d in self.answers[2 * i + 1]})
            out.append((p.name, s, t))
        return out

    def verdict(self) -> tuple[str, str]:
        """``("target-like" | "distinct", detail)``."""
        rows = self.shapes()
        for name, s, t in rows:
            if s != t:
                return "distinct", (f"probe {name}: server answered {s or ['nothing']}, "
                                    f"target {t or ['nothing']}")
        summary = "; ".join(f"{n}: {','.join(s) or 'silence'}" for n, s, _ in rows)
        return "target-like", f"all {len(rows)} probes answered like the target ({summary})"
