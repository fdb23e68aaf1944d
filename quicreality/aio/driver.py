"""The thin asyncio edge: feeds a UDP socket's datagrams to sans-IO connections in batches.

One wake-up drains up to 64 datagrams, hands each to the protocol, then runs the send path once
for every connection touched, and re-arms a single timer at the earliest connection deadline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..quic.config import QuicConfiguration
from ..quic.connection import QuicConnection
from .udp import UdpIO

log = logging.getLogger("quicreality.aio")


def edge_configuration(**kwargs: Any) -> QuicConfiguration:
    """A configuration with the edge's randomness and wall clock, plus keylog/qlog from the env."""
    cfg = QuicConfiguration(rng=os.urandom, wall_clock=time.time, **kwargs)
    return cfg


class KeyLogFile:
    """Appends NSS key-log lines (SSLKEYLOGFILE format) to a file, flushing each line."""

    def __init__(self, path: str | os.PathLike[str]):
        self._file = open(path, "a", encoding="ascii")  # noqa: SIM115 - closed in close()

    def __call__(self, line: str) -> None:
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def qlog_factory(directory: str | os.PathLike[str], flavour: str = "0.3") -> Callable[[bytes, bool], Any]:
    """Return a factory writing ``<odcid>_<client|server>.sqlog`` files into ``directory``."""
    from ..qlog.writer import JsonSeqWriter, qlog_path

    if flavour not in ("0.3", "draft"):
        raise ValueError(f"unknown qlog flavour {flavour!r} (0.3 or draft)")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)

    def make(odcid: bytes, is_client: bool) -> Any:
        return JsonSeqWriter(qlog_path(folder, odcid, is_client),
                             vantage_point="client" if is_client else "server",
                             odcid=odcid, flavour="draft" if flavour == "draft" else "0.3")

    return make


def apply_observability(cfg: QuicConfiguration, *, qlog_dir: str | None,
                        keylog: str | None, qlog_flavour: str = "0.3") -> list[Callable[[], None]]:
    """Attach qlog and key-log outputs (CLI options override QLOGDIR / SSLKEYLOGFILE)."""
    closers: list[Callable[[], None]] = []
    qlog_dir = qlog_dir or os.environ.get("QLOGDIR")
    keylog = keylog or os.environ.get("SSLKEYLOGFILE")
    if qlog_dir:
        cfg.qlog_factory = qlog_factory(qlog_dir, qlog_flavour)
    if keylog:
        writer = KeyLogFile(keylog)
        cfg.secrets_log = writer
        closers.append(writer.close)
    return closers


class Driver:
    """Base class: owns the socket, the batch loop and the timer; subclasses route datagrams."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop | None = None):
        self.sock = sock
        self.io = UdpIO(sock, gso=os.environ.get("QR_NO_GSO") != "1",
                        gro=os.environ.get("QR_NO_GRO") != "1")
        self.loop = loop or asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.loop.add_reader(sock.fileno(), self._on_readable)
        self.bytes_sent = 0
        self.bytes_received = 0

    # Subclass hooks ------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Any, now: float) -> Iterable[QuicConnection]:
        """Route one datagram; return the connections it touched."""
        raise NotImplementedError

    def connections(self) -> Iterable[QuicConnection]:
        """All live connections (for timers)."""
        raise NotImplementedError

    def handle_events(self, conn: QuicConnection, now: float) -> None:
        """Consume ``conn.next_event()`` until None and feed the application."""
        raise NotImplementedError

    def connection_gone(self, conn: QuicConnection) -> None:
        """Called once when a connection is terminated."""

    # Loop ----------------------------------------------------------------

    def now(self) -> float:
        """The clock handed to the core."""
        return self.loop.time()

    def _on_readable(self) -> None:
        batch = self.io.recv_batch()
        if not batch:
            return
        now = self.now()
        touched: dict[int, QuicConnection] = {}
        for data, addr in batch:
            self.bytes_received += len(data)
            try:
                for conn in self.datagram_received(data, addr, now):
                    touched[id(conn)] = conn
            except Exception:  # noqa: BLE001 - a bug must not take the whole endpoint down
                log.exception("internal error while processing a datagram from %s", addr)
        self.service(touched.values(), now)

    def service(self, conns: Iterable[QuicConnection], now: float | None = None) -> None:
        """Deliver events, run the send path once per connection, re-arm the timer."""
        if now is None:
            now = self.now()
        for conn in list(conns):
            try:
                self.handle_events(conn, now)
                self.transmit(conn, now)
            except Exception:  # noqa: BLE001 - close only the connection that failed
                log.exception("internal error on a connection; closing it")
                self._abort(conn, now)
        self._arm_timer()

    def _abort(self, conn: QuicConnection, now: float) -> None:
        from ..quic.errors import QuicErrorCode

        try:
            conn.close(QuicErrorCode.INTERNAL_ERROR, None, "internal error", application=False)
            self.bytes_sent += self.io.send(conn.datagrams_to_send(now))
        except Exception:  # noqa: BLE001
            log.exception("could not close the failed connection")
        self.connection_gone(conn)

    def transmit(self, conn: QuicConnection, now: float) -> None:
        """Send everything the connection has ready (events produced meanwhile are handled)."""
        for _ in range(8):
            datagrams = conn.datagrams_to_send(now)
            if not datagrams:
                break
            self.bytes_sent += self.io.send(datagrams)
            self.handle_events(conn, now)
            if len(datagrams) < 64:
                break
        if conn.is_terminated:
            self.connection_gone(conn)

    def _arm_timer(self) -> None:
        earliest: float | None = None
        for conn in self.connections():
            t = conn.get_timer()
            if t is not None and (earliest is None or t < earliest):
                earliest = t
        if earliest == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = earliest
        if earliest is not None:
            self._timer = self.loop.call_at(earliest, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self.now()
        due = []
        for conn in list(self.connections()):
            t = conn.get_timer()
            if t is not None and t <= now:
                conn.handle_timer(now)
                due.append(conn)
        self.service(due, now)

    def close(self) -> None:
        """Stop reading and cancel the timer (the socket is closed by its owner)."""
        if self._timer is not None:
            self._timer.cancel()
        try:
            self.loop.remove_reader(self.sock.fileno())
        except (ValueError, OSError):
            pass
