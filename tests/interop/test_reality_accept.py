"""Accept path over real sockets: our REALITY client downloads from OUR server, and the target only
ever sees the mirrored ClientHello (issue 3, "Accept path")."""

from __future__ import annotations

import json
import socket
import time

import pytest
from peers_harness import PeerHarness, Pki, WwwDir
from reality_support import (
    RealityLab,
    assert_relayed,
    capture,
    flows,
    handshake,
    replies,
    run_cli_client,
)

from quicreality.quic.connection import QuicConnection
from quicreality.quic.crypto import CryptoPair
from quicreality.quic.frames import pull_frame_body
from quicreality.quic.packet import PACKET_TYPE_INITIAL, QUIC_VERSION_1, pull_quic_header
from quicreality.reality.probe import client_initial_crypto, initial_datagrams, split
from quicreality.scenarios.peers.base import sha256_file
from quicreality.wire.buffer import Buffer

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]


def test_reality_client_downloads_10mb_from_our_server_and_the_target_sees_only_the_hello(
        peer_harness: PeerHarness, pki: Pki, www: WwwDir) -> None:
    h = peer_harness
    lab = RealityLab(h, pki, www, target="ngtcp2")
    out = h.path("out")
    with capture(h, "accept", lab.port, lab.target_port) as wire:
        finished = run_cli_client(h, [lab.url("10M.bin"), "-o", str(out), "--json",
                                      *lab.reality_cli_args()])
    assert finished.returncode == 0, f"{finished.stdout}\n{finished.stderr}\n{lab.describe()}"
    line = json.loads(finished.stdout.strip().splitlines()[-1])
    assert line["error"] is None and line["bytes"] == 10_000_000
    assert sha256_file(out / "10M.bin") == www.sha256["10M.bin"]  # OUR server's file, byte-exact

    # The wire: one client flow to the listener, one relay flow to the target.
    to_listener = flows(wire, to_port=lab.port)
    assert len(to_listener) == 1, to_listener.keys()
    (client_addr, client_datagrams), = to_listener.items()
    to_target = flows(wire, to_port=lab.target_port)
    assert len(to_target) == 1, to_target.keys()
    (relay_addr, mirrored), = to_target.items()
    # The target received exactly the first client datagram(s) carrying the ClientHello, byte for
    # byte, and nothing of this connection after the verdict (dozens of datagrams followed).
    assert len(client_datagrams) > 20  # handshake + ACKs of 10 MB
    # Chrome's hello (the default fingerprint) takes two Initials, which our client may hand the
    # kernel as one GSO send: tcpdump on lo then sees one 2400-byte datagram, relayed as its two.
    assert 1 <= len(mirrored) <= 2
    mirrored_bytes = sum(len(d.payload) for d in mirrored)
    hello_datagrams, seen = [], 0
    while seen < mirrored_bytes:
        hello_datagrams.append(client_datagrams[len(hello_datagrams)])
        seen += len(hello_datagrams[-1].payload)
    assert_relayed(hello_datagrams, mirrored)
    last_mirror = mirrored[-1].ts
    assert all(d.ts <= last_mirror for d in mirrored)
    # The target answered the mirrored hello; none of its datagrams reached the client.
    target_said = {d.payload for d in replies(wire, from_port=lab.target_port, to=relay_addr)}
    assert target_said, "the target should have answered the mirrored ClientHello"
    to_client = {d.payload for d in replies(wire, from_port=lab.port, to=client_addr)}
    assert not target_said & to_client

    m = lab.metrics()
    assert m["quicreality_reality_handshakes_accepted_total"] == 1
    assert m["quicreality_reality_target_datagrams_dropped_total"] >= 1
    assert "reality verdict ACCEPT" in lab.log()
    # qlog: the verdict is on the connection's trace and on the endpoint trace.
    traces = {p.name: p.read_text() for p in lab.qlog_dir.glob("*.sqlog")}
    assert any("reality:verdict" in t and '"ACCEPT"' in t for n, t in traces.items()
               if n != "reality_endpoint_server.sqlog"), list(traces)


def test_reality_handshake_in_process_is_accepted(peer_harness: PeerHarness, pki: Pki,
                                                  www: WwwDir) -> None:
    lab = RealityLab(peer_harness, pki, www, target="ngtcp2")
    config = lab.client_config()
    result = handshake(config, lab.port)
    assert result.completed, (result.terminated, lab.describe())
    hook = config.peer_verifier
    assert hook.verified_chain and len(hook.verified_chain[0]) == 178  # the HMAC certificate
    assert lab.accepted() == 1


def test_client_hello_split_over_three_reordered_datagrams_is_accepted(
        peer_harness: PeerHarness, pki: Pki, www: WwwDir) -> None:
    """Real sockets: a sealed ClientHello in three Initials sent last-first is reassembled, accepted
    and answered by OUR server (a ServerHello), and the target saw exactly the three datagrams."""
    h = peer_harness
    lab = RealityLab(h, pki, www, target="ngtcp2")
    conn = QuicConnection(configuration=lab.client_config())
    conn.connect(("127.0.0.1", lab.port), time.monotonic())
    flight = [d for d, _ in conn.datagrams_to_send(time.monotonic())]
    first = flight[0]
    dcid = conn.original_destination_connection_id
    header = pull_quic_header(Buffer(data=first), host_cid_length=None)
    # The default (Chrome-shaped) hello spans the first flight's two Initials.
    hello = b"".join(c for _, c in sorted(
        chunk for d in flight for chunk in client_initial_crypto(d, dcid)))
    chunks = split(hello, [90, 1000])  # three pieces, each fits a 1200-byte Initial
    datagrams = initial_datagrams(chunks, dcid=dcid, scid=header.source_cid)
    with capture(h, "split", lab.port, lab.target_port) as wire, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        for d in reversed(datagrams):
            sock.sendto(d, ("127.0.0.1", lab.port))
        server_crypto: list[tuple[int, bytes]] = []
        for _ in range(3):  # shaped like ngtcp2's answer, an ACK-only Initial may come first
            answer, _ = sock.recvfrom(65536)
            server_crypto = _server_initial_crypto(answer, dcid)
            if server_crypto:
                break
    assert lab.accepted() == 1
    assert server_crypto and server_crypto[0][1][0] == 0x02  # our ServerHello
    (relay_addr, mirrored), = flows(wire, to_port=lab.target_port).items()
    assert [d.payload for d in mirrored] == list(reversed(datagrams))
    assert relay_addr[0] == "127.0.0.1"


def _server_initial_crypto(datagram: bytes, dcid: bytes) -> list[tuple[int, bytes]]:
    """CRYPTO chunks of the server's Initial packets (keys from the client's first DCID)."""
    crypto = CryptoPair()
    crypto.setup_initial(dcid, is_client=True, version=QUIC_VERSION_1)
    out = []
    buf = Buffer(data=datagram)
    while not buf.eof():
        start = buf.tell()
        header = pull_quic_header(buf, host_cid_length=8)
        buf.seek(header.packet_end)
        if header.packet_type != PACKET_TYPE_INITIAL:
            continue
        _, payload, _ = crypto.decrypt_packet(datagram[start:header.packet_end],
                                              header.pn_offset - start, 0)
        frames = Buffer(data=payload)
        while not frames.eof():
            frame_type = frames.pull_uint_var()
            frame = pull_frame_body(frames, frame_type)
            if frame_type == 0x06:
                out.append((frame.offset, frame.data))
    return out
