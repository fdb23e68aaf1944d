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
    c: dict = {
        "alpn_protocols": ("h3",),
        "server_name": "localhost",
        "peer_verifier": PkiVerifier(None, lambda: NOW_TS, ca_pem=PKI[kind].ca_pem),
        "transport_parameters": b"client-tp",
    }
    s: dict = {
        "alpn_protocols": ("h3",),
        "certificate_source": StaticCertificateSource([der], key),
        "transport_parameters": b"server-tp",
    }
    c.update(client or {})
    s.update(server or {})
    return TlsConfig(**c), TlsConfig(**s)  # type: ignore[arg-type]


def handshake(cc: TlsConfig, sc: TlsConfig, seed: int = 1, tamper=None):
    rng = seeded_rng(seed)
    return run_pair(
        TlsSession(cc, is_client=True, rng=rng), TlsSession(sc, is_client=False, rng=rng), tamper
    )


def secrets(outputs) -> dict[tuple[int, int], bytes]:
    return {(o.epoch, o.direction): o.secret for o in outputs if isinstance(o, InstallKeys)}


def assert_matching_keys(pair) -> None:
    cs, ss = secrets(pair.client_out), secrets(pair.server_out)
    for epoch in (Epoch.HANDSHAKE, Epoch.ONE_RTT):
        assert cs[(epoch, Direction.ENCRYPT)] == ss[(epoch, Direction.DECRYPT)]
        assert cs[(epoch, Direction.DECRYPT)] == ss[(epoch, Direction.ENCRYPT)]
        assert cs[(epoch, Direction.ENCRYPT)] != cs[(epoch, Direction.DECRYPT)]
    ck = {
        (o.label, o.client_random): o.secret for o in pair.client_out if isinstance(o, KeyLogLine)
    }
    sk = {
        (o.label, o.client_random): o.secret for o in pair.server_out if isinstance(o, KeyLogLine)
    }
    assert ck == sk and len(ck) == 4


@pytest.mark.parametrize(
    "suite,group,kind",
    list(
        itertools.product(
            (0x1301, 0x1302, 0x1303), (Group.X25519, Group.SECP256R1), ("ecdsa", "ed25519", "rsa")
        )
    ),
)
def test_handshake_completes_for_every_suite_group_and_key(
    suite: int, group: int, kind: str
) -> None:
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
    assert [o.data for o in pair.client_out if isinstance(o, PeerTransportParameters)] == [
        b"server-tp"
    ]
    assert [o.data for o in pair.server_out if isinstance(o, PeerTransportParameters)] == [
        b"client-tp"
    ]
    cv = next(d for s, e, d in pair.wire if s == "server" and e == Epoch.HANDSHAKE)
    assert SCHEME_FOR[kind].to_bytes(2, "big") in cv


# --- helpers for tampering -------------------------------------------------------------------

from quicreality.tls import messages as m  # noqa: E402 -- helpers section
from quicreality.tls.handshake import SendCrypto, State  # noqa: E402


def split_messages(data: bytes) -> list[bytes]:
    reader = m.MessageReader()
    reader.feed(data)
    return [raw for _, raw in reader.messages()]


def expect_alert(description: int, fn) -> TlsAlert:
    with pytest.raises(TlsAlert) as info:
        fn()
    assert info.value.description == description, str(info.value)
    return info.value


# --- negotiation ----------------------------------------------------------------------------


def test_hello_retry_request_when_client_shares_no_acceptable_group() -> None:
    cc, sc = configs(
        client={"groups": (Group.SECP256R1, Group.X25519), "key_share_groups": (Group.SECP256R1,)},
        server={"groups": (Group.X25519,)},
    )
    pair = handshake(cc, sc)
    assert pair.client.handshake_complete and pair.server.handshake_complete
    assert_matching_keys(pair)
    initial = [(s, d) for s, e, d in pair.wire if e == Epoch.INITIAL]
    assert [s for s, _ in initial] == ["client", "server", "client", "server"]
    hrr = m.pull_server_hello(m.Buffer(data=initial[1][1]))
    assert hrr.is_hello_retry_request and hrr.selected_group == Group.X25519 and hrr.cookie
    ch2 = m.pull_client_hello(m.Buffer(data=initial[2][1]))
    assert ch2.cookie == hrr.cookie
    assert [e.group for e in ch2.key_share or ()] == [Group.X25519]
    ch1 = m.pull_client_hello(m.Buffer(data=initial[0][1]))
    assert ch2.random == ch1.random
    sh = m.pull_server_hello(m.Buffer(data=initial[3][1]))
    assert sh.key_share is not None and sh.key_share.group == Group.X25519


