"""The target-shape parser on the committed captures, and the shape arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from quicreality.analysis.pcapfile import _frames_pcap, _frames_pcapng, _l3, _udp
from quicreality.quic.flight_shape import ShapedDatagram
from quicreality.reality.target_shape import (
    ServerHelloShape,
    ShapeError,
    TargetShape,
    parse_target_flight,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "fingerprint"


def capture_flows(name: str) -> list[list[tuple[bool, bytes]]]:
    """Per UDP 4-tuple, ``(from_server, payload)`` in capture order (the client speaks first)."""
    data = (DATA / name).read_bytes()
    frames = _frames_pcapng(data) if data[:4] == b"\x0a\x0d\x0d\x0a" else _frames_pcap(data)
    flows: dict[tuple, tuple[tuple[str, int], list[tuple[bool, bytes]]]] = {}
    for _, linktype, frame in frames:
        ip = _l3(linktype, frame)
        udp = _udp(ip) if ip is not None else None
        if udp is None:
            continue
        src, dst, sport, dport, payload = udp
        key = tuple(sorted([(src, sport), (dst, dport)]))
        client, items = flows.setdefault(key, ((src, sport), []))
        items.append(((src, sport) != client, payload))
    return [items for _, items in flows.values()]


def test_ngtcp2_answering_chromium() -> None:
    """ngtcp2 0.12: an ACK-only Initial, then one padded coalesced datagram; X25519 though Chromium
    offers X25519MLKEM768; SCID 18 bytes (the docs/camouflage.md table)."""
    flows = capture_flows("chromium-ngtcp2.pcap")
    assert len(flows) == 2
    for flow in flows:
        shape = parse_target_flight(flow)
        assert shape.server_hello == ServerHelloShape(0x1301, (0x0033, 0x002B), 0x001D, False)
        assert shape.datagrams == (ShapedDatagram(52, (0,), True), ShapedDatagram(1200, (0, 1, 2)))
        assert shape.scid_len == 18 and shape.client_scid_len == 0


def test_our_accepted_reality_flight() -> None:
    """Our accepted REALITY answer (the listener learned ngtcp2's, its target): ngtcp2's flight,
    ServerHello shape and 18-byte SCID; to a minimal client (8-byte SCID) the ACK is 8 longer."""
    want = ServerHelloShape(0x1301, (0x0033, 0x002B), 0x001D, False)
    for name, ack in (("ours-reality.pcap", 52), ("ours-reality-minimal.pcap", 60)):
        for flow in capture_flows(name):
            shape = parse_target_flight(flow)
            assert shape.datagrams == (ShapedDatagram(ack, (0,), True),
                                       ShapedDatagram(1200, (0, 1, 2))), name
            assert shape.scid_len == 18 and shape.server_hello == want, name


def test_flight_ends_at_the_clients_first_1rtt_datagram() -> None:
    """ngtcp2's 1-RTT ACK that follows Chromium's first 1-RTT packet is not in the flight."""
    flow = capture_flows("chromium-ngtcp2.pcap")[0]
    assert len([d for s, d in flow if s]) > 2
    assert len(parse_target_flight(flow).datagrams) == 2


def test_flight_shape_follows_the_client_scid_for_unpadded_datagrams() -> None:
    shape = TargetShape(None, (ShapedDatagram(52, (0,), True), ShapedDatagram(1200, (0, 1, 2))),
                        18, 0)
    assert [d.size for d in shape.flight_shape(8).datagrams] == [60, 1200]
    assert [d.size for d in shape.flight_shape().datagrams] == [52, 1200]


def test_errors() -> None:
    with pytest.raises(ShapeError):
        parse_target_flight([])
    with pytest.raises(ShapeError):
        parse_target_flight([(True, bytes(1200))])
    flow = capture_flows("chromium-ngtcp2.pcap")[0]
    client_only = [(s, d) for s, d in flow if not s]
    with pytest.raises(ShapeError, match="no server datagram"):
        parse_target_flight(client_only)
    # Server Initials that do not open with the first datagram's DCID: not this handshake.
    other = capture_flows("chromium-ours.pcap")[0]
    mixed = [flow[0]] + [(s, d) for s, d in other if s]
    with pytest.raises(ShapeError, match="does not open"):
        parse_target_flight(mixed)
