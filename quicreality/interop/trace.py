"""The wire as the verdicts see it: QUIC packets per UDP datagram, from one tshark pass.

Theory of operation
-------------------
:func:`tshark_argv` asks tshark (with the merged key log, so Handshake and 1-RTT packets are
decrypted) for one tab-separated row per UDP datagram carrying QUIC, every occurrence of each
field joined by ``,``.  :func:`parse_rows` turns the rows into :class:`Datagram` values holding
their :class:`QuicPacket` s in order.  tshark prints the per-packet fields of coalesced packets
as parallel lists whose lengths differ (a token only in Initials, a length in every long header
but Retry and Version Negotiation, a key phase only in short headers), so the parser pops each
list only for the packet types that carry the field (RFC 9000 §17.2, RFC 9369 §3.2 for v2's
long-header type codes).  The parser is pure and tested on synthetic rows; only
:func:`read_trace` runs tshark.
"""

from __future__ import annotations

import subprocess
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..quic.packet import QUIC_VERSION_1, QUIC_VERSION_NEGOTIATION

__all__ = ["FIELDS", "Datagram", "QuicPacket", "Trace", "parse_rows", "read_trace",
           "tshark_argv"]

#: QUIC v2 (RFC 9369 §3.1); v1 and Version Negotiation's 0 come from the stack.
V2 = 0x6B3343CF
V1, VN = QUIC_VERSION_1, QUIC_VERSION_NEGOTIATION
#: Long-header packet types: v1 (RFC 9000 §17.2) and v2 (RFC 9369 §3.2).
_LONG_V1 = {0: "initial", 1: "0rtt", 2: "handshake", 3: "retry"}
_LONG_V2 = {1: "initial", 2: "0rtt", 3: "handshake", 0: "retry"}

FIELDS: tuple[str, ...] = (
    "frame.number", "frame.time_relative", "ip.src", "ipv6.src", "udp.srcport", "ip.dst",
    "ipv6.dst", "udp.dstport", "udp.length", "ip.dsfield.ecn", "ipv6.tclass.ecn",
    "quic.header_form", "quic.long.packet_type", "quic.long.packet_type_v2", "quic.version",
    "quic.scid", "quic.dcid", "quic.token_length", "quic.token", "quic.retry_token",
    "quic.length", "quic.key_phase", "quic.ack.ect0_count", "tls.handshake.type",
    "tls.handshake.ciphersuite", "tls.quic.parameter.initial_max_streams_bidi",
    "quic.path_challenge.data", "quic.path_response.data", "quic.frame_type",
    "quic.crypto.offset", "quic.crypto.length", "quic.cc.error_code", "quic.cc.error_code.app",
    "quic.cc.reason_phrase",  # last: a peer's phrase may hold a tab or a line break
)


