"""A relay client and server session pair over the in-memory QUIC pair: no sockets, no loop.

The harness plays the edge: it carries the sessions' QUIC actions out on the pair's connections
(``apply_quic_action``), and their socket actions on fake sockets: the local application's
connections on the client, the destinations on the server (resolved, connected and answered at
once). Virtual time also drives the sessions' own timers (UDP idle expiry).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from simpair import LinkModel, SimPair

from quicreality.quic import events
from quicreality.relay.actions import (
    AbortTcp,
    Action,
    Answered,
    CancelConnect,
    CloseTcp,
    CloseUdpFlow,
    ConnectTcp,
    Deliver,
    OpenUdpFlow,
    PauseTcpReading,
    Resolve,
    ResumeTcpReading,
    SendUdp,
    SendUdpTo,
    ShutdownTcpWrite,
    WriteTcp,
)
from quicreality.relay.allow import AllowList
from quicreality.relay.client_session import ClientRelaySession
from quicreality.relay.config import RelayConfig
from quicreality.relay.ports import apply_quic_action
from quicreality.relay.protocol import Destination
from quicreality.relay.server_session import ServerRelaySession
from quicreality.relay.session import RelaySession, TcpLoss

ECHO = Destination("10.9.0.1", 7)
SINK = Destination("10.9.0.1", 9)  # reads, answers with its byte count and a FIN
NOT_ALLOWED = Destination("10.9.0.2", 7)
UDP_ECHO = Destination("10.9.0.1", 5353)
APP = ("127.0.0.1", 50000)


@dataclass
class FakeTcp:
    """One side's view of a TCP socket."""

    received: bytearray = field(default_factory=bytearray)
    shut: bool = False  #: the relay sent FIN to it
    closed: bool = False  #: closed normally
    reset: bool = False  #: closed with an RST
    paused: bool = False  #: the relay stopped reading it


