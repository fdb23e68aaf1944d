"""Relay wire format, version 1: stream preface, status answer, UDP-over-DATAGRAM framing, codes.

Theory of operation. The relay client opens one client-initiated bidirectional QUIC stream per
relayed TCP connection (or per UDP flow) and starts it with a **preface**::

    magic "QRLY" (4) | version u8 (=1) | kind u8 | address type u8 | address | port u16
    | extensions length (QUIC varint) | extensions

``kind`` is 1 (TCP) or 2 (UDP); the address is 4 bytes (type 1, IPv4), 16 bytes (type 4, IPv6)
or a length byte plus an ASCII host name (type 3). Version-1 receivers ignore the extension bytes
(at most :data:`MAX_EXTENSIONS` of them). The client may send payload right after the preface
(pipelining saves a round trip); a refused stream's payload is discarded.

**Extensions** are a sequence of ``type (QUIC varint) | length (QUIC varint) | value``. One is
defined: :data:`EXT_HOP_LIMIT` (type 1, one byte), how many more relays may forward the stream
to an upstream relay. A relay that forwards (``[relay.upstream]``) refuses a stream whose hop
limit is 0 with :attr:`Status.HOP_LIMIT` and sends the decremented limit upstream; a stream
without the extension has :data:`DEFAULT_HOP_LIMIT`. The version stays 1: receivers that predate
the extension ignore the block, as version 1 always required. A block that does not parse as
TLVs is ignored too (no hop limit).

The server's first bytes on the stream are the **status answer**::

    version u8 (=1) | status u8 | reason length u8 | reason (UTF-8)

On ``OK`` the destination's bytes follow. Any other status ends the server's side with a FIN
right after the answer, and the server also sends STOP_SENDING with the matching
:class:`RelayErrorCode`, so a client that sees only the stream's reset codes still learns why.

Stream end maps to TCP: FIN is a TCP FIN (half-close works both ways), and RESET_STREAM /
STOP_SENDING are a TCP RST (a relay never turns a truncated stream into a clean FIN).

**UDP.** A UDP flow is opened like a TCP one, with ``kind = 2``; the stream lives as long as the
flow and carries no payload after the status. Datagrams travel in QUIC DATAGRAM frames
(RFC 9221) as ``flow id (QUIC varint) | UDP payload``, where the flow id is the quarter stream ID
of the flow's stream (``stream_id // 4``, as RFC 9297 does). Ending the stream (FIN or reset)
ends the flow.

The QUIC application error codes are in a private range, 0x5201.., far from HTTP/3's 0x100..
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import IntEnum

from ..wire.buffer import Buffer, BufferReadError, encode_uint_var, size_uint_var

#: The first bytes of every relay stream (an HTTP/3 request stream starts with a frame type;
#: 0x51 0x52 would be the reserved, never sent, two-byte frame type 0x1152).
MAGIC = b"QRLY"
#: Protocol version carried in the preface and the status answer.
VERSION = 1
#: Largest extension block a version-1 receiver accepts.
MAX_EXTENSIONS = 255
#: Largest preface: magic, version, kind, type, name length, 255-byte name, port, varint, ext.
MAX_PREFACE_SIZE = 4 + 1 + 1 + 1 + 1 + 255 + 2 + 2 + MAX_EXTENSIONS
#: Largest status answer.
MAX_STATUS_SIZE = 3 + 255
#: Extension type of the hop limit (value: one byte).
EXT_HOP_LIMIT = 0x01
#: The hop limit of a stream whose preface carries none (a client that sends no extension).
DEFAULT_HOP_LIMIT = 8


class Kind(IntEnum):
    """What the stream relays."""

    TCP = 1
    UDP = 2


class AddressType(IntEnum):
    """Destination address encodings (numbered as in SOCKS5, RFC 1928 §5)."""

    IPV4 = 1
    NAME = 3
    IPV6 = 4


class Status(IntEnum):
    """The server's answer to a preface."""

    OK = 0
    REFUSED = 1  #: the destination is not in the server's allow-list
    UNREACHABLE = 2  #: connection refused, no route, or the name did not resolve
    TIMEOUT = 3  #: the destination did not answer in time
    BAD_REQUEST = 4  #: malformed preface
    UNSUPPORTED = 5  #: unknown version or kind
    BUSY = 6  #: a server limit was reached (e.g. UDP flows)
    ERROR = 7  #: any other server-side failure
    HOP_LIMIT = 8  #: the stream's hop limit is used up (a chain of relays that loops?)


