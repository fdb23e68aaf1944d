"""A server's HTTP/3 start read from its unidirectional streams (H3Profile), and an H3Connection
that opens the same way: the given SETTINGS, QPACK streams only when first needed."""

from __future__ import annotations

import pytest
from h3fake import FakePair

from quicreality.h3.client import H3Client
from quicreality.h3.connection import H3Connection
from quicreality.h3.frames import Setting, StreamType
from quicreality.h3.profile import H3Profile, read_h3_profile, reserved_setting
from quicreality.h3.server import H3FileServer, H3ServerSession, deterministic_bytes
from quicreality.quic.errors import LocalProtocolError
from quicreality.wire.buffer import size_uint_var

#: quic-go's start (decrypted from a capture, docs/camouflage.md): control stream, empty SETTINGS.
QUIC_GO = {3: b"\x00\x04\x00"}
#: ours: control stream with three settings, then the QPACK encoder and decoder streams.
OURS = {3: bytes.fromhex("00040a01500007100680010000"), 7: b"\x02", 11: b"\x03"}


def test_reads_quic_go_and_our_own_start() -> None:
    assert read_h3_profile(QUIC_GO) == H3Profile((), (StreamType.CONTROL,))
    assert read_h3_profile(QUIC_GO).early_qpack_streams == ()  # type: ignore[union-attr]
    ours = read_h3_profile(OURS)
    assert ours == H3Profile(((1, 4096), (7, 16), (6, 65536)), (0, 2, 3))
    assert ours.early_qpack_streams == (2, 3)


@pytest.mark.parametrize("streams", [
    {},  # nothing arrived
    {3: b"\x00\x04"},  # SETTINGS header cut short
    {3: b"\x00\x04\x04\x01"},  # SETTINGS payload cut short
    {3: b"\x00\x07\x01\x00"},  # first control frame is not SETTINGS
    {3: b"\x00\x04\x04\x01\x00\x01\x00"},  # duplicate setting
    {7: b"\x02", 11: b"\x03"},  # QPACK streams only
])
def test_nothing_known_without_a_complete_settings_frame(streams: dict[int, bytes]) -> None:
    assert read_h3_profile(streams) is None


def test_settings_to_send_keep_lengths_and_promise_nothing_we_lack() -> None:
    grease = 0x1F * 7 + 0x21
    unknown = 0x2B603742  # a 4-byte identifier of an extension we do not implement
    profile = H3Profile(((Setting.QPACK_MAX_TABLE_CAPACITY, 1 << 20), (Setting.H3_DATAGRAM, 1),
                         (grease, 9), (unknown, 1), (Setting.ENABLE_CONNECT_PROTOCOL, 1),
                         (Setting.MAX_FIELD_SECTION_SIZE, 4000)), (0,))
    sent = profile.settings_to_send()
    assert sent[0] == (Setting.QPACK_MAX_TABLE_CAPACITY, 1 << 16)
    assert sent[1] == (Setting.H3_DATAGRAM, 0)
    assert sent[2] == (grease, 9)
    ident, value = sent[3]
    assert value == 1 and ident != unknown and (ident - 0x21) % 0x1F == 0
    assert size_uint_var(ident) == size_uint_var(unknown)
    assert sent[4:] == [(Setting.ENABLE_CONNECT_PROTOCOL, 0), (Setting.MAX_FIELD_SECTION_SIZE, 4000)]


@pytest.mark.parametrize("like", [1, 63, 64, 16383, 16384, (1 << 30) - 1, 1 << 30, 1 << 61])
def test_reserved_setting_has_the_same_length(like: int) -> None:
    ident = reserved_setting(like)
    assert (ident - 0x21) % 0x1F == 0 and ident >= 0x21
    assert size_uint_var(ident) == size_uint_var(like)


def test_default_start_opens_all_three_streams_in_order() -> None:
    pair = FakePair()
    H3Connection(pair.server, is_client=False)
    assert read_h3_profile({s: bytes(q.data) for s, q in pair.server.queues.items()}) == \
        read_h3_profile(OURS)


def test_a_quic_go_start_then_qpack_streams_open_when_needed() -> None:
    pair = FakePair(seed=3)
    server = H3Connection(pair.server, is_client=False, settings=(), early_qpack_streams=())
    start = {s: bytes(q.data) for s, q in pair.server.queues.items()}
    assert start == QUIC_GO  # exactly quic-go's bytes, nothing else
    client_h3 = H3Connection(pair.client, is_client=True)
    client = H3Client(client_h3, authority="example.test")
    session = H3ServerSession(server, H3FileServer(None), chunk_size=16384, high_water=65536)
    pair.client_handler = client.handle_event
    pair.server_handler = session.handle_event
    sizes = (0, 10, 5000, 10, 10, 10, 10, 10)  # repeated heads: dynamic-table inserts
    ids = [client.get(f"/bytes/{n}") for n in sizes]
    pair.run(pump=session.pump)
    assert client.all_done
    for sid, n in zip(ids, sizes, strict=True):
        rec = client.responses[sid]
        assert rec.ok and rec.status == 200 and bytes(rec.body) == deterministic_bytes(0, n)
    assert client_h3.peer_settings == {}
    assert pair.client.closed is None and pair.server.closed is None
    # the client allowed a dynamic table, so our encoder's stream opened once it had
    # instructions (stream 7, after the control stream); our decoder has no table (capacity 0,
    # RFC 9204 §5 default) and never needed its stream
    assert sorted(s for s in pair.server.queues if s & 3 == 3) == [3, 7]


def test_given_settings_configure_our_decoder() -> None:
    pair = FakePair()
    server = H3Connection(pair.server, is_client=False,
                          settings=((Setting.QPACK_MAX_TABLE_CAPACITY, 100),
                                    (Setting.MAX_FIELD_SECTION_SIZE, 300)),
                          early_qpack_streams=(StreamType.QPACK_DECODER,))
    assert server.local_settings == {1: 100, 6: 300}
    assert sorted(pair.server.queues) == [3, 7]  # control, then the decoder stream
    assert bytes(pair.server.queues[7].data) == b"\x03"
    client_h3 = H3Connection(pair.client, is_client=True)
    client = H3Client(client_h3, authority="example.test")
    session = H3ServerSession(server, H3FileServer(None), chunk_size=16384, high_water=65536)
    pair.client_handler = client.handle_event
    pair.server_handler = session.handle_event
    small = client.get("/bytes/1")
    pair.run(pump=session.pump)
    # the client now knows our limit of 300 bytes and refuses a larger head itself
    with pytest.raises(LocalProtocolError, match="MAX_FIELD_SECTION_SIZE"):
        client.get("/" + "x" * 400)
    assert client.responses[small].status == 200


def test_a_huge_advertised_field_section_size_does_not_lift_our_limit() -> None:
    pair = FakePair()
    server = H3Connection(pair.server, is_client=False,
                          settings=((Setting.MAX_FIELD_SECTION_SIZE, (1 << 62) - 1),),
                          max_field_section_size=1000)
    client_h3 = H3Connection(pair.client, is_client=True)
    client = H3Client(client_h3, authority="example.test")
    session = H3ServerSession(server, H3FileServer(None), chunk_size=16384, high_water=65536)
    pair.client_handler = client.handle_event
    pair.server_handler = session.handle_event
    pair.run(pump=session.pump)
    assert client_h3.peer_settings == {Setting.MAX_FIELD_SECTION_SIZE: (1 << 62) - 1}
    big = client.get("/" + "x" * 2000)  # the client may send it: we advertised more
    pair.run(pump=session.pump)
    assert client.responses[big].status == 431
