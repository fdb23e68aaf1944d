"""The QUIC version of one connection (RFC 9000 §6, RFC 9368, RFC 9369).

:class:`ConnectionVersions` owns which version the connection sends in and the switches RFC 9368
allows, and installs the Initial keys each switch needs:

* compatible negotiation (RFC 9368 §2.3): the server reads the client's version_information
  from the whole ClientHello before TLS sees it (:meth:`on_client_hello`) and may move the
  connection to a compatible version it prefers (v1 -> v2); its first Initial is then in that
  version, with Initial keys derived for it from the same connection ID. It keeps the receive
  keys of the client's version for the client's Initials still in flight. The client follows
  when the server's first Initial opens with the new version's keys (:meth:`accepts`).
* incompatible negotiation (RFC 9368 §2.1, RFC 9000 §6.2): a client answered with Version
  Negotiation starts again in the most preferred version the server lists
  (:meth:`on_version_negotiation`), or gives up with the reason.
* downgrade prevention (RFC 9368 §4): :meth:`check_peer` checks the peer's version_information.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...qlog.sink import QlogSink
from ...tls.alerts import TlsAlert
from ...tls.messages import ClientHello, pull_client_hello
from ...wire.buffer import Buffer, BufferReadError
from ..config import QuicConfiguration
from ..crypto import CryptoError, CryptoPair
from ..errors import QuicConnectionError, QuicErrorCode
from ..packet import PACKET_TYPE_INITIAL, PACKET_TYPE_ZERO_RTT, QUIC_VERSION_1, QuicHeader
from ..recovery.loss import SPACE_INITIAL
from ..transport_params import QuicTransportParameters, VersionInformation, pull_transport_parameters
from ..versions import (
    VersionVerdict,
    check_server_information,
    client_choice_after_vn,
    compatible,
    server_choice,
    version_name,
)
from .cids import HandshakeIds


@dataclass(frozen=True, slots=True)
class VnDecision:
    """What a client does with a Version Negotiation packet (RFC 9000 §6.2, RFC 9368 §2.1, §4).

    ``action``: ``"ignore"`` (not for us, lists our version, or we already reacted to one),
    ``"restart"`` (start again in ``version``) or ``"fail"`` (no common version).
    """

    action: str
    version: int | None
    reason: str


class ConnectionVersions:
    """The version a connection speaks, and its switches (see the module docstring).

    Attributes:
        chosen: the version of this attempt's first Initial (the client's Chosen Version).
        current: the version we send in; the negotiated version once :attr:`decided`.
        decided: server: chose on the ClientHello; client: the server's first Initial opened.
        after_vn: client: this attempt follows a Version Negotiation packet.
    """

    __slots__ = ("_cryptos", "_ids", "_is_client", "_original_initial", "_ours", "_qlog",
                 "after_vn", "chosen", "current", "decided")

    def __init__(self, config: QuicConfiguration, *, is_client: bool, version: int,
                 cryptos: list[CryptoPair], ids: HandshakeIds, qlog: QlogSink) -> None:
        self._is_client = is_client
        self._ours = tuple(config.supported_versions)
        self._cryptos = cryptos
        self._ids = ids
        self._qlog = qlog
        self._original_initial: CryptoPair | None = None
        self.chosen = version
        self.current = version
        self.decided = False
        self.after_vn = False

    def local_information(self) -> VersionInformation | None:
        """Our version_information (RFC 9368 §3); None for a v1-only endpoint (as before RFC
        9368: nothing to negotiate, nothing to protect)."""
        if self._ours == (QUIC_VERSION_1,) and self.current == QUIC_VERSION_1:
            return None
        return VersionInformation(self.chosen if self._is_client else self.current, self._ours)

    # ------------------------------------------------------------ receive

    def accepts(self, header: QuicHeader, packet: bytes, now: float) -> bool:
        """Whether a long-header packet of ``header.version`` is processed (else dropped).

        A client's first Initial from the server in another version we offered and that is
        compatible switches the connection to it, if the packet opens with that version's keys
        (a forged or corrupt one changes nothing).
        """
        version = header.version
        if version == self.current:
            if self._is_client and header.packet_type == PACKET_TYPE_INITIAL:
                self.decided = True
            return True
        if not self._is_client:  # after a switch: the client's Initials and 0-RTT in flight
            return version == self.chosen and (
                header.packet_type == PACKET_TYPE_ZERO_RTT
                or (self._original_initial is not None and header.packet_type == PACKET_TYPE_INITIAL))
        if (self.decided or header.packet_type != PACKET_TYPE_INITIAL or version is None
                or version not in self._ours or not compatible(self.chosen, version)):
            return False
        pair = CryptoPair()
        pair.setup_initial(self._key_cid(), is_client=True, version=version)
        start = header.packet_end - len(packet)  # where ``packet`` starts in its datagram
        try:
            pair.recv.decrypt_packet(packet, header.pn_offset - start, 0)
        except CryptoError:
            return False
        self._cryptos[SPACE_INITIAL] = pair
        self._switch(version, "server moved us (compatible version negotiation)", now)
        return True

    def keys_for(self, space_id: int, version: int | None) -> CryptoPair:
        """The keys that open a packet of ``version`` in ``space_id``: the server's kept Initial
        keys for the client's first version after a switch, else the space's."""
        if (space_id == SPACE_INITIAL and version is not None and version != self.current
                and self._original_initial is not None):
            return self._original_initial
        return self._cryptos[space_id]

    def on_client_hello(self, hello: bytes, now: float, *, parsed: ClientHello | None = None
                        ) -> None:
        """Server: choose the version from the whole first ClientHello (RFC 9368 §2.3).

        A hello that does not parse is left to TLS, which fails it with the right alert.
        ``parsed``: ``hello`` already parsed (by the REALITY gate), so it is not parsed again.

        Raises:
            QuicConnectionError: VERSION_NEGOTIATION_ERROR when the client's Chosen Version is
                not the version its Initial came in (RFC 9368 §4).
        """
        self.decided = True
        try:
            ch = parsed if parsed is not None else pull_client_hello(Buffer(data=hello))
            raw = ch.quic_transport_parameters
            params = pull_transport_parameters(Buffer(data=raw)) if raw is not None else None
        except (TlsAlert, QuicConnectionError, BufferReadError, ValueError):
            return  # TLS parses it again and reports the error
        client = params.version_information if params is not None else None
        verdict = server_choice(self.chosen, client, self._ours)
        if not verdict.ok or verdict.version is None:
            raise _vn_error(verdict)
        if verdict.version != self.current:
            self._original_initial = self._cryptos[SPACE_INITIAL]
            pair = CryptoPair()
            pair.setup_initial(self._ids.initial_dcid, is_client=False, version=verdict.version)
            self._cryptos[SPACE_INITIAL] = pair
            self._switch(verdict.version, verdict.reason, now)
        self._log(now, client, self.local_information())

    def on_version_negotiation(self, header: QuicHeader, host_cid: bytes, peer_cid: bytes,
                               now: float) -> VnDecision:
        """Client: a Version Negotiation packet (RFC 9000 §6.2, RFC 9368 §2.1, §4)."""
        if (not self._is_client or self.decided or header.destination_cid != host_cid
                or header.source_cid != peer_cid):
            return VnDecision("ignore", None, "not for this attempt")
        offered = header.supported_versions
        if self.after_vn:
            return VnDecision("ignore", None, "already reacted to Version Negotiation")
        if self.chosen in offered:
            return VnDecision("ignore", None, "lists our version (RFC 9000 §6.2)")
        version = client_choice_after_vn(self._ours, offered)
        if version is None:
            return VnDecision("fail", None, (
                "Version negotiation failed: the server speaks "
                f"{','.join(version_name(v) for v in offered)}, we speak "
                f"{','.join(version_name(v) for v in self._ours)}"))
        self.after_vn = True
        self.chosen = version
        self._cryptos[SPACE_INITIAL].setup_initial(self._key_cid(), is_client=True,
                                                   version=version)
        self._switch(version, "Version Negotiation", now)
        return VnDecision("restart", version, f"starting again in {version_name(version)}")

    def check_peer(self, params: QuicTransportParameters, now: float) -> None:
        """The peer's version_information (RFC 9368 §4), once its transport parameters arrived.

        Raises:
            QuicConnectionError: VERSION_NEGOTIATION_ERROR with the reason.
        """
        if not self._is_client:
            return  # the server checked the client's on the ClientHello
        server = params.version_information
        self._log(now, self.local_information(), server)
        verdict = check_server_information(server, negotiated=self.current,
                                           after_vn=self.after_vn, ours=self._ours)
        if not verdict.ok:
            raise _vn_error(verdict)

    # ------------------------------------------------------------ internals

    def _key_cid(self) -> bytes:
        """The DCID a client's Initial keys derive from (after a Retry: the Retry's SCID)."""
        ids = self._ids
        return ids.retry_scid if ids.received_retry and ids.retry_scid else ids.original_dcid

    def _switch(self, version: int, reason: str, now: float) -> None:
        self.current = version
        self._qlog.custom(now, "version_switch", {"version": f"{version:08x}", "reason": reason})

    def _log(self, now: float, client: VersionInformation | None,
             server: VersionInformation | None) -> None:
        self._qlog.version_information(
            now, client_versions=client.available_versions if client else (),
            server_versions=server.available_versions if server else (), chosen=self.current)


def _vn_error(verdict: VersionVerdict) -> QuicConnectionError:
    return QuicConnectionError(QuicErrorCode.VERSION_NEGOTIATION_ERROR, None, verdict.reason)
