"""Path validation and migration on virtual time (RFC 9000 §8.2, §9): NAT rebinding of port and
address, the 3x limit on the new path, validation timeout, client active migration with a new
connection ID, and migration to the server's preferred address."""

from __future__ import annotations

import hashlib
import heapq
from typing import Any

from simpair import CLIENT_ADDR, SERVER_ADDR, LinkModel
from test_sim_pair import EchoPair

from quicreality.qlog.sink import RecordingSink
from quicreality.quic import events
from quicreality.quic.connection import QuicConnection
from quicreality.quic.recovery.loss import SPACE_HANDSHAKE

SIZE = 1_500_000
NEW_PORT = (CLIENT_ADDR[0], CLIENT_ADDR[1] + 1)
NEW_HOST = ("10.0.0.9", CLIENT_ADDR[1])
PREFERRED = ("10.0.0.3", 4433)


class MigrationPair(EchoPair):
    """EchoPair that records where the server sends, drops datagrams to blocked addresses and
    counts the bytes the server received from each address."""

    def __post_init__(self) -> None:
        self.sinks: dict[bool, RecordingSink] = {}

        def factory(odcid: bytes, is_client: bool) -> RecordingSink:
            return self.sinks.setdefault(is_client, RecordingSink())

        self.client_overrides = {**self.client_overrides, "qlog_factory": factory}
        self.server_overrides = {**self.server_overrides, "qlog_factory": factory}
        super().__post_init__()
        self.response_size = SIZE
        self.server_sent: list[tuple[Any, bytes, list[dict[str, Any]]]] = []
        self.client_sent_to: list[Any] = []
        self.received_from: dict[Any, int] = {}
        self.blocked: set[Any] = set()
        self.amplification_ok = True
        #: per address: (bytes sent to it, bytes received from it) at the last send unvalidated
        self.unvalidated_usage: dict[Any, tuple[int, int]] = {}
        inner = self.endpoint.receive_datagram

        def counting(data: bytes, addr: Any, now: float, ecn: int = 0) -> Any:
            self.received_from[addr] = self.received_from.get(addr, 0) + len(data)
            return inner(data, addr, now, ecn)

        self.endpoint.receive_datagram = counting  # type: ignore[method-assign]

    def _flush(self) -> None:
        for data, addr in self.client.datagrams_to_send(self.now):
            self.client_sent_to.append(addr)
            self._transmit("to_server", data, self.client.ecn.codepoint)
        sink = self.sinks.get(False)
        for conn in list(self.endpoint.connections):
            before = len(sink.named("packet_sent")) if sink else 0
            out = conn.datagrams_to_send(self.now)
            sent = sink.named("packet_sent")[before:] if sink else []
            for i, (data, addr) in enumerate(out):
                frames = sent[i]["frames"] if len(out) == len(sent) else []
                self.server_sent.append((addr, data, frames))
                if addr in self.blocked:
                    continue
                self._transmit("to_client", data, conn.ecn.codepoint)
            self._check_amplification(conn)
        self._drain_events()

    def _check_amplification(self, conn: QuicConnection) -> None:
        """RFC 9000 §8.1/§9.3: to an address not validated, at most 3x what came from it."""
        path = conn._path
        if path.validated or path.address is None:
            return
        sent = sum(len(d) for a, d, _ in self.server_sent if a == path.address)
        received = self.received_from.get(path.address, 0)
        self.unvalidated_usage[path.address] = (sent, received)
        if sent > 3 * received:
            self.amplification_ok = False

    def sent_to(self, addr: Any) -> list[tuple[bytes, list[dict[str, Any]]]]:
        return [(d, fr) for a, d, fr in self.server_sent if a == addr]

    def got(self) -> int:
        return sum(len(v) for v in self.received.values())

    def done(self) -> bool:
        return bool(self.finished)


def start(pair: MigrationPair, until: int = 200_000) -> list[int]:
    pair.connect()
    pair.run(pair.handshaken, max_time=10)
    ids = pair.request()
    pair.run(lambda: pair.got() >= until, max_time=30)
    return ids


def body_ok(pair: MigrationPair, ids: list[int]) -> bool:
    data = bytes(pair.received[ids[0]])
    return hashlib.sha256(data).digest() == hashlib.sha256(pair.body(SIZE)).digest()


def frame_data(frames: list[dict[str, Any]], kind: str) -> list[str]:
    return [f["data"] for f in frames if f.get("frame_type") == kind]


def client_responses(pair: MigrationPair) -> set[str]:
    return {d for p in pair.sinks[True].named("packet_sent") for d in
            frame_data(p["frames"] or [], "path_response")}


