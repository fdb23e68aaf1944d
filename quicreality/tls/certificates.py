"""Certificates for TLS 1.3: where the server's chain comes from, how the client judges the peer,
and CertificateVerify signatures (RFC 8446 §4.4.2, §4.4.3).

Two narrow, keyword-only seams let REALITY replace the PKI without ``tls/`` knowing about it:

* :class:`CertificateSource` supplies the server's chain and key (a PEM pair, or REALITY's
  per-connection HMAC certificate);
* :class:`PeerVerifier` judges the peer's chain (X.509 path validation, or REALITY's HMAC check).

The CertificateVerify key is read from the leaf with a small DER walker (:func:`leaf_public_key`), not
with ``cryptography``'s X.509 parser, so odd but well-formed certificates (REALITY's serial 0, year-1
validity) still work.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from .alerts import AlertDescription, TlsAlert
from .messages import SignatureScheme

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

#: Context strings of the signed content (RFC 8446 §4.4.3).
SERVER_CONTEXT = b"TLS 1.3, server CertificateVerify"
CLIENT_CONTEXT = b"TLS 1.3, client CertificateVerify"

#: Signature schemes we sign and verify, with the hash they use (RFC 8446 §4.2.3).
_ECDSA_SCHEMES: dict[int, tuple[type[ec.EllipticCurve], hashes.HashAlgorithm]] = {
    SignatureScheme.ECDSA_SECP256R1_SHA256: (ec.SECP256R1, hashes.SHA256()),
    SignatureScheme.ECDSA_SECP384R1_SHA384: (ec.SECP384R1, hashes.SHA384()),
}
_RSA_PSS_SCHEMES: dict[int, hashes.HashAlgorithm] = {
    SignatureScheme.RSA_PSS_RSAE_SHA256: hashes.SHA256(),
    SignatureScheme.RSA_PSS_RSAE_SHA384: hashes.SHA384(),
    SignatureScheme.RSA_PSS_RSAE_SHA512: hashes.SHA512(),
}
#: All CertificateVerify schemes this module implements.
SUPPORTED_SIGNATURE_SCHEMES: tuple[int, ...] = (
    SignatureScheme.ECDSA_SECP256R1_SHA256,
    SignatureScheme.ED25519,
    SignatureScheme.RSA_PSS_RSAE_SHA256,
    SignatureScheme.RSA_PSS_RSAE_SHA384,
    SignatureScheme.RSA_PSS_RSAE_SHA512,
    SignatureScheme.ECDSA_SECP384R1_SHA384,
)


@dataclass(frozen=True, slots=True)
class ServerCredentials:
    """What the server presents: DER certificates (leaf first) and the leaf's private key."""

    certificate_chain: tuple[bytes, ...]
    private_key: PrivateKey


class CertificateSource(Protocol):
    """Supplies the server's credentials for one handshake."""

    def credentials_for(
        self, *, server_name: str | None, signature_algorithms: Sequence[int]
    ) -> ServerCredentials:
        """Return the chain and key for ``server_name`` (SNI, or None).

        ``signature_algorithms`` is the client's list, to pick among several keys.
        Raise :class:`TlsAlert` (e.g. unrecognized_name, handshake_failure) to refuse.
        """
        ...


class PeerVerifier(Protocol):
    """Judges the peer's certificate chain."""

    def verify_chain(self, *, chain: Sequence[bytes], server_name: str | None) -> None:
        """Accept ``chain`` (DER, leaf first) for ``server_name`` or raise :class:`TlsAlert`."""
        ...


def load_pem_chain(data: bytes) -> tuple[bytes, ...]:
    """DER certificates from a PEM bundle, in file order."""
    certs = x509.load_pem_x509_certificates(data)
    return tuple(c.public_bytes(serialization.Encoding.DER) for c in certs)


def load_pem_private_key(data: bytes, password: bytes | None = None) -> PrivateKey:
    """A PEM private key of a type we can sign with (ECDSA P-256/P-384, Ed25519, RSA)."""
    key = serialization.load_pem_private_key(data, password=password)
    if not isinstance(
        key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey)
    ):
        raise TypeError(f"unsupported private key type {type(key).__name__}")
    return key


class StaticCertificateSource:
    """Always presents the same chain and key."""

    def __init__(self, certificate_chain: Sequence[bytes], private_key: PrivateKey) -> None:
        if not certificate_chain:
            raise ValueError("empty certificate chain")
        self._credentials = ServerCredentials(tuple(certificate_chain), private_key)

    def credentials_for(
        self, *, server_name: str | None, signature_algorithms: Sequence[int]
    ) -> ServerCredentials:
        """Return the configured credentials whatever the SNI."""
        return self._credentials


