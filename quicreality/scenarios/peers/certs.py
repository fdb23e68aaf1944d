"""Test PKI for interop runs: a throw-away CA and an EC P-256 leaf signed by it.

Every peer (curl/GnuTLS, ngtcp2/GnuTLS, quic-go, aioquic, our own stack) accepts these files:

* ``ca.pem``        the CA certificate; clients verify with it (curl ``--cacert``, qrgo ``-ca``,
                    aioquic client ``--ca``, ours ``--ca``).
* ``cert.pem``      the leaf certificate alone (what servers load).
* ``fullchain.pem`` leaf followed by the CA, for servers that should send the chain.
* ``key.pem``       the leaf's private key, PKCS#8, unencrypted.
* ``ca.key``        the CA's private key (kept so tests can mint more leaves).

The leaf's subjectAltName covers ``localhost``, ``127.0.0.1``, ``::1`` and the project's netns
test addresses (``10.77.0.1``, ``10.77.0.2``, ``10.77.1.1``, ``10.77.1.2``); pass ``extra_sans``
for more.

Run as ``python -m quicreality.scenarios.peers.certs DIR`` to write the files from a shell.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import sys
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_SANS: tuple[str, ...] = (
    "localhost",
    "127.0.0.1",
    "::1",
    "10.77.0.1",
    "10.77.0.2",
    "10.77.1.1",
    "10.77.1.2",
)


def _san_entry(name: str) -> x509.GeneralName:
    """DNS name or IP address entry for one SAN string."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_test_cert(
    directory: str | Path,
    *,
    common_name: str = "localhost",
    extra_sans: Iterable[str] = (),
    days: int = 30,
) -> tuple[Path, Path, Path]:
    """Write a fresh CA and a leaf certificate signed by it into ``directory``.

    Args:
        directory: where to write the files (created if missing). Existing files are replaced.
        common_name: the leaf's CN.
        extra_sans: more DNS names / IP addresses for the leaf's subjectAltName.
        days: validity of both certificates (they also start one day in the past).

    Returns:
        ``(cert_path, key_path, ca_path)``: the leaf certificate, its private key, the CA cert.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.UTC)
    not_before, not_after = now - _dt.timedelta(days=1), now + _dt.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "quicreality test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[str] = list(dict.fromkeys([*DEFAULT_SANS, *extra_sans]))
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([_san_entry(n) for n in sans]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    leaf_pem = leaf_cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path, ca_path = out / "cert.pem", out / "key.pem", out / "ca.pem"
    cert_path.write_bytes(leaf_pem)
    (out / "fullchain.pem").write_bytes(leaf_pem + ca_pem)
    ca_path.write_bytes(ca_pem)
    for p, data in ((key_path, _pem_key(leaf_key)), (out / "ca.key", _pem_key(ca_key))):
        p.write_bytes(data)
        p.chmod(0o600)
    return cert_path, key_path, ca_path


def main(argv: list[str] | None = None) -> int:
    """``python -m quicreality.scenarios.peers.certs DIR``: write the test PKI, print the paths."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m quicreality.scenarios.peers.certs DIR", file=sys.stderr)
        return 2
    for p in make_test_cert(args[0]):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
