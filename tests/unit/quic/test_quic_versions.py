"""Version decisions (RFC 9368 §2-§4): names, the server's compatible choice, the client's choice
after Version Negotiation, downgrade checks; version_information on the wire."""

from __future__ import annotations

import pytest

from quicreality.quic.errors import QuicConnectionError
from quicreality.quic.packet import QUIC_VERSION_1, QUIC_VERSION_2
from quicreality.quic.transport_params import (
    QuicTransportParameters,
    VersionInformation,
    encode_transport_parameters,
    pull_transport_parameters,
)
from quicreality.quic.versions import (
    check_server_information,
    client_choice_after_vn,
    parse_versions,
    server_choice,
    version_name,
)
from quicreality.wire.buffer import Buffer

V1, V2 = QUIC_VERSION_1, QUIC_VERSION_2


def test_parse_versions_names_hex_and_errors() -> None:
    assert parse_versions("v1,v2") == (V1, V2)
    assert parse_versions(" V2 , 0x1 ") == (V2, V1)
    for bad, message in (("v3", "unknown QUIC version 'v3'"), ("v1,v1", "listed twice")):
        with pytest.raises(ValueError, match=message):
            parse_versions(bad)
    assert version_name(V2) == "v2" and version_name(0x1A2A3A4A) == "0x1a2a3a4a"


def test_server_choice_follows_server_preference_among_compatible_offers() -> None:
    client = VersionInformation(V1, (V1, V2))
    assert server_choice(V1, client, (V2, V1)).version == V2
    assert server_choice(V1, client, (V1, V2)).version == V1
    assert server_choice(V1, VersionInformation(V1, (V1,)), (V2, V1)).version == V1
    assert server_choice(V1, None, (V2, V1)).version == V1  # a client without the parameter
    bad = server_choice(V1, VersionInformation(V2, (V2, V1)), (V2, V1))
    assert not bad.ok and "not the version of its first Initial" in bad.reason


def test_client_choice_after_vn_skips_reserved_versions() -> None:
    assert client_choice_after_vn((V2, V1), (0x1A2A3A4A, V1)) == V1
    assert client_choice_after_vn((V2,), (V1, 0x0A0A0A0A)) is None


def test_check_server_information() -> None:
    ours = (V2, V1)
    ok = check_server_information(VersionInformation(V2, (V2, V1)), negotiated=V2,
                                  after_vn=False, ours=ours)
    assert ok.ok
    mismatch = check_server_information(VersionInformation(V1, (V1, V2)), negotiated=V2,
                                        after_vn=False, ours=ours)
    assert not mismatch.ok and "not the negotiated version" in mismatch.reason
    downgrade = check_server_information(VersionInformation(V1, (V1, V2)), negotiated=V1,
                                         after_vn=True, ours=ours)
    assert not downgrade.ok and "downgrade" in downgrade.reason
    honest_vn = check_server_information(VersionInformation(V1, (V1,)), negotiated=V1,
                                         after_vn=True, ours=ours)
    assert honest_vn.ok
    assert check_server_information(None, negotiated=V1, after_vn=False, ours=ours).ok
    missing = check_server_information(None, negotiated=V2, after_vn=False, ours=ours)
    assert not missing.ok and "no version_information" in missing.reason


def test_version_information_transport_parameter_round_trip_and_errors() -> None:
    params = QuicTransportParameters(version_information=VersionInformation(V1, (V1, V2)))
    data = encode_transport_parameters(params)
    assert bytes.fromhex("110c" "00000001" "00000001" "6b3343cf") in data  # RFC 9368 §3
    assert pull_transport_parameters(Buffer(data=data)).version_information == \
        VersionInformation(V1, (V1, V2))
    for body in (b"\x11\x03\x00\x00\x01", b"\x11\x08\x00\x00\x00\x01\x00\x00\x00\x00"):
        with pytest.raises(QuicConnectionError):
            pull_transport_parameters(Buffer(data=body))
