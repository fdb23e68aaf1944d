"""Helpers for the REALITY unit tests: published vectors, a server config, sealed ClientHellos, and an
in-memory client <-> gated endpoint pair on virtual time."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import x25519

from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.quic.endpoint import QuicServerEndpoint
from quicreality.reality.cert import RealityIdentity
from quicreality.reality.config import GateLimits, RealityServerConfig
from quicreality.reality.gate import Accept, Forward, Pending, RealityGate, TargetAction
from quicreality.reality.keys import parse_short_id
from quicreality.reality.seal import RealityClientHook, reality_client_configuration
from quicreality.tls import messages as m

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "reality" / "primitives.json").read_text()
)
X = VECTORS["rfc7748_6_1"]
#: Server static key = RFC 7748 Alice, client ephemeral key = RFC 7748 Bob (spec §9.1).
SERVER_PRIVATE = bytes.fromhex(X["alice_private"])
SERVER_PUBLIC = bytes.fromhex(X["alice_public"])
CLIENT_EPHEMERAL = bytes.fromhex(X["bob_private"])
CLIENT_EPHEMERAL_PUBLIC = bytes.fromhex(X["bob_public"])
SHARED = bytes.fromhex(X["shared"])
#: A fixed client random: bytes 0x00..0x1f (spec §9.1).
RANDOM = bytes(range(32))
WALL = 1_780_000_000.0
SNI = "www.example.com"
SHORT_ID_TEXT = "0123456789abcdef"
SHORT_ID = parse_short_id(SHORT_ID_TEXT)
VERSION = (26, 3, 27)
CLIENT_ADDR = ("192.0.2.10", 40000)


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    """Deterministic bytes."""
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


def server_config(**changes: Any) -> RealityServerConfig:
    """Alice's key, one SNI, two short IDs ("" and SHORT_ID), +-60 s, versions 26.3.27..26.9.0."""
    values: dict[str, Any] = {
        "private_key": SERVER_PRIVATE,
        "server_names": frozenset({SNI}),
        "short_ids": frozenset({SHORT_ID, bytes(8)}),
        "target": ("127.0.0.1", 9),
        "max_time_diff_ms": 60_000,
        "min_client_ver": (26, 3, 27),
        "max_client_ver": (26, 9, 0),
        "limits": GateLimits(),
    }
    values.update(changes)
    return RealityServerConfig(**values)


def plain_client_hello(
    *,
    random_: bytes = RANDOM,
    server_name: str | None = SNI,
    key_share: tuple[m.KeyShareEntry, ...] | None = None,
    supported_versions: tuple[int, ...] = (m.TLS_VERSION_1_3,),
    session_id: bytes = bytes(32),
) -> bytearray:
    """An unsealed ClientHello from our serializer (session_id zero), X25519 share = Bob's."""
    if key_share is None:
        key_share = (m.KeyShareEntry(m.Group.X25519, CLIENT_EPHEMERAL_PUBLIC),)
    groups = tuple(dict.fromkeys(e.group for e in key_share)) or (m.Group.X25519,)
    hello = m.ClientHello(
        random=random_,
        legacy_session_id=session_id,
        cipher_suites=(0x1301, 0x1302),
        server_name=server_name,
        supported_groups=groups,
        signature_algorithms=(0x0403, 0x0807),
        alpn_protocols=("h3",),
        quic_transport_parameters=b"\x01\x02\x40\x64",
        psk_key_exchange_modes=(1,),
        key_share=key_share,
        supported_versions=supported_versions,
    )
    return bytearray(m.encode_client_hello(hello))


def sealed_client_hello(
    *,
    server_public: bytes = SERVER_PUBLIC,
    short_id: bytes = SHORT_ID,
    version: tuple[int, int, int] = VERSION,
    wall: float = WALL,
    **hello: Any,
) -> tuple[bytes, RealityClientHook]:
    """A ClientHello sealed by :class:`RealityClientHook` with Bob's key; returns (bytes, hook)."""
    raw = plain_client_hello(**hello)
    hook = RealityClientHook(server_public, short_id, wall_clock=lambda: wall, version=version)
    hook(
        raw,
        random=bytes(raw[6:38]),
        key_shares={m.Group.X25519: x25519.X25519PrivateKey.from_private_bytes(CLIENT_EPHEMERAL)},
    )
    return bytes(raw), hook


def client_configuration(seed: int = 7, wall: float = WALL, **reality: Any) -> QuicConfiguration:
    """A QUIC client configuration with the REALITY hook (deterministic rng).

    The gate-mechanics tests use the minimal hello (one Initial, the session_id carrier) unless
    they ask for ``fingerprint="chrome"`` (two Initials, the ECH carrier by default)."""
    base = QuicConfiguration(is_client=True, rng=seeded_rng(seed), wall_clock=lambda: wall)
    opts: dict[str, Any] = {
        "server_public_key": SERVER_PUBLIC,
        "short_id": SHORT_ID,
        "server_name": SNI,
        "version": VERSION,
        "fingerprint": "minimal",
    }
    opts.update(reality)
    return reality_client_configuration(base, **opts)


