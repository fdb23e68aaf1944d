"""The sans-IO relay sessions on virtual time: inputs in, actions out, no sockets or loop.

Each test feeds a session QUIC events and socket results with an explicit ``now`` and checks
the actions it returns (and, where the bytes matter, carries the QUIC ones out on a recording
connection through ``apply_quic_action``, as the edge does).
"""

from __future__ import annotations

from collections import Counter

import pytest

from quicreality.quic import events
from quicreality.quic.errors import LocalProtocolError
from quicreality.relay.actions import (
    AbortTcp,
    Action,
    Answered,
    AnswerStatus,
    CancelConnect,
    CloseTcp,
    CloseUdpFlow,
    ConnectTcp,
    Deliver,
    OpenUdpFlow,
    PauseStreamReading,
    PauseTcpReading,
    Refuse,
    ResetStream,
    Resolve,
    ResumeStreamReading,
    ResumeTcpReading,
    SendDatagram,
    SendOnStream,
    SendUdp,
    SendUdpTo,
    ShutdownTcpWrite,
    StopSending,
    WriteTcp,
)
from quicreality.relay.allow import AllowList
from quicreality.relay.client_session import UDP_OPENING_QUEUE, ClientRelaySession
from quicreality.relay.config import RelayConfig
from quicreality.relay.ports import apply_quic_action
from quicreality.relay.protocol import (
    INCOMPLETE,
    Destination,
    Kind,
    Preface,
    RelayErrorCode,
    Status,
    StatusAnswer,
    StatusReader,
    encode_datagram,
    encode_preface,
    encode_status,
)
from quicreality.relay.server_session import ServerRelaySession
from quicreality.relay.session import TcpLoss

DEST = Destination("127.0.0.1", 5201)
CAND = (2, ("127.0.0.1", 5201))
OK = StatusAnswer(Status.OK)
TCP_PREFACE = encode_preface(Preface(Kind.TCP, DEST))
UDP_PREFACE = encode_preface(Preface(Kind.UDP, DEST))
LOCAL = ("127.0.0.1", 40000)


class FakeQuic:
    """A QuicPort that records what the actions did (enough of QuicConnection for the relay)."""

    def __init__(self) -> None:
        self.sent: dict[int, bytearray] = {}
        self.fins: set[int] = set()
        self.resets: dict[int, int] = {}
        self.stopped: dict[int, int] = {}
        self.paused: set[int] = set()
        self.datagrams: list[bytes] = []
        self.buffered: dict[int, int] = {}
        self.next_stream = 0
        self.refuse_sends: set[int] = set()

    def stream_send_buffered(self, stream_id: int) -> int:
        return self.buffered.get(stream_id, 0)

    def datagrams_pending(self) -> int:
        return len(self.datagrams)

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        return self.next_stream

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        if stream_id in self.refuse_sends:
            raise LocalProtocolError("finished")
        if stream_id == self.next_stream:
            self.next_stream += 4
        self.sent.setdefault(stream_id, bytearray()).extend(data)
        if end_stream:
            self.fins.add(stream_id)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self.resets[stream_id] = error_code

    def stop_stream(self, stream_id: int, error_code: int) -> None:
        self.stopped[stream_id] = error_code

    def pause_stream_reading(self, stream_id: int) -> None:
        self.paused.add(stream_id)

    def resume_stream_reading(self, stream_id: int) -> None:
        self.paused.discard(stream_id)

    def send_datagram_frame(self, data: bytes) -> None:
        self.datagrams.append(data)


