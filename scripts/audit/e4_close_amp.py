"""E4 (ported to the component connection: the Initial DCID is a public property, the byte
counters live on the NetworkPath): in the closing state the server answers every processed packet with CONNECTION_CLOSE in
every space it has keys for, outside the 3x anti-amplification budget."""
import sys, os
sys.path.insert(0, "tests/sim")
from simpair import test_credentials, seeded_rng, WALL
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.quic.endpoint import QuicServerEndpoint
from quicreality.reality.probe import initial_packet
from quicreality.quic.crypto import CryptoPair
from quicreality.tls.certificates import InsecureVerifier

rng = seeded_rng(3)
ep = QuicServerEndpoint(lambda: QuicConfiguration(is_client=False, rng=rng, wall_clock=lambda: WALL,
                        certificate_source=test_credentials()), rng=rng)
VICTIM, ATTACKER = ("192.0.2.77", 443), ("203.0.113.5", 1111)
cli = QuicConnection(configuration=QuicConfiguration(is_client=True, rng=seeded_rng(1), wall_clock=lambda: WALL,
                     server_name="localhost", peer_verifier=InsecureVerifier()))
cli.connect(("10.0.0.2", 443), 0.0)
first = cli.datagrams_to_send(0.0)[0][0]
dcid, scid = cli.initial_destination_connection_id, cli.host_cid  # ported: public property
to_victim = 0
got = ep.receive_datagram(first, VICTIM, 0.0)      # spoofed: source = victim
conn = got.connection
for d, addr in conn.datagrams_to_send(0.0):
    assert addr == VICTIM; to_victim += len(d)
print(f"ClientHello {len(first)} B from 'victim' -> server flight {to_victim} B to the victim (budget {3*len(first)})")
# A tiny Initial with a STREAM frame (forbidden in Initial) makes the server close, then is replayed.
cp = CryptoPair(); cp.setup_initial(dcid, is_client=True, version=1)
trigger = initial_packet(b"\x08\x00\x01x", dcid=dcid, scid=scid, packet_number=1, crypto=cp)
sent_by_attacker = 0
now = 0.01
for i in range(20):
    ep.receive_datagram(trigger, ATTACKER, now); sent_by_attacker += len(trigger)   # from the attacker's own address
    out = conn.datagrams_to_send(now)
    for d, addr in out:
        assert addr == VICTIM; to_victim += len(d)
    if i == 0: print(f"trigger {len(trigger)} B -> close datagram {len(out[0][0])} B to the victim; state={conn.state.name}")
    now += 0.01
print(f"20 triggers: attacker sent {sent_by_attacker} B (+{len(first)} B spoofed), victim got {to_victim} B; "
      f"victim ever sent 0 B; path bytes_sent={conn._path.bytes_sent} (close datagrams count against the 3x budget)")
