"""The send path: :class:`PacketAssembler` builds packets and datagrams (RFC 9000 §12.2, §13).

``build_datagrams(now, ...)`` fills datagrams space by space (Initial, Handshake, 1-RTT),
coalescing packets, within the congestion window, the pacer and the anti-amplification limit; it
asks each space's ACK state, CRYPTO stream and :class:`~.spaces.OwedFrames` record, then the
stream manager, for frames within the packet's byte budget. Every frame registers a delivery
callback ``(handler, args)`` on its packet; recovery calls it on ACK or loss, and a lost frame's
callback owes it again. The client's first Initial flight may follow a planned layout
(:mod:`~quicreality.quic.initial_layout`); a server's first flight may follow a shape
(:class:`FlightShaping`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Final

from ...qlog.sink import QlogSink, ack_frame, crypto_frame, stream_frame
from ...wire.buffer import Buffer
from .. import events, initial_layout
from .. import frames as f
from ..config import QuicConfiguration
from ..crypto import SAMPLE_OFFSET, CryptoPair
from ..events import QuicEvent
from ..flight_shape import FlightShaping, ShapedDatagram, complete_datagram
from ..packet import (
    MIN_INITIAL_DATAGRAM_SIZE,
    PACKET_TYPE_HANDSHAKE,
    PACKET_TYPE_INITIAL,
    PACKET_TYPE_ONE_RTT,
    PACKET_TYPE_ZERO_RTT,
    packet_number_length,
)
from ..packet_builder import (
    AEAD_TAG_SIZE,
    header_size,
    len_uint_var,
    seal_packet,
)
from ..recovery.congestion.base import CongestionController
from ..recovery.loss import (
    SPACE_APPLICATION,
    SPACE_HANDSHAKE,
    SPACE_INITIAL,
    DeliveryHandler,
    LossRecovery,
    SentPacket,
)
from ..recovery.pacer import Pacer
from ..streams import QuicStream
from .cids import ConnectionIdEntry, HandshakeIds, HostConnectionIds, PeerConnectionIds
from .closing import close_datagram
from .datagrams import DatagramQueues
from .early_data import ZERO_RTT_QLOG_TYPE, EarlyData
from .ecn import EcnValidator
from .path import NetworkPath
from .pmtud import MtuProber, PathMtuDiscovery
from .pn_skip import PacketNumberSkipper
from .spaces import MAX_ACK_RANGES, OwedFrames, PacketSpace
from .streams import StreamManager
from .versions import ConnectionVersions

#: Long/short header packet type of each packet number space.
_PACKET_TYPES: Final = (PACKET_TYPE_INITIAL, PACKET_TYPE_HANDSHAKE, PACKET_TYPE_ONE_RTT)
_QLOG_TYPES: Final = ("initial", "handshake", "1RTT")
#: Smallest payload worth starting a packet for.
_MIN_PACKET_PAYLOAD: Final = 24
#: Upper bound on datagrams produced per call, so the edge interleaves receiving.
MAX_DATAGRAMS_PER_CALL: Final = 64
#: Smallest datagram worth sending on an amplification-limited 1-RTT path (a PATH_CHALLENGE
#: packet: header, frame and AEAD tag); during the handshake the floor is 1200 bytes.
_MIN_PROBE_DATAGRAM: Final = 64


class _PacketDraft:
    """A packet being filled: payload buffer plus metadata."""

    __slots__ = ("space_id", "buf", "handlers", "ack_eliciting", "in_flight", "header_size",
                 "frames", "mtu_probe", "path_probe", "pn_length", "ack_ranges", "zero_rtt")

    def __init__(self, space_id: int, capacity: int, header: tuple[int, int], want_frames: bool,
                 zero_rtt: bool = False):
        header_size, self.pn_length = header
        self.zero_rtt = zero_rtt
        self.space_id = space_id
        self.buf = Buffer(capacity=capacity)
        self.handlers: list[tuple[DeliveryHandler, tuple[Any, ...]]] = []
        self.ack_eliciting = False
        self.in_flight = False
        self.header_size = header_size
        self.frames: list[dict[str, Any]] | None = [] if want_frames else None
        #: carries PATH_CHALLENGE or PATH_RESPONSE: the datagram is expanded (RFC 9000 §8.2.1)
        self.path_probe = False
        self.mtu_probe = False  # a DPLPMTUD probe (connection/pmtud.py)
        self.ack_ranges = 0  # ranges of the ACK frame it carries (0: none)


class PacketAssembler:
    """Builds the connection's packets from what its components owe (see the module docstring).

    State of its own: the PTO probes owed (:meth:`arm_probe`), the pacing wait
    (:attr:`pacing_until`), the datagram size limit, the first-flight plan or shape.
    """

    __slots__ = ("_ack_delay_exponent", "_cc", "_cryptos", "_datagrams", "_discard_space", "_chaos", "_early",
                 "_ecn", "_events", "_host_cids", "_ids", "_initial_plan", "_initial_size", "_is_client",
                 "_pacer", "_path", "_peer_cids", "_probe_count", "_probe_space", "_prober", "_qlog",
                 "_qlog_frames", "_recovery", "_rng", "_shaper", "_spaces", "_streams", "_versions",
                 "pacing_until", "peer_max_udp_payload_size", "pmtud")

    def __init__(self, config: QuicConfiguration, *, is_client: bool,
                 versions: ConnectionVersions,
                 initial_plan: initial_layout.LayoutProfile | None, spaces: list[PacketSpace],
                 cryptos: list[CryptoPair], recovery: LossRecovery, cc: CongestionController,
                 pacer: Pacer, streams: StreamManager, host_cids: HostConnectionIds,
                 peer_cids: PeerConnectionIds, ids: HandshakeIds, path: NetworkPath,
                 events: deque[QuicEvent], datagrams: DatagramQueues, qlog: QlogSink,
                 discard_space: Callable[[int], None], ecn: EcnValidator,
                 early: EarlyData) -> None:
        """``discard_space(space_id)`` drops a space's keys (the client's first Handshake
        packet discards the Initial space, RFC 9001 §4.9.1); ``early`` holds the 0-RTT key the
        client sends application data with until it has 1-RTT keys."""
        self._early = early
        self._is_client = is_client
        self._rng = config.rng
        self._ack_delay_exponent = config.ack_delay_exponent
        self._shaper: FlightShaping | None = None if is_client else config.flight_shape
        self._versions = versions
        self._initial_plan = initial_plan
        #: a chrome client's layout: its retransmitted hello-only Initials are chaos-shaped too
        self._chaos = initial_plan if initial_plan is not None and initial_plan.chaos else None
        #: handshake-phase datagram size (RFC 9000 §14.1: at least 1200; Chromium pads to 1250)
        self._initial_size = self._chaos.datagram_size if self._chaos else MIN_INITIAL_DATAGRAM_SIZE
        self._spaces = spaces
        self._cryptos = cryptos
        self._recovery = recovery
        self._cc = cc
        self._pacer = pacer
        self._streams = streams
        self._host_cids = host_cids
        self._peer_cids = peer_cids
        self._ids = ids
        self._path = path
        self._events = events
        self._datagrams = datagrams
        self._qlog = qlog
        self._qlog_frames = qlog.wants_frames
        self._discard_space = discard_space
        self._ecn = ecn
        self._probe_space: int | None = None
        self._probe_count = 0
        #: when the pacer lets the next packet go, if it is holding one back
        self.pacing_until: float | None = None
        #: DPLPMTUD: the datagram size once the handshake is confirmed, up to our cap
        self.pmtud = PathMtuDiscovery(cap=config.max_datagram_size)
        self._prober = MtuProber(self.pmtud, recovery=recovery, cc=cc, path=path, qlog=qlog,
                                 build=self._seal_mtu_probe)
        #: the peer's max_udp_payload_size (RFC 9000 §18.2), once known
        self.peer_max_udp_payload_size: int | None = None

    # ----------------------------------------------------------- control

    def apply_peer_max_udp_payload_size(self, size: int | None) -> None:
        """The peer's max_udp_payload_size caps our datagrams (RFC 9000 §18.2)."""
        self.peer_max_udp_payload_size = size
        self.pmtud.apply_peer_limit(size)

    def arm_probe(self, space_id: int) -> None:
        """The PTO fired (RFC 9002 §6.2.4): send two ack-eliciting probes in ``space_id``."""
        self._probe_space = space_id
        self._probe_count = 2

    def cancel_probe(self, space_id: int) -> None:
        """``space_id`` was discarded: probes owed there are dropped."""
        if self._probe_space == space_id:
            self._probe_space = None
            self._probe_count = 0

    def on_timer(self, now: float) -> None:
        """The pacing wait is over once ``now`` reaches it."""
        if self.pacing_until is not None and now >= self.pacing_until:
            self.pacing_until = None

    # --------------------------------------------------------- send path

    def build_datagrams(self, now: float, *, handshake_confirmed: bool) -> list[bytes]:
        """Every datagram that may be sent at ``now`` (at most :data:`MAX_DATAGRAMS_PER_CALL`)."""
        out: list[bytes] = []
        path = self._path
        self._ecn.begin_pass(now)  # one codepoint for every datagram of this pass
        if self._initial_plan is not None:
            for planned in self.client_initial_flight(now):
                path.bytes_sent += len(planned)
                out.append(planned)
        max_size = self.pmtud.datagram_size if handshake_confirmed else self._initial_size
        self._prober.send(now, out, handshake_confirmed)
        while len(out) < MAX_DATAGRAMS_PER_CALL:
            data = self._build_datagram(now, max_size)
            if not data:
                # Stopped with room in the window and no pacing wait: nothing left to send.
                self._recovery.set_app_limited(
                    self.pacing_until is None
                    and self._recovery.bytes_in_flight + self.pmtud.datagram_size
                    <= self._cc.congestion_window
                )
                break
            path.bytes_sent += len(data)
            out.append(data)
        return out

    def _build_datagram(self, now: float, max_size: int) -> bytes | None:
        shaper = self._shaper
        step: ShapedDatagram | None = None
        if shaper is not None:
            step = shaper.step()
            if step is None:
                self._shaper = shaper = None  # used up: the send path is unshaped from now on
            else:
                max_size = step.max_size(max_size, self.peer_max_udp_payload_size)
        budget = self._path.send_budget()
        if budget is not None and budget < max_size:
            # RFC 9000 §8.2.1: on a new 1-RTT path a challenge may go out below 1200 bytes.
            if budget < (_MIN_PROBE_DATAGRAM if self._spaces[SPACE_HANDSHAKE].discarded
                         else MIN_INITIAL_DATAGRAM_SIZE):
                return None
            max_size = budget
        drafts: list[_PacketDraft] = []
        used = 0
        pacing_ok = self._pacer_allows(now)
        spaces = self._spaces
        cryptos = self._cryptos
        for space_id in (SPACE_INITIAL, SPACE_HANDSHAKE, SPACE_APPLICATION):
            zero_rtt = space_id == SPACE_APPLICATION and not cryptos[space_id].send.is_valid() \
                and self._early.can_send
            if not (zero_rtt or cryptos[space_id].send.is_valid()) or spaces[space_id].discarded \
                    or (step is not None and space_id not in step.spaces):
                continue
            if step is not None and step.acks_only(space_id):
                draft = self._new_draft(space_id, max(max_size - used, 64))  # _write_ack wants 32
                if draft is not None:
                    self._write_ack(draft, spaces[space_id], now)
                    draft = draft if draft.buf.tell() else None
            else:
                draft = self._fill_packet(space_id, max_size - used, now, pacing_ok, zero_rtt)
            if draft is None:
                continue
            drafts.append(draft)
            used += draft.header_size + draft.buf.tell() + AEAD_TAG_SIZE
        if step is not None and shaper is not None and (drafts or shaper.sent):
            used = complete_datagram(drafts, used, step, shaper, self._new_draft)
        if not drafts:
            return None
        # RFC 9000 §14.1: pad datagrams with ack-eliciting Initial packets (clients: all Initials).
        if used < self._initial_size <= max_size and any(
                d.space_id == SPACE_INITIAL and (self._is_client or d.ack_eliciting) for d in drafts):
            drafts[-1].buf.push_bytes(bytes(self._initial_size - used))
        elif drafts[-1].path_probe and used < min(MIN_INITIAL_DATAGRAM_SIZE, max_size):
            # RFC 9000 §8.2.1/§8.2.2: expanded to 1200 bytes, or as far as the budget allows.
            drafts[-1].buf.push_bytes(bytes(min(MIN_INITIAL_DATAGRAM_SIZE, max_size) - used))
        if self._chaos is not None and len(drafts) == 1 and drafts[0].space_id == SPACE_INITIAL:
            self._chaos_shape(drafts[0], self._chaos)
        out = bytearray()
        for draft in drafts:
            out += self._seal(draft, now, self._peer_cids.current.cid)
            if draft.space_id == SPACE_HANDSHAKE and self._is_client and \
                    not spaces[SPACE_INITIAL].discarded:
                self._discard_space(SPACE_INITIAL)  # RFC 9001 §4.9.1
        if shaper is not None and drafts:
            shaper.advance(len(out))
        return bytes(out)

    def _seal(self, draft: _PacketDraft, now: float, dcid: bytes) -> bytes:
        """Protect ``draft`` at its space's next packet number and hand it to recovery."""
        space_id = draft.space_id
        space = self._spaces[space_id]
        short = SAMPLE_OFFSET - draft.pn_length - draft.buf.tell()
        if short > 0:  # the HP sample needs bytes past the packet number (RFC 9001 §5.4.2)
            draft.buf.push_bytes(bytes(short))
        pn = space.next_pn
        if space_id == SPACE_APPLICATION and not draft.zero_rtt:  # RFC 9000 §21.4: skip some
            if space.skip is None:  # keyed by the 1-RTT secret, so a peer cannot predict it
                space.skip = PacketNumberSkipper(self._cryptos[space_id].send.secret or b"")
            pn = space.skip.allocate(pn)
        space.next_pn = pn + 1
        ptype = PACKET_TYPE_ZERO_RTT if draft.zero_rtt else _PACKET_TYPES[space_id]
        qlog_type = ZERO_RTT_QLOG_TYPE if draft.zero_rtt else _QLOG_TYPES[space_id]
        packet = seal_packet(
            self._early.crypto if draft.zero_rtt else self._cryptos[space_id], ptype,
            version=self._versions.current, dcid=dcid, scid=self._host_cids.entries[0].cid,
            token=self._ids.retry_token if space_id == SPACE_INITIAL else None,
            packet_number=pn, payload=draft.buf.data, packet_number_length=draft.pn_length,
        )
        self._recovery.on_packet_sent(SentPacket(
            pn, space_id, now, len(packet), draft.ack_eliciting,
            draft.ack_eliciting or draft.in_flight, draft.handlers, qlog_type, mtu_probe=draft.mtu_probe))
        self._ecn.on_packet_sent(space_id, pn)
        if draft.frames is not None:
            self._qlog.packet_sent(now, qlog_type, pn, len(packet), draft.frames)
        return packet

    def _seal_mtu_probe(self, now: float, size: int) -> bytes | None:
        """A DPLPMTUD probe: PING + PADDING to ``size`` bytes (:class:`.pmtud.MtuProber`)."""
        draft = self._new_draft(SPACE_APPLICATION, size - self._header(SPACE_APPLICATION)[0] - AEAD_TAG_SIZE)
        if draft is None:
            return None
        f.push_ping_frame(draft.buf)
        draft.buf.push_bytes(bytes(draft.buf.capacity - 1))
        draft.ack_eliciting = draft.mtu_probe = True
        draft.handlers.append((self.pmtud.on_probe_delivery, (size,)))  # qlog: frames [] (PADDING)
        return self._seal(draft, now, self._peer_cids.current.cid)

    def build_path_probe(self, now: float, response: bytes, challenge: bytes, size: int,
                         dcid: bytes) -> bytes:
        """A datagram of one 1-RTT packet with PATH_RESPONSE(``response``) and our own
        PATH_CHALLENGE(``challenge``), padded to ``size`` bytes, for the address a probe came
        from (RFC 9000 §8.2.2); b"" without 1-RTT keys."""
        draft = self._new_draft(SPACE_APPLICATION, size)
        if draft is None:
            return b""
        draft.buf = Buffer(capacity=max(size - draft.header_size - AEAD_TAG_SIZE, 32))
        f.push_path_challenge_frame(draft.buf, challenge)
        f.push_path_response_frame(draft.buf, response)
        draft.ack_eliciting = True
        draft.buf.push_bytes(bytes(max(0, draft.buf.capacity - draft.buf.tell())))
        if draft.frames is not None:
            draft.frames += [{"frame_type": "path_challenge", "data": challenge.hex()},
                             {"frame_type": "path_response", "data": response.hex()}]
        return self._seal(draft, now, dcid)

    def client_initial_flight(self, now: float) -> list[bytes]:
        """The client's first Initial flight as ``config.initial_layout`` plans it (once).

        The one place the first flight is laid out (:mod:`~quicreality.quic.initial_layout`): the
        default "minimal" layout has no plan and the normal path below sends the hello;
        retransmissions always take the normal path.
        """
        profile, self._initial_plan = self._initial_plan, None
        space = self._spaces[SPACE_INITIAL]
        crypto = space.crypto
        if profile is None or space.next_pn or crypto.next_send_offset() or \
                (frame := crypto.get_frame(1 << 62, 1 << 62)) is None:
            return []
        hello, dcid, scid = frame[1], self._peer_cids.current.cid, self._host_cids.entries[0].cid
        token = self._ids.retry_token
        plan = initial_layout.plan_initial_flight(
            hello, self._rng, profile, dcid_length=len(dcid), scid_length=len(scid),
            token_length=len(token))
        out = []
        for packet in plan.packets:
            pn = packet.packet_number
            data = seal_packet(
                self._cryptos[SPACE_INITIAL], PACKET_TYPE_INITIAL, version=self._versions.current,
                dcid=dcid, scid=scid, token=token, packet_number=pn,
                payload=initial_layout.encode_payload(packet, hello),
                packet_number_length=packet.packet_number_length)
            handlers: list[tuple[DeliveryHandler, tuple[Any, ...]]] = [
                (_on_crypto_delivery, (crypto, frag.offset, frag.length))
                        for frag in packet.crypto_fragments]
            self._recovery.on_packet_sent(SentPacket(pn, SPACE_INITIAL, now, len(data), True,
                                                     True, handlers, "initial"))
            self._ecn.on_packet_sent(SPACE_INITIAL, pn)
            if self._qlog_frames:
                self._qlog.packet_sent(now, "initial", pn, len(data),
                                       initial_layout.describe_frames(packet))
            out.append(data)
        space.next_pn = plan.next_packet_number
        return out

    def _chaos_shape(self, draft: _PacketDraft, profile: initial_layout.LayoutProfile) -> None:
        """Re-lay a lone hello-only Initial as Chromium does (``initial_layout.chaos_retransmission``)."""
        room = profile.datagram_size - draft.header_size - AEAD_TAG_SIZE
        shaped = initial_layout.chaos_retransmission(draft.buf.data, room, self._rng, profile)
        if shaped is None:
            return
        payload, planned = shaped
        draft.buf = Buffer(capacity=len(payload))
        draft.buf.push_bytes(payload)
        if draft.frames is not None:
            draft.frames = list(initial_layout.describe_frames(planned))

    def _new_draft(self, space_id: int, capacity: int) -> _PacketDraft | None:
        """An empty packet for ``space_id``; None when that space has no keys (any more)."""
        if not self._cryptos[space_id].send.is_valid() or self._spaces[space_id].discarded:
            return None
        return _PacketDraft(space_id, capacity, self._header(space_id), self._qlog_frames)

    def _header(self, space_id: int, ptype: int | None = None) -> tuple[int, int]:
        """``(header size, packet-number length)`` of the space's next packet: the shortest
        number the peer can decode (RFC 9000 §17.1, §A.2); ``ptype`` overrides the space's type."""
        largest = self._recovery.spaces[space_id].largest_acked
        pn_length = packet_number_length(self._spaces[space_id].next_pn,
                                         largest if largest >= 0 else None)
        return header_size(_PACKET_TYPES[space_id] if ptype is None else ptype,
                           len(self._peer_cids.current.cid),
                           len(self._host_cids.entries[0].cid),
                           len(self._ids.retry_token) if space_id == SPACE_INITIAL else 0,
                           pn_length), pn_length

    def _pacer_allows(self, now: float) -> bool:
        t = self._pacer.next_send_time(now)
        if t is None or t <= now:
            self.pacing_until = None
            return True
        self.pacing_until = t
        return False

    def _fill_packet(self, space_id: int, room: int, now: float, pacing_ok: bool,
                     zero_rtt: bool = False) -> _PacketDraft | None:
        """One packet's frames; a 0-RTT packet carries only what 0-RTT may (RFC 9000 §12.4:
        no ACK or CRYPTO; before the handshake no other frame is owed)."""
        header = self._header(SPACE_APPLICATION, PACKET_TYPE_ZERO_RTT) if zero_rtt \
            else self._header(space_id)
        capacity = room - header[0] - AEAD_TAG_SIZE
        if capacity < _MIN_PACKET_PAYLOAD:
            return None
        space = self._spaces[space_id]
        probe = self._probe_space == space_id and self._probe_count > 0
        cc_ok = probe or (
            self._recovery.bytes_in_flight + room <= self._cc.congestion_window and pacing_ok
        )
        draft = _PacketDraft(space_id, capacity, header, self._qlog_frames, zero_rtt)
        buf = draft.buf
        if zero_rtt:
            if cc_ok:
                self._write_stream_frames(draft)
            return draft if buf.tell() else None
        if space.owed.ack or (space.received and (space.ack_eliciting_unacked or
                                                     space.ack_deadline is not None) and cc_ok
                                and self._has_app_data(space_id)):
            self._write_ack(draft, space, now)
        if space_id == SPACE_APPLICATION and (self._path.challenge_owed or space.owed.path_responses):
            self._write_path_frames(draft, space.owed)
        if cc_ok:
            crypto = space.crypto
            while crypto.has_data_to_send() and buf.capacity - buf.tell() > 16:
                if not self._write_crypto(draft, crypto):
                    break
            if space_id == SPACE_APPLICATION:
                self._write_app_frames(draft, space.owed)
                if draft.ack_ranges > 1 and not draft.ack_eliciting and buf.capacity - buf.tell() >= 1 \
                        and now - self._recovery.spaces[space_id].time_of_last_ack_eliciting \
                        >= self._recovery.rtt.smoothed_rtt:
                    # RFC 9000 §13.2.4: an endpoint that only sends ACKs (a download's client)
                    # makes one about once per round trip ack-eliciting while its ACK frames
                    # carry gaps, so they get acknowledged and their old ranges dropped (a
                    # one-range ACK has nothing to drop: two idle endpoints do not ping-pong)
                    f.push_ping_frame(buf)
                    draft.ack_eliciting = True
                    if draft.frames is not None:
                        draft.frames.append({"frame_type": "ping"})
            if probe and not draft.ack_eliciting and buf.capacity - buf.tell() >= 1:
                f.push_ping_frame(buf)  # RFC 9002 §6.2.4
                draft.ack_eliciting = True
                if draft.frames is not None:
                    draft.frames.append({"frame_type": "ping"})
            if probe and draft.ack_eliciting:
                self._probe_count -= 1
                if self._probe_count <= 0:
                    self._probe_space = None
        if buf.tell() == 0:
            return None
        return draft

    def _has_app_data(self, space_id: int) -> bool:
        space = self._spaces[space_id]
        if space_id != SPACE_APPLICATION:
            return space.crypto.has_data_to_send()
        return bool(self._streams.send_queue) or space.owed.handshake_done

    def _write_ack(self, draft: _PacketDraft, space: PacketSpace, now: float) -> None:
        """ACK frame (RFC 9000 §19.3), largest range first."""
        ranges = space.received
        if not ranges:
            return
        buf = draft.buf
        if buf.capacity - buf.tell() < 32:
            return
        delay = 0
        if draft.space_id == SPACE_APPLICATION:
            delay = int((now - space.largest_received_time) * 1_000_000) >> \
                self._ack_delay_exponent
            delay = max(delay, 0)
        # RFC 9000 §13.2.4: ranges the peer has seen acknowledged by an acknowledged ACK frame
        # are left out (a steady flow's ACKs carry the last round trips' gaps); MAX_ACK_RANGES caps
        written = f.push_ack_frame(buf, ranges, delay, space.ecn_counts,
                                   max_ranges=min(1 + max(0, (buf.remaining() - 24) // 8),
                                                  space.ack_ranges_above_floor(), MAX_ACK_RANGES))
        if not written:
            return
        space.on_ack_sent()
        draft.handlers.append((space.on_ack_frame_delivered, (ranges[-1].stop - 1,)))
        draft.ack_ranges = written
        if draft.frames is not None:
            n = len(ranges)
            draft.frames.append(ack_frame(ranges if written == n else ranges[n - written:],
                                          (delay << self._ack_delay_exponent) / 1_000_000,
                                          space.ecn_counts))

    def _write_crypto(self, draft: _PacketDraft, crypto: QuicStream) -> bool:
        buf = draft.buf
        room = buf.capacity - buf.tell() - 1 - 8 - 4
        offset = crypto.next_send_offset()
        frame = crypto.get_frame(room, 1 << 62)
        if frame is None:
            return False
        offset, data, _ = frame
        f.push_crypto_frame_header(buf, offset, len(data))
        buf.push_bytes(data)
        draft.ack_eliciting = True
        draft.handlers.append((_on_crypto_delivery, (crypto, offset, len(data))))
        if draft.frames is not None:
            draft.frames.append(crypto_frame(offset, len(data)))
        return True

    def _write_path_frames(self, draft: _PacketDraft, owed: OwedFrames) -> None:
        """PATH_CHALLENGE and PATH_RESPONSE (RFC 9000 §8.2), outside congestion control: they
        validate the path the window will be measured on."""
        buf = draft.buf
        path = self._path
        if path.challenge_owed and buf.capacity - buf.tell() >= 9:
            data = path.take_challenge()
            f.push_path_challenge_frame(buf, data)
            draft.ack_eliciting = draft.path_probe = True
            draft.handlers.append((path.on_challenge_delivery, (data,)))
            if draft.frames is not None:
                draft.frames.append({"frame_type": "path_challenge", "data": data.hex()})
        while owed.path_responses and buf.capacity - buf.tell() >= 9:
            data = owed.path_responses.pop(0)
            f.push_path_response_frame(buf, data)
            draft.ack_eliciting = draft.path_probe = True
            if draft.frames is not None:
                draft.frames.append({"frame_type": "path_response", "data": data.hex()})

    def _write_app_frames(self, draft: _PacketDraft, owed: OwedFrames) -> None:
        buf = draft.buf
        frames = draft.frames
        mgr = self._streams
        if owed.handshake_done and buf.capacity - buf.tell() >= 1:
            f.push_handshake_done_frame(buf)
            owed.handshake_done = False
            draft.ack_eliciting = True
            draft.handlers.append((self._on_handshake_done_delivery, ()))
            if frames is not None:
                frames.append({"frame_type": "handshake_done"})
        if owed.max_data and buf.capacity - buf.tell() >= 9:
            f.push_max_data_frame(buf, mgr.local_max_data)
            owed.max_data = False
            draft.ack_eliciting = True
            draft.handlers.append((self._on_max_data_delivery, ()))
            if frames is not None:
                frames.append({"frame_type": "max_data", "maximum": mgr.local_max_data})
        for idx in (0, 1):
            if owed.max_streams[idx] and buf.capacity - buf.tell() >= 9:
                f.push_max_streams_frame(buf, bool(idx), mgr.local_max_streams[idx])
                owed.max_streams[idx] = False
                draft.ack_eliciting = True
                draft.handlers.append((self._on_max_streams_delivery, (idx,)))
        while owed.new_cids and buf.capacity - buf.tell() >= 48:
            entry = owed.new_cids.pop(0)
            if entry.retired:
                continue
            self._host_cids.on_announced(entry)
            f.push_new_connection_id_frame(buf, entry.sequence_number, 0, entry.cid,
                                           entry.stateless_reset_token)
            draft.ack_eliciting = True
            draft.handlers.append((self._on_ncid_delivery, (entry,)))
        retire = owed.retire_cids
        while retire and buf.capacity - buf.tell() >= 9:
            seq = retire.pop(0)
            self._peer_cids.on_retire_sent(seq)
            f.push_retire_connection_id_frame(buf, seq)
            draft.ack_eliciting = True
            draft.handlers.append((self._peer_cids.on_retire_delivery, (seq,)))
        while owed.pings and buf.capacity - buf.tell() >= 1:
            uid = owed.pings.pop(0)
            f.push_ping_frame(buf)
            draft.ack_eliciting = True
            draft.handlers.append((self._on_ping_delivery, (uid,)))
        while self._datagrams:
            data = self._datagrams.first()
            need = f.datagram_frame_size(len(data))
            if buf.capacity - buf.tell() < need:
                if buf.tell() == 0 and need > buf.capacity:
                    self._datagrams.drop_first()  # can never fit: drop (RFC 9221 §5)
                    continue
                break
            self._datagrams.take_first()
            f.push_datagram_frame(buf, data)
            draft.ack_eliciting = True
            draft.in_flight = True
            if frames is not None:
                frames.append({"frame_type": "datagram", "length": len(data)})
        self._write_stream_frames(draft)

    def _write_stream_frames(self, draft: _PacketDraft) -> None:
        buf = draft.buf
        mgr = self._streams
        queue = mgr.send_queue
        if not queue:
            return
        handlers = draft.handlers
        frames = draft.frames
        for stream_id in list(queue):
            stream = queue.get(stream_id)
            if stream is None:
                continue
            room = buf.capacity - buf.tell()
            if room < 32:
                break
            if stream.stop_sending_pending:
                f.push_stop_sending_frame(buf, stream_id, stream.stop_sending_error_code)
                stream.stop_sending_pending = False
                handlers.append((self._streams.on_stop_sending_delivery, (stream,)))
                draft.ack_eliciting = True
                room = buf.capacity - buf.tell()
            if stream.reset_pending:
                # RFC 9000 §4.5: the final size is the credit used, not what is queued.
                f.push_reset_stream_frame(buf, stream_id, stream.reset_error_code,
                                          stream.send_highest)
                stream.reset_pending = False
                handlers.append((self._streams.on_reset_delivery, (stream,)))
                draft.ack_eliciting = True
                del queue[stream_id]
                continue
            if stream.max_stream_data_pending and room >= 20:
                f.push_max_stream_data_frame(buf, stream_id, stream.local_max_stream_data)
                stream.max_stream_data_pending = False
                handlers.append((self._streams.on_max_stream_data_delivery, (stream,)))
                draft.ack_eliciting = True
                room = buf.capacity - buf.tell()
            if not stream.has_data_to_send():
                del queue[stream_id]
                continue
            if mgr.is_local_stream(stream_id):
                idx = 1 if stream_id & 2 else 0
                if (stream_id >> 2) >= mgr.peer_max_streams[idx]:
                    continue  # blocked by the peer's stream limit
            credit = mgr.peer_max_data - mgr.data_sent
            highest = stream.send_highest
            max_offset = min(stream.peer_max_stream_data, highest + max(credit, 0))
            offset = stream.next_send_offset()
            overhead = 1 + len_uint_var(stream_id) + len_uint_var(offset) + 2
            frame = stream.get_frame(room - overhead, max_offset)
            if frame is None:
                continue
            offset, data, fin = frame
            length = len(data)
            f.push_stream_frame_header(buf, stream_id, offset, length, fin)
            buf.push_bytes(data)
            grown = stream.send_highest - highest
            if grown > 0:
                mgr.data_sent += grown
            handlers.append((self._streams.on_stream_frame_delivery, (stream, offset, length, fin)))
            draft.ack_eliciting = True
            if frames is not None:
                frames.append(stream_frame(stream_id, offset, length, fin))
            # Round robin: a stream that still has data goes to the back of the queue.
            del queue[stream_id]
            if stream.has_data_to_send():
                queue[stream_id] = stream

    def _on_handshake_done_delivery(self, delivered: bool) -> None:
        if not delivered:
            self._spaces[SPACE_APPLICATION].owed.handshake_done = True

    def _on_max_data_delivery(self, delivered: bool) -> None:
        if not delivered:
            self._spaces[SPACE_APPLICATION].owed.max_data = True

    def _on_max_streams_delivery(self, delivered: bool, idx: int) -> None:
        if not delivered:
            self._spaces[SPACE_APPLICATION].owed.max_streams[idx] = True

    def _on_ncid_delivery(self, delivered: bool, entry: ConnectionIdEntry) -> None:
        if not delivered and entry in self._host_cids.entries:
            self._spaces[SPACE_APPLICATION].owed.new_cids.append(entry)

    def _on_ping_delivery(self, delivered: bool, uid: int) -> None:
        if delivered:
            self._events.append(events.PingAcknowledged(uid=uid))
        else:
            self._spaces[SPACE_APPLICATION].owed.pings.append(uid)

    def build_close_datagram(self, close_frame: tuple[int, int | None, str, bool]) -> bytes:
        """CONNECTION_CLOSE in every space with keys, within the anti-amplification budget
        (:func:`.closing.close_datagram`)."""
        return close_datagram(close_frame, is_client=self._is_client, cryptos=self._cryptos,
                              spaces=self._spaces, path=self._path, versions=self._versions,
                              host_cids=self._host_cids, peer_cids=self._peer_cids, ids=self._ids)


def _on_crypto_delivery(delivered: bool, crypto: QuicStream, offset: int, length: int) -> None:
    """CRYPTO data acknowledged, or lost: the stream re-queues the range (RFC 9000 §13.3)."""
    if delivered:
        crypto.on_frame_acked(offset, length, False)
    else:
        crypto.on_frame_lost(offset, length, False)
