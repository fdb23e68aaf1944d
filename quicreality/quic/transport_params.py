"""QUIC transport parameters (RFC 9000 §7.4, §18) plus max_datagram_frame_size (RFC 9221 §3).

Absent parameters are ``None`` (defaults are the connection's business, RFC 9000 §18.2). Unknown parameters,
including reserved/greased identifiers ``31 * N + 27`` (RFC 9000 §18.1), are ignored on receipt; any
violation of RFC 9000 §7.4 / §18.2 raises ``QuicConnectionError(TRANSPORT_PARAMETER_ERROR, None, reason)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..wire.buffer import Buffer, BufferReadError
from .errors import QuicConnectionError, QuicErrorCode
from .packet import CONNECTION_ID_MAX_SIZE, STATELESS_RESET_TOKEN_SIZE
from .packet import is_reserved_version as is_reserved_version  # re-exported

# Transport parameter identifiers (RFC 9000 §18.2, RFC 9221 §3).
PARAM_ORIGINAL_DESTINATION_CONNECTION_ID = 0x00
PARAM_MAX_IDLE_TIMEOUT = 0x01
PARAM_STATELESS_RESET_TOKEN = 0x02
PARAM_MAX_UDP_PAYLOAD_SIZE = 0x03
PARAM_INITIAL_MAX_DATA = 0x04
PARAM_INITIAL_MAX_STREAM_DATA_BIDI_LOCAL = 0x05
PARAM_INITIAL_MAX_STREAM_DATA_BIDI_REMOTE = 0x06
PARAM_INITIAL_MAX_STREAM_DATA_UNI = 0x07
PARAM_INITIAL_MAX_STREAMS_BIDI = 0x08
PARAM_INITIAL_MAX_STREAMS_UNI = 0x09
PARAM_ACK_DELAY_EXPONENT = 0x0A
PARAM_MAX_ACK_DELAY = 0x0B
PARAM_DISABLE_ACTIVE_MIGRATION = 0x0C
PARAM_PREFERRED_ADDRESS = 0x0D
PARAM_ACTIVE_CONNECTION_ID_LIMIT = 0x0E
PARAM_INITIAL_SOURCE_CONNECTION_ID = 0x0F
PARAM_RETRY_SOURCE_CONNECTION_ID = 0x10
PARAM_MAX_DATAGRAM_FRAME_SIZE = 0x20
#: version_information (RFC 9368 §3).
PARAM_VERSION_INFORMATION = 0x11
#: google_connection_options (Google QUIC's "connection options" tags, sent by Chrome).
PARAM_GOOGLE_CONNECTION_OPTIONS = 0x3128
#: Largest transport parameter identifier (a 62-bit varint, RFC 9000 §18).
MAX_PARAMETER_ID = (1 << 62) - 1

#: Smallest valid max_udp_payload_size (RFC 9000 §18.2).
MIN_MAX_UDP_PAYLOAD_SIZE = 1200
#: Largest valid ack_delay_exponent (RFC 9000 §18.2).
MAX_ACK_DELAY_EXPONENT = 20
#: max_ack_delay must be below 2^14 ms (RFC 9000 §18.2).
MAX_ACK_DELAY_LIMIT = 1 << 14
#: Smallest valid active_connection_id_limit (RFC 9000 §18.2).
MIN_ACTIVE_CONNECTION_ID_LIMIT = 2
#: Largest initial_max_streams_bidi/uni (RFC 9000 §18.2, §4.6).
MAX_STREAMS_LIMIT = 1 << 60

#: Parameters only a server may send (RFC 9000 §18.2).
SERVER_ONLY_PARAMETERS = frozenset(
    {
        PARAM_ORIGINAL_DESTINATION_CONNECTION_ID,
        PARAM_STATELESS_RESET_TOKEN,
        PARAM_PREFERRED_ADDRESS,
        PARAM_RETRY_SOURCE_CONNECTION_ID,
    }
)

_VARINT_PARAMS: dict[int, str] = {
    PARAM_MAX_IDLE_TIMEOUT: "max_idle_timeout",
    PARAM_MAX_UDP_PAYLOAD_SIZE: "max_udp_payload_size",
    PARAM_INITIAL_MAX_DATA: "initial_max_data",
    PARAM_INITIAL_MAX_STREAM_DATA_BIDI_LOCAL: "initial_max_stream_data_bidi_local",
    PARAM_INITIAL_MAX_STREAM_DATA_BIDI_REMOTE: "initial_max_stream_data_bidi_remote",
    PARAM_INITIAL_MAX_STREAM_DATA_UNI: "initial_max_stream_data_uni",
    PARAM_INITIAL_MAX_STREAMS_BIDI: "initial_max_streams_bidi",
    PARAM_INITIAL_MAX_STREAMS_UNI: "initial_max_streams_uni",
    PARAM_ACK_DELAY_EXPONENT: "ack_delay_exponent",
    PARAM_MAX_ACK_DELAY: "max_ack_delay",
    PARAM_ACTIVE_CONNECTION_ID_LIMIT: "active_connection_id_limit",
    PARAM_MAX_DATAGRAM_FRAME_SIZE: "max_datagram_frame_size",
}
_CID_PARAMS: dict[int, str] = {
    PARAM_ORIGINAL_DESTINATION_CONNECTION_ID: "original_destination_connection_id",
    PARAM_INITIAL_SOURCE_CONNECTION_ID: "initial_source_connection_id",
    PARAM_RETRY_SOURCE_CONNECTION_ID: "retry_source_connection_id",
}


def _error(reason: str) -> QuicConnectionError:
    """A TRANSPORT_PARAMETER_ERROR (RFC 9000 §7.4)."""
    return QuicConnectionError(QuicErrorCode.TRANSPORT_PARAMETER_ERROR, None, reason)


@dataclass(frozen=True, slots=True)
class VersionInformation:
    """version_information (RFC 9368 §3): the Initial's version and the versions we support."""

    chosen_version: int
    available_versions: tuple[int, ...]


