"""The gate's ACCEPT decision, :class:`Accept` (sans-IO; re-exported by :mod:`.gate`).

It lives apart from :mod:`.gate` because the gate is compiled with mypyc and this class is not:
it subclasses :class:`~quicreality.quic.endpoint.Admission`, an interpreted class with
``__slots__``, and a compiled subclass of it is refused at import ("mypyc classes can't have
__slots__"). One is made per accepted connection, so interpreting it costs nothing measurable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..quic.endpoint import Admission
from .auth import RealityVerdict
from .target_shape import TargetShape


@dataclass(frozen=True, slots=True)
class Accept(Admission):
    """ACCEPT: mirror ``mirror`` (the datagram that completed the ClientHello) to the target unless
    ``sent``, stop relaying ``addr``, and let the endpoint create the connection from ``datagrams``
    (all of the flow's datagrams in arrival order) configured by ``configure``."""

    addr: Any = None
    verdict: RealityVerdict | None = None
    mirror: bytes = b""
    new_flow: bool = False
    sent: bool = False
    #: send nothing to the client before this ``now`` (the flow's first datagram plus the
    #: target's first-reply time, so the accept answers no faster than the target); None: at once
    reply_not_before: float | None = None
    #: the target's learned shape the connection answers with (its ``h3`` is for the HTTP/3 layer)
    shape: TargetShape | None = None
