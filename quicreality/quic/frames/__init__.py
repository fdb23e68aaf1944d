"""QUIC frames (RFC 9000 §12.4, §19) and DATAGRAM (RFC 9221 §4): the one definition of their wire format.

* :mod:`.types`: :class:`FrameType`, the field limits, and RFC 9000 §12.4 Table 3
  (:data:`FRAME_PACKET_TYPES`, :func:`frame_allowed`), written once;
* :mod:`.fast`: allocation-light ``pull_*`` body readers and ``push_*`` writers; the connection's
  receive dispatch and its send path both use them;
* :mod:`.codec`: one frozen dataclass per frame with :func:`pull_frame` / :func:`push_frame` (type
  included), for tests, qlog, the REALITY gate and rarely seen frames; it calls the fast paths.

Every ``pull_*`` raises ``QuicConnectionError(FRAME_ENCODING_ERROR, frame_type, reason)`` for a
truncated or invalid frame (RFC 9000 §12.4, §19). Every ``push_*`` writes a complete frame, type
included (``push_*_header`` writes up to the data, which the caller appends).
"""

from __future__ import annotations

from .codec import (
    AckFrame as AckFrame,
)
from .codec import (
    ConnectionCloseFrame as ConnectionCloseFrame,
)
from .codec import (
    CryptoFrame as CryptoFrame,
)
from .codec import (
    DataBlockedFrame as DataBlockedFrame,
)
from .codec import (
    DatagramFrame as DatagramFrame,
)
from .codec import (
    Frame as Frame,
)
from .codec import (
    HandshakeDoneFrame as HandshakeDoneFrame,
)
from .codec import (
    MaxDataFrame as MaxDataFrame,
)
from .codec import (
    MaxStreamDataFrame as MaxStreamDataFrame,
)
from .codec import (
    MaxStreamsFrame as MaxStreamsFrame,
)
from .codec import (
    NewConnectionIdFrame as NewConnectionIdFrame,
)
from .codec import (
    NewTokenFrame as NewTokenFrame,
)
from .codec import (
    PaddingFrame as PaddingFrame,
)
from .codec import (
    PathChallengeFrame as PathChallengeFrame,
)
from .codec import (
    PathResponseFrame as PathResponseFrame,
)
from .codec import (
    PingFrame as PingFrame,
)
from .codec import (
    ResetStreamFrame as ResetStreamFrame,
)
from .codec import (
    RetireConnectionIdFrame as RetireConnectionIdFrame,
)
from .codec import (
    StopSendingFrame as StopSendingFrame,
)
from .codec import (
    StreamDataBlockedFrame as StreamDataBlockedFrame,
)
from .codec import (
    StreamFrame as StreamFrame,
)
from .codec import (
    StreamsBlockedFrame as StreamsBlockedFrame,
)
from .codec import (
    pull_frame as pull_frame,
)
from .codec import (
    pull_frame_body as pull_frame_body,
)
from .codec import (
    push_frame as push_frame,
)
from .fast import (
    crypto_frame_header_size as crypto_frame_header_size,
)
from .fast import (
    datagram_frame_size as datagram_frame_size,
)
from .fast import (
    pull_ack_frame as pull_ack_frame,
)
from .fast import (
    pull_crypto_frame as pull_crypto_frame,
)
from .fast import (
    pull_datagram_frame as pull_datagram_frame,
)
from .fast import (
    pull_ecn_counts as pull_ecn_counts,
)
from .fast import (
    pull_stream_frame as pull_stream_frame,
)
from .fast import (
    push_ack_frame as push_ack_frame,
)
from .fast import (
    push_connection_close_frame as push_connection_close_frame,
)
from .fast import (
    push_crypto_frame_header as push_crypto_frame_header,
)
from .fast import (
    push_datagram_frame as push_datagram_frame,
)
from .fast import (
    push_handshake_done_frame as push_handshake_done_frame,
)
from .fast import (
    push_max_data_frame as push_max_data_frame,
)
from .fast import (
    push_max_stream_data_frame as push_max_stream_data_frame,
)
from .fast import (
    push_max_streams_frame as push_max_streams_frame,
)
from .fast import (
    push_new_connection_id_frame as push_new_connection_id_frame,
)
from .fast import (
    push_path_challenge_frame as push_path_challenge_frame,
)
from .fast import (
    push_path_response_frame as push_path_response_frame,
)
from .fast import (
    push_ping_frame as push_ping_frame,
)
from .fast import (
    push_reset_stream_frame as push_reset_stream_frame,
)
from .fast import (
    push_retire_connection_id_frame as push_retire_connection_id_frame,
)
from .fast import (
    push_stop_sending_frame as push_stop_sending_frame,
)
from .fast import (
    push_stream_frame_header as push_stream_frame_header,
)
from .fast import (
    skip_padding as skip_padding,
)
from .fast import (
    stream_frame_header_size as stream_frame_header_size,
)
from .types import (
    CONNECTION_ID_MAX_SIZE as CONNECTION_ID_MAX_SIZE,
)
from .types import (
    FRAME_PACKET_TYPES as FRAME_PACKET_TYPES,
)
from .types import (
    MAX_STREAM_OFFSET as MAX_STREAM_OFFSET,
)
from .types import (
    MAX_STREAMS_LIMIT as MAX_STREAMS_LIMIT,
)
from .types import (
    NON_ACK_ELICITING_FRAME_TYPES as NON_ACK_ELICITING_FRAME_TYPES,
)
from .types import (
    NOT_IN_FLIGHT_FRAME_TYPES as NOT_IN_FLIGHT_FRAME_TYPES,
)
from .types import (
    PATH_CHALLENGE_DATA_SIZE as PATH_CHALLENGE_DATA_SIZE,
)
from .types import (
    PROBING_FRAME_TYPES as PROBING_FRAME_TYPES,
)
from .types import (
    STATELESS_RESET_TOKEN_SIZE as STATELESS_RESET_TOKEN_SIZE,
)
from .types import (
    STREAM_FLAG_FIN as STREAM_FLAG_FIN,
)
from .types import (
    STREAM_FLAG_LEN as STREAM_FLAG_LEN,
)
from .types import (
    STREAM_FLAG_OFF as STREAM_FLAG_OFF,
)
from .types import (
    FrameType as FrameType,
)
from .types import (
    frame_allowed as frame_allowed,
)
from .types import (
    frame_encoding_error as frame_encoding_error,
)
