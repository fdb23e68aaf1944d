"""The fallback relay's sockets: one UDP socket per flow, connected to the target.

The gate decides (:mod:`quicreality.reality.gate`); this module only moves bytes. Each flow (client
address) gets its own socket, so the target sees one peer address per client, exactly as if the
client had come to it directly (a NAT-like mapping). Datagrams are sent as they are: never parsed,
never modified. What the target sends back on a flow's socket is handed to ``on_reply(addr, data)``;
the caller asks the gate whether to relay, hold or drop it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

log = logging.getLogger("quicreality.fallback")

#: Most datagrams read from one flow socket per wake-up.
_BATCH = 32


class FallbackRelay:
    """Per-flow sockets to the target.

    Args:
        target: the target's resolved socket address (as from ``getaddrinfo``).
        family: its address family.
        on_reply: called as ``on_reply(client_addr, datagram)`` for each datagram the target sends.
        loop: the event loop (default: the running one).
    """

    def __init__(
        self,
        target: Any,
        family: int,
        on_reply: Callable[[Any, bytes], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.target = target
        self.family = family
        self._on_reply = on_reply
        self._loop = loop or asyncio.get_running_loop()
        self._socks: dict[Any, socket.socket] = {}
        self.opened = 0

    def __len__(self) -> int:
        return len(self._socks)

    def __contains__(self, addr: Any) -> bool:
        return addr in self._socks

    def open(self, addr: Any) -> None:
        """Open (or re-open) ``addr``'s socket to the target."""
        self.close(addr)
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(self.target)
        except OSError:
            sock.close()
            raise
        self._socks[addr] = sock
        self.opened += 1
        self._loop.add_reader(sock.fileno(), self._readable, addr, sock)

    def send(self, addr: Any, data: bytes) -> bool:
        """Send ``data`` to the target on ``addr``'s flow (opened if needed); False if it failed."""
        sock = self._socks.get(addr)
        try:
            if sock is None:
                self.open(addr)
                sock = self._socks[addr]
            sock.send(data)
        except (BlockingIOError, InterruptedError):
            return False  # a full buffer drops it, as a congested path would
        except OSError as exc:
            log.debug("fallback send for %s failed: %s", addr, exc)
            return False
        return True

    def close(self, addr: Any) -> None:
        """Close ``addr``'s socket (later target datagrams for it are refused by the kernel)."""
        sock = self._socks.pop(addr, None)
        if sock is None:
            return
        try:
            self._loop.remove_reader(sock.fileno())
        except (ValueError, OSError):
            pass
        sock.close()

    def close_all(self) -> None:
        """Close every flow."""
        for addr in list(self._socks):
            self.close(addr)

    def _readable(self, addr: Any, sock: socket.socket) -> None:
        for _ in range(_BATCH):
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP port unreachable from the target, or a closed socket
                return
            self._on_reply(addr, data)
            if self._socks.get(addr) is not sock:
                return  # the callback closed this flow