class RelayErrorCode(IntEnum):
    """QUIC application error codes of RESET_STREAM / STOP_SENDING on relay streams."""

    REFUSED = 0x5201
    UNREACHABLE = 0x5202
    TIMEOUT = 0x5203
    BAD_REQUEST = 0x5204
    UNSUPPORTED = 0x5205
    BUSY = 0x5206
    ERROR = 0x5207
    TCP_RESET = 0x5208  #: a TCP endpoint reset its connection (or the relay saw ECONNRESET)
    TCP_ERROR = 0x5209  #: another socket error on a TCP endpoint
    CANCELLED = 0x520A  #: the relay is shutting the stream down (stop, connection lost)
    IDLE_TIMEOUT = 0x520B  #: a UDP flow expired
    HOP_LIMIT = 0x520C  #: the hop limit is used up


#: The reset code that accompanies each non-OK status.
STATUS_ERROR_CODE: dict[Status, RelayErrorCode] = {
    Status.REFUSED: RelayErrorCode.REFUSED,
    Status.UNREACHABLE: RelayErrorCode.UNREACHABLE,
    Status.TIMEOUT: RelayErrorCode.TIMEOUT,
    Status.BAD_REQUEST: RelayErrorCode.BAD_REQUEST,
    Status.UNSUPPORTED: RelayErrorCode.UNSUPPORTED,
    Status.BUSY: RelayErrorCode.BUSY,
    Status.ERROR: RelayErrorCode.ERROR,
    Status.HOP_LIMIT: RelayErrorCode.HOP_LIMIT,
}


def describe_error_code(code: int) -> str:
    """A short name for a reset code (relay codes by name, others in hex)."""
    try:
        return RelayErrorCode(code).name.lower()
    except ValueError:
        return f"{code:#x}"


class PrefaceError(ValueError):
    """A malformed or unsupported preface; ``status`` is the answer to give."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# ------------------------------------------------------------------------------- destination


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a relay stream goes: an IP literal or a host name, and a port."""

    host: str
    port: int

    @property
    def address_type(self) -> AddressType:
        """How :attr:`host` is encoded on the wire."""
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            return AddressType.NAME
        return AddressType.IPV4 if ip.version == 4 else AddressType.IPV6

    def __str__(self) -> str:
        if self.address_type == AddressType.IPV6:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


