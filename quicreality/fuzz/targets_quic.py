"""Fuzz targets for the QUIC layer: packet headers, packet protection, frames through the real
connection, transport parameters.

* ``packet``: a datagram. Its coalesced headers are parsed with
  :func:`~quicreality.quic.packet.pull_quic_header` (documented error:
  :class:`~quicreality.quic.packet.MalformedPacketError`; each header must stay inside the
  datagram and move forward), then the same datagram goes to a server endpoint, whose
  ``receive_datagram`` must never raise.
* ``protection``: ``[selector][pn: 4][tamper][payload]``. The harness seals ``payload`` with
  valid keys (Initial keys from a fixed DCID, or handshake/1-RTT keys of the suite the selector
  picks) and removes the protection again: without tampering the packet must open to the same
  payload and packet number; with one flipped bit it must fail with
  :class:`~quicreality.quic.crypto.CryptoError`. A sealed Initial (padded to 1200 bytes) then
  goes to a server endpoint, which parses its frames (and the ClientHello) for real.
* ``frames``: ``[direction][records...]``, each record a 1-RTT payload (any frames), sealed with
  the real keys of an :class:`~quicreality.fuzz.pair.EstablishedPair` and delivered to the server
  (or client) connection, which must never raise. Every input starts from the same established
  pair (restored from a snapshot taken after one real handshake), so an input's outcome does not
  depend on the inputs before it.
* ``transport-params``: ``[role][parameters]``; documented error
  :class:`~quicreality.quic.errors.QuicConnectionError`; what parses must validate or fail the
  same way, and re-encode to parameters that parse equal.
"""

from __future__ import annotations

from collections.abc import Callable

from ..quic.config import QuicConfiguration
from ..quic.crypto import CryptoContext, CryptoError, CryptoPair
from ..quic.endpoint import QuicServerEndpoint
from ..quic.errors import QuicConnectionError
from ..quic.packet import (
    PACKET_TYPE_RETRY,
    QUIC_VERSION_1,
    MalformedPacketError,
    pull_quic_header,
    retry_integrity_tag_valid,
)
from ..quic.packet_builder import long_header, short_header
from ..quic.transport_params import (
    pull_parameter_list,
    pull_transport_parameters,
    push_transport_parameters,
    validate_transport_parameters,
)
from ..wire.buffer import Buffer
from .harness import InvariantError, Target, must_not_raise, split_records
from .pair import CLIENT_ADDR, WALL, EstablishedPair, credentials, seeded_rng

__all__ = ["FIXED_DCID", "TARGETS"]

#: The Initial DCID the ``protection`` target's keys are derived from (8 bytes, as our clients).
FIXED_DCID = bytes.fromhex("8394c8f03e515708")
_SUITES = (0x1301, 0x1302, 0x1303)
_ENDPOINT_INPUTS = 300  # a fresh endpoint after this many inputs (bounded state per run)


class _Endpoint:
    """A server endpoint that is replaced every ``_ENDPOINT_INPUTS`` datagrams."""

    def __init__(self) -> None:
        self._count = 0
        self.now = 0.0
        self._endpoint = self._make()

    @staticmethod
    def _make() -> QuicServerEndpoint:
        rng = seeded_rng(3)

        def factory() -> QuicConfiguration:
            return QuicConfiguration(is_client=False, rng=rng, wall_clock=lambda: WALL,
                                     certificate_source=credentials())

        return QuicServerEndpoint(factory, rng=rng)

    def feed(self, data: bytes) -> None:
        self._count += 1
        if self._count % _ENDPOINT_INPUTS == 0:
            self._endpoint = self._make()
        self.now += 0.001
        got = must_not_raise(self._endpoint.receive_datagram, data, CLIENT_ADDR, self.now)
        conn = getattr(got, "connection", None)
        if conn is not None:
            must_not_raise(conn.datagrams_to_send, self.now)


def _packet() -> Callable[[bytes], None]:
    endpoint = _Endpoint()

    def one(data: bytes) -> None:
        endpoint.feed(data)
        buf = Buffer(data=data)
        while not buf.eof():
            start = buf.tell()
            header = pull_quic_header(buf, host_cid_length=8)
            if not start < header.packet_end <= len(data) or header.pn_offset > header.packet_end:
                raise InvariantError(f"header bounds {start} {header.pn_offset} "
                                     f"{header.packet_end} of {len(data)}")
            if header.packet_type == PACKET_TYPE_RETRY and header.version == QUIC_VERSION_1:
                retry_integrity_tag_valid(header, data[start:header.packet_end], FIXED_DCID)
            buf.seek(header.packet_end)

    return one


