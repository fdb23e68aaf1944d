"""The HMAC-signed Ed25519 certificate (spec §4.1-§4.2, §3.4, §9.5)."""

from __future__ import annotations

import hashlib
import hmac
import json
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from reality_helpers import SHORT_ID, VECTORS, WALL, sealed_client_hello

from quicreality.reality.cert import (
    CERTIFICATE_LENGTH,
    PUBLIC_KEY_OFFSET,
    SIGNATURE_OFFSET,
    RealityCertificateSource,
    RealityIdentity,
    build_certificate,
    certificate_matches,
    hmac_signature,
    parse_reality_certificate,
)
from quicreality.reality.seal import REAL_CERTIFICATE_REASON, RealityClientHook
from quicreality.tls.alerts import TlsAlert
from quicreality.tls.certificates import leaf_public_key

GO = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "reality" / "go_x509_ed25519_cert.json")
    .read_text())
ED = VECTORS["rfc8032_7_1_test1"]
ED_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(ED["secret"]))
ED_PUB = bytes.fromhex(ED["public"])
AUTH_KEY = bytes(range(100, 132))


def test_skeleton_matches_go_x509_byte_for_byte() -> None:
    pub = bytes.fromhex(GO["ed25519_public_hex"])
    go_der = bytes.fromhex(GO["certificate_der_hex"])
    ours = build_certificate(pub)
    assert len(ours) == len(go_der) == CERTIFICATE_LENGTH == 178
    assert ours[:SIGNATURE_OFFSET] == go_der[:SIGNATURE_OFFSET]
    assert go_der[PUBLIC_KEY_OFFSET:PUBLIC_KEY_OFFSET + 32] == pub
    # Go's signature slot really is the Ed25519 signature of the TBS (bytes 3..101), which
    # REALITY throws away: it proves the slot we overwrite is the signatureValue.
    seed_key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(GO["ed25519_seed_hex"]))
    seed_key.public_key().verify(go_der[SIGNATURE_OFFSET:], go_der[3:104])


def test_identity_certificate_carries_hmac_of_its_public_key() -> None:
    identity = RealityIdentity(ED_KEY)
    assert identity.public_key == ED_PUB
    der = identity.certificate_for(AUTH_KEY)
    mac = hmac.new(AUTH_KEY, ED_PUB, hashlib.sha512).digest()
    assert der[SIGNATURE_OFFSET:] == mac == hmac_signature(AUTH_KEY, ED_PUB)
    assert der[:SIGNATURE_OFFSET] == build_certificate(ED_PUB)[:SIGNATURE_OFFSET]


def test_certificate_parses_with_the_der_walker_and_with_cryptography() -> None:
    der = RealityIdentity(ED_KEY).certificate_for(AUTH_KEY)
    fields = parse_reality_certificate(der)
    assert fields.ed25519_public_key == ED_PUB
    assert fields.signature == hmac_signature(AUTH_KEY, ED_PUB)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # serial number 0 is "not positive"
        cert = x509.load_der_x509_certificate(der)
        raw_pub = cert.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert raw_pub == ED_PUB
        assert cert.signature == fields.signature
    assert isinstance(leaf_public_key(der), ed25519.Ed25519PublicKey)


def test_hmac_check_passes_and_one_flipped_byte_fails() -> None:
    der = RealityIdentity(ED_KEY).certificate_for(AUTH_KEY)
    assert certificate_matches(der, AUTH_KEY)
    bad = bytearray(der)
    bad[-1] ^= 1
    assert not certificate_matches(bytes(bad), AUTH_KEY)
    assert not certificate_matches(der, bytes(32))
    assert not certificate_matches(b"\x30\x03\x02\x01\x00", AUTH_KEY)


def _hook_with_key() -> RealityClientHook:
    _, hook = sealed_client_hello()
    return hook


def test_client_verifier_accepts_the_reality_certificate() -> None:
    hook = _hook_with_key()
    assert hook.auth_key is not None
    der = RealityIdentity(ED_KEY).certificate_for(hook.auth_key)
    hook.verify_chain(chain=[der], server_name="www.example.com")


def test_client_verifier_rejects_a_flipped_hmac_and_real_certificates() -> None:
    hook = _hook_with_key()
    assert hook.auth_key is not None
    der = bytearray(RealityIdentity(ED_KEY).certificate_for(hook.auth_key))
    der[SIGNATURE_OFFSET] ^= 0xFF
    with pytest.raises(TlsAlert) as err:
        hook.verify_chain(chain=[bytes(der)], server_name=None)
    assert err.value.reason == REAL_CERTIFICATE_REASON
    assert "not a REALITY server, or the key is wrong" in str(err.value)
    real = bytes.fromhex(GO["certificate_der_hex"])  # an Ed25519 cert with a real signature
    with pytest.raises(TlsAlert, match="real certificate"):
        hook.verify_chain(chain=[real], server_name=None)


def test_client_verifier_without_a_sealed_hello_refuses() -> None:
    hook = RealityClientHook(bytes(32), SHORT_ID, wall_clock=lambda: WALL)
    with pytest.raises(TlsAlert):
        hook.verify_chain(chain=[b""], server_name=None)


def test_certificate_source_presents_the_hmac_certificate_and_ed25519_key() -> None:
    identity = RealityIdentity.generate(lambda n: bytes(range(n)))
    creds = RealityCertificateSource(identity, AUTH_KEY).credentials_for(
        server_name="x", signature_algorithms=[0x0403])
    assert creds.certificate_chain == (identity.certificate_for(AUTH_KEY),)
    assert creds.private_key is identity.private_key
