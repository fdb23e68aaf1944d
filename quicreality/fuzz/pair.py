"""An in-memory client/server pair at handshake-complete, and 1-RTT packets forged with its keys.

The frame target feeds fuzzed frame payloads through the real connection's receive path. It needs
packets that pass packet protection, so :class:`EstablishedPair` logs the client's TLS secrets
(``QuicConfiguration.secrets_log``, the NSS key log the connection writes anyway), derives the
1-RTT keys of both directions from them with :class:`~quicreality.quic.crypto.CryptoContext`, and
:meth:`EstablishedPair.forge` seals any payload as the next packet from either side. No private
attribute of the connection is used, so the pair survives refactoring of the connection.

A handshake costs tens of milliseconds; :meth:`EstablishedPair.snapshot` pickles an established
pair once and :meth:`EstablishedPair.restore` gives an independent copy in a fraction of that
(a fresh, identical pair for every fuzz input). Immutable objects that cannot be pickled (AEAD
and header-protection contexts, keys, plain functions such as the wall clock) are shared between
the copies rather than copied; everything else, randomness included, is the copy's own.

When the connection is compiled with mypyc (``python -m quicreality.build``), its native classes
pickle but do not unpickle (their ``__new__`` runs ``__init__``). A snapshot then keeps the
constructor's arguments and :meth:`EstablishedPair.restore` makes a new pair from them: the same
state, since everything is seeded, when the snapshot is taken right after construction (as the
``frames`` target does), at the cost of one handshake per copy. ``python -m quicreality.fuzz``
runs pure Python anyway (atheris instruments Python code only; :mod:`quicreality._compiled`).
"""

from __future__ import annotations

import datetime
import io
import pickle
import random
import sys
import types
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ..quic.config import QuicConfiguration
from ..quic.connection import ConnectionState, QuicConnection
from ..quic.crypto import CryptoContext
from ..quic.endpoint import QuicServerEndpoint
from ..quic.packet import QUIC_VERSION_1
from ..quic.packet_builder import short_header
from ..tls.certificates import InsecureVerifier, StaticCertificateSource

__all__ = ["CLIENT_ADDR", "SERVER_ADDR", "WALL", "EstablishedPair", "PairSnapshot", "SeededRng",
           "credentials", "seeded_rng"]

CLIENT_ADDR = ("10.0.0.1", 40000)
SERVER_ADDR = ("10.0.0.2", 443)
#: A fixed wall clock inside the certificate's validity.
WALL = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC).timestamp()
#: TLS_AES_128_GCM_SHA256: the pair offers only it, so the key log's secrets are for it.
AES_128_GCM = 0x1301

_CREDS: StaticCertificateSource | None = None


class SeededRng:
    """Deterministic bytes: ``rng(n)`` is the next ``n`` bytes of a seeded ``random.Random``
    (a class, not a closure, so that a pickled copy carries its own state)."""

    __slots__ = ("_random",)

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def __call__(self, n: int) -> bytes:
        return self._random.randbytes(n)


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    """Deterministic bytes (a :class:`SeededRng`)."""
    return SeededRng(seed)


class _SharingPickler(pickle.Pickler):
    """Pickles by value, except the objects :func:`_shared` picks, which it records by
    reference (``persistent_id``) in ``table``."""

    def __init__(self, file: io.BytesIO, table: dict[int, object], keep: set[int]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.table = table
        self.keep = keep

    def persistent_id(self, obj: object) -> int | None:
        if id(obj) in self.keep or _shared(obj):
            self.table[id(obj)] = obj
            return id(obj)
        return None


class _SharingUnpickler(pickle.Unpickler):
    """The inverse of :class:`_SharingPickler`: references resolve to the shared objects."""

    def __init__(self, data: bytes, table: dict[int, object]) -> None:
        super().__init__(io.BytesIO(data))
        self.table = table

    def persistent_load(self, pid: object) -> object:
        return self.table[pid]  # type: ignore[index]


def _shared(obj: object) -> bool:
    """Objects a restored pair shares with the snapshot: plain and builtin functions (closures
    over immutable values: the wall clock, the reset-token function; header-protection ``update``
    of a stateless ECB context), read-only mappings, and ``cryptography`` objects (AEAD contexts
    and keys; stateless per call, and not picklable)."""
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MappingProxyType)):
        return True
    return type(obj).__module__.startswith("cryptography")


def credentials() -> StaticCertificateSource:
    """A self-signed ECDSA P-256 certificate for localhost (the same key every run)."""
    global _CREDS
    if _CREDS is None:
        key = ec.derive_private_key(0x5EED, ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256())
        )
        _CREDS = StaticCertificateSource([cert.public_bytes(Encoding.DER)], key)
    return _CREDS


