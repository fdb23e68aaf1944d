"""REALITY's "temporary trusted certificate" (spec §4.1-§4.2, §3.4).

Once per process the server picks an Ed25519 key and builds a self-signed-looking certificate from
Go's ``x509.CreateCertificate`` template ``{SerialNumber: 0}``: empty names, year-1 validity
(GeneralizedTime ``00010101000000Z``), no extensions. Per connection only the last 64 bytes change:
the signatureValue becomes HMAC-SHA512(AuthKey, ed25519 public key). The TBS is never signed.

The DER below was worked out by hand (spec §4.2) and checked byte for byte against Go 1.19's output
(``tests/vectors/reality``)::

      0  30 81 AF                 Certificate (175)
      3  30 63                    TBSCertificate (99)
      5  A0 03 02 01 02           version v3
     10  02 01 00                 serial 0
     13  30 05 06 03 2B 65 70     signature algorithm Ed25519 (1.3.101.112)
     20  30 00                    issuer: empty Name
     22  30 22 18 0F ... 18 0F ...   validity: two GeneralizedTimes "00010101000000Z"
     58  30 00                    subject: empty Name
     60  30 2A 30 05 06 03 2B 65 70 03 21 00 <pub @72..103>
    104  30 05 06 03 2B 65 70     signatureAlgorithm
    111  03 41 00 <sig @114..177> signatureValue BIT STRING

The client side (:func:`parse_reality_certificate`) reads ``pub`` and ``sig`` with a small DER walker,
not with an X.509 library (spec §4.2: ``cryptography`` warns on serial 0).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..tls.certificates import ServerCredentials

#: DER of AlgorithmIdentifier { id-Ed25519 } without parameters (RFC 8410 §3).
_ED25519_ALGORITHM = bytes.fromhex("300506032b6570")
#: GeneralizedTime "00010101000000Z": Go encodes the zero time.Time this way (year 1 < 1950).
_ZERO_TIME = b"\x18\x0f" + b"00010101000000Z"
#: Offsets in the 178-byte certificate (spec §4.2).
PUBLIC_KEY_OFFSET = 72
SIGNATURE_OFFSET = 114
CERTIFICATE_LENGTH = 178
#: HMAC-SHA512 output: the whole Ed25519 signature slot.
SIGNATURE_LENGTH = 64


def _tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV with a definite length (X.690 §8.1.3)."""
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    elif n < 0x100:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + content


def build_certificate(ed25519_public_key: bytes, signature: bytes = bytes(SIGNATURE_LENGTH)) -> bytes:
    """The 178-byte REALITY certificate for ``ed25519_public_key`` with ``signature`` in its slot."""
    if len(ed25519_public_key) != 32 or len(signature) != SIGNATURE_LENGTH:
        raise ValueError("Ed25519 public key is 32 bytes and the signature 64")
    tbs = _tlv(
        0x30,
        _tlv(0xA0, _tlv(0x02, b"\x02"))  # [0] EXPLICIT version v3
        + _tlv(0x02, b"\x00")  # serialNumber 0
        + _ED25519_ALGORITHM  # signature
        + _tlv(0x30, b"")  # issuer: empty RDNSequence
        + _tlv(0x30, _ZERO_TIME + _ZERO_TIME)  # validity
        + _tlv(0x30, b"")  # subject
        + _tlv(0x30, _ED25519_ALGORITHM + _tlv(0x03, b"\x00" + ed25519_public_key)),  # SPKI
    )
    der = _tlv(0x30, tbs + _ED25519_ALGORITHM + _tlv(0x03, b"\x00" + signature))
    assert len(der) == CERTIFICATE_LENGTH and der[PUBLIC_KEY_OFFSET:][:32] == ed25519_public_key
    return der


def hmac_signature(auth_key: bytes, ed25519_public_key: bytes) -> bytes:
    """HMAC-SHA512(key=AuthKey, msg=ed25519 public key): the certificate's signature (spec §4.1)."""
    return hmac.new(auth_key, ed25519_public_key, hashlib.sha512).digest()


# --- server -----------------------------------------------------------------------------


