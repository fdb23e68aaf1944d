"""Opening client Initials and reading the ClientHello, the way an on-path censor does (sans-IO).

Theory of operation
-------------------
Anyone on the path can remove Initial packet protection: the keys come from the client's first
Destination Connection ID and a salt published per version (RFC 9001 §5.2 for v1, RFC 9369
§3.3.1 for v2). :func:`open_client_datagram` walks the coalesced long-header packets of one UDP
payload (RFC 9000 §12.2), maps the long-header type bits per version (v2 renumbers them, RFC 9369
§3.2), opens every client Initial and lists its frames (PADDING, PING, ACK, CRYPTO,
CONNECTION_CLOSE: what RFC 9000 §12.4 allows in an Initial).

:class:`HelloReader` is the thorough censor: it reassembles CRYPTO data across frames and packets
(and datagrams) by offset, as the endpoint itself must (RFC 9000 §19.6), with the strict
reassembly of the REALITY gate (:class:`quicreality.reality.reassembly.HelloAssembly`), and parses
the ClientHello once its bytes are contiguous. :func:`parse_client_hello` also reads a truncated
prefix (``complete=False``), which is what a first-packet-only censor sees of a split hello.

:class:`ParsedHello` carries what policies judge: SNI, ALPN, session_id length, the extension
list in order, and :meth:`ParsedHello.features`, named like the client features of
``python -m quicreality.analysis.fingerprint`` (``client.tls.session_id_len``, ``client.ja4``...),
with JA4 computed by :func:`quicreality.analysis.fingerprint_features.ja4`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...analysis.fingerprint_features import GREASE, codepoint, ja4
from ...quic.crypto import (
    INITIAL_CIPHER_SUITE,
    QUIC_VERSION_2,
    CryptoContext,
    CryptoError,
    derive_initial_secrets,
)
from ...quic.packet import LONG_TYPE_BITS, PACKET_TYPE_INITIAL, QUIC_VERSION_1
from ...reality.reassembly import Chunk, HelloAssembly, PacketCheck
from ...tls.constants import HandshakeType
from ...wire.buffer import Buffer, BufferReadError

__all__ = [
    "SUPPORTED_VERSIONS",
    "DatagramRead",
    "Frame",
    "HelloReader",
    "OpenedInitial",
    "ParsedHello",
    "initial_type_bits",
    "open_client_datagram",
    "parse_client_hello",
    "walk_frames",
]

#: Versions whose Initial keys the censor knows.
SUPPORTED_VERSIONS = (QUIC_VERSION_1, QUIC_VERSION_2)
#: The Initial's long-header type bits per version (RFC 9000 §17.2.2, RFC 9369 §3.2).
_INITIAL_BITS = {v: LONG_TYPE_BITS[v][PACKET_TYPE_INITIAL] >> 4 for v in SUPPORTED_VERSIONS}
_FRAME_NAMES = {0x00: "PADDING", 0x01: "PING", 0x02: "ACK", 0x03: "ACK", 0x06: "CRYPTO",
                0x1C: "CONNECTION_CLOSE"}
_MAX_HELLO = 16384


def initial_type_bits(version: int) -> int:
    """The long-header type bits of an Initial in ``version`` (RFC 9369 §3.2 renumbers them)."""
    return _INITIAL_BITS[version]


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame of an opened Initial.

    Attributes:
        type: Frame type (0x00 PADDING runs are one frame).
        offset: CRYPTO offset (CRYPTO only).
        length: The CRYPTO frame's Length field (CRYPTO only).
        data: CRYPTO data (CRYPTO only).
        rest: For CRYPTO: every byte after the frame's Length field to the end of the payload
            (what a parser that ignores Length reads; gfw-2025, Table 3 row 6).
    """

    type: int
    offset: int = 0
    length: int = 0
    data: bytes = b""
    rest: bytes = b""

    @property
    def name(self) -> str:
        """PADDING, PING, ACK, CRYPTO or CONNECTION_CLOSE."""
        return _FRAME_NAMES.get(self.type, f"0x{self.type:x}")


@dataclass(frozen=True, slots=True)
class OpenedInitial:
    """One client Initial packet with its protection removed."""

    version: int
    dcid: bytes
    scid: bytes
    token_len: int
    packet_number: int
    payload: bytes
    frames: tuple[Frame, ...]
    error: str | None = None  #: frames could not be walked to the end (the frames before stand)


