"""After an accept, the target's half-open connection is closed as a leaving client would."""

from __future__ import annotations

from reality_helpers import RealityPair, client_configuration, server_config

from quicreality.quic.crypto import CryptoPair
from quicreality.quic.packet import PACKET_TYPE_INITIAL, QUIC_VERSION_1, pull_quic_header
from quicreality.reality.abandon import client_initial_close
from quicreality.reality.gate import Accept, TargetAction, ToTarget
from quicreality.wire.buffer import Buffer

ODCID, TARGET_CID, CLIENT_SCID = bytes(range(8)), bytes(range(20, 38)), bytes(range(40, 48))


def _open(datagram: bytes, odcid: bytes) -> tuple[object, bytes, int]:
    header = pull_quic_header(Buffer(data=datagram), host_cid_length=None)
    keys = CryptoPair()
    keys.setup_initial(odcid, is_client=False, version=QUIC_VERSION_1)  # the target's side
    _, payload, pn = keys.decrypt_packet(datagram, header.pn_offset, 0)
    return header, payload, pn


def test_close_datagram_is_a_padded_client_initial_with_application_error() -> None:
    data = client_initial_close(ODCID, TARGET_CID, CLIENT_SCID, 2)
    assert len(data) == 1200
    header, payload, pn = _open(data, ODCID)
    assert header.packet_type == PACKET_TYPE_INITIAL  # type: ignore[attr-defined]
    assert header.destination_cid == TARGET_CID and header.source_cid == CLIENT_SCID  # type: ignore[attr-defined]
    assert header.packet_end == 1200  # type: ignore[attr-defined]
    assert pn == 2
    assert payload[:4] == bytes([0x1C, 0x0C, 0x00, 0x00])  # APPLICATION_ERROR, no reason
    assert not any(payload[4:])  # PADDING


def _target_reply(scid: bytes) -> bytes:
    """Any long-header datagram from the target with its chosen SCID."""
    head = bytes([0xC0]) + QUIC_VERSION_1.to_bytes(4, "big") + bytes([8]) + CLIENT_SCID
    return head + bytes([len(scid)]) + scid + bytes(60)


def test_gate_closes_the_target_connection_once_after_its_first_answer() -> None:
    pair = RealityPair(client_configuration(), server=server_config(close_target=True))
    pair.run(lambda: any(isinstance(d, Accept) for d in pair.decisions))
    accept = next(d for d in pair.decisions if isinstance(d, Accept))
    gate, addr = pair.gate, accept.addr
    while gate.next_event() is not None:
        pass
    assert gate.receive_target_datagram(addr, _target_reply(TARGET_CID), 1.0) is TargetAction.DROP
    event = gate.next_event()
    assert isinstance(event, ToTarget) and event.addr == addr
    odcid = pull_quic_header(Buffer(data=pair.target_got[0]), host_cid_length=None).destination_cid
    header, payload, pn = _open(event.data, odcid)
    assert header.destination_cid == TARGET_CID  # type: ignore[attr-defined]
    assert pn == 1 and payload[0] == 0x1C  # after the client's Initial with packet number 0
    # Only once.
    assert gate.receive_target_datagram(addr, _target_reply(TARGET_CID), 1.1) is TargetAction.DROP
    assert gate.next_event() is None


def test_close_is_off_by_default() -> None:
    pair = RealityPair(client_configuration())
    pair.run(lambda: any(isinstance(d, Accept) for d in pair.decisions))
    accept = next(d for d in pair.decisions if isinstance(d, Accept))
    while pair.gate.next_event() is not None:
        pass
    pair.gate.receive_target_datagram(accept.addr, _target_reply(TARGET_CID), 1.0)
    assert pair.gate.next_event() is None