class Recorder:
    """A RelayObserver that counts and keeps the log lines."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lines: list[str] = []
        self.active = 0
        self.flows = 0

    def stream_opened(self, kind: str, outcome: str) -> None:
        self.counts[f"opened:{kind}:{outcome}"] += 1

    def tcp_active(self, delta: int) -> None:
        self.active += delta

    def reset(self, cause: str) -> None:
        self.counts[f"reset:{cause}"] += 1

    def udp_flow_opened(self) -> None:
        self.flows += 1

    def udp_flow_closed(self, expired: bool) -> None:
        self.flows -= 1
        if expired:
            self.counts["expired"] += 1

    def udp_relayed(self, direction: str) -> None:
        self.counts[f"udp:{direction}"] += 1

    def udp_dropped(self, reason: str) -> None:
        self.counts[f"drop:{reason}"] += 1

    def note(self, level: str, message: str) -> None:
        self.lines.append(message)


def config(*rules: str, **kw: float) -> RelayConfig:
    return RelayConfig(allow=AllowList.parse(rules), **kw)  # type: ignore[arg-type]


def server(*rules: str, **kw: float) -> tuple[ServerRelaySession, FakeQuic, Recorder]:
    quic, rec = FakeQuic(), Recorder()
    return ServerRelaySession(quic, config(*rules, **kw), max_datagram_size=1200,
                              observer=rec), quic, rec


def client(**kw: float) -> tuple[ClientRelaySession, FakeQuic, Recorder]:
    quic, rec = FakeQuic(), Recorder()
    return ClientRelaySession(quic, config(**kw), max_datagram_size=1200, observer=rec), quic, rec


def data(sid: int, payload: bytes, fin: bool = False) -> events.StreamDataReceived:
    return events.StreamDataReceived(stream_id=sid, data=payload, end_stream=fin)


def apply(quic: FakeQuic, actions: list[Action]) -> list[Action]:
    """Carry out the QUIC actions on ``quic``; return the others."""
    rest: list[Action] = []
    for action in actions:
        if isinstance(action, (SendOnStream, ResetStream, StopSending, PauseStreamReading,
                               ResumeStreamReading, SendDatagram, AnswerStatus, Refuse)):
            apply_quic_action(quic, action)
        else:
            rest.append(action)
    return rest


def status_sent(quic: FakeQuic, sid: int) -> StatusAnswer:
    got = StatusReader().feed(bytes(quic.sent[sid]))
    assert got is not INCOMPLETE
    assert isinstance(got, tuple)
    return got[0]


def open_tcp(c: ClientRelaySession, quic: FakeQuic, **kw: bytes | bool) -> int:
    """Open a client stream and carry its QUIC actions out (as the edge does at once)."""
    sid, out = c.open_tcp(DEST, 0.0, **kw)  # type: ignore[arg-type]
    apply(quic, out)
    return sid


def connected_server(sid: int = 0) -> tuple[ServerRelaySession, FakeQuic, Recorder]:
    """A server session with one TCP stream connected to DEST."""
    s, quic, rec = server("127.0.0.1:5201")
    s.handle_event(data(sid, TCP_PREFACE), 0.0)
    s.resolved(sid, [CAND], 0.0)
    s.tcp_connected(sid, 0.0)
    return s, quic, rec


# ------------------------------------------------------------------- server: set-up


def test_server_buffers_a_preface_split_across_frames_then_sets_the_stream_up() -> None:
    s, _, rec = server("127.0.0.1:5201")
    assert s.handle_event(data(0, TCP_PREFACE[:1]), 0.0) == []  # not even the whole magic
    assert s.handle_event(data(0, TCP_PREFACE[1:2]), 0.0) == []
    assert s.handle_event(data(0, TCP_PREFACE[2:6]), 0.0) == []  # the magic, half a preface
    assert s.handle_event(data(0, TCP_PREFACE[6:10]), 0.0) == []
    out = s.handle_event(data(0, TCP_PREFACE[10:] + b"early"), 0.0)
    assert out == [PauseStreamReading(0), Resolve(0, Kind.TCP, "127.0.0.1", 5201)]
    assert s.resolved(0, [CAND], 0.1) == [ConnectTcp(0, DEST, (CAND,))]
    # The pipelined payload waited for the socket; the OK answer goes first.
    assert s.tcp_connected(0, 0.2) == [AnswerStatus(0, OK), ResumeStreamReading(0),
                                       WriteTcp(0, b"early")]
    assert rec.counts["opened:tcp:ok"] == 1 and rec.active == 1


def test_server_refuses_a_destination_outside_the_allow_list_with_its_status() -> None:
    s, quic, rec = server("127.0.0.1:5201")
    refused = encode_preface(Preface(Kind.TCP, Destination("127.0.0.1", 9)))
    out = s.handle_event(data(4, refused + b"payload"), 0.0)
    reason = "127.0.0.1:9 is not in the allow-list"
    assert out == [Refuse(4, StatusAnswer(Status.REFUSED, reason)), ResumeStreamReading(4)]
    assert apply(quic, out) == []
    assert status_sent(quic, 4) == StatusAnswer(Status.REFUSED, reason)
    assert 4 in quic.fins and quic.stopped[4] == RelayErrorCode.REFUSED
    assert rec.counts["reset:refused"] == 1 and rec.counts["opened:tcp:refused"] == 1
    assert rec.lines == [f"relay: tcp stream 4 to 127.0.0.1:9 refused: {reason}"]
    assert s.handle_event(data(4, b"late"), 0.1) == []  # consumed and dropped
    assert s.handle_event(events.StreamReset(stream_id=4, error_code=1), 0.1) == []


def test_server_refuses_a_bad_preface() -> None:
    s, quic, _ = server("127.0.0.1:5201")
    out = s.handle_event(data(0, b"QRLY\x01\x07" + bytes(10)), 0.0)  # kind 7
    assert [type(a) for a in out] == [Refuse, ResumeStreamReading]
    apply(quic, out)
    assert status_sent(quic, 0).status == Status.UNSUPPORTED
    assert quic.stopped[0] == RelayErrorCode.UNSUPPORTED
    out = s.handle_event(data(4, TCP_PREFACE[:-1], fin=True), 0.0)  # ends inside the preface
    apply(quic, out)
    assert status_sent(quic, 4) == StatusAnswer(Status.BAD_REQUEST,
                                                "stream ended inside the preface")


def test_server_passes_other_streams_and_events_to_http3() -> None:
    s, _, _ = server()
    h3 = data(0, b"\x01\x10headers")
    assert s.handle_event(h3, 0.0) == [Deliver(h3)]
    assert s.handle_event(data(8, b"QR"), 0.0) == []  # undecided: held
    assert s.handle_event(data(8, b"x"), 0.0) == [Deliver(data(8, b"QRx"))]
    uni = data(2, TCP_PREFACE)
    assert s.handle_event(uni, 0.0) == [Deliver(uni)]


def test_server_keeps_only_allowed_addresses_of_a_resolved_name() -> None:
    s, _, _ = server("10.0.0.0/8:*")
    name = Destination("db.example", 5432)
    s.handle_event(data(0, encode_preface(Preface(Kind.TCP, name))), 0.0)
    outside, inside = (2, ("192.168.1.1", 5432)), (2, ("10.1.2.3", 5432))
    assert s.resolved(0, [outside, inside], 0.1) == [ConnectTcp(0, name, (inside,))]
    s.handle_event(data(4, encode_preface(Preface(Kind.TCP, name))), 0.0)
    out = s.resolved(4, [outside], 0.1)
    assert Refuse(4, StatusAnswer(Status.REFUSED, "db.example:5432 resolves to no allowed "
                                                  "address")) in out


def test_server_times_a_connect_out_and_answers_timeout() -> None:
    s, _, rec = server("127.0.0.1:5201", connect_timeout=10.0)
    s.handle_event(data(0, TCP_PREFACE), 1.0)
    s.resolved(0, [CAND], 1.5)
    assert s.get_timer() == 11.0
    assert s.handle_timer(10.9) == []
    out = s.handle_timer(11.0)
    assert out[0] == CancelConnect(0)
    refusal = next(a for a in out if isinstance(a, Refuse))
    assert refusal.answer.status == Status.TIMEOUT
    assert rec.active == 0 and rec.counts["reset:timeout"] == 1
    assert s.get_timer() is None
    assert s.tcp_connected(0, 12.0) == [AbortTcp(0)]  # too late: the socket is reset


def test_server_answers_unreachable_when_the_connect_fails() -> None:
    s, _, rec = server("127.0.0.1:5201")
    s.handle_event(data(0, TCP_PREFACE), 0.0)
    s.resolved(0, [CAND], 0.0)
    out = s.connect_failed(0, Status.UNREACHABLE, "Connection refused", 0.1)
    assert Refuse(0, StatusAnswer(Status.UNREACHABLE,
                                  "connect to 127.0.0.1:5201: Connection refused")) in out
    assert AbortTcp(0) not in out  # no RST for a socket that never existed
    assert rec.active == 0


# ------------------------------------------------------- half-close and reset mapping


def test_server_tcp_eof_becomes_stream_fin_and_stream_fin_shuts_the_socket_down() -> None:
    s, _, rec = connected_server()
    assert s.tcp_data(0, b"request", 1.0) == [SendOnStream(0, b"request")]
    assert s.tcp_eof(0, 1.1) == [SendOnStream(0, b"", end_stream=True)]  # socket stays open
    assert s.handle_event(data(0, b"reply"), 1.2) == [WriteTcp(0, b"reply")]
    # The stream's FIN: FIN to the socket after the data; both directions done -> close.
    assert s.handle_event(data(0, b"end", fin=True), 1.3) == [
        WriteTcp(0, b"end"), ShutdownTcpWrite(0), CloseTcp(0)]
    assert s.tcp_closed(0, None, "closed", 1.4) == [ResumeStreamReading(0)]
    assert rec.active == 0 and not any(k.startswith("reset:") for k in rec.counts)


def test_client_stream_fin_first_then_tcp_eof_closes() -> None:
    c, quic, _ = client()
    sid = open_tcp(c, quic)
    c.handle_event(data(sid, encode_status(OK)), 0.1)
    assert c.handle_event(data(sid, b"", fin=True), 0.2) == [ShutdownTcpWrite(sid)]
    assert c.tcp_data(sid, b"still sending", 0.3) == [SendOnStream(sid, b"still sending")]
    assert c.tcp_eof(sid, 0.4) == [SendOnStream(sid, b"", end_stream=True), CloseTcp(sid)]


def test_tcp_reset_resets_the_stream_both_ways() -> None:
    s, _, rec = connected_server()
    code = RelayErrorCode.TCP_RESET
    assert s.tcp_closed(0, TcpLoss.RESET, "Connection reset by peer", 2.0) == [
        ResetStream(0, code), StopSending(0, code), ResumeStreamReading(0)]
    assert rec.counts["reset:tcp_reset"] == 1
    s2, _, rec2 = connected_server()
    assert s2.tcp_closed(0, None, "closed", 2.0)[0] == ResetStream(0, RelayErrorCode.TCP_ERROR)
    assert rec2.counts["reset:tcp_closed"] == 1  # closed before both directions finished


@pytest.mark.parametrize(("event", "cause"), [
    (events.StreamReset(stream_id=0, error_code=RelayErrorCode.TCP_RESET), "peer_reset"),
    (events.StopSendingReceived(stream_id=0, error_code=RelayErrorCode.TCP_RESET),
     "peer_stop_sending")])
def test_peer_reset_or_stop_sending_becomes_an_rst(event: events.QuicEvent, cause: str) -> None:
    s, _, rec = connected_server()
    code = RelayErrorCode.TCP_RESET
    out = s.handle_event(event, 3.0)
    assert out == [ResetStream(0, code), StopSending(0, code), ResumeStreamReading(0),
                   AbortTcp(0)]
    assert rec.counts[f"reset:{cause}"] == 1
    assert s.handle_event(data(0, b"late"), 3.1) == []


def test_peer_reset_while_connecting_cancels_the_connect() -> None:
    s, _, _ = server("127.0.0.1:5201")
    s.handle_event(data(0, TCP_PREFACE), 0.0)
    out = s.handle_event(events.StreamReset(stream_id=0, error_code=RelayErrorCode.CANCELLED),
                         0.1)
    assert CancelConnect(0) in out and s.get_timer() is None


# ------------------------------------------------------------------------ client TCP


def test_client_opens_a_stream_with_preface_and_what_the_socket_already_sent() -> None:
    c, quic, rec = client()
    sid, out = c.open_tcp(DEST, 0.0, pending=b"hello")
    assert out == [SendOnStream(sid, TCP_PREFACE + b"hello"), ResumeTcpReading(sid)]
    apply(quic, out)
    sid2, out2 = c.open_tcp(DEST, 0.0, eof=True)  # the socket already sent FIN
    assert sid2 == sid + 4 and out2 == [SendOnStream(sid2, TCP_PREFACE, end_stream=True)]
    assert rec.active == 2


def test_client_reads_a_split_status_answer_then_relays() -> None:
    c, quic, rec = client()
    sid = open_tcp(c, quic)
    answer = encode_status(OK)
    assert c.handle_event(data(sid, answer[:1]), 0.1) == []
    assert c.handle_event(data(sid, answer[1:] + b"reply"), 0.2) == [Answered(sid, OK),
                                                                      WriteTcp(sid, b"reply")]
    assert rec.counts["opened:tcp:ok"] == 1


def test_client_resets_the_socket_when_the_server_refuses() -> None:
    c, quic, rec = client()
    sid = open_tcp(c, quic)
    refusal = encode_status(StatusAnswer(Status.REFUSED, "no"))
    code = RelayErrorCode.REFUSED
    assert c.handle_event(data(sid, refusal, fin=True), 0.1) == [
        Answered(sid, StatusAnswer(Status.REFUSED, "no")), ResetStream(sid, code),
        StopSending(sid, code), AbortTcp(sid)]
    assert rec.counts["reset:refused"] == 1 and rec.counts["opened:tcp:refused"] == 1
    # The server's STOP_SENDING overtaking its answer says the same.
    sid2 = open_tcp(c, quic)
    assert sid2 != sid
    out = c.handle_event(events.StopSendingReceived(stream_id=sid2, error_code=code), 0.1)
    assert out == [Answered(sid2, StatusAnswer(Status.REFUSED)), ResetStream(sid2, code),
                   StopSending(sid2, code), AbortTcp(sid2)]
    assert rec.counts["reset:refused"] == 2 and rec.counts["reset:peer_stop_sending"] == 0


def test_send_backpressure_pauses_and_resumes_reading_the_socket() -> None:
    c, quic, _ = client(send_high_water=1000, send_low_water=100)
    sid = open_tcp(c, quic)
    quic.buffered[sid] = 600
    assert c.tcp_data(sid, b"x" * 400, 0.1) == [SendOnStream(sid, b"x" * 400),
                                                 PauseTcpReading(sid)]
    quic.buffered[sid] = 500
    assert c.pump(0.2) == []  # still above the low-water mark
    quic.buffered[sid] = 100
    assert c.pump(0.3) == [ResumeTcpReading(sid)]
    assert c.pump(0.4) == []


def test_write_backpressure_holds_the_stream_back() -> None:
    c, quic, _ = client()
    sid = open_tcp(c, quic)
    assert c.tcp_write_paused(sid, 0.1) == [PauseStreamReading(sid)]
    assert c.tcp_write_resumed(sid, 0.2) == [ResumeStreamReading(sid)]


def test_a_stream_the_connection_refuses_resets_its_socket() -> None:
    c, quic, rec = client()
    sid = open_tcp(c, quic)
    assert c.quic_refused(SendOnStream(sid, b"data"), 0.1) == [AbortTcp(sid)]
    assert rec.counts["reset:stream_closed"] == 1


def test_connection_loss_resets_every_socket() -> None:
    c, quic, rec = client()
    a, b = open_tcp(c, quic), open_tcp(c, quic)
    assert c.close("connection_lost", 1.0) == [AbortTcp(a), AbortTcp(b)]
    assert rec.counts["reset:connection_lost"] == 2 and rec.active == 0
    assert c.close("connection_lost", 1.0) == []


# ------------------------------------------------------------------------------- UDP


def open_server_flow(idle: float = 30.0) -> tuple[ServerRelaySession, FakeQuic, Recorder]:
    s, quic, rec = server("127.0.0.1:5201", udp_idle_timeout=idle)
    assert s.handle_event(data(0, UDP_PREFACE), 0.0) == [
        PauseStreamReading(0), Resolve(0, Kind.UDP, "127.0.0.1", 5201)]
    assert s.resolved(0, [CAND], 0.0) == [OpenUdpFlow(0, 0, CAND)]
    assert s.udp_flow_opened(0, 0.0) == [AnswerStatus(0, OK), ResumeStreamReading(0)]
    return s, quic, rec


def test_server_udp_flow_relays_both_ways_and_closes_on_the_clients_fin() -> None:
    s, _, rec = open_server_flow()
    dgram = events.DatagramFrameReceived(data=encode_datagram(0, b"up"))
    assert s.handle_event(dgram, 1.0) == [SendUdp(0, b"up")]
    assert s.udp_from_destination(0, [b"d1", b"d2"], 1.1) == [
        SendDatagram(encode_datagram(0, b"d1")), SendDatagram(encode_datagram(0, b"d2"))]
    assert s.udp_from_destination(0, [b"x" * 1200], 1.2) == []  # cannot fit one packet
    assert rec.counts["drop:too_large"] == 1 and rec.counts["udp:down"] == 2
    assert s.handle_event(data(0, b"", fin=True), 2.0) == [
        CloseUdpFlow(0), SendOnStream(0, b"", end_stream=True)]
    assert rec.flows == 0
    assert s.handle_event(dgram, 2.1) == [] and rec.counts["drop:unknown_flow"] == 1


def test_server_udp_flow_expires_when_idle() -> None:
    s, _, rec = open_server_flow(idle=30.0)
    assert s.get_timer() == 30.0
    s.handle_event(events.DatagramFrameReceived(data=encode_datagram(0, b"up")), 20.0)
    assert s.handle_timer(30.0) == []  # traffic moved the expiry on
    assert s.get_timer() == 50.0
    assert s.handle_timer(50.0) == [CloseUdpFlow(0), SendOnStream(0, b"", end_stream=True)]
    assert rec.counts["expired"] == 1 and rec.flows == 0 and s.get_timer() is None


def test_server_udp_flow_reset_by_the_client_closes_without_fin() -> None:
    s, _, rec = open_server_flow()
    assert s.handle_event(events.StreamReset(stream_id=0, error_code=1), 1.0) == [
        CloseUdpFlow(0)]
    assert rec.counts["reset:peer_reset"] == 1


def test_server_refuses_udp_flows_beyond_the_limit() -> None:
    s, _, _ = server("127.0.0.1:5201", max_udp_flows=1)  # type: ignore[arg-type]
    s.handle_event(data(0, UDP_PREFACE), 0.0)
    s.resolved(0, [CAND], 0.0)
    s.udp_flow_opened(0, 0.0)
    out = s.handle_event(data(4, UDP_PREFACE), 0.0)
    assert out == [Refuse(4, StatusAnswer(Status.BUSY, "too many UDP flows")),
                   ResumeStreamReading(4)]


def test_client_udp_flow_queues_until_ok_then_relays_and_expires() -> None:
    c, quic, rec = client(udp_idle_timeout=60.0)
    out = c.udp_from_local(0, DEST, LOCAL, b"a", 0.0)
    assert out == [SendOnStream(0, UDP_PREFACE)]
    apply(quic, out)
    assert c.udp_from_local(0, DEST, LOCAL, b"b", 0.1) == []  # queued until the answer
    assert c.handle_event(data(0, encode_status(OK)), 0.2) == [
        SendDatagram(encode_datagram(0, b"a")), SendDatagram(encode_datagram(0, b"b"))]
    down = events.DatagramFrameReceived(data=encode_datagram(0, b"reply"))
    assert c.handle_event(down, 0.3) == [SendUdpTo(0, LOCAL, b"reply")]
    assert c.udp_from_local(0, DEST, LOCAL, b"c", 1.0) == [
        SendDatagram(encode_datagram(0, b"c"))]
    assert c.get_timer() == 61.0
    assert c.handle_timer(60.9) == []
    assert c.handle_timer(61.0) == [SendOnStream(0, b"", end_stream=True)]
    assert rec.counts["expired"] == 1 and rec.flows == 0


def test_client_udp_flow_refused_by_the_server_is_closed() -> None:
    c, quic, rec = client()
    apply(quic, c.udp_from_local(0, DEST, LOCAL, b"a", 0.0))
    refusal = encode_status(StatusAnswer(Status.REFUSED, "no"))
    assert c.handle_event(data(0, refusal, fin=True), 0.1) == [
        SendOnStream(0, b"", end_stream=True)]
    assert rec.counts["opened:udp:refused"] == 1 and rec.flows == 0
    # The next datagram from the same sender opens a new flow.
    assert c.udp_from_local(0, DEST, LOCAL, b"b", 0.2) == [SendOnStream(4, UDP_PREFACE)]


def test_client_udp_opening_queue_is_bounded() -> None:
    c, _, rec = client()
    for i in range(UDP_OPENING_QUEUE + 3):
        c.udp_from_local(0, DEST, LOCAL, bytes([i]), 0.0)
    assert rec.counts["drop:opening_queue_full"] == 3
