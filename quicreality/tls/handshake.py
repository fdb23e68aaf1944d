"""Sans-IO TLS 1.3 handshake for QUIC, client and server (RFC 8446, RFC 9001 §4).

Theory of operation: QUIC hands us the in-order CRYPTO bytes of one epoch at a time
(:meth:`TlsSession.receive`); we re-frame them into handshake messages, check that each one is
expected in the current state *and* epoch (a table), update the transcript and key schedule, and
return a list of outputs for the connection to perform: bytes to send in an epoch
(:class:`SendCrypto`), packet-protection secrets to install (:class:`InstallKeys`), key-log lines,
the peer's transport parameters and, once, :class:`HandshakeDone`. Any problem raises
:class:`TlsAlert`, which QUIC turns into CRYPTO_ERROR 0x100 + description (RFC 9001 §4.8).
Its reason becomes the CONNECTION_CLOSE reason phrase, so it is always a fixed phrase: Python
exception text (a parse error, a bug) stays local, in the ``quicreality.tls`` debug log.

Scope: full handshakes with (EC)DHE, HelloRetryRequest both ways, and resumption with PSK +
(EC)DHE and 0-RTT (:mod:`.resumption`): a server with a ticket store issues a NewSessionTicket
after the client Finished; the client turns it into a :class:`~.resumption.SessionTicket`
(:class:`NewTicket`) and may offer it, with early data, next time; :class:`EarlyDataOutcome`
tells both sides whether 0-RTT was accepted. No TLS records or ChangeCipherSpec (RFC 9001 §8.4),
no EndOfEarlyData (RFC 9001 §8.3); KeyUpdate is forbidden (RFC 9001 §6). A CertificateRequest is
answered with an empty Certificate.

Key timing: the client installs the 0-RTT key right after a ClientHello that offers early data,
handshake keys after the ServerHello and 1-RTT keys after the server Finished; the server installs
the 0-RTT key when it accepts early data, handshake keys after its ServerHello, the 1-RTT ENCRYPT key
after its Finished and the 1-RTT DECRYPT key only once the client Finished is verified, because it
must not process 1-RTT packets before the handshake completes (RFC 9001 §5.7).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..wire.buffer import BufferReadError
from . import messages as m
from .alerts import AlertDescription, TlsAlert
from .client import ClientHandshake
from .hkdf import CipherSuite
from .key_schedule import Transcript
from .outputs import (
    ClientHelloHook,
    Direction,
    Epoch,
    HandshakeDone,
    InstallKeys,
    KeyLogLine,
    PeerTransportParameters,
    SendCrypto,
    TlsConfig,
    TlsOutput,
)
from .server import ServerHandshake
from .session_core import State

log = logging.getLogger("quicreality.tls")

__all__ = [
    "ClientHelloHook",
    "Direction",
    "Epoch",
    "HandshakeDone",
    "InstallKeys",
    "KeyLogLine",
    "PeerTransportParameters",
    "SendCrypto",
    "State",
    "TlsAlert",
    "TlsConfig",
    "TlsOutput",
    "TlsSession",
]

H = m.HandshakeType
_Handler = Callable[["TlsSession", bytes, list[TlsOutput]], None]


class TlsSession(ClientHandshake, ServerHandshake):
    """One side of one TLS 1.3 handshake inside QUIC.

    Args:
        config: shared settings.
        is_client: which side we are.
        rng: ``rng(n) -> n bytes``; supplies randoms, session_id and (EC)DHE private keys.
    """

    # --- public surface -------------------------------------------------------------

    @property
    def is_client(self) -> bool:
        """True for the client side."""
        return self._is_client

    @property
    def state(self) -> State:
        """The current handshake state."""
        return self._state

    @property
    def handshake_complete(self) -> bool:
        """True once the peer's Finished was verified (server) or ours was sent (client)."""
        return self._state in (State.CLIENT_CONNECTED, State.SERVER_CONNECTED)

    @property
    def alpn_protocol(self) -> str | None:
        """The negotiated application protocol, once known."""
        return self._alpn_protocol

    @property
    def cipher_suite(self) -> CipherSuite | None:
        """The negotiated cipher suite, once known."""
        return self._cipher_suite

    @property
    def client_hello(self) -> m.ClientHello | None:
        """The ClientHello sent (client, after the hook) or received (server); ``raw`` is exact."""
        return self._client_hello

    @property
    def server_hello(self) -> m.ServerHello | None:
        """The ServerHello sent or received (not a HelloRetryRequest)."""
        return self._server_hello

    @property
    def peer_certificate_chain(self) -> tuple[bytes, ...]:
        """The server's DER chain as received (client side)."""
        return self._peer_chain

    def release_handshake_state(self) -> None:
        """Server, once connected: drop what only the handshake used (RFC 9001 §4.9 discards
        the Initial and Handshake keys; nothing of TLS reads these again). The transcript and
        its running hash, the key schedule (its secrets; the 1-RTT keys live in the QUIC packet
        protection, key updates derive from those), the key shares, the certificate flight and
        credentials, the parsed hellos, and the Initial/Handshake message readers. About 3 KB of
        an idle connection (docs/performance.md, "Idle connection memory").

        Afterwards :attr:`client_hello` and :attr:`server_hello` are None, and CRYPTO data in
        the Initial or Handshake epoch is refused like any epoch without a reader. Does nothing
        before ``SERVER_CONNECTED`` or on a client (which needs its key schedule for tickets).
        """
        if self._state != State.SERVER_CONNECTED:
            return
        self._transcript = Transcript()
        self._key_schedule = None
        self._key_shares = {}
        self._client_hello = self._server_hello = self._hello_retry = None
        self._credentials = None
        self._server_auth_flight = b""
        self._peer_application_settings = None
        for epoch in (Epoch.INITIAL, Epoch.HANDSHAKE):
            self._readers.pop(int(epoch), None)

    def start(self) -> list[TlsOutput]:
        """Client: build and return the first ClientHello. Server: nothing to do."""
        if not self._is_client:
            return []
        return self._client_start()

    def receive(self, epoch: int, data: bytes) -> list[TlsOutput]:
        """Feed in-order CRYPTO bytes of ``epoch``; return what to do.

        Raises:
            TlsAlert: on any protocol violation; the session is then dead and re-raises it.
        """
        if self._failure is not None:
            raise self._failure
        outputs: list[TlsOutput] = []
        try:
            self._receive(int(epoch), data, outputs)
        except TlsAlert as exc:
            self._fail(exc)
        except BufferReadError:
            log.debug("malformed handshake message", exc_info=True)
            self._fail(TlsAlert(AlertDescription.decode_error, "malformed message"))
        except Exception:  # a bug must still end the handshake cleanly
            log.debug("internal error in the TLS handshake", exc_info=True)
            self._fail(TlsAlert(AlertDescription.internal_error, "internal error"))
        return outputs

    # --- plumbing -------------------------------------------------------------------

    def _fail(self, alert: TlsAlert) -> None:
        if alert.__cause__ is not None:  # the local detail behind a fixed reason phrase
            log.debug("TLS handshake failed: %s (%r)", alert, alert.__cause__)
        self._state = State.FAILED
        self._failure = alert
        raise alert

    def _receive(self, epoch: int, data: bytes, outputs: list[TlsOutput]) -> None:
        reader = self._readers.get(epoch)
        if reader is None:
            raise TlsAlert(
                AlertDescription.unexpected_message, f"no TLS data allowed in epoch {epoch}"
            )
        if not data:
            return
        reader.feed(data)
        for msg_type, raw in reader.messages():
            expected_epoch, handlers = _TABLE[self._state]
            handler = handlers.get(msg_type)
            if handler is None or epoch != expected_epoch:
                raise TlsAlert(
                    AlertDescription.unexpected_message,
                    f"unexpected message {msg_type} in epoch {epoch} in state {self._state.value}",
                )
            handler(self, raw, outputs)
        if reader.buffered and _TABLE[self._state][0] != epoch:
            # RFC 9001 §4.1.3: a message must not span a change of encryption level.
            raise TlsAlert(AlertDescription.unexpected_message, "data left over at a key change")


