"""REALITY over QUIC v2 (RFC 9369): the gate opens v2 Initials with v2 keys and the accepted
connection speaks v2; the header looks are version-aware."""

from __future__ import annotations

from reality_helpers import RealityPair, client_configuration
from test_reality_endpoint import run

from quicreality.quic import events
from quicreality.quic.packet import QUIC_VERSION_1, QUIC_VERSION_2, pull_quic_header
from quicreality.reality.auth import Reason
from quicreality.reality.gate import Accept
from quicreality.reality.headers import first_initial_header, initial_dcid
from quicreality.wire.buffer import Buffer


def test_reality_client_in_v2_is_accepted_and_the_connection_speaks_v2() -> None:
    config = client_configuration().derived(supported_versions=(QUIC_VERSION_2,))
    pair = RealityPair(config, server_overrides={"supported_versions": (QUIC_VERSION_2,
                                                                        QUIC_VERSION_1)})
    seen = run(pair)
    assert any(isinstance(e, events.HandshakeCompleted) for e in seen), seen
    accepts = [d for d in pair.decisions if isinstance(d, Accept)]
    assert len(accepts) == 1 and accepts[0].verdict is not None
    assert accepts[0].verdict.reason is Reason.ACCEPT
    long_versions = {pull_quic_header(Buffer(data=d), host_cid_length=None).version
                     for d in pair.to_client if d[0] & 0x80}
    assert long_versions == {QUIC_VERSION_2}


def test_header_looks_know_v1_and_v2_initials() -> None:
    for version in (QUIC_VERSION_1, QUIC_VERSION_2):
        config = client_configuration().derived(supported_versions=(version,))
        pair = RealityPair(config)
        pair.client.connect(("203.0.113.1", 443), 0.0)
        first = pair.client.datagrams_to_send(0.0)[0][0]
        header = first_initial_header(first)
        assert header is not None and header[2] == version
        assert initial_dcid(first) == header[0]
    # Type bits 0b01 under the v1 version number are a 0-RTT packet, not an Initial.
    forged = bytearray(first)
    forged[1:5] = QUIC_VERSION_1.to_bytes(4, "big")
    forged[0] = (forged[0] & ~0x30) | 0x10
    assert initial_dcid(bytes(forged)) is None