def encode_version_information(info: VersionInformation) -> bytes:
    """Chosen Version (32 bits) then Available Versions (32 bits each) (RFC 9368 §3)."""
    return b"".join(v.to_bytes(4, "big") for v in (info.chosen_version, *info.available_versions))


def pull_version_information(data: bytes) -> VersionInformation:
    """Parse a version_information value.

    Raises:
        QuicConnectionError: TRANSPORT_PARAMETER_ERROR when its length is not a positive multiple
            of 4 or a version is 0 (RFC 9368 §3, §4).
    """
    if not data or len(data) % 4:
        raise _error("version_information length must be a positive multiple of 4")
    versions = [int.from_bytes(data[i : i + 4], "big") for i in range(0, len(data), 4)]
    if 0 in versions:
        raise _error("version_information lists version 0")
    return VersionInformation(versions[0], tuple(versions[1:]))


@dataclass(frozen=True, slots=True)
class PreferredAddress:
    """The preferred_address value (RFC 9000 §18.2, Figure 22); addresses are raw network-order bytes."""

    ipv4_address: bytes  # 4 bytes, all zero when absent
    ipv4_port: int
    ipv6_address: bytes  # 16 bytes, all zero when absent
    ipv6_port: int
    connection_id: bytes
    stateless_reset_token: bytes


@dataclass(frozen=True, slots=True)
class QuicTransportParameters:
    """Transport parameters (RFC 9000 §18.2; max_datagram_frame_size RFC 9221 §3). ``None`` means absent.

    Durations are in milliseconds as on the wire (max_idle_timeout, max_ack_delay).
    """

    original_destination_connection_id: bytes | None = None
    max_idle_timeout: int | None = None
    stateless_reset_token: bytes | None = None
    max_udp_payload_size: int | None = None
    initial_max_data: int | None = None
    initial_max_stream_data_bidi_local: int | None = None
    initial_max_stream_data_bidi_remote: int | None = None
    initial_max_stream_data_uni: int | None = None
    initial_max_streams_bidi: int | None = None
    initial_max_streams_uni: int | None = None
    ack_delay_exponent: int | None = None
    max_ack_delay: int | None = None
    disable_active_migration: bool = False
    preferred_address: PreferredAddress | None = None
    active_connection_id_limit: int | None = None
    initial_source_connection_id: bytes | None = None
    retry_source_connection_id: bytes | None = None
    max_datagram_frame_size: int | None = None
    version_information: VersionInformation | None = None


