"""Seed corpora for the fuzz targets: real captures and in-memory pairs (``python -m
quicreality.fuzz seed``).

Real traffic comes from the repository's fingerprint fixtures (``tests/data/fingerprint``: pcaps
and key logs of Chromium, curl, quic-go, ngtcp2 and our own endpoints on loopback) and the
committed qlogs under ``captures/``. :class:`CaptureDecryptor` removes packet protection with the
key log, so the targets that take plaintext (frames, TLS messages, transport parameters, the
gate's Initials) are seeded with what those implementations really sent. In-memory sources add
what the captures cannot give: a complete deterministic TLS handshake (:mod:`.targets_tls`),
sealed REALITY first flights, HTTP/3 and QPACK streams with a dynamic table, relay prefaces.

Every seed is small; :func:`write_corpora` keeps each target under :data:`MAX_TARGET_BYTES`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..quic.crypto import CryptoContext, CryptoError, CryptoPair
from ..quic.errors import QuicConnectionError
from ..quic.frames import CryptoFrame, pull_frame
from ..quic.packet import (
    PACKET_TYPE_HANDSHAKE,
    PACKET_TYPE_INITIAL,
    PACKET_TYPE_ONE_RTT,
    QUIC_VERSION_1,
    MalformedPacketError,
    pull_quic_header,
)
from ..wire.buffer import Buffer, BufferReadError
from .harness import join_records

__all__ = ["MAX_TARGET_BYTES", "CaptureDecryptor", "Opened", "write_corpora"]

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "data" / "fingerprint"
#: Upper bound on one target's seeds (the whole corpus stays well under 5 MB).
MAX_TARGET_BYTES = 400_000


@dataclass(frozen=True)
class Opened:
    """One decrypted packet of a capture."""

    from_client: bool
    packet_type: int
    packet_number: int
    payload: bytes


@dataclass
class CaptureDecryptor:
    """Opens the QUIC packets of one connection in a capture, with its NSS key log."""

    keys: dict[str, bytes]
    client_port: int | None = None
    odcid: bytes | None = None
    #: short-header DCID lengths by direction (from_client): the other side's SCID lengths
    cid_lengths: dict[bool, set[int]] = field(default_factory=dict)
    _largest: dict[tuple[bool, int], int] = field(default_factory=dict)
    _ctx: dict[tuple[bool, int], CryptoContext | None] = field(default_factory=dict)

    @classmethod
    def from_keylog(cls, path: Path) -> CaptureDecryptor:
        """Secrets by label (the first connection of the file)."""
        keys: dict[str, bytes] = {}
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] not in keys:
                keys[parts[0]] = bytes.fromhex(parts[2])
        return cls(keys)

    def _context(self, from_client: bool, ptype: int, packet: bytes,
                 pn_offset: int) -> CryptoContext | None:
        key = (from_client, ptype)
        if key in self._ctx:
            return self._ctx[key]
        ctx: CryptoContext | None = None
        if ptype == PACKET_TYPE_INITIAL and self.odcid is not None:
            pair = CryptoPair()
            pair.setup_initial(self.odcid, is_client=not from_client, version=QUIC_VERSION_1)
            ctx = pair.recv
        else:
            side = "CLIENT" if from_client else "SERVER"
            label = (f"{side}_HANDSHAKE_TRAFFIC_SECRET" if ptype == PACKET_TYPE_HANDSHAKE
                     else f"{side}_TRAFFIC_SECRET_0")
            secret = self.keys.get(label)
            if secret is not None:
                for suite in ((0x1302,) if len(secret) == 48 else (0x1301, 0x1303)):
                    trial = CryptoContext()
                    trial.setup(suite, secret, QUIC_VERSION_1)
                    try:
                        trial.decrypt_packet(packet, pn_offset, 0)
                    except CryptoError:
                        continue
                    ctx = trial
                    break
        if ctx is not None:
            self._ctx[key] = ctx
        return ctx

    def open(self, datagram: bytes, from_client: bool) -> list[Opened]:
        """The packets of one datagram that open (others are skipped)."""
        out: list[Opened] = []
        buf = Buffer(data=datagram)
        while not buf.eof():
            start = buf.tell()
            first = datagram[start]
            lengths = sorted(self.cid_lengths.get(from_client, ())) or [8]
            header = None
            for n in lengths if not first & 0x80 else [None]:
                try:
                    buf.seek(start)
                    header = pull_quic_header(buf, host_cid_length=n)
                except (MalformedPacketError, BufferReadError):
                    return out
                if first & 0x80:
                    break
                packet = datagram[start:header.packet_end]
                if self._context(from_client, PACKET_TYPE_ONE_RTT, packet,
                                 header.pn_offset - start) is not None:
                    break
            if header is None:
                return out
            if header.is_long_header:
                if from_client and header.packet_type == PACKET_TYPE_INITIAL \
                        and self.odcid is None:
                    self.odcid = header.destination_cid
                self.cid_lengths.setdefault(not from_client, set()).add(len(header.source_cid))
            packet = datagram[start:header.packet_end]
            ptype = header.packet_type
            if ptype in (PACKET_TYPE_INITIAL, PACKET_TYPE_HANDSHAKE, PACKET_TYPE_ONE_RTT):
                ctx = self._context(from_client, ptype, packet, header.pn_offset - start)
                if ctx is not None:
                    expected = self._largest.get((from_client, ptype), -1) + 1
                    try:
                        _, payload, pn = ctx.decrypt_packet(packet, header.pn_offset - start,
                                                            expected)
                    except CryptoError:
                        pass
                    else:
                        self._largest[(from_client, ptype)] = max(pn, expected - 1)
                        out.append(Opened(from_client, ptype, pn, payload))
            buf.seek(header.packet_end)
        return out


def pcap_datagrams(path: Path) -> list[tuple[int, int, bytes]]:
    """``(source port, destination port, UDP payload)`` of every UDP packet (scapy)."""
    from scapy.all import UDP, rdpcap  # type: ignore[attr-defined,import-untyped,unused-ignore]

    out = []
    for pkt in rdpcap(str(path)):
        if UDP in pkt:
            udp = pkt[UDP]
            out.append((int(udp.sport), int(udp.dport), bytes(udp.payload)))
    return out


@dataclass
class Capture:
    """A fixture capture: its datagrams and what opened."""

    name: str
    datagrams: list[tuple[bool, bytes]]
    opened: list[Opened]

    def crypto_streams(self) -> dict[tuple[bool, int], bytes]:
        """The in-order CRYPTO bytes of each (from_client, packet type)."""
        chunks: dict[tuple[bool, int], dict[int, bytes]] = {}
        for o in self.opened:
            for frame in _frames(o.payload):
                if isinstance(frame, CryptoFrame):
                    chunks.setdefault((o.from_client, o.packet_type), {}).setdefault(
                        frame.offset, bytes(frame.data))
        out = {}
        for key, parts in chunks.items():
            data = b""
            for off in sorted(parts):
                if off <= len(data):
                    data = data[:off] + parts[off] + data[off + len(parts[off]):]
            out[key] = data
        return out


def _frames(payload: bytes) -> Iterator[Any]:
    buf = Buffer(data=payload)
    try:
        while not buf.eof():
            yield pull_frame(buf)
    except (QuicConnectionError, BufferReadError):
        return


def fixture_captures() -> list[Capture]:
    """Every ``*.pcap`` with a ``*.keys`` in the fingerprint fixtures, opened."""
    out = []
    for pcap in sorted(FIXTURES.glob("*.pcap")):
        keylog = pcap.with_suffix(".keys")
        if not keylog.is_file():
            continue
        dec = CaptureDecryptor.from_keylog(keylog)
        grams = pcap_datagrams(pcap)
        if not grams:
            continue
        client_port = grams[0][0]
        datagrams, opened = [], []
        for sport, _dport, data in grams:
            from_client = sport == client_port
            datagrams.append((from_client, data))
            opened.extend(dec.open(data, from_client))
        out.append(Capture(pcap.stem, datagrams, opened))
    return out


# --- seeds per target ---------------------------------------------------------------------------


def _pair_datagrams() -> list[tuple[str, bytes]]:
    from .pair import EstablishedPair

    got: list[tuple[str, bytes]] = []
    EstablishedPair(seed=1, tap=lambda d, b: got.append((d, b)))
    return got


def seeds_packet(caps: list[Capture]) -> list[bytes]:
    out = [d for _, d in _pair_datagrams()[:8]]
    for cap in caps:
        out.extend(d for _, d in cap.datagrams[:6])
    return out


def seeds_protection(caps: list[Capture]) -> list[bytes]:
    space = {PACKET_TYPE_INITIAL: 0, PACKET_TYPE_HANDSHAKE: 1, PACKET_TYPE_ONE_RTT: 2}
    out = []
    for cap in caps:
        for o in cap.opened[:10]:
            payload = o.payload.rstrip(b"\x00") or b"\x01"
            pn = o.packet_number.to_bytes(4, "big")
            out.append(bytes([space[o.packet_type] | 0x0C]) + pn + b"\x00" + payload)
    out.append(b"\x0e" + bytes(4) + b"\x07" + b"\x01" * 30)  # a tampered 1-RTT packet
    return out


def seeds_frames(caps: list[Capture]) -> list[bytes]:
    out = []
    for cap in caps:
        for from_client in (True, False):
            payloads = [o.payload for o in cap.opened
                        if o.packet_type == PACKET_TYPE_ONE_RTT and o.from_client == from_client]
            for i in range(0, min(len(payloads), 12), 3):
                group = [p[:600] for p in payloads[i:i + 3]]
                out.append(bytes([0 if from_client else 1]) + join_records(group))
    # every frame type at least once, to the server and to the client
    from .seed_frames import every_frame_payload

    for direction in (0, 1):
        for payload in every_frame_payload(to_client=bool(direction)):
            out.append(bytes([direction]) + join_records([payload]))
    return out


def _hellos(caps: list[Capture]) -> list[tuple[bool, int, bytes]]:
    out = []
    for cap in caps:
        for (from_client, ptype), data in cap.crypto_streams().items():
            out.append((from_client, ptype, data))
    return out


def seeds_transport_params(caps: list[Capture]) -> list[bytes]:
    from ..tls import messages as m
    from ..tls.alerts import TlsAlert

    out = []
    for from_client, ptype, data in _hellos(caps):
        try:
            if from_client and ptype == PACKET_TYPE_INITIAL:
                tp = m.pull_client_hello(Buffer(data=data)).quic_transport_parameters
            elif not from_client and ptype == PACKET_TYPE_HANDSHAKE:
                tp = m.pull_encrypted_extensions(Buffer(data=data)).quic_transport_parameters
            else:
                continue
        except (TlsAlert, BufferReadError):  # a seed we cannot read is simply not a seed
            continue
        if tp:
            out.append(bytes([0 if from_client else 1]) + tp)
    return out


def seeds_tls(caps: list[Capture], client_role: bool) -> list[bytes]:
    from .targets_tls import handshake_records

    from_client, from_server = handshake_records()
    out = [from_server if client_role else from_client]
    streams: dict[str, dict[int, bytes]] = {}
    for cap in caps:
        for (fc, ptype), data in cap.crypto_streams().items():
            if fc != client_role:
                epoch = 0 if ptype == PACKET_TYPE_INITIAL else 2
                streams.setdefault(cap.name, {})[epoch] = data
    for parts in streams.values():
        out.append(join_records(bytes([e]) + d[:3000] for e, d in sorted(parts.items())))
    return out


def write_corpora(out: Path, names: Iterable[str] | None = None) -> list[tuple[str, int, int]]:
    """Write the seeds of ``names`` (default: every target) to ``out/NAME/``, replacing what is
    there; returns ``(name, seeds, bytes)`` per target."""
    from .seed_app import seeds_gate, seeds_h3, seeds_qlog, seeds_relay
    from .targets import TARGETS

    wanted = list(names or TARGETS)
    caps = fixture_captures()
    makers: dict[str, Any] = {
        "packet": lambda: seeds_packet(caps),
        "protection": lambda: seeds_protection(caps),
        "frames": lambda: seeds_frames(caps),
        "transport-params": lambda: seeds_transport_params(caps),
        "tls-server": lambda: seeds_tls(caps, client_role=False),
        "tls-client": lambda: seeds_tls(caps, client_role=True),
        "h3": seeds_h3,
        "relay-preface": seeds_relay,
        "reality-gate": lambda: seeds_gate(caps),
        "qlog-loader": seeds_qlog,
        "pcap-loader": lambda: [p.read_bytes() for p in sorted(FIXTURES.glob("*.pcap"))[:4]],
    }
    report = []
    for name in wanted:
        seeds = list(dict.fromkeys(makers[name]()))
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        for old in d.iterdir():
            old.unlink()
        total = 0
        for s in seeds:
            if total + len(s) > MAX_TARGET_BYTES:
                break
            (d / hashlib.sha1(s).hexdigest()[:16]).write_bytes(s)
            total += len(s)
        report.append((name, len(list(d.iterdir())), total))
    return report

