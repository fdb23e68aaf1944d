"""E7 ported to the fixed API (the original retires IDs never sent, now a PROTOCOL_VIOLATION)."""
import sys, time, tracemalloc
sys.path.insert(0, "tests/sim")
from simpair import SimPair, CLIENT_ADDR
from quicreality.quic.events import HandshakeCompleted
from quicreality.quic.packet import QuicHeader
from quicreality.quic.errors import QuicConnectionError
from quicreality.quic import frames as F
from quicreality.wire.buffer import Buffer
p = SimPair(seed=1); p.connect()
p.run(lambda: p.server is not None and any(isinstance(e, HandshakeCompleted) for e in p.server_events))
srv, ep = p.server, p.endpoint
hdr = QuicHeader(False, None, 3, srv.host_cid, b"", b"", b"", (), 0, 0)
def frames(fs):
    b = Buffer(capacity=1200)
    for f in fs:
        if b.remaining() < 60: break
        F.push_frame(b, f)
    return b.data
try:
    srv._receiver.handle_payload(2, frames([F.RetireConnectionIdFrame(srv._host_cids.next_sequence)]), p.now, hdr)
    print("(a0) RETIRE of a never-sent sequence number: accepted")
except QuicConnectionError as exc:
    print(f"(a0) RETIRE of a never-sent sequence number: {exc}")
for _ in range(200):   # retire every announced ID but the one in use, let the server announce new ones
    seqs = [e.sequence_number for e in srv._host_cids.entries if e.announced and e.cid != srv.host_cid]
    if seqs:
        srv._receiver.handle_payload(2, frames([F.RetireConnectionIdFrame(s) for s in seqs]), p.now, hdr)
    ep.refresh(srv)
    while srv.next_event() is not None: pass
    p.now += 0.01
    srv.datagrams_to_send(p.now)
print(f"(a) after 200 rounds: next CID seq = {srv._host_cids.next_sequence}, endpoint._by_cid = {len(ep._by_cid)} "
      f"(live CIDs: {len(srv.host_cids)}), NEW_CONNECTION_ID queued = {len(srv._spaces[2].owed.new_cids)}")
other = p.client  # any object the endpoint never routed
t = time.perf_counter(); ep.forget(other); print(f"    forget(unknown) {1e6*(time.perf_counter()-t):.0f} us")
pc = srv._peer_cids
seq = 10
try:
    for _ in range(300):
        fs = []
        for _ in range(40):
            fs.append(F.NewConnectionIdFrame(seq, seq, seq.to_bytes(8, "big"), seq.to_bytes(16, "big"))); seq += 1
        srv._receiver.handle_payload(2, frames(fs), p.now, hdr)
    print(f"(b) {seq-10} NEW_CONNECTION_ID frames accepted: pending_retire = {len(pc.pending_retire)}")
except QuicConnectionError as exc:
    print(f"(b) after {seq-10} NEW_CONNECTION_ID frames: {exc}; pending_retire = {len(pc.pending_retire)}, reset_tokens = {len(pc.reset_tokens)}")
old_token = (10).to_bytes(16, "big")
srv.receive_datagram(b"\x40" + bytes(30) + old_token, CLIENT_ADDR, p.now)
print("(c) stateless reset with the token of CID seq 10 (retired):", srv.state.name)