class RealityIdentity:
    """The per-process Ed25519 key and certificate template (spec §4.1).

    Args:
        private_key: the Ed25519 key; :meth:`generate` makes one from ``rng`` bytes.
    """

    def __init__(self, private_key: ed25519.Ed25519PrivateKey) -> None:
        self.private_key = private_key
        self.public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._template = build_certificate(self.public_key)

    @classmethod
    def generate(cls, rng: Callable[[int], bytes]) -> RealityIdentity:
        """A fresh identity from 32 ``rng`` bytes (the Ed25519 seed)."""
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(rng(32)))

    def certificate_for(self, auth_key: bytes) -> bytes:
        """The template with HMAC-SHA512(auth_key, pub) in the signature slot."""
        return self._template[:SIGNATURE_OFFSET] + hmac_signature(auth_key, self.public_key)


class RealityCertificateSource:
    """A :class:`~quicreality.tls.certificates.CertificateSource` for one accepted connection.

    Presents the HMAC-signed certificate whatever the SNI; CertificateVerify is Ed25519 (0x0807),
    signed with the identity's key even if the client did not offer Ed25519 (spec §3.3).
    """

    def __init__(self, identity: RealityIdentity, auth_key: bytes) -> None:
        self._credentials = ServerCredentials(
            (identity.certificate_for(auth_key),), identity.private_key
        )

    def credentials_for(
        self, *, server_name: str | None, signature_algorithms: Sequence[int]
    ) -> ServerCredentials:
        """The REALITY certificate and the identity's Ed25519 key."""
        return self._credentials


# --- client -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RealityCertificateFields:
    """What the client reads from a leaf certificate (spec §3.4)."""

    ed25519_public_key: bytes | None  #: None when the key is not Ed25519
    signature: bytes  #: the signatureValue BIT STRING content (unused-bits byte removed)


def _element(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """``(tag, content_start, content_end)`` of the TLV at ``pos``; ValueError if malformed."""
    if pos + 2 > end:
        raise ValueError("truncated DER")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if not 1 <= n <= 3 or pos + n > end:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > end:
        raise ValueError("DER element runs past its container")
    return tag, pos, pos + length


def parse_reality_certificate(der: bytes) -> RealityCertificateFields:
    """Read the subject public key (if Ed25519) and the signature of a DER certificate.

    Raises:
        ValueError: the DER does not walk as a Certificate.
    """
    tag, pos, cert_end = _element(der, 0, len(der))
    if tag != 0x30:
        raise ValueError("certificate is not a SEQUENCE")
    tag, tbs_pos, tbs_end = _element(der, pos, cert_end)
    if tag != 0x30:
        raise ValueError("TBSCertificate is not a SEQUENCE")
    p = tbs_pos
    tag, _, end = _element(der, p, tbs_end)
    if tag == 0xA0:  # [0] version
        p = end
    for _ in range(5):  # serialNumber, signature, issuer, validity, subject
        _, _, p = _element(der, p, tbs_end)
    tag, spki_pos, spki_end = _element(der, p, tbs_end)
    if tag != 0x30:
        raise ValueError("no subjectPublicKeyInfo")
    _, _, alg_end = _element(der, spki_pos, spki_end)
    algorithm = der[spki_pos:alg_end]
    tag, key_pos, key_end = _element(der, alg_end, spki_end)
    public: bytes | None = None
    if (
        algorithm == _ED25519_ALGORITHM
        and tag == 0x03
        and key_end - key_pos == 33
        and der[key_pos] == 0
    ):
        public = der[key_pos + 1 : key_end]
    _, _, p = _element(der, tbs_end, cert_end)  # signatureAlgorithm
    tag, sig_pos, sig_end = _element(der, p, cert_end)
    if tag != 0x03 or sig_end == sig_pos or der[sig_pos] != 0:
        raise ValueError("signatureValue is not a BIT STRING without unused bits")
    return RealityCertificateFields(public, bytes(der[sig_pos + 1 : sig_end]))


def certificate_matches(der: bytes, auth_key: bytes) -> bool:
    """True if ``der`` is an Ed25519 certificate whose signature is HMAC-SHA512(auth_key, pub)."""
    try:
        fields = parse_reality_certificate(der)
    except ValueError:
        return False
    if fields.ed25519_public_key is None:
        return False
    expected = hmac_signature(auth_key, fields.ed25519_public_key)
    return hmac.compare_digest(expected, fields.signature)