def _pull_preferred_address(buf: Buffer) -> PreferredAddress:
    """Read a preferred_address value (RFC 9000 §18.2)."""
    ipv4_address = buf.pull_bytes(4)
    ipv4_port = buf.pull_uint16()
    ipv6_address = buf.pull_bytes(16)
    ipv6_port = buf.pull_uint16()
    cid_length = buf.pull_uint8()
    if cid_length == 0 or cid_length > CONNECTION_ID_MAX_SIZE:
        # RFC 9000 §18.2: a zero-length connection ID here is a TRANSPORT_PARAMETER_ERROR.
        raise _error("preferred_address connection ID length must be 1 to 20")
    connection_id = buf.pull_bytes(cid_length)
    token = buf.pull_bytes(STATELESS_RESET_TOKEN_SIZE)
    return PreferredAddress(ipv4_address, ipv4_port, ipv6_address, ipv6_port, connection_id, token)


def pull_transport_parameters(
    buf: Buffer, *, from_server: bool | None = None
) -> QuicTransportParameters:
    """Read a transport parameter list filling the whole of ``buf`` (RFC 9000 §18).

    Args:
        buf: the extension_data of the quic_transport_parameters TLS extension.
        from_server: when given, also reject parameters the sender's role must not send (RFC 9000 §18.2:
            a server receiving a server-only parameter).

    Raises:
        QuicConnectionError: TRANSPORT_PARAMETER_ERROR on malformed, duplicate or out-of-range values.
    """
    values: dict[str, object] = {}
    seen: set[int] = set()
    try:
        while not buf.eof():
            param_id = buf.pull_uint_var()
            length = buf.pull_uint_var()
            if param_id in seen:
                raise _error(f"duplicate transport parameter {param_id:#x}")
            seen.add(param_id)
            value = Buffer(data=buf.pull_bytes(length))
            if from_server is False and param_id in SERVER_ONLY_PARAMETERS:
                raise _error(f"client sent server-only transport parameter {param_id:#x}")
            if param_id in _VARINT_PARAMS:
                values[_VARINT_PARAMS[param_id]] = value.pull_uint_var()
            elif param_id in _CID_PARAMS:
                if length > CONNECTION_ID_MAX_SIZE:
                    raise _error(f"connection ID in transport parameter {param_id:#x} too long")
                values[_CID_PARAMS[param_id]] = value.pull_bytes(length)
            elif param_id == PARAM_STATELESS_RESET_TOKEN:
                if length != STATELESS_RESET_TOKEN_SIZE:
                    raise _error("stateless_reset_token must be 16 bytes")
                values["stateless_reset_token"] = value.pull_bytes(length)
            elif param_id == PARAM_DISABLE_ACTIVE_MIGRATION:
                values["disable_active_migration"] = True
            elif param_id == PARAM_PREFERRED_ADDRESS:
                values["preferred_address"] = _pull_preferred_address(value)
            elif param_id == PARAM_VERSION_INFORMATION:
                values["version_information"] = pull_version_information(value.pull_bytes(length))
            else:
                continue  # unknown or reserved (RFC 9000 §7.4.2, §18.1): ignore
            if not value.eof():
                raise _error(f"transport parameter {param_id:#x} has trailing bytes")
    except BufferReadError:
        raise _error("malformed transport parameters") from None
    params = QuicTransportParameters(**values)  # type: ignore[arg-type]
    validate_transport_parameters(params)
    return params


def validate_transport_parameters(params: QuicTransportParameters) -> None:
    """Check value ranges (RFC 9000 §18.2, RFC 9221 §3); raise TRANSPORT_PARAMETER_ERROR."""
    if (
        params.max_udp_payload_size is not None
        and params.max_udp_payload_size < MIN_MAX_UDP_PAYLOAD_SIZE
    ):
        raise _error("max_udp_payload_size below 1200")
    if params.ack_delay_exponent is not None and params.ack_delay_exponent > MAX_ACK_DELAY_EXPONENT:
        raise _error("ack_delay_exponent above 20")
    if params.max_ack_delay is not None and params.max_ack_delay >= MAX_ACK_DELAY_LIMIT:
        raise _error("max_ack_delay of 2^14 or more")
    if (
        params.active_connection_id_limit is not None
        and params.active_connection_id_limit < MIN_ACTIVE_CONNECTION_ID_LIMIT
    ):
        raise _error("active_connection_id_limit below 2")
    for name in ("initial_max_streams_bidi", "initial_max_streams_uni"):
        value = getattr(params, name)
        if value is not None and value > MAX_STREAMS_LIMIT:
            raise _error(f"{name} above 2^60")