@dataclass(frozen=True, slots=True)
class DatagramRead:
    """What one UDP payload held, as far as the censor could read it.

    Attributes:
        quic: The payload starts with a QUIC long header.
        version: Version field of the first long header (None: not a long header).
        initials: The client Initials that opened.
        error: Why nothing (or not everything) opened, e.g. ``"version 0x2 unknown"``.
    """

    quic: bool
    version: int | None
    initials: tuple[OpenedInitial, ...] = ()
    error: str | None = None


def walk_frames(payload: bytes) -> tuple[tuple[Frame, ...], str | None]:
    """The frames of an Initial payload (RFC 9000 §12.4, §19); an error stops the walk."""
    buf = Buffer(data=payload)
    out: list[Frame] = []
    try:
        while not buf.eof():
            t = buf.pull_uint_var()
            if t == 0x00:
                while not buf.eof() and payload[buf.tell()] == 0:
                    buf.pull_uint8()
                out.append(Frame(0x00))
            elif t == 0x01:
                out.append(Frame(0x01))
            elif t in (0x02, 0x03):
                buf.pull_uint_var()
                buf.pull_uint_var()
                count = buf.pull_uint_var()
                buf.pull_uint_var()
                for _ in range(count * 2 + (3 if t == 0x03 else 0)):
                    buf.pull_uint_var()
                out.append(Frame(t))
            elif t == 0x06:
                offset = buf.pull_uint_var()
                length = buf.pull_uint_var()
                rest = payload[buf.tell():]
                out.append(Frame(0x06, offset, length, buf.pull_bytes(length), rest))
            elif t == 0x1C:
                buf.pull_uint_var()
                buf.pull_uint_var()
                buf.pull_bytes(buf.pull_uint_var())
                out.append(Frame(0x1C))
            else:
                return tuple(out), f"frame 0x{t:x} not allowed in an Initial"
    except BufferReadError as e:
        return tuple(out), f"truncated frame: {e}"
    return tuple(out), None


def _open(packet: bytes, pn_offset: int, version: int, dcid: bytes) -> tuple[int, bytes]:
    """Remove Initial protection with the client keys of ``dcid`` (RFC 9001 §5.2-§5.5)."""
    client_secret, _ = derive_initial_secrets(dcid, version)
    ctx = CryptoContext()
    ctx.setup(INITIAL_CIPHER_SUITE, client_secret, version)
    _, payload, pn = ctx.decrypt_packet(packet, pn_offset, 0)
    return pn, payload


def open_client_datagram(data: bytes) -> DatagramRead:
    """Open every client Initial coalesced in one UDP payload (RFC 9000 §12.2).

    Packets of other types are skipped by their Length; a short header ends the walk.
    """
    if not data or not data[0] & 0x80:
        return DatagramRead(False, None, (), "not a long header")
    initials: list[OpenedInitial] = []
    first_version: int | None = None
    pos = 0
    error: str | None = None
    while pos < len(data) and data[pos] & 0x80:
        buf = Buffer(data=data[pos:])
        try:
            first = buf.pull_uint8()
            version = buf.pull_uint32()
            if first_version is None:
                first_version = version
            dcid = buf.pull_bytes(buf.pull_uint8())
            scid = buf.pull_bytes(buf.pull_uint8())
            if version not in _INITIAL_BITS:
                error = f"version 0x{version:x} unknown"
                break
            if len(dcid) > 20 or len(scid) > 20:  # RFC 9000 §17.2 (and RFC 9369 §3)
                error = "connection ID longer than 20 bytes"
                break
            is_initial = (first & 0x30) >> 4 == _INITIAL_BITS[version]
            token_len = buf.pull_uint_var() if is_initial else 0
            buf.pull_bytes(token_len)
            length = buf.pull_uint_var()
            pn_offset = buf.tell()
            end = pn_offset + length
            if end > buf.capacity:
                error = "Length beyond the datagram"
                break
        except BufferReadError:
            error = "truncated long header"
            break
        if is_initial:
            try:
                pn, payload = _open(data[pos:pos + end], pn_offset, version, dcid)
            except CryptoError as e:
                error = f"Initial does not open: {e}"
            else:
                frames, ferr = walk_frames(payload)
                initials.append(OpenedInitial(version, dcid, scid, token_len, pn, payload,
                                              frames, ferr))
        pos += end
    return DatagramRead(True, first_version, tuple(initials), error)


