"""The client's first Initial flight, planned: packets, packet numbers, frames, datagram sizes.

Theory of operation: the ClientHello is the first thing a QUIC client sends, in CRYPTO frames of
Initial packets (RFC 9000 §17.2.2, §19.6). How it is cut into frames and packets, where PING and
PADDING go, which packet numbers and packet-number lengths are used and how large the datagrams
are is left to the sender, and it is a fingerprint: an observer who removes Initial protection
(the keys follow from the DCID, RFC 9001 §5.2) sees all of it. :func:`plan_initial_flight` takes
the hello bytes, a random source and a :class:`LayoutProfile` and returns an
:class:`InitialFlightPlan`: a pure value that the connection's send path then carries out
(:func:`encode_payload` turns one planned packet into its plaintext payload). Only the first
flight is planned; retransmissions take the normal send path.

Profiles (:data:`PROFILES`):

* ``minimal``: what our send path does on its own: 1200-byte datagrams, packet numbers from 0 in
  1-byte fields (the shortest the peer can decode, RFC 9000 §A.2), the hello in order in one
  CRYPTO frame per packet, PADDING at the end.
* ``chrome``: Chromium 156 as captured on loopback (``docs/data/chrome156-hello.json``, 25
  connections in ``tests/data/fingerprint/chromium-*.pcap`` and a 20-connection rerun, read with
  tshark). Measured, in every connection: two 1250-byte datagrams, one Initial each, packet
  numbers 1 and 2 (0 skipped) with 1- and 2-byte packet-number fields. The hello is split in two
  near-halves: the first packet carries ``(N - 4) // 2`` of its ``N`` bytes, as two ranges, a head
  ``[0, A)`` with ``A`` between 55 and 86 and the tail; the second packet carries the middle
  ``[A, B)``. Inside each packet ("chaos protection") the ranges are cut into 4-12 (first) or
  3-11 (second) CRYPTO frames, 2-10 PING frames are added, the remaining room is spread as
  PADDING runs between the frames, and the frame order is shuffled. We model each of these as a
  distribution drawn from the configuration's random source (:class:`LayoutProfile` holds the
  measured ranges), not as one capture's constants.

Every planned packet obeys RFC 9000: only CRYPTO, PING and PADDING frames (allowed in Initial
packets, §12.4 Table 3), each hello byte in exactly one CRYPTO frame, datagrams of at least 1200
bytes (§14.1), packet numbers increasing (§12.3) and long enough to decode with nothing
acknowledged yet (§17.1), and enough bytes after the packet number for the header-protection
sample (RFC 9001 §5.4.2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..qlog.sink import FrameDict, crypto_frame, padding_frame, simple_frame
from ..wire.buffer import Buffer
from .frames import FrameType, push_crypto_frame_header
from .packet import MIN_INITIAL_DATAGRAM_SIZE
from .packet_builder import AEAD_TAG_SIZE, len_uint_var

#: The profile names a configuration may choose (``QuicConfiguration.initial_layout``).
LAYOUTS: tuple[str, ...] = ("minimal", "chrome")

Rng = Callable[[int], bytes]
T = TypeVar("T")

#: Our long headers always carry a 2-byte Length field (RFC 9000 §17.2, §16).
_LENGTH_FIELD_SIZE = 2
#: RFC 9001 §5.4.2: the sample starts 4 bytes after the packet number's first byte and is 16 long.
_HP_SAMPLE_REACH = 4 + 16


@dataclass(frozen=True, slots=True)
class CryptoFragment:
    """A CRYPTO frame carrying hello bytes ``[offset, offset + length)`` (RFC 9000 §19.6)."""

    offset: int
    length: int

    @property
    def size(self) -> int:
        """Encoded size: type, offset and length varints, data."""
        return 1 + len_uint_var(self.offset) + len_uint_var(self.length) + self.length


@dataclass(frozen=True, slots=True)
class Ping:
    """A PING frame (RFC 9000 §19.2): one byte, makes the packet ack-eliciting."""

    @property
    def size(self) -> int:
        """Encoded size."""
        return 1


@dataclass(frozen=True, slots=True)
class Padding:
    """A run of ``length`` PADDING frames (RFC 9000 §19.1: each is one zero byte)."""

    length: int

    @property
    def size(self) -> int:
        """Encoded size."""
        return self.length


PlannedFrame = CryptoFragment | Ping | Padding


@dataclass(frozen=True, slots=True)
class PlannedPacket:
    """One Initial packet of the flight, alone in its datagram."""

    packet_number: int
    packet_number_length: int
    frames: tuple[PlannedFrame, ...]
    #: UDP payload bytes of the datagram that carries this packet
    datagram_size: int

    @property
    def payload_length(self) -> int:
        """Plaintext payload bytes (the frames), without packet number and AEAD tag."""
        return sum(f.size for f in self.frames)

    @property
    def crypto_fragments(self) -> tuple[CryptoFragment, ...]:
        """The CRYPTO frames, in packet order."""
        return tuple(f for f in self.frames if isinstance(f, CryptoFragment))


@dataclass(frozen=True, slots=True)
class InitialFlightPlan:
    """The first Initial flight: its packets in send order, and what follows them."""

    layout: str
    packets: tuple[PlannedPacket, ...]
    #: the Initial packet number space's next number after the flight
    next_packet_number: int
    #: why the flight looks the way it does, for logs and tests
    reason: str


@dataclass(frozen=True, slots=True)
class LayoutProfile:
    """How a client lays out its first Initial flight. Ranges are inclusive ``(low, high)``."""

    name: str
    #: UDP payload size of every datagram of the flight (RFC 9000 §14.1: at least 1200)
    datagram_size: int
    first_packet_number: int
    #: packet-number field length per packet; the last value repeats
    packet_number_lengths: tuple[int, ...]
    #: client SCID length that goes with the profile (None: the configuration's own)
    scid_length: int | None
    #: False: our plain layout; True: the measured Chrome layout (everything below)
    chaos: bool = False
    #: the fewest packets the hello is spread over
    min_packets: int = 1
    #: bytes the first packet carries fewer than an even share
    first_share_deficit: int = 0
    #: end ``A`` of the first packet's head range ``[0, A)``
    head_end: tuple[int, int] = (0, 0)
    #: CRYPTO frames added per packet by splitting (each split is skipped without room)
    added_crypto_frames: tuple[int, int] = (0, 0)
    #: PING frames added per packet (never more than the spare room)
    ping_frames: tuple[int, int] = (0, 0)


#: The send path's own: the shortest packet-number field with nothing acknowledged (RFC 9000
#: §A.2), 1 byte for the first 127 packets.
MINIMAL = LayoutProfile(name="minimal", datagram_size=MIN_INITIAL_DATAGRAM_SIZE,
                        first_packet_number=0, packet_number_lengths=(1,), scid_length=None)
CHROME = LayoutProfile(
    name="chrome", datagram_size=1250, first_packet_number=1, packet_number_lengths=(1, 2),
    scid_length=0, chaos=True, min_packets=2, first_share_deficit=4, head_end=(55, 86),
    added_crypto_frames=(2, 10), ping_frames=(2, 10),
)
#: Profiles by name.
PROFILES: dict[str, LayoutProfile] = {MINIMAL.name: MINIMAL, CHROME.name: CHROME}


def profile_for(name: str) -> LayoutProfile:
    """The profile called ``name``.

    Raises:
        ValueError: an unknown name.
    """
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown initial layout {name!r} (choose from "
                         f"{', '.join(LAYOUTS)})") from None


class _Pool:
    """Serves ``rng`` bytes from blocks of 256: a plan takes ~100 small draws, the OS one call.

    :meth:`below` is the plan's only integer source: rejection sampling over the fewest whole
    bytes, so there is no modulo bias. Bytes are consumed in order, as if drawn one by one.
    """

    def __init__(self, rng: Rng) -> None:
        self._rng = rng
        self._buf = b""
        self._pos = 0

    def __call__(self, n: int) -> bytes:
        pos, end = self._pos, self._pos + n
        if end > len(self._buf):
            self._buf = self._buf[pos:] + self._rng(max(256, n))
            pos, end = 0, n
        self._pos = end
        return self._buf[pos:end]

    def below(self, n: int) -> int:
        """A uniform integer in ``[0, n)`` (0 for ``n <= 1``)."""
        if n <= 1:
            return 0
        bits = (n - 1).bit_length()
        mask = (1 << bits) - 1
        if bits <= 8:  # one byte a draw: index it, no slice and no int.from_bytes
            while True:
                pos = self._pos
                if pos >= len(self._buf):
                    self._buf = self._rng(256)
                    pos = 0
                self._pos = pos + 1
                value = self._buf[pos] & mask
                if value < n:
                    return value
        size = (bits + 7) >> 3
        while True:
            pos, end = self._pos, self._pos + size
            if end > len(self._buf):
                self._buf = self._buf[pos:] + self._rng(256)
                pos, end = 0, size
            self._pos = end
            value = int.from_bytes(self._buf[pos:end], "big") & mask
            if value < n:
                return value

    def shuffle(self, items: list[T]) -> None:
        """Fisher-Yates in place: ``j = below(i + 1)`` from the last index down."""
        below = self.below
        for i in range(len(items) - 1, 0, -1):
            j = below(i + 1)
            items[i], items[j] = items[j], items[i]

    def spread(self, frames: list[T], spare: int) -> tuple[list[T | int], int]:
        """Before each frame, a PADDING run of ``below(spare + 1)`` bytes (none when 0), taken
        from ``spare``. Returns the frames with the runs (ints) and the ``spare`` left."""
        out: list[T | int] = []
        append = out.append
        for frame in frames:
            if spare:
                run = self.below(spare + 1)
                if run:
                    append(run)
                    spare -= run
            append(frame)
        return out, spare

    def uniform(self, bounds: tuple[int, int]) -> int:
        """A uniform integer in the inclusive range ``bounds``."""
        low, high = bounds
        return low + self.below(high - low + 1)


def long_header_size(*, dcid_length: int, scid_length: int, token_length: int,
                     packet_number_length: int) -> int:
    """Bytes of an Initial packet's header as we write it (RFC 9000 §17.2.2)."""
    return (1 + 4 + 1 + dcid_length + 1 + scid_length + len_uint_var(token_length) + token_length
            + _LENGTH_FIELD_SIZE + packet_number_length)


