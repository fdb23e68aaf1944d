"""Relay chains, sans-IO: the preface's hop limit, ``[relay.upstream]`` and its loop checks, and
the server session's decisions when it forwards to an upstream relay."""

from __future__ import annotations

import pytest

from quicreality.quic import events
from quicreality.reality.keys import generate_key_pair
from quicreality.relay.actions import (
    AnswerStatus,
    CloseUdpFlow,
    ConnectUpstream,
    FlowAnswered,
    FlowEnded,
    PauseStreamReading,
    Refuse,
    Resolve,
    ResumeStreamReading,
    SendDatagram,
    SendOnStream,
    SendUdp,
)
from quicreality.relay.allow import AllowList
from quicreality.relay.client_session import ClientRelaySession
from quicreality.relay.config import (
    RelayConfig,
    RelayConfigError,
    check_upstream_loop,
    parse_relay_toml,
)
from quicreality.relay.ports import NULL_OBSERVER
from quicreality.relay.protocol import (
    DEFAULT_HOP_LIMIT,
    EXT_HOP_LIMIT,
    INCOMPLETE,
    Destination,
    Kind,
    Preface,
    PrefaceReader,
    RelayErrorCode,
    Status,
    StatusAnswer,
    encode_datagram,
    encode_preface,
    encode_status,
    split_extensions,
)
from quicreality.relay.server_session import ServerRelaySession

DEST = Destination("127.0.0.1", 5201)
PAIR = generate_key_pair(lambda n: bytes(range(n)))
UPSTREAM_TOML = f"""
[relay]
allow = ["127.0.0.1:5201", "localhost:22"]

[relay.upstream]
server = "127.0.0.1:4444"
public_key = "{PAIR.public_key_text}"
short_id = "0123456789abcdef"
server_name = "www.example.com"
"""


class FakeView:
    """The QuicView a session reads (nothing buffered, stream IDs from 0)."""

    def __init__(self) -> None:
        self.next_id = 0

    def stream_send_buffered(self, stream_id: int) -> int:
        return 0

    def datagrams_pending(self) -> int:
        return 0

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        sid = self.next_id
        self.next_id += 4
        return sid


# ---------------------------------------------------------------------------- preface


def test_hop_limit_travels_in_an_extension_tlv_and_round_trips() -> None:
    plain = encode_preface(Preface(Kind.TCP, DEST))
    limited = encode_preface(Preface(Kind.TCP, DEST, hop_limit=3))
    # Same version byte; only the extension block differs: length 3, type 1, length 1, value 3.
    assert limited[4] == plain[4] == 1
    assert limited == plain[:-1] + bytes([3, EXT_HOP_LIMIT, 1, 3])
    got = PrefaceReader().feed(limited + b"data")
    assert got is not INCOMPLETE and isinstance(got, tuple)
    preface, rest = got
    assert (preface.hop_limit, preface.effective_hop_limit, rest) == (3, 3, b"data")


def test_a_preface_without_a_hop_limit_gets_the_default() -> None:
    got = PrefaceReader().feed(encode_preface(Preface(Kind.TCP, DEST)))
    assert isinstance(got, tuple)
    assert got[0].hop_limit is None and got[0].effective_hop_limit == DEFAULT_HOP_LIMIT


def test_unknown_extensions_are_kept_and_junk_is_ignored() -> None:
    other = bytes([0x21, 2, 0xAA, 0xBB])
    assert split_extensions(bytes([EXT_HOP_LIMIT, 1, 5]) + other) == (5, other)
    assert split_extensions(b"\x01\x02") == (None, b"\x01\x02")  # not TLVs: left alone
    got = PrefaceReader().feed(encode_preface(Preface(Kind.TCP, DEST, extensions=other,
                                                      hop_limit=0)))
    assert isinstance(got, tuple) and got[0] == Preface(Kind.TCP, DEST, other, 0)


def test_hop_limit_status_has_its_reset_code() -> None:
    answer = StatusAnswer(Status.HOP_LIMIT, "loop")
    assert answer.error_code == RelayErrorCode.HOP_LIMIT == 0x520C
    assert encode_status(answer)[1] == 8


def test_the_client_session_puts_the_hop_limit_into_the_preface() -> None:
    c = ClientRelaySession(FakeView(), RelayConfig(), max_datagram_size=1200)
    sid, out = c.open_tcp(DEST, 0.0, hop_limit=6)
    assert out[0] == type(out[0])(sid, encode_preface(Preface(Kind.TCP, DEST, hop_limit=6)))


# ----------------------------------------------------------------------------- config


def test_upstream_table_parses() -> None:
    config = parse_relay_toml(UPSTREAM_TOML)
    up = config.upstream
    assert up is not None
    assert up.server == Destination("127.0.0.1", 4444) and up.public_key == PAIR.public_key
    assert up.short_id == bytes.fromhex("0123456789abcdef") and up.fingerprint == "chrome"
    assert "REALITY" in up.describe() and "www.example.com" in up.describe()


