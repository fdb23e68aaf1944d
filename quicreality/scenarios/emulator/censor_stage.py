"""The censor stage of the userspace emulator: the I/O around :class:`~..censor.Censor`.

The relay loop (:mod:`.relay`) calls :meth:`CensorStage.to_server` / :meth:`CensorStage.to_client`
for every packet read from a TUN, before the link model: a packet the censor drops never enters
the link. The stage appends every decision record to ``censor_log`` (JSON lines, flushed per
batch), resets the censor on a re-arm (the runner re-arms before and after every repetition, so
a residual block of one repetition never leaks into the next), and runs the active prober
(:mod:`..censor.prober`): UDP sockets created inside the server namespace, bound to
``prober_addr`` (an address of that namespace), so probes never leave our namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable
from typing import IO, Any

from ..censor import Censor, ProbeRequest, build_censor
from ..censor.config import probe_settings
from ..censor.prober import ProbeSession
from ..nsutil import in_netns

__all__ = ["PROBE_GAP_S", "PROBE_PACE_S", "PROBE_RESEND_S", "CensorStage"]

#: Gap between the datagrams one probe sends to one endpoint, and between probe classes (the
#: server's and the target's copy of one probe go together). With every probe sent at once
#: (12 new connections within microseconds) quic-go often lost the second datagram of a
#: two-datagram hello and answered only with an ACK (seen in its qlog in censor-gfw, and
#: reproduced on loopback: 2 bursts in 4, then 1 in 8, lost it; none in 8 with these gaps).
PROBE_PACE_S = 0.002
PROBE_GAP_S = 0.05
#: Every probe is sent a second time this much later, as a client resends its Initials on PTO.
#: Even paced, quic-go sometimes lost the second datagram of a new connection's hello (the real
#: Chromium client's too, through the listener: its qlog shows Chromium's resend 600 ms later
#: completing it); without the resend such a probe got only an ACK on one side.
PROBE_RESEND_S = 0.3


class CensorStage:
    """The censor between the two TUNs, with its log and prober sockets.

    Args:
        table: The validated ``[censor]`` table.
        log_path: ``censor.jsonl`` of the run (appended to).
        now: The loop's clock at start.
        server_netns: Namespace the prober's sockets live in.
        listener: (address, port) the prober probes besides the suspected server itself.
        target: (address, port) of the real site the answers are compared with.
        prober_addr: Source address of the probes (in ``server_netns``).
        rng: Random bytes for the probes.
    """

    def __init__(self, table: dict[str, Any], log_path: str | None, now: float, *,
                 server_netns: str, target: tuple[str, int] | None, prober_addr: str | None,
                 rng: Callable[[int], bytes] = os.urandom) -> None:
        self.censor: Censor = build_censor(table, origin=now)
        self._probe_cfg = probe_settings(table)
        self._netns = server_netns
        self._target = target
        self._prober_addr = prober_addr
        self._rng = rng
        self._log: IO[str] | None = open(log_path, "a", buffering=1) if log_path else None  # noqa: SIM115
        self._queued: list[tuple[float, ProbeRequest]] = []  # (when to send, request)
        #: probe datagrams still to send: (when, socket, datagram, address)
        self._sends: list[tuple[float, socket.socket, bytes, tuple[str, int]]] = []
        self._sessions: list[tuple[ProbeSession, list[socket.socket]]] = []
        self._by_fd: dict[int, tuple[ProbeSession, int, socket.socket]] = {}
        self.probe_errors = 0

    # ------------------------------------------------------------------ packets

    def to_server(self, pkt: bytes, now: float) -> bool:
        """True if the client -> server packet may go on."""
        return self.censor.to_server(pkt, now) is None

    def to_client(self, pkt: bytes, now: float) -> bool:
        """True if the server -> client packet may go on."""
        return self.censor.to_client(pkt, now) is None

    # ------------------------------------------------------------------ the loop's hooks

    def fds(self) -> list[int]:
        """Prober sockets to select on."""
        return list(self._by_fd)

    def next_timer(self) -> float | None:
        """The earliest prober deadline."""
        timers = [t for s, _ in self._sessions if (t := s.get_timer()) is not None]
        timers += [due for due, _ in self._queued] + [due for due, *_ in self._sends]
        return min(timers) if timers else None

    def on_readable(self, fd: int, now: float) -> None:
        """Read a prober socket's answers into its session."""
        session, index, sock = self._by_fd[fd]
        while True:
            try:
                data = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            session.receive(index, data, now)

    def poll(self, now: float) -> None:
        """Start probes that are due (``delay_s`` after the decision), finish expired ones,
        flush the log."""
        delay = self._probe_cfg.delay_s if self._probe_cfg is not None else 0.0
        while (req := self.censor.next_probe()) is not None:
            self._queued.append((req.requested_at + delay, req))
        for item in [q for q in self._queued if q[0] <= now]:
            self._queued.remove(item)
            self._start_probe(item[1], now)
        for send in [x for x in self._sends if x[0] <= now]:
            self._sends.remove(send)
            with contextlib.suppress(OSError):
                send[1].sendto(send[2], send[3])
        for session, socks in list(self._sessions):
            session.handle_timer(now)
            if session.done:
                verdict, detail = session.verdict()
                self.censor.probe_result(session.request, verdict, detail, now,
                                         shapes=session.shapes())
                for s in socks:
                    self._by_fd.pop(s.fileno(), None)
                    s.close()
                self._sessions.remove((session, socks))
        self.flush()

    def _start_probe(self, req: ProbeRequest, now: float) -> None:
        """Open the prober's sockets (in the server namespace) and send every probe."""
        cfg = self._probe_cfg
        if cfg is None or self._target is None or self._prober_addr is None:
            self.censor.probe_result(req, "target-like", "no prober configured", now)
            return
        server = (req.flow[2], req.flow[3])
        session = ProbeSession(req, server=server, target=self._target, timeout_s=cfg.timeout_s,
                               rng=self._rng, now=now)
        socks: list[socket.socket] = []
        try:
            with in_netns(self._netns):
                for _ in session.endpoints():
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    s.setblocking(False)
                    s.bind((self._prober_addr, 0))
                    socks.append(s)
            for i, (addr, datagrams) in enumerate(session.endpoints()):
                start = now + (i // 2) * PROBE_GAP_S  # one probe class after the other
                for again in (0.0, PROBE_RESEND_S):  # sent twice, like a client's PTO resend
                    for k, d in enumerate(datagrams):
                        self._sends.append((start + again + k * PROBE_PACE_S, socks[i], d, addr))
        except OSError as e:
            self.probe_errors += 1
            for s in socks:
                s.close()
            self.censor.probe_result(req, "target-like", f"prober failed: {e}", now)
            return
        for i, s in enumerate(socks):
            self._by_fd[s.fileno()] = (session, i, s)
        self._sessions.append((session, socks))

    # ------------------------------------------------------------------ log, re-arm, end

    def flush(self) -> None:
        """Write the censor's new decision records to the log."""
        records = self.censor.pop_records()
        if self._log is not None and records:
            self._log.write("".join(json.dumps(r) + "\n" for r in records))

    def rearm(self, now: float, seed: int) -> None:
        """Forget flows and blocks; mark the re-arm in the log."""
        self.flush()
        for _, socks in self._sessions:
            for s in socks:
                s.close()
        self._sessions.clear()
        self._queued.clear()
        self._sends.clear()
        self._by_fd.clear()
        self.censor.reset(now)
        if self._log is not None:
            self._log.write(json.dumps({"event": "rearm", "seed": seed}) + "\n")

    def stats(self) -> dict[str, Any]:
        """The censor's counters (for the emulator's stats JSON)."""
        return {**self.censor.stats(), "probe_errors": self.probe_errors}

    def close(self) -> None:
        """Flush the log, close it and the prober sockets."""
        self.flush()
        for _, socks in self._sessions:
            for s in socks:
                s.close()
        if self._log is not None:
            self._log.close()
            self._log = None