def plan_initial_flight(
    hello: bytes | int,
    rng: Rng,
    profile: LayoutProfile | str = MINIMAL,
    *,
    dcid_length: int = 8,
    scid_length: int = 0,
    token_length: int = 0,
) -> InitialFlightPlan:
    """Plan the packets of the client's first Initial flight.

    Args:
        hello: the Initial CRYPTO stream bytes (the ClientHello), or just their length.
        rng: the random source (``QuicConfiguration.rng``); a seeded one gives the same plan.
        profile: a :class:`LayoutProfile` or its name.
        dcid_length: the Destination Connection ID length of the packets.
        scid_length: the Source Connection ID length of the packets.
        token_length: the Initial token's length (0 before any Retry).

    Raises:
        ValueError: an unknown profile name, or a datagram too small to carry any hello byte.
    """
    prof = profile_for(profile) if isinstance(profile, str) else profile
    total = hello if isinstance(hello, int) else len(hello)
    payloads = _PayloadSizes(prof, dcid_length, scid_length, token_length)
    if prof.chaos:
        packets, reason = _plan_chaos(total, prof, payloads, _Pool(rng))
    else:
        packets, reason = _plan_in_order(total, prof, payloads)
    last = packets[-1].packet_number if packets else prof.first_packet_number - 1
    return InitialFlightPlan(layout=prof.name, packets=tuple(packets),
                             next_packet_number=last + 1, reason=reason)


