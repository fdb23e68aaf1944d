"""Ported from ../shared/audit/e6_h3_grease.py (the attack unchanged): the streams moved from
private connection fields into the connection's StreamManager."""
"""E6: an HTTP/3 client's unidirectional stream of an unknown (e.g. GREASE) type, sent with its
FIN, makes H3Connection call stop_stream() on a stream QUIC already closed -> LocalProtocolError
escapes -> the edge aborts the connection with INTERNAL_ERROR (Driver.service)."""
import sys
sys.path.insert(0, "tests/sim")
from simpair import SimPair
from quicreality.quic.events import HandshakeCompleted
from quicreality.h3.connection import H3Connection
from quicreality.h3.server import H3FileServer, H3ServerSession
p = SimPair(seed=1)
p.connect(); p.run(lambda: p.server is not None and any(isinstance(e, HandshakeCompleted) for e in p.server_events))
srv = p.server
sess = H3ServerSession(H3Connection(srv, is_client=False), H3FileServer(None))
while srv.next_event() is not None: pass
grease_sid = p.client.get_next_available_stream_id(is_unidirectional=True)
p.client.send_stream_data(grease_sid, b"\x21" + b"GREASE is the word", end_stream=True)  # type 0x21 = reserved 0x1f*0+0x21
p.now += 0.05
out = p.client.datagrams_to_send(p.now)
print("client sends", len(out), "datagram(s)")
for d, _ in out:
    got = p.endpoint.receive_datagram(d, ("10.0.0.1", 40000), p.now)
    print("routed to server conn:", got.connection is srv, "state", srv.state.name, "streams", sorted(srv._stream_mgr.streams), "ready", list(srv._stream_mgr.ready_streams), "events", list(srv._events)[:3])
try:
    while (ev := srv.next_event()) is not None:
        print("server event:", type(ev).__name__, getattr(ev, "stream_id", ""), getattr(ev, "end_stream", ""))
        sess.handle_event(ev)
    print("no exception")
except Exception as exc:
    print("UNCAUGHT:", type(exc).__name__, exc)
print("debug: sid", grease_sid, "client queue", list(p.client._stream_mgr.send_queue), "peer max streams", p.client._stream_mgr.peer_max_streams)
