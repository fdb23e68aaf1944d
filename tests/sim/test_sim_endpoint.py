"""Server endpoint answers statelessly: Version Negotiation, Retry, stateless reset; drops junk."""

from __future__ import annotations

from simpair import CLIENT_ADDR, SimPair

from quicreality.quic import events
from quicreality.quic.packet import (
    PACKET_TYPE_RETRY,
    PACKET_TYPE_VERSION_NEGOTIATION,
    pull_quic_header,
)
from quicreality.wire.buffer import Buffer


def long_header_datagram(version: int, size: int = 1200) -> bytes:
    dcid, scid = bytes(range(8)), bytes(range(8, 16))
    head = bytes([0xC0]) + version.to_bytes(4, "big") + bytes([8]) + dcid + bytes([8]) + scid
    return head + bytes(size - len(head))


def test_unknown_version_gets_version_negotiation() -> None:
    pair = SimPair(seed=31)
    got = pair.endpoint.receive_datagram(long_header_datagram(0x1A2A3A4A), CLIENT_ADDR, 0.0)
    assert got.connection is None and len(got.replies) == 1
    header = pull_quic_header(Buffer(data=got.replies[0][0]), host_cid_length=8)
    assert header.packet_type == PACKET_TYPE_VERSION_NEGOTIATION
    assert 0x00000001 in header.supported_versions
    assert header.destination_cid == bytes(range(8, 16))  # echoes the client's SCID
    # Too small for an Initial: no answer at all (RFC 9000 §6.1 / §14.1).
    small = pair.endpoint.receive_datagram(long_header_datagram(0x1A2A3A4A, 100), CLIENT_ADDR, 0.0)
    assert small.replies == ()


def test_client_aborts_on_version_negotiation_without_common_version() -> None:
    pair = SimPair(seed=32)
    pair.client.connect(("10.0.0.2", 443), 0.0)
    pair.client.datagrams_to_send(0.0)
    from quicreality.quic.packet import encode_quic_version_negotiation

    vn = encode_quic_version_negotiation(source_cid=pair.client._peer_cids.current.cid,
                                         destination_cid=pair.client.host_cid,
                                         supported_versions=[0x1A2A3A4A])
    pair.client.receive_datagram(vn, ("10.0.0.2", 443), 0.01)
    ev = pair.client.next_event()
    assert isinstance(ev, events.ConnectionTerminated) and "Version negotiation" in ev.reason_phrase


def test_retry_is_sent_for_tokenless_initials() -> None:
    pair = SimPair(seed=33, retry=True)
    pair.client.connect(("10.0.0.2", 443), 0.0)
    (initial, _), = pair.client.datagrams_to_send(0.0)
    got = pair.endpoint.receive_datagram(initial, CLIENT_ADDR, 0.0)
    assert got.connection is None and len(got.replies) == 1
    header = pull_quic_header(Buffer(data=got.replies[0][0]), host_cid_length=8)
    assert header.packet_type == PACKET_TYPE_RETRY and header.token
    # A forged token is dropped: no connection, no answer.
    assert not pair.endpoint.connections


def test_short_header_for_unknown_connection_gets_stateless_reset() -> None:
    pair = SimPair(seed=34)
    packet = bytes([0x40]) + bytes(range(8)) + bytes(60)
    got = pair.endpoint.receive_datagram(packet, CLIENT_ADDR, 0.0)
    assert len(got.replies) == 1
    reset = got.replies[0][0]
    assert len(reset) < len(packet) and reset[0] & 0xC0 == 0x40
    tiny = pair.endpoint.receive_datagram(packet[:20], CLIENT_ADDR, 0.0)
    assert tiny.replies == ()  # never amplify: too small to answer


def _established(seed: int) -> SimPair:
    from quicreality.quic.connection import ConnectionState

    pair = SimPair(seed=seed)
    pair.connect()
    pair.run(lambda: pair.server is not None and pair.server.state == ConnectionState.CONNECTED
             and pair.client.state == ConnectionState.CONNECTED)
    return pair


def test_1rtt_datagrams_are_routed_by_dcid_and_delivered() -> None:
    """The short-header fast path: each 1-RTT datagram reaches its connection, and the data
    arrives whole."""
    pair = _established(35)
    server, ep = pair.server, pair.endpoint
    assert server is not None
    sid = pair.client.get_next_available_stream_id()
    payload = bytes(range(256)) * 20
    pair.client.send_stream_data(sid, payload, end_stream=True)
    datagrams = [d for d, _ in pair.client.datagrams_to_send(pair.now)]
    assert len(datagrams) >= 4 and all(d[0] & 0xC0 == 0x40 for d in datagrams)
    for d in datagrams:
        assert ep.receive_datagram(d, CLIENT_ADDR, pair.now).connection is server
    got = b""
    while (ev := server.next_event()) is not None:
        if isinstance(ev, events.StreamDataReceived) and ev.stream_id == sid:
            got += ev.data
    assert got == payload


def test_malformed_short_headers_for_a_known_cid_are_not_delivered() -> None:
    """Fixed bit cleared, or cut inside the connection ID: dropped as before the fast path."""
    pair = _established(36)
    server, ep = pair.server, pair.endpoint
    assert server is not None
    cid = server.host_cids[0]
    fixed_bit_zero = bytes([0x00]) + cid + bytes(40)
    cut = bytes([0x40]) + cid[:3]
    assert ep.receive_datagram(fixed_bit_zero, CLIENT_ADDR, pair.now).connection is None
    assert ep.receive_datagram(cut, CLIENT_ADDR, pair.now).connection is None


def test_host_cid_list_is_one_object_until_an_id_is_issued() -> None:
    """The endpoint skips re-routing while the list object is the same: it must change when
    the IDs do."""
    from quicreality.quic.connection.cids import HostConnectionIds

    ids = HostConnectionIds(b"\x01" * 8, lambda n: bytes(n), lambda cid: bytes(16))
    first = ids.cids
    assert ids.cids is first and first == [b"\x01" * 8]
    ids.issue(2)
    assert ids.cids is not first and len(ids.cids) == 2
