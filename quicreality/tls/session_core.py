"""State shared by the client and server halves of :class:`~quicreality.tls.handshake.TlsSession`."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TypeVar

from ..wire.buffer import Buffer
from . import messages as m
from .alerts import AlertDescription, TlsAlert
from .certificates import PublicKey, ServerCredentials
from .hkdf import CipherSuite
from .key_exchange import SUPPORTED_GROUPS, KeySharePrivateKey
from .key_schedule import KeySchedule, Transcript
from .outputs import Direction, Epoch, InstallKeys, KeyLogLine, TlsConfig, TlsOutput
from .resumption import SessionTicket


class State(Enum):
    """Handshake states (RFC 8446 Appendix A; a resumed client goes from EncryptedExtensions
    straight to waiting for Finished, and QUIC has no EndOfEarlyData state)."""

    CLIENT_START = "client_start"
    CLIENT_WAIT_SERVER_HELLO = "client_wait_sh"
    CLIENT_WAIT_ENCRYPTED_EXTENSIONS = "client_wait_ee"
    CLIENT_WAIT_CERTIFICATE_OR_REQUEST = "client_wait_cert_cr"
    CLIENT_WAIT_CERTIFICATE = "client_wait_cert"
    CLIENT_WAIT_CERTIFICATE_VERIFY = "client_wait_cv"
    CLIENT_WAIT_FINISHED = "client_wait_finished"
    SERVER_WAIT_CLIENT_HELLO = "server_wait_ch"
    SERVER_WAIT_SECOND_CLIENT_HELLO = "server_wait_ch2"
    SERVER_WAIT_CLIENT_ENCRYPTED_EXTENSIONS = "server_wait_client_ee"
    SERVER_WAIT_FINISHED = "server_wait_finished"
    CLIENT_CONNECTED = "client_connected"
    SERVER_CONNECTED = "server_connected"
    FAILED = "failed"


# Extensions a server may put in each message (RFC 8446 §4.2 table); the others we
# offered are illegal_parameter, those we did not offer are unsupported_extension.
_OFFERED_BY_CLIENT = frozenset(
    {
        m.ExtensionType.SERVER_NAME,
        m.ExtensionType.SUPPORTED_GROUPS,
        m.ExtensionType.SIGNATURE_ALGORITHMS,
        m.ExtensionType.ALPN,
        m.ExtensionType.QUIC_TRANSPORT_PARAMETERS,
        m.ExtensionType.PSK_KEY_EXCHANGE_MODES,
        m.ExtensionType.KEY_SHARE,
        m.ExtensionType.SUPPORTED_VERSIONS,
        m.ExtensionType.COOKIE,
        m.ExtensionType.PRE_SHARED_KEY,
        m.ExtensionType.EARLY_DATA,
    }
)


def check_unsolicited(extensions: m.Extensions, where: str) -> None:
    """Extensions left in ``other_extensions`` of a server message are never acceptable."""
    for ext_type, _ in extensions:
        if ext_type in _OFFERED_BY_CLIENT:
            raise TlsAlert(
                AlertDescription.illegal_parameter, f"extension {ext_type} not allowed in {where}"
            )
        raise TlsAlert(
            AlertDescription.unsupported_extension, f"unsolicited extension {ext_type} in {where}"
        )


_M = TypeVar("_M")


def parse(pull: Callable[[Buffer], _M], raw: bytes) -> _M:
    return pull(Buffer(data=raw))


class SessionCore:
    """Attributes and helpers common to both roles (not part of the public API)."""

    def __init__(self, config: TlsConfig, *, is_client: bool, rng: Callable[[int], bytes]) -> None:
        if is_client and config.peer_verifier is None:
            raise ValueError("a TLS client needs config.peer_verifier")
        if not is_client and config.certificate_source is None:
            raise ValueError("a TLS server needs config.certificate_source")
        if not 0 <= config.legacy_session_id_length <= 32:
            raise ValueError("legacy_session_id_length must be within 0..32")
        for group in (*config.groups, *config.server_preferred_groups):
            if group not in SUPPORTED_GROUPS:
                raise ValueError(f"unsupported group {group:#06x}")
        if is_client and not set(config.key_share_groups) <= set(config.groups):
            raise ValueError("key_share_groups must be a subset of groups")
        self._config = config
        self._rng = rng
        self._is_client = is_client
        self._state = State.CLIENT_START if is_client else State.SERVER_WAIT_CLIENT_HELLO
        self._failure: TlsAlert | None = None
        self._readers: dict[int, m.MessageReader] = {
            int(e): m.MessageReader() for e in (Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT)
        }
        self._transcript = Transcript()
        self._key_schedule: KeySchedule | None = None
        self._key_shares: dict[int, KeySharePrivateKey] = {}
        self._client_hello: m.ClientHello | None = None
        self._server_hello: m.ServerHello | None = None
        self._hello_retry: m.ServerHello | None = None
        self._cipher_suite: CipherSuite | None = None
        self._alpn_protocol: str | None = None
        self._peer_chain: tuple[bytes, ...] = ()
        self._peer_key: PublicKey | None = None
        self._certificate_request: m.CertificateRequest | None = None
        self._credentials: ServerCredentials | None = None
        self._signature_scheme: int | None = None
        self._peer_application_settings: bytes | None = None
        self._alps_negotiated = False
        # Resumption (RFC 8446 §2.2): the ticket offered (client), whether its PSK was taken,
        # whether 0-RTT was offered, and the server's transport parameters (to remember).
        self._psk_offered: SessionTicket | None = None
        self._psk_accepted = False
        self._early_data_offered = False
        self._peer_transport_parameters = b""
        self._psk_index = 0
        self._early_data_accepted = False
        self._server_auth_flight = b""

    def _ks(self) -> KeySchedule:
        assert self._key_schedule is not None
        return self._key_schedule

    def _hash(self) -> bytes:
        return self._transcript.digest(self._ks().hash_name)

    def _key_log(self, outputs: list[TlsOutput], label: str, secret: bytes) -> None:
        assert self._client_hello is not None
        outputs.append(KeyLogLine(label, self._client_hello.random, secret))

    def _install(
        self, outputs: list[TlsOutput], epoch: Epoch, direction: Direction, secret: bytes
    ) -> None:
        assert self._cipher_suite is not None
        outputs.append(InstallKeys(epoch, direction, self._cipher_suite, secret))
