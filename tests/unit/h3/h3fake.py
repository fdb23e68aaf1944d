"""A fake in-memory QUIC pair for HTTP/3 tests (test-only; not part of the library).

Each :class:`FakeQuic` implements the slice of the QuicConnection API that HTTP/3 uses. Data is
queued per stream and delivered to the peer as ``StreamDataReceived`` events in chunks whose size
and cross-stream order are chosen by a seeded RNG (in-order within a stream, like QUIC).
Bytes count as "buffered" until delivered (delivery = acknowledgement here).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from quicreality.quic.events import (
    ConnectionTerminated,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)


@dataclass
class _Queue:
    data: bytearray = field(default_factory=bytearray)
    fin: bool = False
    fin_sent: bool = False


class FakeQuic:
    """One endpoint of the fake pair."""

    def __init__(self, is_client: bool):
        self.is_client = is_client
        self.peer: FakeQuic | None = None
        self._next = {False: 0 if is_client else 1, True: 2 if is_client else 3}
        self.queues: dict[int, _Queue] = {}
        self.control: deque[object] = deque()  # resets / stops / close for the peer
        self.closed: tuple[int, str] | None = None
        self.resets: list[tuple[int, int]] = []
        self.stops: list[tuple[int, int]] = []
        self.sent_fin: set[int] = set()

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        return self._next[is_unidirectional]

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        uni = stream_id & 2 == 2
        if stream_id == self._next[uni]:
            self._next[uni] += 4
        if stream_id in self.sent_fin:
            raise AssertionError(f"send after FIN on {stream_id}")
        q = self.queues.setdefault(stream_id, _Queue())
        q.data += data
        if end_stream:
            q.fin = True
            self.sent_fin.add(stream_id)

    def stream_send_buffered(self, stream_id: int, *, unsent: bool = False) -> int:
        q = self.queues.get(stream_id)
        return 0 if q is None else len(q.data)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self.resets.append((stream_id, error_code))
        self.queues.pop(stream_id, None)
        self.sent_fin.add(stream_id)
        self.control.append(StreamReset(stream_id, error_code))

    def stop_stream(self, stream_id: int, error_code: int) -> None:
        self.stops.append((stream_id, error_code))
        self.control.append(StopSendingReceived(stream_id, error_code))

    def close(
        self, error_code: int = 0, frame_type: int | None = None, reason_phrase: str = ""
    ) -> None:
        if self.closed is None:
            self.closed = (error_code, reason_phrase)
            self.control.append(
                ConnectionTerminated(error_code, frame_type, reason_phrase, by_peer=True)
            )


Handler = Callable[[object], object]


class FakePair:
    """Connects two :class:`FakeQuic` objects and shuttles events between their handlers."""

    def __init__(self, *, seed: int = 0, chunk: Callable[[random.Random], int] | None = None):
        self.client = FakeQuic(True)
        self.server = FakeQuic(False)
        self.client.peer = self.server
        self.server.peer = self.client
        self.rng = random.Random(seed)
        self.chunk = chunk or (lambda rng: rng.choice([1, 2, 7, 100, 1200, 5000]))
        self.client_handler: Handler = lambda ev: None
        self.server_handler: Handler = lambda ev: None
        self.delivered = 0

    def _step(self, src: FakeQuic, handler: Handler) -> bool:
        """Deliver one chunk (or one control event) from ``src`` to the other side."""
        if src.control:
            handler(src.control.popleft())
            return True
        if src.closed is not None:
            return False
        ready = [sid for sid, q in src.queues.items() if q.data or (q.fin and not q.fin_sent)]
        if not ready:
            return False
        sid = self.rng.choice(ready)
        q = src.queues[sid]
        n = max(1, self.chunk(self.rng))
        data = bytes(q.data[:n])
        del q.data[:n]
        fin = q.fin and not q.data
        if fin:
            q.fin_sent = True
        self.delivered += len(data)
        handler(StreamDataReceived(sid, data, fin))
        return True

    def run(self, *, pump: Callable[[], object] | None = None, max_steps: int = 10_000_000) -> None:
        """Exchange until both sides are idle (calling ``pump`` after each step)."""
        for _ in range(max_steps):
            progressed = False
            for _ in range(self.rng.randint(1, 8)):
                progressed |= self._step(self.client, self.server_handler)
            for _ in range(self.rng.randint(1, 8)):
                progressed |= self._step(self.server, self.client_handler)
            if pump is not None:
                pump()
                progressed |= any(
                    q.data or (q.fin and not q.fin_sent) for q in self.server.queues.values()
                )
            if not progressed:
                return
        raise AssertionError("exchange did not settle")
