"""What an idle connection keeps (docs/performance.md, "Idle connection memory"): behaviour of the
cuts, not their sizes (sizes differ compiled and pure, and are measured by ``bench connections``)."""

from __future__ import annotations

from quicreality.fuzz.pair import CLIENT_ADDR, SERVER_ADDR, EstablishedPair
from quicreality.h3.qpack import QpackReceiver
from quicreality.quic.recovery.loss import SPACE_APPLICATION, SPACE_HANDSHAKE, SPACE_INITIAL
from quicreality.wire.bounded import push_bounded


def _settle(pair: EstablishedPair, rounds: int = 5, *, drain: bool = True) -> None:
    for _ in range(rounds):
        pair.now += 0.05
        for data, _ in pair.client.datagrams_to_send(pair.now):
            pair.server.receive_datagram(data, CLIENT_ADDR, pair.now)
        for data, _ in pair.server.datagrams_to_send(pair.now):
            pair.client.receive_datagram(data, SERVER_ADDR, pair.now)
        for conn in (pair.client, pair.server):
            timer = conn.get_timer()
            if timer is not None and timer <= pair.now:
                conn.handle_timer(pair.now)
        if drain:
            pair.drain_events()


def test_push_bounded_keeps_the_newest() -> None:
    items: list[int] = []
    for i in range(10):
        push_bounded(items, i, 4)
    assert items == [6, 7, 8, 9]


def test_server_tls_releases_handshake_state_once_connected() -> None:
    pair = EstablishedPair(5)
    _settle(pair)
    session = pair.server._tls._session
    assert session is not None and session.handshake_complete
    assert session.client_hello is None and session.server_hello is None
    assert session._key_schedule is None and not session._server_auth_flight
    # the client keeps what it needs for tickets (RFC 8446 §4.6.1)
    client_session = pair.client._tls._session
    assert client_session is not None and client_session.client_hello is not None


def test_discarded_spaces_hold_nothing_and_the_connection_still_works() -> None:
    pair = EstablishedPair(6)
    _settle(pair)
    for conn in (pair.client, pair.server):
        for space_id in (SPACE_INITIAL, SPACE_HANDSHAKE):
            space = conn._spaces[space_id]
            assert space.discarded
            assert not space.crypto.has_data_to_send()
            # the packet whose frames confirmed the handshake is counted after the discard
            assert len(space.received) <= 1
        assert not conn._spaces[SPACE_APPLICATION].discarded
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"after the discard", end_stream=True)
    got = b""
    for _ in range(5):
        _settle(pair, 1, drain=False)
        while (event := pair.server.next_event()) is not None:
            got += getattr(event, "data", b"") or b""
    assert got == b"after the discard"


def test_pair_with_released_state_snapshots() -> None:
    """The fuzz pairs pickle connections (after the handshake, so after the release)."""
    pair = EstablishedPair(7)
    _settle(pair)
    copy = EstablishedPair.restore(pair.snapshot())
    sid = copy.client.get_next_available_stream_id()
    copy.client.send_stream_data(sid, b"x", end_stream=True)
    _settle(copy, 2)


def test_qpack_decoder_made_at_first_use() -> None:
    receiver = QpackReceiver(4096, 16, 65536)
    assert receiver._decoder is None
    assert receiver.feed_encoder(b"") == []
    assert receiver._decoder is not None
