"""Relay configuration: the ``[relay]`` table of the server's TOML file, and the client's knobs.

```toml
[relay]
allow = ["127.0.0.1:5201", "10.0.0.0/8:*", "[::1]:*"]   # deny by default: [] allows nothing
connect_timeout_ms = 10000        # TCP connect to the destination
udp_idle_timeout_ms = 60000       # a UDP flow without traffic either way is closed
max_udp_flows = 1024              # per QUIC connection
stream_window = "2M"              # QUIC receive window per stream (bytes; K/M/G suffixes)
connection_window = "16M"         # QUIC receive window per connection
send_high_water = "1M"            # stop reading a TCP socket while its stream has this much unacked
send_low_water = "256K"           # ... and read again below this
write_high_water = "1M"           # stop taking a stream's data while its TCP socket buffers this
write_low_water = "256K"          # ... and take it again below this
udp_queue_limit = 512             # DATAGRAMs waiting for the congestion window; more are dropped

[relay.upstream]                  # optional: reach the destinations through another relay
server = "relay2.example:443"     # its UDP address
public_key = "..."                # REALITY: its public key, a short ID and one of its names
short_id = "0123456789abcdef"
server_name = "www.example.com"
fingerprint = "chrome"            # chrome | minimal; carrier = "ech" | "session_id"
# ca = "ca.pem" / insecure = true: plain TLS instead of REALITY
```

Memory per relayed TCP connection is bounded by ``stream_window + write_high_water`` towards the
socket and ``send_high_water`` plus one socket read towards QUIC. Only ``[relay]`` is read; the
other tables (``[reality]``) belong to other components. Unknown keys are errors naming the field,
so a typo does not silently fall back to a default.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..reality.keys import KeyFormatError, parse_public_key, parse_short_id
from .allow import AllowList, AllowRuleError, parse_rule
from .protocol import Destination, parse_destination

_SUFFIXES = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}


class RelayConfigError(ValueError):
    """Invalid configuration; ``field`` names the offending key."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"[relay] {field_name}: {message}")
        self.field = field_name


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string such as ``"512K"``, ``"2M"``, ``"1MiB"`` (binary units)."""
    if isinstance(value, bool):
        raise ValueError("expected a size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("size must not be negative")
        return value
    if not isinstance(value, str):
        raise ValueError("expected an integer or a string like '2M'")
    text = value.strip().upper().removesuffix("IB").removesuffix("B")
    number, suffix = text, ""
    if text and text[-1] in "KMG":
        number, suffix = text[:-1], text[-1]
    if not number.isdigit():
        raise ValueError(f"invalid size {value!r}")
    return int(number) * _SUFFIXES[suffix]


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """The next relay of a chain (``[relay.upstream]``): where it is and how to authenticate.

    REALITY when :attr:`public_key` is set (with :attr:`short_id` and :attr:`server_name`), else
    plain TLS verified against :attr:`ca` (or not at all with :attr:`insecure`).
    """

    server: Destination
    public_key: bytes | None = None
    short_id: bytes = b""
    short_id_text: str = ""
    server_name: str | None = None
    fingerprint: str = "chrome"
    carrier: str | None = None
    ca: str | None = None
    insecure: bool = False
    idle_timeout: float = 30.0
    handshake_timeout: float = 5.0

    def describe(self) -> str:
        """``host:port (REALITY, SNI ...)`` for log lines and the status page."""
        how = (f"REALITY, SNI {self.server_name}, short ID {self.short_id_text or '(empty)'}"
               if self.public_key is not None else "plain TLS")
        return f"{self.server} ({how})"


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """Validated relay settings (sizes in bytes, times in seconds).

    The server uses all of it; the client uses the windows, water marks and UDP limits.
    """

    allow: AllowList = field(default_factory=AllowList)
    connect_timeout: float = 10.0
    udp_idle_timeout: float = 60.0
    max_udp_flows: int = 1024
    stream_window: int = 2 * 1024 * 1024
    connection_window: int = 16 * 1024 * 1024
    send_high_water: int = 1024 * 1024
    send_low_water: int = 256 * 1024
    write_high_water: int = 1024 * 1024
    write_low_water: int = 256 * 1024
    udp_queue_limit: int = 512
    max_streams: int = 1000
    #: Reach the destinations through this relay (None: connect to them directly).
    upstream: UpstreamConfig | None = None

    def quic_overrides(self) -> dict[str, int]:
        """QuicConfiguration fields to set on a connection that carries relay streams."""
        return {"max_stream_data": self.stream_window, "max_data": self.connection_window,
                "max_streams_bidi": self.max_streams}

    def check(self) -> None:
        """Raise :class:`RelayConfigError` for inconsistent values."""
        if self.connect_timeout <= 0:
            raise RelayConfigError("connect_timeout_ms", "must be positive")
        if self.udp_idle_timeout <= 0:
            raise RelayConfigError("udp_idle_timeout_ms", "must be positive")
        if self.max_udp_flows < 1:
            raise RelayConfigError("max_udp_flows", "must be at least 1")
        if self.stream_window < 1024:
            raise RelayConfigError("stream_window", "must be at least 1K")
        if self.connection_window < self.stream_window:
            raise RelayConfigError("connection_window", "must be at least stream_window")
        if not 0 < self.send_low_water <= self.send_high_water:
            raise RelayConfigError("send_low_water", "must be positive and <= send_high_water")
        if not 0 < self.write_low_water <= self.write_high_water:
            raise RelayConfigError("write_low_water", "must be positive and <= write_high_water")
        if self.udp_queue_limit < 1:
            raise RelayConfigError("udp_queue_limit", "must be at least 1")
        if not 1 <= self.max_streams <= 1 << 60:
            raise RelayConfigError("max_streams", "must be at least 1")


_SIZE_KEYS = ("stream_window", "connection_window", "send_high_water", "send_low_water",
              "write_high_water", "write_low_water")
_INT_KEYS = ("max_udp_flows", "udp_queue_limit", "max_streams")
_MS_KEYS = {"connect_timeout_ms": "connect_timeout", "udp_idle_timeout_ms": "udp_idle_timeout"}
KNOWN_KEYS = frozenset({"allow", "upstream", *_SIZE_KEYS, *_INT_KEYS, *_MS_KEYS})
UPSTREAM_KEYS = frozenset({"server", "public_key", "short_id", "server_name", "fingerprint",
                           "carrier", "ca", "insecure", "idle_timeout_ms", "handshake_timeout_ms"})


def _string(table: Mapping[str, Any], key: str) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise RelayConfigError(f"upstream.{key}", "must be a string")
    return value


def parse_upstream_table(table: Mapping[str, Any]) -> UpstreamConfig:
    """Validate ``[relay.upstream]``."""
    unknown = sorted(set(table) - UPSTREAM_KEYS)
    if unknown:
        raise RelayConfigError(f"upstream.{unknown[0]}",
                               f"unknown key (known: {', '.join(sorted(UPSTREAM_KEYS))})")
    server = _string(table, "server")
    if not server:
        raise RelayConfigError("upstream.server", "is required (HOST:PORT of the next relay)")
    try:
        dest = parse_destination(server)
    except ValueError as exc:
        raise RelayConfigError("upstream.server", str(exc)) from None
    values: dict[str, Any] = {"server": dest}
    key_text = _string(table, "public_key")
    insecure = table.get("insecure", False)
    if not isinstance(insecure, bool):
        raise RelayConfigError("upstream.insecure", "must be true or false")
    ca = _string(table, "ca")
    if key_text is not None:
        if ca is not None or insecure:
            raise RelayConfigError("upstream.public_key", "REALITY and ca/insecure are exclusive")
        try:
            values["public_key"] = parse_public_key(key_text)
        except KeyFormatError as exc:
            raise RelayConfigError("upstream.public_key", str(exc)) from None
        short_id = _string(table, "short_id")
        if short_id is None:
            raise RelayConfigError("upstream.short_id", "is required with public_key")
        try:
            values["short_id"] = parse_short_id(short_id)
        except KeyFormatError as exc:
            raise RelayConfigError("upstream.short_id", str(exc)) from None
        values["short_id_text"] = short_id
        if not _string(table, "server_name"):
            raise RelayConfigError("upstream.server_name", "is required with public_key")
    elif ca is None and not insecure:
        raise RelayConfigError("upstream", "give public_key (REALITY), or ca / insecure "
                                           "(plain TLS)")
    values.update(server_name=_string(table, "server_name"), ca=ca, insecure=insecure)
    fingerprint = _string(table, "fingerprint") or "chrome"
    if fingerprint not in ("chrome", "minimal"):
        raise RelayConfigError("upstream.fingerprint", "must be chrome or minimal")
    carrier = _string(table, "carrier")
    if carrier not in (None, "ech", "session_id"):
        raise RelayConfigError("upstream.carrier", "must be ech or session_id")
    if carrier == "ech" and fingerprint != "chrome":
        raise RelayConfigError("upstream.carrier", "ech needs fingerprint = \"chrome\"")
    values.update(fingerprint=fingerprint, carrier=carrier)
    for key, attr in (("idle_timeout_ms", "idle_timeout"),
                      ("handshake_timeout_ms", "handshake_timeout")):
        if key in table:
            value = table[key]
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise RelayConfigError(f"upstream.{key}", "must be a positive integer")
            values[attr] = value / 1000.0
    return UpstreamConfig(**values)


_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def check_upstream_loop(config: RelayConfig, *, own_public_key: bytes | None,
                        listen: tuple[str, int] | None) -> None:
    """Refuse an upstream that is visibly this server: its own public key or listen address.

    Loops through other relays cannot be seen here; the preface's hop limit stops those.

    Raises:
        RelayConfigError: on ``upstream.public_key`` or ``upstream.server``.
    """
    up = config.upstream
    if up is None:
        return
    if own_public_key is not None and up.public_key == own_public_key:
        raise RelayConfigError("upstream.public_key", "is this server's own public key: the "
                                                      "chain would loop back to itself")
    if listen is not None:
        host, port = listen
        same_host = up.server.host == host or (
            host in ("0.0.0.0", "::", "") and up.server.host in _LOOPBACK)
        if up.server.port == port and same_host:
            raise RelayConfigError("upstream.server", f"{up.server} is this server's own "
                                                      "listen address: the chain would loop")


def parse_relay_table(table: Mapping[str, Any]) -> RelayConfig:
    """Validate a ``[relay]`` table (a missing table means relay off: allow nothing)."""
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        raise RelayConfigError(unknown[0], f"unknown key (known: {', '.join(sorted(KNOWN_KEYS))})")
    values: dict[str, Any] = {}
    allow = table.get("allow", [])
    if not isinstance(allow, list):
        raise RelayConfigError("allow", "must be a list of strings like \"127.0.0.1:5201\"")
    rules = []
    for i, text in enumerate(allow):
        try:
            rules.append(parse_rule(text))
        except AllowRuleError as exc:
            raise RelayConfigError(f"allow[{i}]", str(exc)) from None
    values["allow"] = AllowList(tuple(rules))
    upstream = table.get("upstream")
    if upstream is not None:
        if not isinstance(upstream, dict):
            raise RelayConfigError("upstream", "must be a table ([relay.upstream])")
        values["upstream"] = parse_upstream_table(upstream)
    for key in _SIZE_KEYS:
        if key in table:
            try:
                values[key] = parse_size(table[key])
            except ValueError as exc:
                raise RelayConfigError(key, str(exc)) from None
    for key in _INT_KEYS:
        if key in table:
            value = table[key]
            if not isinstance(value, int) or isinstance(value, bool):
                raise RelayConfigError(key, "must be an integer")
            values[key] = value
    for key, attr in _MS_KEYS.items():
        if key in table:
            value = table[key]
            if not isinstance(value, int) or isinstance(value, bool):
                raise RelayConfigError(key, "must be an integer number of milliseconds")
            values[attr] = value / 1000.0
    config = RelayConfig(**values)
    config.check()
    return config


def parse_relay_toml(text: str) -> RelayConfig:
    """Parse a TOML document and validate its ``[relay]`` table (absent: allow nothing)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RelayConfigError("(file)", f"not valid TOML: {exc}") from None
    table = doc.get("relay", {})
    if not isinstance(table, dict):
        raise RelayConfigError("(table)", "[relay] must be a table")
    return parse_relay_table(table)
