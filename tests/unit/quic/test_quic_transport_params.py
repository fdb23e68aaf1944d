"""Transport parameters (RFC 9000 §7.4, §18; RFC 9221 §3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quicreality.quic.errors import QuicConnectionError, QuicErrorCode
from quicreality.quic.transport_params import (
    PreferredAddress,
    QuicTransportParameters,
    VersionInformation,
    encode_transport_parameters,
    pull_transport_parameters,
    push_transport_parameters,
)
from quicreality.wire.buffer import Buffer, encode_uint_var

varint = st.integers(min_value=0, max_value=(1 << 62) - 1)
cid = st.binary(max_size=20)

params_strategy = st.builds(
    QuicTransportParameters,
    original_destination_connection_id=st.none() | cid,
    max_idle_timeout=st.none() | varint,
    stateless_reset_token=st.none() | st.binary(min_size=16, max_size=16),
    max_udp_payload_size=st.none() | st.integers(1200, 65527),
    initial_max_data=st.none() | varint,
    initial_max_stream_data_bidi_local=st.none() | varint,
    initial_max_stream_data_bidi_remote=st.none() | varint,
    initial_max_stream_data_uni=st.none() | varint,
    initial_max_streams_bidi=st.none() | st.integers(0, 1 << 60),
    initial_max_streams_uni=st.none() | st.integers(0, 1 << 60),
    ack_delay_exponent=st.none() | st.integers(0, 20),
    max_ack_delay=st.none() | st.integers(0, (1 << 14) - 1),
    disable_active_migration=st.booleans(),
    preferred_address=st.none()
    | st.builds(
        PreferredAddress,
        st.binary(min_size=4, max_size=4),
        st.integers(0, 65535),
        st.binary(min_size=16, max_size=16),
        st.integers(0, 65535),
        st.binary(min_size=1, max_size=20),
        st.binary(min_size=16, max_size=16),
    ),
    active_connection_id_limit=st.none() | st.integers(2, 1 << 20),
    initial_source_connection_id=st.none() | cid,
    retry_source_connection_id=st.none() | cid,
    max_datagram_frame_size=st.none() | varint,
    version_information=st.none() | st.builds(  # RFC 9368 §3: 32-bit versions, none of them 0
        VersionInformation, st.integers(1, (1 << 32) - 1),
        st.lists(st.integers(1, (1 << 32) - 1), max_size=4).map(tuple)),
)


@given(params=params_strategy)
def test_transport_parameters_round_trip(params: QuicTransportParameters) -> None:
    data = encode_transport_parameters(params)
    assert pull_transport_parameters(Buffer(data=data)) == params
    assert pull_transport_parameters(Buffer(data=data), from_server=True) == params


def test_absent_parameters_are_none() -> None:
    params = pull_transport_parameters(Buffer(data=b""))
    assert params == QuicTransportParameters()
    assert params.max_udp_payload_size is None and params.disable_active_migration is False


@given(grease=st.integers(0, 1000), value=st.binary(max_size=30))
def test_unknown_and_greased_parameters_are_ignored(grease: int, value: bytes) -> None:
    params = QuicTransportParameters(initial_max_data=1000, max_datagram_frame_size=1200)
    data = encode_transport_parameters(params, extra=[(31 * grease + 27, value)])
    assert pull_transport_parameters(Buffer(data=data)) == params


def param(param_id: int, value: bytes) -> bytes:
    return encode_uint_var(param_id) + encode_uint_var(len(value)) + value


def tp_error(data: bytes, **kwargs: bool) -> None:
    with pytest.raises(QuicConnectionError) as info:
        pull_transport_parameters(Buffer(data=data), **kwargs)
    assert info.value.error_code == QuicErrorCode.TRANSPORT_PARAMETER_ERROR


@pytest.mark.parametrize(
    "data",
    [
        param(0x03, encode_uint_var(1199)),  # max_udp_payload_size < 1200
        param(0x0A, encode_uint_var(21)),  # ack_delay_exponent > 20
        param(0x0B, encode_uint_var(1 << 14)),  # max_ack_delay >= 2^14
        param(0x0E, encode_uint_var(1)),  # active_connection_id_limit < 2
        param(0x08, encode_uint_var((1 << 60) + 1)),  # initial_max_streams_bidi > 2^60
        param(0x09, encode_uint_var((1 << 60) + 1)),  # initial_max_streams_uni > 2^60
        param(0x04, encode_uint_var(5)) + param(0x04, encode_uint_var(5)),  # duplicate
        param(0x1234, b"") + param(0x1234, b""),  # duplicate unknown
        param(0x02, bytes(15)),  # stateless_reset_token not 16 bytes
        param(0x0F, bytes(21)),  # CID too long
        param(0x04, encode_uint_var(5) + b"\x00"),  # trailing bytes in a varint value
        param(0x04, b""),  # empty varint value
        param(0x0C, b"\x00"),  # disable_active_migration must be empty
        param(
            0x0D, bytes(4 + 2 + 16 + 2) + b"\x00" + bytes(16)
        ),  # preferred_address with empty CID
        param(0x0D, bytes(10)),  # truncated preferred_address
        b"\x04\x05\x01",  # length past the end
        b"\x40",  # truncated id
    ],
)
def test_invalid_transport_parameters(data: bytes) -> None:
    tp_error(data)


@pytest.mark.parametrize("param_id", [0x00, 0x02, 0x0D, 0x10])
def test_server_only_parameters_from_a_client(param_id: int) -> None:
    params = QuicTransportParameters(
        original_destination_connection_id=b"\x01",
        stateless_reset_token=bytes(16),
        preferred_address=PreferredAddress(bytes(4), 0, bytes(16), 0, b"\x01", bytes(16)),
        retry_source_connection_id=b"\x02",
    )
    buf = Buffer(capacity=1000)
    push_transport_parameters(buf, params)
    tp_error(buf.data, from_server=False)
    pull_transport_parameters(Buffer(data=buf.data), from_server=True)
