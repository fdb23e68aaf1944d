"""Test helpers for tls/: throwaway PKI and an in-memory client<->server driver."""

from __future__ import annotations

import datetime
import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from quicreality.tls.certificates import PrivateKey
from quicreality.tls.handshake import SendCrypto, TlsOutput, TlsSession

NOW = datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC)
NOW_TS = NOW.timestamp()


def make_key(kind: str) -> PrivateKey:
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(kind)


def _sign_hash(key: PrivateKey) -> hashes.HashAlgorithm | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


@dataclass
class Pki:
    ca_key: PrivateKey
    ca_cert: x509.Certificate

    @property
    def ca_pem(self) -> bytes:
        return self.ca_cert.public_bytes(serialization.Encoding.PEM)

    def leaf(
        self, kind: str, names: tuple[str, ...] = ("localhost", "127.0.0.1"), days: int = 30
    ) -> tuple[bytes, PrivateKey]:
        key = make_key(kind)
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
            .sign(self.ca_key, _sign_hash(self.ca_key))  # type: ignore[arg-type]
        )
        return cert.public_bytes(serialization.Encoding.DER), key


def make_pki(kind: str = "ecdsa", cn: str = "quicreality test CA") -> Pki:
    key = make_key(kind)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=10))
        .not_valid_after(NOW + datetime.timedelta(days=365 * 50))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)  # type: ignore[arg-type]
        .sign(key, _sign_hash(key))  # type: ignore[arg-type]
    )
    return Pki(key, cert)


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


@dataclass
class Pair:
    client: TlsSession
    server: TlsSession
    client_out: list[TlsOutput] = field(default_factory=list)
    server_out: list[TlsOutput] = field(default_factory=list)
    # (sender, epoch, data) of everything exchanged, in order
    wire: list[tuple[str, int, bytes]] = field(default_factory=list)


Tamper = Callable[[str, int, bytes], bytes]


def run_pair(client: TlsSession, server: TlsSession, tamper: Tamper | None = None) -> Pair:
    """Drive both sessions to completion, delivering each SendCrypto to the other side.

    ``tamper(sender, epoch, data)`` may rewrite bytes in flight. TlsAlert propagates.
    """
    pair = Pair(client, server)
    queue: list[tuple[str, TlsOutput]] = []
    for out in client.start():
        pair.client_out.append(out)
        queue.append(("client", out))
    while queue:
        sender, out = queue.pop(0)
        if not isinstance(out, SendCrypto):
            continue
        data = tamper(sender, out.epoch, out.data) if tamper else out.data
        pair.wire.append((sender, out.epoch, data))
        receiver, name, sink = (
            (server, "server", pair.server_out)
            if sender == "client"
            else (client, "client", pair.client_out)
        )
        for new in receiver.receive(out.epoch, data):
            sink.append(new)
            queue.append((name, new))
    return pair
