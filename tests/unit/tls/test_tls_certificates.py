"""PkiVerifier, certificate sources and CertificateVerify helpers."""

from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives import serialization
from tls_helpers import NOW, NOW_TS, make_key, make_pki

from quicreality.tls.alerts import AlertDescription, TlsAlert
from quicreality.tls.certificates import (
    FileCertificateSource,
    PkiVerifier,
    certificate_verify_content,
    leaf_public_key,
    sign,
    signature_schemes_for_key,
    verify,
)
from quicreality.tls.messages import SignatureScheme


def alert_of(fn) -> int:
    with pytest.raises(TlsAlert) as info:
        fn()
    return info.value.description


@pytest.mark.parametrize("kind", ["ecdsa", "rsa", "ed25519"])
def test_pki_verifier_accepts_dns_and_ip_san(kind: str) -> None:
    pki = make_pki(kind)
    der, _ = pki.leaf(kind, ("localhost", "127.0.0.1"))
    verifier = PkiVerifier(None, lambda: NOW_TS, ca_pem=pki.ca_pem)
    verifier.verify_chain(chain=[der], server_name="localhost")
    verifier.verify_chain(chain=[der], server_name="127.0.0.1")


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519"])
def test_pki_verifier_rejects_unknown_ca(kind: str) -> None:
    der, _ = make_pki(kind).leaf(kind)
    verifier = PkiVerifier(None, lambda: NOW_TS, ca_pem=make_pki(kind).ca_pem)
    assert (
        alert_of(lambda: verifier.verify_chain(chain=[der], server_name="localhost"))
        == AlertDescription.unknown_ca
    )


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519"])
def test_pki_verifier_rejects_wrong_name_and_wrong_ip(kind: str) -> None:
    pki = make_pki(kind)
    der, _ = pki.leaf(kind, ("localhost", "127.0.0.1"))
    verifier = PkiVerifier(None, lambda: NOW_TS, ca_pem=pki.ca_pem)
    for name in ("example.com", "127.0.0.2", "::1"):
        got = alert_of(lambda name=name: verifier.verify_chain(chain=[der], server_name=name))
        assert got == AlertDescription.bad_certificate


def test_pki_verifier_rejects_expired_and_not_yet_valid() -> None:
    pki = make_pki()
    der, _ = pki.leaf("ecdsa")
    for when in (NOW + datetime.timedelta(days=60), NOW - datetime.timedelta(days=5)):
        verifier = PkiVerifier(None, lambda when=when: when.timestamp(), ca_pem=pki.ca_pem)
        got = alert_of(lambda v=verifier: v.verify_chain(chain=[der], server_name="localhost"))
        assert got == AlertDescription.certificate_expired


def test_pki_verifier_rejects_garbage_and_empty_chain() -> None:
    verifier = PkiVerifier(None, lambda: NOW_TS, ca_pem=make_pki().ca_pem)
    assert alert_of(lambda: verifier.verify_chain(chain=[b"\x30\x03junk"], server_name="x")) == 42
    assert alert_of(lambda: verifier.verify_chain(chain=[], server_name="x")) == 42


def test_pki_verifier_reads_ca_file_and_file_source_reads_pem(tmp_path) -> None:
    pki = make_pki()
    der, key = pki.leaf("ecdsa")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.ca_pem)
    from cryptography import x509

    cert_pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem + pki.ca_pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    source = FileCertificateSource(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    creds = source.credentials_for(server_name=None, signature_algorithms=[0x0403])
    assert creds.certificate_chain[0] == der and len(creds.certificate_chain) == 2
    PkiVerifier(str(ca), lambda: NOW_TS).verify_chain(
        chain=creds.certificate_chain, server_name="localhost"
    )


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519", "rsa"])
def test_sign_and_verify_every_scheme(kind: str) -> None:
    key = make_key(kind)
    content = certificate_verify_content(b"\x11" * 32, server=True)
    bad = content + b"x"
    assert content.startswith(b" " * 64 + b"TLS 1.3, server CertificateVerify\x00")
    for scheme in signature_schemes_for_key(key):
        signature = sign(key, scheme, content)
        verify(key.public_key(), scheme, signature, content)
        assert alert_of(lambda s=scheme, sig=signature: verify(key.public_key(), s, sig, bad)) == 51
    wrong = SignatureScheme.ED25519 if kind != "ed25519" else SignatureScheme.ECDSA_SECP256R1_SHA256
    assert alert_of(lambda: verify(key.public_key(), wrong, b"sig", content)) == 47


def test_leaf_public_key_reads_spki_without_x509_parser() -> None:
    pki = make_pki("ed25519")
    der, key = pki.leaf("ed25519")
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert leaf_public_key(der).public_bytes(*raw) == key.public_key().public_bytes(*raw)  # type: ignore[call-arg]
    assert alert_of(lambda: leaf_public_key(b"\x30\x80")) == AlertDescription.bad_certificate
    assert alert_of(lambda: leaf_public_key(der[:50])) == AlertDescription.bad_certificate


def test_leaf_public_key_reads_the_reality_certificate_skeleton() -> None:
    """The 178-byte REALITY cert of reality-spec §4.2: serial 0, year-1 dates, HMAC as signature."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pub = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key()
    raw_pub = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ed = bytes.fromhex("06032b6570")
    when = b"\x18\x0f" + b"00010101000000Z"
    tbs = (
        bytes.fromhex("a003020102020100")
        + b"\x30\x05"
        + ed
        + b"\x30\x00"
        + b"\x30\x22"
        + when
        + when
        + b"\x30\x00"
        + b"\x30\x2a\x30\x05"
        + ed
        + b"\x03\x21\x00"
        + raw_pub
    )
    body = b"\x30\x63" + tbs + b"\x30\x05" + ed + b"\x03\x41\x00" + bytes(64)
    cert = b"\x30\x81\xaf" + body
    assert len(cert) == 178 and cert[72:104] == raw_pub
    key = leaf_public_key(cert)
    assert isinstance(key, ed25519.Ed25519PublicKey)
    assert key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw_pub
