"""The client half of the TLS 1.3 handshake (RFC 8446 §4, Appendix A.1)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
from types import MappingProxyType

from ..wire.buffer import Buffer
from . import messages as m
from .alerts import AlertDescription, TlsAlert
from .certificates import certificate_verify_content, leaf_public_key, verify
from .compression import (
    decompress_certificate,
    pull_compress_certificate,
    pull_compressed_certificate,
)
from .hkdf import CipherSuite
from .key_exchange import generate_private_key, key_exchange, public_bytes
from .key_schedule import (
    CLIENT_EARLY_TRAFFIC_SECRET,
    CLIENT_HANDSHAKE_TRAFFIC_SECRET,
    CLIENT_TRAFFIC_SECRET_0,
    SERVER_HANDSHAKE_TRAFFIC_SECRET,
    SERVER_TRAFFIC_SECRET_0,
    KeySchedule,
    hash_name_for_suite,
)
from .outputs import (
    Direction,
    EarlyDataOutcome,
    Epoch,
    HandshakeDone,
    InstallKeys,
    NewTicket,
    PeerTransportParameters,
    SendCrypto,
    TlsOutput,
)
from .resumption import (
    MAX_TICKET_LIFETIME,
    PskOffer,
    SessionTicket,
    encode_psk_offer,
    ticket_max_early_data,
)
from .session_core import SessionCore, State, check_unsolicited, parse


class ClientHandshake(SessionCore):
    """Client-side message handlers; dispatched by the table in :mod:`.handshake`."""

    def _client_start(self) -> list[TlsOutput]:
        """Build the first ClientHello, run the hook, and send it."""
        if self._state is not State.CLIENT_START:
            raise RuntimeError("start() called twice")
        config = self._config
        self._key_shares = {g: generate_private_key(g, self._rng) for g in config.key_share_groups}
        random = self._rng(32)
        session_id = (
            self._rng(config.legacy_session_id_length) if config.legacy_session_id_length else b""
        )
        hello = self._build_client_hello(random, session_id, None)
        raw = bytearray(m.encode_client_hello(hello))
        ticket = self._usable_ticket()
        if ticket is not None:
            raw = bytearray(self._offer_psk(hello, ticket, b"", early=self._wants_early_data()))
        if config.client_hello_hook is not None:
            config.client_hello_hook(
                raw, random=random, key_shares=MappingProxyType(dict(self._key_shares))
            )
        data = bytes(raw)
        try:
            self._client_hello = m.pull_client_hello(Buffer(data=data))
        except TlsAlert as exc:
            raise ValueError(f"client_hello_hook produced an invalid ClientHello: {exc}") from exc
        self._transcript.add(data)
        self._state = State.CLIENT_WAIT_SERVER_HELLO
        outputs: list[TlsOutput] = [SendCrypto(Epoch.INITIAL, data)]
        if ticket is not None and self._early_data_offered:
            # RFC 8446 §7.1: client_early_traffic_secret over the ClientHello; 0-RTT may go now.
            early = KeySchedule(ticket.cipher_suite, ticket.psk)
            secret = early.client_early_traffic_secret(hashlib.new(early.hash_name, data).digest())
            outputs.append(InstallKeys(Epoch.ZERO_RTT, Direction.ENCRYPT,
                                       CipherSuite(ticket.cipher_suite), secret))
            self._key_log(outputs, CLIENT_EARLY_TRAFFIC_SECRET, secret)
        return outputs

    def _usable_ticket(self) -> SessionTicket | None:
        """The configured ticket, if it may be offered for this hello (RFC 8446 §4.2.11)."""
        config = self._config
        ticket = config.session_ticket
        if ticket is None or config.client_hello_hook is not None or config.wall_clock is None:
            return None
        if not ticket.usable(config.wall_clock(), config.server_name) or \
                ticket.cipher_suite not in config.cipher_suites or \
                (ticket.alpn_protocol is not None and
                 ticket.alpn_protocol not in config.alpn_protocols):
            return None
        return ticket

    def _wants_early_data(self) -> bool:
        ticket = self._config.session_ticket
        return self._config.early_data and ticket is not None and ticket.max_early_data_size > 0

    def _offer_psk(self, hello: m.ClientHello, ticket: SessionTicket, prefix: bytes, *,
                   early: bool) -> bytes:
        """``hello`` with early_data (optional) and pre_shared_key last, its binder computed over
        ``prefix`` (the transcript before this hello) and the truncated hello (RFC 8446 §4.2.11.2)."""
        config = self._config
        assert config.wall_clock is not None
        schedule = KeySchedule(ticket.cipher_suite, ticket.psk)
        offer = PskOffer(((ticket.ticket, ticket.obfuscated_age(config.wall_clock())),),
                         (bytes(schedule.hash_len),))
        extra: m.Extensions = ((m.ExtensionType.EARLY_DATA, b""),) if early else ()
        extra += ((m.ExtensionType.PRE_SHARED_KEY, encode_psk_offer(offer)),)
        raw = m.encode_client_hello(
            dataclasses.replace(hello, other_extensions=hello.other_extensions + extra))
        truncated = raw[:-offer.binders_size]
        binder = schedule.binder(hashlib.new(schedule.hash_name, prefix + truncated).digest())
        self._psk_offered = ticket
        self._early_data_offered = early
        return raw[:-len(binder)] + binder

    def _build_client_hello(
        self, random: bytes, session_id: bytes, cookie: bytes | None
    ) -> m.ClientHello:
        config = self._config
        sni = config.server_name
        if sni is not None:
            try:
                ipaddress.ip_address(sni)
                sni = None  # RFC 6066 §3: no IP literals in server_name
            except ValueError:
                pass
        return m.ClientHello(
            random=random,
            legacy_session_id=session_id,
            cipher_suites=tuple(config.cipher_suites),
            server_name=sni,
            supported_groups=tuple(config.groups),
            signature_algorithms=tuple(config.signature_algorithms),
            alpn_protocols=tuple(config.alpn_protocols) or None,
            quic_transport_parameters=config.transport_parameters,
            psk_key_exchange_modes=(m.PSK_DHE_KE,),
            key_share=tuple(
                m.KeyShareEntry(g, public_bytes(k)) for g, k in self._key_shares.items()
            ),
            supported_versions=(m.TLS_VERSION_1_3,),
            cookie=cookie,
        )

    def _client_handle_server_hello(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        sh = parse(m.pull_server_hello, raw)
        ch = self._client_hello
        assert ch is not None
        if sh.supported_version is None:
            raise TlsAlert(AlertDescription.protocol_version, "server did not select TLS 1.3")
        if sh.supported_version != m.TLS_VERSION_1_3 or sh.legacy_version != m.TLS_VERSION_1_2:
            raise TlsAlert(AlertDescription.illegal_parameter, "bad version in ServerHello")
        if sh.legacy_session_id_echo != ch.legacy_session_id:
            raise TlsAlert(AlertDescription.illegal_parameter, "legacy_session_id_echo mismatch")
        if (
            sh.cipher_suite not in ch.cipher_suites
            or sh.cipher_suite not in CipherSuite._value2member_map_
        ):
            raise TlsAlert(
                AlertDescription.illegal_parameter, "server chose a cipher suite we did not offer"
            )
        if sh.legacy_compression_method != 0:
            raise TlsAlert(AlertDescription.illegal_parameter, "non-null compression")
        others = sh.other_extensions
        selected = None
        if self._psk_offered is not None:
            selected = next((d for t, d in others if t == m.ExtensionType.PRE_SHARED_KEY), None)
            others = tuple(e for e in others if e[0] != m.ExtensionType.PRE_SHARED_KEY)
        check_unsolicited(others, "ServerHello")
        if sh.is_hello_retry_request:
            self._client_handle_hello_retry(sh, raw, outputs)
            return
        hrr = self._hello_retry
        if hrr is not None and sh.cipher_suite != hrr.cipher_suite:
            raise TlsAlert(
                AlertDescription.illegal_parameter, "cipher suite changed after HelloRetryRequest"
            )
        if sh.key_share is None:
            raise TlsAlert(AlertDescription.missing_extension, "ServerHello without key_share")
        private = self._key_shares.get(sh.key_share.group)
        if private is None:
            raise TlsAlert(
                AlertDescription.illegal_parameter, "key_share for a group we sent no share for"
            )
        shared = key_exchange(private, sh.key_share.group, sh.key_share.key_exchange)
        psk = None
        if selected is not None:
            ticket = self._psk_offered
            assert ticket is not None
            if selected != b"\x00\x00" or hash_name_for_suite(ticket.cipher_suite) != \
                    hash_name_for_suite(sh.cipher_suite):
                raise TlsAlert(AlertDescription.illegal_parameter, "bad selected PSK")
            psk = ticket.psk
            self._psk_accepted = True
        self._server_hello = sh
        self._cipher_suite = CipherSuite(sh.cipher_suite)
        self._key_schedule = ks = KeySchedule(sh.cipher_suite, psk)
        self._transcript.add(raw)
        ks.handshake(shared, self._hash())
        self._install(
            outputs, Epoch.HANDSHAKE, Direction.DECRYPT, ks.server_handshake_traffic_secret
        )
        self._install(
            outputs, Epoch.HANDSHAKE, Direction.ENCRYPT, ks.client_handshake_traffic_secret
        )
        self._key_log(outputs, CLIENT_HANDSHAKE_TRAFFIC_SECRET, ks.client_handshake_traffic_secret)
        self._key_log(outputs, SERVER_HANDSHAKE_TRAFFIC_SECRET, ks.server_handshake_traffic_secret)
        self._state = State.CLIENT_WAIT_ENCRYPTED_EXTENSIONS

    def _client_handle_hello_retry(
        self, hrr: m.ServerHello, raw: bytes, outputs: list[TlsOutput]
    ) -> None:
        """RFC 8446 §4.1.4: answer with a second ClientHello."""
        if self._hello_retry is not None:
            raise TlsAlert(AlertDescription.unexpected_message, "second HelloRetryRequest")
        group = hrr.selected_group
        if group is None and hrr.cookie is None:
            raise TlsAlert(
                AlertDescription.illegal_parameter, "HelloRetryRequest would change nothing"
            )
        if group is not None and (group not in self._config.groups or group in self._key_shares):
            raise TlsAlert(
                AlertDescription.illegal_parameter, "HelloRetryRequest selected a bad group"
            )
        ch1 = self._client_hello
        assert ch1 is not None
        self._hello_retry = hrr
        self._transcript.restart_after_hello_retry(hash_name_for_suite(hrr.cipher_suite))
        self._transcript.add(raw)
        if group is not None:
            self._key_shares = {group: generate_private_key(group, self._rng)}
        hello2 = self._build_client_hello(ch1.random, ch1.legacy_session_id, hrr.cookie)
        data = m.encode_client_hello(hello2)
        ticket = self._psk_offered
        if self._early_data_offered:  # RFC 8446 §4.1.2: no early_data after a retry
            outputs.append(EarlyDataOutcome(False, False, "HelloRetryRequest"))
        self._psk_offered = None
        self._early_data_offered = False
        if ticket is not None and \
                hash_name_for_suite(ticket.cipher_suite) == hash_name_for_suite(hrr.cipher_suite):
            data = self._offer_psk(hello2, ticket, self._transcript.data, early=False)
        retry_hook = getattr(self._config.client_hello_hook, "retry_hello", None)
        if retry_hook is not None:
            raw2 = bytearray(data)
            retry_hook(raw2, first=ch1.raw)
            data = bytes(raw2)
        self._client_hello = parse(m.pull_client_hello, data)
        self._transcript.add(data)
        outputs.append(SendCrypto(Epoch.INITIAL, data))

    def _client_handle_encrypted_extensions(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        ee = parse(m.pull_encrypted_extensions, raw)
        check_unsolicited(self._take_offered_ee_extensions(ee), "EncryptedExtensions")
        offered = tuple(self._config.alpn_protocols)
        if ee.alpn_protocol is not None:
            if ee.alpn_protocol not in offered:
                raise TlsAlert(
                    AlertDescription.illegal_parameter, "server selected an ALPN we did not offer"
                )
        elif offered:
            raise TlsAlert(AlertDescription.no_application_protocol, "server selected no ALPN")
        self._alpn_protocol = ee.alpn_protocol
        early_accepted = any(t == m.ExtensionType.EARLY_DATA for t, _ in ee.other_extensions)
        if early_accepted and not self._psk_accepted:
            raise TlsAlert(AlertDescription.illegal_parameter, "early_data without the PSK")
        if self._early_data_offered:
            outputs.append(EarlyDataOutcome(
                early_accepted, self._psk_accepted,
                "accepted" if early_accepted else "server declined early data"))
        self._peer_transport_parameters = ee.quic_transport_parameters or b""
        if self._peer_application_settings is not None and (
            ee.alpn_protocol is None or ee.alpn_protocol not in self._offered_alps()
        ):
            # draft-vvv-tls-alps §4: settings only for a negotiated protocol we listed.
            raise TlsAlert(AlertDescription.illegal_parameter, "ALPS for a protocol not offered")
        if self._config.transport_parameters is not None:
            if ee.quic_transport_parameters is None:
                raise TlsAlert(AlertDescription.missing_extension, "no quic_transport_parameters")
            outputs.append(PeerTransportParameters(ee.quic_transport_parameters))
        self._transcript.add(raw)
        # RFC 8446 §2.2: a PSK handshake has no Certificate or CertificateVerify.
        self._state = State.CLIENT_WAIT_FINISHED if self._psk_accepted \
            else State.CLIENT_WAIT_CERTIFICATE_OR_REQUEST

    def _client_handle_certificate_request(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        req = parse(m.pull_certificate_request, raw)
        if req.signature_algorithms is None:
            raise TlsAlert(
                AlertDescription.missing_extension,
                "CertificateRequest without signature_algorithms",
            )
        self._certificate_request = req
        self._transcript.add(raw)
        self._state = State.CLIENT_WAIT_CERTIFICATE

    def _offered_extension(self, ext_type: int) -> bytes | None:
        """The body of an extension our ClientHello (as sent, after the hook) carried."""
        assert self._client_hello is not None
        for t, data in self._client_hello.other_extensions:
            if t == ext_type:
                return data
        return None

    def _offered_alps(self) -> tuple[str, ...]:
        data = self._offered_extension(m.ExtensionType.APPLICATION_SETTINGS)
        return m.parse_alpn(data) if data is not None else ()

    def _take_offered_ee_extensions(self, ee: m.EncryptedExtensions) -> m.Extensions:
        """Consume the EncryptedExtensions entries that answer extensions we offered; return the
        rest (all of which are then refused).

        * encrypted_client_hello: retry_configs answering our GREASE ECH are ignored
          (draft-ietf-tls-esni §6.2.1: a GREASE client does not use them);
        * trust_anchors: the server's anchor list is ignored (we do not retry);
        * application_settings (ALPS): the server's settings are kept, and our Finished flight
          then starts with a ClientEncryptedExtensions (draft-vvv-tls-alps §4).
        """
        rest = []
        for ext_type, data in ee.other_extensions:
            if ext_type in _ANSWERS_IN_EE and self._offered_extension(ext_type) is not None:
                if ext_type == m.ExtensionType.APPLICATION_SETTINGS:
                    self._peer_application_settings = data
                continue
            rest.append((ext_type, data))
        return tuple(rest)

    def _client_handle_compressed_certificate(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        """RFC 8879 §4: only after we offered compress_certificate; hashed as received."""
        offer = self._offered_extension(m.ExtensionType.COMPRESS_CERTIFICATE)
        if offer is None:
            raise TlsAlert(AlertDescription.unexpected_message,
                           "CompressedCertificate without compress_certificate")
        compressed = pull_compressed_certificate(raw)
        certificate = decompress_certificate(compressed, pull_compress_certificate(offer))
        self._client_accept_certificate(parse(m.pull_certificate, certificate), raw)

    def _client_handle_certificate(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        self._client_accept_certificate(parse(m.pull_certificate, raw), raw)

    def _client_accept_certificate(self, cert: m.Certificate, raw: bytes) -> None:
        """Verify the server chain; ``raw`` is the message that enters the transcript."""
        if cert.request_context:
            raise TlsAlert(
                AlertDescription.illegal_parameter, "non-empty certificate_request_context"
            )
        if not cert.certificate_list:
            raise TlsAlert(AlertDescription.decode_error, "server sent no certificate")  # §4.4.2.4
        chain = tuple(entry.cert_data for entry in cert.certificate_list)
        verifier = self._config.peer_verifier
        assert verifier is not None
        try:
            verifier.verify_chain(chain=chain, server_name=self._config.server_name)
        except TlsAlert:
            raise
        except Exception as exc:
            raise TlsAlert(AlertDescription.bad_certificate, "peer verifier failed") from exc
        self._peer_key = leaf_public_key(chain[0])
        self._peer_chain = chain
        self._transcript.add(raw)
        self._state = State.CLIENT_WAIT_CERTIFICATE_VERIFY

    def _client_handle_certificate_verify(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        cv = parse(m.pull_certificate_verify, raw)
        assert self._client_hello is not None
        # RFC 8446 §4.4.3 wants a scheme we offered. We also take those in our config list that
        # a shaped hello did not offer: a REALITY server signs with Ed25519 (decision 5), which
        # Chrome's list lacks, as uTLS-based REALITY clients allow too.
        offered = (*(self._client_hello.signature_algorithms or ()),
                   *self._config.signature_algorithms)
        if cv.algorithm not in offered:
            raise TlsAlert(
                AlertDescription.illegal_parameter,
                f"signature scheme {cv.algorithm:#06x} not offered",
            )
        assert self._peer_key is not None
        verify(
            self._peer_key,
            cv.algorithm,
            cv.signature,
            certificate_verify_content(self._hash(), server=True),
        )
        self._transcript.add(raw)
        self._state = State.CLIENT_WAIT_FINISHED

    def _client_handle_finished(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        fin = parse(m.pull_finished, raw)
        ks = self._ks()
        expected = ks.verify_data(ks.server_handshake_traffic_secret, self._hash())
        if not hmac.compare_digest(fin.verify_data, expected):
            raise TlsAlert(AlertDescription.decrypt_error, "server Finished does not verify")
        self._transcript.add(raw)
        ks.application(self._hash())
        self._install(
            outputs, Epoch.ONE_RTT, Direction.DECRYPT, ks.server_application_traffic_secret
        )
        flight = b""
        if self._peer_application_settings is not None:
            assert self._alpn_protocol is not None
            settings = self._config.application_settings.get(self._alpn_protocol, b"")
            client_ee = m.encode_encrypted_extensions(m.EncryptedExtensions(
                other_extensions=((m.ExtensionType.APPLICATION_SETTINGS, settings),)))
            self._transcript.add(client_ee)
            flight += client_ee
        if self._certificate_request is not None:
            empty = m.encode_certificate(
                m.Certificate(self._certificate_request.request_context, ())
            )
            self._transcript.add(empty)
            flight += empty
        finished = m.encode_finished(
            m.Finished(ks.verify_data(ks.client_handshake_traffic_secret, self._hash()))
        )
        self._transcript.add(finished)
        ks.resumption(self._hash())
        outputs.append(SendCrypto(Epoch.HANDSHAKE, flight + finished))
        self._install(
            outputs, Epoch.ONE_RTT, Direction.ENCRYPT, ks.client_application_traffic_secret
        )
        self._key_log(outputs, CLIENT_TRAFFIC_SECRET_0, ks.client_application_traffic_secret)
        self._key_log(outputs, SERVER_TRAFFIC_SECRET_0, ks.server_application_traffic_secret)
        assert self._cipher_suite is not None
        outputs.append(HandshakeDone(self._alpn_protocol, self._cipher_suite))
        self._state = State.CLIENT_CONNECTED

    def _client_handle_new_session_ticket(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        """RFC 8446 §4.6.1: derive the ticket's PSK and hand the ticket out to be stored."""
        nst = parse(m.pull_new_session_ticket, raw)
        max_early = ticket_max_early_data(nst.extensions)
        clock = self._config.wall_clock
        if nst.ticket_lifetime == 0 or clock is None:
            return  # lifetime 0: discard at once (RFC 8446 §4.6.1)
        assert self._cipher_suite is not None
        outputs.append(NewTicket(SessionTicket(
            server_name=self._config.server_name, alpn_protocol=self._alpn_protocol,
            cipher_suite=int(self._cipher_suite), ticket=nst.ticket,
            psk=self._ks().ticket_psk(nst.ticket_nonce), ticket_age_add=nst.ticket_age_add,
            lifetime=min(nst.ticket_lifetime, MAX_TICKET_LIFETIME), received_at=clock(),
            max_early_data_size=max_early,
            transport_parameters=self._peer_transport_parameters)))


#: Extensions a server may answer in EncryptedExtensions when we offered them (see
#: :meth:`ClientHandshake._take_offered_ee_extensions`).
_ANSWERS_IN_EE = frozenset({
    m.ExtensionType.EARLY_DATA,
    m.ExtensionType.ENCRYPTED_CLIENT_HELLO,
    m.ExtensionType.TRUST_ANCHORS,
    m.ExtensionType.APPLICATION_SETTINGS,
})
