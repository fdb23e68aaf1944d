"""Message codecs: hypothesis round-trips, strict parsing, and fuzzing of TlsSession.receive."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tls_helpers import seeded_rng

from quicreality.tls import messages as m
from quicreality.tls.alerts import AlertDescription, TlsAlert
from quicreality.tls.certificates import InsecureVerifier, StaticCertificateSource
from quicreality.tls.handshake import Epoch, SendCrypto, TlsConfig, TlsSession
from quicreality.wire.buffer import Buffer

u16 = st.integers(0, 0xFFFF)
known = {int(e) for e in m.ExtensionType}
other_ext_types = u16.filter(lambda t: t not in known)
other_extensions = st.lists(
    st.tuples(other_ext_types, st.binary(max_size=20)), max_size=3, unique_by=lambda e: e[0]
).map(tuple)
alpn_name = st.binary(min_size=1, max_size=12).map(lambda b: b.decode("latin-1"))
u16_list = st.lists(u16, min_size=1, max_size=6).map(tuple)
key_share = st.builds(m.KeyShareEntry, u16, st.binary(min_size=1, max_size=70))
hostname = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z]{2,5}){0,2}", fullmatch=True)

client_hellos = st.builds(
    m.ClientHello,
    random=st.binary(min_size=32, max_size=32),
    legacy_session_id=st.binary(max_size=32),
    cipher_suites=u16_list,
    legacy_compression_methods=st.binary(min_size=1, max_size=3),
    server_name=st.none() | hostname,
    supported_groups=st.none() | u16_list,
    signature_algorithms=st.none() | u16_list,
    alpn_protocols=st.none() | st.lists(alpn_name, min_size=1, max_size=3).map(tuple),
    key_share=st.none() | st.lists(key_share, max_size=3).map(tuple),
    supported_versions=st.none() | u16_list,
    psk_key_exchange_modes=st.none()
    | st.lists(st.integers(0, 255), min_size=1, max_size=3).map(tuple),
    cookie=st.none() | st.binary(min_size=1, max_size=40),
    quic_transport_parameters=st.none() | st.binary(max_size=60),
    other_extensions=other_extensions,
)


def _server_hello(
    is_hrr: bool, random: bytes, sid: bytes, suite: int, version, share, group, cookie, others
):
    if is_hrr:
        return m.ServerHello(
            m.HELLO_RETRY_REQUEST_RANDOM,
            sid,
            suite,
            supported_version=version,
            selected_group=group,
            cookie=cookie,
            other_extensions=others,
        )
    return m.ServerHello(
        random, sid, suite, supported_version=version, key_share=share, other_extensions=others
    )


server_hellos = st.builds(
    _server_hello,
    st.booleans(),
    st.binary(min_size=32, max_size=32).filter(lambda r: r != m.HELLO_RETRY_REQUEST_RANDOM),
    st.binary(max_size=32),
    u16,
    st.none() | u16,
    st.none() | key_share,
    st.none() | u16,
    st.none() | st.binary(min_size=1, max_size=40),
    other_extensions,
)
encrypted_extensions = st.builds(
    m.EncryptedExtensions,
    alpn_protocol=st.none() | alpn_name,
    quic_transport_parameters=st.none() | st.binary(max_size=60),
    server_name_acknowledged=st.booleans(),
    supported_groups=st.none() | u16_list,
    other_extensions=other_extensions,
)
certificates = st.builds(
    m.Certificate,
    st.binary(max_size=8),
    st.lists(
        st.builds(m.CertificateEntry, st.binary(min_size=1, max_size=300), other_extensions),
        max_size=3,
    ).map(tuple),
)

CODECS = [
    (client_hellos, m.encode_client_hello, m.pull_client_hello),
    (server_hellos, m.encode_server_hello, m.pull_server_hello),
    (encrypted_extensions, m.encode_encrypted_extensions, m.pull_encrypted_extensions),
    (certificates, m.encode_certificate, m.pull_certificate),
    (
        st.builds(m.CertificateVerify, u16, st.binary(max_size=300)),
        m.encode_certificate_verify,
        m.pull_certificate_verify,
    ),
    (
        st.builds(m.Finished, st.binary(min_size=32, max_size=48)),
        m.encode_finished,
        m.pull_finished,
    ),
    (
        st.builds(
            m.NewSessionTicket,
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
            st.binary(max_size=8),
            st.binary(min_size=1, max_size=50),
            other_extensions,
        ),
        m.encode_new_session_ticket,
        m.pull_new_session_ticket,
    ),
    (
        st.builds(
            m.CertificateRequest, st.binary(max_size=8), st.none() | u16_list, other_extensions
        ),
        m.encode_certificate_request,
        m.pull_certificate_request,
    ),
]


@pytest.mark.parametrize("strategy,encode,pull", CODECS, ids=lambda x: getattr(x, "__name__", ""))
def test_message_codecs_round_trip(strategy, encode, pull) -> None:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(strategy)
    def check(msg) -> None:
        data = encode(msg)
        buf = Buffer(data=data + b"tail")
        parsed = pull(buf)
        assert parsed == msg
        assert parsed.raw == data and buf.tell() == len(data)
        assert encode(parsed) == data
        # Every strict prefix is a decode_error; a shortened body with a consistent header parses
        # or is refused with an alert, never anything else.
        for cut in {1, 4, len(data) // 2, len(data) - 1}:
            if 0 < cut < len(data):
                with pytest.raises(TlsAlert) as info:
                    pull(Buffer(data=data[:cut]))
                assert info.value.description == AlertDescription.decode_error
                if cut >= 4:
                    try:
                        pull(Buffer(data=data[:1] + (cut - 4).to_bytes(3, "big") + data[4:cut]))
                    except TlsAlert:
                        pass

    check()


def test_duplicate_extension_is_illegal_parameter() -> None:
    ee = m.encode_encrypted_extensions(
        m.EncryptedExtensions(other_extensions=((0x1234, b""), (0x1235, b"")))
    )
    dup = ee.replace(b"\x12\x35", b"\x12\x34")
    with pytest.raises(TlsAlert) as info:
        m.pull_encrypted_extensions(Buffer(data=dup))
    assert info.value.description == AlertDescription.illegal_parameter


def test_unknown_extensions_are_kept_raw_in_order() -> None:
    ch = m.ClientHello(
        b"\x01" * 32, b"", (0x1301,), other_extensions=((0xFAFA, b""), (0x4469, b"\x00\x03\x02h2"))
    )
    parsed = m.pull_client_hello(Buffer(data=m.encode_client_hello(ch)))
    assert parsed.other_extensions == ((0xFAFA, b""), (0x4469, b"\x00\x03\x02h2"))


def test_message_reader_splits_and_joins() -> None:
    a = m.encode_finished(m.Finished(b"a" * 32))
    b = m.encode_certificate_verify(m.CertificateVerify(0x0807, b"s" * 64))
    reader = m.MessageReader()
    reader.feed(a[:3])
    assert list(reader.messages()) == []
    reader.feed(a[3:] + b[:10])
    assert list(reader.messages()) == [(20, a)]
    assert reader.buffered == 10
    reader.feed(b[10:])
    assert list(reader.messages()) == [(15, b)] and reader.buffered == 0
    reader.feed(b"\x01\xff\xff\xff")
    with pytest.raises(TlsAlert):
        list(reader.messages())


# --- fuzzing receive ---------------------------------------------------------------------------

SERVER_CONFIG: TlsConfig | None = None


def _server() -> TlsSession:
    global SERVER_CONFIG
    if SERVER_CONFIG is None:
        from tls_helpers import make_pki

        pki = make_pki("ed25519")
        der, key = pki.leaf("ed25519")
        SERVER_CONFIG = TlsConfig(
            alpn_protocols=("h3",), certificate_source=StaticCertificateSource([der], key)
        )
    return TlsSession(SERVER_CONFIG, is_client=False, rng=seeded_rng(0))


def _client() -> TlsSession:
    client = TlsSession(
        TlsConfig(
            alpn_protocols=("h3",), server_name="localhost", peer_verifier=InsecureVerifier()
        ),
        is_client=True,
        rng=seeded_rng(0),
    )
    client.start()
    return client


def _valid_flights() -> tuple[bytes, bytes, bytes]:
    client, server = _client(), _server()
    assert client.client_hello is not None
    out = [
        o
        for o in server.receive(Epoch.INITIAL, client.client_hello.raw)
        if isinstance(o, SendCrypto)
    ]
    return client.client_hello.raw, out[0].data, out[1].data


CH, SH, FLIGHT = _valid_flights()


def _only_tls_alerts(session: TlsSession, chunks: list[tuple[int, bytes]]) -> None:
    try:
        for epoch, data in chunks:
            session.receive(epoch, data)
    except TlsAlert as exc:
        assert exc.description != AlertDescription.internal_error, str(exc)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 1, 2, 3]), st.binary(max_size=200)), max_size=4))
def test_random_bytes_never_raise_anything_but_tls_alert(chunks) -> None:
    _only_tls_alerts(_server(), chunks)
    _only_tls_alerts(_client(), chunks)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["ch", "sh", "flight"]), st.data())
def test_mutated_valid_messages_only_raise_tls_alert(which: str, data) -> None:
    original = {"ch": CH, "sh": SH, "flight": FLIGHT}[which]
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(mutated) - 1))
        mutated[pos] = data.draw(st.integers(0, 255))
    if which == "ch":
        _only_tls_alerts(_server(), [(Epoch.INITIAL, bytes(mutated))])
    elif which == "sh":
        _only_tls_alerts(_client(), [(Epoch.INITIAL, bytes(mutated))])
    else:
        _only_tls_alerts(_client(), [(Epoch.INITIAL, SH), (Epoch.HANDSHAKE, bytes(mutated))])