class _PayloadSizes:
    """Packet numbers, their lengths and the payload room of the i-th packet of a profile."""

    def __init__(self, prof: LayoutProfile, dcid: int, scid: int, token: int) -> None:
        self.prof = prof
        self._header = {"dcid_length": dcid, "scid_length": scid, "token_length": token}

    def pn_length(self, i: int) -> int:
        lengths = self.prof.packet_number_lengths
        return lengths[min(i, len(lengths) - 1)]

    def payload(self, i: int) -> int:
        pn_len = self.pn_length(i)
        room = self.prof.datagram_size - AEAD_TAG_SIZE - long_header_size(
            packet_number_length=pn_len, **self._header)
        if room < _HP_SAMPLE_REACH - pn_len + 1 + 3:
            raise ValueError(f"a {self.prof.datagram_size}-byte datagram has no room for frames")
        return room

    def packet(self, i: int, frames: list[PlannedFrame]) -> PlannedPacket:
        return PlannedPacket(packet_number=self.prof.first_packet_number + i,
                             packet_number_length=self.pn_length(i), frames=tuple(frames),
                             datagram_size=self.prof.datagram_size)


def _plan_in_order(total: int, prof: LayoutProfile,
                   sizes: _PayloadSizes) -> tuple[list[PlannedPacket], str]:
    """Our plain layout: each packet as full as the send path fills it, PADDING at the end.

    Mirrors ``PacketAssembler._write_crypto`` (connection/assembler.py): a CRYPTO frame gets the
    packet's room minus 13 bytes (type, an 8-byte offset and a 4-byte length reserved), then the
    datagram is padded to 1200.
    """
    packets: list[PlannedPacket] = []
    offset = 0
    while offset < total or not packets:
        room = sizes.payload(len(packets))
        length = min(total - offset, room - 1 - 8 - 4)
        frames: list[PlannedFrame] = [CryptoFragment(offset, length)] if length > 0 else []
        used = sum(f.size for f in frames)
        if room > used:
            frames.append(Padding(room - used))
        packets.append(sizes.packet(len(packets), frames))
        offset += max(length, 0)
    return packets, f"{prof.name}: {total}-byte hello in order over {len(packets)} packet(s)"



