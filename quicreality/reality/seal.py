"""The REALITY client: seal the token into the ClientHello, then judge the server's certificate.

:class:`RealityClientHook` plugs into the TLS layer twice, through its two seams:

* as ``TlsConfig.client_hello_hook`` (or the inner hook of a fingerprint's shaping hook) it seals
  the 32-byte token into its carrier (:class:`~quicreality.reality.token.Carrier`: the
  legacy_session_id as Xray does, or the GREASE ECH payload) right after the ClientHello is
  serialized and before it is hashed or sent (spec §2);
* as the ``PeerVerifier`` it accepts only a certificate whose signature is
  HMAC-SHA512(AuthKey, ed25519 public key) (spec §3.4). Anything else means the listener handed us
  to its fallback target (a real certificate) or that our key is wrong: the handshake ends with
  :data:`REAL_CERTIFICATE_REASON`. CertificateVerify is still checked by TLS with the leaf's
  Ed25519 key, which proves the server holds that key; the HMAC binds the key to AuthKey.

One hook serves one connection: it remembers the AuthKey of the ClientHello it sealed.
Use :func:`reality_client_configuration` to get a ready QUIC client configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import x25519

from ..quic.fingerprint import apply_fingerprint
from ..tls.alerts import AlertDescription, TlsAlert
from ..tls.constants import Group
from ..tls.key_exchange import HybridPrivateKey, KeySharePrivateKey
from .cert import certificate_matches
from .keys import SHORT_ID_LENGTH, ClientVersion
from .token import (
    RANDOM_OFFSET,
    SESSION_ID_LENGTH,
    Carrier,
    TokenPlaintext,
    derive_auth_key,
    seal_client_hello,
)

#: TLS group ids of X25519 and X25519MLKEM768 (RFC 8446 §4.2.7, draft-ietf-tls-ecdhe-mlkem).
GROUP_X25519 = int(Group.X25519)
GROUP_X25519MLKEM768 = int(Group.X25519MLKEM768)
#: Our REALITY client's defaults: Chrome's hello, the token in its GREASE ECH payload.
DEFAULT_FINGERPRINT = "chrome"
DEFAULT_CARRIER_FOR = {"chrome": Carrier.ECH, "minimal": Carrier.SESSION_ID}
#: The version bytes our client sends by default: Xray's default ``minClientVer`` (spec §1.2),
#: so a default Xray-style server accepts us.
DEFAULT_CLIENT_VERSION: ClientVersion = (26, 3, 27)
#: The error a client reports when the certificate fails the HMAC check (spec decision 8).
REAL_CERTIFICATE_REASON = (
    "server presented a real certificate: not a REALITY server, or the key is wrong"
)


class RealityClientHook:
    """Seals one ClientHello and verifies that connection's server certificate.

    Args:
        server_public_key: the server's static X25519 public key (32 bytes).
        short_id: 8 bytes (see :func:`~quicreality.reality.keys.parse_short_id`).
        wall_clock: ``() -> Unix seconds`` for the timestamp in the token.
        version: the client version x.y.z the server checks against its [min, max].
        carrier: where the token goes (the session_id, Xray's place, by default).
    """

    def __init__(
        self,
        server_public_key: bytes,
        short_id: bytes,
        *,
        wall_clock: Callable[[], float],
        version: ClientVersion = DEFAULT_CLIENT_VERSION,
        carrier: Carrier = Carrier.SESSION_ID,
    ) -> None:
        if len(server_public_key) != 32:
            raise ValueError("the server public key has 32 bytes")
        if len(short_id) != SHORT_ID_LENGTH:
            raise ValueError("the short ID has 8 bytes (zero-padded on the right)")
        if len(version) != 3 or not all(0 <= v <= 255 for v in version):
            raise ValueError("version is three numbers within 0..255")
        self._server_public = x25519.X25519PublicKey.from_public_bytes(server_public_key)
        self._short_id = short_id
        self._wall_clock = wall_clock
        self._version = version
        self.carrier = carrier
        self.auth_key: bytes | None = None
        #: The server chain that passed :meth:`verify_chain` (empty until then).
        self.verified_chain: tuple[bytes, ...] = ()
        #: The plaintext sealed into the last ClientHello (for logs and tests).
        self.plaintext: TokenPlaintext | None = None

    # --- TlsConfig.client_hello_hook ------------------------------------------------------

    def __call__(
        self, raw: bytearray, *, random: bytes, key_shares: Mapping[int, KeySharePrivateKey]
    ) -> None:
        """Seal ``raw`` (the ClientHello handshake message) in place (spec §2.5).

        The key comes from the standalone X25519 share, else from the X25519 half of the
        X25519MLKEM768 share (spec §2.1, the server's search order).

        Raises:
            ValueError: the hello lacks the carrier, or has no X25519 key to derive the key from.
        """
        if bytes(raw[RANDOM_OFFSET : RANDOM_OFFSET + 32]) != random:
            raise ValueError("the ClientHello random is not at bytes 6..37")
        private: Any = key_shares.get(GROUP_X25519)
        if private is None and isinstance(key_shares.get(GROUP_X25519MLKEM768), HybridPrivateKey):
            private = key_shares[GROUP_X25519MLKEM768].x25519  # type: ignore[union-attr]
        if not isinstance(private, x25519.X25519PrivateKey):
            raise ValueError("REALITY needs an X25519 key share (spec §2.1)")
        shared = private.exchange(self._server_public)
        auth_key = derive_auth_key(shared, random)
        plaintext = TokenPlaintext(
            version=self._version,
            unix_time=int(self._wall_clock()) & 0xFFFFFFFF,
            short_id=self._short_id,
        )
        seal_client_hello(raw, auth_key, plaintext, self.carrier)
        self.auth_key = auth_key
        self.plaintext = plaintext

    # --- PeerVerifier ---------------------------------------------------------------------

    def verify_chain(self, *, chain: Sequence[bytes], server_name: str | None) -> None:
        """Accept only the HMAC-signed REALITY certificate (spec §3.4).

        Raises:
            TlsAlert: bad_certificate with :data:`REAL_CERTIFICATE_REASON` otherwise.
        """
        if self.auth_key is None:
            raise TlsAlert(AlertDescription.internal_error, "REALITY hook never sealed a hello")
        if not chain or not certificate_matches(chain[0], self.auth_key):
            raise TlsAlert(AlertDescription.bad_certificate, REAL_CERTIFICATE_REASON)
        self.verified_chain = tuple(chain)


def reality_client_configuration(
    base: Any,
    *,
    server_public_key: bytes,
    short_id: bytes,
    server_name: str | None,
    version: ClientVersion = DEFAULT_CLIENT_VERSION,
    wall_clock: Callable[[], float] | None = None,
    fingerprint: str = DEFAULT_FINGERPRINT,
    carrier: Carrier | str | None = None,
) -> Any:
    """A copy of the QUIC client configuration ``base`` set up for REALITY (one per connection).

    Applies the ``fingerprint`` (Chrome's hello by default, see
    :func:`~quicreality.quic.fingerprint.apply_fingerprint`) with the sealing hook inside it, sets
    the verifier, the SNI, and a 32-byte legacy_session_id for the ``session_id`` carrier. The
    carrier defaults to ``ech`` with the chrome fingerprint and ``session_id`` with minimal (whose
    hello has no ECH extension). The hook's timestamp comes from ``wall_clock`` (default:
    ``base.wall_clock``).

    Raises:
        ValueError: an unknown fingerprint or carrier, or ``ech`` without the chrome fingerprint.
    """
    chosen = Carrier(carrier) if carrier is not None else DEFAULT_CARRIER_FOR.get(fingerprint)
    if chosen is None:
        raise ValueError(f"unknown fingerprint {fingerprint!r}")
    if chosen is Carrier.ECH and fingerprint != "chrome":
        raise ValueError("the ech carrier needs the chrome fingerprint (its GREASE ECH extension)")
    hook = RealityClientHook(
        server_public_key,
        short_id,
        wall_clock=wall_clock or base.wall_clock,
        version=version,
        carrier=chosen,
    )
    return apply_fingerprint(base, fingerprint, inner=hook).derived(
        is_client=True,
        peer_verifier=hook,
        legacy_session_id_length=SESSION_ID_LENGTH if chosen is Carrier.SESSION_ID else 0,
        server_name=server_name,
    )