def parse_destination(text: str) -> Destination:
    """Parse ``HOST:PORT`` or ``[V6]:PORT`` into a validated :class:`Destination`."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if sep:
            try:
                if ipaddress.ip_address(host).version != 6:
                    raise ValueError
            except ValueError:
                raise ValueError(f"invalid destination {text!r}: [...] must hold an IPv6 address") from None
    else:
        host, sep, port = text.rpartition(":")
        if ":" in host:
            raise ValueError(f"invalid destination {text!r}: write IPv6 addresses as [ADDR]:PORT")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"invalid destination {text!r}: expected HOST:PORT with PORT 1-65535")
    dest = Destination(host, int(port))
    check_destination(dest)
    return dest


def check_destination(dest: Destination) -> None:
    """Raise ValueError unless ``dest`` can be encoded (port range, name length and alphabet)."""
    if not 1 <= dest.port <= 65535:
        raise ValueError(f"port {dest.port} out of range")
    if dest.address_type == AddressType.NAME:
        name = dest.host
        if not 1 <= len(name) <= 255 or not name.isascii():
            raise ValueError(f"invalid host name {name!r}")
        if any(c.isspace() or c in "/\\@[]" or ord(c) < 0x21 for c in name):
            raise ValueError(f"invalid host name {name!r}")


# ----------------------------------------------------------------------------------- preface


@dataclass(frozen=True, slots=True)
class Preface:
    """The first bytes of a relay stream: what to relay and where to.

    ``hop_limit`` is the :data:`EXT_HOP_LIMIT` extension (None: absent, the receiver assumes
    :data:`DEFAULT_HOP_LIMIT`); ``extensions`` holds the rest of the extension block, raw.
    """

    kind: Kind
    destination: Destination
    extensions: bytes = b""
    hop_limit: int | None = None

    @property
    def effective_hop_limit(self) -> int:
        """The hop limit in force (:data:`DEFAULT_HOP_LIMIT` when the preface carries none)."""
        return DEFAULT_HOP_LIMIT if self.hop_limit is None else self.hop_limit


def encode_extensions(hop_limit: int | None, rest: bytes = b"") -> bytes:
    """The extension block: the hop limit TLV (if any), then ``rest`` unchanged."""
    if hop_limit is None:
        return rest
    if not 0 <= hop_limit <= 255:
        raise ValueError(f"hop limit {hop_limit} out of range 0-255")
    return encode_uint_var(EXT_HOP_LIMIT) + encode_uint_var(1) + bytes([hop_limit]) + rest


def split_extensions(block: bytes) -> tuple[int | None, bytes]:
    """``(hop limit, the other extensions)`` of an extension block.

    A block that is not a clean TLV sequence is left alone: ``(None, block)``.
    """
    buf = Buffer(data=block)
    hop_limit: int | None = None
    rest = b""
    try:
        while not buf.eof():
            start = buf.tell()
            ext_type = buf.pull_uint_var()
            value = buf.pull_bytes(buf.pull_uint_var())
            if ext_type == EXT_HOP_LIMIT and len(value) == 1 and hop_limit is None:
                hop_limit = value[0]
            else:
                rest += block[start:buf.tell()]
    except BufferReadError:
        return None, block
    return hop_limit, rest


def push_preface(buf: Buffer, preface: Preface) -> None:
    """Write ``preface`` (magic included)."""
    dest = preface.destination
    check_destination(dest)
    extensions = encode_extensions(preface.hop_limit, preface.extensions)
    if len(extensions) > MAX_EXTENSIONS:
        raise ValueError("preface extensions too long")
    buf.push_bytes(MAGIC)
    buf.push_uint8(VERSION)
    buf.push_uint8(preface.kind)
    atype = dest.address_type
    buf.push_uint8(atype)
    if atype == AddressType.NAME:
        name = dest.host.encode("ascii")
        buf.push_uint8(len(name))
        buf.push_bytes(name)
    else:
        buf.push_bytes(ipaddress.ip_address(dest.host).packed)
    buf.push_uint16(dest.port)
    buf.push_uint_var(len(extensions))
    buf.push_bytes(extensions)


def encode_preface(preface: Preface) -> bytes:
    """The preface as bytes."""
    buf = Buffer(capacity=MAX_PREFACE_SIZE)
    push_preface(buf, preface)
    return buf.data


def pull_preface(buf: Buffer) -> Preface:
    """Read a preface. Raises BufferReadError if incomplete, PrefaceError if invalid."""
    magic = buf.pull_bytes(len(MAGIC))
    if magic != MAGIC:
        raise PrefaceError(Status.BAD_REQUEST, "not a relay stream (bad magic)")
    version = buf.pull_uint8()
    if version != VERSION:
        raise PrefaceError(Status.UNSUPPORTED, f"unsupported relay version {version}")
    kind_value = buf.pull_uint8()
    try:
        kind = Kind(kind_value)
    except ValueError:
        raise PrefaceError(Status.UNSUPPORTED, f"unsupported relay kind {kind_value}") from None
    atype = buf.pull_uint8()
    if atype == AddressType.IPV4:
        host = str(ipaddress.IPv4Address(buf.pull_bytes(4)))
    elif atype == AddressType.IPV6:
        host = str(ipaddress.IPv6Address(buf.pull_bytes(16)))
    elif atype == AddressType.NAME:
        raw = buf.pull_bytes(buf.pull_uint8())
        try:
            host = raw.decode("ascii")
        except UnicodeDecodeError:
            raise PrefaceError(Status.BAD_REQUEST, "host name is not ASCII") from None
    else:
        raise PrefaceError(Status.BAD_REQUEST, f"unknown address type {atype}")
    port = buf.pull_uint16()
    ext_len = buf.pull_uint_var()
    if ext_len > MAX_EXTENSIONS:
        raise PrefaceError(Status.BAD_REQUEST, "preface extensions too long")
    extensions = buf.pull_bytes(ext_len)
    dest = Destination(host, port)
    try:
        check_destination(dest)
    except ValueError as exc:
        raise PrefaceError(Status.BAD_REQUEST, str(exc)) from None
    hop_limit, rest = split_extensions(extensions)
    return Preface(kind=kind, destination=dest, extensions=rest, hop_limit=hop_limit)


def starts_like_preface(prefix: bytes) -> bool | None:
    """Whether stream bytes begin with :data:`MAGIC`: True, False, or None (need more bytes)."""
    n = min(len(prefix), len(MAGIC))
    if prefix[:n] != MAGIC[:n]:
        return False
    return True if n == len(MAGIC) else None


# ------------------------------------------------------------------------------------ status


@dataclass(frozen=True, slots=True)
class StatusAnswer:
    """The server's answer: a status and a short human-readable reason."""

    status: Status
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True for :attr:`Status.OK`."""
        return self.status == Status.OK

    @property
    def error_code(self) -> RelayErrorCode | None:
        """The reset code that goes with a non-OK status."""
        return STATUS_ERROR_CODE.get(self.status)


def push_status(buf: Buffer, answer: StatusAnswer) -> None:
    """Write a status answer (the reason is cut to 255 bytes)."""
    reason = answer.reason.encode("utf-8")[:255]
    buf.push_uint8(VERSION)
    buf.push_uint8(answer.status)
    buf.push_uint8(len(reason))
    buf.push_bytes(reason)


def encode_status(answer: StatusAnswer) -> bytes:
    """A status answer as bytes."""
    buf = Buffer(capacity=MAX_STATUS_SIZE)
    push_status(buf, answer)
    return buf.data


def pull_status(buf: Buffer) -> StatusAnswer:
    """Read a status answer. Raises BufferReadError if incomplete, ValueError if invalid."""
    version = buf.pull_uint8()
    if version != VERSION:
        raise ValueError(f"unsupported relay version {version} in status answer")
    value = buf.pull_uint8()
    try:
        status = Status(value)
    except ValueError:
        status = Status.ERROR
    reason = buf.pull_bytes(buf.pull_uint8()).decode("utf-8", errors="replace")
    return StatusAnswer(status, reason)


# ------------------------------------------------------------------------- incremental reads


@dataclass(frozen=True, slots=True)
class Incomplete:
    """More bytes are needed."""


#: The single :class:`Incomplete` value.
INCOMPLETE = Incomplete()


class PrefaceReader:
    """Accumulates a stream's first bytes until the preface is complete (server side).

    :meth:`feed` returns :data:`INCOMPLETE`, or ``(preface, rest)`` where ``rest`` is payload
    that followed the preface; it raises :class:`PrefaceError` for an invalid or oversized one.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes, end_stream: bool = False) -> Incomplete | tuple[Preface, bytes]:
        """Add stream bytes; see the class docstring."""
        buffered = self._buffer + data if self._buffer else data
        buf = Buffer(data=buffered)
        try:
            preface = pull_preface(buf)
        except BufferReadError:
            if end_stream:
                raise PrefaceError(Status.BAD_REQUEST, "stream ended inside the preface") from None
            if len(buffered) > MAX_PREFACE_SIZE:
                raise PrefaceError(Status.BAD_REQUEST, "preface too long") from None
            self._buffer = buffered
            return INCOMPLETE
        self._buffer = b""
        return preface, buffered[buf.tell():]


