"""QUIC v2 (RFC 9369), compatible and incompatible version negotiation (RFC 9368, RFC 9000 §6)
on virtual time; every datagram on the link is parsed to check which version it carries."""

from __future__ import annotations

from typing import Any

import pytest
import simpair
from simpair import CLIENT_ADDR, SERVER_ADDR, WALL, LinkModel, SimPair, seeded_rng
from test_sim_pair import EchoPair

from quicreality.qlog.sink import RecordingSink
from quicreality.quic import events
from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.quic.errors import QuicErrorCode
from quicreality.quic.packet import (
    PACKET_TYPE_INITIAL,
    PACKET_TYPE_VERSION_NEGOTIATION,
    QUIC_VERSION_1,
    QUIC_VERSION_2,
    MalformedPacketError,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from quicreality.tls.alerts import TlsAlert
from quicreality.wire.buffer import Buffer

V1, V2 = QUIC_VERSION_1, QUIC_VERSION_2


class WirePair(EchoPair):
    """An echo pair that records (direction, [(version, packet type), ...]) per datagram."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.wire: list[tuple[str, list[tuple[int | None, int]]]] = []
        self.handshake_at: float | None = None

    def on_client_event(self, event: Any) -> None:
        if isinstance(event, events.HandshakeCompleted):
            self.handshake_at = self.now
        super().on_client_event(event)

    def _transmit(self, direction: str, data: bytes, ecn: int = 0) -> None:
        self.wire.append((direction, long_headers(data)))
        super()._transmit(direction, data, ecn)

    def versions(self, direction: str) -> list[int | None]:
        return [v for d, pkts in self.wire if d == direction for v, _ in pkts]


def long_headers(data: bytes) -> list[tuple[int | None, int]]:
    """(version, packet type) of each long-header packet of a datagram (stops at a short one)."""
    buf = Buffer(data=data)
    out = []
    while not buf.eof():
        try:
            header = pull_quic_header(buf, host_cid_length=None)
        except MalformedPacketError:
            break
        out.append((header.version, header.packet_type))
        buf.seek(header.packet_end)
    return out


def pair_with(client: tuple[int, ...], server: tuple[int, ...], **kw: Any) -> WirePair:
    pair = WirePair(client_overrides={"supported_versions": client},
                    server_overrides={"supported_versions": server}, **kw)
    pair.response_size = 50_000
    return pair


def transfer(pair: WirePair) -> None:
    pair.connect()
    pair.run(pair.handshaken, max_time=30)
    (sid,) = pair.request()
    pair.run(lambda: sid in pair.finished, max_time=60)
    assert bytes(pair.received[sid]) == pair.body(pair.response_size)


def client_terminated(pair: SimPair) -> events.ConnectionTerminated:
    return next(e for e in pair.client_events if isinstance(e, events.ConnectionTerminated))


def test_v1_pair_stays_v1_without_version_information() -> None:
    pair = pair_with((V1,), (V1,))
    transfer(pair)
    assert set(pair.versions("to_server")) == set(pair.versions("to_client")) == {V1}
    assert pair.client._peer_params.version_information is None  # nothing to negotiate


def test_v2_only_pair_transfers_with_v2_packets_and_key_update() -> None:
    pair = pair_with((V2,), (V2,), link=LinkModel(loss=0.02))
    pair.response_size = 400_000
    pair.connect()
    pair.run(pair.handshaken, max_time=30)
    pair.run(lambda: pair.client._handshake_confirmed)
    pair.client.request_key_update(pair.now)  # "quicv2 ku" (RFC 9369 §3.3.2)
    (sid,) = pair.request()
    pair.run(lambda: sid in pair.finished, max_time=60)
    assert bytes(pair.received[sid]) == pair.body(pair.response_size)
    assert set(pair.versions("to_server")) == set(pair.versions("to_client")) == {V2}
    first_client = pair.wire[0][1][0]
    assert first_client == (V2, PACKET_TYPE_INITIAL)
    assert pair.server is not None and pair.server._cryptos[2].generation == 1
    assert pair.client._peer_params.version_information is not None


def test_compatible_negotiation_moves_v1_client_to_v2_without_a_round_trip() -> None:
    plain = pair_with((V1, V2), (V1, V2))  # the server prefers v1: no switch
    transfer(plain)
    assert set(plain.versions("to_client")) == {V1}
    moved = pair_with((V1, V2), (V2, V1))
    transfer(moved)
    assert moved.wire[0] == ("to_server", [(V1, PACKET_TYPE_INITIAL)])
    assert set(moved.versions("to_client")) == {V2}  # the server's first Initial is v2 already
    to_server = moved.versions("to_server")
    assert to_server[-1] == V2 and set(to_server) == {V1, V2}
    assert to_server.index(V2) > 0 and V1 not in to_server[to_server.index(V2):]
    assert moved.server is not None
    assert moved.client._versions.current == moved.server._versions.current == V2
    # The switch costs no round trip (RFC 9368 §2.3): same handshake time on the same link.
    assert plain.handshake_at is not None and moved.handshake_at is not None
    assert abs(moved.handshake_at - plain.handshake_at) < 0.001


def test_client_starts_in_v1_while_listing_v2_first() -> None:
    """``initial_version``: the first Initial is v1, Available Versions keep the preference order
    (v2 first, RFC 9368 §3), and a v2-preferring server moves the connection to v2."""
    pair = WirePair(client_overrides={"supported_versions": (V2, V1), "initial_version": V1},
                    server_overrides={"supported_versions": (V2, V1)})
    pair.response_size = 50_000
    info = pair.client._versions.local_information()
    assert info is not None and (info.chosen_version, info.available_versions) == (V1, (V2, V1))
    transfer(pair)
    assert pair.wire[0] == ("to_server", [(V1, PACKET_TYPE_INITIAL)])
    assert set(pair.versions("to_client")) == {V2}
    assert pair.server is not None and pair.server._versions.current == V2


def test_negotiation_is_in_the_qlog_of_both_sides() -> None:
    sinks: dict[bool, RecordingSink] = {}

    def factory(odcid: bytes, is_client: bool) -> RecordingSink:
        return sinks.setdefault(is_client, RecordingSink())

    pair = WirePair(client_overrides={"supported_versions": (V1, V2), "qlog_factory": factory},
                    server_overrides={"supported_versions": (V2, V1), "qlog_factory": factory})
    pair.response_size = 10
    transfer(pair)
    for is_client in (True, False):
        (info,) = sinks[is_client].named("version_information")
        assert info["chosen"] == V2 and info["client_versions"] == (V1, V2)
        assert info["server_versions"] == (V2, V1)
    switches = [c for c in sinks[True].named("custom") if c["name"] == "version_switch"]
    assert switches and switches[0]["data"]["version"] == "6b3343cf"


def test_compatible_negotiation_after_retry() -> None:
    pair = pair_with((V1, V2), (V2, V1), retry=True)
    transfer(pair)
    assert pair.client._ids.received_retry and pair.client._versions.current == V2


def test_v2_retry() -> None:
    pair = pair_with((V2,), (V2,), retry=True)
    transfer(pair)
    assert pair.client._ids.received_retry and set(pair.versions("to_client")) == {V2}


def test_incompatible_negotiation_client_starts_again_in_a_common_version() -> None:
    pair = pair_with((V2, V1), (V1,))
    transfer(pair)
    kinds = [pkts[0] for d, pkts in pair.wire if d == "to_client" and pkts]
    assert kinds[0] == (0, PACKET_TYPE_VERSION_NEGOTIATION)
    assert pair.wire[0][1][0] == (V2, PACKET_TYPE_INITIAL)
    assert pair.client._versions.after_vn and pair.client._versions.current == V1


def test_incompatible_negotiation_without_common_version_fails_clearly() -> None:
    pair = pair_with((V2,), (V1,))
    pair.connect()
    pair.run(lambda: any(isinstance(e, events.ConnectionTerminated) for e in pair.client_events))
    term = client_terminated(pair)
    assert term.error_code == QuicErrorCode.VERSION_NEGOTIATION_ERROR
    assert "server speaks v1, we speak v2" in term.reason_phrase
    assert pair.endpoint.connections == set()  # the server kept no state (RFC 9000 §6.1)


def test_version_negotiation_listing_our_version_is_ignored() -> None:
    pair = pair_with((V1, V2), (V1, V2))
    pair.client.connect(SERVER_ADDR, 0.0)
    first = [d for d, _ in pair.client.datagrams_to_send(0.0)]
    vn = encode_quic_version_negotiation(source_cid=pair.client._peer_cids.current.cid,
                                         destination_cid=pair.client.host_cid,
                                         supported_versions=[V2, V1])
    pair.client.receive_datagram(vn, SERVER_ADDR, 0.001)
    assert pair.client.next_event() is None and not pair.client._versions.after_vn
    for data in first:
        got = pair.endpoint.receive_datagram(data, CLIENT_ADDR, 0.01)
        pair.server = got.connection
    pair._flush()
    pair.run(pair.handshaken)


def test_forged_version_negotiation_downgrade_is_rejected() -> None:
    """An attacker drops the client's v2 Initial and forges a VN listing only v1 (RFC 9368 §4):
    the server's version_information shows it speaks v2, so the client closes."""
    pair = pair_with((V2, V1), (V1, V2))
    pair.client.connect(SERVER_ADDR, 0.0)
    pair.client.datagrams_to_send(0.0)  # dropped by the attacker
    forged = encode_quic_version_negotiation(source_cid=pair.client._peer_cids.current.cid,
                                             destination_cid=pair.client.host_cid,
                                             supported_versions=[V1])
    pair.client.receive_datagram(forged, SERVER_ADDR, 0.001)
    assert pair.client._versions.after_vn and pair.client._versions.current == V1
    pair._flush()
    pair.run(lambda: pair.server is not None and any(
        isinstance(e, events.ConnectionTerminated) for e in pair.server_events))
    term = client_terminated(pair)
    assert term.error_code == QuicErrorCode.VERSION_NEGOTIATION_ERROR
    assert "downgrade" in term.reason_phrase
    server_term = next(e for e in pair.server_events if isinstance(e, events.ConnectionTerminated))
    assert server_term.error_code == QuicErrorCode.VERSION_NEGOTIATION_ERROR and server_term.by_peer
    # A second VN after reacting to one is ignored (RFC 9368 §4).
    assert pair.client._versions.on_version_negotiation(
        pull_quic_header(Buffer(data=forged), host_cid_length=None), pair.client.host_cid,
        pair.client._peer_cids.current.cid, 1.0).action == "ignore"


def test_server_rejects_a_chosen_version_that_is_not_the_packet_version() -> None:
    """A client Initial in v1 whose version_information claims v2 was chosen (RFC 9368 §4)."""
    pair = pair_with((V1, V2), (V2, V1))
    pair.client._versions.chosen = V2  # what a tampered hello would claim
    pair.connect()
    pair.run(lambda: any(isinstance(e, events.ConnectionTerminated) for e in pair.client_events))
    term = client_terminated(pair)
    assert term.error_code == QuicErrorCode.VERSION_NEGOTIATION_ERROR and term.by_peer
    assert "not the version of its first Initial" in term.reason_phrase


def test_client_provokes_version_negotiation_with_a_reserved_version() -> None:
    """quic-interop-runner's versionnegotiation: the first Initial in a reserved version (v1's
    format, RFC 9000 §6.3, §15) gets VN; the client starts again in v1."""
    reserved = 0x1A2A3A4A
    for server in ((V1,), (V1, V2)):
        pair = pair_with((reserved, V1), server)
        transfer(pair)
        assert pair.wire[0][1][0][0] == reserved
        kinds = [pkts[0] for d, pkts in pair.wire if d == "to_client" and pkts]
        assert kinds[0] == (0, PACKET_TYPE_VERSION_NEGOTIATION)
        assert pair.client._versions.current == V1 and pair.client._versions.after_vn


def test_server_waits_for_the_whole_client_hello_but_only_so_long() -> None:
    """The server holds the first ClientHello until whole (the version is chosen on it), but no
    more than a CRYPTO buffer's worth: then TLS sees it and refuses the oversized message."""
    cfg = QuicConfiguration(is_client=False, rng=seeded_rng(3), wall_clock=lambda: WALL,
                            certificate_source=simpair.test_credentials())
    server = QuicConnection(configuration=cfg, original_destination_connection_id=b"\x01" * 8,
                            peer_cid=b"\x02" * 8)
    server.on_crypto_frame(0, 0, b"\x01\xff\xff\xff" + bytes(30_000), 0.0)
    assert not server._tls._session and len(server._tls._hello) == 30_004
    with pytest.raises(TlsAlert, match="too large"):
        server.on_crypto_frame(0, 30_004, bytes(40_000), 0.0)
    assert not server._tls._hello
