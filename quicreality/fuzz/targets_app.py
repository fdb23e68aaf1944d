"""Fuzz targets above QUIC: HTTP/3 and QPACK, the relay preface, the REALITY gate.

* ``h3``: ``[role][records...]``, each record ``[stream][flags][data]`` delivered to an
  :class:`~quicreality.h3.connection.H3Connection` as QUIC would (in order, nothing after a FIN
  or a reset). Its ``handle_event`` turns every peer violation into a connection close, so
  nothing may escape it. Streams: request streams 0, 4, 8..., the peer's unidirectional streams
  (control, QPACK encoder/decoder, push, unknown: the first bytes say which).
* ``relay-preface``: ``[mode][records...]``: the relay stream's preface reader fed in pieces
  (:class:`~quicreality.relay.protocol.PrefaceReader`, documented error
  :class:`~quicreality.relay.protocol.PrefaceError`; what parses must re-encode to itself), the
  status reader, and relay datagrams (both documented as ``ValueError``).
* ``reality-gate``: ``[records...]``, each record ``[pn][flags][frames]`` sealed as one client
  Initial (Initial keys of a fixed DCID, padded to 1200 bytes unless flags bit 0) and handed to a
  fresh gated endpoint (:class:`~quicreality.reality.gate.RealityGate`): the ClientHello is
  reassembled across Initials and verified; nothing may raise, timers and events included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..h3.connection import H3Connection
from ..quic.config import QuicConfiguration
from ..quic.crypto import CryptoPair
from ..quic.endpoint import QuicServerEndpoint
from ..quic.events import StreamDataReceived, StreamReset
from ..quic.packet import QUIC_VERSION_1
from ..quic.packet_builder import long_header
from ..reality.cert import RealityIdentity
from ..reality.config import GateLimits, RealityServerConfig
from ..reality.gate import RealityGate
from ..reality.keys import parse_short_id
from ..relay.protocol import (
    PrefaceError,
    PrefaceReader,
    StatusReader,
    decode_datagram,
    encode_preface,
    pull_preface,
    starts_like_preface,
)
from ..wire.buffer import Buffer
from .harness import InvariantError, Target, must_not_raise, split_records
from .pair import WALL, seeded_rng
from .targets_quic import FIXED_DCID

__all__ = ["GATE_DCID_2", "REALITY_PRIVATE", "REALITY_SHORT_ID", "REALITY_SNI", "TARGETS",
           "reality_config"]

# --- h3 ---------------------------------------------------------------------------------------


class _FakeQuic:
    """The part of a QUIC connection HTTP/3 uses; it records nothing it does not need."""

    def __init__(self, is_client: bool) -> None:
        self._next = {False: 0 if is_client else 1, True: 2 if is_client else 3}
        self.closed = False

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        return self._next[is_unidirectional]

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        uni = stream_id & 2 == 2
        if stream_id == self._next[uni]:
            self._next[uni] += 4

    def stream_send_buffered(self, stream_id: int, *, unsent: bool = False) -> int:
        return 0

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        pass

    def stop_stream(self, stream_id: int, error_code: int) -> None:
        pass

    def close(self, error_code: int = 0, frame_type: int | None = None,
              reason_phrase: str = "") -> None:
        self.closed = True


_REQUEST = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost"),
            (b":path", b"/")]


def _h3() -> Callable[[bytes], None]:
    def one(data: bytes) -> None:
        if not data:
            return
        is_client = bool(data[0] & 1)
        h3 = H3Connection(_FakeQuic(is_client), is_client=is_client)
        if is_client:
            for sid in (0, 4, 8, 12):
                h3.send_headers(sid, _REQUEST, end_stream=True)
        ended: set[int] = set()
        for record in split_records(data[1:], limit=32):
            if len(record) < 2:
                continue
            sel, flags, body = record[0], record[1], record[2:]
            index = (sel >> 2) & 3
            if sel & 1:  # the peer's unidirectional streams
                sid = 4 * index + (3 if is_client else 2)
            else:
                sid = 4 * index
            if sid in ended:
                continue
            if flags & 2:
                ended.add(sid)
                must_not_raise(h3.handle_event, StreamReset(sid, int.from_bytes(body[:2], "big")))
                continue
            fin = bool(flags & 1)
            if fin:
                ended.add(sid)
            must_not_raise(h3.handle_event, StreamDataReceived(sid, bytes(body), fin))

    return one


# --- relay preface ------------------------------------------------------------------------------


def _relay() -> Callable[[bytes], None]:
    def one(data: bytes) -> None:
        if not data:
            return
        mode, records = data[0] % 3, split_records(data[1:], limit=16)
        if mode == 0:
            reader = PrefaceReader()
            joined = b"".join(records)
            starts_like_preface(joined[:16])
            for i, piece in enumerate(records):
                got = reader.feed(piece, end_stream=i == len(records) - 1)
                if isinstance(got, tuple):
                    preface, _rest = got
                    again = pull_preface(Buffer(data=encode_preface(preface)))
                    if again != preface:
                        raise InvariantError("preface did not round-trip")
                    return
            return
        try:
            if mode == 1:
                status = StatusReader()
                for i, piece in enumerate(records):
                    if isinstance(status.feed(piece, end_stream=i == len(records) - 1), tuple):
                        return
            else:
                for piece in records:
                    decode_datagram(piece)
        except PrefaceError:
            raise InvariantError("PrefaceError outside the preface reader") from None
        except ValueError:
            return

    return one


# --- REALITY gate --------------------------------------------------------------------------------

#: The gate's static X25519 key (RFC 7748 §6.1 Alice), SNI and short ID (tests/unit/reality's).
REALITY_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
REALITY_SNI = "www.example.com"
REALITY_SHORT_ID = parse_short_id("0123456789abcdef")
#: A second DCID: a datagram with flags bit 1 starts another connection from the same address.
GATE_DCID_2 = bytes.fromhex("1122334455667788")


def reality_config() -> RealityServerConfig:
    """The fuzzed gate's configuration (default limits)."""
    return RealityServerConfig(
        private_key=REALITY_PRIVATE, server_names=frozenset({REALITY_SNI}),
        short_ids=frozenset({REALITY_SHORT_ID, bytes(8)}), target=("127.0.0.1", 9),
        max_time_diff_ms=60_000, min_client_ver=None, max_client_ver=None, limits=GateLimits())


