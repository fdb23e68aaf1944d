"""What the target's answer to a Chrome-shaped hello looks like on the wire (sans-IO).

A passive observer of a REALITY listener sees, for every flow, the server's first datagrams: their
count, UDP payload sizes and the long-header types coalesced in each, the server's SCID length, and
(after decrypting the Initials with keys derived from the client's DCID, RFC 9001 §5.2, as anyone
can) the ServerHello. :class:`TargetShape` records exactly that for one target, and
:func:`parse_target_flight` derives it from the datagrams of one connection to the target: the
client's and the server's, in the order they crossed the wire. Handshake and 1-RTT packets cannot
be decrypted by an observer and are not decrypted here either: only their sizes and types count.

The first flight ends where the fingerprint tool ends it (``docs/camouflage.md``): at the client's
first datagram holding a 1-RTT packet (the server's 1-RTT-only datagrams before it are part of the
flight: quic-go sends its 0.5-RTT data so); without one, at the server's first datagram holding
only 1-RTT packets (that datagram excluded).

:meth:`TargetShape.flight_shape` turns the record into the
:class:`~quicreality.quic.flight_shape.FlightShape` an accepted connection's send path follows, and
:attr:`TargetShape.server_hello` is what TLS uses for our ServerHello. Its ``h3`` is not read
from the datagrams (an observer cannot): the learning client, which has the keys, reads it from
the target's unidirectional streams (:func:`~quicreality.h3.profile.read_h3_profile`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..h3.profile import H3Profile
from ..quic.crypto import CryptoError, CryptoPair
from ..quic.errors import QuicConnectionError
from ..quic.flight_shape import FlightShape, ShapedDatagram
from ..quic.frames import FrameType, pull_frame_body
from ..quic.packet import (
    PACKET_TYPE_HANDSHAKE,
    PACKET_TYPE_INITIAL,
    PACKET_TYPE_ONE_RTT,
    QUIC_VERSION_1,
    MalformedPacketError,
    pull_quic_header,
)
from ..tls import messages as m
from ..tls.alerts import TlsAlert
from ..wire.buffer import Buffer, BufferReadError

__all__ = ["ServerHelloShape", "ShapeError", "TargetShape", "has_one_rtt", "most_common",
           "parse_target_flight"]

_SPACE_OF = {PACKET_TYPE_INITIAL: 0, PACKET_TYPE_HANDSHAKE: 1, PACKET_TYPE_ONE_RTT: 2}
#: Datagrams at least this large are padded by the target: their size does not follow the CIDs.
_PADDED = 1200


class ShapeError(ValueError):
    """The datagrams are not one QUIC v1 handshake the parser can read."""


@dataclass(frozen=True, slots=True)
class ServerHelloShape:
    """The observable choices of a ServerHello (or of the HelloRetryRequest before it)."""

    cipher_suite: int
    extension_order: tuple[int, ...]
    key_share_group: int | None
    hello_retry: bool = False


@dataclass(frozen=True, slots=True)
class TargetShape:
    """One target's answer: ServerHello and the first-flight datagrams (see the module docstring).

    ``client_scid_len`` is the SCID length of the client that learned it: the target's packets
    carry it as their DCID, so unpadded datagrams grow or shrink with another client's.
    """

    server_hello: ServerHelloShape | None
    datagrams: tuple[ShapedDatagram, ...]
    scid_len: int
    client_scid_len: int
    #: the target's HTTP/3 start as its learning client read it (None: not seen in the flight)
    h3: H3Profile | None = None

    def flight_shape(self, client_scid_len: int | None = None) -> FlightShape:
        """The shape for an accepted client whose SCID has ``client_scid_len`` bytes."""
        delta = 0 if client_scid_len is None else client_scid_len - self.client_scid_len
        out = []
        for d in self.datagrams:
            size = d.size if d.size >= _PADDED else d.size + delta * len(d.spaces)
            out.append(ShapedDatagram(size, d.spaces, d.ack_only))
        return FlightShape(tuple(out))

    def describe(self) -> dict[str, object]:
        """Plain values for logs, qlog and docs."""
        sh = self.server_hello
        return {
            "datagrams": [d.describe() for d in self.datagrams],
            "scid_len": self.scid_len,
            "cipher_suite": f"{sh.cipher_suite:04x}" if sh else None,
            "extension_order": [f"{e:04x}" for e in sh.extension_order] if sh else None,
            "key_share_group": f"{sh.key_share_group:04x}" if sh and sh.key_share_group else None,
            "hello_retry": sh.hello_retry if sh else None,
            "h3": self.h3.describe() if self.h3 else None,
        }


def _packets(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """``(packet_type, start, end, scid)`` of each coalesced packet (a short header runs to the end)."""
    out = []
    buf = Buffer(data=data)
    while not buf.eof():
        start = buf.tell()
        if not data[start] & 0x80:
            out.append((PACKET_TYPE_ONE_RTT, start, len(data), b""))
            break
        try:
            header = pull_quic_header(buf, host_cid_length=None)
        except MalformedPacketError as exc:
            raise ShapeError(f"unreadable long header at {start}: {exc}") from exc
        if header.version != QUIC_VERSION_1:
            raise ShapeError(f"not QUIC v1 ({header.version:#x})")
        out.append((header.packet_type, start, header.packet_end, header.source_cid))
        buf.seek(header.packet_end)
    return out


def has_one_rtt(data: bytes) -> bool:
    """Whether a datagram holds a 1-RTT (short header) packet."""
    try:
        return any(p[0] == PACKET_TYPE_ONE_RTT for p in _packets(data))
    except ShapeError:
        return False


def _crypto_frames(payload: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    """CRYPTO ``(offset, data)`` of an Initial payload, and whether it had no CRYPTO at all."""
    chunks: list[tuple[int, bytes]] = []
    buf = Buffer(data=payload)
    try:
        while not buf.eof():
            frame_type = buf.pull_uint_var()
            frame = pull_frame_body(buf, frame_type)
            if frame_type == FrameType.CRYPTO:
                chunks.append((frame.offset, frame.data))  # type: ignore[union-attr]
    except (QuicConnectionError, BufferReadError) as exc:
        raise ShapeError(f"bad frame in a server Initial: {exc}") from exc
    return chunks, not chunks


def _extension_order(raw: bytes) -> tuple[int, ...]:
    """Extension types of a ServerHello message, in wire order."""
    b = Buffer(data=raw)
    b.pull_bytes(4 + 2 + 32)
    b.pull_bytes(b.pull_uint8())
    b.pull_bytes(3)
    block = Buffer(data=b.pull_bytes(b.pull_uint16()))
    order = []
    while not block.eof():
        order.append(block.pull_uint16())
        block.pull_bytes(block.pull_uint16())
    return tuple(order)


def _server_hellos(stream: bytes) -> list[ServerHelloShape]:
    """The complete ServerHello/HelloRetryRequest messages at the start of the server's Initial
    CRYPTO stream (after a retry, the second ServerHello follows in the same stream)."""
    out: list[ServerHelloShape] = []
    at = 0
    while len(stream) - at >= 4 and stream[at] == m.HandshakeType.SERVER_HELLO:
        length = int.from_bytes(stream[at + 1:at + 4], "big")
        if len(stream) - at < 4 + length:
            break
        raw = stream[at:at + 4 + length]
        try:
            sh = m.pull_server_hello(Buffer(data=raw))
            order = _extension_order(raw)
        except (TlsAlert, BufferReadError) as exc:
            raise ShapeError(f"unreadable ServerHello: {exc}") from exc
        retry = sh.random == m.HELLO_RETRY_REQUEST_RANDOM
        group = sh.selected_group if retry else (sh.key_share.group if sh.key_share else None)
        out.append(ServerHelloShape(sh.cipher_suite, order, group, retry))
        at += 4 + length
        if not retry:
            break
    return out


def parse_target_flight(datagrams: Iterable[tuple[bool, bytes]]) -> TargetShape:
    """Derive a :class:`TargetShape` from one handshake's datagrams.

    Args:
        datagrams: ``(from_server, udp_payload)`` in wire order; the first must be the client's
            first Initial (its DCID gives the Initial keys).

    Raises:
        ShapeError: no client Initial first, no server datagram, or unreadable packets.
    """
    items = list(datagrams)
    if not items or items[0][0]:
        raise ShapeError("the first datagram must be the client's Initial")
    first = _packets(items[0][1])
    if not first or first[0][0] != PACKET_TYPE_INITIAL:
        raise ShapeError("the first datagram must be the client's Initial")
    header = pull_quic_header(Buffer(data=items[0][1]), host_cid_length=None)
    dcid, client_scid = header.destination_cid, header.source_cid
    keys = CryptoPair()
    keys.setup_initial(dcid, is_client=True, version=QUIC_VERSION_1)
    shaped: list[ShapedDatagram] = []
    scid_len: int | None = None
    crypto = bytearray()
    hellos: list[ServerHelloShape] = []
    largest_pn = -1
    only_one_rtt_at: int | None = None  # the server's first datagram of only 1-RTT packets
    ended = False
    for from_server, data in items:
        packets = _packets(data)
        if not from_server:
            if shaped and any(p[0] == PACKET_TYPE_ONE_RTT for p in packets):
                ended = True
                break  # the client's first 1-RTT datagram ends the server's flight
            continue
        types = tuple(p[0] for p in packets)
        if types and all(t == PACKET_TYPE_ONE_RTT for t in types):
            if not shaped:
                continue
            if only_one_rtt_at is None:
                only_one_rtt_at = len(shaped)
        ack_only = False
        for ptype, start, end, scid in packets:
            if ptype == PACKET_TYPE_ONE_RTT:
                continue
            if scid_len is None:
                scid_len = len(scid)
            if ptype != PACKET_TYPE_INITIAL:
                continue
            try:
                h = pull_quic_header(Buffer(data=data[start:end]), host_cid_length=None)
                _, payload, pn = keys.decrypt_packet(data[start:end], h.pn_offset, largest_pn + 1)
            except (CryptoError, MalformedPacketError) as exc:
                raise ShapeError(f"server Initial does not open with the client's DCID: {exc}") \
                    from exc
            largest_pn = max(largest_pn, pn)
            chunks, no_crypto = _crypto_frames(payload)
            ack_only = no_crypto and len(packets) == 1
            for offset, chunk in sorted(chunks):
                if offset <= len(crypto):
                    crypto[offset:offset + len(chunk)] = chunk
            hellos = _server_hellos(bytes(crypto))
        shaped.append(ShapedDatagram(len(data), tuple(_SPACE_OF[t] for t in types), ack_only))
    if not ended and only_one_rtt_at is not None:
        shaped = shaped[:only_one_rtt_at]
    if not shaped:
        raise ShapeError("no server datagram before the client's first 1-RTT packet")
    hello = hellos[-1] if hellos else None
    if hello is not None and len(hellos) > 1:
        hello = ServerHelloShape(hello.cipher_suite, hello.extension_order, hello.key_share_group,
                                 hello_retry=True)
    return TargetShape(hello, tuple(shaped), scid_len or 0, len(client_scid))


def most_common(shapes: Iterable[TargetShape]) -> TargetShape:
    """The shape seen most often among several handshakes (on a tie, the latest of those tied).

    A target's first flight depends a little on its timing (quic-go coalesces its 0.5-RTT data
    when it is ready in time, else sends it alone): one sample may be the exception.

    Raises:
        ValueError: no shapes.
    """
    items = list(shapes)
    if not items:
        raise ValueError("no shapes")
    counts: dict[TargetShape, int] = {}
    for shape in items:
        counts[shape] = counts.get(shape, 0) + 1
    best = max(counts.values())
    return next(shape for shape in reversed(items) if counts[shape] == best)
