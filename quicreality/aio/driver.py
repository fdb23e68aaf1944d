"""The thin asyncio edge: feeds a UDP socket's datagrams to sans-IO connections in batches.

One wake-up drains up to 64 datagrams, hands each to the protocol, then runs the send path once
for every connection touched, and re-arms a single timer at the earliest connection deadline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..quic.config import QuicConfiguration
from ..quic.connection import QuicConnection
from .udp import UdpIO, ViaSocket

if TYPE_CHECKING:  # imported on first use: prometheus_client and http.server cost a client's start-up
    from ..metrics import DatagramMetrics

log = logging.getLogger("quicreality.aio")


def edge_configuration(**kwargs: Any) -> QuicConfiguration:
    """A configuration with the edge's randomness and wall clock (see :func:`apply_observability`)."""
    cfg = QuicConfiguration(rng=os.urandom, wall_clock=time.time, **kwargs)
    return cfg


#: Key logs hold every traffic secret: only the owner may read them.
KEYLOG_MODE = 0o600


class KeyLogFile:
    """Appends NSS key-log lines (SSLKEYLOGFILE format) to a file, flushing each line.

    The file is created with mode 0600; an existing regular file that others may read is
    narrowed to 0600 before anything is written to it.

    Raises:
        OSError: the file cannot be opened, or it is readable by others and cannot be narrowed.
    """

    def __init__(self, path: str | os.PathLike[str]):
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(path, flags, KEYLOG_MODE)
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISREG(mode) and mode & 0o077:
                os.fchmod(fd, KEYLOG_MODE)
            self._file = os.fdopen(fd, "a", encoding="ascii")
        except BaseException:
            os.close(fd)
            raise

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
                        keylog: str | None, qlog_flavour: str = "0.3",
                        keylog_from_env: bool = False) -> list[Callable[[], None]]:
    """Attach qlog and key-log outputs (CLI options override QLOGDIR / SSLKEYLOGFILE).

    Args:
        keylog_from_env: honour ``SSLKEYLOGFILE`` when ``keylog`` is not given. Clients do
            (the curl convention); servers write secrets only when their command line asks.

    Raises:
        OSError: the key log cannot be opened safely (see :class:`KeyLogFile`).
    """
    closers: list[Callable[[], None]] = []
    qlog_dir = qlog_dir or os.environ.get("QLOGDIR")
    if not keylog and keylog_from_env:
        keylog = os.environ.get("SSLKEYLOGFILE")
    if qlog_dir:
        cfg.qlog_factory = qlog_factory(qlog_dir, qlog_flavour)
    if keylog:
        writer = KeyLogFile(keylog)
        cfg.secrets_log = writer
        closers.append(writer.close)
    return closers


