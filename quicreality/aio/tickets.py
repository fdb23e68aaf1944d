"""Session ticket files for the client CLI (``--session-ticket FILE``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from ..tls.resumption import SessionTicket

log = logging.getLogger("quicreality.aio")

#: Tickets hold a resumption secret: only the owner may read the file.
TICKET_FILE_MODE = 0o600


def load_ticket(path: str | os.PathLike[str]) -> SessionTicket | None:
    """The ticket stored in ``path``; None when the file does not exist (or is empty).

    Raises:
        ValueError: the file exists but holds no ticket of ours (the message says why).
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
    if not data:
        return None
    return SessionTicket.parse(data)


def ticket_saver(path: str | os.PathLike[str]) -> Callable[[SessionTicket], None]:
    """A callback writing each ticket to ``path`` (mode 0600), replacing the previous one
    atomically; a write error is logged (the transfer goes on)."""
    target = Path(path)

    def save(ticket: SessionTicket) -> None:
        tmp = target.with_name(target.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                         TICKET_FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(ticket.serialize())
            os.replace(tmp, target)
        except OSError as exc:
            log.warning("cannot save the session ticket to %s: %s", target, exc.strerror or exc)

    return save
