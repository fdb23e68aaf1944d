"""Fuzz targets for TLS handshake messages, in both roles.

Both take ``[records...]`` (:func:`~quicreality.fuzz.harness.split_records`), each record
``[epoch][bytes]``: in-order CRYPTO data of that epoch, fed to a fresh
:class:`~quicreality.tls.handshake.TlsSession`. The only documented error is
:class:`~quicreality.tls.alerts.TlsAlert` (the session turns parse errors into decode_error).

* ``tls-server``: the server's view of a ClientHello (and later a client Finished).
* ``tls-client``: the client's view of the server's flight. The client's randomness is the same
  for every input, so a recorded server flight (:func:`handshake_records`) is valid for it and
  the fuzzer starts past the ServerHello: EncryptedExtensions, Certificate, CertificateVerify and
  Finished are parsed and checked for real.
"""

from __future__ import annotations

from collections.abc import Callable

from ..quic.transport_params import QuicTransportParameters, encode_transport_parameters
from ..tls.alerts import TlsAlert
from ..tls.certificates import InsecureVerifier
from ..tls.handshake import SendCrypto, TlsConfig, TlsSession
from .harness import Target, join_records, split_records
from .pair import WALL, credentials, seeded_rng

__all__ = ["TARGETS", "handshake_records"]


def _transport_parameters(server: bool) -> bytes:
    params = QuicTransportParameters(
        initial_max_data=1 << 20, initial_max_stream_data_bidi_local=1 << 18,
        initial_source_connection_id=b"\x05" * 8,
        original_destination_connection_id=b"\x06" * 8 if server else None,
    )
    return encode_transport_parameters(params)


def _session(is_client: bool) -> TlsSession:
    if is_client:
        config = TlsConfig(alpn_protocols=("h3",), server_name="localhost",
                           transport_parameters=_transport_parameters(False),
                           peer_verifier=InsecureVerifier(), wall_clock=lambda: WALL)
        return TlsSession(config, is_client=True, rng=seeded_rng(7))
    config = TlsConfig(alpn_protocols=("h3",), transport_parameters=_transport_parameters(True),
                       certificate_source=credentials(), wall_clock=lambda: WALL)
    return TlsSession(config, is_client=False, rng=seeded_rng(8))


def handshake_records() -> tuple[bytes, bytes]:
    """A complete handshake between the two fuzzed sessions: (what the client sent, what the
    server sent), each as records (the seeds of ``tls-server`` and ``tls-client``)."""
    client, server = _session(True), _session(False)
    from_client: list[bytes] = []
    from_server: list[bytes] = []
    pending = [o for o in client.start() if isinstance(o, SendCrypto)]
    while pending:
        nxt: list[SendCrypto] = []
        for out in pending:
            from_client.append(bytes([out.epoch]) + out.data)
            for reply in server.receive(out.epoch, out.data):
                if isinstance(reply, SendCrypto):
                    from_server.append(bytes([reply.epoch]) + reply.data)
                    nxt.extend(o for o in client.receive(reply.epoch, reply.data)
                               if isinstance(o, SendCrypto))
        pending = nxt
    if not (client.handshake_complete and server.handshake_complete):
        raise RuntimeError("the recorded handshake did not complete")
    return join_records(from_client), join_records(from_server)


def _role(is_client: bool) -> Callable[[], Callable[[bytes], None]]:
    def setup() -> Callable[[bytes], None]:
        def one(data: bytes) -> None:
            session = _session(is_client)
            if is_client:
                session.start()
            for record in split_records(data, limit=16):
                if record:
                    session.receive(record[0] & 3, record[1:])
        return one
    return setup


TARGETS = (
    Target("tls-server", "TLS handshake messages as the server sees them (ClientHello, Finished)",
           _role(False), (TlsAlert,)),
    Target("tls-client", "TLS handshake messages as the client sees them (ServerHello..Finished)",
           _role(True), (TlsAlert,)),
)
