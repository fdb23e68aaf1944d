"""Enter a network namespace from Python (``setns(2)`` through ctypes).

Used by the emulator to attach TUN devices and by lab tests to open sockets
inside a namespace without a subprocess: a socket keeps the namespace it was
created in after the thread returns to its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
from collections.abc import Iterator

__all__ = ["NETNS_DIR", "in_netns", "socket_in_netns"]

NETNS_DIR = "/run/netns"
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns({what}): {os.strerror(e)}")


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the body with the calling thread inside netns ``name`` (``ip netns`` name)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target, name)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own, "own namespace")
    finally:
        os.close(own)


def socket_in_netns(name: str, family: int = socket.AF_INET,
                    type: int = socket.SOCK_DGRAM) -> socket.socket:
    """A new socket that lives in netns ``name``."""
    with in_netns(name):
        return socket.socket(family, type)