@pytest.mark.parametrize(("extra", "field"), [
    ('nope = 1', "upstream.nope"),
    ('public_key = "!!"', "upstream.public_key"),
    ('fingerprint = "firefox"', "upstream.fingerprint"),
    ('insecure = true', "upstream.public_key"),
])
def test_bad_upstream_keys_name_the_field(extra: str, field: str) -> None:
    text = UPSTREAM_TOML.replace('server_name = "www.example.com"',
                                 f'server_name = "www.example.com"\n{extra}')
    if extra.startswith("public_key"):
        text = "\n".join(line for line in text.splitlines()
                         if not line.startswith("public_key = \"" + PAIR.public_key_text[:3]))
    with pytest.raises(RelayConfigError) as info:
        parse_relay_toml(text)
    assert info.value.field == field


def test_upstream_needs_a_server_and_a_way_to_authenticate() -> None:
    with pytest.raises(RelayConfigError, match=r"upstream\.server"):
        parse_relay_toml("[relay.upstream]\npublic_key = 'x'\n")
    with pytest.raises(RelayConfigError, match="public_key"):
        parse_relay_toml("[relay.upstream]\nserver = '127.0.0.1:1'\n")
    plain = parse_relay_toml("[relay.upstream]\nserver = '127.0.0.1:1'\ninsecure = true\n")
    assert plain.upstream is not None and plain.upstream.public_key is None


def test_an_upstream_that_is_this_server_is_refused_at_load() -> None:
    config = parse_relay_toml(UPSTREAM_TOML)
    with pytest.raises(RelayConfigError, match="own public key") as info:
        check_upstream_loop(config, own_public_key=PAIR.public_key, listen=None)
    assert info.value.field == "upstream.public_key"
    with pytest.raises(RelayConfigError, match="own listen address"):
        check_upstream_loop(config, own_public_key=None, listen=("127.0.0.1", 4444))
    with pytest.raises(RelayConfigError, match="own listen address"):
        check_upstream_loop(config, own_public_key=None, listen=("0.0.0.0", 4444))
    other = generate_key_pair(lambda n: bytes([7]) * n).public_key
    check_upstream_loop(config, own_public_key=other, listen=("127.0.0.1", 4445))  # fine


# ----------------------------------------------------------------------- server session


def chain_server() -> ServerRelaySession:
    config = parse_relay_toml(UPSTREAM_TOML)
    return ServerRelaySession(FakeView(), config, max_datagram_size=1200, observer=NULL_OBSERVER)


def preface_event(preface: Preface, sid: int = 0) -> events.StreamDataReceived:
    return events.StreamDataReceived(stream_id=sid, data=encode_preface(preface),
                                     end_stream=False)


def test_a_chained_server_forwards_with_one_hop_less() -> None:
    s = chain_server()
    out = s.handle_event(preface_event(Preface(Kind.TCP, DEST, hop_limit=3)), 0.0)
    assert out == [PauseStreamReading(0), ConnectUpstream(0, Kind.TCP, DEST, 2)]
    out = s.handle_event(preface_event(Preface(Kind.TCP, DEST), sid=4), 0.0)
    assert out[-1] == ConnectUpstream(4, Kind.TCP, DEST, DEFAULT_HOP_LIMIT - 1)


def test_a_chained_server_refuses_a_stream_whose_hop_limit_is_used_up() -> None:
    s = chain_server()
    out = s.handle_event(preface_event(Preface(Kind.TCP, DEST, hop_limit=0)), 0.0)
    assert out[0] == Refuse(0, StatusAnswer(Status.HOP_LIMIT, out[0].answer.reason))  # type: ignore[union-attr]
    assert "hop limit" in out[0].answer.reason and out[1] == ResumeStreamReading(0)  # type: ignore[union-attr]


def test_a_final_server_ignores_the_hop_limit() -> None:
    s = ServerRelaySession(FakeView(), RelayConfig(allow=AllowList.parse(["127.0.0.1:5201"])),
                           max_datagram_size=1200)
    out = s.handle_event(preface_event(Preface(Kind.TCP, DEST, hop_limit=0)), 0.0)
    assert out == [PauseStreamReading(0), Resolve(0, Kind.TCP, "127.0.0.1", 5201)]


def test_the_allow_list_still_decides_before_forwarding() -> None:
    s = chain_server()
    out = s.handle_event(preface_event(Preface(Kind.TCP, Destination("10.0.0.1", 80))), 0.0)
    assert isinstance(out[0], Refuse) and out[0].answer.status == Status.REFUSED


