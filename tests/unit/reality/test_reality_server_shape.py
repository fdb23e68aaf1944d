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


def test_accepted_connection_copies_the_targets_scid_length() -> None:
    """ngtcp2's 18-byte server ID, quic-go's 4 bytes; a target with a 0-byte (unroutable) or
    2-byte ID leaves our default of 8. The handshake completes in each case."""
    for target_len, want in ((18, 18), (4, 4), (0, 8), (2, 8)):
        shape = TargetShape(NGTCP2.server_hello, NGTCP2.datagrams, scid_len=target_len,
                            client_scid_len=0)
        pair, ours = accepted(shape)
        assert ours.scid_len == want, target_len
        (conn,) = pair.endpoint.connections
        assert {len(cid) for cid in conn.host_cids} == {want}


def test_quic_go_sized_ack_only_initial() -> None:
    """quic-go answers Chromium with a 37-byte ACK-only Initial (4-byte SCID, 1-byte packet
    number): with its ID length and the shortest packet number ours is 37 as well."""
    shape = TargetShape(ServerHelloShape(0x1301, (0x002B, 0x0033), m.Group.X25519, False),
                        (ShapedDatagram(37, (0,), True), ShapedDatagram(1252, (0, 1, 2))),
                        scid_len=4, client_scid_len=0)
    _, ours = accepted(shape)
    assert ours.datagrams == shape.datagrams
