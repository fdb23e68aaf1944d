"""Packet headers, packet numbers, Version Negotiation, Retry and Stateless Reset (RFC 9000 §17, §10.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quicreality.quic.packet import (
    PACKET_TYPE_HANDSHAKE,
    PACKET_TYPE_INITIAL,
    PACKET_TYPE_ONE_RTT,
    PACKET_TYPE_RETRY,
    PACKET_TYPE_UNKNOWN_VERSION,
    PACKET_TYPE_VERSION_NEGOTIATION,
    PACKET_TYPE_ZERO_RTT,
    QUIC_VERSION_1,
    MalformedPacketError,
    decode_packet_number,
    encode_quic_retry,
    encode_quic_version_negotiation,
    encode_stateless_reset,
    get_key_phase,
    get_packet_number_length,
    packet_number_length,
    patch_long_header_length,
    pull_quic_header,
    push_long_header,
    push_short_header,
    reserved_bits_valid,
    retry_integrity_tag_valid,
)
from quicreality.wire.buffer import Buffer

cids = st.binary(min_size=0, max_size=20)


def long_packet(
    packet_type: int, dcid: bytes, scid: bytes, token: bytes, pn: int, pn_len: int, body: bytes
) -> bytes:
    buf = Buffer(capacity=2000)
    push_long_header(
        buf,
        version=QUIC_VERSION_1,
        packet_type=packet_type,
        destination_cid=dcid,
        source_cid=scid,
        token=token,
        packet_number=pn,
        packet_number_length=pn_len,
        length=pn_len + len(body),
    )
    buf.push_bytes(body)
    return buf.data


# --- packet numbers -----------------------------------------------------------------------------------------


def test_decode_packet_number_rfc9000_a3_example() -> None:
    assert decode_packet_number(0x9B32, 16, 0xA82F30EA) == 0xA82F9B32
    assert decode_packet_number(0x9B32, 16, 0xA82F30EA + 1) == 0xA82F9B32


def test_packet_number_length_rfc9000_a2_examples() -> None:
    assert packet_number_length(0xAC5C02, 0xABE8B3) == 2
    assert packet_number_length(0xACE8FE, 0xABE8B3) == 3
    assert packet_number_length(0, None) == 1
    assert packet_number_length(200, None) == 2


@given(
    largest=st.integers(min_value=-1, max_value=(1 << 62) - 1 - (1 << 31)),
    delta=st.integers(min_value=1, max_value=(1 << 31) - 1),
)
def test_packet_number_encode_decode_round_trip(largest: int, delta: int) -> None:
    pn = largest + delta
    largest_acked = None if largest < 0 else largest
    length = packet_number_length(pn, largest_acked)
    truncated = pn & ((1 << (8 * length)) - 1)
    # The receiver has seen at least up to largest_acked; anything between largest_acked and pn works.
    for received in {max(largest, -1), pn - 1}:
        assert decode_packet_number(truncated, 8 * length, received + 1) == pn


@given(
    expected=st.integers(min_value=0, max_value=(1 << 62) - 1),
    offset=st.integers(min_value=-127, max_value=128),
)
def test_decode_packet_number_within_window(expected: int, offset: int) -> None:
    pn = expected + offset
    if not 0 <= pn < (1 << 62):
        return
    assert decode_packet_number(pn & 0xFF, 8, expected) == pn


# --- headers ------------------------------------------------------------------------------------------------


@given(
    packet_type=st.sampled_from([PACKET_TYPE_INITIAL, PACKET_TYPE_ZERO_RTT, PACKET_TYPE_HANDSHAKE]),
    dcid=cids,
    scid=cids,
    token=st.binary(max_size=100),
    pn=st.integers(min_value=0, max_value=(1 << 32) - 1),
    pn_len=st.integers(min_value=1, max_value=4),
    body=st.binary(min_size=0, max_size=200),
)
def test_long_header_round_trip(
    packet_type: int, dcid: bytes, scid: bytes, token: bytes, pn: int, pn_len: int, body: bytes
) -> None:
    if packet_type != PACKET_TYPE_INITIAL:
        token = b""
    packet = long_packet(packet_type, dcid, scid, token, pn, pn_len, body)
    buf = Buffer(data=packet + b"trailing coalesced bytes")
    header = pull_quic_header(buf, host_cid_length=8)
    assert header.is_long_header and header.version == QUIC_VERSION_1
    assert (header.packet_type, header.destination_cid, header.source_cid, header.token) == (
        packet_type,
        dcid,
        scid,
        token,
    )
    assert header.packet_end == len(packet)
    assert buf.tell() == header.pn_offset == len(packet) - len(body) - pn_len
    assert get_packet_number_length(packet[0]) == pn_len
    assert reserved_bits_valid(packet[0])


@given(
    dcid=st.binary(min_size=0, max_size=20), pn_len=st.integers(1, 4), key_phase=st.integers(0, 1)
)
def test_short_header_round_trip(dcid: bytes, pn_len: int, key_phase: int) -> None:
    buf = Buffer(capacity=64)
    push_short_header(
        buf, destination_cid=dcid, packet_number=7, packet_number_length=pn_len, key_phase=key_phase
    )
    datagram = buf.data + bytes(30)
    header = pull_quic_header(Buffer(data=datagram), host_cid_length=len(dcid))
    assert header.packet_type == PACKET_TYPE_ONE_RTT and not header.is_long_header
    assert header.destination_cid == dcid
    assert header.pn_offset == 1 + len(dcid) and header.packet_end == len(datagram)
    assert get_key_phase(datagram[0]) == key_phase and reserved_bits_valid(datagram[0])


def test_coalesced_packets_are_split_by_length() -> None:
    first = long_packet(PACKET_TYPE_INITIAL, b"\x01" * 8, b"\x02" * 8, b"", 0, 1, bytes(40))
    second = long_packet(PACKET_TYPE_HANDSHAKE, b"\x01" * 8, b"\x02" * 8, b"", 0, 2, bytes(30))
    buf = Buffer(data=first + second)
    h1 = pull_quic_header(buf, 8)
    buf.seek(h1.packet_end)
    h2 = pull_quic_header(buf, 8)
    assert (h1.packet_type, h2.packet_type) == (PACKET_TYPE_INITIAL, PACKET_TYPE_HANDSHAKE)
    assert h1.packet_end == len(first) and h2.packet_end == len(first) + len(second)
    assert h2.pn_offset > h1.packet_end


def test_patch_long_header_length() -> None:
    buf = Buffer(capacity=100)
    offset = push_long_header(
        buf,
        version=QUIC_VERSION_1,
        packet_type=PACKET_TYPE_HANDSHAKE,
        destination_cid=b"",
        source_cid=b"",
        packet_number=1,
        packet_number_length=1,
        length=0,
    )
    buf.push_bytes(bytes(20))
    patch_long_header_length(buf.raw, offset, 21)
    header = pull_quic_header(Buffer(data=buf.data), 0)
    assert header.packet_end == len(buf.data)


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        bytes.fromhex("c0"),
        bytes.fromhex("c000000001"),
        bytes.fromhex("c00000000108"),  # DCID truncated
        bytes.fromhex("c000000001000000"),  # no length
        bytes.fromhex("c00000000100000044ff00"),  # Length beyond datagram
        bytes.fromhex("e0000000010000"),  # Handshake without Length
        bytes.fromhex("80000000010000000401020304"),  # fixed bit 0
        bytes.fromhex("c00000000115")
        + bytes(21)
        + bytes.fromhex("00000100"),  # DCID of 21 bytes in v1
        bytes.fromhex("f0000000010000") + bytes(15),  # Retry shorter than its tag
        bytes.fromhex("80000000000000000001"),  # VN with a truncated version list
        bytes.fromhex("8000000000080102"),  # VN truncated CIDs
        bytes.fromhex("4001"),  # short header truncated DCID (host CID length 8)
        bytes.fromhex("0001020304050607080910"),  # short header, fixed bit 0
    ],
)
def test_malformed_headers_raise(packet: bytes) -> None:
    with pytest.raises(MalformedPacketError):
        pull_quic_header(Buffer(data=packet), host_cid_length=8)


def test_unknown_version_parses_invariant_fields_only() -> None:
    packet = (
        bytes.fromhex("c0")
        + (0x1A2A3A4A).to_bytes(4, "big")
        + bytes([30])
        + bytes(30)
        + b"\x00"
        + bytes(50)
    )
    header = pull_quic_header(Buffer(data=packet), 8)
    assert header.packet_type == PACKET_TYPE_UNKNOWN_VERSION and header.version == 0x1A2A3A4A
    assert len(header.destination_cid) == 30 and header.packet_end == len(packet)


def test_reserved_bits() -> None:
    assert not reserved_bits_valid(0xC0 | 0x04)
    assert not reserved_bits_valid(0x40 | 0x08)
    assert reserved_bits_valid(0x40 | 0x04 | 0x20 | 0x03)


# --- Version Negotiation, Retry, Stateless Reset ------------------------------------------------------------


@given(dcid=cids, scid=cids, versions=st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=10))
def test_version_negotiation_round_trip(dcid: bytes, scid: bytes, versions: list[int]) -> None:
    packet = encode_quic_version_negotiation(
        source_cid=scid, destination_cid=dcid, supported_versions=versions
    )
    assert packet[0] & 0xC0 == 0xC0
    header = pull_quic_header(Buffer(data=packet), 8)
    assert header.packet_type == PACKET_TYPE_VERSION_NEGOTIATION and header.version == 0
    assert (header.destination_cid, header.source_cid) == (dcid, scid)
    assert header.supported_versions == tuple(versions)


@given(dcid=cids, scid=cids, odcid=cids, token=st.binary(min_size=1, max_size=100))
def test_retry_round_trip_and_integrity(
    dcid: bytes, scid: bytes, odcid: bytes, token: bytes
) -> None:
    packet = encode_quic_retry(
        version=QUIC_VERSION_1,
        source_cid=scid,
        destination_cid=dcid,
        original_destination_cid=odcid,
        retry_token=token,
    )
    header = pull_quic_header(Buffer(data=packet), 8)
    assert header.packet_type == PACKET_TYPE_RETRY
    assert (header.destination_cid, header.source_cid, header.token) == (dcid, scid, token)
    assert retry_integrity_tag_valid(header, packet, odcid)
    tampered = bytearray(packet)
    tampered[-17] ^= 1
    tampered_header = pull_quic_header(Buffer(data=bytes(tampered)), 8)
    assert not retry_integrity_tag_valid(tampered_header, bytes(tampered), odcid)


def test_stateless_reset_looks_like_a_short_header() -> None:
    token = bytes(range(16))
    packet = encode_stateless_reset(token=token, unpredictable=b"\xff" * 30)
    assert len(packet) == 46 and packet[-16:] == token
    assert packet[0] & 0xC0 == 0x40
    with pytest.raises(ValueError):
        encode_stateless_reset(token=token, unpredictable=b"\x00" * 4)