def test_hello_retry_request_with_sha384_suite_uses_message_hash() -> None:
    cc, sc = configs(
        client={"groups": (Group.X25519, Group.SECP256R1), "key_share_groups": (Group.X25519,)},
        server={"groups": (Group.SECP256R1,), "cipher_suites": (0x1302,)},
    )
    pair = handshake(cc, sc)
    assert pair.client.cipher_suite == 0x1302
    assert_matching_keys(pair)


def test_no_common_group_is_handshake_failure() -> None:
    cc, sc = configs(
        client={"groups": (Group.X25519,), "key_share_groups": (Group.X25519,)},
        server={"groups": (Group.SECP256R1,)},
    )
    expect_alert(AlertDescription.handshake_failure, lambda: handshake(cc, sc))


def test_server_picks_cipher_suite_by_its_own_preference() -> None:
    cc, sc = configs(
        client={"cipher_suites": (0x1303, 0x1301)}, server={"cipher_suites": (0x1301, 0x1303)}
    )
    assert handshake(cc, sc).client.cipher_suite == 0x1301


def test_no_common_cipher_suite_is_handshake_failure() -> None:
    cc, sc = configs(client={"cipher_suites": (0x1303,)}, server={"cipher_suites": (0x1301,)})
    expect_alert(AlertDescription.handshake_failure, lambda: handshake(cc, sc))


def test_alpn_mismatch_is_no_application_protocol() -> None:
    cc, sc = configs(client={"alpn_protocols": ("hq-interop",)})
    alert = expect_alert(AlertDescription.no_application_protocol, lambda: handshake(cc, sc))
    assert alert.description == 120


def test_server_selects_alpn_by_its_preference() -> None:
    cc, sc = configs(
        client={"alpn_protocols": ("hq-interop", "h3")},
        server={"alpn_protocols": ("h3", "hq-interop")},
    )
    assert handshake(cc, sc).client.alpn_protocol == "h3"


def test_client_without_transport_parameters_is_missing_extension() -> None:
    cc, sc = configs(client={"transport_parameters": None})
    assert (
        expect_alert(109, lambda: handshake(cc, sc)).description
        == AlertDescription.missing_extension
    )


def test_server_without_transport_parameters_is_missing_extension_at_client() -> None:
    cc, sc = configs(server={"transport_parameters": None})
    rng = seeded_rng(3)
    client = TlsSession(cc, is_client=True, rng=rng)
    server = TlsSession(
        TlsConfig(**{**sc.__dict__, "transport_parameters": b"x"}), is_client=False, rng=rng
    )
    (hello,) = client.start()
    out = server.receive(Epoch.INITIAL, hello.data)  # type: ignore[union-attr]
    sends = [o for o in out if isinstance(o, SendCrypto)]
    client.receive(Epoch.INITIAL, sends[0].data)
    _ee, *rest = split_messages(sends[1].data)
    stripped = m.encode_encrypted_extensions(m.EncryptedExtensions(alpn_protocol="h3"))
    expect_alert(
        AlertDescription.missing_extension,
        lambda: client.receive(Epoch.HANDSHAKE, stripped + b"".join(rest)),
    )


# --- authentication failures -------------------------------------------------------------------


def _tamper_message(msg_type: int, mutate) -> object:
    def tamper(sender: str, epoch: int, data: bytes) -> bytes:
        msgs = split_messages(data) if epoch == Epoch.HANDSHAKE else [data]
        return b"".join(mutate(raw) if raw[0] == msg_type else raw for raw in msgs)

    return tamper


def _flip_last(raw: bytes) -> bytes:
    return raw[:-1] + bytes([raw[-1] ^ 0x01])


def test_tampered_server_finished_is_decrypt_error() -> None:
    cc, sc = configs()
    tamper = _tamper_message(m.HandshakeType.FINISHED, _flip_last)
    expect_alert(
        AlertDescription.decrypt_error,
        lambda: handshake(cc, sc, tamper=lambda s, e, d: tamper(s, e, d) if s == "server" else d),
    )


