"""HTTP/3 file server on our QUIC stack (asyncio edge around the sans-IO endpoint)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..h3.connection import H3Connection
from ..h3.server import H3FileServer, H3ServerSession
from ..quic.admission import DEFAULT_MAX_HANDSHAKES
from ..quic.config import QuicConfiguration
from ..quic.connection import QuicConnection
from ..quic.endpoint import QuicServerEndpoint
from ..relay.config import RelayConfig
from .driver import Driver
from .relay_pump import Waker
from .relay_server import ServerLink
from .relay_upstream import close_upstream_pools

log = logging.getLogger("quicreality.server")

#: Keep at most this many body bytes per stream written and not yet sent (what is in flight is
#: bounded by the congestion window and the client's flow-control credit).
STREAM_HIGH_WATER = 1024 * 1024
#: Read size when topping up a response body.
BODY_CHUNK = 64 * 1024


class QuicServer(Driver):
    """Serves HTTP/3 over one UDP socket; streams that start with the relay preface go to the
    relay (:mod:`quicreality.aio.relay_server`; without ``relay`` every destination is refused).
    """

    def __init__(self, sock: socket.socket, endpoint: QuicServerEndpoint, app: H3FileServer,
                 loop: asyncio.AbstractEventLoop | None = None, *, relay: RelayConfig | None = None,
                 ecn: bool = True):
        super().__init__(sock, loop, ecn=ecn)
        self.endpoint = endpoint
        self.app = app
        self.sessions: dict[int, H3ServerSession] = {}
        self.relay_config = relay or RelayConfig()
        self.relays: dict[int, ServerLink] = {}
        self._wake = Waker(self.service, self.loop)

    def datagram_received(self, data: bytes, addr: Any, now: float,
                          ecn: int = 0) -> Iterable[QuicConnection]:
        got = self.endpoint.receive_datagram(data, addr, now, ecn)
        if got.replies:
            self.send(list(got.replies))
        if got.connection is None:
            return ()
        if got.new:
            h3 = self.new_h3(got.connection)
            self.sessions[id(got.connection)] = H3ServerSession(
                h3, self.app, chunk_size=BODY_CHUNK, high_water=STREAM_HIGH_WATER)
            conn = got.connection
            self.relays[id(conn)] = ServerLink(conn, self.relay_config,
                                               lambda: self._wake(conn), loop=self.loop)
        return (got.connection,)

    def new_h3(self, conn: QuicConnection) -> H3Connection:
        """The HTTP/3 layer of a new connection (created before the handshake has run)."""
        return H3Connection(conn, is_client=False)

    def connections(self) -> Iterable[QuicConnection]:
        return list(self.endpoint.connections)

    def handle_events(self, conn: QuicConnection, now: float) -> None:
        session = self.sessions.get(id(conn))
        relay = self.relays.get(id(conn))
        while (event := conn.next_event()) is not None:
            for ev in relay.filter_event(event) if relay is not None else (event,):
                if session is not None:
                    session.handle_event(ev)
        if session is not None:
            session.pump()
        if relay is not None:
            relay.pump()
        self.endpoint.refresh(conn)

    def shutdown(self) -> None:
        """Graceful stop: GOAWAY (RFC 9114 §5.2) and CONNECTION_CLOSE(H3_NO_ERROR) to every client."""
        now = self.now()
        for conn in list(self.endpoint.connections):
            if conn.is_terminated:
                continue
            session = self.sessions.get(id(conn))
            try:
                if session is not None and not session.h3.closed:
                    session.h3.send_goaway()
                conn.close(0x100, None, "server shutting down")  # H3_NO_ERROR
                self.send(conn.datagrams_to_send(now))
            except Exception:
                log.exception("could not close a connection during shutdown")

    def connection_gone(self, conn: QuicConnection) -> None:
        session = self.sessions.pop(id(conn), None)
        if session is not None:
            session.pump()  # aborts bodies of a closed connection
        relay = self.relays.pop(id(conn), None)
        if relay is not None:
            relay.close()
        self.endpoint.forget(conn)


async def serve(
    sock: socket.socket,
    configuration_factory: Callable[[], QuicConfiguration],
    *,
    www: Path | None,
    retry: bool = False,
    stop: asyncio.Event | None = None,
    relay: RelayConfig | None = None,
    preferred_sock: socket.socket | None = None,
    max_handshakes: int = DEFAULT_MAX_HANDSHAKES,
) -> None:
    """Run an HTTP/3 server on ``sock`` until ``stop`` is set (or forever).

    ``preferred_sock`` listens at the preferred address the configurations advertise (RFC 9000
    §9.6); the endpoint routes its datagrams by connection ID like the others. The server owns it.
    """
    endpoint = QuicServerEndpoint(configuration_factory, rng=os.urandom, retry=retry,
                                  max_handshakes=max_handshakes)
    server = QuicServer(sock, endpoint, H3FileServer(www), relay=relay,
                        ecn=configuration_factory().ecn)
    if preferred_sock is not None:
        server.add_socket(preferred_sock)
    try:
        if stop is None:
            await asyncio.Event().wait()
        else:
            await stop.wait()
    finally:
        server.shutdown()
        server.close()
        await close_upstream_pools()
        for conn in list(endpoint.connections):
            conn.release()