def _keys(selector: int) -> tuple[int, CryptoContext | CryptoPair, CryptoContext | CryptoPair]:
    """(space, sender, receiver) for a selector byte."""
    space = selector & 3
    if space in (0, 3):
        send, recv = CryptoPair(), CryptoPair()
        send.setup_initial(FIXED_DCID, is_client=True, version=QUIC_VERSION_1)
        recv.setup_initial(FIXED_DCID, is_client=False, version=QUIC_VERSION_1)
        return 0, send, recv
    suite = _SUITES[(selector >> 4) % 3]
    secret = bytes(range(32)) if suite != 0x1302 else bytes(range(48))
    ctx_send, ctx_recv = CryptoContext(), CryptoContext()
    ctx_send.setup(suite, secret, QUIC_VERSION_1)
    ctx_recv.setup(suite, secret, QUIC_VERSION_1)
    return space, ctx_send, ctx_recv


def _protection() -> Callable[[bytes], None]:
    endpoint = _Endpoint()
    cache: dict[int, tuple[int, CryptoContext | CryptoPair, CryptoContext | CryptoPair]] = {}

    def one(data: bytes) -> None:
        if len(data) < 6:
            return
        selector, tamper = data[0], data[5]
        pn_len = ((selector >> 2) & 3) + 1
        pn = int.from_bytes(data[1:5], "big") % (1 << (8 * pn_len - 1))
        payload = data[6:]
        key = selector & 0x33
        if key not in cache:
            cache[key] = _keys(selector)
        space, send, recv = cache[key]
        if space == 0:
            payload = payload + bytes(max(0, 1162 - len(payload)))  # PADDING up to 1200 bytes
        elif len(payload) < 20:
            payload = payload + bytes(20 - len(payload))
        if space == 2:  # 1-RTT: short header, 4-byte packet number
            pn_len = 4
            header = short_header(FIXED_DCID, 0, pn)
        else:
            ptype = 0 if space == 0 else 2  # Initial / Handshake
            header = long_header(ptype, QUIC_VERSION_1, FIXED_DCID, b"\x01" * 8, b"",
                                 pn_len + len(payload) + 16, pn, pn_len)
        packet = bytearray(send.encrypt_packet(header, payload, pn))
        pn_offset = len(header) - pn_len
        if tamper:
            pos = (tamper * 131 + pn) % len(packet)
            packet[pos] ^= 1 << (tamper % 8)
            try:
                recv.decrypt_packet(bytes(packet), pn_offset, 0)
            except CryptoError:
                return
            raise InvariantError(f"a packet with bit {tamper % 8} of byte {pos} flipped opened")
        plain_header, opened, got_pn = recv.decrypt_packet(bytes(packet), pn_offset, 0)
        if opened != payload or got_pn != pn or plain_header != header:
            raise InvariantError("protection did not round-trip")
        if space == 0:
            endpoint.feed(bytes(packet))

    return one


def _frames() -> Callable[[bytes], None]:
    snapshot = EstablishedPair(seed=1).snapshot()

    def one(data: bytes) -> None:
        if not data:
            return
        pair = EstablishedPair.restore(snapshot)  # the same established pair for every input
        direction = "to_client" if data[0] & 1 else "to_server"
        for payload in split_records(data[1:], limit=8):
            must_not_raise(pair.deliver, direction, pair.forge(direction, payload))
        must_not_raise(pair.drain_events)

    return one


def _transport_params() -> Callable[[bytes], None]:
    def one(data: bytes) -> None:
        if not data:
            return
        from_server = bool(data[0] & 1)
        body = data[1:]
        pull_parameter_list(body)
        params = pull_transport_parameters(Buffer(data=body), from_server=from_server)
        validate_transport_parameters(params)
        out = Buffer(capacity=4 * len(body) + 1024)
        push_transport_parameters(out, params)
        again = pull_transport_parameters(Buffer(data=out.data), from_server=from_server)
        if again != params:
            raise InvariantError("transport parameters did not round-trip")

    return one


TARGETS = (
    Target("packet", "datagram headers and coalescing; then a server endpoint's receive path",
           _packet, (MalformedPacketError,)),
    Target("protection", "packet protection removal with valid keys (Initial, Handshake, 1-RTT)",
           _protection, (CryptoError, MalformedPacketError)),
    Target("frames", "1-RTT frame payloads through the real connection (established pair)",
           _frames, ()),
    Target("transport-params", "transport parameters: parse, validate, re-encode",
           _transport_params, (QuicConnectionError,)),
)
