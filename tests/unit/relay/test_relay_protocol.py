"""Relay wire format: preface, status answer, datagram framing, incremental readers."""

from __future__ import annotations

import pytest

from quicreality.relay.protocol import (
    INCOMPLETE,
    MAGIC,
    MAX_PREFACE_SIZE,
    STATUS_ERROR_CODE,
    Destination,
    Kind,
    Preface,
    PrefaceError,
    PrefaceReader,
    RelayErrorCode,
    Status,
    StatusAnswer,
    StatusReader,
    decode_datagram,
    describe_error_code,
    encode_datagram,
    encode_preface,
    encode_status,
    flow_id_of_stream,
    parse_destination,
    starts_like_preface,
    stream_of_flow_id,
)

PREFACES = [
    Preface(Kind.TCP, Destination("127.0.0.1", 5201)),
    Preface(Kind.UDP, Destination("::1", 53)),
    Preface(Kind.TCP, Destination("db.internal", 5432), extensions=b"\x01\x02"),
    Preface(Kind.TCP, Destination("a" * 255, 1)),
]


@pytest.mark.parametrize("preface", PREFACES, ids=lambda p: str(p.destination)[:20])
def test_preface_round_trips_whole_and_byte_by_byte(preface: Preface) -> None:
    raw = encode_preface(preface)
    assert raw.startswith(MAGIC) and len(raw) <= MAX_PREFACE_SIZE
    got = PrefaceReader().feed(raw + b"payload")
    assert got == (preface, b"payload")
    reader = PrefaceReader()
    for i in range(len(raw) - 1):
        assert reader.feed(raw[i:i + 1]) is INCOMPLETE
    assert reader.feed(raw[-1:] + b"xy") == (preface, b"xy")


def test_preface_wire_layout_is_stable() -> None:
    raw = encode_preface(Preface(Kind.TCP, Destination("10.1.2.3", 443)))
    assert raw == b"QRLY" + bytes([1, 1, 1, 10, 1, 2, 3]) + (443).to_bytes(2, "big") + b"\x00"


@pytest.mark.parametrize(("raw", "status"), [
    (b"QRLX" + bytes(20), Status.BAD_REQUEST),
    (b"QRLY\x02" + bytes(20), Status.UNSUPPORTED),
    (b"QRLY\x01\x09" + bytes(20), Status.UNSUPPORTED),
    (b"QRLY\x01\x01\x07" + bytes(20), Status.BAD_REQUEST),
    (b"QRLY\x01\x01\x03\x03a b\x00\x50\x00", Status.BAD_REQUEST),
    (b"QRLY\x01\x01\x01\x7f\x00\x00\x01\x00\x00\x00", Status.BAD_REQUEST),  # port 0
    (b"QRLY\x01\x01\x01\x7f\x00\x00\x01\x00\x50\x41\x00" + bytes(300), Status.BAD_REQUEST),
])
def test_bad_prefaces_are_rejected_with_a_status(raw: bytes, status: Status) -> None:
    with pytest.raises(PrefaceError) as info:
        PrefaceReader().feed(raw)
    assert info.value.status == status


def test_preface_cut_by_fin_or_too_long_is_rejected() -> None:
    raw = encode_preface(PREFACES[0])
    with pytest.raises(PrefaceError, match="ended inside"):
        PrefaceReader().feed(raw[:-2], end_stream=True)
    reader = PrefaceReader()
    # A name preface whose length byte promises more than ever arrives is bounded.
    with pytest.raises(PrefaceError):
        for _ in range(MAX_PREFACE_SIZE):
            reader.feed(b"QRLY\x01\x01\x03\xff" if _ == 0 else b"a")


def test_starts_like_preface_decides_on_the_magic() -> None:
    assert starts_like_preface(b"") is None
    assert starts_like_preface(b"QR") is None
    assert starts_like_preface(b"QRLY\x01") is True
    assert starts_like_preface(b"\x01\x1d") is False  # an HTTP/3 HEADERS frame
    assert starts_like_preface(b"QX") is False


def test_status_round_trip_and_codes() -> None:
    for status in Status:
        answer = StatusAnswer(status, f"because {status.name}")
        got = StatusReader().feed(encode_status(answer) + b"rest")
        assert got == (answer, b"rest")
        assert answer.ok == (status == Status.OK)
        assert answer.error_code == STATUS_ERROR_CODE.get(status)
    assert set(STATUS_ERROR_CODE) == set(Status) - {Status.OK}
    long = StatusAnswer(Status.ERROR, "x" * 1000)
    got = StatusReader().feed(encode_status(long))
    assert got != INCOMPLETE and got[0].reason == "x" * 255  # type: ignore[index]


def test_status_reader_incremental_and_errors() -> None:
    raw = encode_status(StatusAnswer(Status.REFUSED, "no"))
    reader = StatusReader()
    assert reader.feed(raw[:2]) is INCOMPLETE
    assert reader.feed(raw[2:]) == (StatusAnswer(Status.REFUSED, "no"), b"")
    with pytest.raises(ValueError, match="ended before"):
        StatusReader().feed(raw[:1], end_stream=True)
    with pytest.raises(ValueError, match="version"):
        StatusReader().feed(b"\x07\x00\x00")
    unknown = StatusReader().feed(b"\x01\xee\x00")
    assert unknown == (StatusAnswer(Status.ERROR, ""), b"")


@pytest.mark.parametrize("flow_id", [0, 63, 64, 16383, 16384, 2**30 - 1, 2**30, 2**62 - 1])
def test_datagram_framing_round_trips_every_varint_size(flow_id: int) -> None:
    payload = bytes(range(200))
    assert decode_datagram(encode_datagram(flow_id, payload)) == (flow_id, payload)
    assert decode_datagram(encode_datagram(flow_id, b"")) == (flow_id, b"")


def test_datagram_decode_rejects_truncation() -> None:
    with pytest.raises(ValueError):
        decode_datagram(b"")
    with pytest.raises(ValueError):
        decode_datagram(b"\x40")


def test_flow_ids_are_quarter_stream_ids() -> None:
    assert [flow_id_of_stream(s) for s in (0, 4, 8, 400)] == [0, 1, 2, 100]
    assert stream_of_flow_id(100) == 400


def test_parse_destination() -> None:
    assert parse_destination("127.0.0.1:5201") == Destination("127.0.0.1", 5201)
    assert parse_destination("[::1]:53") == Destination("::1", 53)
    assert str(Destination("::1", 53)) == "[::1]:53"
    assert parse_destination("example.com:443").address_type.name == "NAME"
    for bad in ("127.0.0.1", "::1:53", "[127.0.0.1]:5", "host:0", "host:70000", ":80", "a b:1"):
        with pytest.raises(ValueError):
            parse_destination(bad)


def test_error_code_names() -> None:
    assert describe_error_code(RelayErrorCode.REFUSED) == "refused"
    assert describe_error_code(0x101) == "0x101"
    assert all(0x5200 < code < 0x5300 for code in RelayErrorCode)
