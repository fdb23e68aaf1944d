"""How an accepted flow's connection is tied to the gate's verdict (sans-IO).

The gate authenticates a ClientHello *before* any connection exists; the endpoint then creates the
connection and replays the flow's datagrams into it, and the connection reassembles the hello
again. Authentication is worth nothing unless the hello TLS processes is the very one the gate
verified (security finding 1: an attacker once had a captured sealed hello verified while TLS
processed its own). :func:`configure_accepted` therefore hands the verified bytes to TLS
(``QuicConfiguration.expected_client_hello``): a connection whose first ClientHello differs in any
byte fails with illegal_parameter before anything of the accepted path is sent. The gate's own
reassembly refuses the inputs that could make the two disagree
(:mod:`quicreality.reality.reassembly`); this check holds even if it missed one.

With a learned :class:`~quicreality.reality.target_shape.TargetShape` for the SNI, the connection
also answers like the target: its ServerHello copies the target's suite, extension order and
key-share group (``server_hello_shape``), its first flight is cut to the target's datagram
count, sizes and coalescing (``flight_shape``), and its connection IDs have the target's length
(``connection_id_length``; the endpoint routes several lengths). Without one, it answers as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..quic.config import QuicConfiguration
from ..quic.flight_shape import FlightShaper
from ..quic.packet import CONNECTION_ID_MAX_SIZE
from .auth import RealityVerdict
from .cert import RealityCertificateSource, RealityIdentity
from .target_shape import TargetShape

#: The shortest server connection ID we copy from a target: the endpoint routes by random IDs,
#: and shorter ones collide too soon among many connections (quic-go's servers use 4 as well).
#: A target with a shorter (or empty, RFC 9000 §5.1) SCID gets our default length instead.
MIN_COPIED_CID_LENGTH = 4


def copied_cid_length(target_scid_len: int, default: int) -> int:
    """The server CID length an accepted connection uses: the target's where it can be routed."""
    if MIN_COPIED_CID_LENGTH <= target_scid_len <= CONNECTION_ID_MAX_SIZE:  # RFC 9000 §17.2
        return target_scid_len
    return default


def configure_accepted(
    identity: RealityIdentity, verdict: RealityVerdict, verified_hello: bytes, now: float,
    *, shape: TargetShape | None = None, client_scid_len: int | None = None,
) -> Callable[[QuicConfiguration], None]:
    """How the endpoint sets up an accepted connection.

    Args:
        identity: the per-process Ed25519 identity (the HMAC certificate's key).
        verdict: the ACCEPT verdict (its ``auth_key`` keys the certificate).
        verified_hello: the ClientHello handshake message exactly as verified.
        now: the decision time, for the ``reality:verdict`` qlog event.
        shape: the target's learned answer for this SNI, if known.
        client_scid_len: the client's SCID length (unpadded shaped datagrams follow it).

    Returns:
        A function adjusting a fresh per-connection configuration: the HMAC certificate, ALPN h3,
        the verified hello as the only acceptable first ClientHello (and the gate's parse of it,
        so that it is not parsed again), the verdict in qlog, and
        the target's shape when one is known.
    """
    if not verdict.accepted or verdict.auth_key is None:
        raise ValueError("only an ACCEPT verdict configures a connection")
    auth_key = verdict.auth_key
    hello = bytes(verified_hello)
    parsed = verdict.client_hello

    def configure(config: QuicConfiguration) -> None:
        config.certificate_source = RealityCertificateSource(identity, auth_key)
        config.expected_client_hello = hello
        if parsed is not None and parsed.raw == hello:
            config.verified_client_hello = parsed
        if not config.alpn_protocols:
            config.alpn_protocols = ["h3"]
        if shape is not None:
            config.connection_id_length = copied_cid_length(shape.scid_len,
                                                            config.connection_id_length)
            config.server_hello_shape = shape.server_hello
            config.flight_shape = FlightShaper(shape.flight_shape(client_scid_len))
        factory = config.qlog_factory
        if factory is not None:

            def qlog_with_verdict(odcid: bytes, is_client: bool) -> Any:
                sink = factory(odcid, is_client)
                sink.custom(now, "reality:verdict", verdict.describe())
                if shape is not None:
                    sink.custom(now, "reality:shape", shape.describe())
                return sink

            config.qlog_factory = qlog_with_verdict

    return configure
