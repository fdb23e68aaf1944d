"""An accepted REALITY connection answers with the target's ServerHello shape and flight."""

from __future__ import annotations

from reality_helpers import RealityPair, client_configuration

from quicreality.quic import events
from quicreality.quic.flight_shape import ShapedDatagram
from quicreality.reality.gate import Accept
from quicreality.reality.target_shape import ServerHelloShape, TargetShape, parse_target_flight
from quicreality.tls import messages as m

#: ngtcp2 0.12 answering Chromium (tests/data/fingerprint/chromium-ngtcp2.pcap; 0-byte client SCID)
NGTCP2 = TargetShape(
    ServerHelloShape(0x1301, (0x0033, 0x002B), m.Group.X25519, False),
    (ShapedDatagram(52, (0,), True), ShapedDatagram(1200, (0, 1, 2))),
    scid_len=18, client_scid_len=0,
)


def run(pair: RealityPair) -> list[object]:
    seen: list[object] = []

    def until() -> bool:
        seen.extend(pair.client_events())
        return any(isinstance(e, (events.HandshakeCompleted, events.ConnectionTerminated))
                   for e in seen)

    pair.run(until)
    return seen


def accepted(shape: TargetShape | None, **layout: object) -> tuple[RealityPair, TargetShape]:
    pair = RealityPair(client_configuration(fingerprint="chrome").derived(**layout))
    pair.gate.shape_source = (lambda sni: shape) if shape is not None else None
    seen = run(pair)
    assert any(isinstance(e, events.HandshakeCompleted) for e in seen), seen
    assert any(isinstance(d, Accept) for d in pair.decisions)
    # What an observer reads off the wire: the client's first Initial, then our datagrams.
    ours = parse_target_flight([(False, pair.target_got[0])] + [(True, d) for d in pair.to_client])
    return pair, ours


def test_without_a_shape_the_answer_is_unchanged() -> None:
    """Today's behaviour: X25519MLKEM768 for a chrome hello, 1200 + 1200, our extension order."""
    _, ours = accepted(None)
    assert ours.server_hello is not None
    assert ours.server_hello.key_share_group == m.Group.X25519MLKEM768
    assert [d.size for d in ours.datagrams] == [1200, 1200]


def test_accepted_flight_copies_the_ngtcp2_shape() -> None:
    """Same suite, extension order and group (X25519, although the client offered the hybrid and
    we prefer it), and the same datagrams: an ACK-only Initial of 52 bytes (the chrome client's
    SCID is empty, as Chromium's), then one coalesced 1200-byte datagram."""
    _, ours = accepted(NGTCP2)
    assert ours.server_hello == NGTCP2.server_hello
    assert ours.datagrams == NGTCP2.datagrams


def test_unpadded_sizes_follow_the_clients_scid() -> None:
    """A client with an 8-byte SCID (minimal Initial layout): ngtcp2's 52-byte ACK becomes 60."""
    _, ours = accepted(NGTCP2, initial_layout="minimal", scid_length=None)
    assert ours.datagrams == (ShapedDatagram(60, (0,), True), ShapedDatagram(1200, (0, 1, 2)))


def test_extension_order_and_suite_follow_the_shape() -> None:
    """A target with a long chain: an Initial alone, then Handshake datagrams; our short flight is
    spread over the same three datagrams (the later ones PADDING-only where we have nothing)."""
    shape = TargetShape(
        ServerHelloShape(0x1302, (0x002B, 0x0033), m.Group.X25519, False),
        (ShapedDatagram(1200, (0,)), ShapedDatagram(1200, (1,)), ShapedDatagram(700, (1, 2))),
        scid_len=8, client_scid_len=0,
    )
    _, ours = accepted(shape)
    assert ours.server_hello == shape.server_hello
    assert ours.datagrams == shape.datagrams


def test_a_retrying_target_makes_us_retry() -> None:
    """The target sent a HelloRetryRequest for P-256 (the client had no P-256 share): so do we."""
    shape = TargetShape(
        ServerHelloShape(0x1301, (0x002B, 0x0033), m.Group.SECP256R1, True),
        (ShapedDatagram(1200, (0, 1, 2)),),
        scid_len=8, client_scid_len=8,
    )
    _, ours = accepted(shape)
    assert ours.server_hello == shape.server_hello
