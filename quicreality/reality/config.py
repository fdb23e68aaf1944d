"""REALITY server configuration: the ``[reality]`` table of a TOML file (spec §1.2, our decisions).

```toml
[reality]
private_key = "base64url X25519 private key (xray x25519's PrivateKey)"
server_names = ["www.example.com"]      # exact, case-sensitive; "" allows a missing SNI
short_ids = ["", "0123456789abcdef"]    # hex, <= 16 chars, even length; "" = all zeros
target = "127.0.0.1:8443"               # the real QUIC site for everyone else
max_time_diff_ms = 120000               # the timestamp window (default 120000; 0 is refused)
min_client_ver = "26.3.27"              # Xray's default when absent; "0.0.0" = no lower bound
max_client_ver = ""                     # "" or absent = no upper bound
shape_ttl_s = 600                       # re-learn the target's answer shape this often; 0 = off
close_target = false                    # after an accept, close the target's half-open connection
pace_first_reply = true                 # an accepted flow's first reply waits for the target's time
# Optional limits of the gate and relay (our additions, defaults shown by `docs/reality.md`):
# max_pending_flows, max_pending_per_source, max_pending_bytes, pending_timeout_ms,
# held_timeout_ms, max_client_hello_bytes, max_crypto_fragments, max_fallback_flows,
# fallback_idle_timeout_ms, accepted_drain_ms, replay_cache_size
```

Only ``[reality]`` is read; other tables (``[relay]``, ...) belong to other components and are
ignored here. Unknown keys *inside* ``[reality]`` are errors, so a typo does not silently fall back to
a default. Every error is a :class:`RealityConfigError` naming the field.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import x25519

from .keys import (
    ClientVersion,
    KeyFormatError,
    parse_private_key,
    parse_short_id,
    parse_version,
    x25519_public_key,
)

#: Xray's default ``minClientVer`` when the field is empty (spec §1.2).
XRAY_DEFAULT_MIN_CLIENT_VER: ClientVersion = (26, 3, 27)
#: The timestamp window when the file does not set ``max_time_diff_ms``. Xray's own default (0)
#: turns the check off, which makes a captured ClientHello valid forever; we never do that.
DEFAULT_MAX_TIME_DIFF_MS = 120_000


class RealityConfigError(ValueError):
    """Invalid configuration; ``field`` names the offending key."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"[reality] {field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True, slots=True)
class GateLimits:
    """Bounds of the gate and the fallback relay (all sizes in bytes, times in seconds)."""

    max_pending_flows: int = 1024
    max_pending_per_source: int = 32
    max_pending_bytes: int = 16 * 1024
    pending_timeout: float = 2.0
    held_timeout: float = 0.1
    max_client_hello_bytes: int = 8192
    max_crypto_fragments: int = 64
    max_fallback_flows: int = 4096
    fallback_idle_timeout: float = 60.0
    accepted_drain: float = 5.0
    replay_cache_size: int = 65536


#: Descriptors kept free for everything but target sockets (listener, connections, logs, metrics).
RESERVED_DESCRIPTORS = 256


def target_sockets(limits: GateLimits) -> int:
    """The most target sockets the gate can have open at once: one per pending flow, per relay
    flow and per accepted flow still draining (bounded like the pending table)."""
    return 2 * limits.max_pending_flows + limits.max_fallback_flows