def first_flight(config: QuicConfiguration) -> tuple[QuicConnection, list[bytes]]:
    """A client connection and the datagrams of its first flight."""
    conn = QuicConnection(configuration=config)
    conn.connect(("203.0.113.1", 443), now=0.0)
    return conn, [d for d, _ in conn.datagrams_to_send(now=0.0)]


def plain_credentials() -> Any:
    """A self-signed ECDSA P-256 certificate for www.example.com (a non-REALITY server)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    from quicreality.tls.certificates import StaticCertificateSource

    key = ec.derive_private_key(12345, ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SNI)])
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return StaticCertificateSource([cert.public_bytes(Encoding.DER)], key)


def make_gate(config: RealityServerConfig | None = None, wall: float = WALL) -> RealityGate:
    """A gate with a seeded identity."""
    return RealityGate(
        config or server_config(),
        RealityIdentity.generate(seeded_rng(99)),
        wall_clock=lambda: wall,
    )


@dataclass
class RealityPair:
    """One client connection and a gated server endpoint, exchanging datagrams in memory.

    Datagrams the gate forwards land in ``target_got`` (nothing answers them unless ``target``
    is set: a function from (client addr, datagram) to the target's reply datagrams).
    """

    client_config: QuicConfiguration
    server: RealityServerConfig = field(default_factory=server_config)
    server_overrides: dict[str, Any] = field(default_factory=dict)
    target: Callable[[Any, bytes], list[bytes]] | None = None
    client_addr: Any = CLIENT_ADDR

    def __post_init__(self) -> None:
        self.now = 0.0
        self.gate = make_gate(self.server)
        rng = seeded_rng(5)

        def factory() -> QuicConfiguration:
            cfg = QuicConfiguration(is_client=False, rng=rng, wall_clock=lambda: WALL)
            for key, value in self.server_overrides.items():
                setattr(cfg, key, value)
            return cfg

        self.endpoint = QuicServerEndpoint(factory, rng=rng, gate=self.gate)
        self.client = QuicConnection(configuration=self.client_config)
        self.decisions: list[Any] = []
        self.target_got: list[bytes] = []
        self.to_client_from_target: list[bytes] = []
        self.server_replies: list[bytes] = []
        #: what our accepted connection sent the client, in order
        self.to_client: list[bytes] = []

    def run(self, until: Callable[[], bool], max_rounds: int = 200) -> None:
        """Exchange datagrams (10 ms per hop) until ``until()`` or quiet."""
        self.client.connect(("203.0.113.1", 443), self.now)
        for _ in range(max_rounds):
            if until():
                return
            moved = False
            for data, _ in self.client.datagrams_to_send(self.now):
                moved = True
                got = self.endpoint.receive_datagram(data, self.client_addr, self.now)
                self.server_replies.extend(d for d, _ in got.replies)
                if got.gate is not None:
                    self.decisions.append(got.gate)
                    self._carry_out(got.gate)
            for conn in list(self.endpoint.connections):
                for data, _ in conn.datagrams_to_send(self.now):
                    moved = True
                    self.to_client.append(data)
                    self.client.receive_datagram(data, ("203.0.113.1", 443), self.now)
            self.now += 0.01
            if not moved:
                timers = [t for t in [self.client.get_timer()] if t is not None]
                for conn in self.endpoint.connections:
                    t = conn.get_timer()
                    if t is not None:
                        timers.append(t)
                if not timers:
                    return
                self.now = max(self.now, min(timers))
                if self.client.get_timer() is not None and self.client.get_timer() <= self.now:
                    self.client.handle_timer(self.now)
                for conn in list(self.endpoint.connections):
                    t = conn.get_timer()
                    if t is not None and t <= self.now:
                        conn.handle_timer(self.now)

    def _carry_out(self, decision: Any) -> None:
        """What the asyncio edge does with a gate decision (in memory)."""
        match decision:
            case Pending(mirror=data) | Accept(mirror=data):
                self.target_got.append(data)
            case Forward(data=data, release=release):
                self.target_got.append(data)
                for held in release:
                    self.client.receive_datagram(held, ("203.0.113.1", 443), self.now)
                if self.target is not None:
                    for reply in self.target(self.client_addr, data):
                        if self.gate.receive_target_datagram(self.client_addr, reply, self.now) \
                                is TargetAction.RELAY:
                            self.to_client_from_target.append(reply)
                            self.client.receive_datagram(reply, ("203.0.113.1", 443), self.now)

    def client_events(self) -> list[Any]:
        """Drain the client's events."""
        out = []
        while (e := self.client.next_event()) is not None:
            out.append(e)
        return out
