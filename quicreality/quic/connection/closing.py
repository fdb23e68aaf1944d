"""The datagram that closes a connection: CONNECTION_CLOSE in every space with keys.

RFC 9000 §10.2: an immediate close sends CONNECTION_CLOSE in each packet number space the peer
may be able to read; §10.2.3: before 1-RTT, an application close becomes APPLICATION_ERROR; §8.1:
before the peer's address is validated the close packets count against 3x the bytes received,
and packets that do not fit are left out; §14.1: a client pads a datagram carrying an Initial to
1200 bytes.
"""

from __future__ import annotations

from ...wire.buffer import Buffer
from .. import frames as f
from ..crypto import CryptoPair
from ..errors import QuicErrorCode
from ..packet import (
    MIN_INITIAL_DATAGRAM_SIZE,
    PACKET_TYPE_HANDSHAKE,
    PACKET_TYPE_INITIAL,
    PACKET_TYPE_ONE_RTT,
)
from ..packet_builder import seal_packet
from ..recovery.loss import SPACE_APPLICATION, SPACE_HANDSHAKE, SPACE_INITIAL
from .cids import HandshakeIds, HostConnectionIds, PeerConnectionIds
from .path import NetworkPath
from .spaces import PacketSpace
from .versions import ConnectionVersions

#: Packet type per packet number space.
_PACKET_TYPES = (PACKET_TYPE_INITIAL, PACKET_TYPE_HANDSHAKE, PACKET_TYPE_ONE_RTT)
#: Longest reason phrase we send (bytes).
MAX_REASON_BYTES = 256


def close_datagram(close_frame: tuple[int, int | None, str, bool], *, is_client: bool,
                   cryptos: list[CryptoPair], spaces: list[PacketSpace], path: NetworkPath,
                   versions: ConnectionVersions, host_cids: HostConnectionIds,
                   peer_cids: PeerConnectionIds, ids: HandshakeIds) -> bytes:
    """CONNECTION_CLOSE ``(error_code, frame_type, reason, application)`` in every space with
    send keys, within the anti-amplification budget (an empty result sends nothing). Each packet
    taken uses its space's next packet number."""
    error_code, frame_type, reason, application = close_frame
    reason_bytes = reason.encode("utf-8")[:MAX_REASON_BYTES]
    budget = path.send_budget()

    def seal(space_id: int, payload: bytes) -> bytes:
        return seal_packet(cryptos[space_id], _PACKET_TYPES[space_id], version=versions.current,
                           dcid=peer_cids.current.cid, scid=host_cids.entries[0].cid,
                           token=ids.retry_token if space_id == SPACE_INITIAL else None,
                           packet_number=spaces[space_id].next_pn, payload=payload)

    built: list[tuple[int, bytes, bytes]] = []
    for space_id in (SPACE_INITIAL, SPACE_HANDSHAKE, SPACE_APPLICATION):
        if not cryptos[space_id].send.is_valid() or spaces[space_id].discarded:
            continue
        buf = Buffer(capacity=400)
        if application and space_id == SPACE_APPLICATION:
            f.push_connection_close_frame(buf, error_code, None, reason_bytes, True)
        else:
            f.push_connection_close_frame(
                buf, QuicErrorCode.APPLICATION_ERROR if application else error_code,
                frame_type, reason_bytes, False)
        if buf.tell() < 8:
            buf.push_bytes(bytes(8 - buf.tell()))
        built.append((space_id, buf.data, seal(space_id, buf.data)))
    if is_client and built and built[0][0] == SPACE_INITIAL:
        # the PADDING goes into the Initial, which comes first in the datagram
        room = MIN_INITIAL_DATAGRAM_SIZE - sum(len(packet) for _, _, packet in built)
        if room > 0:
            _, payload, _ = built[0]
            built[0] = (SPACE_INITIAL, payload, seal(SPACE_INITIAL, payload + bytes(room)))
    packets: list[bytes] = []
    size = 0
    for space_id, _, packet in built:
        if budget is not None and size + len(packet) > budget:
            continue
        spaces[space_id].next_pn += 1
        packets.append(packet)
        size += len(packet)
    return b"".join(packets)
