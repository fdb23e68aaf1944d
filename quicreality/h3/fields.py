"""Field-section well-formedness checks for HTTP/3 messages (RFC 9114 §4.1.2, §4.2, §4.3)."""

from __future__ import annotations

from quicreality.h3.events import Headers

_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)

_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path", b":protocol"})


def valid_field_section(headers: Headers, *, is_request: bool, is_trailers: bool) -> bool:
    """Return False if a decoded field section is malformed.

    Checks: lowercase names, pseudo-headers first, no duplicates, only request pseudo-headers in
    requests and only ``:status`` in responses, none in trailers, no connection-specific fields,
    and the required pseudo-headers (``:method``, plus ``:scheme``/``:path`` unless CONNECT;
    ``:status`` for responses).
    """
    seen_regular = False
    pseudo: set[bytes] = set()
    for name, _value in headers:
        if not name or name.lower() != name:
            return False
        if name[0:1] == b":":
            if seen_regular or is_trailers or name in pseudo:
                return False
            if is_request and name not in _REQUEST_PSEUDO:
                return False
            if not is_request and name != b":status":
                return False
            pseudo.add(name)
        else:
            seen_regular = True
            if name in _CONNECTION_SPECIFIC:
                return False
    if is_trailers:
        return True
    if is_request:
        if b":method" not in pseudo:
            return False
        method = next(v for n, v in headers if n == b":method")
        return method == b"CONNECT" or {b":scheme", b":path"} <= pseudo
    return b":status" in pseudo
