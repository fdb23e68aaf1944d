"""The Chrome-shaped hello (``--fingerprint chrome``) against the measured Chromium 156 profile, and
the TLS features it makes us handle: compressed certificates, ALPS, GREASE ECH, the retry hello."""

from __future__ import annotations

import pytest
from hello_features import CHROME_PROFILE, first_client_hello, hello_features
from test_tls_handshake import assert_matching_keys, configs, expect_alert, handshake
from tls_helpers import seeded_rng

from quicreality.analysis.fingerprint_compare import compare, profile
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.quic.fingerprint import apply_fingerprint, chrome_transport_parameters
from quicreality.quic.transport_params import (
    PARAM_ACK_DELAY_EXPONENT,
    PARAM_ACTIVE_CONNECTION_ID_LIMIT,
    PARAM_MAX_ACK_DELAY,
    encode_parameter_list,
    is_reserved_parameter,
    is_reserved_version,
    pull_parameter_list,
    pull_version_information,
)
from quicreality.tls import chrome_hello
from quicreality.tls import messages as m
from quicreality.tls.alerts import AlertDescription, TlsAlert
from quicreality.tls.certificates import InsecureVerifier
from quicreality.tls.chrome_hello import ChromeHello, randbelow, shuffled
from quicreality.tls.compression import (
    CompressedCertificate,
    encode_compressed_certificate,
    pull_compressed_certificate,
)
from quicreality.tls.constants import CertificateCompressionAlgorithm
from quicreality.tls.ech import ech_payload_span, pull_ech_outer
from quicreality.tls.handshake import Epoch
from quicreality.tls.messages import Group

#: The chrome fingerprint brings the chrome Initial layout and its empty source connection ID,
#: which initial_source_connection_id repeats (quic/initial_layout.py).
SCID_LENGTH = 0
PREFIXES = ("client.tls.", "client.quic.tp", "client.ja4", "client.order_permuted.")
BROTLI = CertificateCompressionAlgorithm.BROTLI


def quic_client(seed: int, fingerprint: str = "chrome") -> QuicConfiguration:
    cfg = QuicConfiguration(is_client=True, rng=seeded_rng(seed), wall_clock=lambda: 1.78e9,
                            peer_verifier=InsecureVerifier(), server_name="localhost")
    return apply_fingerprint(cfg, fingerprint)


def sent_hello(config: QuicConfiguration) -> bytes:
    conn = QuicConnection(configuration=config)
    conn.connect(("127.0.0.1", 4433), now=0.0)
    return first_client_hello([d for d, _ in conn.datagrams_to_send(now=0.0)])


def chrome_hellos(n: int = 8) -> list[bytes]:
    return [sent_hello(quic_client(seed)) for seed in range(n)]


def test_chrome_hello_matches_the_chromium_156_profile() -> None:
    ours = profile([hello_features(h) for h in chrome_hellos()], label="ours, chrome")
    diffs = compare(CHROME_PROFILE, ours, prefixes=PREFIXES)
    assert diffs == [], [d.to_json() for d in diffs]
    stable = CHROME_PROFILE.features["client.tls.handshake_len_stable"]
    assert ours.features["client.tls.handshake_len_stable"] == stable + SCID_LENGTH
    assert ours.features["client.quic.tp.initial_source_connection_id.len"] == SCID_LENGTH
    assert ours.features["client.ja4"] == CHROME_PROFILE.features["client.ja4"]
    assert ours.features["client.order_permuted.extensions"] is True
    assert ours.features["client.order_permuted.tp_ids"] is True


def test_minimal_hello_is_far_from_the_profile_and_unchanged_by_the_fingerprint_call() -> None:
    plain = QuicConfiguration(is_client=True, rng=seeded_rng(1), wall_clock=lambda: 1.78e9,
                              peer_verifier=InsecureVerifier(), server_name="localhost")
    assert sent_hello(quic_client(1, "minimal")) == sent_hello(plain)
    f = hello_features(sent_hello(plain))
    assert f["client.tls.extension_count"] == 8 and f["client.tls.key_share_groups"] == ["0x001d"]
    assert len(compare(CHROME_PROFILE, profile([f]), prefixes=PREFIXES)) > 10


def test_extension_and_parameter_orders_differ_per_connection_but_not_per_seed() -> None:
    orders = {tuple(hello_features(h)["client.tls.extensions"]) for h in chrome_hellos(6)}
    assert len(orders) == 6
    assert sent_hello(quic_client(3)) == sent_hello(quic_client(3))  # all randomness is rng's


