"""Our TlsSession against aioquic's TLS (a different implementation), both directions, in memory."""

from __future__ import annotations

import aioquic.buffer as aq_buffer
import aioquic.tls as tls
import pytest
from cryptography import x509
from tls_helpers import NOW_TS, make_pki, seeded_rng

from quicreality.tls.certificates import PkiVerifier, StaticCertificateSource
from quicreality.tls.handshake import (
    Direction,
    Epoch,
    HandshakeDone,
    InstallKeys,
    PeerTransportParameters,
    SendCrypto,
    TlsConfig,
    TlsSession,
)

PKI = make_pki("ecdsa")
# aioquic checks validity against the real clock: make this leaf valid for decades.
LEAF, LEAF_KEY = PKI.leaf("ecdsa", days=365 * 40)
EPOCHS = (Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT)


class AioquicSide:
    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.secrets: dict[tuple[int, int], bytes] = {}
        ctx.update_traffic_key_cb = self._on_key
        ctx.handshake_extensions = [(tls.ExtensionType.QUIC_TRANSPORT_PARAMETERS, b"aioquic-tp")]

    def _on_key(self, direction, epoch, cipher_suite, secret) -> None:
        self.secrets[(epoch.value, direction.value)] = secret

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        bufs = {tls.Epoch(e): aq_buffer.Buffer(capacity=16384) for e in EPOCHS}
        self.ctx.handle_message(data, bufs)
        return [(e.value, b.data) for e, b in bufs.items() if b.data]


def _ours(is_client: bool, **kw) -> TlsSession:
    if is_client:
        config = TlsConfig(
            alpn_protocols=("h3",),
            server_name="localhost",
            peer_verifier=PkiVerifier(None, lambda: NOW_TS, ca_pem=PKI.ca_pem),
            transport_parameters=b"our-tp",
            **kw,
        )
    else:
        config = TlsConfig(
            alpn_protocols=("h3",),
            certificate_source=StaticCertificateSource([LEAF], LEAF_KEY),
            transport_parameters=b"our-tp",
            **kw,
        )
    return TlsSession(config, is_client=is_client, rng=seeded_rng(7))


def _our_secrets(outputs) -> dict[tuple[int, int], bytes]:
    return {
        (int(o.epoch), int(o.direction)): o.secret for o in outputs if isinstance(o, InstallKeys)
    }


def _check_keys(ours: dict, theirs: dict) -> None:
    for epoch in (Epoch.HANDSHAKE, Epoch.ONE_RTT):
        assert ours[(epoch, Direction.ENCRYPT)] == theirs[(epoch, Direction.DECRYPT)]
        assert ours[(epoch, Direction.DECRYPT)] == theirs[(epoch, Direction.ENCRYPT)]


@pytest.mark.parametrize("legacy_session_id_length", [0, 32])
@pytest.mark.parametrize("suite", [0x1301, 0x1302, 0x1303])
def test_our_client_against_aioquic_server(suite: int, legacy_session_id_length: int) -> None:
    server = AioquicSide(tls.Context(is_client=False, alpn_protocols=["h3"]))
    server.ctx.certificate = x509.load_der_x509_certificate(LEAF)
    server.ctx.certificate_private_key = LEAF_KEY
    client = _ours(True, cipher_suites=(suite,), legacy_session_id_length=legacy_session_id_length)
    out = client.start()
    ours = list(out)
    pending = [(o.epoch, o.data) for o in out if isinstance(o, SendCrypto)]
    while pending:
        sent = b"".join(d for _, d in pending)
        replies = server.feed(sent)
        pending = []
        for epoch, data in replies:
            new = client.receive(epoch, data)
            ours += new
            pending += [(o.epoch, o.data) for o in new if isinstance(o, SendCrypto)]
    assert client.handshake_complete
    assert server.ctx.state == tls.State.SERVER_POST_HANDSHAKE
    assert [o for o in ours if isinstance(o, HandshakeDone)] == [HandshakeDone("h3", suite)]  # type: ignore[arg-type]
    assert [o.data for o in ours if isinstance(o, PeerTransportParameters)] == [b"aioquic-tp"]
    assert server.ctx.received_extensions == [
        (tls.ExtensionType.QUIC_TRANSPORT_PARAMETERS, b"our-tp")
    ]
    _check_keys(_our_secrets(ours), server.secrets)


@pytest.mark.parametrize("suite", [0x1301, 0x1302, 0x1303])
def test_aioquic_client_against_our_server(suite: int) -> None:
    client = AioquicSide(
        tls.Context(
            is_client=True,
            alpn_protocols=["h3"],
            server_name="localhost",
            cadata=PKI.ca_pem,
            cipher_suites=[tls.CipherSuite(suite)],
        )
    )
    server = _ours(False)
    ours: list = []
    messages = client.feed(b"")
    while messages:
        replies: list[tuple[int, bytes]] = []
        for epoch, data in messages:
            new = server.receive(epoch, data)
            ours += new
            replies += [(o.epoch, o.data) for o in new if isinstance(o, SendCrypto)]
        messages = []
        for _epoch, data in replies:
            messages += client.feed(data)
    assert server.handshake_complete
    assert client.ctx.state == tls.State.CLIENT_POST_HANDSHAKE
    assert client.ctx.alpn_negotiated == "h3"
    assert [o.data for o in ours if isinstance(o, PeerTransportParameters)] == [b"aioquic-tp"]
    _check_keys(_our_secrets(ours), client.secrets)