class Observer:
    """Counts outcomes and resets per side."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def stream_opened(self, kind: str, outcome: str) -> None:
        self.events.append(f"{kind}:{outcome}")

    def tcp_active(self, delta: int) -> None:
        pass

    def reset(self, cause: str) -> None:
        self.events.append(f"reset:{cause}")

    def udp_flow_opened(self) -> None:
        self.events.append("flow:open")

    def udp_flow_closed(self, expired: bool) -> None:
        self.events.append("flow:expired" if expired else "flow:closed")

    def udp_relayed(self, direction: str) -> None:
        pass

    def udp_dropped(self, reason: str) -> None:
        self.events.append(f"drop:{reason}")

    def note(self, level: str, message: str) -> None:
        pass


class RelayPair(SimPair):
    """The pair plus a relay session on each end and fake sockets around them."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.relay = RelayConfig(allow=AllowList.parse(["10.9.0.1:*"]), udp_idle_timeout=3.0,
                                 send_high_water=256 * 1024, send_low_water=64 * 1024)
        self.client_relay: ClientRelaySession | None = None
        self.server_relay: ServerRelaySession | None = None
        self.client_seen = Observer()
        self.server_seen = Observer()
        self.apps: dict[int, FakeTcp] = {}  # client side, by stream
        self.dests: dict[int, FakeTcp] = {}  # server side, by stream
        self.dest_kind: dict[int, Destination] = {}
        self.udp_at_app: list[bytes] = []
        self.udp_at_dest: list[bytes] = []
        self.h3_events: list[Any] = []
        self._dirty = False

    # ------------------------------------------------------------ the edge

    def _flush(self) -> None:
        super()._flush()
        self._pump()
        while self._dirty:  # what the sessions queued while handling events goes out now
            self._dirty = False
            super()._flush()
            self._pump()

    def _pump(self) -> None:
        """As the edge does after every batch: resume sockets whose streams drained."""
        for session in (self.client_relay, self.server_relay):
            if session is not None:
                self.carry_out(session, session.pump(self.now))

    def on_client_event(self, event: Any) -> None:
        if isinstance(event, events.HandshakeCompleted):
            self.client_relay = ClientRelaySession(
                self.client, self.relay, max_datagram_size=1200, observer=self.client_seen)
        elif self.client_relay is not None:
            self.carry_out(self.client_relay, self.client_relay.handle_event(event, self.now))

    def on_server_event(self, event: Any) -> None:
        assert self.server is not None
        if self.server_relay is None:
            self.server_relay = ServerRelaySession(
                self.server, self.relay, max_datagram_size=1200, observer=self.server_seen)
        self.carry_out(self.server_relay, self.server_relay.handle_event(event, self.now))

    def carry_out(self, session: RelaySession, actions: list[Action]) -> None:
        """What aio/relay_*.py does, on fakes."""
        is_client = session is self.client_relay
        conn = self.client if is_client else self.server
        assert conn is not None
        sockets = self.apps if is_client else self.dests
        for action in actions:
            match action:
                case WriteTcp(stream_id=sid, data=data):
                    sockets[sid].received += data
                    if not is_client:
                        self.destination_read(sid)
                case ShutdownTcpWrite(stream_id=sid):
                    sockets[sid].shut = True
                    if not is_client:
                        self.destination_read(sid)
                case CloseTcp(stream_id=sid):
                    sockets[sid].closed = True
                    self.carry_out(session, session.tcp_closed(sid, None, "closed", self.now))
                case AbortTcp(stream_id=sid):
                    if sid in sockets:
                        sockets[sid].reset = True
                case PauseTcpReading(stream_id=sid):
                    sockets[sid].paused = True
                case ResumeTcpReading(stream_id=sid):
                    sockets[sid].paused = False
                case Resolve(stream_id=sid, host=host, port=port):
                    assert isinstance(session, ServerRelaySession)
                    self.carry_out(session, session.resolved(sid, [(2, (host, port))], self.now))
                case ConnectTcp(stream_id=sid, destination=dest):
                    assert isinstance(session, ServerRelaySession)
                    self.dests[sid] = FakeTcp()
                    self.dest_kind[sid] = dest
                    self.carry_out(session, session.tcp_connected(sid, self.now))
                case OpenUdpFlow(stream_id=sid):
                    assert isinstance(session, ServerRelaySession)
                    self.carry_out(session, session.udp_flow_opened(sid, self.now))
                case SendUdp(flow_id=flow_id, payload=payload):
                    assert isinstance(session, ServerRelaySession)
                    self.udp_at_dest.append(payload)
                    self.carry_out(session, session.udp_from_destination(
                        flow_id, [b"echo:" + payload], self.now))
                case SendUdpTo(payload=payload):
                    self.udp_at_app.append(payload)
                case CloseUdpFlow() | CancelConnect() | Answered():
                    pass
                case Deliver(event=event):
                    self.h3_events.append(event)
                case _:
                    if not apply_quic_action(conn, action):
                        self.carry_out(session, session.quic_refused(action, self.now))
                    self._dirty = True

    def destination_read(self, sid: int) -> None:
        """The destinations: ECHO writes back what it got (FIN for FIN), SINK only counts."""
        sock = self.dests[sid]
        session = self.server_relay
        assert session is not None
        if self.dest_kind[sid] == ECHO and sock.received:
            chunk, sock.received = bytes(sock.received), bytearray()
            self.carry_out(session, session.tcp_data(sid, chunk, self.now))
        if sock.shut and not sock.closed:
            if self.dest_kind[sid] == SINK:
                self.carry_out(session, session.tcp_data(sid, b"%d" % len(sock.received),
                                                         self.now))
            self.carry_out(session, session.tcp_eof(sid, self.now))

    # ------------------------------------------------------- the application

    def app_connect(self, dest: Destination, data: bytes = b"") -> int:
        """A local application connects (and sends ``data`` at once)."""
        assert self.client_relay is not None
        sid, actions = self.client_relay.open_tcp(dest, self.now, pending=data)
        self.apps[sid] = FakeTcp()
        self.carry_out(self.client_relay, actions)
        self._flush()
        return sid

    def app_send(self, sid: int, data: bytes) -> None:
        assert self.client_relay is not None
        self.carry_out(self.client_relay, self.client_relay.tcp_data(sid, data, self.now))
        self._flush()

    def app_eof(self, sid: int) -> None:
        assert self.client_relay is not None
        self.carry_out(self.client_relay, self.client_relay.tcp_eof(sid, self.now))
        self._flush()

    def app_datagram(self, data: bytes) -> None:
        assert self.client_relay is not None
        self.carry_out(self.client_relay,
                       self.client_relay.udp_from_local(0, UDP_ECHO, APP, data, self.now))
        self._flush()

    # ------------------------------------------------------------ time

    def step(self) -> bool:
        """Also fire the sessions' timers when they are due before anything else."""
        due = [(t, s) for s in (self.client_relay, self.server_relay)
               if s is not None and (t := s.get_timer()) is not None]
        if due:
            t, session = min(due, key=lambda d: d[0])
            quic = [x for x in [self.client.get_timer(),
                                *(c.get_timer() for c in self.endpoint.connections)]
                    if x is not None]
            if self._queue:
                quic.append(self._queue[0][0])
            if not quic or t < min(quic):
                self.now = max(self.now, t)
                assert isinstance(session, (ClientRelaySession, ServerRelaySession))
                self.carry_out(session, session.handle_timer(self.now))
                self._flush()
                return True
        return super().step()


