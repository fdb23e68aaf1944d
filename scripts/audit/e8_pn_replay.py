"""E8 (ported: the receive ranges moved from recovery to the connection's spaces, connection/spaces.py; the attack is unchanged): duplicate-packet detection only remembers the last 64 ACK ranges (connection.py
_record_received shifts the oldest out); an on-path attacker's replay of an old 1-RTT packet is
then processed again (RFC 9000 §12.3: MUST discard unless certain it was not processed)."""
import sys
sys.path.insert(0, "tests/sim")
from simpair import SimPair, CLIENT_ADDR
from quicreality.quic.events import HandshakeCompleted, DatagramFrameReceived
p = SimPair(seed=1); p.connect()
p.run(lambda: p.server is not None and any(isinstance(e, HandshakeCompleted) for e in p.server_events))
srv, cli = p.server, p.client
while srv.next_event() is not None: pass
captured = []
for i in range(140):
    cli.send_datagram_frame(b"relay-udp-payload-%d" % i)   # e.g. a relayed UDP datagram (DNS query, ...)
    p.now += 0.001
    dgs = cli.datagrams_to_send(p.now)
    captured.append(dgs[0][0])
    if i % 2 == 0:                                           # every other packet is lost on the path
        srv.receive_datagram(dgs[0][0], CLIENT_ADDR, p.now)
got = [e.data for e in iter(srv.next_event, None) if isinstance(e, DatagramFrameReceived)]
print("delivered once:", len(got), "first:", got[0], "| server ACK ranges kept:", len(srv._spaces[2].received), "| floor:", srv._spaces[2].received_floor)
srv.receive_datagram(captured[0], CLIENT_ADDR, p.now)       # attacker replays the first packet
srv.receive_datagram(captured[70], CLIENT_ADDR, p.now)      # and a recent one
again = [e.data for e in iter(srv.next_event, None) if isinstance(e, DatagramFrameReceived)]
print("after replaying packets #0 and #70:", again)