def test_port_rebinding_validates_new_path_and_keeps_congestion_state() -> None:
    pair = MigrationPair(seed=3, link=LinkModel(delay=0.02, rate_bps=20e6, queue_bytes=200_000))
    ids = start(pair)
    server = pair.server
    assert server is not None
    old_seq = server._peer_cids.current.sequence_number
    pair.client_addr = NEW_PORT
    pair.run(pair.done, max_time=60)
    assert body_ok(pair, ids)
    paths = server._paths
    assert server._path.address == NEW_PORT and server._path.validated
    assert (paths.migrations, paths.validations, paths.recovery_resets) == (1, 1, 0)
    first_frames = pair.sent_to(NEW_PORT)[0][1]
    challenges = frame_data(first_frames, "path_challenge")
    assert challenges, f"first server packet on the new path has no PATH_CHALLENGE: {first_frames}"
    assert set(challenges) <= client_responses(pair)
    # RFC 9000 §9.5: a new peer connection ID on the new path, the old one retired and replaced.
    assert server._peer_cids.current.sequence_number != old_seq
    assert old_seq not in [e.sequence_number for e in pair.client._host_cids.entries]
    assert len(pair.client._host_cids.entries) == server._receiver.active_cid_limit
    assert pair.amplification_ok


def test_address_rebinding_resets_congestion_and_rtt() -> None:
    pair = MigrationPair(seed=4, link=LinkModel(delay=0.02, rate_bps=20e6, queue_bytes=200_000))
    ids = start(pair)
    server = pair.server
    assert server is not None
    pair.client_addr = NEW_HOST
    resets_seen: list[bool] = []
    pair.run(lambda: server._paths.migrations == 1, max_time=30)
    resets_seen.append(not server._rtt.has_sample)  # RTT estimator started over (RFC 9000 §9.4)
    pair.run(pair.done, max_time=60)
    assert body_ok(pair, ids)
    assert server._paths.recovery_resets == 1 and resets_seen == [True]
    assert server._path.address == NEW_HOST and server._path.validated
    updated = [r["data"] for r in pair.sinks[False].named("custom")
               if r["name"] == "transport:path_updated"]
    assert updated and updated[0]["port_only"] is False
    assert pair.amplification_ok


def test_amplification_limit_binds_on_the_unvalidated_path() -> None:
    # A long RTT keeps the new path unvalidated for a while during a bulk download.
    pair = MigrationPair(seed=5, link=LinkModel(delay=0.1, rate_bps=50e6, queue_bytes=500_000))
    ids = start(pair, until=300_000)
    server = pair.server
    assert server is not None
    pair.client_addr = NEW_HOST
    pair.run(lambda: server._paths.migrations == 1, max_time=30)
    pair.run(lambda: server._path.validated, max_time=30)
    to_new, from_new = pair.unvalidated_usage[NEW_HOST]
    # Until validation the server sent to the new address, but never more than 3x (RFC 9000 §8.1).
    assert 0 < to_new <= 3 * from_new
    assert to_new >= 2 * from_new, "the server should have used most of its 3x budget"
    assert pair.amplification_ok
    pair.run(pair.done, max_time=60)
    assert body_ok(pair, ids)


def test_validation_timeout_reverts_then_recovers() -> None:
    pair = MigrationPair(seed=6, link=LinkModel(delay=0.02, rate_bps=20e6, queue_bytes=200_000))
    ids = start(pair)
    server = pair.server
    assert server is not None
    pair.client_addr = NEW_PORT
    pair.blocked = {NEW_PORT}  # the new path carries nothing back: validation cannot succeed
    pair.run(lambda: server._paths.validation_failures >= 1, max_time=60)
    failed = [r["data"] for r in pair.sinks[False].named("custom")
              if r["name"] == "transport:path_validation_failed"]
    assert failed[0]["reverted"] is True
    assert not server.is_terminated
    pair.blocked = set()
    pair.run(pair.done, max_time=120)
    assert body_ok(pair, ids)
    assert server._path.address == NEW_PORT and server._path.validated
    assert pair.amplification_ok


