"""HTTP/3 download client on our QUIC stack: one connection per authority, all requests in parallel."""

from __future__ import annotations

import asyncio
import ipaddress
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
from .driver import Driver
from .udp import open_udp_socket


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


class QuicClientSession(Driver):
    """One client connection carrying a set of downloads."""

    def __init__(self, sock: socket.socket, conn: QuicConnection, authority: str,
                 downloads: list[Download], loop: asyncio.AbstractEventLoop | None = None):
        super().__init__(sock, loop, ecn=conn.configuration.ecn)
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

    def connections(self) -> Iterable[QuicConnection]:
        return () if self.conn.is_terminated else (self.conn,)

    def start(self, addr: Any) -> None:
        """Send the first flight."""
        now = self.now()
        self._started_at = now
        self.conn.connect(addr, now)
        self.service([self.conn], now)

    def handle_events(self, conn: QuicConnection, now: float) -> None:
        while (event := conn.next_event()) is not None:
            if isinstance(event, events.HandshakeCompleted):
                self.handshake_time = now - self._started_at
                self.h3 = H3Client(H3Connection(conn, is_client=True), authority=self.authority)
                for d in self.downloads:
                    d.started = now
                    d.stream_id = self.h3.get(d.path, sink=self._sink(d))
                    self._by_stream[d.stream_id] = d
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
) -> list[Download]:
    """Download every URL (one connection per authority). Never raises for transfer errors."""
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
            sock = open_udp_socket(bind, 0)
            cfg = make_config(host)
            cfg.is_client = True
            if cfg.server_name is None and not _is_ip(host):
                cfg.server_name = host
            named = f"[{host}]" if ":" in host else host  # an IPv6 literal (RFC 3986 §3.2.2)
            authority = named if port == 443 else f"{named}:{port}"
            session = QuicClientSession(sock, QuicConnection(configuration=cfg), authority, group)
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
        for s in sessions:
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
