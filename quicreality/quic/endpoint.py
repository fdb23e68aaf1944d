"""Server-side demultiplexing, sans-IO: route datagrams to connections, create connections on
Initials, and answer statelessly (Version Negotiation, Retry, stateless reset).

The I/O edge calls :meth:`QuicServerEndpoint.receive_datagram` for each datagram, sends the returned
stateless replies, and afterwards drives the returned connection's send path once per batch.
An optional ``gate`` (the REALITY hook) sees every datagram of an unknown flow first and decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..wire.buffer import Buffer, BufferReadError
from .config import QuicConfiguration
from .connection import QuicConnection
from .packet import (
    PACKET_TYPE_INITIAL,
    MalformedPacketError,
    encode_quic_retry,
    encode_quic_version_negotiation,
    encode_stateless_reset,
    pull_quic_header,
)
from .tokens import InvalidTokenError, RetryTokenHandler, stateless_reset_token

#: RFC 9000 §14.1: servers drop Initial datagrams smaller than this.
MIN_INITIAL_SIZE = 1200
#: RFC 9000 §10.3: a stateless reset is at least this long and shorter than the trigger.
MIN_STATELESS_RESET_SIZE = 21


@dataclass(frozen=True, slots=True)
class Received:
    """What the endpoint did with a datagram."""

    connection: QuicConnection | None
    replies: tuple[tuple[bytes, Any], ...] = ()
    new: bool = False


class QuicServerEndpoint:
    """Routes datagrams by destination connection ID."""

    def __init__(self, configuration_factory: Callable[[], QuicConfiguration], *,
                 rng: Callable[[int], bytes], retry: bool = False):
        self._factory = configuration_factory
        self._rng = rng
        self._retry = retry
        self._retry_tokens = RetryTokenHandler(rng) if retry else None
        self._reset_key = rng(32)
        sample = configuration_factory()
        self._cid_length = sample.connection_id_length
        self._versions = sample.supported_versions
        self._by_cid: dict[bytes, QuicConnection] = {}
        self.connections: set[QuicConnection] = set()

    def receive_datagram(self, data: bytes, addr: Any, now: float) -> Received:
        """Route one datagram; create a connection for a new valid Initial."""
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=self._cid_length)
        except (MalformedPacketError, BufferReadError, ValueError):
            return Received(None)
        conn = self._by_cid.get(header.destination_cid)
        if conn is not None:
            conn.receive_datagram(data, addr, now)
            self.refresh(conn)
            return Received(conn)
        if not header.is_long_header:
            return Received(None, self._stateless_reset(header.destination_cid, len(data), addr))
        if header.version not in self._versions:
            if len(data) >= MIN_INITIAL_SIZE:
                vn = encode_quic_version_negotiation(
                    source_cid=header.destination_cid, destination_cid=header.source_cid,
                    supported_versions=list(self._versions))
                return Received(None, ((vn, addr),))
            return Received(None)
        if header.packet_type != PACKET_TYPE_INITIAL or len(data) < MIN_INITIAL_SIZE:
            return Received(None)
        odcid = header.destination_cid
        retry_scid: bytes | None = None
        if self._retry_tokens is not None:
            if not header.token:
                new_scid = self._rng(self._cid_length)
                token = self._retry_tokens.issue(addr=addr, original_destination_cid=odcid,
                                                 retry_source_cid=new_scid, now=now)
                retry = encode_quic_retry(
                    version=header.version or self._versions[0], source_cid=new_scid,
                    destination_cid=header.source_cid, original_destination_cid=odcid,
                    retry_token=token)
                return Received(None, ((retry, addr),))
            try:
                contents = self._retry_tokens.validate(
                    header.token, addr=addr, destination_cid=header.destination_cid, now=now)
            except InvalidTokenError:
                return Received(None)  # RFC 9000 §8.1.3: drop
            odcid, retry_scid = contents.original_destination_cid, header.destination_cid
        config = self._factory()
        config.is_client = False
        config.stateless_reset_key = self._reset_key
        conn = QuicConnection(
            configuration=config,
            original_destination_connection_id=odcid,
            retry_source_connection_id=retry_scid,
            initial_destination_connection_id=header.destination_cid,
            peer_cid=header.source_cid,
        )
        self.connections.add(conn)
        self._by_cid[header.destination_cid] = conn
        conn.receive_datagram(data, addr, now)
        self.refresh(conn)
        return Received(conn, new=True)

    def refresh(self, conn: QuicConnection) -> None:
        """Sync routing with the connection's current IDs; forget terminated connections."""
        if conn.is_terminated:
            self.forget(conn)
            return
        for cid in conn.host_cids:
            if cid not in self._by_cid:
                self._by_cid[cid] = conn

    def forget(self, conn: QuicConnection) -> None:
        """Remove every route to ``conn``."""
        self.connections.discard(conn)
        for cid in [c for c, v in self._by_cid.items() if v is conn]:
            del self._by_cid[cid]

    def _stateless_reset(self, dcid: bytes, size: int, addr: Any) -> tuple[tuple[bytes, Any], ...]:
        """RFC 9000 §10.3: answer an unknown short-header packet with a stateless reset."""
        if size <= MIN_STATELESS_RESET_SIZE + 1:
            return ()
        token = stateless_reset_token(self._reset_key, dcid)
        length = min(size - 1, 43)
        packet = encode_stateless_reset(token=token, unpredictable=self._rng(length - 16))
        return ((packet, addr),)
