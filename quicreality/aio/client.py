"""HTTP/3 download client on our QUIC stack: one connection per authority, all requests in parallel."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from ..h3.client import H3Client
from ..h3.connection import H3Connection
from ..quic import events
from ..quic.config import QuicConfiguration
from ..quic.connection import QuicConnection
from ..quic.connection.migration import MigrationVerdict
from ..tls.resumption import SessionTicket
from .driver import Driver
from .udp import open_udp_socket

log = logging.getLogger("quicreality.client")

@dataclass
class Download:
    """One URL: where it goes and how it went."""

    url: str
    path: str
    output: Path | None
    stream_id: int = -1
    status: int | None = None
    bytes: int = 0
    started: float = 0.0
    finished: float = 0.0
    error: str | None = None
    #: the connection's 0-RTT status: none, offered, accepted or rejected
    early_data: str = "none"
    _file: BinaryIO | None = field(default=None, repr=False)

    @property
    def seconds(self) -> float:
        """Time from request to completion."""
        return max(self.finished - self.started, 1e-9)

    @property
    def mbps(self) -> float:
        """Goodput in Mbit/s."""
        return self.bytes * 8 / self.seconds / 1e6

    @property
    def ok(self) -> bool:
        """Completed with a 2xx status and no error."""
        return self.error is None and self.status is not None and 200 <= self.status < 300


def split_url(url: str) -> tuple[str, int, str]:
    """Return (host, port, path) of an https URL; raise ValueError with a clear message."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"invalid URL {url!r}: expected https://HOST[:PORT]/PATH")
    try:
        port = parts.port or 443
    except ValueError:
        raise ValueError(f"invalid port in URL {url!r}") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, port, path


def output_names(urls: list[str]) -> list[str]:
    """File names for downloads: the URL path's basename, made unique with .1, .2, ..."""
    seen: dict[str, int] = {}
    names = []
    for url in urls:
        base = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or "index.html"
        n = seen.get(base, 0)
        seen[base] = n + 1
        names.append(base if n == 0 else f"{base}.{n}")
    return names


@dataclass
class ClientOptions:
    """What the client does besides downloading.

    Attributes:
        on_ticket: called with each session ticket the server issues (to store it).
        early_data: send the requests as 0-RTT when the connection's ticket allows it.
        key_update: initiate one key update once the handshake is confirmed (RFC 9001 §6).
        ticket_wait: seconds to wait, after the downloads, for a ticket not yet received.
    """

    on_ticket: Callable[[SessionTicket], None] | None = None
    early_data: bool = False
    key_update: bool = False
    ticket_wait: float = 1.0


class QuicClientSession(Driver):
    """One client connection carrying a set of downloads."""

    lazy_metrics = True  # a client serves no metrics: prometheus_client is not imported at start

    def __init__(self, sock: socket.socket, conn: QuicConnection, authority: str,
                 downloads: list[Download], loop: asyncio.AbstractEventLoop | None = None,
                 options: ClientOptions | None = None, *, migrate: bool = False):
        super().__init__(sock, loop, ecn=conn.configuration.ecn)
        self.options = options or ClientOptions()
        self.ticket_received = asyncio.Event()
        #: the 0-RTT outcome, once known (None: no 0-RTT attempted)
        self.early_data: events.EarlyDataResult | None = None
        #: migrate once the handshake is confirmed (``--migrate``); the verdict is kept
        self.migrate_pending = migrate
        self.migration: MigrationVerdict | None = None
        self.conn = conn
        self.authority = authority
        self.downloads = downloads
        self.h3: H3Client | None = None
        self.done = asyncio.Event()
        self.handshake_error: str | None = None
        self.handshake_time: float | None = None
        self._by_stream: dict[int, Download] = {}
        self._started_at = 0.0

    def datagram_received(self, data: bytes, addr: Any, now: float,
                          ecn: int = 0) -> Iterable[QuicConnection]:
        self.conn.receive_datagram(data, addr, now, ecn)
        return (self.conn,)

    def process_batch(self, batch: Iterable[tuple[bytes, Any, int]], now: float) -> None:
        """:meth:`Driver.process_batch` for the one connection: each datagram straight to it."""
        receive = self.conn.receive_datagram
        received = 0
        for data, addr, ecn in batch:
            received += len(data)
            try:
                receive(data, addr, now, ecn)
            except Exception:
                log.exception("internal error while processing a datagram from %s", addr)
        self.bytes_received += received
        self.service((self.conn,), now)

    def connections(self) -> Iterable[QuicConnection]:
        return () if self.conn.is_terminated else (self.conn,)

    def start(self, addr: Any) -> None:
        """Send the first flight."""
        now = self.now()
        self._started_at = now
        self.conn.connect(addr, now)
        if self.options.early_data and self.conn.early_data.can_send:
            self._send_requests(now)  # in 0-RTT (RFC 9001 §4.6.1)
        self.service([self.conn], now)

    def _send_requests(self, now: float) -> None:
        self.h3 = H3Client(H3Connection(self.conn, is_client=True), authority=self.authority)
        for d in self.downloads:
            d.started = now
            d.stream_id = self.h3.get(d.path, sink=self._sink(d))
            self._by_stream[d.stream_id] = d

    def _try_migration(self, conn: QuicConnection, now: float) -> None:
        """Active migration (RFC 9000 §9.2) from a new socket: to the server's preferred address
        if it offered one (§9.6), else to a new local port towards the same address."""
        verdict = conn.migrate(now, to_preferred_address=True)
        if not verdict.accepted and verdict.retry:
            return  # asked again after the next datagrams (the handshake is not confirmed yet)
        self.migrate_pending = False
        self.migration = verdict
        if not verdict.accepted:
            log.warning("not migrating: %s", verdict.reason)
            return
        # The new path is in use from the next datagram on: send it from a new socket.
        v6 = ":" in str(verdict.peer_address[0])
        try:
            sock = open_udp_socket("::" if v6 else "0.0.0.0", 0)
        except OSError as exc:
            log.error("migration: cannot open a new socket (%s); staying on the old one", exc)
            return
        self.add_socket(sock, primary=True)
        log.info("migrated: local %s -> %s (%s)", sock.getsockname()[:2], verdict.peer_address,
                 verdict.reason)

    def handle_events(self, conn: QuicConnection, now: float) -> None:
        if self.migrate_pending and self.h3 is not None:
            self._try_migration(conn, now)
        while (event := conn.next_event()) is not None:
            if isinstance(event, events.HandshakeCompleted):
                self.handshake_time = now - self._started_at
                if self.options.key_update:
                    conn.request_key_update(now)  # carried out once the handshake is confirmed
                if self.h3 is None:
                    self._send_requests(now)
                continue
            if isinstance(event, events.SessionTicketReceived):
                if self.options.on_ticket is not None:
                    self.options.on_ticket(event.ticket)
                self.ticket_received.set()
                continue
            if isinstance(event, events.EarlyDataResult):
                self.early_data = event
                continue
            if self.h3 is None:
                if isinstance(event, events.ConnectionTerminated):
                    self.handshake_error = (
                        f"connection failed ({event.error_code:#x}): {event.reason_phrase}")
                    self._finish_all(now)
                continue
            self.h3.handle_event(event)
            self._collect(now)

    def _sink(self, d: Download) -> Callable[[int, bytes], None]:
        def write(offset: int, chunk: bytes) -> None:
            d.bytes += len(chunk)
            if d._file is not None:
                d._file.write(chunk)
        return write

    def _collect(self, now: float) -> None:
        assert self.h3 is not None
        for sid, rec in self.h3.responses.items():
            d = self._by_stream.get(sid)
            if d is None or d.finished:
                continue
            if rec.done:
                d.finished = now
                d.status = rec.status
                d.error = rec.error
                if d._file is not None:
                    d._file.close()
                    d._file = None
        if all(d.finished for d in self.downloads):
            self.done.set()

    def _finish_all(self, now: float) -> None:
        for d in self.downloads:
            if not d.finished:
                d.finished = now
                d.error = d.error or self.handshake_error or "connection closed"
        self.done.set()

    def connection_gone(self, conn: QuicConnection) -> None:
        self._finish_all(self.now())


