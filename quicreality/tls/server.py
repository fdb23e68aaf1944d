"""The server half of the TLS 1.3 handshake (RFC 8446 §4, Appendix A.2)."""

from __future__ import annotations

import hashlib
import hmac

from . import messages as m
from .alerts import AlertDescription, TlsAlert
from .certificates import certificate_verify_content, sign, signature_schemes_for_key
from .compression import compress_certificate, pull_compress_certificate
from .hkdf import CipherSuite
from .key_exchange import server_key_exchange
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
    PeerTransportParameters,
    SendCrypto,
    TlsOutput,
)
from .resumption import TicketState, decide_early_data, parse_psk_offer
from .session_core import SessionCore, State, parse


class ServerHandshake(SessionCore):
    """Server-side message handlers; dispatched by the table in :mod:`.handshake`."""

    def _server_handle_client_hello(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        config = self._config
        expected = config.expected_client_hello
        if expected is not None and self._hello_retry is None \
                and not hmac.compare_digest(raw, expected):
            raise TlsAlert(AlertDescription.illegal_parameter,
                           "ClientHello differs from the one verified before the handshake")
        verified = config.verified_client_hello
        if expected is not None and self._hello_retry is None and verified is not None \
                and verified.raw == raw:
            ch = verified  # the bytes checked above, as the gate parsed them
        else:
            ch = parse(m.pull_client_hello, raw)
        if ch.supported_versions is None or m.TLS_VERSION_1_3 not in ch.supported_versions:
            raise TlsAlert(AlertDescription.protocol_version, "client does not offer TLS 1.3")
        if ch.legacy_compression_methods != b"\x00":
            raise TlsAlert(AlertDescription.illegal_parameter, "compression methods must be [null]")
        if ch.legacy_session_id and config.reject_legacy_session_id:
            raise TlsAlert(
                AlertDescription.illegal_parameter, "non-empty legacy_session_id (RFC 9001 §8.4)"
            )
        if ch.signature_algorithms is None:
            raise TlsAlert(AlertDescription.missing_extension, "no signature_algorithms")
        if ch.supported_groups is None or ch.key_share is None:
            raise TlsAlert(AlertDescription.missing_extension, "no supported_groups/key_share")
        share_groups = [e.group for e in ch.key_share]
        if len(set(share_groups)) != len(share_groups) or not set(share_groups) <= set(
            ch.supported_groups
        ):
            raise TlsAlert(AlertDescription.illegal_parameter, "bad key_share list")  # §4.2.8
        if config.transport_parameters is not None and ch.quic_transport_parameters is None:
            raise TlsAlert(AlertDescription.missing_extension, "no quic_transport_parameters")
        alpn = self._select_alpn(ch)
        hrr = self._hello_retry
        if hrr is None:
            shaped = getattr(config.server_hello_shape, "cipher_suite", None)
            ours = [shaped] if shaped in config.cipher_suites else []
            suite = next((s for s in (*ours, *config.cipher_suites) if s in ch.cipher_suites),
                         None)
            if suite is None:
                raise TlsAlert(AlertDescription.handshake_failure, "no common cipher suite")
            self._select_credentials(ch)
        else:
            ch1 = self._client_hello
            assert ch1 is not None
            suite = hrr.cipher_suite
            if ch.random != ch1.random or ch.legacy_session_id != ch1.legacy_session_id:
                raise TlsAlert(
                    AlertDescription.illegal_parameter,
                    "second ClientHello changed random/session_id",
                )
            if suite not in ch.cipher_suites or ch.cookie != hrr.cookie:
                raise TlsAlert(
                    AlertDescription.illegal_parameter,
                    "second ClientHello does not match the retry",
                )
            if share_groups != [hrr.selected_group]:
                raise TlsAlert(
                    AlertDescription.illegal_parameter, "second ClientHello has the wrong key_share"
                )
        shares = {e.group: e for e in ch.key_share}
        preference = self._group_preference()
        group = next((g for g in preference if g in shares), None)
        shape = config.server_hello_shape
        if hrr is None and shape is not None and shape.hello_retry and \
                preference[0] == shape.key_share_group and preference[0] not in shares \
                and preference[0] in ch.supported_groups:
            group = None  # the shaped server asked for its group again: so do we
        self._client_hello = ch
        self._cipher_suite = CipherSuite(suite)
        if group is None:
            if hrr is not None:
                raise TlsAlert(
                    AlertDescription.illegal_parameter, "no usable key share after retry"
                )
            retry_group = next((g for g in preference if g in ch.supported_groups), None)
            if retry_group is None:
                raise TlsAlert(AlertDescription.handshake_failure, "no common group")
            self._server_send_hello_retry(ch, raw, suite, retry_group, outputs)
            return
        self._alpn_protocol = alpn
        if ch.quic_transport_parameters is not None and config.transport_parameters is not None:
            outputs.append(PeerTransportParameters(ch.quic_transport_parameters))
        resumed = self._server_consider_psk(ch, raw, suite, outputs)
        self._transcript.add(raw)
        self._server_send_flight(ch, suite, shares[group], outputs, resumed)

    def _server_consider_psk(self, ch: m.ClientHello, raw: bytes, suite: int,
                             outputs: list[TlsOutput]) -> TicketState | None:
        """RFC 8446 §4.2.11: take the first offered ticket that is ours and valid, verify its
        binder, redeem it (single use) and decide on 0-RTT; None: a full handshake."""
        store, clock = self._config.ticket_store, self._config.wall_clock
        data = self._client_extension(ch, m.ExtensionType.PRE_SHARED_KEY)
        early_offered = self._client_extension(ch, m.ExtensionType.EARLY_DATA) is not None
        if store is None or clock is None or data is None or \
                m.PSK_DHE_KE not in (ch.psk_key_exchange_modes or ()):
            if early_offered:
                outputs.append(EarlyDataOutcome(False, False, "no usable PSK"))
            return None
        offer = parse_psk_offer(data)
        now = clock()
        hash_name = hash_name_for_suite(suite)
        state, index, reason = None, 0, "no offered ticket is valid"
        for i, (identity, _) in enumerate(offer.identities):
            verdict = store.lookup(identity, hash_name=hash_name, now=now)
            reason = verdict.reason
            if verdict.state is not None:
                state, index = verdict.state, i
                break
        if state is None:
            if early_offered:
                outputs.append(EarlyDataOutcome(False, False, reason))
            return None
        schedule = KeySchedule(suite, state.psk)
        truncated = raw[:-offer.binders_size]
        expected = schedule.binder(hashlib.new(hash_name, self._transcript.data + truncated).digest())
        if not hmac.compare_digest(expected, offer.binders[index]):
            raise TlsAlert(AlertDescription.decrypt_error, "PSK binder does not verify")
        verdict = store.consume(state, now)
        if verdict.state is None:  # replayed: full handshake, so 0-RTT is rejected too
            if early_offered:
                outputs.append(EarlyDataOutcome(False, False, verdict.reason))
            return None
        self._psk_accepted = True
        self._psk_index = index
        if early_offered:
            early = decide_early_data(
                state, obfuscated_age=offer.identities[index][1], offered=True,
                first_identity=index == 0, hello_retry=self._hello_retry is not None,
                alpn_protocol=self._alpn_protocol, cipher_suite=suite,
                early_data_context=self._config.early_data_context, now=now)
            self._early_data_accepted = early.accepted
            if early.accepted:
                secret = schedule.client_early_traffic_secret(
                    hashlib.new(hash_name, self._transcript.data + raw).digest())
                self._install(outputs, Epoch.ZERO_RTT, Direction.DECRYPT, secret)
                self._key_log(outputs, CLIENT_EARLY_TRAFFIC_SECRET, secret)
            outputs.append(EarlyDataOutcome(early.accepted, True, early.reason))
        return state

    def _group_preference(self) -> list[int]:
        """Server preference: ``server_preferred_groups`` (the post-quantum hybrid by default), then
        ``groups``. A group with a client share wins over a better one without (no retry)."""
        config = self._config
        preferred = [g for g in config.server_preferred_groups if g not in config.groups]
        order = [*preferred, *config.groups]
        shaped = getattr(config.server_hello_shape, "key_share_group", None)
        if shaped in order:  # copy another server's choice (REALITY: the target's)
            order.remove(shaped)
            order.insert(0, shaped)
        return order

    def _select_alpn(self, ch: m.ClientHello) -> str | None:
        """Server preference among the client's offers (RFC 7301 §3.2)."""
        ours = self._config.alpn_protocols
        if not ours:
            return None
        theirs = ch.alpn_protocols or ()
        for proto in ours:
            if proto in theirs:
                return proto
        raise TlsAlert(AlertDescription.no_application_protocol, "no common application protocol")

    def _select_credentials(self, ch: m.ClientHello) -> None:
        source = self._config.certificate_source
        assert source is not None and ch.signature_algorithms is not None
        creds = source.credentials_for(
            server_name=ch.server_name, signature_algorithms=ch.signature_algorithms
        )
        own = signature_schemes_for_key(creds.private_key)
        if not own:
            raise TlsAlert(AlertDescription.internal_error, "certificate key cannot sign")
        possible = [s for s in own if s in ch.signature_algorithms]
        preferred = [s for s in possible if s in self._config.signature_algorithms]
        self._credentials = creds
        # With no overlap we still sign with what the key can do, as RFC 8446 §4.4.2.2 lets a server
        # "continue the handshake" with the chain it has (and as REALITY's Ed25519-only server does
        # for Chrome-like clients); the client decides.
        self._signature_scheme = (preferred or possible or list(own))[0]

    def _server_send_hello_retry(
        self, ch: m.ClientHello, raw: bytes, suite: int, group: int, outputs: list[TlsOutput]
    ) -> None:
        hrr = m.ServerHello(
            random=m.HELLO_RETRY_REQUEST_RANDOM,
            legacy_session_id_echo=ch.legacy_session_id,
            cipher_suite=suite,
            supported_version=m.TLS_VERSION_1_3,
            selected_group=group,
            cookie=self._rng(16),
        )
        data = _reorder_extensions(m.encode_server_hello(hrr), self._config.server_hello_shape)
        self._hello_retry = hrr
        self._transcript.add(raw)
        self._transcript.restart_after_hello_retry(hash_name_for_suite(suite))
        self._transcript.add(data)
        outputs.append(SendCrypto(Epoch.INITIAL, data))
        self._state = State.SERVER_WAIT_SECOND_CLIENT_HELLO

    def _server_send_flight(
        self, ch: m.ClientHello, suite: int, share: m.KeyShareEntry, outputs: list[TlsOutput],
        resumed: TicketState | None = None,
    ) -> None:
        """ServerHello in Initial; EncryptedExtensions..Finished in Handshake (RFC 8446 §2);
        resumed with a PSK: no Certificate or CertificateVerify (RFC 8446 §2.2)."""
        server_share, shared = server_key_exchange(share.group, share.key_exchange, self._rng)
        psk_ext: m.Extensions = ()
        if resumed is not None:
            psk_ext = ((m.ExtensionType.PRE_SHARED_KEY, self._psk_index.to_bytes(2, "big")),)
        sh = m.ServerHello(
            random=self._rng(32),
            legacy_session_id_echo=ch.legacy_session_id,
            cipher_suite=suite,
            supported_version=m.TLS_VERSION_1_3,
            key_share=m.KeyShareEntry(share.group, server_share),
            other_extensions=psk_ext,
        )
        sh_raw = _reorder_extensions(m.encode_server_hello(sh), self._config.server_hello_shape)
        self._server_hello = parse(m.pull_server_hello, sh_raw)
        self._transcript.add(sh_raw)
        self._key_schedule = ks = KeySchedule(suite, resumed.psk if resumed is not None else None)
        ks.handshake(shared, self._hash())
        outputs.append(SendCrypto(Epoch.INITIAL, sh_raw))
        self._install(
            outputs, Epoch.HANDSHAKE, Direction.ENCRYPT, ks.server_handshake_traffic_secret
        )
        self._install(
            outputs, Epoch.HANDSHAKE, Direction.DECRYPT, ks.client_handshake_traffic_secret
        )
        self._key_log(outputs, CLIENT_HANDSHAKE_TRAFFIC_SECRET, ks.client_handshake_traffic_secret)
        self._key_log(outputs, SERVER_HANDSHAKE_TRAFFIC_SECRET, ks.server_handshake_traffic_secret)

        creds, scheme = self._credentials, self._signature_scheme
        assert creds is not None and scheme is not None
        early: m.Extensions = ((m.ExtensionType.EARLY_DATA, b""),) \
            if self._early_data_accepted else ()
        ee = m.encode_encrypted_extensions(
            m.EncryptedExtensions(
                alpn_protocol=self._alpn_protocol,
                quic_transport_parameters=self._config.transport_parameters,
                other_extensions=self._server_alps_extension(ch) + early,
            )
        )
        self._transcript.add(ee)
        if resumed is None:
            self._server_authenticate(ch, outputs)
        fin = m.encode_finished(
            m.Finished(ks.verify_data(ks.server_handshake_traffic_secret, self._hash()))
        )
        self._transcript.add(fin)
        outputs.append(SendCrypto(Epoch.HANDSHAKE, ee + self._server_auth_flight + fin))
        ks.application(self._hash())
        self._install(
            outputs, Epoch.ONE_RTT, Direction.ENCRYPT, ks.server_application_traffic_secret
        )
        self._key_log(outputs, CLIENT_TRAFFIC_SECRET_0, ks.client_application_traffic_secret)
        self._key_log(outputs, SERVER_TRAFFIC_SECRET_0, ks.server_application_traffic_secret)
        self._state = (State.SERVER_WAIT_CLIENT_ENCRYPTED_EXTENSIONS if self._alps_negotiated
                       else State.SERVER_WAIT_FINISHED)

    def _server_authenticate(self, ch: m.ClientHello, outputs: list[TlsOutput]) -> None:
        """Certificate (or CompressedCertificate) and CertificateVerify, into the transcript."""
        creds, scheme = self._credentials, self._signature_scheme
        assert creds is not None and scheme is not None
        cert = m.encode_certificate(
            m.Certificate(b"", tuple(m.CertificateEntry(der) for der in creds.certificate_chain))
        )
        algorithm = self._compression_algorithm(ch)
        if algorithm is not None:  # RFC 8879 §4: sent in place of Certificate
            cert = compress_certificate(algorithm, cert).raw
        self._transcript.add(cert)
        signature = sign(
            creds.private_key, scheme, certificate_verify_content(self._hash(), server=True)
        )
        cv = m.encode_certificate_verify(m.CertificateVerify(scheme, signature))
        self._transcript.add(cv)
        self._server_auth_flight = cert + cv

    @staticmethod
    def _client_extension(ch: m.ClientHello, ext_type: int) -> bytes | None:
        return next((d for t, d in ch.other_extensions if t == ext_type), None)

    def _compression_algorithm(self, ch: m.ClientHello) -> int | None:
        """Our first RFC 8879 algorithm the client offered (None: send Certificate)."""
        offer = self._client_extension(ch, m.ExtensionType.COMPRESS_CERTIFICATE)
        if offer is None or not self._config.certificate_compression:
            return None
        theirs = pull_compress_certificate(offer)
        return next((a for a in self._config.certificate_compression if a in theirs), None)

    def _server_alps_extension(self, ch: m.ClientHello) -> m.Extensions:
        """ALPS in EncryptedExtensions, when enabled and offered for the selected protocol."""
        offer = self._client_extension(ch, m.ExtensionType.APPLICATION_SETTINGS)
        alpn = self._alpn_protocol
        settings = self._config.application_settings.get(alpn) if alpn is not None else None
        if not self._config.server_alps or offer is None or settings is None \
                or alpn not in m.parse_alpn(offer):
            return ()
        self._alps_negotiated = True
        return ((m.ExtensionType.APPLICATION_SETTINGS, settings),)

    def _server_handle_client_encrypted_extensions(
        self, raw: bytes, outputs: list[TlsOutput]
    ) -> None:
        """draft-vvv-tls-alps §4: after ALPS, the client's flight opens with its settings."""
        ee = parse(m.pull_encrypted_extensions, raw)
        others = dict(ee.other_extensions)
        if m.ExtensionType.APPLICATION_SETTINGS not in others:
            raise TlsAlert(AlertDescription.missing_extension,
                           "ClientEncryptedExtensions without application_settings")
        self._peer_application_settings = others[m.ExtensionType.APPLICATION_SETTINGS]
        self._transcript.add(raw)
        self._state = State.SERVER_WAIT_FINISHED

    def _server_handle_finished(self, raw: bytes, outputs: list[TlsOutput]) -> None:
        fin = parse(m.pull_finished, raw)
        ks = self._ks()
        expected = ks.verify_data(ks.client_handshake_traffic_secret, self._hash())
        if not hmac.compare_digest(fin.verify_data, expected):
            raise TlsAlert(AlertDescription.decrypt_error, "client Finished does not verify")
        self._transcript.add(raw)
        ks.resumption(self._hash())
        self._install(
            outputs, Epoch.ONE_RTT, Direction.DECRYPT, ks.client_application_traffic_secret
        )
        assert self._cipher_suite is not None
        outputs.append(HandshakeDone(self._alpn_protocol, self._cipher_suite))
        self._state = State.SERVER_CONNECTED
        store, clock = self._config.ticket_store, self._config.wall_clock
        if store is not None and clock is not None:  # RFC 8446 §4.6.1, in 1-RTT (RFC 9001 §4.1.3)
            outputs.append(SendCrypto(Epoch.ONE_RTT, store.issue(
                cipher_suite=int(self._cipher_suite), alpn_protocol=self._alpn_protocol,
                psk_of=ks.ticket_psk, early_data_context=self._config.early_data_context,
                rng=self._rng, now=clock())))


def _reorder_extensions(raw: bytes, shape: object) -> bytes:
    """``raw`` (an encoded ServerHello) with its extensions in ``shape.extension_order``; types
    the shape does not name keep their relative order after the named ones."""
    order = getattr(shape, "extension_order", None)
    if not order:
        return raw
    at = 4 + 2 + 32
    at += 1 + raw[at] + 3
    exts: list[tuple[int, bytes]] = []
    i = at + 2
    while i < len(raw):
        ext_type = int.from_bytes(raw[i:i + 2], "big")
        length = int.from_bytes(raw[i + 2:i + 4], "big")
        exts.append((ext_type, raw[i:i + 4 + length]))
        i += 4 + length
    rank = {t: n for n, t in enumerate(order)}
    exts.sort(key=lambda e: rank.get(e[0], len(rank)))
    return raw[:at + 2] + b"".join(e for _, e in exts)
