"""Key schedule, transcript, Finished and CertificateVerify against RFC 8448 §3 (Simple 1-RTT)."""

from __future__ import annotations

import json
import pathlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from quicreality.tls import messages as m
from quicreality.tls.certificates import certificate_verify_content, leaf_public_key, verify
from quicreality.tls.hkdf import hkdf_expand_label
from quicreality.tls.key_exchange import key_exchange
from quicreality.tls.key_schedule import (
    KeySchedule,
    Transcript,
    derive_secret,
    empty_hash,
    finished_key,
)
from quicreality.wire.buffer import Buffer

VECTORS = pathlib.Path(__file__).parents[2] / "vectors" / "rfc8448" / "simple_1rtt.json"
V = {k: bytes.fromhex(v) for k, v in json.loads(VECTORS.read_text())["vectors"].items()}
MESSAGES = (
    "client_hello",
    "server_hello",
    "encrypted_extensions",
    "certificate",
    "certificate_verify",
    "server_finished",
    "client_finished",
)


def transcript_hash(upto: str) -> bytes:
    t = Transcript()
    for name in MESSAGES[: MESSAGES.index(upto) + 1]:
        t.add(V[name])
    return t.digest("sha256")


def test_rfc8448_x25519_keys_and_shared_secret() -> None:
    client = x25519.X25519PrivateKey.from_private_bytes(V["client_x25519_private"])
    server = x25519.X25519PrivateKey.from_private_bytes(V["server_x25519_private"])
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert client.public_key().public_bytes(*raw) == V["client_x25519_public"]
    assert server.public_key().public_bytes(*raw) == V["server_x25519_public"]
    assert (
        key_exchange(client, m.Group.X25519, V["server_x25519_public"]) == V["ecdhe_shared_secret"]
    )
    assert (
        key_exchange(server, m.Group.X25519, V["client_x25519_public"]) == V["ecdhe_shared_secret"]
    )


def test_rfc8448_transcript_hashes() -> None:
    assert transcript_hash("server_hello") == V["transcript_hash_client_hello_server_hello"]
    assert transcript_hash("server_finished") == V["transcript_hash_through_server_finished"]
    assert transcript_hash("client_finished") == V["transcript_hash_through_client_finished"]


def test_rfc8448_key_schedule_every_secret() -> None:
    ks = KeySchedule(0x1301)
    assert ks.early_secret == V["early_secret"]
    # Derive-Secret over no messages uses Hash("") as context.
    assert (
        derive_secret("sha256", ks.early_secret, b"derived", empty_hash("sha256"))
        == V["derived_for_handshake"]
    )
    ks.handshake(V["ecdhe_shared_secret"], transcript_hash("server_hello"))
    assert ks.handshake_secret == V["handshake_secret"]
    assert ks.client_handshake_traffic_secret == V["client_handshake_traffic_secret"]
    assert ks.server_handshake_traffic_secret == V["server_handshake_traffic_secret"]
    assert (
        derive_secret("sha256", ks.handshake_secret, b"derived", empty_hash("sha256"))
        == V["derived_for_master"]
    )
    ks.application(transcript_hash("server_finished"))
    assert ks.master_secret == V["master_secret"]
    assert ks.client_application_traffic_secret == V["client_application_traffic_secret_0"]
    assert ks.server_application_traffic_secret == V["server_application_traffic_secret_0"]
    assert ks.exporter_master_secret == V["exporter_master_secret"]
    resumption = derive_secret(
        "sha256", ks.master_secret, b"res master", transcript_hash("client_finished")
    )
    assert resumption == V["resumption_master_secret"]


def test_rfc8448_finished_keys_and_verify_data() -> None:
    s_hs, c_hs = V["server_handshake_traffic_secret"], V["client_handshake_traffic_secret"]
    assert finished_key("sha256", s_hs) == V["server_finished_key"]
    assert finished_key("sha256", c_hs) == V["client_finished_key"]
    ks = KeySchedule(0x1301)
    assert ks.verify_data(s_hs, transcript_hash("certificate_verify")) == V["server_verify_data"]
    assert ks.verify_data(c_hs, transcript_hash("server_finished")) == V["client_verify_data"]
    assert m.encode_finished(m.Finished(V["server_verify_data"])) == V["server_finished"]
    assert m.encode_finished(m.Finished(V["client_verify_data"])) == V["client_finished"]


def test_rfc8448_traffic_keys() -> None:
    for who, phase, secret in (
        ("server", "handshake", "server_handshake_traffic_secret"),
        ("client", "handshake", "client_handshake_traffic_secret"),
        ("server", "application", "server_application_traffic_secret_0"),
        ("client", "application", "client_application_traffic_secret_0"),
    ):
        assert hkdf_expand_label("sha256", V[secret], b"key", b"", 16) == V[f"{who}_{phase}_key"]
        assert hkdf_expand_label("sha256", V[secret], b"iv", b"", 12) == V[f"{who}_{phase}_iv"]


def test_rfc8448_messages_parse_and_reencode_byte_exact() -> None:
    ch = m.pull_client_hello(Buffer(data=V["client_hello"]))
    assert ch.raw == V["client_hello"]
    assert ch.server_name == "server"
    assert ch.cipher_suites == (0x1301, 0x1303, 0x1302)
    assert ch.key_share == (m.KeyShareEntry(m.Group.X25519, V["client_x25519_public"]),)
    assert ch.supported_versions == (m.TLS_VERSION_1_3,)
    assert ch.signature_algorithms is not None and 0x0804 in ch.signature_algorithms
    sh = m.pull_server_hello(Buffer(data=V["server_hello"]))
    assert sh.cipher_suite == 0x1301 and not sh.is_hello_retry_request
    assert sh.key_share == m.KeyShareEntry(m.Group.X25519, V["server_x25519_public"])
    ee = m.pull_encrypted_extensions(Buffer(data=V["encrypted_extensions"]))
    assert ee.server_name_acknowledged and ee.supported_groups is not None
    assert m.encode_server_hello(sh) == V["server_hello"]
    cert = m.pull_certificate(Buffer(data=V["certificate"]))
    assert len(cert.certificate_list) == 1 and cert.request_context == b""
    # No nested list length: re-encoding gives the RFC's bytes exactly.
    assert m.encode_certificate(cert) == V["certificate"]
    cv = m.pull_certificate_verify(Buffer(data=V["certificate_verify"]))
    assert cv.algorithm == m.SignatureScheme.RSA_PSS_RSAE_SHA256
    assert m.encode_certificate_verify(cv) == V["certificate_verify"]


def test_rfc8448_certificate_verify_signature_verifies() -> None:
    cert = m.pull_certificate(Buffer(data=V["certificate"]))
    cv = m.pull_certificate_verify(Buffer(data=V["certificate_verify"]))
    key = leaf_public_key(cert.certificate_list[0].cert_data)
    content = certificate_verify_content(transcript_hash("certificate"), server=True)
    verify(key, cv.algorithm, cv.signature, content)
