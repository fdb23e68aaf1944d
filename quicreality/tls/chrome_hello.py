"""A ClientHello shaped like Chromium 156's QUIC hello (``--fingerprint chrome``).

:class:`ChromeHello` is a :class:`~quicreality.tls.outputs.ClientHelloHook`: it takes the hello
our client encoded from its configuration (the random, session_id, cipher suites, SNI, groups,
key shares, ALPN and transport parameters it will really use) and re-encodes it with Chromium's
extension set, values and per-connection order, as measured in ``docs/data/chrome156-hello.json``
(``docs/camouflage.md``). Then it runs the ``inner`` hook, e.g. REALITY's sealing, on the result.

The 12 extensions, in an order shuffled per connection (BoringSSL's
``SSL_set_permute_extensions``, which Chrome enables; no TLS GREASE in Chrome's QUIC hello):

===========  ==============================================================================
``0000``     server_name: from the config (omitted for IP literals, as by our client)
``000a``     supported_groups: from the config (Chrome: 11ec 001d 0017 0018)
``000d``     signature_algorithms: Chrome's nine (:data:`SIGNATURE_ALGORITHMS`)
``0010``     ALPN: from the config (``h3``)
``001b``     compress_certificate: brotli (RFC 8879; our client decompresses)
``002b``     supported_versions: TLS 1.3
``002d``     psk_key_exchange_modes: psk_dhe_ke
``0033``     key_share: from the config (Chrome: X25519MLKEM768 then X25519)
``0039``     quic_transport_parameters: the config's, rewritten by ``transport_parameters``
``44cd``     ALPS (application_settings): the ALPN list (``h3``)
``ca34``     trust_anchors: Chrome's 186 bytes, verbatim (:data:`TRUST_ANCHORS`)
``fe0d``     GREASE ECH: HKDF-SHA256/AES-128-GCM, random config_id, an X25519 ``enc``, a random
             payload of 32·k + 16 bytes, k in 4..7 (144/176/208/240, BoringSSL's rule)
===========  ==============================================================================

After a HelloRetryRequest, :meth:`ChromeHello.retry_hello` keeps the first hello's extension
order, its ECH extension (byte for byte, draft-ietf-tls-esni §6.2.1) and its transport
parameters; only key_share changes and the cookie is added.

Randomness comes from ``rng`` (the connection's), never from a global source.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from . import messages as m
from .compression import encode_compress_certificate
from .constants import CertificateCompressionAlgorithm
from .ech import AES_128_GCM_TAG, encode_ech_outer, extension_spans, grease_ech
from .key_exchange import KeySharePrivateKey
from .outputs import ClientHelloHook

E = m.ExtensionType
T = TypeVar("T")

#: Chrome 156's cipher suites, groups and key-share groups (docs/data/chrome156-hello.json).
CIPHER_SUITES: tuple[int, ...] = (0x1301, 0x1302, 0x1303)
GROUPS: tuple[int, ...] = (
    m.Group.X25519MLKEM768, m.Group.X25519, m.Group.SECP256R1, m.Group.SECP384R1,
)
KEY_SHARE_GROUPS: tuple[int, ...] = (m.Group.X25519MLKEM768, m.Group.X25519)
#: Chrome 156's signature_algorithms, in its order.
SIGNATURE_ALGORITHMS: tuple[int, ...] = (
    0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601, 0x0201,
)
#: The trust_anchors (0xca34) body Chromium 156 sent in all 24 measured connections
#: (tests/data/fingerprint/chromium-*.pcap): a u16-length list of u8-length trust anchor IDs.
TRUST_ANCHORS = bytes.fromhex(
    "00b80582df1302010582df1302060582df13020d0582df13020e0582df13020f0582df1302120582df130213"
    "0582df13021408839a648c9b2d010708839a648c9b2d010808839a648c9b2d010908839a648c9b2d010a0883"
    "9a648c9b2d010b08839a648c9b2d010c08839a648c9b2d010d08839a648c9b2d011208839a648c9b2d011304"
    "d679090104d679090404d679090504d679090604d679090704d679090804d679090a04d679090b04d679090c"
    "04d679090d04d679090f"
)
#: GREASE ECH payload lengths: 32·k + AEAD overhead for k in 4..7 (BoringSSL).
ECH_PAYLOAD_LENGTHS: tuple[int, ...] = tuple(32 * k + AES_128_GCM_TAG for k in range(4, 8))
#: The extensions a Chrome hello has (the cookie only in a second hello).
EXTENSIONS: tuple[int, ...] = (
    E.SERVER_NAME, E.SUPPORTED_GROUPS, E.SIGNATURE_ALGORITHMS, E.ALPN, E.COMPRESS_CERTIFICATE,
    E.SUPPORTED_VERSIONS, E.PSK_KEY_EXCHANGE_MODES, E.KEY_SHARE, E.QUIC_TRANSPORT_PARAMETERS,
    E.APPLICATION_SETTINGS, E.TRUST_ANCHORS, E.ENCRYPTED_CLIENT_HELLO,
)


def randbelow(n: int, rng: Callable[[int], bytes]) -> int:
    """A uniform integer in ``[0, n)`` from ``rng`` bytes (rejection sampling, no modulo bias)."""
    if n <= 0:
        raise ValueError("n must be positive")
    if n == 1:
        return 0
    bits = (n - 1).bit_length()
    size = (bits + 7) // 8
    while True:
        value = int.from_bytes(rng(size), "big") & ((1 << bits) - 1)
        if value < n:
            return value


def shuffled(items: Sequence[T], rng: Callable[[int], bytes]) -> list[T]:
    """A uniformly random permutation of ``items`` (Fisher-Yates with :func:`randbelow`)."""
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = randbelow(i + 1, rng)
        out[i], out[j] = out[j], out[i]
    return out


def _u16_vector(values: Sequence[int]) -> bytes:
    """``uint16 values<..2^16-1>`` (RFC 8446 §3.4)."""
    return (2 * len(values)).to_bytes(2, "big") + b"".join(v.to_bytes(2, "big") for v in values)


#: The extension bodies that are the same in every Chrome hello, encoded once.
_SIGNATURE_ALGORITHMS_BODY = _u16_vector(SIGNATURE_ALGORITHMS)
_COMPRESS_CERTIFICATE_BODY = encode_compress_certificate((CertificateCompressionAlgorithm.BROTLI,))


def _split(raw: bytes | bytearray) -> tuple[bytes, dict[int, bytes]]:
    """The fixed fields (legacy_version .. compression methods) and the extension bodies of an
    encoded ClientHello (our own encoder's output, or a hello we sent)."""
    spans = extension_spans(raw)
    if not spans or raw[0] != m.HandshakeType.CLIENT_HELLO:
        raise ValueError("the ClientHello to shape is malformed")
    fixed = bytes(raw[4 : spans[0][1] - 6])  # before the extensions' u16 length and first header
    return fixed, {t: bytes(raw[a:b]) for t, a, b in spans}


def _encode(fixed: bytes, extensions: list[tuple[int, bytes]]) -> bytes:
    """A ClientHello message: the fixed fields, then exactly ``extensions`` in that order."""
    block = b"".join(t.to_bytes(2, "big") + len(d).to_bytes(2, "big") + d for t, d in extensions)
    body = fixed + len(block).to_bytes(2, "big") + block
    return bytes([m.HandshakeType.CLIENT_HELLO]) + len(body).to_bytes(3, "big") + body


class ChromeHello:
    """Shapes a ClientHello like Chromium 156's QUIC hello (see the module docstring).

    It keeps no per-connection state (a second hello is derived from the first as sent), so one
    instance may serve several connections.

    Args:
        rng: ``rng(n) -> n bytes`` for the order, the GREASE ECH and ``transport_parameters``.
        transport_parameters: rewrites our quic_transport_parameters body into Chrome's shape
            (:func:`quicreality.quic.fingerprint.chrome_transport_parameters`), given ``rng``;
            None keeps it as it is.
        inner: a hook run on the shaped hello (REALITY's seal); its ``retry_hello`` too.
    """

    def __init__(
        self,
        rng: Callable[[int], bytes],
        *,
        transport_parameters: Callable[[bytes, Callable[[int], bytes]], bytes] | None = None,
        inner: ClientHelloHook | None = None,
    ) -> None:
        self._rng = rng
        self._transport_parameters = transport_parameters
        self.inner = inner

    def __call__(
        self, raw: bytearray, *, random: bytes, key_shares: Mapping[int, KeySharePrivateKey]
    ) -> None:
        """Re-encode ``raw`` in Chrome's shape, then run the inner hook."""
        raw[:] = self.shape(bytes(raw))
        if self.inner is not None:
            self.inner(raw, random=random, key_shares=key_shares)

    def shape(self, encoded: bytes) -> bytes:
        """The Chrome-shaped version of our encoded first ClientHello."""
        fixed, ours = _split(encoded)
        rng = self._rng
        alpn = ours.get(E.ALPN)
        tp = ours.get(E.QUIC_TRANSPORT_PARAMETERS)
        if tp is not None and self._transport_parameters is not None:
            tp = self._transport_parameters(tp, rng)
        payload_length = ECH_PAYLOAD_LENGTHS[randbelow(len(ECH_PAYLOAD_LENGTHS), rng)]
        bodies: dict[int, bytes | None] = {
            E.SERVER_NAME: ours.get(E.SERVER_NAME),
            E.SUPPORTED_GROUPS: ours.get(E.SUPPORTED_GROUPS),
            E.SIGNATURE_ALGORITHMS: _SIGNATURE_ALGORITHMS_BODY,
            E.ALPN: alpn,
            E.COMPRESS_CERTIFICATE: _COMPRESS_CERTIFICATE_BODY,
            E.SUPPORTED_VERSIONS: ours.get(E.SUPPORTED_VERSIONS),
            E.PSK_KEY_EXCHANGE_MODES: ours.get(E.PSK_KEY_EXCHANGE_MODES),
            E.KEY_SHARE: ours.get(E.KEY_SHARE),
            E.QUIC_TRANSPORT_PARAMETERS: tp,
            # ALPS names the ALPN protocols, in the same ProtocolNameList format.
            E.APPLICATION_SETTINGS: alpn,
            E.TRUST_ANCHORS: TRUST_ANCHORS,
            E.ENCRYPTED_CLIENT_HELLO: encode_ech_outer(grease_ech(rng, payload_length)),
        }
        order = shuffled(EXTENSIONS, rng)
        return _encode(fixed, [(t, b) for t in order if (b := bodies[t]) is not None])

    def retry_hello(self, raw: bytearray, *, first: bytes) -> None:
        """Shape the second ClientHello like the first one as sent (RFC 8446 §4.1.2)."""
        fixed, new = _split(raw)
        spans = extension_spans(first)
        if spans is None:
            raise ValueError("the first ClientHello is malformed")
        extensions = [
            (t, new[E.KEY_SHARE] if t == E.KEY_SHARE else bytes(first[a:b])) for t, a, b in spans
        ]
        cookie = new.get(E.COOKIE)
        if cookie is not None:
            extensions.insert(randbelow(len(extensions) + 1, self._rng), (E.COOKIE, cookie))
        raw[:] = _encode(fixed, extensions)
        retry = getattr(self.inner, "retry_hello", None)
        if retry is not None:
            retry(raw, first=first)
