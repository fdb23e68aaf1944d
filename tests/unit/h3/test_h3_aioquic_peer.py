"""Our HTTP/3 against aioquic's HTTP/3 (interop peer only), both over the fake in-memory QUIC pair."""

from __future__ import annotations

from types import SimpleNamespace

import aioquic.h3.connection as aq_h3
import aioquic.h3.events as aq_ev
import aioquic.quic.events as aq_quic_ev
import pytest
from h3fake import FakePair, FakeQuic

from quicreality.h3.client import H3Client
from quicreality.h3.connection import H3Connection
from quicreality.h3.server import H3FileServer, H3ServerSession, deterministic_bytes
from quicreality.quic import events as ours


def aioquic_side(quic: FakeQuic) -> object:
    """Dress a FakeQuic with the attributes aioquic's H3Connection reads."""
    quic.configuration = SimpleNamespace(is_client=quic.is_client, max_datagram_frame_size=None)  # type: ignore[attr-defined]
    quic._quic_logger = None  # type: ignore[attr-defined]
    quic._remote_max_datagram_frame_size = None  # type: ignore[attr-defined]
    return aq_h3.H3Connection(quic)


def to_aioquic(event: object) -> object | None:
    if isinstance(event, ours.StreamDataReceived):
        return aq_quic_ev.StreamDataReceived(
            data=event.data, end_stream=event.end_stream, stream_id=event.stream_id
        )
    if isinstance(event, ours.StreamReset):
        return aq_quic_ev.StreamReset(error_code=event.error_code, stream_id=event.stream_id)
    return None


@pytest.mark.parametrize("seed", range(3))
def test_our_client_against_aioquic_server(seed: int) -> None:
    pair = FakePair(seed=seed)
    server = aioquic_side(pair.server)
    client = H3Client(H3Connection(pair.client, is_client=True), authority="x")

    def on_server(event: object) -> None:
        converted = to_aioquic(event)
        if converted is None:
            return
        for ev in server.handle_event(converted):
            if isinstance(ev, aq_ev.HeadersReceived):
                path = dict(ev.headers)[b":path"]
                n = int(path.rsplit(b"/", 1)[1])
                server.send_headers(ev.stream_id, [(b":status", b"200"), (b"x-n", str(n).encode())])
                server.send_data(ev.stream_id, deterministic_bytes(0, n), end_stream=True)

    pair.server_handler = on_server
    pair.client_handler = client.handle_event
    sizes = [0, 1, 500, 70_000] * 10
    ids = [client.get(f"/bytes/{n}") for n in sizes]
    pair.run()
    assert client.all_done
    for sid, n in zip(ids, sizes, strict=True):
        rec = client.responses[sid]
        assert rec.ok and rec.status == 200 and (b"x-n", str(n).encode()) in rec.headers
        assert bytes(rec.body) == deterministic_bytes(0, n)
    assert pair.client.closed is None and pair.server.closed is None


@pytest.mark.parametrize("seed", range(3))
def test_aioquic_client_against_our_server(seed: int) -> None:
    pair = FakePair(seed=seed)
    client = aioquic_side(pair.client)
    session = H3ServerSession(H3Connection(pair.server, is_client=False), H3FileServer(None))
    bodies: dict[int, bytearray] = {}
    status: dict[int, bytes] = {}
    ended: set[int] = set()

    def on_client(event: object) -> None:
        converted = to_aioquic(event)
        if converted is None:
            return
        for ev in client.handle_event(converted):
            if isinstance(ev, aq_ev.HeadersReceived):
                status[ev.stream_id] = dict(ev.headers)[b":status"]
            elif isinstance(ev, aq_ev.DataReceived):
                bodies.setdefault(ev.stream_id, bytearray()).extend(ev.data)
            if getattr(ev, "stream_ended", False):
                ended.add(ev.stream_id)

    pair.client_handler = on_client
    pair.server_handler = session.handle_event
    sizes = [0, 1, 500, 70_000] * 10
    ids = []
    for n in sizes:
        sid = pair.client.get_next_available_stream_id()
        client.send_headers(
            sid,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", b"x"),
                (b":path", f"/bytes/{n}".encode()),
            ],
            end_stream=True,
        )
        ids.append(sid)
    pair.run(pump=session.pump)
    assert set(ids) == ended
    for sid, n in zip(ids, sizes, strict=True):
        assert status[sid] == b"200"
        assert bytes(bodies.get(sid, b"")) == deterministic_bytes(0, n)
    assert pair.client.closed is None and pair.server.closed is None
