"""Ported from ../shared/audit/e10b_qpack_h3.py (the attack unchanged): the original fails on
len(None) when the server never delivers the headers, which is what the fix does."""
import sys, tracemalloc
sys.path.insert(0, "tests/sim")
from simpair import SimPair, CLIENT_ADDR
from quicreality.quic.events import HandshakeCompleted
from quicreality.h3.connection import H3Connection
from quicreality.h3.events import HeadersReceived
from quicreality.h3.frames import encode_frame
p = SimPair(seed=1); p.connect()
p.run(lambda: p.server is not None and any(isinstance(e, HandshakeCompleted) for e in p.server_events))
srv, cli = p.server, p.client
h3 = H3Connection(srv, is_client=False)
while srv.next_event() is not None: pass
enc = bytes([0x3F, 0xE1, 0x1F, 0x43]) + b"x-a" + bytes([0x7F, 0xBD, 0x1D]) + b"v" * 3900
N = 5000
block = bytes([0x02, 0x00, 0xD1, 0xD7, 0xC1, 0x50, 0x01, 0x61]) + b"\x80" * N   # :method GET :scheme https :path / :authority a
u = cli.get_next_available_stream_id(is_unidirectional=True)
cli.send_stream_data(u, b"\x02" + enc)                     # QPACK encoder stream
cli.send_stream_data(0, encode_frame(0x01, block), end_stream=True)
tracemalloc.start()
hdrs = None
for _ in range(40):
    p.now += 0.01
    for d, _ in cli.datagrams_to_send(p.now): srv.receive_datagram(d, CLIENT_ADDR, p.now)
    for d, _ in srv.datagrams_to_send(p.now): cli.receive_datagram(d, ("10.0.0.2", 443), p.now)
    while (e := srv.next_event()) is not None:
        for h in h3.handle_event(e):
            if isinstance(h, HeadersReceived): hdrs = h.headers
    if hdrs: break
cur, peak = tracemalloc.get_traced_memory()
if hdrs is None:
    cur, peak = tracemalloc.get_traced_memory()
    print(f"HEADERS frame of {len(block)} B -> no HeadersReceived (refused); traced peak {peak/1e6:.2f} MB")
    raise SystemExit(0)
print(f"HEADERS frame of {len(block)} B -> server HeadersReceived with {len(hdrs)} fields, "
      f"{sum(len(a)+len(b) for a,b in hdrs)/1e6:.1f} MB; traced peak {peak/1e6:.1f} MB")
