"""Configuration of a QUIC endpoint or connection (plain data; randomness and wall clock injected)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..tls.constants import Group
from ..tls.hkdf import CipherSuite
from .packet import QUIC_VERSION_1

if TYPE_CHECKING:
    from ..qlog.sink import QlogSink

#: X25519 then secp256r1 (RFC 8446 §4.2.7 group ids; defined once in
#: :class:`~quicreality.tls.constants.Group`).
GROUP_X25519 = int(Group.X25519)
GROUP_SECP256R1 = int(Group.SECP256R1)


def _no_rng(n: int) -> bytes:
    raise RuntimeError("QuicConfiguration.rng was not set (the I/O edge must provide it)")


def _no_clock() -> float:
    raise RuntimeError("QuicConfiguration.wall_clock was not set (the I/O edge must provide it)")


@dataclass
class QuicConfiguration:
    """Settings for one QUIC connection.

    ``rng(n) -> bytes`` supplies every random byte (connection IDs, TLS randoms, tokens) and
    ``wall_clock() -> float`` the Unix time for certificate checks; the asyncio edge sets them to
    the operating system's random source and ``time.time``; tests set deterministic ones.
    """

    is_client: bool = True
    alpn_protocols: list[str] = field(default_factory=lambda: ["h3"])
    server_name: str | None = None
    rng: Callable[[int], bytes] = _no_rng
    wall_clock: Callable[[], float] = _no_clock

    # TLS
    cipher_suites: tuple[int, ...] = (
        CipherSuite.AES_128_GCM_SHA256,
        CipherSuite.AES_256_GCM_SHA384,
        CipherSuite.CHACHA20_POLY1305_SHA256,
    )
    groups: tuple[int, ...] = (GROUP_X25519, GROUP_SECP256R1)
    key_share_groups: tuple[int, ...] = (GROUP_X25519,)
    certificate_source: Any = None
    peer_verifier: Any = None
    client_hello_hook: Any = None
    #: client: "minimal" (our own short hello) or "chrome" (Chromium 156's). Informational: set it
    #: with :func:`quicreality.quic.fingerprint.apply_fingerprint`, which also sets the values
    #: (groups, transport parameters, the shaping hook, ``initial_layout``) that the name stands for.
    fingerprint: str = "minimal"
    legacy_session_id_length: int = 0
    #: server: the only first ClientHello TLS may process (see ``TlsConfig.expected_client_hello``)
    expected_client_hello: bytes | None = None
    #: server: ``expected_client_hello`` already parsed (see ``TlsConfig.verified_client_hello``)
    verified_client_hello: Any = None

    # Transport (RFC 9000 §18.2)
    #: QUIC versions in preference order (v1, v2; a client may add reserved ones to provoke
    #: Version Negotiation). Client: the first is the version of its first Initial, all are
    #: offered in version_information; server: those it accepts, the first compatible one the
    #: client offers is chosen (RFC 9368, :mod:`.versions`).
    supported_versions: tuple[int, ...] = (QUIC_VERSION_1,)
    #: client: the version of its first Initial when it is not the most preferred one (e.g. v1
    #: for compatibility while preferring v2: Available Versions stay in preference order, RFC
    #: 9368 §3); None: the first of ``supported_versions``. Must be one of them.
    initial_version: int | None = None
    connection_id_length: int = 8
    #: client: how the first Initial flight is laid out (:mod:`.initial_layout`): "minimal" (our
    #: send path as is) or "chrome" (Chromium 156's packets, frames and datagram sizes)
    initial_layout: str = "minimal"
    #: client: our (source) connection ID length; None: the layout's (chrome 0, RFC 9000 §5.1),
    #: else ``connection_id_length``. Servers always use ``connection_id_length``, which may
    #: differ per connection (the endpoint routes every length its connections use).
    scid_length: int | None = None
    idle_timeout: float = 30.0
    max_data: int = 16 * 1024 * 1024
    max_stream_data: int = 4 * 1024 * 1024
    max_streams_bidi: int = 1000
    max_streams_uni: int = 100
    max_datagram_frame_size: int | None = 65535
    #: DATAGRAM queues (connection/datagrams.py): frames and payload bytes waiting to be sent (a
    #: full queue drops its oldest frame) and received frames waiting in ``next_event`` (beyond,
    #: a received frame is dropped); drops are counted in ``QuicConnection.datagrams.stats``
    datagram_send_queue_frames: int = 1024
    datagram_send_queue_bytes: int = 1024 * 1024
    datagram_receive_queue_frames: int = 1024
    datagram_receive_queue_bytes: int = 1024 * 1024
    active_connection_id_limit: int = 4
    ack_delay_exponent: int = 3
    max_ack_delay: float = 0.025
    #: 1-RTT ack-eliciting packets per ACK after the first 100 (connection/spaces.py)
    ack_every: int = 2
    max_udp_payload_size: int = 65527

    # Path and recovery
    #: cap on the datagram size DPLPMTUD may reach after the handshake (connection/pmtud.py);
    #: 1452 = a 1500-byte MTU less IPv6 and UDP headers. 1200 turns probing off.
    max_datagram_size: int = 1452
    congestion_control_algorithm: str = "cubic"
    #: ECN (RFC 9000 §13.4): mark ECT(0) and validate, count received codepoints in ACK_ECN
    ecn: bool = True
    initial_rtt: float = 0.333

    # Server
    retry: bool = False
    #: server: cuts the first flight to a given datagram count/sizes/coalescing (a per-connection
    #: :class:`~quicreality.quic.flight_shape.FlightShaper`; REALITY sets it from the target's)
    flight_shape: Any = None
    #: server: ServerHello choices to copy (``TlsConfig.server_hello_shape``)
    server_hello_shape: Any = None
    stateless_reset_key: bytes | None = None
    #: server: issues session tickets and accepts PSKs and 0-RTT
    #: (:class:`~quicreality.tls.resumption.ServerTicketStore`, shared by the server's connections)
    ticket_store: Any = None

    # Resumption (client)
    #: a :class:`~quicreality.tls.resumption.SessionTicket` to resume with
    session_ticket: Any = None
    #: send 0-RTT when the ticket allows it (RFC 9001 §4.6)
    early_data: bool = False
    #: initiate a key update once this many packets were protected with the current 1-RTT key;
    #: None: the AEAD's confidentiality limit (RFC 9001 §6.6) less a margin
    key_update_packet_limit: int | None = None
    #: server: ``(ip, port)`` advertised in preferred_address (RFC 9000 §9.6, §18.2); the edge
    #: listens there too
    preferred_address: tuple[str, int] | None = None

    # Observability
    qlog_factory: Callable[[bytes, bool], QlogSink] | None = None
    secrets_log: Callable[[str], None] | None = None

    def derived(self, **changes: Any) -> QuicConfiguration:
        """Return a copy with ``changes`` applied."""
        import dataclasses

        return dataclasses.replace(self, **changes)
