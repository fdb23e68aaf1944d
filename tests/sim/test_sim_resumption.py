"""Resumption, 0-RTT and initiated key updates between our client and server, on virtual time."""

from __future__ import annotations

from typing import Any

from simpair import LinkModel
from test_sim_pair import REQUEST, EchoPair, handshake

from quicreality.quic import events
from quicreality.quic.packet import PACKET_TYPE_ZERO_RTT, pull_quic_header
from quicreality.tls.resumption import ServerTicketStore, SessionTicket
from quicreality.wire.buffer import Buffer


class WirePair(EchoPair):
    """Also counts the 0-RTT packets the client puts on the wire."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.zero_rtt_packets = 0

    def _transmit(self, direction: str, data: bytes, ecn: int = 0) -> None:
        if direction == "to_server":
            buf = Buffer(data=data)
            while not buf.eof():
                try:
                    header = pull_quic_header(buf, host_cid_length=8)
                except ValueError:
                    break
                if header.packet_type == PACKET_TYPE_ZERO_RTT:
                    self.zero_rtt_packets += 1
                if not header.is_long_header:
                    break
                buf.seek(header.packet_end)
        super()._transmit(direction, data, ecn)

    def _flush(self) -> None:
        super()._flush()
        super()._flush()  # what the events just drained produced (as the asyncio edge does)


def new_store() -> ServerTicketStore:
    return ServerTicketStore(bytes(range(32)), lifetime=3600)


def ticket_from_first_connection(store: ServerTicketStore, **server: Any) -> SessionTicket:
    pair = WirePair(seed=21, server_overrides={"ticket_store": store, **server})
    handshake(pair)
    pair.run(lambda: any(isinstance(e, events.SessionTicketReceived) for e in pair.client_events))
    ticket = pair.client.early_data.ticket
    assert ticket is not None and ticket.max_early_data_size == 0xFFFFFFFF
    return ticket


def early_request(pair: WirePair, size: int = 0) -> int:
    """Connect and queue a request before the first flight leaves: it can only go as 0-RTT."""
    pair.response_size = size
    pair.client.connect(("10.0.0.2", 443), pair.now)
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, REQUEST, end_stream=True)
    pair._flush()
    return sid


def result(evs: list[Any]) -> events.EarlyDataResult:
    found = [e for e in evs if isinstance(e, events.EarlyDataResult)]
    assert len(found) == 1
    return found[0]


def resumed_pair(store: ServerTicketStore, ticket: SessionTicket, seed: int,
                 **server: Any) -> WirePair:
    return WirePair(seed=seed, client_overrides={"session_ticket": ticket, "early_data": True},
                    server_overrides={"ticket_store": store, **server})


def test_0rtt_accepted_answers_within_one_round_trip() -> None:
    store = new_store()
    pair = resumed_pair(store, ticket_from_first_connection(store), seed=22)
    sid = early_request(pair, size=1000)
    pair.run(lambda: sid in pair.finished)
    assert bytes(pair.received[sid]) == pair.body(1000)
    assert pair.zero_rtt_packets >= 1
    assert result(pair.client_events).accepted and result(pair.server_events).accepted
    assert pair.client.early_data.status == "accepted"
    # The request arrived in 0-RTT: the server had it before its handshake completed, and the
    # response was back after one 20 ms round trip (a 1-RTT request needs two).
    kinds = [type(e) for e in pair.server_events]
    assert events.HandshakeCompleted not in kinds[:kinds.index(events.StreamDataReceived)]
    assert pair.now < 0.035


def test_full_handshake_request_takes_two_round_trips() -> None:
    """The baseline for the test above: the same request without a ticket."""
    pair = WirePair(seed=22)
    sid = early_request(pair, size=1000)
    pair.run(lambda: sid in pair.finished)
    assert pair.zero_rtt_packets == 0 and pair.now >= 0.04


def test_0rtt_rejected_for_changed_transport_parameters_is_resent_in_1rtt() -> None:
    store = new_store()
    ticket = ticket_from_first_connection(store)
    pair = resumed_pair(store, ticket, seed=23, max_data=8 * 1024 * 1024)  # smaller than before
    sid = early_request(pair, size=5000)
    pair.run(lambda: sid in pair.finished)
    assert bytes(pair.received[sid]) == pair.body(5000)
    assert pair.zero_rtt_packets >= 1
    client, server = result(pair.client_events), result(pair.server_events)
    assert not client.accepted and client.resumed
    assert not server.accepted and "transport parameters" in server.reason
    # the server never saw the 0-RTT copy: one request, delivered once, after the handshake
    got = [e for e in pair.server_events if isinstance(e, events.StreamDataReceived)]
    assert b"".join(e.data for e in got) == REQUEST
    kinds = [type(e) for e in pair.server_events]
    assert kinds.index(events.HandshakeCompleted) < kinds.index(events.StreamDataReceived)


def test_replayed_ticket_is_refused_and_the_request_still_succeeds() -> None:
    store = new_store()
    ticket = ticket_from_first_connection(store)
    first = resumed_pair(store, ticket, seed=24)
    sid = early_request(first)
    first.run(lambda: sid in first.finished)
    assert result(first.server_events).accepted
    replay = resumed_pair(store, ticket, seed=25)
    sid = early_request(replay, size=1000)
    replay.run(lambda: sid in replay.finished)
    assert bytes(replay.received[sid]) == replay.body(1000)
    server = result(replay.server_events)
    assert not server.accepted and not server.resumed and "already used" in server.reason


def test_client_applies_remembered_transport_parameters_before_0rtt() -> None:
    store = new_store()
    ticket = ticket_from_first_connection(store, max_data=100_000, max_streams_bidi=7)
    pair = resumed_pair(store, ticket, seed=26, max_data=100_000, max_streams_bidi=7)
    pair.client.connect(("10.0.0.2", 443), 0.0)
    # RFC 9000 §7.4.1: 0-RTT is bound by the limits the server announced last time.
    assert pair.client._stream_mgr.peer_max_data == 100_000
    assert pair.client._stream_mgr.peer_max_streams == [7, 100]
    fresh = WirePair(seed=26)
    fresh.client.connect(("10.0.0.2", 443), 0.0)
    assert fresh.client._stream_mgr.peer_max_data == 0


def test_key_update_request_waits_for_confirmation_then_rotates_both_sides() -> None:
    pair = WirePair(seed=27)
    pair.connect()
    verdict = pair.client.request_key_update(pair.now)
    assert verdict.pending and "confirmed" in verdict.reason
    pair.run(pair.handshaken)
    (sid,) = pair.request()
    pair.response_size = 200_000
    pair.run(lambda: sid in pair.finished)
    assert pair.server is not None
    assert pair.client._cryptos[2].generation == 1 and pair.server._cryptos[2].generation == 1
    ours = [e for e in pair.client_events if isinstance(e, events.KeyUpdated)]
    theirs = [e for e in pair.server_events if isinstance(e, events.KeyUpdated)]
    assert [e.initiated for e in ours] == [True] and [e.initiated for e in theirs] == [False]


def test_second_key_update_waits_for_an_ack_of_the_first() -> None:
    pair = WirePair(seed=28)
    handshake(pair)
    pair.run(lambda: pair.client._handshake_confirmed)
    pair.run(lambda: pair.client._recovery.spaces[2].largest_acked >= 0)
    assert not pair.client.request_key_update(pair.now).reason.startswith("waiting")
    pair.client.datagrams_to_send(pair.now)  # the update is initiated with this send
    assert pair.client._cryptos[2].generation == 1
    again = pair.client.request_key_update(pair.now)
    assert again.pending and "ACK" in again.reason
    pair.client.send_ping(1)
    pair.run(lambda: pair.client._cryptos[2].generation == 2)
    pair.client.send_ping(2)
    pair.run(lambda: pair.server is not None and pair.server._cryptos[2].generation == 2)


def test_confidentiality_limit_triggers_key_updates() -> None:
    pair = WirePair(seed=29, server_overrides={"key_update_packet_limit": 200},
                    link=LinkModel(loss=0.01))
    handshake(pair)
    (sid,) = pair.request()
    pair.response_size = 1_000_000
    pair.run(lambda: sid in pair.finished, max_time=120)
    assert bytes(pair.received[sid]) == pair.body(1_000_000)
    assert pair.server is not None
    sent = pair.server._spaces[2].next_pn
    generation = pair.server._cryptos[2].generation
    assert generation >= sent // 200 - 1 and generation >= 3
    assert pair.client._cryptos[2].generation == generation


def test_0rtt_after_a_retry_is_accepted_and_the_data_arrives_once() -> None:
    store = new_store()
    ticket = ticket_from_first_connection(store)
    pair = WirePair(seed=30, retry=True,
                    client_overrides={"session_ticket": ticket, "early_data": True},
                    server_overrides={"ticket_store": store})
    sid = early_request(pair, size=2000)
    pair.run(lambda: sid in pair.finished)
    assert bytes(pair.received[sid]) == pair.body(2000)
    assert result(pair.client_events).accepted  # the 0-RTT after the Retry was taken
    got = [e for e in pair.server_events if isinstance(e, events.StreamDataReceived)]
    assert b"".join(e.data for e in got) == REQUEST


def test_0rtt_request_survives_30_percent_loss() -> None:
    store = new_store()
    outcomes = []
    for seed in range(31, 36):
        pair = resumed_pair(store, ticket_from_first_connection(store), seed=seed)
        pair.link = LinkModel(loss=0.3)
        sid = early_request(pair, size=20_000)
        pair.run(lambda pair=pair, sid=sid: sid in pair.finished, max_time=60)
        assert bytes(pair.received[sid]) == pair.body(20_000)
        outcomes.append(result(pair.client_events).accepted)
    assert any(outcomes)  # lost first flights are retransmitted; the ticket is still taken


def test_0rtt_in_the_original_version_across_a_compatible_switch_to_v2() -> None:
    """RFC 9368: the client's 0-RTT goes out in its first Initial's version (v1); the server
    moves the connection to v2 and still opens the 0-RTT packets with v1's keys."""
    v1, v2 = 0x00000001, 0x6B3343CF
    store = new_store()
    ticket = ticket_from_first_connection(store, supported_versions=(v2, v1))
    pair = WirePair(seed=37, client_overrides={"session_ticket": ticket, "early_data": True,
                                                "supported_versions": (v1, v2)},
                    server_overrides={"ticket_store": store, "supported_versions": (v2, v1)})
    sid = early_request(pair, size=1000)
    pair.run(lambda: sid in pair.finished)
    assert bytes(pair.received[sid]) == pair.body(1000)
    assert pair.zero_rtt_packets >= 1 and result(pair.server_events).accepted
    assert pair.client._versions.current == v2
    kinds = [type(e) for e in pair.server_events]
    assert events.HandshakeCompleted not in kinds[:kinds.index(events.StreamDataReceived)]
    assert pair.now < 0.035  # answered within one round trip: the 0-RTT was opened