def fit_to_descriptors(limits: GateLimits, descriptors: int) -> GateLimits:
    """``limits`` shrunk (proportionally) so that every target socket fits in ``descriptors``
    minus :data:`RESERVED_DESCRIPTORS`; unchanged if they already fit."""
    budget = max(descriptors - RESERVED_DESCRIPTORS, 3)
    need = target_sockets(limits)
    if need <= budget:
        return limits
    pending = max(1, limits.max_pending_flows * budget // need)
    fallback = max(1, budget - 2 * pending)
    return dataclasses.replace(
        limits, max_pending_flows=pending, max_fallback_flows=fallback,
        max_pending_per_source=min(limits.max_pending_per_source, pending))


@dataclass(frozen=True)
class RealityServerConfig:
    """A validated ``[reality]`` table."""

    private_key: bytes
    server_names: frozenset[str]
    short_ids: frozenset[bytes]
    target: tuple[str, int]
    max_time_diff_ms: int = DEFAULT_MAX_TIME_DIFF_MS
    min_client_ver: ClientVersion | None = XRAY_DEFAULT_MIN_CLIENT_VER
    max_client_ver: ClientVersion | None = None
    limits: GateLimits = GateLimits()
    #: how long a learned target shape stays fresh (seconds); 0 turns learning and shaping off
    shape_ttl_s: int = 600
    #: after an accept, close the target's half-open connection in the client's name (abandon.py)
    close_target: bool = False
    #: an accepted flow's first reply is sent no earlier than the target's learned first-reply
    #: time after the flow's first datagram (the gate's timing side channel, docs/reality.md)
    pace_first_reply: bool = True
    _key: x25519.X25519PrivateKey | None = field(default=None, compare=False, repr=False)

    @property
    def public_key(self) -> bytes:
        """The matching public key (what clients configure)."""
        return x25519_public_key(self.private_key)

    @property
    def private_key_object(self) -> x25519.X25519PrivateKey:
        """The private key as a ``cryptography`` object (built once)."""
        key = self._key
        if key is None:
            key = x25519.X25519PrivateKey.from_private_bytes(self.private_key)
            object.__setattr__(self, "_key", key)
        return key

    @property
    def time_window_ms(self) -> int:
        """The timestamp window actually enforced.

        There is no way to turn the check off: the TOML parser refuses ``max_time_diff_ms = 0``,
        and a value <= 0 built in code means the default window, never "no check".
        """
        return self.max_time_diff_ms if self.max_time_diff_ms > 0 else DEFAULT_MAX_TIME_DIFF_MS

    @property
    def replay_window_ms(self) -> int:
        """The replay cache's skew allowance: a token is remembered until its own time plus this."""
        return self.time_window_ms


_LIMIT_KEYS: dict[str, tuple[str, float]] = {
    # toml key: (GateLimits attribute, scale from the toml unit to the attribute's unit)
    "max_pending_flows": ("max_pending_flows", 1),
    "max_pending_per_source": ("max_pending_per_source", 1),
    "max_pending_bytes": ("max_pending_bytes", 1),
    "pending_timeout_ms": ("pending_timeout", 0.001),
    "held_timeout_ms": ("held_timeout", 0.001),
    "max_client_hello_bytes": ("max_client_hello_bytes", 1),
    "max_crypto_fragments": ("max_crypto_fragments", 1),
    "max_fallback_flows": ("max_fallback_flows", 1),
    "fallback_idle_timeout_ms": ("fallback_idle_timeout", 0.001),
    "accepted_drain_ms": ("accepted_drain", 0.001),
    "replay_cache_size": ("replay_cache_size", 1),
}
_KEYS = {
    "private_key",
    "server_names",
    "short_ids",
    "target",
    "max_time_diff_ms",
    "min_client_ver",
    "max_client_ver",
    "shape_ttl_s",
    "close_target",
    "pace_first_reply",
    *_LIMIT_KEYS,
}


def parse_target(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` or a bare port (Xray: ``localhost:N``)."""
    text = text.strip()
    if text.isdigit():
        host, port_text = "localhost", text
    elif text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError("expected [IPv6]:PORT")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError("expected HOST:PORT")
    if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("expected HOST:PORT with a port in 1..65535")
    return host, int(port_text)


def _string_list(table: Mapping[str, Any], key: str) -> list[str]:
    value = table.get(key)
    if value is None:
        raise RealityConfigError(key, "is required")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RealityConfigError(key, "must be a list of strings")
    if not value:
        raise RealityConfigError(key, "must not be empty")
    return value


def _int(table: Mapping[str, Any], key: str, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RealityConfigError(key, "must be a non-negative integer")
    return value


def _version(table: Mapping[str, Any], key: str, default: ClientVersion | None) -> ClientVersion | None:
    value = table.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise RealityConfigError(key, 'must be a string "x.y.z"')
    try:
        return parse_version(value)
    except KeyFormatError as exc:
        raise RealityConfigError(key, str(exc)) from None


def _time_window(table: Mapping[str, Any]) -> int:
    value = _int(table, "max_time_diff_ms", DEFAULT_MAX_TIME_DIFF_MS)
    if value == 0:
        raise RealityConfigError(
            "max_time_diff_ms",
            "0 would turn the timestamp check off and make a captured ClientHello valid forever "
            f"(Xray's meaning of 0); set a window in milliseconds, e.g. {DEFAULT_MAX_TIME_DIFF_MS}",
        )
    return value


def parse_reality_table(table: Mapping[str, Any]) -> RealityServerConfig:
    """Validate a ``[reality]`` table (already decoded from TOML).

    Raises:
        RealityConfigError: naming the first invalid field.
    """
    for key in table:
        if key not in _KEYS:
            raise RealityConfigError(key, f"unknown key (known: {', '.join(sorted(_KEYS))})")
    raw_key = table.get("private_key")
    if raw_key is None:
        raise RealityConfigError("private_key", "is required")
    if not isinstance(raw_key, str):
        raise RealityConfigError("private_key", "must be a base64url string")
    try:
        private_key = parse_private_key(raw_key)
    except KeyFormatError as exc:
        raise RealityConfigError("private_key", str(exc)) from None
    server_names = frozenset(_string_list(table, "server_names"))
    short_ids: set[bytes] = set()
    for text in _string_list(table, "short_ids"):
        try:
            short_ids.add(parse_short_id(text))
        except KeyFormatError as exc:
            raise RealityConfigError("short_ids", str(exc)) from None
    target_text = table.get("target")
    if target_text is None:
        raise RealityConfigError("target", "is required")
    if isinstance(target_text, int) and not isinstance(target_text, bool):
        target_text = str(target_text)
    if not isinstance(target_text, str):
        raise RealityConfigError("target", 'must be a string "host:port"')
    try:
        target = parse_target(target_text)
    except ValueError as exc:
        raise RealityConfigError("target", f"{target_text!r}: {exc}") from None
    min_ver = _version(table, "min_client_ver", XRAY_DEFAULT_MIN_CLIENT_VER)
    max_ver = _version(table, "max_client_ver", None)
    if min_ver is not None and max_ver is not None and min_ver > max_ver:
        raise RealityConfigError("max_client_ver", "is lower than min_client_ver")
    limits: dict[str, Any] = {}
    defaults = GateLimits()
    for key, (attr, scale) in _LIMIT_KEYS.items():
        if key in table:
            default = round(getattr(defaults, attr) / scale)
            value = _int(table, key, default)
            if value == 0:
                raise RealityConfigError(key, "must be positive")
            limits[attr] = value * scale if scale != 1 else value
    return RealityServerConfig(
        private_key=private_key,
        server_names=server_names,
        short_ids=frozenset(short_ids),
        target=target,
        max_time_diff_ms=_time_window(table),
        min_client_ver=min_ver,
        max_client_ver=max_ver,
        limits=GateLimits(**limits),
        shape_ttl_s=_int(table, "shape_ttl_s", 600),
        close_target=_bool(table, "close_target", False),
        pace_first_reply=_bool(table, "pace_first_reply", True),
    )


def _bool(table: Mapping[str, Any], key: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise RealityConfigError(key, "must be true or false")
    return value


def parse_reality_toml(text: str) -> RealityServerConfig:
    """Parse a TOML document and validate its ``[reality]`` table (other tables are ignored).

    Raises:
        RealityConfigError: bad TOML (field ``"toml"``), a missing table or an invalid field.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RealityConfigError("toml", f"not valid TOML: {exc}") from None
    table = doc.get("reality")
    if table is None:
        raise RealityConfigError("reality", "the file has no [reality] table")
    if not isinstance(table, dict):
        raise RealityConfigError("reality", "must be a table")
    return parse_reality_table(table)