def test_tampered_client_finished_is_decrypt_error_at_server() -> None:
    cc, sc = configs()
    tamper = _tamper_message(m.HandshakeType.FINISHED, _flip_last)
    rng = seeded_rng(5)
    client, server = (
        TlsSession(cc, is_client=True, rng=rng),
        TlsSession(sc, is_client=False, rng=rng),
    )
    with pytest.raises(TlsAlert) as info:
        run_pair(client, server, lambda s, e, d: tamper(s, e, d) if s == "client" else d)
    assert info.value.description == AlertDescription.decrypt_error
    assert client.handshake_complete and server.state is State.FAILED


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519", "rsa"])
def test_tampered_certificate_verify_is_decrypt_error(kind: str) -> None:
    cc, sc = configs(kind)
    tamper = _tamper_message(m.HandshakeType.CERTIFICATE_VERIFY, _flip_last)
    expect_alert(
        AlertDescription.decrypt_error,
        lambda: handshake(cc, sc, tamper=lambda s, e, d: tamper(s, e, d) if s == "server" else d),
    )


def test_server_signs_with_its_key_even_if_not_offered_and_strict_client_refuses() -> None:
    cc, sc = configs(
        "ed25519", client={"signature_algorithms": (SignatureScheme.ECDSA_SECP256R1_SHA256,)}
    )
    expect_alert(AlertDescription.illegal_parameter, lambda: handshake(cc, sc))


def test_certificate_verify_with_unoffered_scheme_is_illegal_parameter() -> None:
    cc, sc = configs("ed25519")
    client = TlsSession(cc, is_client=True, rng=seeded_rng(11))
    server = TlsSession(sc, is_client=False, rng=seeded_rng(12))
    (hello,) = client.start()
    flight = [o for o in server.receive(Epoch.INITIAL, hello.data) if isinstance(o, SendCrypto)]  # type: ignore[union-attr]
    # Same rng seed: same random and key share, but Ed25519 is no longer offered.
    strict = TlsConfig(
        **{**cc.__dict__, "signature_algorithms": (SignatureScheme.ECDSA_SECP256R1_SHA256,)}
    )
    picky = TlsSession(strict, is_client=True, rng=seeded_rng(11))
    picky.start()
    picky.receive(Epoch.INITIAL, flight[0].data)
    expect_alert(
        AlertDescription.illegal_parameter, lambda: picky.receive(Epoch.HANDSHAKE, flight[1].data)
    )


def test_unknown_ca_fails_the_handshake() -> None:
    cc, sc = configs(
        client={"peer_verifier": PkiVerifier(None, lambda: NOW_TS, ca_pem=make_pki().ca_pem)}
    )
    expect_alert(AlertDescription.unknown_ca, lambda: handshake(cc, sc))


# --- REALITY seams -------------------------------------------------------------------------------


def test_client_hello_hook_mutation_is_in_the_transcript() -> None:
    seen: dict[str, object] = {}

    def hook(raw: bytearray, *, random: bytes, key_shares) -> None:
        assert raw[0] == 1 and raw[38] == 32 and bytes(raw[6:38]) == random
        seen["shares"] = dict(key_shares)
        raw[39:71] = bytes(range(100, 132))

    cc, sc = configs(client={"client_hello_hook": hook, "legacy_session_id_length": 32})
    pair = handshake(cc, sc)
    assert pair.client.handshake_complete and pair.server.handshake_complete
    assert_matching_keys(pair)
    sealed = bytes(range(100, 132))
    assert pair.wire[0][2][39:71] == sealed
    assert (
        pair.client.client_hello is not None
        and pair.client.client_hello.legacy_session_id == sealed
    )
    assert pair.server.client_hello is not None and pair.server.client_hello.raw == pair.wire[0][2]
    assert (
        pair.server.server_hello is not None
        and pair.server.server_hello.legacy_session_id_echo == sealed
    )
    assert list(seen["shares"]) == [Group.X25519]  # type: ignore[call-overload]


def test_default_client_sends_empty_session_id() -> None:
    pair = handshake(*configs())
    assert pair.wire[0][2][38] == 0


def test_strict_server_rejects_legacy_session_id() -> None:
    cc, sc = configs(
        client={"legacy_session_id_length": 32}, server={"reject_legacy_session_id": True}
    )
    expect_alert(AlertDescription.illegal_parameter, lambda: handshake(cc, sc))


def test_certificate_source_gets_sni_and_ip_literals_are_not_sent() -> None:
    calls: list[object] = []
    der, key = LEAVES["ecdsa"]

    class Source:
        def credentials_for(self, *, server_name, signature_algorithms):
            calls.append(server_name)
            return StaticCertificateSource([der], key).credentials_for(
                server_name=server_name, signature_algorithms=signature_algorithms
            )

    handshake(*configs(server={"certificate_source": Source()}))
    handshake(
        *configs(client={"server_name": "127.0.0.1"}, server={"certificate_source": Source()})
    )
    assert calls == ["localhost", None]


