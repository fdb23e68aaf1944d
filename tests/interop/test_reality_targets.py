"""Finding (docs/reality.md): which real QUIC servers accept a ClientHello with a 32-byte
legacy_session_id, i.e. can be the target of a rejected REALITY client's fallback flow?

RFC 9001 §8.4: a server SHOULD treat a non-empty legacy_session_id as PROTOCOL_VIOLATION. A REALITY
ClientHello always has one (Xray's token lives there), so a strict target answers a rejected REALITY
client with CONNECTION_CLOSE instead of its certificate. This test measures each peer and pins the
result, so a peer upgrade that changes it shows up here. The ``ech`` carrier (the default with the
Chrome hello) leaves the session_id empty, so every target then completes its side.
"""

from __future__ import annotations

import os
import time

import pytest
from peers_harness import PeerHarness, Pki, WwwDir
from reality_support import RealityLab, handshake

from quicreality.quic.config import QuicConfiguration
from quicreality.reality.keys import generate_key_pair
from quicreality.reality.seal import REAL_CERTIFICATE_REASON
from quicreality.scenarios.peers import ServeRequest
from quicreality.scenarios.peers.base import free_udp_port
from quicreality.tls.certificates import InsecureVerifier

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

PROTOCOL_VIOLATION = 0x0A
#: Measured on this machine (see docs/reality.md): does the target accept a 32-byte session_id?
EXPECTED = {"aioquic": False, "ngtcp2": True, "quicgo": True}


def _client(session_id_length: int) -> QuicConfiguration:
    return QuicConfiguration(is_client=True, rng=os.urandom, wall_clock=time.time,
                             peer_verifier=InsecureVerifier(), server_name="localhost",
                             legacy_session_id_length=session_id_length)


@pytest.mark.parametrize("target", list(EXPECTED))
def test_target_tolerance_of_a_32_byte_session_id(peer_harness: PeerHarness, pki: Pki,
                                                  www: WwwDir, target: str) -> None:
    port = free_udp_port()
    peer_harness.serve(target, ServeRequest(www=www.path, port=port, cert=pki.cert, key=pki.key))
    plain = handshake(_client(0), port)
    assert plain.completed, (target, plain.terminated)  # the peer works at all
    with_id = handshake(_client(32), port)
    print(f"{target}: 32-byte legacy_session_id -> "
          f"{'handshake completes' if with_id.completed else with_id.terminated}")
    if EXPECTED[target]:
        assert with_id.completed, (target, with_id.terminated)
    else:
        assert not with_id.completed
        assert with_id.terminated is not None
        assert with_id.terminated.error_code == PROTOCOL_VIOLATION, with_id.terminated
        assert with_id.terminated.by_peer


@pytest.mark.parametrize("carrier", ["session_id", "ech"])
@pytest.mark.parametrize("target", list(EXPECTED))
def test_what_a_rejected_reality_client_sees_from_each_target(
        peer_harness: PeerHarness, pki: Pki, www: WwwDir, target: str, carrier: str) -> None:
    lab = RealityLab(peer_harness, pki, www, target=target)
    wrong = generate_key_pair(lambda n: b"\x05" * n).public_key
    result = handshake(lab.client_config(public_key=wrong, carrier=carrier), lab.port)
    assert lab.rejected("AEAD_OPEN_FAILED") == 1
    terminated = result.terminated
    assert terminated is not None and not result.completed
    print(f"{target} ({carrier}): rejected REALITY client sees {terminated}")
    if EXPECTED[target] or carrier == "ech":
        # The target completed its side up to the certificate: a real one, which our client refuses.
        assert terminated.reason_phrase == REAL_CERTIFICATE_REASON
    else:
        # The target refused the session_id itself: the client learns nothing about the site.
        assert terminated.error_code == PROTOCOL_VIOLATION and terminated.by_peer
