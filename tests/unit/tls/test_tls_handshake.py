"""In-memory client<->server TLS 1.3 handshakes (RFC 8446 + RFC 9001 §4)."""

from __future__ import annotations

import itertools

import pytest
from tls_helpers import NOW_TS, make_pki, run_pair, seeded_rng

from quicreality.tls.alerts import AlertDescription, TlsAlert
from quicreality.tls.certificates import InsecureVerifier, PkiVerifier, StaticCertificateSource
from quicreality.tls.handshake import (
    Direction,
    Epoch,
    HandshakeDone,
    InstallKeys,
    KeyLogLine,
    PeerTransportParameters,
    TlsConfig,
    TlsSession,
)
from quicreality.tls.messages import Group, SignatureScheme

PKI = {kind: make_pki(kind) for kind in ("ecdsa", "ed25519", "rsa")}
LEAVES = {kind: PKI[kind].leaf(kind) for kind in ("ecdsa", "ed25519", "rsa")}
SCHEME_FOR = {
    "ecdsa": SignatureScheme.ECDSA_SECP256R1_SHA256,
    "ed25519": SignatureScheme.ED25519,
    "rsa": SignatureScheme.RSA_PSS_RSAE_SHA256,
}


def configs(
    kind: str = "ecdsa", *, client: dict | None = None, server: dict | None = None
) -> tuple[TlsConfig, TlsConfig]:
    der, key = LEAVES[kind]
    c = dict(
        alpn_protocols=("h3",),
        server_name="localhost",
        peer_verifier=PkiVerifier(None, lambda: NOW_TS, ca_pem=PKI[kind].ca_pem),
        transport_parameters=b"client-tp",
    )
    s = dict(
        alpn_protocols=("h3",),
        certificate_source=StaticCertificateSource([der], key),
        transport_parameters=b"server-tp",
    )
    c.update(client or {})
    s.update(server or {})
    return TlsConfig(**c), TlsConfig(**s)  # type: ignore[arg-type]


def handshake(cc: TlsConfig, sc: TlsConfig, seed: int = 1, tamper=None):
    rng = seeded_rng(seed)
    return run_pair(TlsSession(cc, is_client=True, rng=rng), TlsSession(sc, is_client=False, rng=rng), tamper)


def secrets(outputs) -> dict[tuple[int, int], bytes]:
    return {(o.epoch, o.direction): o.secret for o in outputs if isinstance(o, InstallKeys)}


def assert_matching_keys(pair) -> None:
    cs, ss = secrets(pair.client_out), secrets(pair.server_out)
    for epoch in (Epoch.HANDSHAKE, Epoch.ONE_RTT):
        assert cs[(epoch, Direction.ENCRYPT)] == ss[(epoch, Direction.DECRYPT)]
        assert cs[(epoch, Direction.DECRYPT)] == ss[(epoch, Direction.ENCRYPT)]
        assert cs[(epoch, Direction.ENCRYPT)] != cs[(epoch, Direction.DECRYPT)]
    ck = {(o.label, o.client_random): o.secret for o in pair.client_out if isinstance(o, KeyLogLine)}
    sk = {(o.label, o.client_random): o.secret for o in pair.server_out if isinstance(o, KeyLogLine)}
    assert ck == sk and len(ck) == 4


@pytest.mark.parametrize(
    "suite,group,kind",
    list(itertools.product((0x1301, 0x1302, 0x1303), (Group.X25519, Group.SECP256R1), ("ecdsa", "ed25519", "rsa"))),
)
def test_handshake_completes_for_every_suite_group_and_key(suite: int, group: int, kind: str) -> None:
    cc, sc = configs(
        kind,
        client={"cipher_suites": (suite,), "groups": (group,), "key_share_groups": (group,)},
    )
    pair = handshake(cc, sc)
    assert pair.client.handshake_complete and pair.server.handshake_complete
    assert pair.client.cipher_suite == suite == pair.server.cipher_suite
    assert_matching_keys(pair)
    done = [o for o in pair.client_out if isinstance(o, HandshakeDone)]
    assert done == [HandshakeDone("h3", suite)]  # type: ignore[arg-type]
    assert [o for o in pair.server_out if isinstance(o, HandshakeDone)] == done
    assert [o.data for o in pair.client_out if isinstance(o, PeerTransportParameters)] == [b"server-tp"]
    assert [o.data for o in pair.server_out if isinstance(o, PeerTransportParameters)] == [b"client-tp"]
    cv = [d for s, e, d in pair.wire if s == "server" and e == Epoch.HANDSHAKE][0]
    assert SCHEME_FOR[kind].to_bytes(2, "big") in cv