@dataclass(frozen=True, slots=True)
class QuicPacket:
    """One QUIC packet of a datagram.

    Attributes:
        kind: ``initial``, ``0rtt``, ``handshake``, ``retry``, ``vn`` or ``1rtt``.
        version: The long header's version (None for 1-RTT).
        scid: Source connection ID (hex; long headers only).
        dcid: Destination connection ID (hex).
        length: The long header's Length field (payload + packet number bytes).
        token: Initial token or Retry token (hex), "" if none.
        key_phase: The short header's key phase bit (None if not decrypted or long).
    """

    kind: str
    version: int | None = None
    scid: str = ""
    dcid: str = ""
    length: int = 0
    token: str = ""
    key_phase: int | None = None


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP datagram with its QUIC packets and what tshark decoded in it."""

    number: int
    time: float
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    size: int  #: UDP payload bytes
    ecn: int | None
    packets: tuple[QuicPacket, ...]
    handshake_types: tuple[int, ...] = ()
    ciphersuites: tuple[int, ...] = ()
    max_streams_bidi: int | None = None
    ack_ecn: bool = False
    path_challenge: bool = False
    path_response: bool = False
    frame_types: tuple[int, ...] = ()
    crypto_end: int = 0  #: the highest CRYPTO offset + length in the datagram
    #: the error code of a CONNECTION_CLOSE frame in the datagram (RFC 9000 §19.19), or None
    close_code: int | None = None
    close_app: bool = False  #: that CONNECTION_CLOSE is the application one (type 0x1d)
    #: its reason phrase as tshark printed it (several frames' phrases are joined by ",")
    close_reason: str = ""

    @property
    def src(self) -> str:
        """``addr:port`` of the sender (IPv6 bracketed)."""
        return f"[{self.src_ip}]:{self.src_port}" if ":" in self.src_ip else \
            f"{self.src_ip}:{self.src_port}"

    def kinds(self) -> tuple[str, ...]:
        """The packet kinds in order."""
        return tuple(p.kind for p in self.packets)


@dataclass(frozen=True, slots=True)
class Trace:
    """A capture's datagrams, split by direction relative to the server's IP address."""

    datagrams: tuple[Datagram, ...]
    server_ip: str

    def from_server(self) -> list[Datagram]:
        """Datagrams the server sent."""
        return [d for d in self.datagrams if d.src_ip == self.server_ip]

    def from_client(self) -> list[Datagram]:
        """Datagrams the client sent."""
        return [d for d in self.datagrams if d.src_ip != self.server_ip]

    def packets(self, kind: str, *, from_server: bool | None = None) -> list[QuicPacket]:
        """Every packet of ``kind`` (optionally of one direction)."""
        src = (self.datagrams if from_server is None
               else self.from_server() if from_server else self.from_client())
        return [p for d in src for p in d.packets if p.kind == kind]


def tshark_argv(pcap: str | Path, keylog: str | Path | None = None) -> list[str]:
    """argv of the one pass (``-T fields``, every occurrence, tab-separated, header row)."""
    argv = ["tshark", "-r", str(pcap), "-n", "-Y", "quic", "-T", "fields", "-E", "header=y",
            "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,", "-E", "quote=n"]
    if keylog:
        argv += ["-o", f"tls.keylog_file:{keylog}"]
    for f in FIELDS:
        argv += ["-e", f]
    return argv


def _list(v: str) -> list[str]:
    return [x for x in v.split(",") if x != ""]


def _int(v: str) -> int:
    return int(v, 0)


def _packets(row: dict[str, str]) -> tuple[QuicPacket, ...]:
    forms = _list(row["quic.header_form"])
    q = {k: deque(_list(row[k])) for k in ("quic.long.packet_type", "quic.long.packet_type_v2",
                                            "quic.version", "quic.scid", "quic.dcid",
                                            "quic.token_length", "quic.token",
                                            "quic.retry_token", "quic.length", "quic.key_phase")}

    def pop(key: str) -> str:
        return q[key].popleft() if q[key] else ""

    out = []
    for form in forms:
        if form in ("0", "False"):
            kp = pop("quic.key_phase")
            out.append(QuicPacket(kind="1rtt", dcid=pop("quic.dcid"),
                                  key_phase=int(kp in ("1", "True")) if kp else None))
            continue
        version = _int(pop("quic.version") or "0")
        if version == VN:
            out.append(QuicPacket(kind="vn", version=VN, dcid=pop("quic.dcid"),
                                  scid=pop("quic.scid")))
            continue
        if version == V2:
            kind = _LONG_V2.get(_int(pop("quic.long.packet_type_v2") or "-1"), "long?")
        else:
            kind = _LONG_V1.get(_int(pop("quic.long.packet_type") or "-1"), "long?")
        dcid, scid = pop("quic.dcid"), pop("quic.scid")
        token = ""
        if kind == "initial":
            tl = pop("quic.token_length")
            if tl and int(tl) > 0:
                token = pop("quic.token")
        elif kind == "retry":
            token = pop("quic.retry_token")
        length = 0 if kind == "retry" else int(pop("quic.length") or 0)
        out.append(QuicPacket(kind=kind, version=version, scid=scid, dcid=dcid, length=length,
                              token=token))
    return tuple(out)


def parse_rows(text: str) -> list[Datagram]:
    """Datagrams from :func:`tshark_argv`'s output (header row first)."""
    lines = text.splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    out = []
    for line in lines[1:]:
        if not line.strip():
            continue
        cols = line.split("\t")
        if not cols[0].isdigit():
            # the rest of a reason phrase with a line break in it: the phrase is the last field,
            # so the row above it is whole but for the phrase's tail
            continue
        cols += [""] * (len(header) - len(cols))
        row = {k: v for k, v in zip(header, cols, strict=False)}
        for f in FIELDS:
            row.setdefault(f, "")
        ecn = row["ip.dsfield.ecn"] or row["ipv6.tclass.ecn"]
        streams = _list(row["tls.quic.parameter.initial_max_streams_bidi"])
        out.append(Datagram(
            number=int(row["frame.number"]), time=float(row["frame.time_relative"] or 0.0),
            src_ip=(row["ip.src"] or row["ipv6.src"]).split(",")[0],
            src_port=int(row["udp.srcport"].split(",")[0] or 0),
            dst_ip=(row["ip.dst"] or row["ipv6.dst"]).split(",")[0],
            dst_port=int(row["udp.dstport"].split(",")[0] or 0),
            size=int(row["udp.length"].split(",")[0] or 8) - 8,
            ecn=_int(ecn.split(",")[0]) if ecn else None,
            packets=_packets(row),
            handshake_types=tuple(_int(x) for x in _list(row["tls.handshake.type"])),
            ciphersuites=tuple(_int(x) for x in _list(row["tls.handshake.ciphersuite"])),
            max_streams_bidi=_int(streams[0]) if streams else None,
            ack_ecn=bool(_list(row["quic.ack.ect0_count"])),
            path_challenge=bool(_list(row["quic.path_challenge.data"])),
            path_response=bool(_list(row["quic.path_response.data"])),
            frame_types=tuple(_int(x) for x in _list(row["quic.frame_type"])),
            crypto_end=max((int(o) + int(n) for o, n in zip(
                _list(row["quic.crypto.offset"]), _list(row["quic.crypto.length"]), strict=False)),
                default=0),
            **_close(row)))
    return out


def _close(row: dict[str, str]) -> dict[str, Any]:
    """The CONNECTION_CLOSE fields of a row: transport (0x1c) or application (0x1d) code; the
    reason phrase is kept whole (it may contain the aggregator ",")."""
    transport, app = _list(row["quic.cc.error_code"]), _list(row["quic.cc.error_code.app"])
    if not transport and not app:
        return {}
    return {"close_code": _int(transport[0] if transport else app[0]),
            "close_app": not transport, "close_reason": row["quic.cc.reason_phrase"]}


def read_trace(pcap: str | Path, server_ip: str, *, keylog: str | Path | None = None,
               timeout: float = 600.0) -> Trace:
    """Run tshark over ``pcap`` and parse it (raises ``RuntimeError`` if tshark fails)."""
    argv = tshark_argv(pcap, keylog)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... -> exit {r.returncode}: "
                           f"{r.stderr.strip()[-400:]}")
    return Trace(datagrams=tuple(parse_rows(r.stdout)), server_ip=server_ip)

