"""The connection's DATAGRAM frame queues (RFC 9221), bounded in both directions. Sans-IO.

Send: :meth:`DatagramQueues.send` (``QuicConnection.send_datagram_frame``) queues a frame and the
assembler takes frames as packets have room, at the congestion controller's pace, so an
application (or the relay) that writes faster than the path carries would grow the queue without
end. The queue holds at most ``QuicConfiguration.datagram_send_queue_frames`` frames and
``datagram_send_queue_bytes`` payload bytes; a frame that would exceed either makes room by
dropping the **oldest** queued frames (head drop). DATAGRAMs are unreliable (RFC 9221 §5: an
endpoint may drop them, e.g. when it is congestion-limited), and for the real-time and tunnelled
traffic they carry the oldest frame is the stalest. A frame larger than the byte bound on its own
is dropped at once. A frame that can never fit in a packet is dropped by the assembler
(:meth:`drop_first`).

Receive: every DATAGRAM frame received becomes a :class:`~quicreality.quic.events.DatagramFrameReceived`
event that waits in the connection's event queue until ``next_event`` hands it out. A peer that
packs hundreds of empty DATAGRAM frames into each packet, towards an application that drains
events slowly, would grow that queue; at most ``datagram_receive_queue_frames`` frames and
``datagram_receive_queue_bytes`` bytes wait, and a frame received beyond that is dropped (tail
drop: those already queued were accepted first and are handed out in order).

Every drop is counted in :attr:`DatagramQueues.stats` (``QuicConnection.datagrams.stats``); the
1st, 2nd, 4th, 8th ... drop of each reason is logged to qlog as ``datagram_frame_dropped`` with
the reason, the frame's length and the running total (a peer's flood of tiny frames must not
become a flood of qlog lines; the exact counts are in the stats). The asyncio edge exports them,
summed over the process's connections, as ``quicreality_quic_datagrams_dropped_total{direction,
reason}`` (:class:`quicreality.metrics.DatagramMetrics`, fed by :meth:`DatagramQueues.take_new_drops`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ...qlog.sink import QlogSink
from .. import events
from ..config import QuicConfiguration
from ..errors import LocalProtocolError

#: Drop reasons (qlog ``reason``, :class:`DatagramStats` fields).
SEND_QUEUE_FULL = "send_queue_full"
TOO_LARGE = "too_large"
RECEIVE_QUEUE_FULL = "receive_queue_full"


@dataclass(frozen=True, slots=True)
class DatagramStats:
    """Counters of one connection's DATAGRAM frames."""

    #: frames queued by the application, and frames put in packets
    queued: int
    sent: int
    #: dropped before sending: the oldest, to make room in a full queue; too large for the byte
    #: bound or for any packet
    dropped_send_queue_full: int
    dropped_too_large: int
    #: received from the peer (handed to the event queue), and dropped because it was full
    received: int
    dropped_receive_queue_full: int
    #: what waits now
    send_queue_frames: int
    send_queue_bytes: int
    receive_queue_frames: int
    receive_queue_bytes: int


