"""The test PKI: a CA and a P-256 leaf that every peer accepts."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from quicreality.scenarios.peers.base import free_udp_port, udp_bound
from quicreality.scenarios.peers.certs import make_test_cert


def test_leaf_is_p256_signed_by_ca_with_loopback_sans(tmp_path: Path) -> None:
    cert_path, key_path, ca_path = make_test_cert(tmp_path, extra_sans=["example.test"])
    leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    leaf.verify_directly_issued_by(ca)
    pub = leaf.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp256r1"
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert "example.test" in san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert key_path.stat().st_mode & 0o077 == 0
    assert (tmp_path / "fullchain.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 2


def test_udp_bound_sees_a_bound_socket() -> None:
    import socket

    port = free_udp_port()
    assert not udp_bound(port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))
        assert udp_bound(port)
