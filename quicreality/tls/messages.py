"""TLS 1.3 handshake messages (RFC 8446 §4) and the extensions QUIC needs.

Each message is a frozen dataclass with ``pull_x(buf)`` / ``push_x(buf, x)``; ``encode_x(x)`` returns
the bytes. Messages that get authenticated keep their ``raw`` bytes: the complete handshake message,
4-byte header included, exactly as received (``raw`` does not take part in equality).

Parsing is strict: any malformed input raises :class:`TlsAlert` with ``decode_error``
(or ``illegal_parameter`` for a repeated extension, RFC 8446 §4.2). There are no TLS records:
QUIC carries these messages in CRYPTO frames (RFC 9001 §4), and :class:`MessageReader`
re-frames that byte stream into messages.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import TypeVar

from ..wire.buffer import Buffer, BufferReadError
from .alerts import AlertDescription, TlsAlert
from .constants import (  # noqa: F401 -- re-exported for callers of messages
    HELLO_RETRY_REQUEST_RANDOM,
    MAX_MESSAGE_SIZE,
    PSK_DHE_KE,
    TLS_VERSION_1_2,
    TLS_VERSION_1_3,
    ExtensionType,
    Group,
    HandshakeType,
    SignatureScheme,
)
from .message_types import (  # noqa: F401 -- re-exported: callers import messages from here
    Certificate,
    CertificateEntry,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    Extensions,
    Finished,
    KeyShareEntry,
    NewSessionTicket,
    ServerHello,
)

T = TypeVar("T")

# --- low-level helpers ---------------------------------------------------------


def _decode_error(reason: str) -> TlsAlert:
    return TlsAlert(AlertDescription.decode_error, reason)


def _pull_vector(buf: Buffer, length_size: int, minimum: int = 0) -> bytes:
    """Read a vector with a 1/2/3-byte length prefix (RFC 8446 §3.4)."""
    if length_size == 1:
        n = buf.pull_uint8()
    elif length_size == 2:
        n = buf.pull_uint16()
    else:
        n = buf.pull_uint24()
    if n < minimum:
        raise _decode_error("vector shorter than its minimum length")
    return buf.pull_bytes(n)


def _parse_all(data: bytes, parse: Callable[[Buffer], T], what: str) -> T:
    """Run ``parse`` over ``data``; it must consume all of it."""
    buf = Buffer(data=data)
    try:
        value = parse(buf)
    except BufferReadError as exc:
        raise _decode_error(f"truncated {what}") from exc
    if not buf.eof():
        raise _decode_error(f"trailing bytes in {what}")
    return value


_TYPE_AND_LENGTH = struct.Struct("!HH")
_ITEM_FORMAT = {1: "B", 2: "H"}


def _pull_list(data: bytes, item_size: int, what: str, minimum: int = 1) -> tuple[int, ...]:
    """Parse a vector of fixed-size integers (the length prefix already removed)."""
    if len(data) % item_size or len(data) < minimum * item_size:
        raise _decode_error(f"bad {what} length")
    code = _ITEM_FORMAT.get(item_size)
    if code is not None:  # one C call for the whole list
        return struct.unpack(f"!{len(data) // item_size}{code}", data)
    return tuple(
        int.from_bytes(data[i : i + item_size], "big") for i in range(0, len(data), item_size)
    )


def _vec(data: bytes, length_size: int) -> bytes:
    """Serialize ``data`` with a length prefix."""
    if len(data) >= 1 << (8 * length_size):
        raise ValueError("vector too long")
    return len(data).to_bytes(length_size, "big") + data


def _u16_list(values: tuple[int, ...], length_size: int = 2) -> bytes:
    return _vec(b"".join(v.to_bytes(2, "big") for v in values), length_size)


def _handshake(msg_type: int, body: bytes) -> bytes:
    """Frame a handshake message: type (1) + uint24 length + body (RFC 8446 §4)."""
    return bytes([msg_type]) + _vec(body, 3)


def _pull_extensions(buf: Buffer) -> list[tuple[int, bytes]]:
    """Read an Extension list; a repeated type is illegal_parameter (RFC 8446 §4.2)."""
    block = _pull_vector(buf, 2)
    out: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    pos, end = 0, len(block)
    unpack = _TYPE_AND_LENGTH.unpack_from
    while pos < end:  # type (2) and length (2) read together: a ClientHello has ~20 of them
        if pos + 4 > end:
            raise BufferReadError("truncated extension header")
        ext_type, length = unpack(block, pos)
        pos += 4
        if pos + length > end:
            raise BufferReadError("truncated extension")
        ext_data = block[pos : pos + length]
        pos += length
        if ext_type in seen:
            raise TlsAlert(AlertDescription.illegal_parameter, f"duplicate extension {ext_type}")
        seen.add(ext_type)
        out.append((ext_type, ext_data))
    return out


def _encode_extensions(exts: list[tuple[int, bytes]]) -> bytes:
    return _vec(b"".join(t.to_bytes(2, "big") + _vec(d, 2) for t, d in exts), 2)


def _pull_message_header(buf: Buffer, expected: HandshakeType) -> tuple[int, bytes]:
    """Read the 4-byte header and body of one message; return (start offset, body)."""
    start = buf.tell()
    msg_type = buf.pull_uint8()
    if msg_type != expected:
        raise TlsAlert(
            AlertDescription.unexpected_message, f"expected {expected.name}, got {msg_type}"
        )
    body = _pull_vector(buf, 3)
    return start, body


def _pull_message(
    buf: Buffer, expected: HandshakeType, parse_body: Callable[[Buffer, bytes], T]
) -> T:
    """Common frame for every ``pull_x``: header, body parsed to its exact end."""
    try:
        start, body = _pull_message_header(buf, expected)
    except BufferReadError as exc:
        raise _decode_error(f"truncated {expected.name}") from exc
    raw = buf.data_slice(start, buf.tell())
    return _parse_all(body, lambda b: parse_body(b, raw), expected.name)


# --- extension codecs ------------------------------------------------------------


def _parse_server_name(data: bytes) -> str | None:
    """server_name (RFC 6066 §3): the first host_name entry; empty data means acknowledged."""
    if not data:
        return None

    def parse(b: Buffer) -> str | None:
        names = Buffer(data=_pull_vector(b, 2, 1))
        host: str | None = None
        while not names.eof():
            name_type = names.pull_uint8()
            name = _pull_vector(names, 2, 1)
            if name_type == 0 and host is None:
                try:
                    host = name.decode("ascii")
                except UnicodeDecodeError as exc:
                    raise _decode_error("server_name is not ASCII") from exc
        return host

    return _parse_all(data, parse, "server_name")


def parse_alpn(data: bytes) -> tuple[str, ...]:
    """ProtocolNameList (RFC 7301 §3.1); names are kept as latin-1 strings (byte-exact)."""

    def parse(b: Buffer) -> tuple[str, ...]:
        lst = Buffer(data=_pull_vector(b, 2, 2))
        names = []
        while not lst.eof():
            names.append(_pull_vector(lst, 1, 1).decode("latin-1"))
        return tuple(names)

    return _parse_all(data, parse, "application_layer_protocol_negotiation")


def _encode_alpn(names: tuple[str, ...]) -> bytes:
    return _vec(b"".join(_vec(n.encode("latin-1"), 1) for n in names), 2)


def _parse_key_share_client(data: bytes) -> tuple[KeyShareEntry, ...]:
    def parse(b: Buffer) -> tuple[KeyShareEntry, ...]:
        lst = Buffer(data=_pull_vector(b, 2))
        entries = []
        while not lst.eof():
            group = lst.pull_uint16()
            entries.append(KeyShareEntry(group, _pull_vector(lst, 2, 1)))
        return tuple(entries)

    return _parse_all(data, parse, "key_share")


def _parse_key_share_entry(data: bytes) -> KeyShareEntry:
    def parse(b: Buffer) -> KeyShareEntry:
        group = b.pull_uint16()
        return KeyShareEntry(group, _pull_vector(b, 2, 1))

    return _parse_all(data, parse, "key_share")


def _encode_key_share_entry(entry: KeyShareEntry) -> bytes:
    return entry.group.to_bytes(2, "big") + _vec(entry.key_exchange, 2)


def _parse_u16(data: bytes, what: str) -> int:
    return _parse_all(data, lambda b: b.pull_uint16(), what)


def _parse_opaque(data: bytes, length_size: int, what: str, minimum: int = 0) -> bytes:
    return _parse_all(data, lambda b: _pull_vector(b, length_size, minimum), what)


# --- ClientHello -------------------------------------------------------------------


def _client_hello_body(b: Buffer, raw: bytes) -> ClientHello:
    legacy_version = b.pull_uint16()
    random = b.pull_bytes(32)
    session_id = _pull_vector(b, 1)
    if len(session_id) > 32:
        raise _decode_error("legacy_session_id longer than 32 bytes")
    suites = _pull_list(_pull_vector(b, 2), 2, "cipher_suites")
    compression = _pull_vector(b, 1, 1)
    fields: dict[str, object] = {}
    others: list[tuple[int, bytes]] = []
    exts = _pull_extensions(b) if not b.eof() else []
    for i, (ext_type, data) in enumerate(exts):
        if ext_type == ExtensionType.SERVER_NAME:
            fields["server_name"] = _parse_server_name(data)
        elif ext_type == ExtensionType.SUPPORTED_GROUPS:
            fields["supported_groups"] = _pull_list(
                _parse_opaque(data, 2, "supported_groups"), 2, "supported_groups"
            )
        elif ext_type == ExtensionType.SIGNATURE_ALGORITHMS:
            fields["signature_algorithms"] = _pull_list(
                _parse_opaque(data, 2, "signature_algorithms"), 2, "signature_algorithms"
            )
        elif ext_type == ExtensionType.ALPN:
            fields["alpn_protocols"] = parse_alpn(data)
        elif ext_type == ExtensionType.KEY_SHARE:
            fields["key_share"] = _parse_key_share_client(data)
        elif ext_type == ExtensionType.SUPPORTED_VERSIONS:
            fields["supported_versions"] = _pull_list(
                _parse_opaque(data, 1, "supported_versions"), 2, "supported_versions"
            )
        elif ext_type == ExtensionType.PSK_KEY_EXCHANGE_MODES:
            fields["psk_key_exchange_modes"] = _pull_list(
                _parse_opaque(data, 1, "psk_key_exchange_modes"), 1, "psk_key_exchange_modes"
            )
        elif ext_type == ExtensionType.COOKIE:
            fields["cookie"] = _parse_opaque(data, 2, "cookie", 1)
        elif ext_type == ExtensionType.QUIC_TRANSPORT_PARAMETERS:
            fields["quic_transport_parameters"] = data
        else:
            if ext_type == ExtensionType.PRE_SHARED_KEY and i != len(exts) - 1:
                # RFC 8446 §4.2.11: pre_shared_key MUST be the last extension.
                raise TlsAlert(AlertDescription.illegal_parameter, "pre_shared_key is not last")
            others.append((ext_type, data))
    return ClientHello(
        random=random,
        legacy_session_id=session_id,
        cipher_suites=suites,
        legacy_compression_methods=compression,
        legacy_version=legacy_version,
        other_extensions=tuple(others),
        raw=raw,
        **fields,  # type: ignore[arg-type]
    )


def pull_client_hello(buf: Buffer) -> ClientHello:
    """Read one ClientHello handshake message (header included) from ``buf``."""
    return _pull_message(buf, HandshakeType.CLIENT_HELLO, _client_hello_body)


def encode_client_hello(hello: ClientHello) -> bytes:
    """Serialize a ClientHello as a handshake message (``raw`` is ignored).

    Extension order: server_name, supported_groups, signature_algorithms, ALPN,
    quic_transport_parameters, psk_key_exchange_modes, key_share, supported_versions, cookie,
    then ``other_extensions`` in their order.
    """
    exts: list[tuple[int, bytes]] = []
    if hello.server_name is not None:
        name = hello.server_name.encode("ascii")
        exts.append((ExtensionType.SERVER_NAME, _vec(b"\x00" + _vec(name, 2), 2)))
    if hello.supported_groups is not None:
        exts.append((ExtensionType.SUPPORTED_GROUPS, _u16_list(hello.supported_groups)))
    if hello.signature_algorithms is not None:
        exts.append((ExtensionType.SIGNATURE_ALGORITHMS, _u16_list(hello.signature_algorithms)))
    if hello.alpn_protocols is not None:
        exts.append((ExtensionType.ALPN, _encode_alpn(hello.alpn_protocols)))
    if hello.quic_transport_parameters is not None:
        exts.append((ExtensionType.QUIC_TRANSPORT_PARAMETERS, hello.quic_transport_parameters))
    if hello.psk_key_exchange_modes is not None:
        exts.append(
            (ExtensionType.PSK_KEY_EXCHANGE_MODES, _vec(bytes(hello.psk_key_exchange_modes), 1))
        )
    if hello.key_share is not None:
        shares = b"".join(_encode_key_share_entry(e) for e in hello.key_share)
        exts.append((ExtensionType.KEY_SHARE, _vec(shares, 2)))
    if hello.supported_versions is not None:
        exts.append((ExtensionType.SUPPORTED_VERSIONS, _u16_list(hello.supported_versions, 1)))
    if hello.cookie is not None:
        exts.append((ExtensionType.COOKIE, _vec(hello.cookie, 2)))
    exts.extend(hello.other_extensions)
    body = (
        hello.legacy_version.to_bytes(2, "big")
        + hello.random
        + _vec(hello.legacy_session_id, 1)
        + _u16_list(hello.cipher_suites)
        + _vec(hello.legacy_compression_methods, 1)
        + _encode_extensions(exts)
    )
    return _handshake(HandshakeType.CLIENT_HELLO, body)


def push_client_hello(buf: Buffer, hello: ClientHello) -> None:
    """Write a ClientHello handshake message into ``buf``."""
    buf.push_bytes(encode_client_hello(hello))


# --- ServerHello / HelloRetryRequest --------------------------------------------------


def _server_hello_body(b: Buffer, raw: bytes) -> ServerHello:
    legacy_version = b.pull_uint16()
    random = b.pull_bytes(32)
    session_id = _pull_vector(b, 1)
    if len(session_id) > 32:
        raise _decode_error("legacy_session_id_echo longer than 32 bytes")
    suite = b.pull_uint16()
    compression = b.pull_uint8()
    is_hrr = random == HELLO_RETRY_REQUEST_RANDOM
    fields: dict[str, object] = {}
    others: list[tuple[int, bytes]] = []
    for ext_type, data in _pull_extensions(b):
        if ext_type == ExtensionType.SUPPORTED_VERSIONS:
            fields["supported_version"] = _parse_u16(data, "supported_versions")
        elif ext_type == ExtensionType.KEY_SHARE and is_hrr:
            fields["selected_group"] = _parse_u16(data, "key_share")
        elif ext_type == ExtensionType.KEY_SHARE:
            fields["key_share"] = _parse_key_share_entry(data)
        elif ext_type == ExtensionType.COOKIE and is_hrr:
            fields["cookie"] = _parse_opaque(data, 2, "cookie", 1)
        else:
            others.append((ext_type, data))
    return ServerHello(
        random=random,
        legacy_session_id_echo=session_id,
        cipher_suite=suite,
        legacy_compression_method=compression,
        legacy_version=legacy_version,
        other_extensions=tuple(others),
        raw=raw,
        **fields,  # type: ignore[arg-type]
    )


def pull_server_hello(buf: Buffer) -> ServerHello:
    """Read one ServerHello (or HelloRetryRequest) handshake message from ``buf``."""
    return _pull_message(buf, HandshakeType.SERVER_HELLO, _server_hello_body)


def encode_server_hello(hello: ServerHello) -> bytes:
    """Serialize a ServerHello/HelloRetryRequest
    (order: key_share, supported_versions, cookie, as RFC 8448)."""
    exts: list[tuple[int, bytes]] = []
    if hello.selected_group is not None:
        exts.append((ExtensionType.KEY_SHARE, hello.selected_group.to_bytes(2, "big")))
    elif hello.key_share is not None:
        exts.append((ExtensionType.KEY_SHARE, _encode_key_share_entry(hello.key_share)))
    if hello.supported_version is not None:
        exts.append((ExtensionType.SUPPORTED_VERSIONS, hello.supported_version.to_bytes(2, "big")))
    if hello.cookie is not None:
        exts.append((ExtensionType.COOKIE, _vec(hello.cookie, 2)))
    exts.extend(hello.other_extensions)
    body = (
        hello.legacy_version.to_bytes(2, "big")
        + hello.random
        + _vec(hello.legacy_session_id_echo, 1)
        + hello.cipher_suite.to_bytes(2, "big")
        + bytes([hello.legacy_compression_method])
        + _encode_extensions(exts)
    )
    return _handshake(HandshakeType.SERVER_HELLO, body)


def push_server_hello(buf: Buffer, hello: ServerHello) -> None:
    """Write a ServerHello/HelloRetryRequest handshake message into ``buf``."""
    buf.push_bytes(encode_server_hello(hello))


# --- EncryptedExtensions ----------------------------------------------------------


def _encrypted_extensions_body(b: Buffer, raw: bytes) -> EncryptedExtensions:
    fields: dict[str, object] = {}
    others: list[tuple[int, bytes]] = []
    for ext_type, data in _pull_extensions(b):
        if ext_type == ExtensionType.ALPN:
            names = parse_alpn(data)
            if len(names) != 1:
                # RFC 7301 §3.1: the server's list MUST contain exactly one protocol.
                raise _decode_error("ALPN in EncryptedExtensions must name one protocol")
            fields["alpn_protocol"] = names[0]
        elif ext_type == ExtensionType.QUIC_TRANSPORT_PARAMETERS:
            fields["quic_transport_parameters"] = data
        elif ext_type == ExtensionType.SERVER_NAME:
            if data:
                raise _decode_error("server_name in EncryptedExtensions must be empty")
            fields["server_name_acknowledged"] = True
        elif ext_type == ExtensionType.SUPPORTED_GROUPS:
            fields["supported_groups"] = _pull_list(
                _parse_opaque(data, 2, "supported_groups"), 2, "supported_groups"
            )
        else:
            others.append((ext_type, data))
    return EncryptedExtensions(other_extensions=tuple(others), raw=raw, **fields)  # type: ignore[arg-type]


def pull_encrypted_extensions(buf: Buffer) -> EncryptedExtensions:
    """Read one EncryptedExtensions handshake message from ``buf``."""
    return _pull_message(buf, HandshakeType.ENCRYPTED_EXTENSIONS, _encrypted_extensions_body)


def encode_encrypted_extensions(ee: EncryptedExtensions) -> bytes:
    """Serialize EncryptedExtensions (order: server_name ack, supported_groups, ALPN, QUIC TP)."""
    exts: list[tuple[int, bytes]] = []
    if ee.server_name_acknowledged:
        exts.append((ExtensionType.SERVER_NAME, b""))
    if ee.supported_groups is not None:
        exts.append((ExtensionType.SUPPORTED_GROUPS, _u16_list(ee.supported_groups)))
    if ee.alpn_protocol is not None:
        exts.append((ExtensionType.ALPN, _encode_alpn((ee.alpn_protocol,))))
    if ee.quic_transport_parameters is not None:
        exts.append((ExtensionType.QUIC_TRANSPORT_PARAMETERS, ee.quic_transport_parameters))
    exts.extend(ee.other_extensions)
    return _handshake(HandshakeType.ENCRYPTED_EXTENSIONS, _encode_extensions(exts))


def push_encrypted_extensions(buf: Buffer, ee: EncryptedExtensions) -> None:
    """Write an EncryptedExtensions handshake message into ``buf``."""
    buf.push_bytes(encode_encrypted_extensions(ee))


# --- Certificate / CertificateRequest / CertificateVerify / Finished ------------------


def _certificate_body(b: Buffer, raw: bytes) -> Certificate:
    context = _pull_vector(b, 1)
    lst = Buffer(data=_pull_vector(b, 3))
    entries = []
    while not lst.eof():
        cert_data = _pull_vector(lst, 3, 1)
        entries.append(CertificateEntry(cert_data, tuple(_pull_extensions(lst))))
    return Certificate(context, tuple(entries), raw)


def pull_certificate(buf: Buffer) -> Certificate:
    """Read one Certificate handshake message from ``buf``."""
    return _pull_message(buf, HandshakeType.CERTIFICATE, _certificate_body)


def encode_certificate(cert: Certificate) -> bytes:
    """Serialize a Certificate message.

    certificate_list is ONE uint24-prefixed vector of entries, each entry being
    ``cert_data<1..2^24-1> extensions<0..2^16-1>`` (RFC 8446 §4.4.2): no nested list length.
    """
    entries = b"".join(
        _vec(e.cert_data, 3) + _encode_extensions(list(e.extensions)) for e in cert.certificate_list
    )
    return _handshake(HandshakeType.CERTIFICATE, _vec(cert.request_context, 1) + _vec(entries, 3))


def push_certificate(buf: Buffer, cert: Certificate) -> None:
    """Write a Certificate handshake message into ``buf``."""
    buf.push_bytes(encode_certificate(cert))


def _certificate_request_body(b: Buffer, raw: bytes) -> CertificateRequest:
    context = _pull_vector(b, 1)
    sig_algs: tuple[int, ...] | None = None
    others: list[tuple[int, bytes]] = []
    for ext_type, data in _pull_extensions(b):
        if ext_type == ExtensionType.SIGNATURE_ALGORITHMS:
            sig_algs = _pull_list(
                _parse_opaque(data, 2, "signature_algorithms"), 2, "signature_algorithms"
            )
        else:
            others.append((ext_type, data))
    return CertificateRequest(context, sig_algs, tuple(others), raw)


def pull_certificate_request(buf: Buffer) -> CertificateRequest:
    """Read one CertificateRequest handshake message from ``buf``."""
    return _pull_message(buf, HandshakeType.CERTIFICATE_REQUEST, _certificate_request_body)


def encode_certificate_request(req: CertificateRequest) -> bytes:
    """Serialize a CertificateRequest message."""
    exts: list[tuple[int, bytes]] = []
    if req.signature_algorithms is not None:
        exts.append((ExtensionType.SIGNATURE_ALGORITHMS, _u16_list(req.signature_algorithms)))
    exts.extend(req.other_extensions)
    return _handshake(
        HandshakeType.CERTIFICATE_REQUEST, _vec(req.request_context, 1) + _encode_extensions(exts)
    )


def push_certificate_request(buf: Buffer, req: CertificateRequest) -> None:
    """Write a CertificateRequest handshake message into ``buf``."""
    buf.push_bytes(encode_certificate_request(req))


def pull_certificate_verify(buf: Buffer) -> CertificateVerify:
    """Read one CertificateVerify handshake message from ``buf``."""
    return _pull_message(
        buf,
        HandshakeType.CERTIFICATE_VERIFY,
        lambda b, raw: CertificateVerify(b.pull_uint16(), _pull_vector(b, 2), raw),
    )


def encode_certificate_verify(cv: CertificateVerify) -> bytes:
    """Serialize a CertificateVerify message."""
    body = cv.algorithm.to_bytes(2, "big") + _vec(cv.signature, 2)
    return _handshake(HandshakeType.CERTIFICATE_VERIFY, body)


def push_certificate_verify(buf: Buffer, cv: CertificateVerify) -> None:
    """Write a CertificateVerify handshake message into ``buf``."""
    buf.push_bytes(encode_certificate_verify(cv))


def pull_finished(buf: Buffer) -> Finished:
    """Read one Finished handshake message; verify_data is the whole body."""
    return _pull_message(
        buf, HandshakeType.FINISHED, lambda b, raw: Finished(b.pull_bytes(b.remaining()), raw)
    )


def encode_finished(fin: Finished) -> bytes:
    """Serialize a Finished message."""
    return _handshake(HandshakeType.FINISHED, fin.verify_data)


def push_finished(buf: Buffer, fin: Finished) -> None:
    """Write a Finished handshake message into ``buf``."""
    buf.push_bytes(encode_finished(fin))


def _new_session_ticket_body(b: Buffer, raw: bytes) -> NewSessionTicket:
    lifetime = b.pull_uint32()
    age_add = b.pull_uint32()
    nonce = _pull_vector(b, 1)
    ticket = _pull_vector(b, 2, 1)
    return NewSessionTicket(lifetime, age_add, nonce, ticket, tuple(_pull_extensions(b)), raw)


def pull_new_session_ticket(buf: Buffer) -> NewSessionTicket:
    """Read one NewSessionTicket handshake message from ``buf``."""
    return _pull_message(buf, HandshakeType.NEW_SESSION_TICKET, _new_session_ticket_body)


def encode_new_session_ticket(nst: NewSessionTicket) -> bytes:
    """Serialize a NewSessionTicket message."""
    body = (
        nst.ticket_lifetime.to_bytes(4, "big")
        + nst.ticket_age_add.to_bytes(4, "big")
        + _vec(nst.ticket_nonce, 1)
        + _vec(nst.ticket, 2)
        + _encode_extensions(list(nst.extensions))
    )
    return _handshake(HandshakeType.NEW_SESSION_TICKET, body)


def push_new_session_ticket(buf: Buffer, nst: NewSessionTicket) -> None:
    """Write a NewSessionTicket handshake message into ``buf``."""
    buf.push_bytes(encode_new_session_ticket(nst))


# --- re-framing the CRYPTO stream ---------------------------------------------------------


class MessageReader:
    """Re-frames one epoch's in-order CRYPTO bytes into whole handshake messages.

    Messages may be split across chunks or several may share one chunk (RFC 9001 §4.1.3).
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> None:
        """Append in-order CRYPTO bytes."""
        self._pending += data

    def messages(self) -> Iterator[tuple[int, bytes]]:
        """Yield ``(msg_type, raw message)`` for each complete message, consuming it."""
        while len(self._pending) >= 4:
            length = int.from_bytes(self._pending[1:4], "big")
            if length > MAX_MESSAGE_SIZE:
                raise _decode_error(f"handshake message of {length} bytes is too large")
            if len(self._pending) < 4 + length:
                return
            raw = bytes(self._pending[: 4 + length])
            del self._pending[: 4 + length]
            yield raw[0], raw

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete message still waiting for more data."""
        return len(self._pending)
