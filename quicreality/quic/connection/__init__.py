"""The sans-IO QUIC v1 connection (RFC 9000, RFC 9001, RFC 9002).

Entry point: :class:`QuicConnection` (:mod:`.core`), driven by ``connect``, ``receive_datagram``,
``datagrams_to_send``, ``handle_timer`` / ``get_timer`` and ``next_event``; every call takes ``now``.

Parts: :mod:`.state` (lifecycle and transition table), :mod:`.receive` (frame dispatch over
:mod:`quicreality.quic.frames`), :mod:`.assembler` (packet and datagram building, the client's
first Initial flight), :mod:`.tls_driver` (TLS outputs, keys, transport parameters), :mod:`.cids`
(connection IDs), :mod:`.streams` (streams, flow control, stream limits).
"""

from __future__ import annotations

from .core import QuicConnection as QuicConnection
from .state import TRANSITIONS as TRANSITIONS
from .state import ConnectionState as ConnectionState
