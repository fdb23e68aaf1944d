"""Client fingerprints: what our QUIC client's first flight looks like to an observer.

* ``minimal``: our own hello (8 extensions, X25519 only): what the stack sends by default.
* ``chrome``: Chromium 156's hello and transport parameters, as measured in
  ``docs/data/chrome156-hello.json``. TLS: :class:`~quicreality.tls.chrome_hello.ChromeHello`.
  QUIC: the values below, and :func:`chrome_transport_parameters`, which rewrites our
  quic_transport_parameters into Chrome's set and per-connection order. The Initial packet layout
  (CID lengths, CRYPTO split, PING/PADDING, datagram sizes) is the ``chrome`` profile of
  :mod:`.initial_layout`, selected through ``initial_layout``.

:func:`apply_fingerprint` turns a client configuration into one with a fingerprint. The
configuration values are the ones the connection then really enforces, so what we advertise is
what we do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..tls import chrome_hello
from ..tls.chrome_hello import ChromeHello, randbelow, shuffled
from ..wire.buffer import Buffer
from .config import QuicConfiguration
from .packet import QUIC_VERSION_1
from .transport_params import (
    MAX_PARAMETER_ID,
    PARAM_ACK_DELAY_EXPONENT,
    PARAM_ACTIVE_CONNECTION_ID_LIMIT,
    PARAM_GOOGLE_CONNECTION_OPTIONS,
    PARAM_MAX_ACK_DELAY,
    PARAM_VERSION_INFORMATION,
    VersionInformation,
    encode_parameter_list,
    encode_version_information,
    pull_parameter_list,
    pull_version_information,
    reserved_parameter_id,
)

FINGERPRINTS: tuple[str, ...] = ("minimal", "chrome")

#: Chrome 156's transport parameter values, as QuicConfiguration fields (RFC 9000 §18.2 units:
#: seconds here, milliseconds on the wire).
CHROME_TRANSPORT: dict[str, Any] = {
    "idle_timeout": 30.0,
    "max_udp_payload_size": 1472,
    "max_data": 15_728_640,
    "max_stream_data": 6_291_456,
    "max_streams_bidi": 100,
    "max_streams_uni": 103,
    "max_datagram_frame_size": 65_536,
    # Not sent by Chrome: set to the RFC 9000 §18.2 defaults so that omitting them is exact.
    "ack_delay_exponent": 3,
    "max_ack_delay": 0.025,
}
#: google_connection_options (0x3128) as Chrome 156 sends it: the tag "ORIG".
GOOGLE_CONNECTION_OPTIONS = b"ORIG"
#: Chrome's reserved parameter carries 0..15 random bytes (1..15 seen in 24 connections).
MAX_GREASE_PARAMETER_LENGTH = 15


def _varint(value: bytes) -> int:
    return Buffer(data=value).pull_uint_var()


def _omittable(param_id: int, value: bytes) -> bool:
    """Whether leaving the parameter out says the same thing (RFC 9000 §18.2 defaults).

    ack_delay_exponent 3 is the default; a max_ack_delay up to 25 ms is covered by the default of
    25 ms (the peer then assumes we may delay longer than we do, which only makes its PTO later);
    active_connection_id_limit may always go: the peer then assumes 2, at most what we accept.
    """
    if param_id == PARAM_ACK_DELAY_EXPONENT:
        return _varint(value) == 3
    if param_id == PARAM_MAX_ACK_DELAY:
        return _varint(value) <= 25
    return param_id == PARAM_ACTIVE_CONNECTION_ID_LIMIT


def grease_version(rng: Callable[[int], bytes]) -> int:
    """A random version of the reserved form ``0x?a?a?a?a`` (RFC 9000 §15)."""
    return int.from_bytes(bytes((b & 0xF0) | 0x0A for b in rng(4)), "big")


#: Parsed forms of our quic_transport_parameters, by their bytes: a client sends the same
#: parameters in every connection (zero-length SCID), so each is parsed once per process.
_KEPT_PARAMETERS: dict[tuple[bytes, int], tuple[tuple[tuple[int, bytes], ...], int]] = {}
_KEPT_PARAMETERS_MAX = 64


def _kept_parameters(data: bytes, version: int) -> tuple[tuple[tuple[int, bytes], ...], int]:
    """Our parameters that Chrome's set keeps, and the chosen version (a pure function of the
    arguments, memoised; see :func:`chrome_transport_parameters`)."""
    key = (bytes(data), version)
    found = _KEPT_PARAMETERS.get(key)
    if found is not None:
        return found
    kept = []
    for pid, value in pull_parameter_list(data):
        if pid == PARAM_VERSION_INFORMATION:
            # Ours (RFC 9368) gives the chosen version; Chrome lists it with one reserved version.
            version = pull_version_information(value).chosen_version
        elif not _omittable(pid, value):
            kept.append((pid, value))
    found = (tuple(kept), version)
    if len(_KEPT_PARAMETERS) >= _KEPT_PARAMETERS_MAX:
        _KEPT_PARAMETERS.clear()
    _KEPT_PARAMETERS[key] = found
    return found


def chrome_transport_parameters(
    data: bytes, rng: Callable[[int], bytes], *, version: int = QUIC_VERSION_1
) -> bytes:
    """Our client's quic_transport_parameters rewritten as Chrome 156 sends them.

    Keeps our parameters except those Chrome does not send and that can be omitted without
    changing their meaning (:func:`_omittable`); puts in version_information (RFC 9368: chosen
    ``version`` -- or the chosen version of ours, when we sent one --, available that version and
    a reserved version in random order),
    google_connection_options ``ORIG`` and one reserved parameter ``31·N+27`` with 0..15 random
    bytes (RFC 9000 §18.1); and shuffles the order, as Chrome does per connection.
    The parsing of ``data`` is done once per distinct ``data``; every random draw is made anew.
    """
    constant, version = _kept_parameters(data, version)
    kept = list(constant)
    available = shuffled([version, grease_version(rng)], rng)
    kept.append((PARAM_VERSION_INFORMATION,
                 encode_version_information(VersionInformation(version, tuple(available)))))
    kept.append((PARAM_GOOGLE_CONNECTION_OPTIONS, GOOGLE_CONNECTION_OPTIONS))
    grease_id = reserved_parameter_id(randbelow((MAX_PARAMETER_ID - 27) // 31 + 1, rng))
    kept.append((grease_id, rng(randbelow(MAX_GREASE_PARAMETER_LENGTH + 1, rng))))
    return encode_parameter_list(shuffled(kept, rng))


def apply_fingerprint(
    base: QuicConfiguration, name: str, *, inner: Any = None
) -> QuicConfiguration:
    """A copy of the client configuration ``base`` that sends the ``name`` fingerprint.

    Args:
        base: a client configuration (its ``rng`` drives every random choice of the shape).
        name: one of :data:`FINGERPRINTS`.
        inner: a ClientHelloHook to run on the shaped hello (REALITY's seal); default: the hook
            ``base`` already has (a :class:`ChromeHello` there is replaced, its inner kept).

    Raises:
        ValueError: for an unknown name.
    """
    if name not in FINGERPRINTS:
        raise ValueError(f"unknown fingerprint {name!r} (choose from {', '.join(FINGERPRINTS)})")
    if inner is None:
        inner = base.client_hello_hook
        if isinstance(inner, ChromeHello):
            inner = inner.inner
    if name == "minimal":
        return base.derived(fingerprint=name, initial_layout=name, client_hello_hook=inner)
    hook = ChromeHello(base.rng, transport_parameters=chrome_transport_parameters, inner=inner)
    return base.derived(
        ecn=False,  # Chromium 156 sends Not-ECT (tests/data/fingerprint/chromium-*.pcap)
        fingerprint=name,
        initial_layout=name,  # with its zero-length SCID (RFC 9000 §5.1)
        cipher_suites=chrome_hello.CIPHER_SUITES,
        groups=chrome_hello.GROUPS,
        key_share_groups=chrome_hello.KEY_SHARE_GROUPS,
        client_hello_hook=hook,
        **CHROME_TRANSPORT,
    )