# ---- the ClientHello --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedHello:
    """The censor's view of a ClientHello (RFC 8446 §4.1.2).

    Attributes:
        complete: Every byte of the handshake message was present.
        sni: server_name (RFC 6066 §3), None if absent (or cut off).
        alpn: ALPN protocol names (RFC 7301).
        session_id_len: legacy_session_id length (RFC 9001 §8.4: empty in QUIC).
        cipher_suites: Cipher suites in order.
        extensions: Extension types in order (only whole extensions when incomplete).
        supported_versions, supported_groups, signature_algorithms, key_share_groups: Code points.
        legacy_version: legacy_version.
        length: Handshake message length from its header (plus 4).
    """

    complete: bool
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    session_id_len: int = 0
    cipher_suites: tuple[int, ...] = ()
    extensions: tuple[int, ...] = ()
    supported_versions: tuple[int, ...] = ()
    supported_groups: tuple[int, ...] = ()
    signature_algorithms: tuple[int, ...] = ()
    key_share_groups: tuple[int, ...] = ()
    legacy_version: int = 0x0303
    length: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def features(self) -> dict[str, Any]:
        """Client features named as in ``quicreality.analysis.fingerprint`` (GREASE normalised)."""
        f: dict[str, Any] = {
            "client.tls.handshake_len": self.length - 4 if self.length else 0,
            "client.tls.legacy_version": f"0x{self.legacy_version:04x}",
            "client.tls.session_id_len": self.session_id_len,
            "client.tls.cipher_suites": [codepoint(c) for c in self.cipher_suites],
            "client.tls.extensions": [codepoint(e) for e in self.extensions],
            "client.tls.extensions_sorted": sorted(codepoint(e) for e in self.extensions),
            "client.tls.extension_count": len(self.extensions),
            "client.tls.server_name": self.sni,
            "client.tls.alpn": list(self.alpn),
            "client.tls.supported_versions": [codepoint(v) for v in self.supported_versions],
            "client.tls.supported_groups": [codepoint(g) for g in self.supported_groups],
            "client.tls.signature_algorithms": [codepoint(s) for s in self.signature_algorithms],
            "client.tls.key_share_groups": [codepoint(g) for g in self.key_share_groups],
            "client.tls.ech": 0xFE0D in self.extensions,
        }
        a, r = ja4(f)
        f["client.ja4"] = a
        f["client.ja4_r"] = r
        f.update(self.extra)
        return f

    @property
    def ja4(self) -> str:
        """The JA4 string (FoxIO recipe, see docs/camouflage.md)."""
        return str(self.features()["client.ja4"])


def _u16s(data: bytes, length_size: int) -> tuple[int, ...]:
    n = int.from_bytes(data[:length_size], "big")
    body = data[length_size:length_size + n]
    return tuple(int.from_bytes(body[i:i + 2], "big") for i in range(0, len(body) - 1, 2))


def _sni(data: bytes) -> str | None:
    """The host_name of a server_name extension body (RFC 6066 §3)."""
    pos = 2
    end = min(len(data), 2 + int.from_bytes(data[:2], "big"))
    while pos + 3 <= end:
        kind = data[pos]
        n = int.from_bytes(data[pos + 1:pos + 3], "big")
        if kind == 0 and pos + 3 + n <= end:
            return data[pos + 3:pos + 3 + n].decode("ascii", "replace")
        pos += 3 + n
    return None


def _alpn(data: bytes) -> tuple[str, ...]:
    body = data[2:2 + int.from_bytes(data[:2], "big")]
    out = []
    while body:
        n = body[0]
        out.append(body[1:1 + n].decode("ascii", "replace"))
        body = body[1 + n:]
    return tuple(out)


def _key_share_groups(data: bytes) -> tuple[int, ...]:
    body = data[2:2 + int.from_bytes(data[:2], "big")]
    out, pos = [], 0
    while pos + 4 <= len(body):
        out.append(int.from_bytes(body[pos:pos + 2], "big"))
        pos += 4 + int.from_bytes(body[pos + 2:pos + 4], "big")
    return tuple(out)