class StatusReader:
    """Accumulates the server's first bytes until the status answer is complete (client side).

    :meth:`feed` returns :data:`INCOMPLETE` or ``(answer, rest)``; it raises ValueError for a
    malformed answer or a stream that ended before one.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes, end_stream: bool = False) -> Incomplete | tuple[StatusAnswer, bytes]:
        """Add stream bytes; see the class docstring."""
        buffered = self._buffer + data if self._buffer else data
        buf = Buffer(data=buffered)
        try:
            answer = pull_status(buf)
        except BufferReadError:
            if end_stream:
                raise ValueError("stream ended before the relay status answer") from None
            self._buffer = buffered
            return INCOMPLETE
        self._buffer = b""
        return answer, buffered[buf.tell():]


# ---------------------------------------------------------------------------- UDP datagrams


def flow_id_of_stream(stream_id: int) -> int:
    """The flow id of a UDP flow's stream: its quarter stream ID (RFC 9297 §2.1)."""
    return stream_id >> 2


def stream_of_flow_id(flow_id: int) -> int:
    """The client-initiated bidirectional stream of ``flow_id``."""
    return flow_id << 2


def datagram_overhead(flow_id: int) -> int:
    """Bytes a DATAGRAM payload adds to a UDP payload for ``flow_id``."""
    return size_uint_var(flow_id)


def encode_datagram(flow_id: int, payload: bytes) -> bytes:
    """A QUIC DATAGRAM frame payload carrying one UDP payload of flow ``flow_id``."""
    return encode_uint_var(flow_id) + payload


def decode_datagram(data: bytes) -> tuple[int, bytes]:
    """Split a DATAGRAM payload into ``(flow_id, udp_payload)``; ValueError if truncated."""
    if not data:
        raise ValueError("empty relay datagram")
    length = 1 << (data[0] >> 6)
    if len(data) < length:
        raise ValueError("truncated flow id")
    flow_id = data[0] & 0x3F
    for i in range(1, length):
        flow_id = (flow_id << 8) | data[i]
    return flow_id, data[length:]