class FileCertificateSource(StaticCertificateSource):
    """A PEM chain (leaf first) and a PEM key, read once at construction."""

    def __init__(self, cert_file: str, key_file: str, password: bytes | None = None) -> None:
        with open(cert_file, "rb") as f:
            chain = load_pem_chain(f.read())
        with open(key_file, "rb") as f:
            key = load_pem_private_key(f.read(), password)
        super().__init__(chain, key)


class InsecureVerifier:
    """Accepts any chain (tests, interop with self-signed peers). Never use it in production."""

    def verify_chain(self, *, chain: Sequence[bytes], server_name: str | None) -> None:
        """Accept everything."""


class PkiVerifier:
    """X.509 path validation (RFC 5280) against the CAs of a PEM file, for a DNS name or IP.

    Uses ``cryptography.x509.verification`` with the Web PKI server profile. Failures map to
    alerts as Go does: unknown issuer -> unknown_ca, outside validity -> certificate_expired,
    name mismatch or unparseable -> bad_certificate, anything else -> certificate_unknown.
    """

    def __init__(
        self,
        ca_file: str | None,
        wall_clock: Callable[[], float],
        *,
        ca_pem: bytes | None = None,
        name: str | None = None,
    ) -> None:
        self._name = name  # verify against this (e.g. an IP literal, never sent as SNI)
        data = b""
        if ca_file is not None:
            with open(ca_file, "rb") as f:
                data += f.read()
        if ca_pem is not None:
            data += b"\n" + ca_pem
        roots = x509.load_pem_x509_certificates(data) if data.strip() else []
        if not roots:
            raise ValueError("PkiVerifier needs at least one CA certificate")
        self._roots = roots
        self._store = Store(roots)
        self._wall_clock = wall_clock

    def verify_chain(self, *, chain: Sequence[bytes], server_name: str | None) -> None:
        """Validate ``chain`` for ``server_name`` at ``wall_clock()``; raise TlsAlert otherwise."""
        if not chain:
            raise TlsAlert(AlertDescription.bad_certificate, "empty certificate chain")
        server_name = self._name or server_name
        if not server_name:
            raise TlsAlert(AlertDescription.certificate_unknown, "no server name to verify against")
        try:
            certs = [x509.load_der_x509_certificate(der) for der in chain]
        except ValueError as exc:
            raise TlsAlert(AlertDescription.bad_certificate, "unparseable certificate") from exc
        subject: x509.GeneralName
        try:
            subject = x509.IPAddress(ipaddress.ip_address(server_name))
        except ValueError:
            subject = x509.DNSName(server_name)
        now = datetime.datetime.fromtimestamp(self._wall_clock(), tz=datetime.UTC)
        leaf = certs[0]
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            raise TlsAlert(
                AlertDescription.certificate_expired, "certificate outside its validity period"
            )
        try:
            verifier = PolicyBuilder().store(self._store).time(now).build_server_verifier(subject)
            verifier.verify(leaf, certs[1:])
        except VerificationError as exc:
            message = str(exc)
            if "Forbidden public key algorithm" in message:
                # The CA/B profile of cryptography refuses Ed25519 keys; check those chains ourselves.
                self._verify_eddsa_chain(certs, subject, now)
                return
            if "subjectAltName" in message:
                alert = AlertDescription.bad_certificate
            elif "candidates exhausted" in message or "issuer" in message:
                alert = AlertDescription.unknown_ca
            elif "not valid at validation time" in message:
                alert = AlertDescription.certificate_expired
            else:
                alert = AlertDescription.certificate_unknown
            raise TlsAlert(alert, "certificate verification failed") from exc

    def _verify_eddsa_chain(
        self, certs: list[x509.Certificate], subject: x509.GeneralName, now: datetime.datetime
    ) -> None:
        """Minimal RFC 5280 path check (signatures, validity, CA flag, SAN) for EdDSA chains."""
        if not _san_matches(certs[0], subject):
            raise TlsAlert(
                AlertDescription.bad_certificate, "leaf certificate has no matching subjectAltName"
            )
        current, pool = certs[0], certs[1:]
        for _ in range(8):
            for candidate, is_root in [(r, True) for r in self._roots] + [(c, False) for c in pool]:
                if not _issued_by(current, candidate):
                    continue
                if not candidate.not_valid_before_utc <= now <= candidate.not_valid_after_utc:
                    raise TlsAlert(
                        AlertDescription.certificate_expired, "issuer outside its validity period"
                    )
                try:
                    is_ca = candidate.extensions.get_extension_for_class(
                        x509.BasicConstraints
                    ).value.ca
                except x509.ExtensionNotFound:
                    is_ca = False
                if not is_ca:
                    raise TlsAlert(AlertDescription.bad_certificate, "issuer is not a CA")
                if is_root:
                    return
                current = candidate
                break
            else:
                raise TlsAlert(AlertDescription.unknown_ca, "no path to a trusted CA")
        raise TlsAlert(AlertDescription.bad_certificate, "certificate chain too long")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _san_matches(cert: x509.Certificate, subject: x509.GeneralName) -> bool:
    """DNS names (one left-most wildcard label, RFC 6125 §6.4.3) or exact IP addresses."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    if isinstance(subject, x509.IPAddress):
        return subject.value in san.get_values_for_type(x509.IPAddress)
    want = str(subject.value).lower().rstrip(".")
    for name in san.get_values_for_type(x509.DNSName):
        name = name.lower().rstrip(".")
        if name == want:
            return True
        if name.startswith("*.") and "." in want and want.split(".", 1)[1] == name[2:]:
            return True
    return False


# --- DER walking -----------------------------------------------------------------------


def _der_element(data: bytes, pos: int) -> tuple[int, int, int]:
    """Return ``(tag, content_start, end)`` of the TLV at ``pos`` (definite lengths only)."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag = data[pos]
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, pos, end