def flow_ended(seen: Observer) -> bool:
    return "flow:expired" in seen.events or "flow:closed" in seen.events


def ready_pair(**kw: Any) -> RelayPair:
    pair = RelayPair(**kw)
    pair.connect()
    pair.run(lambda: pair.client_relay is not None and pair.server_relay is not None)
    return pair


def test_tcp_echo_and_half_close_cross_the_pair() -> None:
    pair = ready_pair(seed=3)
    sid = pair.app_connect(ECHO, b"hello ")
    pair.app_send(sid, b"world")
    pair.run(lambda: bytes(pair.apps[sid].received) == b"hello world")
    assert pair.dest_kind == {sid: ECHO}
    pair.app_eof(sid)  # TCP FIN -> stream FIN -> the destination's socket is shut down
    pair.run(lambda: pair.apps[sid].closed)
    assert pair.dests[sid].shut and pair.dests[sid].closed  # its FIN came back
    assert pair.apps[sid].shut and not pair.apps[sid].reset
    assert pair.client_seen.events == ["tcp:ok"] and pair.server_seen.events == ["tcp:ok"]
    assert pair.h3_events and not any(isinstance(e, events.StreamDataReceived)
                                      for e in pair.h3_events)


def test_a_megabyte_over_a_lossy_link_arrives_byte_exact_with_backpressure() -> None:
    pair = ready_pair(seed=5, link=LinkModel(loss=0.02))
    blob = bytes((i * 7 + 3) & 0xFF for i in range(1_000_000))
    sid = pair.app_connect(SINK)
    paused_once = False
    for i in range(0, len(blob), 64 * 1024):
        pair.run(lambda: not pair.apps[sid].paused, max_time=120.0)
        pair.app_send(sid, blob[i:i + 64 * 1024])
        paused_once = paused_once or pair.apps[sid].paused
    pair.app_eof(sid)
    pair.run(lambda: pair.apps[sid].closed, max_time=120.0)
    assert hashlib.sha256(pair.dests[sid].received).digest() == hashlib.sha256(blob).digest()
    assert bytes(pair.apps[sid].received) == b"1000000"
    assert paused_once  # the socket was not read while 256 KiB were unacknowledged
    assert pair.dropped["to_server"] > 0


def test_a_destination_outside_the_allow_list_is_refused_end_to_end() -> None:
    pair = ready_pair(seed=7)
    sid = pair.app_connect(NOT_ALLOWED, b"let me in")
    pair.run(lambda: pair.apps[sid].reset)
    assert pair.dests == {}  # the server never connected
    assert "tcp:refused" in pair.client_seen.events
    assert pair.server_seen.events == ["tcp:refused", "reset:refused"]


def test_a_destination_reset_reaches_the_application_as_an_rst() -> None:
    pair = ready_pair(seed=9)
    sid = pair.app_connect(ECHO, b"x")
    pair.run(lambda: bytes(pair.apps[sid].received) == b"x")
    server = pair.server_relay
    assert server is not None
    pair.carry_out(server, server.tcp_closed(sid, TcpLoss.RESET, "reset", pair.now))
    pair._flush()
    pair.run(lambda: pair.apps[sid].reset)
    assert "reset:peer_reset" in pair.client_seen.events or \
        "reset:peer_stop_sending" in pair.client_seen.events
    assert "reset:tcp_reset" in pair.server_seen.events


def test_udp_flow_relays_both_ways_then_expires_on_both_ends() -> None:
    pair = ready_pair(seed=11)
    pair.app_datagram(b"ping")
    pair.app_datagram(b"pong")
    pair.run(lambda: len(pair.udp_at_app) == 2)
    assert pair.udp_at_dest == [b"ping", b"pong"]
    assert pair.udp_at_app == [b"echo:ping", b"echo:pong"]
    start = pair.now
    pair.run(lambda: flow_ended(pair.client_seen) and flow_ended(pair.server_seen))
    assert 3.0 <= pair.now - start < 4.0
    assert "flow:expired" in pair.client_seen.events + pair.server_seen.events
    pair.app_datagram(b"again")  # a new flow after expiry
    pair.run(lambda: pair.udp_at_app[-1] == b"echo:again")
