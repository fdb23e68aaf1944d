"""Capturing handshakes for the fingerprint tool: a loopback namespace where each datagram is seen.

On ``lo``, ``tx-udp-segmentation`` is on, so a sender's UDP GSO super-packet (our server, ngtcp2
and quic-go send runs of datagrams with one ``sendmsg``) reaches tcpdump *before* the kernel cuts
it: the capture shows one 3,000-byte "datagram" instead of three. Turning the feature off on the
host's ``lo`` would change the machine for everyone, so :class:`LoopbackNamespace` makes a fresh
network namespace (``qrfp-<pid>-<n>``), brings its own ``lo`` up and switches off
``tx-udp-segmentation`` there only: the kernel then segments in software before the packet tap,
and tcpdump sees every datagram as the receiver gets it (measured: a 3,000-byte GSO send with
segment size 1,200 shows as 1 packet with the feature on, as 1200 + 1200 + 600 with it off).

Everything a capture needs (servers, clients, tcpdump) runs inside it through
:attr:`LoopbackNamespace.exec_prefix`. On exit the processes still in the namespace (all started
by the caller) are stopped by pid and the namespace is deleted. Root is required.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from quicreality.scenarios.capture import Capture, start_capture

__all__ = ["LoopbackNamespace", "capture_udp_port"]

_counter = itertools.count(1)


def _run(argv: list[str]) -> None:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> exit {r.returncode}: {r.stderr.strip()}")


class LoopbackNamespace:
    """A network namespace with only ``lo``, up, with UDP GSO segmentation done in software.

    Args:
        name: Namespace name (default ``qrfp-<pid>-<n>``; the scenario cleaner does not touch it).
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"qrfp-{os.getpid()}-{next(_counter)}"
        self._created = False

    @property
    def exec_prefix(self) -> list[str]:
        """``["ip", "netns", "exec", NAME]``."""
        return ["ip", "netns", "exec", self.name]

    def wrap(self, argv: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        """``argv`` run inside the namespace."""
        return (*self.exec_prefix, *argv)

    def __enter__(self) -> Self:
        _run(["ip", "netns", "add", self.name])
        self._created = True
        try:
            _run(["ip", "-n", self.name, "link", "set", "lo", "up"])
            _run([*self.exec_prefix, "ethtool", "-K", "lo", "tx-udp-segmentation", "off"])
        except Exception:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def pids(self) -> list[int]:
        """Processes running inside the namespace."""
        r = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True,
                           timeout=30, check=False)
        return [int(x) for x in r.stdout.split() if x.isdigit()]

    def close(self) -> None:
        """Stop the processes left inside (SIGTERM, then SIGKILL) and delete the namespace."""
        if not self._created:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 3
            while pids and self.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30,
                       check=False)
        self._created = False


def capture_udp_port(ns: LoopbackNamespace, port: int, out: Path) -> Capture:
    """Start tcpdump on the namespace's ``lo`` for ``udp port PORT`` (stop it with ``.stop()``)."""
    return start_capture(ns.exec_prefix, "lo", str(out), f"udp port {port}")