def _gate() -> Callable[[bytes], None]:
    config = reality_config()
    identity = RealityIdentity.generate(seeded_rng(99))
    keys: dict[bytes, CryptoPair] = {}
    for dcid in (FIXED_DCID, GATE_DCID_2):
        keys[dcid] = CryptoPair()
        keys[dcid].setup_initial(dcid, is_client=True, version=QUIC_VERSION_1)
    scid = b"\x0c" * 8

    def one(data: bytes) -> None:
        gate = RealityGate(config, identity, wall_clock=lambda: WALL)
        rng = seeded_rng(5)

        def factory() -> QuicConfiguration:
            return QuicConfiguration(is_client=False, rng=rng, wall_clock=lambda: WALL)

        endpoint = QuicServerEndpoint(factory, rng=rng, gate=gate)
        now = 0.0
        for record in split_records(data, limit=12):
            if len(record) < 2:
                continue
            pn, flags, payload = record[0], record[1], record[2:]
            dcid = GATE_DCID_2 if flags & 2 else FIXED_DCID
            addr: Any = ("192.0.2.10", 40001 if flags & 4 else 40000)
            if not flags & 1:
                payload = payload + bytes(max(0, 1162 - len(payload)))
            elif len(payload) < 20:
                payload = payload + bytes(20 - len(payload))
            header = long_header(0, QUIC_VERSION_1, dcid, scid, b"", 4 + len(payload) + 16, pn)
            datagram = keys[dcid].encrypt_packet(header, payload, pn)
            now += 0.002 if not flags & 8 else 0.5
            must_not_raise(endpoint.receive_datagram, datagram, addr, now)
            timer = must_not_raise(gate.get_timer)
            if isinstance(timer, float) and timer <= now:
                must_not_raise(gate.handle_timer, now)
        must_not_raise(gate.handle_timer, now + 60.0)
        while must_not_raise(gate.next_event) is not None:
            pass

    return one


TARGETS = (
    Target("h3", "HTTP/3 frames and QPACK through H3Connection.handle_event (both roles)",
           _h3, ()),
    Target("relay-preface", "the relay stream preface, status answer and relay datagrams",
           _relay, (PrefaceError,)),
    Target("reality-gate", "the REALITY gate: ClientHello reassembly across Initials, verify",
           _gate, ()),
)