async def fetch_all(
    urls: list[str],
    make_config: Callable[[str], QuicConfiguration],
    *,
    out_dir: Path | None,
    timeout: float = 300.0,
    connect_to: tuple[str, int] | None = None,
    options: ClientOptions | None = None,
    migrate: bool = False,
) -> list[Download]:
    """Download every URL (one connection per authority). Never raises for transfer errors.

    ``migrate``: each connection migrates once its handshake is confirmed (RFC 9000 §9.2), to
    the server's preferred address if it offered one (§9.6).
    """
    options = options or ClientOptions()
    names = output_names(urls)
    groups: dict[tuple[str, int], list[Download]] = {}
    for url, name in zip(urls, names, strict=False):
        host, port, path = split_url(url)
        d = Download(url=url, path=path, output=(out_dir / name) if out_dir else None)
        groups.setdefault((host, port), []).append(d)
    for group in groups.values():
        for d in group:
            if d.output is not None:
                d._file = open(d.output, "wb")  # noqa: SIM115 - closed on completion
    sessions = []
    loop = asyncio.get_running_loop()
    try:
        for (host, port), group in groups.items():
            target = connect_to or (host, port)
            info = await loop.getaddrinfo(target[0], target[1], type=socket.SOCK_DGRAM)
            family, _, _, _, addr = info[0]
            bind = "::" if family == socket.AF_INET6 else "0.0.0.0"
            sock = open_udp_socket(bind, 0, dont_fragment=True)
            cfg = make_config(host)
            cfg.is_client = True
            if cfg.server_name is None and not _is_ip(host):
                cfg.server_name = host
            named = f"[{host}]" if ":" in host else host  # an IPv6 literal (RFC 3986 §3.2.2)
            authority = named if port == 443 else f"{named}:{port}"
            session = QuicClientSession(sock, QuicConnection(configuration=cfg), authority, group,
                                        options=options, migrate=migrate)
            sessions.append(session)
            session.start(addr)
        try:
            await asyncio.wait_for(asyncio.gather(*(s.done.wait() for s in sessions)), timeout)
        except TimeoutError:
            for s in sessions:
                for d in s.downloads:
                    if not d.finished:
                        d.finished = s.now()
                        d.error = f"timed out after {timeout:.0f} s"
        if options.on_ticket is not None:  # the ticket follows the handshake; give it a moment
            pending = [s.ticket_received.wait() for s in sessions
                       if not s.ticket_received.is_set() and not s.conn.is_terminated]
            if pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*pending), options.ticket_wait)
        for s in sessions:
            for d in s.downloads:
                d.early_data = s.conn.early_data.status
            if not s.conn.is_terminated:
                s.conn.close(0, None, "done")
                s.transmit(s.conn, s.now())
    finally:
        for s in sessions:
            s.close()
            s.sock.close()
            s.conn.release()
        for group in groups.values():
            for d in group:
                if d._file is not None:
                    d._file.close()
                    d._file = None
    return [d for group in groups.values() for d in group]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