class EstablishedPair:
    """A client and a server connection that completed (and confirmed) their handshake.

    Args:
        seed: seeds both sides' randomness.
        tap: optional ``(direction, datagram)`` callback for every datagram exchanged
            (``"to_server"`` / ``"to_client"``), for recording seeds.
        client_overrides / server_overrides: configuration attributes to set.
    """

    def __init__(self, seed: int = 1, *, tap: Callable[[str, bytes], None] | None = None,
                 client_overrides: dict[str, Any] | None = None,
                 server_overrides: dict[str, Any] | None = None) -> None:
        self.now = 0.0
        self._tap = tap
        self._args = (seed, tap, client_overrides, server_overrides)
        self._secrets: dict[str, bytes] = {}
        cfg = QuicConfiguration(
            is_client=True, server_name="localhost", rng=seeded_rng(seed * 2 + 1),
            wall_clock=lambda: WALL, peer_verifier=InsecureVerifier(),
            cipher_suites=(AES_128_GCM,), secrets_log=self._log_secret,
        )
        for k, v in (client_overrides or {}).items():
            setattr(cfg, k, v)
        server_rng = seeded_rng(seed * 2 + 2)

        def server_config() -> QuicConfiguration:
            scfg = QuicConfiguration(is_client=False, rng=server_rng, wall_clock=lambda: WALL,
                                     certificate_source=credentials())
            for k, v in (server_overrides or {}).items():
                setattr(scfg, k, v)
            return scfg

        self.client = QuicConnection(configuration=cfg)
        self.endpoint = QuicServerEndpoint(server_config, rng=server_rng)
        self.client.connect(SERVER_ADDR, self.now)
        server: QuicConnection | None = None
        for _ in range(40):
            self.now += 0.001
            moved = False
            for data, _ in self.client.datagrams_to_send(self.now):
                moved = True
                self._record("to_server", data)
                got = self.endpoint.receive_datagram(data, CLIENT_ADDR, self.now)
                server = server or got.connection
            if server is not None:
                for data, _ in server.datagrams_to_send(self.now):
                    moved = True
                    self._record("to_client", data)
                    self.client.receive_datagram(data, SERVER_ADDR, self.now)
            if not moved and server is not None and server.state == ConnectionState.CONNECTED:
                break
        if server is None or server.state != ConnectionState.CONNECTED \
                or self.client.state != ConnectionState.CONNECTED:
            raise RuntimeError("the in-memory handshake did not complete")
        self.server = server
        self.drain_events()
        self._send = {
            "to_server": self._context("CLIENT_TRAFFIC_SECRET_0"),
            "to_client": self._context("SERVER_TRAFFIC_SECRET_0"),
        }
        self._next_pn = {"to_server": 1000, "to_client": 1000}

    def _log_secret(self, line: str) -> None:
        label, _random, secret = line.split()
        self._secrets[label] = bytes.fromhex(secret)

    def _record(self, direction: str, data: bytes) -> None:
        if self._tap is not None:
            self._tap(direction, data)

    def _context(self, label: str) -> CryptoContext:
        ctx = CryptoContext()
        ctx.setup(AES_128_GCM, self._secrets[label], QUIC_VERSION_1)
        return ctx

    def drain_events(self) -> list[Any]:
        """Take every pending event of both sides (client's first)."""
        out = []
        for conn in (self.client, self.server):
            while (ev := conn.next_event()) is not None:
                out.append(ev)
        return out

    def forge(self, direction: str, payload: bytes) -> bytes:
        """A 1-RTT packet carrying ``payload`` (padded to the header-protection sample), protected
        with the real keys of the sending side and numbered after everything it sent."""
        pn = self._next_pn[direction]
        self._next_pn[direction] = pn + 1
        receiver = self.server if direction == "to_server" else self.client
        if len(payload) < 4:
            payload = payload + bytes(4 - len(payload))  # PADDING frames
        return self._send[direction].encrypt_packet(
            short_header(receiver.host_cid, 0, pn), payload, pn)

    def deliver(self, direction: str, datagram: bytes) -> None:
        """Hand a datagram to one side, then let that side build its answer (which is dropped)."""
        self.now += 0.001
        if direction == "to_server":
            self.server.receive_datagram(datagram, CLIENT_ADDR, self.now)
            self.server.datagrams_to_send(self.now)
        else:
            self.client.receive_datagram(datagram, SERVER_ADDR, self.now)
            self.client.datagrams_to_send(self.now)

    def snapshot(self) -> PairSnapshot:
        """This pair's state, from which :meth:`restore` makes independent copies (compiled: its
        constructor's arguments, see the module docstring)."""
        if not connections_unpickle():
            return PairSnapshot(b"", {}, self._args)
        table: dict[int, object] = {}
        keep = {id(self.endpoint), id(self._tap)}
        out = io.BytesIO()
        _SharingPickler(out, table, keep).dump(self)
        return PairSnapshot(out.getvalue(), table)

    @staticmethod
    def restore(snapshot: PairSnapshot) -> EstablishedPair:
        """A copy of the pair as it was at :meth:`snapshot` (the endpoint is shared: the copies
        talk to their two connections directly)."""
        if snapshot.rebuild is not None:
            seed, tap, client_overrides, server_overrides = snapshot.rebuild
            return EstablishedPair(seed, tap=tap, client_overrides=client_overrides,
                                   server_overrides=server_overrides)
        pair = _SharingUnpickler(snapshot.data, snapshot.shared).load()
        if not isinstance(pair, EstablishedPair):
            raise TypeError("not a pair snapshot")
        return pair

    @property
    def alive(self) -> bool:
        """Both sides are still CONNECTED."""
        return (self.server.state == ConnectionState.CONNECTED
                and self.client.state == ConnectionState.CONNECTED)


class PairSnapshot:
    """A pickled :class:`EstablishedPair` and the objects its copies share, or (``rebuild``) the
    arguments to make it again (see :meth:`EstablishedPair.snapshot`)."""

    __slots__ = ("data", "rebuild", "shared")

    def __init__(self, data: bytes, shared: dict[int, object],
                 rebuild: tuple[int, Any, Any, Any] | None = None) -> None:
        self.data = data
        self.shared = shared
        self.rebuild = rebuild


def connections_unpickle() -> bool:
    """Whether :class:`QuicConnection` runs from its ``.py`` (not a mypyc native class, whose
    instances do not unpickle)."""
    return str(getattr(sys.modules[QuicConnection.__module__], "__file__", "")).endswith(".py")