class Driver:
    """Base class: owns the socket, the batch loop and the timer; subclasses route datagrams."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop | None = None, *,
                 ecn: bool = True):
        """``ecn``: read and set IP ECN codepoints on the socket (RFC 9000 §13.4)."""
        self.sock = sock
        self.io = UdpIO(sock, gso=os.environ.get("QR_NO_GSO") != "1",
                        gro=os.environ.get("QR_NO_GRO") != "1", ecn=ecn)
        self.loop = loop or asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.loop.add_reader(sock.fileno(), self._on_readable, self.io, 0)
        self.bytes_sent = 0
        self.bytes_received = 0
        #: the listening sockets; ``via`` of a :class:`ViaSocket` address indexes them
        self._listening: list[UdpIO] = [self.io]
        #: sockets handed over by :meth:`add_socket` (closed by :meth:`close`)
        self._more: list[UdpIO] = []
        self._datagram_metrics: DatagramMetrics | None = None
        if not self.lazy_metrics:
            self._datagram_metrics = self.datagram_metrics

    #: True: the DATAGRAM drop counters (and ``quicreality.metrics``) are created at the first
    #: drop, not at start (a client serves no metrics); False: at start, all series at 0
    lazy_metrics = False

    @property
    def datagram_metrics(self) -> DatagramMetrics:
        """The process-wide Prometheus counters the core's DATAGRAM drops go to."""
        if self._datagram_metrics is None:
            from ..metrics import datagram_metrics

            self._datagram_metrics = datagram_metrics()
        return self._datagram_metrics

    @datagram_metrics.setter
    def datagram_metrics(self, value: DatagramMetrics) -> None:
        self._datagram_metrics = value

    def _observe_drops(self, conn: QuicConnection) -> None:
        """Count ``conn``'s new DATAGRAM drops (creating the counters only when there are any)."""
        if self._datagram_metrics is not None:
            self._datagram_metrics.observe(conn)
            return
        new = conn.datagrams.take_new_drops()
        if any(new):
            self.datagram_metrics.add(new)

    def add_socket(self, sock: socket.socket, *, primary: bool = False) -> None:
        """Also read ``sock``; the driver owns it from now on (:meth:`close` closes it).

        ``primary`` (a client that migrated, RFC 9000 §9.2): everything is sent from ``sock``
        from now on; the old socket is still read for packets in flight. Otherwise (a server's
        preferred address, §9.6) ``sock`` listens too: its peers' addresses reach the core as
        :class:`ViaSocket` values (a peer behind another local address is another path) and
        are answered from it.
        """
        io = UdpIO(sock, gso=self.io.gso, gro=os.environ.get("QR_NO_GRO") != "1",
                   ecn=self.io.ecn)
        self._more.append(self.io if primary else io)
        if primary:
            self.loop.add_reader(sock.fileno(), self._on_readable, io, 0)
            self.io = self._listening[0] = io
            self.sock = sock
            return
        self.loop.add_reader(sock.fileno(), self._on_readable, io, len(self._listening))
        self._listening.append(io)

    def send(self, datagrams: list[tuple[bytes, Any]], ecn: int | None = None) -> int:
        """Send ``datagrams``, each from the socket its address came through; returns bytes sent.

        ``ecn``: the IP ECN codepoint to send them with (None: as the previous send)."""
        if len(self._listening) == 1:
            return self.io.send(datagrams, ecn)
        sent = i = 0
        while i < len(datagrams):
            addr, j = datagrams[i][1], i + 1
            while j < len(datagrams) and datagrams[j][1] == addr:
                j += 1
            sent += self._listening[getattr(addr, "via", 0)].send(datagrams[i:j], ecn)
            i = j
        return sent

    # Subclass hooks ------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Any, now: float,
                          ecn: int = 0) -> Iterable[QuicConnection]:
        """Route one datagram (``ecn``: its IP ECN codepoint); return the connections it touched."""
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

    def _on_readable(self, io: UdpIO, via: int) -> None:
        batch = io.recv_batch()
        if not batch:
            return
        if via:
            batch = [(data, ViaSocket(addr, via), ecn) for data, addr, ecn in batch]
        self.process_batch(batch, self.now())

    def process_batch(self, batch: Iterable[tuple[bytes, Any, int]], now: float) -> None:
        """Route each ``(data, addr, ecn)``, then run the send path once per connection touched."""
        touched: dict[int, QuicConnection] = {}
        for data, addr, ecn in batch:
            self.bytes_received += len(data)
            try:
                for conn in self.datagram_received(data, addr, now, ecn):
                    touched[id(conn)] = conn
            except Exception:
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
            except Exception:
                log.exception("internal error on a connection; closing it")
                self._abort(conn, now)
        self._arm_timer()

    def _abort(self, conn: QuicConnection, now: float) -> None:
        from ..quic.errors import QuicErrorCode

        try:
            conn.close(QuicErrorCode.INTERNAL_ERROR, None, "internal error", application=False)
            self.bytes_sent += self.send(conn.datagrams_to_send(now))
            self._observe_drops(conn)
        except Exception:
            log.exception("could not close the failed connection")
        self.connection_gone(conn)

    def transmit(self, conn: QuicConnection, now: float) -> None:
        """Send everything the connection has ready (events produced meanwhile are handled),
        then count its new DATAGRAM drops (:class:`~quicreality.metrics.DatagramMetrics`)."""
        for _ in range(8):
            datagrams = conn.datagrams_to_send(now)
            if not datagrams:
                break
            self.bytes_sent += self.send(datagrams, conn.ecn.codepoint)
            self.handle_events(conn, now)
            if len(datagrams) < 64:
                break
        self._observe_drops(conn)
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
        """Run every due connection timer; a failing one closes only its connection."""
        self._timer = None
        self._timer_at = None
        now = self.now()
        due = []
        try:
            for conn in list(self.connections()):
                try:
                    t = conn.get_timer()
                    if t is not None and t <= now:
                        conn.handle_timer(now)
                        due.append(conn)
                except Exception:  # a bug must not stop the timers of every other connection
                    log.exception("internal error in a connection timer; closing it")
                    self._abort(conn, now)
        finally:
            self.service(due, now)  # re-arms the timer

    def close(self) -> None:
        """Stop reading and cancel the timer. The first socket is closed by its owner (after a
        migration: the primary one), those of :meth:`add_socket` here."""
        if self._timer is not None:
            self._timer.cancel()
        for io in (self.io, *self._more):
            try:
                self.loop.remove_reader(io.sock.fileno())
            except (ValueError, OSError):
                pass
            if io is not self.io:
                io.sock.close()
        self._more.clear()
