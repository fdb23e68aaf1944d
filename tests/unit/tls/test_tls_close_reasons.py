"""A TLS alert's reason becomes the peer-visible CONNECTION_CLOSE reason phrase (RFC 9001 §4.8),
so it is a fixed phrase: Python exception text stays in the local debug log (audit finding 12)."""

from __future__ import annotations

import logging

import pytest
from test_tls_handshake import configs, handshake
from tls_helpers import NOW_TS, make_pki

from quicreality.tls.alerts import AlertDescription, TlsAlert
from quicreality.tls.certificates import PkiVerifier
from quicreality.tls.key_exchange import generate_private_key, key_exchange
from quicreality.tls.messages import Group

SECRET = "secret-detail-/etc/quicreality/key.pem"


def alert_of(run) -> TlsAlert:  # type: ignore[no-untyped-def]
    with pytest.raises(TlsAlert) as info:
        run()
    return info.value


def test_internal_error_sends_a_fixed_phrase_and_logs_the_exception(caplog) -> None:  # type: ignore[no-untyped-def]
    class FailingSource:
        def credentials_for(self, *, server_name, signature_algorithms):  # type: ignore[no-untyped-def]
            raise RuntimeError(SECRET)

    cc, sc = configs(server={"certificate_source": FailingSource()})
    with caplog.at_level(logging.DEBUG, logger="quicreality.tls"):
        alert = alert_of(lambda: handshake(cc, sc))
    assert alert.description == AlertDescription.internal_error
    assert alert.reason == "internal error"
    assert SECRET in caplog.text  # kept locally, at debug


def test_peer_verifier_exception_text_is_not_sent() -> None:
    class FailingVerifier:
        def verify_chain(self, *, chain, server_name):  # type: ignore[no-untyped-def]
            raise ValueError(SECRET)

    cc, sc = configs(client={"peer_verifier": FailingVerifier()})
    alert = alert_of(lambda: handshake(cc, sc))
    assert alert.description == AlertDescription.bad_certificate
    assert SECRET not in alert.reason and "ValueError" not in alert.reason


def test_certificate_verification_details_are_not_sent() -> None:
    other_ca = make_pki().ca_pem
    cc, sc = configs(client={"peer_verifier": PkiVerifier(None, lambda: NOW_TS, ca_pem=other_ca)})
    alert = alert_of(lambda: handshake(cc, sc))
    assert alert.reason == "certificate verification failed"


def test_invalid_key_share_reason_has_no_library_text() -> None:
    key = generate_private_key(Group.SECP256R1, lambda n: bytes(range(1, n + 1)))
    alert = alert_of(lambda: key_exchange(key, Group.SECP256R1, b"\x04" + bytes(64)))
    assert alert.description == AlertDescription.illegal_parameter
    assert alert.reason == "invalid key share"