def push_transport_parameters(
    buf: Buffer, params: QuicTransportParameters, *, extra: Iterable[tuple[int, bytes]] = ()
) -> None:
    """Write the parameters that are not ``None`` (RFC 9000 §18).

    Args:
        extra: additional ``(id, value)`` pairs written verbatim after the known ones, e.g. a greased
            parameter ``31 * N + 27`` with random content (RFC 9000 §18.1) chosen by the caller's rng.
    """
    for param_id, name in _CID_PARAMS.items():
        cid = getattr(params, name)
        if cid is not None:
            _push_param(buf, param_id, cid)
    for param_id, name in _VARINT_PARAMS.items():
        number = getattr(params, name)
        if number is not None:
            value = Buffer(capacity=8)
            value.push_uint_var(number)
            _push_param(buf, param_id, value.data)
    if params.stateless_reset_token is not None:
        _push_param(buf, PARAM_STATELESS_RESET_TOKEN, params.stateless_reset_token)
    if params.disable_active_migration:
        _push_param(buf, PARAM_DISABLE_ACTIVE_MIGRATION, b"")
    if params.preferred_address is not None:
        pa = params.preferred_address
        value = Buffer(
            capacity=4 + 2 + 16 + 2 + 1 + len(pa.connection_id) + STATELESS_RESET_TOKEN_SIZE
        )
        value.push_bytes(pa.ipv4_address)
        value.push_uint16(pa.ipv4_port)
        value.push_bytes(pa.ipv6_address)
        value.push_uint16(pa.ipv6_port)
        value.push_uint8(len(pa.connection_id))
        value.push_bytes(pa.connection_id)
        value.push_bytes(pa.stateless_reset_token)
        _push_param(buf, PARAM_PREFERRED_ADDRESS, value.data)
    if params.version_information is not None:
        _push_param(buf, PARAM_VERSION_INFORMATION,
                    encode_version_information(params.version_information))
    for param_id, data in extra:
        _push_param(buf, param_id, data)


def _push_param(buf: Buffer, param_id: int, data: bytes) -> None:
    """Write one (id, length, value) triple (RFC 9000 §18)."""
    buf.push_uint_var(param_id)
    buf.push_uint_var(len(data))
    buf.push_bytes(data)


def encode_transport_parameters(
    params: QuicTransportParameters, *, extra: Iterable[tuple[int, bytes]] = ()
) -> bytes:
    """Serialise ``params`` to bytes (for the TLS quic_transport_parameters extension, RFC 9001 §8.2)."""
    extra = tuple(extra)
    buf = Buffer(capacity=1024 + sum(len(data) + 16 for _, data in extra))
    push_transport_parameters(buf, params, extra=extra)
    return buf.data


# --- raw parameter lists, reserved identifiers, version_information ----------------------------


def pull_parameter_list(data: bytes) -> list[tuple[int, bytes]]:
    """The ``(id, value)`` pairs of a transport parameter list, in wire order, uninterpreted.

    Raises:
        QuicConnectionError: TRANSPORT_PARAMETER_ERROR when the framing is malformed.
    """
    buf = Buffer(data=data)
    out = []
    try:
        while not buf.eof():
            param_id = buf.pull_uint_var()
            out.append((param_id, buf.pull_bytes(buf.pull_uint_var())))
    except BufferReadError:
        raise _error("malformed transport parameters") from None
    return out


def encode_parameter_list(params: Iterable[tuple[int, bytes]]) -> bytes:
    """Serialise ``(id, value)`` pairs in the given order (RFC 9000 §18)."""
    pairs = tuple(params)
    buf = Buffer(capacity=sum(len(v) + 16 for _, v in pairs) + 1)
    for param_id, value in pairs:
        _push_param(buf, param_id, value)
    return buf.data


def is_reserved_parameter(param_id: int) -> bool:
    """True for the reserved ("GREASE") identifiers ``31 * N + 27`` (RFC 9000 §18.1)."""
    return param_id % 31 == 27


def reserved_parameter_id(n: int) -> int:
    """The reserved identifier ``31 * N + 27`` (RFC 9000 §18.1) for ``n``, kept within 62 bits."""
    if n < 0 or 31 * n + 27 > MAX_PARAMETER_ID:
        raise ValueError("N is out of range for a 62-bit identifier")
    return 31 * n + 27