def _packet_count(total: int, prof: LayoutProfile, sizes: _PayloadSizes) -> int:
    """Fewest packets (at least ``min_packets``) whose even shares fit with two frame headers."""
    count = max(prof.min_packets, 1)
    while True:
        share = -(-total // count) + prof.first_share_deficit
        worst = 2 * (1 + len_uint_var(max(total, 1)) * 2)
        if all(share + worst <= sizes.payload(i) for i in range(count)):
            return count
        count += 1


def _shares(total: int, count: int, deficit: int) -> list[int]:
    """Bytes per packet: the first ``deficit`` short of an even share, the rest spread evenly."""
    first = max((total - deficit) // count, 0)
    rest = total - first
    others = count - 1
    return [first] + [rest // others + (1 if i >= others - rest % others else 0)
                      for i in range(others)] if others else [total]


def _plan_chaos(total: int, prof: LayoutProfile, sizes: _PayloadSizes,
                rng: _Pool) -> tuple[list[PlannedPacket], str]:
    """Chrome's layout: head and tail in the first packet, the middle after it, then chaos."""
    count = _packet_count(total, prof, sizes)
    shares = _shares(total, count, prof.first_share_deficit)
    head = min(rng.uniform(prof.head_end), shares[0])
    ranges: list[list[CryptoFragment]] = [[] for _ in range(count)]
    if head:
        ranges[0].append(CryptoFragment(0, head))
    offset = head
    for i in range(1, count):
        if shares[i]:
            ranges[i].append(CryptoFragment(offset, shares[i]))
        offset += shares[i]
    if total > offset:
        ranges[0].append(CryptoFragment(offset, total - offset))
    packets = [sizes.packet(i, _chaos_frames(ranges[i], sizes.payload(i), prof, rng))
               for i in range(count)]
    return packets, (f"{prof.name}: {total}-byte hello over {count} packets "
                     f"(head 0..{head}, shares {shares})")


def _varint_size(value: int) -> int:
    """Bytes of a varint (RFC 9000 §16), for the planner's frame sizes."""
    return 1 if value <= 0x3F else 2 if value <= 0x3FFF else 4 if value <= 0x3FFFFFFF else 8


#: The planner's working frames: ``(offset, length)`` a CRYPTO frame, ``_PING``, or a positive
#: ``int``, a PADDING run of that length. They become :data:`PlannedFrame` objects once, at the end.
_PING = ()
_PING_FRAME = Ping()


def _chaos_frames(fragments: list[CryptoFragment], room: int, prof: LayoutProfile,
                  rng: _Pool) -> list[PlannedFrame]:
    """Split the fragments, add PINGs, spread PADDING over the gaps and shuffle (in that order)."""
    work: list[tuple[int, int] | tuple[()] | int] = [(f.offset, f.length) for f in fragments]
    spare = room - sum(f.size for f in fragments)
    # Splitting one frame in two costs at most one more frame header of the largest size.
    worst_header = 1 + 2 * _varint_size(max((f.offset + f.length for f in fragments), default=0))
    below = rng.below
    for _ in range(rng.uniform(prof.added_crypto_frames)):
        if spare < worst_header or not work:
            break
        index = below(len(work))
        offset, length = work[index]  # type: ignore[misc]  # only CRYPTO frames so far
        if length <= 1:
            continue  # a wasted draw, as in the measured client: the count is an upper bound
        cut = 1 + below(length - 1)
        work[index] = (offset, cut)
        work.append((offset + cut, length - cut))
        # the data is the same; the new frame adds one header, and the Offset and Length
        # fields of the two halves may be shorter or longer than the old frame's
        spare -= (1 + _varint_size(offset) + _varint_size(cut)
                  + _varint_size(offset + cut) + _varint_size(length - cut)
                  - _varint_size(offset) - _varint_size(length))
    if spare > 0:
        pings = min(rng.uniform(prof.ping_frames), spare)
        work.extend([_PING] * pings)
        spare -= pings
    spread, spare = rng.spread(work, spare)
    if spare:
        spread.append(spare)
    rng.shuffle(spread)
    # Adjacent PADDING runs are one run on the wire: merged, so the plan says what is sent.
    out: list[PlannedFrame] = []
    pad = 0
    for frame in spread:
        if frame.__class__ is int:
            pad += frame  # type: ignore[operator]
            continue
        if pad:
            out.append(Padding(pad))
            pad = 0
        out.append(_PING_FRAME if frame is _PING else CryptoFragment(*frame))  # type: ignore[misc]
    if pad:
        out.append(Padding(pad))
    return out


def encode_payload(packet: PlannedPacket, hello: bytes) -> bytes:
    """The plaintext payload of ``packet``: its frames with the hello bytes they carry."""
    # The datagram size bounds the payload, so the Buffer needs no sum over the frame sizes.
    buf = Buffer(capacity=max(packet.datagram_size, MIN_INITIAL_DATAGRAM_SIZE))
    for frame in packet.frames:
        cls = frame.__class__
        if cls is CryptoFragment:
            offset, length = frame.offset, frame.length  # type: ignore[union-attr]
            push_crypto_frame_header(buf, offset, length)
            buf.push_bytes(hello[offset:offset + length])
        elif cls is Ping:
            buf.push_uint8(FrameType.PING)
        else:
            buf.push_bytes(bytes(frame.length))  # type: ignore[union-attr]  # PADDING (§19.1)
    return buf.data


def describe_frames(packet: PlannedPacket) -> list[FrameDict]:
    """qlog frame descriptions of ``packet`` (for ``packet_sent``)."""
    out: list[FrameDict] = []
    for frame in packet.frames:
        if isinstance(frame, CryptoFragment):
            out.append(crypto_frame(frame.offset, frame.length))
        elif isinstance(frame, Ping):
            out.append(simple_frame("ping"))
        else:
            out.append(padding_frame(frame.length))
    return out



def chaos_retransmission(payload: bytes, room: int, rng: Rng,
                         profile: LayoutProfile = CHROME) -> tuple[bytes, PlannedPacket] | None:
    """Chaos-shape a retransmitted client Initial the way Chromium does, or None if it does not.

    quiche (Chromium's QUIC) applies chaos protection to every client Initial whose frames are
    exactly CRYPTO and PADDING (``QuicPacketCreator::MaybeBuildDataPacketWithChaosProtection``), so
    a PTO-retransmitted hello is cut, mixed with PING and PADDING and shuffled like the first
    flight; a packet that also carries an ACK is not. ``payload`` is such a packet's plaintext as
    our send path wrote it (CRYPTO frames, then PADDING); ``room`` is the payload size wanted
    (the profile's datagram size less header and AEAD tag). Returns the new plaintext and the
    planned packet (for qlog), carrying the same CRYPTO bytes.
    """
    from .frames.fast import pull_crypto_frame

    buf = Buffer(data=payload)
    chunks: list[tuple[int, bytes]] = []
    while not buf.eof():
        frame_type = buf.pull_uint8()
        if frame_type == 0x00:  # PADDING (RFC 9000 §19.1)
            continue
        if frame_type != 0x06:  # anything but CRYPTO (RFC 9000 §19.6): not chaos-protected
            return None
        chunks.append(pull_crypto_frame(buf))
    if not chunks:
        return None
    fragments = [CryptoFragment(offset, len(data)) for offset, data in chunks]
    if room < sum(f.size for f in fragments):
        return None
    end = max(f.offset + f.length for f in fragments)
    stream = bytearray(end)
    for offset, data in chunks:
        stream[offset:offset + len(data)] = data
    frames = _chaos_frames(fragments, room, profile, _Pool(rng))
    packet = PlannedPacket(packet_number=-1, packet_number_length=0, frames=tuple(frames),
                           datagram_size=profile.datagram_size)
    return encode_payload(packet, bytes(stream)), packet
