"""Ported from ../shared/audit/f_relaylink.py (the fuzz unchanged): the streams moved from private
connection fields into the connection's StreamManager."""
"""Fuzz ServerLink.filter_event (relay routing/preface/datagrams) on an established server
connection; the loop is created but never run (no sockets are opened by the fuzz)."""
import asyncio, random, sys, time
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__))); sys.path.insert(0, "tests/sim")
from fuzzlib import mutate, record, CRASHES
from simpair import SimPair
from quicreality.quic import events as ev
from quicreality.quic.events import HandshakeCompleted
from quicreality.aio.relay_server import ServerLink
from quicreality.relay.config import parse_relay_table
from quicreality.relay.protocol import encode_preface, Preface, Kind, Destination, encode_datagram
r = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
budget = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
loop = asyncio.new_event_loop()
cfg = parse_relay_table({"allow": ["127.0.0.1:5201", "10.0.0.0/8:*", "db.internal:5432"]})
PRE = [encode_preface(Preface(k, Destination(h, port))) for k in (Kind.TCP, Kind.UDP)
       for h, port in (("127.0.0.1", 5201), ("127.0.0.2", 9), ("db.internal", 5432), ("example.com", 80), ("::1", 22))]
def pair():
    p = SimPair(seed=r.randrange(100)); p.connect()
    p.run(lambda: p.server is not None and any(isinstance(e, HandshakeCompleted) for e in p.server_events))
    return p, ServerLink(p.server, cfg, lambda: None, loop=loop)
p, link = pair(); n = 0
end = time.process_time() + budget
while time.process_time() < end:
    n += 1
    if n % 500 == 0: p, link = pair()
    k = r.randrange(5); sid = r.choice((0, 4, 8, 12, 2, 3)) + 4 * r.randrange(3)
    data = mutate(r, r.choice(PRE) + b"payload") if r.random() < .7 else r.choice(PRE)[: r.randrange(1, 12)]
    if k <= 1: e = ev.StreamDataReceived(stream_id=sid, data=data, end_stream=r.random() < .3)
    elif k == 2: e = ev.DatagramFrameReceived(data=mutate(r, encode_datagram(r.randrange(8), b"x")))
    elif k == 3: e = ev.StreamReset(stream_id=sid, error_code=r.randrange(10))
    else: e = ev.StopSendingReceived(stream_id=sid, error_code=r.randrange(10))
    try:
        # the stream must exist in QUIC for the relay's calls; open it the way a peer would
        if not sid & 1: p.server._stream_mgr.open_peer_stream(sid, 0x08) if sid not in p.server._stream_mgr.streams and sid >> 2 >= p.server._stream_mgr.peer_streams_opened[1 if sid & 2 else 0] else None
        link.filter_event(e); link.pump(); p.server.datagrams_to_send(p.now)
    except Exception as exc:
        record("serverlink", exc, repr(e).encode())
print("iterations:", n, "distinct uncaught:", len(CRASHES))
for k, (msg, path, tb) in CRASHES.items(): print(k, msg, path); print(tb)
for t in asyncio.all_tasks(loop): t.cancel()
loop.run_until_complete(asyncio.sleep(0)); loop.close()
