"""Each reject reason sends a REALITY client to the real target, with the reason in the metrics
(issue 3: wrong public key, wrong short ID, SNI not listed, time skew, version out of range, replay).

The target (ngtcp2's server) accepts the 32-byte session_id, completes the handshake with its real
certificate, and our client's HMAC check then fails with "server presented a real certificate": the
proof that the flow reached the target and not our server.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from peers_harness import PeerHarness, Pki, WwwDir
from reality_support import RealityLab, capture, flows, handshake, replies, run_cli_client

from quicreality.bench.handshake import drive
from quicreality.quic.connection import QuicConnection
from quicreality.reality.keys import generate_key_pair
from quicreality.reality.seal import REAL_CERTIFICATE_REASON

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]


@pytest.fixture
def lab(peer_harness: PeerHarness, pki: Pki, www: WwwDir) -> RealityLab:
    return RealityLab(peer_harness, pki, www, target="ngtcp2", max_time_diff_ms=30_000)


CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "wrong public key": ("AEAD_OPEN_FAILED", {"public_key": "other"}),
    "wrong short id": ("UNKNOWN_SHORT_ID", {"short_id": "c0ffee0124"}),
    "sni not listed": ("SNI_NOT_ALLOWED", {"server_name": "www.example.com"}),
    "time skew": ("TIME_SKEW", {"clock_offset": -120.0}),
    "version below min": ("VERSION_OUT_OF_RANGE", {"version": (25, 12, 1)}),
    "version above max": ("VERSION_OUT_OF_RANGE", {"version": (27, 0, 0)}),
}


def _assert_reached_target(result: Any, lab: RealityLab) -> None:
    assert not result.completed, "the client must not complete a handshake with the target"
    terminated = result.terminated
    assert terminated is not None, (result, lab.describe())
    assert terminated.reason_phrase == REAL_CERTIFICATE_REASON, (terminated, lab.describe())


@pytest.mark.parametrize("case", list(CASES))
def test_rejected_client_reaches_the_target_with_the_reason_counted(lab: RealityLab,
                                                                    case: str) -> None:
    reason, opts = CASES[case]
    if opts.get("public_key") == "other":
        opts = {**opts, "public_key": generate_key_pair(lambda n: b"\x07" * n).public_key}
    before = lab.rejected(reason)
    result = handshake(lab.client_config(**opts), lab.port)
    _assert_reached_target(result, lab)
    m = lab.metrics()
    assert m[f"quicreality_reality_handshakes_rejected_total{{reason={reason}}}"] == before + 1
    assert m["quicreality_reality_handshakes_accepted_total"] == 0
    assert f"reality verdict {reason}" in lab.log()
    # The same listener still accepts a correct client afterwards.
    assert handshake(lab.client_config(), lab.port).completed


def test_replayed_client_hello_goes_to_the_target(lab: RealityLab,
                                                  peer_harness: PeerHarness) -> None:
    """A captured valid first flight, replayed from another address within max_time_diff.

    The replay is relayed to the target byte for byte, on a flow of its own, and the replayer sees
    only what the target sends on that flow (the target also saw the original, mirrored, first
    flight with the same connection ID, so it may well stay silent: so would the target alone).
    """
    addr = ("127.0.0.1", lab.port)
    conn = QuicConnection(configuration=lab.client_config())
    conn.connect(addr, time.monotonic())
    first_flight = [d for d, _ in conn.datagrams_to_send(time.monotonic())]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as original, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as replayer:
        original.bind(("127.0.0.1", 0))
        replayer.bind(("127.0.0.1", 0))
        for d in first_flight:
            original.sendto(d, addr)  # the genuine client: accepted
        assert _wait(lambda: lab.accepted() == 1)
        with capture(peer_harness, "replay", lab.port, lab.target_port) as wire:
            for d in first_flight:
                replayer.sendto(d, addr)  # the replay, from elsewhere
            # Drive the same client state over the replayer's socket.
            result = drive(conn, addr, sock=replayer, timeout=4)
        replayer_addr = replayer.getsockname()
    assert lab.rejected("REPLAY") == 1
    assert lab.accepted() == 1
    relay_flows = flows(wire, to_port=lab.target_port)
    assert len(relay_flows) == 1, relay_flows.keys()
    (relay_addr, relayed), = relay_flows.items()
    assert [d.payload for d in relayed][:len(first_flight)] == first_flight
    from_target = [d.payload for d in replies(wire, from_port=lab.target_port, to=relay_addr)]
    to_replayer = [d.payload for d in replies(wire, from_port=lab.port, to=replayer_addr)]
    print(f"replay: target sent {len(from_target)} datagrams on the replay flow")
    assert b"".join(to_replayer) == b"".join(from_target)  # only the target's bytes, if any
    if to_replayer:
        _assert_reached_target(result, lab)
    else:
        assert not result.completed and result.received == 0


def test_cli_client_with_a_wrong_key_says_so(lab: RealityLab, peer_harness: PeerHarness) -> None:
    wrong = generate_key_pair(lambda n: b"\x09" * n).public_key_text
    finished = run_cli_client(peer_harness, [lab.url("index.html"), "--timeout", "20",
                                             *lab.reality_cli_args(public_key=wrong)])
    assert finished.returncode == 1
    assert REAL_CERTIFICATE_REASON in finished.stdout, finished.stdout + finished.stderr
    assert lab.rejected("AEAD_OPEN_FAILED") == 1


def _wait(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