def test_client_active_migration_uses_new_connection_id() -> None:
    pair = MigrationPair(seed=7, link=LinkModel(delay=0.02, rate_bps=20e6, queue_bytes=200_000))
    pair.connect()
    early = pair.client.migrate(pair.now, ("10.0.0.1", 50000))
    assert not early.accepted and "not confirmed" in early.reason
    pair.run(pair.handshaken, max_time=10)
    ids = pair.request()
    pair.run(lambda: pair.got() >= 200_000, max_time=30)
    server = pair.server
    assert server is not None
    verdict = pair.client.migrate(pair.now, NEW_PORT)
    assert verdict.accepted, verdict.reason
    assert verdict.peer_address == SERVER_ADDR
    client_cid = pair.client._peer_cids.current
    assert client_cid.sequence_number >= 1 and client_cid.cid in server.host_cids
    pair.client_addr = NEW_PORT  # the edge now sends from the new socket
    pair.run(pair.done, max_time=60)
    assert body_ok(pair, ids)
    assert pair.client._paths.validations == 1 and server._paths.validations == 1
    # The server retired nothing of its own; the client retired sequence 0 (RFC 9000 §9.5).
    assert 0 not in [e.sequence_number for e in server._host_cids.entries]
    client_challenges = {d for p in pair.sinks[True].named("packet_sent")
                         for d in frame_data(p["frames"] or [], "path_challenge")}
    server_responses = {d for _, _, fr in pair.server_sent for d in frame_data(fr, "path_response")}
    assert client_challenges and client_challenges & server_responses
    assert frame_data(pair.sent_to(NEW_PORT)[0][1], "path_challenge")


def test_client_migrates_to_preferred_address() -> None:
    pair = MigrationPair(seed=8, link=LinkModel(delay=0.02, rate_bps=20e6, queue_bytes=200_000),
                         server_overrides={"preferred_address": PREFERRED})
    ids = start(pair)
    server = pair.server
    assert server is not None
    assert pair.client._paths.preferred_address == PREFERRED
    preferred_cid = next(e.cid for e in server._host_cids.entries if e.sequence_number == 1)
    verdict = pair.client.migrate(pair.now, NEW_PORT, to_preferred_address=True)
    assert verdict.accepted and verdict.peer_address == PREFERRED
    assert pair.client._peer_cids.current.cid == preferred_cid
    pair.client_addr = NEW_PORT
    pair.server_addr = PREFERRED  # the server answers from the socket the client now reaches
    mark = len(pair.client_sent_to)
    pair.run(pair.done, max_time=60)
    assert body_ok(pair, ids)
    assert set(pair.client_sent_to[mark:]) == {PREFERRED}
    assert pair.client._paths.validations == 1


def test_migration_refusals_are_verdicts() -> None:
    pair = MigrationPair(seed=9)
    start(pair, until=10_000)
    pair.client._paths.disable_active_migration = True
    disabled = pair.client.migrate(pair.now, NEW_PORT)
    assert not disabled.accepted and "disable_active_migration" in disabled.reason
    assert pair.server is not None
    assert not pair.server.migrate(pair.now, NEW_PORT).accepted
    pair.client._paths.disable_active_migration = False
    plain = pair.client.migrate(pair.now, NEW_PORT, to_preferred_address=True)  # none offered
    assert plain.accepted and plain.peer_address == SERVER_ADDR and "new local" in plain.reason


def test_reordered_older_packet_from_the_old_address_does_not_move_the_path() -> None:
    """RFC 9000 §9.3: only the packet with the largest number moves the path; a late packet
    from the old address (reordered past the rebinding) is processed but changes nothing."""
    pair = MigrationPair(seed=10, link=LinkModel(delay=0.02, rate_bps=20e6, queue_bytes=200_000))
    ids = start(pair)
    server = pair.server
    assert server is not None
    held: list[bytes] = []
    inner = pair._transmit

    def hold_one(direction: str, data: bytes, ecn: int = 0) -> None:
        if direction == "to_server" and not held:
            held.append(data)  # this client datagram is "reordered": delivered much later
            return
        inner(direction, data, ecn)

    pair._transmit = hold_one  # type: ignore[method-assign]
    pair.run(lambda: bool(held), max_time=30)
    pair._transmit = inner  # type: ignore[method-assign]
    pair.client_addr = NEW_PORT
    pair.run(lambda: server._path.validated and server._path.address == NEW_PORT, max_time=30)
    largest = server._spaces[2].largest_received
    before = len(pair.sinks[False].named("packet_received"))
    pair.endpoint.receive_datagram(held[0], CLIENT_ADDR, pair.now)  # the late one, old address
    assert len(pair.sinks[False].named("packet_received")) == before + 1  # it was processed
    assert server._spaces[2].largest_received == largest  # older than what came from NEW_PORT
    assert server._path.address == NEW_PORT and server._paths.migrations == 1
    pair.run(pair.done, max_time=60)
    assert body_ok(pair, ids)