def parse_client_hello(data: bytes) -> ParsedHello | None:
    """Parse a ClientHello handshake message, or as much of it as ``data`` holds.

    Returns:
        None if ``data`` does not start like a ClientHello (type 1, RFC 8446 §4); else the fields
        read, with ``complete`` telling whether the whole message was present. Extensions are
        taken only when their body is entirely present.
    """
    if len(data) < 4 or data[0] != HandshakeType.CLIENT_HELLO:
        return None
    total = 4 + int.from_bytes(data[1:4], "big")
    complete = len(data) >= total
    msg = data[:total]
    kw: dict[str, Any] = {"complete": complete, "length": total}
    if len(msg) < 6 + 32 + 1:
        return ParsedHello(**kw)
    kw["legacy_version"] = int.from_bytes(msg[4:6], "big")
    pos = 38
    sid_len = msg[pos]
    kw["session_id_len"] = sid_len
    pos += 1 + sid_len
    if pos + 2 > len(msg):
        return ParsedHello(**kw)
    n = int.from_bytes(msg[pos:pos + 2], "big")
    kw["cipher_suites"] = _u16s(msg[pos:pos + 2 + n], 2)
    pos += 2 + n
    if pos >= len(msg):
        return ParsedHello(**kw)
    pos += 1 + msg[pos]  # legacy_compression_methods
    pos += 2  # extensions length
    exts: list[int] = []
    while pos + 4 <= len(msg):
        etype = int.from_bytes(msg[pos:pos + 2], "big")
        elen = int.from_bytes(msg[pos + 2:pos + 4], "big")
        body = msg[pos + 4:pos + 4 + elen]
        if len(body) < elen:
            break
        exts.append(etype)
        if etype == 0:
            kw["sni"] = _sni(body)
        elif etype == 16:
            kw["alpn"] = _alpn(body)
        elif etype == 43:
            kw["supported_versions"] = _u16s(body, 1)
        elif etype == 10:
            kw["supported_groups"] = _u16s(body, 2)
        elif etype == 13:
            kw["signature_algorithms"] = _u16s(body, 2)
        elif etype == 51:
            kw["key_share_groups"] = _key_share_groups(body)
        pos += 4 + elen
    kw["extensions"] = tuple(exts)
    return ParsedHello(**kw)


class HelloReader:
    """Per-flow reassembly of the client's CRYPTO stream (Initial space, offsets from 0).

    Args:
        max_fragments: CRYPTO frames accepted before the reader gives up (bounded work).
    """

    def __init__(self, max_fragments: int = 64) -> None:
        self.assembly = HelloAssembly(max_fragments)
        self.datagrams = 0
        self.packets = 0
        self.crypto_frames = 0
        self.versions: set[int] = set()
        self.dcid: bytes | None = None
        self.layouts: list[str] = []
        self.error: str | None = None
        self._hello: ParsedHello | None = None

    def feed(self, read: DatagramRead) -> None:
        """Add the CRYPTO frames of one datagram's Initials (same DCID as the first only)."""
        if self._hello is not None and self._hello.complete:
            return
        if read.initials:
            self.datagrams += 1
        for p in read.initials:
            if self.dcid is None:
                self.dcid = p.dcid
            if p.dcid != self.dcid:
                continue
            if self.assembly.packet(p.packet_number, p.payload) is not PacketCheck.NEW:
                continue
            self.packets += 1
            self.versions.add(p.version)
            self.layouts.append("".join(fr.name[0] if fr.type != 0x1C else "X" for fr in p.frames))
            for fr in p.frames:
                if fr.type != 0x06:
                    continue
                self.crypto_frames += 1
                if fr.offset + len(fr.data) > _MAX_HELLO:
                    self.error = "CRYPTO data beyond 16 KiB"
                    continue
                got = self.assembly.add(fr.offset, fr.data)
                if got is not Chunk.STORED:
                    self.error = f"CRYPTO reassembly: {got.value}"

    def hello(self) -> ParsedHello | None:
        """The ClientHello once its bytes from offset 0 are all present; None before."""
        if self._hello is not None:
            return self._hello
        have = self.assembly.contiguous()
        if have < 4:
            return None
        parsed = parse_client_hello(bytes(self.assembly.data[:have]))
        if parsed is None or not parsed.complete:
            return None
        extra = {
            "client.quic.version": f"0x{min(self.versions):08x}" if self.versions else None,
            "client.quic.dcid_len": len(self.dcid or b""),
            "client.flight.datagrams": self.datagrams,
            "client.flight.initial_packets": self.packets,
            "client.flight.crypto_frames_total": self.crypto_frames,
            "client.flight.frame_layout": list(self.layouts),
        }
        self._hello = ParsedHello(**{**{f: getattr(parsed, f) for f in parsed.__dataclass_fields__
                                        if f != "extra"}, "extra": extra})
        return self._hello


def is_grease(v: int) -> bool:
    """RFC 8701 GREASE code point."""
    return codepoint(v) == GREASE