def test_ech_grease_payload_lengths_and_enc_look_like_boringssl() -> None:
    lengths = set()
    for raw in chrome_hellos(24):
        span = ech_payload_span(raw)
        assert span is not None
        lengths.add(span[1] - span[0])
        ech = next(pull_ech_outer(d) for t, d in m.pull_client_hello(m.Buffer(data=raw))
                   .other_extensions if t == m.ExtensionType.ENCRYPTED_CLIENT_HELLO)
        assert ech is not None and len(ech.enc) == 32 and ech.enc[31] < 0x80  # an X25519 key
    assert lengths <= {144, 176, 208, 240} and len(lengths) >= 3


# --- transport parameters ---------------------------------------------------------------------


def _varint(n: int) -> bytes:
    from quicreality.wire.buffer import encode_uint_var
    return encode_uint_var(n)


def test_chrome_parameters_drop_only_what_the_rfc_defaults_cover() -> None:
    ours = encode_parameter_list([(0x1, _varint(30000)), (PARAM_ACK_DELAY_EXPONENT, _varint(3)),
                                  (PARAM_MAX_ACK_DELAY, _varint(25)),
                                  (PARAM_ACTIVE_CONNECTION_ID_LIMIT, _varint(4)), (0xF, b"")])
    out = dict(pull_parameter_list(chrome_transport_parameters(ours, seeded_rng(1))))
    assert {PARAM_ACK_DELAY_EXPONENT, PARAM_MAX_ACK_DELAY,
            PARAM_ACTIVE_CONNECTION_ID_LIMIT}.isdisjoint(out)
    assert out[0x1] == _varint(30000) and out[0xF] == b"" and out[0x3128] == b"ORIG"
    info = pull_version_information(out[0x11])
    assert info.chosen_version == 1 and sorted(map(is_reserved_version,
                                                   info.available_versions)) == [False, True]
    grease = [pid for pid in out if is_reserved_parameter(pid)]
    assert len(grease) == 1 and len(out[grease[0]]) <= 15


def test_chrome_parameters_keep_values_the_defaults_would_misstate() -> None:
    ours = encode_parameter_list([(PARAM_ACK_DELAY_EXPONENT, _varint(5)),
                                  (PARAM_MAX_ACK_DELAY, _varint(40))])
    out = dict(pull_parameter_list(chrome_transport_parameters(ours, seeded_rng(1))))
    assert out[PARAM_ACK_DELAY_EXPONENT] == _varint(5) and out[PARAM_MAX_ACK_DELAY] == _varint(40)


def test_randbelow_and_shuffled_are_uniform_enough() -> None:
    rng = seeded_rng(9)
    counts = [0] * 5
    for _ in range(5000):
        counts[randbelow(5, rng)] += 1
    assert min(counts) > 900
    assert sorted(shuffled(list(range(12)), rng)) == list(range(12))


# --- TLS behaviour with the shaped hello ---------------------------------------------------------


def chrome_tls(seed: int = 1, **server: object):  # type: ignore[no-untyped-def]
    """A TLS-level pair: client with Chrome's groups and the shaping hook, our default server."""
    cc, sc = configs(client={"groups": chrome_hello.GROUPS,
                             "key_share_groups": chrome_hello.KEY_SHARE_GROUPS,
                             "client_hello_hook": ChromeHello(seeded_rng(seed))},
                     server=dict(server))
    return cc, sc


def test_our_server_answers_a_chrome_hello_with_the_hybrid_and_ignores_ech_and_alps() -> None:
    pair = handshake(*chrome_tls())
    assert pair.client.handshake_complete and pair.server.handshake_complete
    assert_matching_keys(pair)
    sh = pair.client.server_hello
    assert sh is not None and sh.key_share is not None and sh.key_share.group == Group.X25519MLKEM768
    ee = m.pull_encrypted_extensions(m.Buffer(data=next(
        d for s, e, d in pair.wire if s == "server" and e == Epoch.HANDSHAKE)))
    assert ee.other_extensions == ()  # no ECH retry_configs, no ALPS, no trust anchors
    # The server saw the shaped hello: ECH GREASE, ALPS, brotli, trust anchors among the others.
    ch = pair.server.client_hello
    assert ch is not None and {t for t, _ in ch.other_extensions} == {
        0xFE0D, 0x44CD, 0x1B, 0xCA34}