def test_reality_like_certificate_with_hmac_signature_and_custom_verifier() -> None:
    """An Ed25519 self-signed leaf whose signature bytes were overwritten (REALITY §4.1)."""
    from tls_helpers import make_key

    pki = make_pki("ed25519")
    der, key = pki.leaf("ed25519")
    forged = der[:-64] + bytes(64)  # signatureValue is the last 64 bytes of an Ed25519 cert
    accepted: list[tuple[bytes, ...]] = []

    class HmacVerifier:
        def verify_chain(self, *, chain, server_name) -> None:
            accepted.append(tuple(chain))

    cc, sc = configs(
        "ed25519",
        client={"peer_verifier": HmacVerifier()},
        server={"certificate_source": StaticCertificateSource([forged], key)},
    )
    pair = handshake(cc, sc)
    assert pair.client.handshake_complete and accepted == [(forged,)]
    assert make_key  # imported helper is usable


# --- framing and message placement ---------------------------------------------------------------


def test_byte_by_byte_delivery_completes() -> None:
    cc, sc = configs()
    rng = seeded_rng(9)
    client, server = (
        TlsSession(cc, is_client=True, rng=rng),
        TlsSession(sc, is_client=False, rng=rng),
    )
    (hello,) = client.start()
    server_out = []
    for i in range(len(hello.data)):  # type: ignore[union-attr]
        server_out += server.receive(Epoch.INITIAL, hello.data[i : i + 1])  # type: ignore[union-attr]
    client_out = []
    for out in server_out:
        if isinstance(out, SendCrypto):
            for i in range(len(out.data)):
                client_out += client.receive(out.epoch, out.data[i : i + 1])
    fin = [o for o in client_out if isinstance(o, SendCrypto)]
    server.receive(Epoch.HANDSHAKE, fin[0].data)
    assert client.handshake_complete and server.handshake_complete


def test_data_crossing_a_key_change_is_unexpected_message() -> None:
    cc, sc = configs()
    expect_alert(
        AlertDescription.unexpected_message,
        lambda: handshake(
            cc,
            sc,
            tamper=lambda s, e, d: d + b"\x08\x00" if s == "server" and e == Epoch.INITIAL else d,
        ),
    )


def test_message_in_wrong_epoch_is_unexpected_message() -> None:
    cc, sc = configs()
    server = TlsSession(sc, is_client=False, rng=seeded_rng(1))
    (hello,) = TlsSession(cc, is_client=True, rng=seeded_rng(2)).start()
    expect_alert(
        AlertDescription.unexpected_message, lambda: server.receive(Epoch.HANDSHAKE, hello.data)
    )  # type: ignore[union-attr]
    server2 = TlsSession(sc, is_client=False, rng=seeded_rng(1))
    expect_alert(
        AlertDescription.unexpected_message, lambda: server2.receive(Epoch.ZERO_RTT, hello.data)
    )  # type: ignore[union-attr]


def test_key_update_is_forbidden_and_ticket_without_wall_clock_is_dropped() -> None:
    pair = handshake(*configs())
    ticket = m.encode_new_session_ticket(m.NewSessionTicket(7200, 1, b"n", b"ticket"))
    assert pair.client.receive(Epoch.ONE_RTT, ticket) == []  # no wall_clock: no ticket age
    key_update = bytes([m.HandshakeType.KEY_UPDATE, 0, 0, 1, 0])
    expect_alert(
        AlertDescription.unexpected_message, lambda: pair.client.receive(Epoch.ONE_RTT, key_update)
    )
    expect_alert(
        AlertDescription.unexpected_message, lambda: pair.server.receive(Epoch.ONE_RTT, key_update)
    )
    # A failed session keeps failing.
    expect_alert(
        AlertDescription.unexpected_message, lambda: pair.client.receive(Epoch.ONE_RTT, b"")
    )


def test_same_seed_gives_identical_wire_bytes() -> None:
    a = handshake(*configs("ed25519"), seed=42).wire
    b = handshake(*configs("ed25519"), seed=42).wire
    assert a == b


def test_insecure_verifier_accepts_self_signed() -> None:
    pki = make_pki("ecdsa")
    der, key = pki.leaf("ecdsa", ("other.example",))
    cc, sc = configs(
        client={"peer_verifier": InsecureVerifier()},
        server={"certificate_source": StaticCertificateSource([der], key)},
    )
    assert handshake(cc, sc).client.handshake_complete
