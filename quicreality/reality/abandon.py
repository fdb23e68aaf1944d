"""End the target's half of an accepted flow as a client that goes away would (sans-IO).

The gate mirrors every ClientHello to the target before it decides, so the target starts a
handshake for every accepted flow too, and keeps retransmitting its flight to a client that never
answers until its handshake timeout. Initial keys are public (RFC 9001 §5.2): the listener can
close that connection in the client's name with what a client abandoning a handshake sends, an
Initial CONNECTION_CLOSE of type 0x1c with APPLICATION_ERROR (RFC 9000 §10.2.3: an application
close before the handshake is confirmed), in a datagram padded to 1200 bytes (§14.1), with the
client's next packet number and the target's chosen connection ID as the destination.

The target sees a client that sent its hello, got the answer and left; an observer between the
listener and the target sees one more client Initial on the flow. Only the flow's own 4-tuple
carries it, and only once the target has answered (its SCID is needed), as a client would.
"""

from __future__ import annotations

from ..quic.crypto import CryptoPair
from ..quic.errors import QuicErrorCode
from ..quic.frames import push_connection_close_frame
from ..quic.packet import MIN_INITIAL_DATAGRAM_SIZE, PACKET_TYPE_INITIAL, QUIC_VERSION_1
from ..quic.packet_builder import (
    AEAD_TAG_SIZE,
    header_size,
    seal_packet,
)
from ..wire.buffer import Buffer


def client_initial_close(original_dcid: bytes, target_cid: bytes, client_scid: bytes,
                         packet_number: int) -> bytes:
    """One 1200-byte datagram: the client's Initial CONNECTION_CLOSE (see the module docstring)."""
    keys = CryptoPair()
    keys.setup_initial(original_dcid, is_client=True, version=QUIC_VERSION_1)
    room = MIN_INITIAL_DATAGRAM_SIZE - header_size(
        PACKET_TYPE_INITIAL, len(target_cid), len(client_scid), 0) - AEAD_TAG_SIZE
    buf = Buffer(capacity=room)
    push_connection_close_frame(buf, QuicErrorCode.APPLICATION_ERROR, 0, b"", False)
    buf.push_bytes(bytes(room - buf.tell()))  # PADDING
    return seal_packet(keys, PACKET_TYPE_INITIAL, version=QUIC_VERSION_1, dcid=target_cid,
                       scid=client_scid, token=b"", packet_number=packet_number,
                       payload=buf.data)