def test_retry_hello_keeps_the_first_hellos_order_ech_and_parameters() -> None:
    cc, sc = chrome_tls(groups=(Group.SECP256R1,), server_preferred_groups=())
    pair = handshake(cc, sc)
    assert pair.client.handshake_complete and pair.server.handshake_complete
    initial = [d for s, e, d in pair.wire if e == Epoch.INITIAL]
    first, second = (m.pull_client_hello(m.Buffer(data=initial[i])) for i in (0, 2))
    order1 = [t for t, _ in _extensions(initial[0])]
    order2 = [t for t, _ in _extensions(initial[2]) if t != m.ExtensionType.COOKIE]
    assert order1 == order2
    assert dict(_extensions(initial[0]))[0xFE0D] == dict(_extensions(initial[2]))[0xFE0D]
    assert first.quic_transport_parameters == second.quic_transport_parameters
    assert [e.group for e in second.key_share or ()] == [Group.SECP256R1]
    assert second.cookie is not None and second.random == first.random


def _extensions(raw: bytes) -> list[tuple[int, bytes]]:
    from quicreality.tls.ech import extension_spans
    return [(t, raw[a:b]) for t, a, b in extension_spans(raw) or ()]


def test_client_decompresses_a_brotli_certificate() -> None:
    pair = handshake(*chrome_tls(certificate_compression=(BROTLI,)))
    assert pair.client.handshake_complete and pair.server.handshake_complete
    assert_matching_keys(pair)
    flight = next(d for s, e, d in pair.wire if s == "server" and e == Epoch.HANDSHAKE)
    types = _message_types(flight)
    assert m.HandshakeType.COMPRESSED_CERTIFICATE in types and m.HandshakeType.CERTIFICATE not in types
    assert pair.client.peer_certificate_chain  # the chain came out of the brotli stream


def test_server_does_not_compress_for_a_client_that_did_not_ask() -> None:
    cc, sc = configs(server={"certificate_compression": (BROTLI,)})
    pair = handshake(cc, sc)
    flight = next(d for s, e, d in pair.wire if s == "server" and e == Epoch.HANDSHAKE)
    assert m.HandshakeType.CERTIFICATE in _message_types(flight)