class DatagramQueues:
    """The bounded send queue and the receive-side accounting of DATAGRAM frames."""

    __slots__ = ("_dropped", "_events", "_now", "_qlog", "_queue", "_queued", "_received",
                 "_reported", "_sent", "recv_bytes", "recv_frames", "recv_max_bytes",
                 "recv_max_frames", "send_bytes", "send_max_bytes", "send_max_frames")

    def __init__(self, config: QuicConfiguration, *, events: deque[events.QuicEvent],
                 qlog: QlogSink) -> None:
        #: created at the first send: most connections never queue a DATAGRAM frame, and an
        #: empty deque costs about 600 bytes (docs/performance.md, "Idle connection memory")
        self._queue: deque[bytes] | None = None
        self._events = events
        self._qlog = qlog
        self._now = 0.0
        self.send_max_frames = config.datagram_send_queue_frames
        self.send_max_bytes = config.datagram_send_queue_bytes
        self.recv_max_frames = config.datagram_receive_queue_frames
        self.recv_max_bytes = config.datagram_receive_queue_bytes
        #: payload bytes queued to send; received frames and bytes waiting in the event queue
        self.send_bytes = 0
        self.recv_frames = 0
        self.recv_bytes = 0
        self._queued = self._sent = self._received = 0
        self._dropped = {SEND_QUEUE_FULL: 0, TOO_LARGE: 0, RECEIVE_QUEUE_FULL: 0}
        #: the drop counts as of the last :meth:`take_new_drops`
        self._reported = (0, 0, 0)

    # ----------------------------------------------------------------- send

    @property
    def pending(self) -> int:
        """Frames queued and not yet put in a packet."""
        queue = self._queue
        return len(queue) if queue is not None else 0

    def send(self, data: bytes, peer_limit: int | None, now: float) -> None:
        """Queue ``data``, dropping the oldest frames if the queue is full (see the module).

        Raises:
            LocalProtocolError: the peer takes no DATAGRAM frames, or none of this size.
        """
        if peer_limit is None or len(data) > peer_limit:
            raise LocalProtocolError("Peer does not accept DATAGRAM frames of this size")
        self._now = now
        self._queued += 1
        if len(data) > self.send_max_bytes:
            self._drop(TOO_LARGE, len(data))
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        while queue and (len(queue) >= self.send_max_frames
                         or self.send_bytes + len(data) > self.send_max_bytes):
            old = queue.popleft()
            self.send_bytes -= len(old)
            self._drop(SEND_QUEUE_FULL, len(old))
        queue.append(data)
        self.send_bytes += len(data)

    def __bool__(self) -> bool:
        """True while frames wait to be sent."""
        return bool(self._queue)

    def first(self) -> bytes:
        """The oldest queued frame (the next to send)."""
        queue = self._queue
        assert queue is not None
        return queue[0]

    def take_first(self) -> bytes:
        """Remove the oldest queued frame: it goes into a packet."""
        queue = self._queue
        assert queue is not None
        data = queue.popleft()
        self.send_bytes -= len(data)
        self._sent += 1
        return data

    def drop_first(self) -> None:
        """Drop the oldest queued frame: it can never fit in a packet (RFC 9221 §5)."""
        queue = self._queue
        assert queue is not None
        data = queue.popleft()
        self.send_bytes -= len(data)
        self._drop(TOO_LARGE, len(data))

    # -------------------------------------------------------------- receive

    def received(self, data: bytes, now: float) -> None:
        """A DATAGRAM frame arrived: queue its event, or drop it if the receive bound is reached."""
        if (self.recv_frames >= self.recv_max_frames
                or self.recv_bytes + len(data) > self.recv_max_bytes):
            self._now = now
            self._drop(RECEIVE_QUEUE_FULL, len(data))
            return
        self.recv_frames += 1
        self.recv_bytes += len(data)
        self._received += 1
        self._events.append(events.DatagramFrameReceived(data=data))

    def handed_out(self, event: events.QuicEvent) -> events.QuicEvent:
        """``next_event`` hands ``event`` to the application: a DATAGRAM frees its room."""
        if isinstance(event, events.DatagramFrameReceived):
            self.recv_frames -= 1
            self.recv_bytes -= len(event.data)
        return event

    # ---------------------------------------------------------------- stats

    def _drop(self, reason: str, length: int) -> None:
        total = self._dropped[reason] = self._dropped[reason] + 1
        if total & (total - 1) == 0:  # the 1st, 2nd, 4th, 8th ... drop: a flood cannot fill the qlog
            self._qlog.custom(self._now, "datagram_frame_dropped",
                              {"reason": reason, "length": length, "total": total})

    def take_new_drops(self) -> tuple[int, int, int]:
        """Drops since the previous call: ``(send_queue_full, too_large, receive_queue_full)``.

        The edge adds them to its process-wide counters (``quicreality.metrics``) after each
        send path run; a call with nothing new is one tuple comparison.
        """
        d = self._dropped
        now = (d[SEND_QUEUE_FULL], d[TOO_LARGE], d[RECEIVE_QUEUE_FULL])
        last = self._reported
        if now == last:
            return (0, 0, 0)
        self._reported = now
        return (now[0] - last[0], now[1] - last[1], now[2] - last[2])

    @property
    def stats(self) -> DatagramStats:
        """The counters so far."""
        d = self._dropped
        return DatagramStats(
            queued=self._queued, sent=self._sent, dropped_send_queue_full=d[SEND_QUEUE_FULL],
            dropped_too_large=d[TOO_LARGE], received=self._received,
            dropped_receive_queue_full=d[RECEIVE_QUEUE_FULL], send_queue_frames=self.pending,
            send_queue_bytes=self.send_bytes, receive_queue_frames=self.recv_frames,
            receive_queue_bytes=self.recv_bytes)