#: State -> (epoch the next message must arrive in, {message type: handler}). Anything else,
#: including KeyUpdate (RFC 9001 §6) and EndOfEarlyData (RFC 9001 §8.3), is unexpected_message.
_TABLE: dict[State, tuple[Epoch, dict[int, _Handler]]] = {
    State.CLIENT_START: (Epoch.INITIAL, {}),
    State.CLIENT_WAIT_SERVER_HELLO: (
        Epoch.INITIAL,
        {H.SERVER_HELLO: TlsSession._client_handle_server_hello},
    ),
    State.CLIENT_WAIT_ENCRYPTED_EXTENSIONS: (
        Epoch.HANDSHAKE,
        {H.ENCRYPTED_EXTENSIONS: TlsSession._client_handle_encrypted_extensions},
    ),
    State.CLIENT_WAIT_CERTIFICATE_OR_REQUEST: (
        Epoch.HANDSHAKE,
        {
            H.CERTIFICATE: TlsSession._client_handle_certificate,
            H.COMPRESSED_CERTIFICATE: TlsSession._client_handle_compressed_certificate,
            H.CERTIFICATE_REQUEST: TlsSession._client_handle_certificate_request,
        },
    ),
    State.CLIENT_WAIT_CERTIFICATE: (
        Epoch.HANDSHAKE,
        {
            H.CERTIFICATE: TlsSession._client_handle_certificate,
            H.COMPRESSED_CERTIFICATE: TlsSession._client_handle_compressed_certificate,
        },
    ),
    State.CLIENT_WAIT_CERTIFICATE_VERIFY: (
        Epoch.HANDSHAKE,
        {H.CERTIFICATE_VERIFY: TlsSession._client_handle_certificate_verify},
    ),
    State.CLIENT_WAIT_FINISHED: (Epoch.HANDSHAKE, {H.FINISHED: TlsSession._client_handle_finished}),
    State.CLIENT_CONNECTED: (
        Epoch.ONE_RTT,
        {H.NEW_SESSION_TICKET: TlsSession._client_handle_new_session_ticket},
    ),
    State.SERVER_WAIT_CLIENT_HELLO: (
        Epoch.INITIAL,
        {H.CLIENT_HELLO: TlsSession._server_handle_client_hello},
    ),
    State.SERVER_WAIT_SECOND_CLIENT_HELLO: (
        Epoch.INITIAL,
        {H.CLIENT_HELLO: TlsSession._server_handle_client_hello},
    ),
    State.SERVER_WAIT_CLIENT_ENCRYPTED_EXTENSIONS: (
        Epoch.HANDSHAKE,
        {H.ENCRYPTED_EXTENSIONS: TlsSession._server_handle_client_encrypted_extensions},
    ),
    State.SERVER_WAIT_FINISHED: (Epoch.HANDSHAKE, {H.FINISHED: TlsSession._server_handle_finished}),
    State.SERVER_CONNECTED: (Epoch.ONE_RTT, {}),
    State.FAILED: (Epoch.INITIAL, {}),
}