def _messages(flight: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(flight):
        n = 4 + int.from_bytes(flight[i + 1:i + 4], "big")
        out.append(flight[i:i + n])
        i += n
    return out


def _message_types(flight: bytes) -> list[int]:
    return [msg[0] for msg in _messages(flight)]


def _rewrite_compressed(change):  # type: ignore[no-untyped-def]
    def tamper(sender: str, epoch: int, data: bytes) -> bytes:
        if sender != "server" or epoch != Epoch.HANDSHAKE:
            return data
        msgs = _messages(data)
        for i, msg in enumerate(msgs):
            if msg[0] == m.HandshakeType.COMPRESSED_CERTIFICATE:
                msgs[i] = encode_compressed_certificate(change(pull_compressed_certificate(msg)))
        return b"".join(msgs)
    return tamper


@pytest.mark.parametrize(("change", "alert"), [
    (lambda c: CompressedCertificate(c.algorithm, c.uncompressed_length + 1,
                                     c.compressed_certificate_message),
     AlertDescription.bad_certificate),
    (lambda c: CompressedCertificate(c.algorithm, c.uncompressed_length,
                                     c.compressed_certificate_message[:-3]),
     AlertDescription.bad_certificate),
    (lambda c: CompressedCertificate(CertificateCompressionAlgorithm.ZLIB, c.uncompressed_length,
                                     c.compressed_certificate_message),
     AlertDescription.illegal_parameter),
])
def test_client_refuses_a_compressed_certificate_that_lies(change, alert) -> None:  # type: ignore[no-untyped-def]
    cc, sc = chrome_tls(certificate_compression=(BROTLI,))
    expect_alert(alert, lambda: handshake(cc, sc, tamper=_rewrite_compressed(change)))


def test_unsolicited_compressed_certificate_is_unexpected() -> None:
    def tamper(sender: str, epoch: int, data: bytes) -> bytes:
        if sender != "server" or epoch != Epoch.HANDSHAKE:
            return data
        from quicreality.tls.compression import compress_certificate
        return b"".join(compress_certificate(BROTLI, msg).raw if msg[0] == 11 else msg
                        for msg in _messages(data))
    cc, sc = configs()
    expect_alert(AlertDescription.unexpected_message, lambda: handshake(cc, sc, tamper=tamper))


def test_alps_negotiated_by_the_server_gets_our_client_encrypted_extensions() -> None:
    pair = handshake(*chrome_tls(server_alps=True))
    assert pair.client.handshake_complete and pair.server.handshake_complete
    assert_matching_keys(pair)
    client_flight = next(d for s, e, d in pair.wire if s == "client" and e == Epoch.HANDSHAKE)
    assert _message_types(client_flight) == [m.HandshakeType.ENCRYPTED_EXTENSIONS,
                                             m.HandshakeType.FINISHED]
    cee = m.pull_encrypted_extensions(m.Buffer(data=_messages(client_flight)[0]))
    assert cee.other_extensions == ((m.ExtensionType.APPLICATION_SETTINGS, b"\x04\x00"),)


def test_server_alps_is_not_sent_to_a_client_that_did_not_offer_it() -> None:
    cc, sc = configs(server={"server_alps": True})
    pair = handshake(cc, sc)
    client_flight = next(d for s, e, d in pair.wire if s == "client" and e == Epoch.HANDSHAKE)
    assert _message_types(client_flight) == [m.HandshakeType.FINISHED]


def _add_to_ee(ext: tuple[int, bytes]):  # type: ignore[no-untyped-def]
    def tamper(sender: str, epoch: int, data: bytes) -> bytes:
        if sender != "server" or epoch != Epoch.HANDSHAKE:
            return data
        msgs = _messages(data)
        ee = m.pull_encrypted_extensions(m.Buffer(data=msgs[0]))
        msgs[0] = m.encode_encrypted_extensions(m.EncryptedExtensions(
            alpn_protocol=ee.alpn_protocol, quic_transport_parameters=ee.quic_transport_parameters,
            other_extensions=(ext,)))
        return b"".join(msgs)
    return tamper


def test_ech_retry_configs_are_ignored_only_after_our_grease_ech() -> None:
    """The client passes an ECH answer in EncryptedExtensions only when it sent GREASE ECH: the
    tampered EE then fails later, at the server Finished (decrypt_error), not at the EE."""
    ech = (m.ExtensionType.ENCRYPTED_CLIENT_HELLO, b"\x00\x10" + bytes(16))
    cc, sc = chrome_tls()
    expect_alert(AlertDescription.decrypt_error, lambda: handshake(cc, sc, tamper=_add_to_ee(ech)))
    cc, sc = configs()
    expect_alert(AlertDescription.unsupported_extension,
                 lambda: handshake(cc, sc, tamper=_add_to_ee(ech)))


def test_chrome_signature_list_without_ed25519_still_accepts_an_ed25519_server() -> None:
    """REALITY's certificate is Ed25519 (decision 5), which Chrome does not offer."""
    cc, sc = configs("ed25519")
    cc = type(cc)(**{**cc.__dict__, "groups": chrome_hello.GROUPS,
                     "key_share_groups": chrome_hello.KEY_SHARE_GROUPS,
                     "client_hello_hook": ChromeHello(seeded_rng(2))})
    pair = handshake(cc, sc)
    ch = pair.server.client_hello
    assert ch is not None and 0x0807 not in (ch.signature_algorithms or ())
    assert pair.client.handshake_complete


def test_hook_that_breaks_the_hello_is_a_local_error() -> None:
    def broken(raw: bytearray, **_: object) -> None:
        raw[:] = raw[:10]
    cc, sc = configs(client={"client_hello_hook": broken})
    with pytest.raises(ValueError, match="invalid ClientHello"):
        handshake(cc, sc)
    assert TlsAlert  # imported for expect_alert's users


def test_chrome_fingerprint_sends_not_ect_as_chromium_does() -> None:
    # Chromium 156's datagrams carry Not-ECT (the fingerprint fixtures' IP headers); an ECT(0)
    # mark, and the ACK_ECN it makes a server send, would set our Chrome-shaped client apart
    base = QuicConfiguration(is_client=True, server_name="example.com", rng=seeded_rng(7))
    assert base.ecn
    assert apply_fingerprint(base, "chrome").ecn is False
    assert apply_fingerprint(base, "minimal").ecn is True
