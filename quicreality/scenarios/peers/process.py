"""Start peer processes from :class:`~.base.Command` values, wait for them, always clean up.

* Processes run in their own session (process group), stdin from /dev/null, stdout/stderr to
  files in a log directory (no pipe can fill up and stall a peer).
* :meth:`PeerProcess.wait_udp_ready` waits until a process of the group has bound the UDP port
  (read from ``/proc``), failing early with the peer's stderr tail if it exits first.
* :meth:`PeerProcess.stop` sends SIGTERM to the group (peers flush qlog on it), then SIGKILL.
  ``with PeerProcess(...) as p:`` stops it however the block ends.
* :attr:`PeerProcess.cpu_s` is the process's CPU time (user + system, from ``/proc/PID/stat``),
  read by :meth:`PeerProcess.poll` just before an exited process is reaped and by
  :meth:`PeerProcess.stop` before its signal, so a workload can report CPU seconds per byte.
  ``ip netns exec`` execs the command in place, so the PID is the peer's own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from .base import Command


class PeerFailed(RuntimeError):
    """A peer exited, or did not get ready / finish in time."""


_TCP_LISTEN = "0A"


def _socket_inodes(port: int, proto: str, pid: int | None = None) -> set[str]:
    """Inodes of sockets bound to local ``port`` (``proto`` "udp", or "tcp" = listening).

    With ``pid``, the tables of that process's network namespace (``/proc/PID/net``) are read,
    so a peer started inside another namespace (``ip netns exec``) is seen too.
    """
    inodes: set[str] = set()
    base = "/proc/net" if pid is None else f"/proc/{pid}/net"
    for table in (f"{base}/{proto}", f"{base}/{proto}6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if int(cols[1].rsplit(":", 1)[1], 16) != port:
                continue
            if proto == "tcp" and cols[3] != _TCP_LISTEN:
                continue
            inodes.add(cols[9])
    return inodes


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (its own, not its children's) from ``/proc/PID/stat``;
    an exited process that is not yet reaped (a zombie) still reports them. None if unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state): utime is field 14
    try:
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (IndexError, ValueError):
        return None


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:  # fields: state ppid pgrp ...
            pids.append(int(entry))
    return pids


def group_has_port(pgid: int, port: int, proto: str = "udp") -> bool:
    """True if a process of group ``pgid`` has a UDP socket bound to / a TCP socket listening on
    ``port`` (``proto`` is ``"udp"`` or ``"tcp"``). Works whatever network namespace the group
    runs in (each process's own ``/proc/PID/net`` tables are read)."""
    for pid in _group_pids(pgid):
        inodes = _socket_inodes(port, proto, pid)
        if not inodes:
            continue
        want = {f"socket:[{i}]" for i in inodes}
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in want:
                    return True
            except OSError:
                continue
    return False


@dataclass(frozen=True, slots=True)
class Finished:
    """A process that ran to its end."""

    returncode: int
    stdout: str
    stderr: str
    secs: float
    stdout_path: Path
    stderr_path: Path


class PeerProcess:
    """One peer process with logs in ``log_dir/<name>.{stdout,stderr}``."""

    def __init__(self, cmd: Command, *, name: str, log_dir: str | os.PathLike[str]) -> None:
        self.cmd = cmd
        self.name = name
        self.log_dir = Path(log_dir)
        self.stdout_path = self.log_dir / f"{name}.stdout"
        self.stderr_path = self.log_dir / f"{name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        #: CPU seconds (user + system) at the last sample; None before the first
        self.cpu_s: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PeerProcess:
        """Create the command's dirs and start it."""
        if self.proc is not None:
            raise RuntimeError(f"{self.name} already started")
        self.cmd.prepare()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                list(self.cmd.argv), env=self.cmd.full_env(), cwd=self.cmd.cwd,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        """Process id (also the process group id)."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} not started")
        return self.proc.pid

    def running(self) -> bool:
        """Started and not yet exited."""
        return self.proc is not None and self.poll() is None

    def sample_cpu(self) -> float | None:
        """Read the process's CPU seconds into :attr:`cpu_s` (kept if it cannot be read)."""
        if self.proc is not None and self.proc.returncode is None:
            value = cpu_seconds(self.proc.pid)
            if value is not None:
                self.cpu_s = value
        return self.cpu_s

    def poll(self) -> int | None:
        """``Popen.poll()``, with :attr:`cpu_s` read once the process has exited and before it
        is reaped (``waitid(WNOWAIT)``), so the figure covers the whole run."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            try:
                exited = os.waitid(os.P_PID, self.proc.pid,
                                   os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                exited = None
            if exited is not None:
                self.sample_cpu()
        return self.proc.poll()

    def stdout(self) -> str:
        """What it wrote to stdout so far."""
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        """What it wrote to stderr so far."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def describe(self, tail: int = 25) -> str:
        """argv, exit status and the last lines of stderr/stdout, for error messages."""
        rc = None if self.proc is None else self.proc.poll()

        def last(text: str) -> str:
            return "\n".join(text.splitlines()[-tail:])

        return (f"{self.name}: argv={list(self.cmd.argv)} env+={dict(self.cmd.env)} rc={rc}\n"
                f"--- stderr tail ---\n{last(self.stderr())}\n"
                f"--- stdout tail ---\n{last(self.stdout())}")

    def wait_udp_ready(self, port: int, timeout: float = 15.0) -> None:
        """Wait until this process (group) has bound UDP ``port``; raise :class:`PeerFailed`."""
        self._wait_port(port, "udp", timeout)

    def wait_tcp_ready(self, port: int, timeout: float = 15.0) -> None:
        """Wait until this process (group) listens on TCP ``port``; raise :class:`PeerFailed`."""
        self._wait_port(port, "tcp", timeout)

    def _wait_port(self, port: int, proto: str, timeout: float) -> None:
        what = f"{proto.upper()} {port}"
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise PeerFailed(f"{self.name} exited before binding {what}\n{self.describe()}")
            if group_has_port(self.pid, port, proto):
                return
            if time.monotonic() > deadline:
                raise PeerFailed(f"{self.name} did not bind {what} within {timeout}s\n"
                                 f"{self.describe()}")
            time.sleep(0.02)

    def wait(self, timeout: float) -> Finished:
        """Wait for the exit; on timeout stop it and raise :class:`PeerFailed`."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} not started")
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise PeerFailed(f"{self.name} still running after {timeout}s\n{self.describe()}") from None
        return Finished(rc, self.stdout(), self.stderr(), time.monotonic() - self.started_at,
                        self.stdout_path, self.stderr_path)

    def stop(self, grace: float = 3.0) -> int | None:
        """SIGTERM the process group, SIGKILL after ``grace`` s; returns the exit status."""
        if self.proc is None:
            return None
        if self.poll() is None:
            self.sample_cpu()
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(timeout=10)
        # leftovers of the group (children that outlived the leader)
        self._signal_group(signal.SIGKILL)
        return self.proc.returncode

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> Self:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def run(cmd: Command, *, name: str, log_dir: str | os.PathLike[str], timeout: float) -> Finished:
    """Run ``cmd`` to completion (stopping it on timeout) and return what it did."""
    with PeerProcess(cmd, name=name, log_dir=log_dir) as p:
        return p.wait(timeout)