def test_upstream_answers_become_the_downstream_answer() -> None:
    s = chain_server()
    s.handle_event(preface_event(Preface(Kind.TCP, DEST)), 0.0)
    out = s.connect_failed(0, Status.UNREACHABLE, "via 127.0.0.1:4444: connection refused", 0.1)
    refusal = next(a for a in out if isinstance(a, Refuse))
    assert refusal.answer.status == Status.UNREACHABLE
    assert "via 127.0.0.1:4444" in refusal.answer.reason


def test_a_udp_flow_goes_upstream_and_its_answer_and_end_come_back() -> None:
    s = chain_server()
    out = s.handle_event(preface_event(Preface(Kind.UDP, DEST, hop_limit=4)), 0.0)
    assert out == [PauseStreamReading(0), ConnectUpstream(0, Kind.UDP, DEST, 3)]
    assert s.udp_flow_opened(0, 0.1) == [AnswerStatus(0, StatusAnswer(Status.OK)),
                                         ResumeStreamReading(0)]
    up = events.DatagramFrameReceived(data=encode_datagram(0, b"ping"))
    assert s.handle_event(up, 0.2) == [SendUdp(0, b"ping")]
    assert s.udp_from_destination(0, [b"pong"], 0.3) == [SendDatagram(encode_datagram(0, b"pong"))]
    # The upstream flow ended: the client's flow gets a FIN.
    assert s.udp_flow_lost(0, "upstream: idle", 0.4) == [
        CloseUdpFlow(0), SendOnStream(0, b"", end_stream=True)]
    assert s.udp_flow_lost(0, "again", 0.5) == []


def test_a_udp_flow_the_upstream_refuses_is_refused_downstream() -> None:
    s = chain_server()
    s.handle_event(preface_event(Preface(Kind.UDP, DEST)), 0.0)
    out = s.connect_failed(0, Status.REFUSED, "via 127.0.0.1:4444: not allowed", 0.1)
    refusal = next(a for a in out if isinstance(a, Refuse))
    assert refusal.answer.status == Status.REFUSED and "via 127.0.0.1:4444" in refusal.answer.reason


def test_a_udp_flow_with_no_hops_left_is_refused() -> None:
    s = chain_server()
    out = s.handle_event(preface_event(Preface(Kind.UDP, DEST, hop_limit=0)), 0.0)
    assert isinstance(out[0], Refuse) and out[0].answer.status == Status.HOP_LIMIT


LEG = ("0.0.0.0", 0)


def test_a_bridged_client_flow_reports_its_answer_and_its_end() -> None:
    c = ClientRelaySession(FakeView(), RelayConfig(), max_datagram_size=1200)
    out = c.open_udp_flow(7, DEST, LEG, 0.0, hop_limit=3)
    assert out == [SendOnStream(0, encode_preface(Preface(Kind.UDP, DEST, hop_limit=3)))]
    assert c.open_udp_flow(7, DEST, LEG, 0.0, hop_limit=3) == []  # already open
    assert c.udp_from_local(7, DEST, LEG, b"early", 0.1) == []  # queued until the answer
    ok = events.StreamDataReceived(stream_id=0, data=encode_status(StatusAnswer(Status.OK)),
                                   end_stream=False)
    assert c.handle_event(ok, 0.2) == [FlowAnswered(7, LEG, StatusAnswer(Status.OK)),
                                       SendDatagram(encode_datagram(0, b"early"))]
    fin = events.StreamDataReceived(stream_id=0, data=b"", end_stream=True)
    assert c.handle_event(fin, 0.3) == [FlowEnded(7, LEG, "closed by the server"),
                                        SendOnStream(0, b"", end_stream=True)]


def test_a_bridged_client_flow_hears_a_refusal_and_can_be_closed_locally() -> None:
    c = ClientRelaySession(FakeView(), RelayConfig(), max_datagram_size=1200)
    c.open_udp_flow(7, DEST, LEG, 0.0)
    no = events.StreamDataReceived(
        stream_id=0, data=encode_status(StatusAnswer(Status.HOP_LIMIT, "loop")), end_stream=True)
    out = c.handle_event(no, 0.1)
    assert out[0] == FlowAnswered(7, LEG, StatusAnswer(Status.HOP_LIMIT, "loop"))
    assert FlowEnded(7, LEG, "hop_limit") in out
    c.open_udp_flow(8, DEST, LEG, 0.2)
    assert c.close_udp_flow(8, LEG, "closed downstream") == [
        FlowEnded(8, LEG, "closed downstream"), SendOnStream(4, b"", end_stream=True)]
    # A local listener's flow is not bridged: no such reports.
    assert c.udp_from_local(0, DEST, ("127.0.0.1", 9), b"x", 0.3) == [
        SendOnStream(8, encode_preface(Preface(Kind.UDP, DEST)))]
