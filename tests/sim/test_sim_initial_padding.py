"""RFC 9000 §14.1: every datagram a client sends with an Initial packet is at least 1200 bytes."""

from __future__ import annotations

from typing import Any

from simpair import SERVER_ADDR, seeded_rng

from quicreality.quic.config import QuicConfiguration
from quicreality.quic.connection import QuicConnection
from quicreality.quic.packet import MIN_INITIAL_DATAGRAM_SIZE, PACKET_TYPE_INITIAL, pull_quic_header
from quicreality.tls.certificates import InsecureVerifier
from quicreality.wire.buffer import Buffer


def _client(**overrides: Any) -> QuicConnection:
    cfg = QuicConfiguration(is_client=True, server_name="localhost", rng=seeded_rng(7),
                            peer_verifier=InsecureVerifier(), **overrides)
    return QuicConnection(configuration=cfg)


def _first_packet_type(datagram: bytes) -> int:
    return pull_quic_header(Buffer(data=datagram), host_cid_length=8).packet_type


def test_client_first_flight_is_padded() -> None:
    client = _client()
    client.connect(SERVER_ADDR, 0.0)
    datagrams = client.datagrams_to_send(0.0)
    assert datagrams and all(len(d) >= MIN_INITIAL_DATAGRAM_SIZE for d, _ in datagrams)


def test_client_close_in_initial_space_is_padded() -> None:
    """A client that closes before the handshake sends CONNECTION_CLOSE in an Initial: padded."""
    client = _client()
    client.connect(SERVER_ADDR, 0.0)
    client.datagrams_to_send(0.0)
    client.close(0x100, reason_phrase="going away")
    datagrams = client.datagrams_to_send(0.01)
    assert len(datagrams) == 1
    data, addr = datagrams[0]
    assert addr == SERVER_ADDR
    assert _first_packet_type(data) == PACKET_TYPE_INITIAL
    assert len(data) == MIN_INITIAL_DATAGRAM_SIZE