def leaf_public_key(cert_der: bytes) -> PublicKey:
    """The subjectPublicKeyInfo of a DER certificate, loaded as a key (RFC 5280 §4.1).

    Raises:
        TlsAlert: bad_certificate if the DER does not walk, unsupported_certificate for key
            types we cannot verify with.
    """
    try:
        tag, pos, _ = _der_element(cert_der, 0)  # Certificate
        if tag != 0x30:
            raise ValueError("not a SEQUENCE")
        tag, pos, tbs_end = _der_element(cert_der, pos)  # TBSCertificate
        if tag != 0x30:
            raise ValueError("not a SEQUENCE")
        tag, _, end = _der_element(cert_der, pos)
        if tag == 0xA0:  # [0] version
            pos = end
        for _ in range(5):  # serial, signature, issuer, validity, subject
            _, _, pos = _der_element(cert_der, pos)
        tag, _, end = _der_element(cert_der, pos)
        if tag != 0x30 or end > tbs_end:
            raise ValueError("no subjectPublicKeyInfo")
        key = serialization.load_der_public_key(cert_der[pos:end])
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TlsAlert(AlertDescription.bad_certificate, "cannot read certificate key") from exc
    if not isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, rsa.RSAPublicKey)):
        raise TlsAlert(
            AlertDescription.unsupported_certificate, f"unsupported key {type(key).__name__}"
        )
    return key


# --- CertificateVerify -------------------------------------------------------------------


def certificate_verify_content(transcript_hash: bytes, *, server: bool) -> bytes:
    """The signed content: 64 spaces, context string, 0x00, transcript hash (RFC 8446 §4.4.3)."""
    return b"\x20" * 64 + (SERVER_CONTEXT if server else CLIENT_CONTEXT) + b"\x00" + transcript_hash


def signature_schemes_for_key(key: PrivateKey | PublicKey) -> tuple[int, ...]:
    """The CertificateVerify schemes a key can produce, in our preference order."""
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return (SignatureScheme.ED25519,)
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return tuple(s for s, (curve, _) in _ECDSA_SCHEMES.items() if isinstance(key.curve, curve))
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return tuple(_RSA_PSS_SCHEMES)
    return ()


def sign(key: PrivateKey, scheme: int, content: bytes) -> bytes:
    """Sign ``content`` with ``scheme`` (RFC 8446 §4.2.3; RSA-PSS salt = digest length)."""
    if scheme not in signature_schemes_for_key(key):
        raise ValueError(f"key cannot sign with scheme {scheme:#06x}")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(content)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(content, ec.ECDSA(_ECDSA_SCHEMES[scheme][1]))
    algorithm = _RSA_PSS_SCHEMES[scheme]
    pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
    return key.sign(content, pss, algorithm)


def verify(key: PublicKey, scheme: int, signature: bytes, content: bytes) -> None:
    """Check a CertificateVerify signature.

    Raises:
        TlsAlert: illegal_parameter if ``scheme`` does not fit the key, decrypt_error if the
            signature is wrong (RFC 8446 §4.4.3).
    """
    if scheme not in signature_schemes_for_key(key):
        raise TlsAlert(
            AlertDescription.illegal_parameter,
            f"signature scheme {scheme:#06x} does not match the key",
        )
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, content)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, content, ec.ECDSA(_ECDSA_SCHEMES[scheme][1]))
        else:
            algorithm = _RSA_PSS_SCHEMES[scheme]
            pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
            key.verify(signature, content, pss, algorithm)
    except (InvalidSignature, ValueError) as exc:
        raise TlsAlert(
            AlertDescription.decrypt_error, "CertificateVerify signature is invalid"
        ) from exc
