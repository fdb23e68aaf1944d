"""Typed declarations of the state shared by the connection's parts (mypy only).

:class:`~quicreality.quic.connection.QuicConnection` is assembled from the receive-side frame
handlers (:mod:`.receive`), the send path (:mod:`.assembler`) and the state machine
(:mod:`.core`). This base declares, for the type checker, the attributes and methods each part
uses from the others; it adds nothing at run time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...qlog.sink import QlogSink
    from ...tls.handshake import TlsSession
    from ..config import QuicConfiguration
    from ..crypto import CryptoPair
    from ..initial_layout import LayoutProfile
    from ..recovery.congestion.base import CongestionController
    from ..recovery.loss import LossRecovery
    from ..recovery.pacer import Pacer
    from ..recovery.rtt import RttEstimator
    from ..streams import QuicStream
    from ..transport_params import QuicTransportParameters
    from .cids import ConnectionIdEntry, HostConnectionIds, PeerConnectionIds
    from .state import ConnectionLifecycle, ConnectionState
    from .streams import StreamManager


class ConnectionBase:
    """Attribute and cross-part method declarations."""

    if TYPE_CHECKING:
        configuration: QuicConfiguration
        is_client: bool
        _lifecycle: ConnectionLifecycle
        _version: int
        _events: deque[Any]
        _tls: TlsSession | None
        _qlog: QlogSink
        _qlog_frames: bool
        _network_path: Any
        _rng: Callable[[int], bytes]
        _original_dcid: bytes
        _retry_scid: bytes | None
        _received_retry: bool
        _peer_initial_scid: bytes | None
        _first_initial_hello: bytes | None
        _initial_plan: LayoutProfile | None
        _idle_timeout: float
        _alpn: str | None
        _crypto_initialized: bool
        _peer_max_ack_delay: float
        _now_hint: float
        # keys and spaces
        _cryptos: list[CryptoPair]
        _crypto_streams: list[QuicStream]
        _recovery: LossRecovery
        _rtt: RttEstimator
        _cc: CongestionController
        _pacer: Pacer
        _probe_space: int | None
        _probe_count: int
        _pacing_until: float | None
        _handshake_confirmed: bool
        _handshake_done_pending: bool
        _address_validated: bool
        _bytes_received: int
        _bytes_sent: int
        _sent_handshake_packet: bool
        _key_update_requested: bool
        _previous_keys_discard_at: float | None
        _retry_token: bytes
        _max_datagram_size: int
        # connection IDs
        _host_cids: HostConnectionIds
        _peer_cids: PeerConnectionIds
        _cids_to_announce: list[ConnectionIdEntry]
        _packet_dcid: bytes
        # streams and flow control
        _stream_mgr: StreamManager
        _datagrams_out: deque[bytes]
        _path_responses: deque[bytes]
        _pings: list[int]
        _peer_params: QuicTransportParameters
        _peer_ack_delay_exponent: int
        # closing
        _close_frame: tuple[int, int | None, str, bool] | None
        _close_sent_at: float | None
        _close_deadline: float | None

        @property
        def host_cid(self) -> bytes: ...
        def _set_state(self, state: ConnectionState, now: float) -> None: ...
        def _terminate(self, error_code: int, frame_type: int | None, reason: str, *,
                       by_peer: bool, now: float, immediate: bool = False) -> None: ...
        def _confirm_handshake(self, now: float) -> None: ...
        def _on_key_update(self, now: float, trigger: str) -> None: ...
        def _discard_space(self, space: int) -> None: ...
        def _handle_crypto_data(self, space_id: int, offset: int, data: bytes, now: float) -> None: ...

    __slots__ = ()


__all__ = ["ConnectionBase", "PacketSpace"] if TYPE_CHECKING else ["ConnectionBase"]
