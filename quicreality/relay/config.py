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

from .allow import AllowList, AllowRuleError, parse_rule

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
KNOWN_KEYS = frozenset({"allow", *_SIZE_KEYS, *_INT_KEYS, *_MS_KEYS})


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