def test_probe_from_another_address_is_answered_there_without_moving() -> None:
    """RFC 9000 §8.2.2, §9.1: a probing-only packet from another address gets its PATH_RESPONSE
    on that path (a datagram of its own, expanded to 1200 bytes) and the path stays."""
    pair = MigrationPair(seed=11, link=LinkModel(delay=0.02))
    pair.response_size = 10_000
    ids = start(pair, until=10_000)
    pair.run(pair.done, max_time=30)
    pair.run(lambda: not pair._queue, max_time=30)  # quiet: no ACK owed by the client
    server = pair.server
    assert server is not None and body_ok_small(pair, ids)
    pair.client._path.challenge_owed = True  # the client probes (a PATH_CHALLENGE alone)
    probe = pair.client.datagrams_to_send(pair.now)
    assert len(probe) == 1
    sent = pair.sinks[True].named("packet_sent")[-1]["frames"]
    assert [f["frame_type"] for f in sent] == ["path_challenge"]
    mark = len(pair.server_sent)
    pair.endpoint.receive_datagram(probe[0][0], NEW_HOST, pair.now)
    pair._flush()
    answers = [(a, d, fr) for a, d, fr in pair.server_sent[mark:] if a == NEW_HOST]
    assert len(answers) == 1
    _, datagram, frames = answers[0]
    assert frame_data(frames, "path_response") == frame_data(sent, "path_challenge")
    assert frame_data(frames, "path_challenge"), "the answer also challenges the probed path"
    assert len(datagram) == 1200  # 3x the 1200-byte probe allows the full expansion
    assert server._path.address == CLIENT_ADDR and server._paths.migrations == 0


def body_ok_small(pair: MigrationPair, ids: list[int]) -> bool:
    return bytes(pair.received[ids[0]]) == pair.body(pair.response_size)


def test_nat_rebinding_during_the_handshake_is_followed() -> None:
    """A NAT that rebinds between the client's first Initial and the end of the handshake: the
    server follows the newest Initial/Handshake packet (the old mapping is gone), and the
    connection completes (before confirmation there is no PATH_CHALLENGE, §9)."""
    pair = MigrationPair(seed=12, link=LinkModel(delay=0.02))
    pair.response_size = 50_000
    pair.connect()
    pair.run(lambda: pair.server is not None, max_time=5)
    pair.client_addr = NEW_PORT
    pair.blocked = {CLIENT_ADDR}  # the old mapping is gone: nothing reaches the client there
    pair.run(pair.handshaken, max_time=20)
    ids = pair.request()
    pair.run(pair.done, max_time=30)
    assert body_ok_small(pair, ids)
    server = pair.server
    assert server is not None and server._path.address == NEW_PORT
    updated = [r["data"] for r in pair.sinks[False].named("custom")
               if r["name"] == "transport:path_updated"]
    assert updated and updated[0]["trigger"] == "handshake"
    assert pair.amplification_ok


def test_nat_rebinding_right_after_the_client_finished_does_not_deadlock() -> None:
    """The interop matrix's rebind-addr failure: the NAT rebinds after the client's Finished and
    first request reached the server and before the server's answer came back, so everything
    the server sends goes to the forgotten mapping. The server has confirmed the handshake and
    discarded its Handshake keys, so the client's Handshake probes from the new address are
    undecryptable there; only a 1-RTT packet from the new address moves the server's path
    (RFC 9000 §9.3). The client's PTO therefore also sends from the Application space, where it
    has data in flight (RFC 9002 §6.2.4); without that both sides wait for the idle timeout."""
    pair = MigrationPair(seed=13, link=LinkModel(delay=0.02, rate_bps=20e6, queue_bytes=200_000))
    pair.connect()
    pair.run(lambda: any(isinstance(e, events.HandshakeCompleted) for e in pair.client_events),
             max_time=10)
    ids = pair.request()  # goes out right behind the Finished, as the interop client's request
    pair.run(lambda: any(isinstance(e, events.HandshakeCompleted) for e in pair.server_events)
             and not any(q[2] == "to_server" for q in pair._queue), max_time=10)
    server = pair.server
    assert server is not None and server._spaces[SPACE_HANDSHAKE].discarded
    # the NAT forgets the old mapping: what is in flight to it is lost, later sends too
    assert any(q[2] == "to_client" for q in pair._queue), "premise: the answer is in flight"
    pair._queue[:] = [q for q in pair._queue if q[2] != "to_client"]
    heapq.heapify(pair._queue)
    pair.blocked = {CLIENT_ADDR}
    pair.client_addr = NEW_HOST
    pair.run(pair.done, max_time=60)
    assert body_ok(pair, ids)
    assert server._path.address == NEW_HOST and server._path.validated
    assert pair.amplification_ok
