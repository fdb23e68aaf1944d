"""Verdict metrics from the wire: goodput, handshake time and link losses from pcaps.

Theory of operation
-------------------
quic-interop-runner's goodput is the file size over the time between the
first and the last 1-RTT packet of the server, seen at the client-side sniffer.
We do the same on the client-side capture of the impaired link, with one
refinement when the capture decrypts (keys injected): only 1-RTT packets that
carry a STREAM frame count ("payload" packets), so a trailing ACK-only packet
cannot stretch the interval.  Without keys every server 1-RTT packet counts,
which is exactly the runner's definition; :attr:`QuicWire.method` says which.

Rows come from ``tshark -T fields`` (:func:`..capture.tshark_fields`); the
computations (:func:`quic_wire_from_rows`, :func:`tcp_wire_from_rows`,
:func:`count_by_source`) are pure and unit-tested on a real capture.

Other wire metrics:

* **handshake_ms**: the client's first Initial to the client's first 1-RTT
  packet (the client has the server's Finished and sent its own), at the
  client-side sniffer.
* **link losses**: packets a side sent into the impaired link (its own
  capture) minus packets that came out at the other side (the other capture).
* **TCP goodput** (iperf3): on the receiver-side capture, the largest data
  stream of the sender: (highest sequence reached − first sequence) × 8 over
  the first-to-last data packet interval, counting data packets only until the
  receiver closes the stream (first FIN/RST from it): iperf3 stops reading at
  the end of its test while the pipe is still full.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .capture import tshark_fields

__all__ = [
    "QUIC_FIELDS",
    "TCP_FIELDS",
    "QuicWire",
    "TcpWire",
    "count_by_source",
    "quic_wire",
    "quic_wire_from_rows",
    "tcp_wire",
    "tcp_wire_from_rows",
]

QUIC_FIELDS: tuple[str, ...] = ("frame.time_epoch", "ip.src", "udp.srcport", "udp.length",
                                "quic.header_form", "quic.long.packet_type", "quic.frame_type")
TCP_FIELDS: tuple[str, ...] = ("frame.time_epoch", "ip.src", "tcp.stream", "tcp.srcport",
                               "tcp.seq", "tcp.len", "tcp.flags.fin", "tcp.flags.reset")
#: STREAM frame types 0x08..0x0f (tshark prints quic.frame_type in decimal).
_STREAM_TYPES = frozenset(range(8, 16))
_INITIAL = "0"


def _ints(value: str) -> list[int]:
    out = []
    for v in value.split(","):
        v = v.strip()
        if v:
            try:
                out.append(int(v, 0))
            except ValueError:
                continue
    return out


@dataclass(frozen=True, slots=True)
class QuicWire:
    """QUIC metrics from the client-side capture.

    Attributes:
        goodput_mbit: ``file_bytes * 8 / duration_s / 1e6``; None if < 2 payload packets.
        duration_s: First to last counted server 1-RTT packet.
        first_ts: Epoch time of the first counted packet.
        last_ts: Epoch time of the last counted packet.
        method: ``"1rtt-stream"`` (decrypted; packets with a STREAM frame) or
            ``"1rtt-all"`` (every server 1-RTT packet, quic-interop-runner's definition).
        goodput_all_mbit: The same with every server 1-RTT packet (for comparison).
        handshake_ms: Client first Initial → client first 1-RTT packet.
        server_packets: UDP datagrams from the server at the client side.
        client_packets: UDP datagrams from the client at the client side.
        server_bytes: UDP payload bytes from the server at the client side.
        decrypted: Whether any 1-RTT packet showed its frames.
    """

    goodput_mbit: float | None
    duration_s: float | None
    first_ts: float | None
    last_ts: float | None
    method: str
    goodput_all_mbit: float | None
    handshake_ms: float | None
    server_packets: int
    client_packets: int
    server_bytes: int
    decrypted: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return asdict(self)


def quic_wire_from_rows(rows: Iterable[Mapping[str, str]], *, server_addr: str,
                        server_port: int, file_bytes: int) -> QuicWire:
    """Compute :class:`QuicWire` from ``tshark -T fields`` rows of :data:`QUIC_FIELDS`."""
    sport = str(server_port)
    first_all: float | None = None
    last_all: float | None = None
    first_pl: float | None = None
    last_pl: float | None = None
    ch_initial: float | None = None
    ch_1rtt: float | None = None
    n_srv = n_cli = srv_bytes = 0
    decrypted = False
    for r in rows:
        try:
            t = float(r["frame.time_epoch"])
        except (KeyError, ValueError):
            continue
        forms = r.get("quic.header_form", "")
        from_server = r.get("ip.src") == server_addr and r.get("udp.srcport") == sport
        if from_server:
            n_srv += 1
            srv_bytes += max(0, int(r.get("udp.length") or 8) - 8)
        elif r.get("udp.length"):
            n_cli += 1
        if not forms:
            continue
        short = "0" in forms.split(",")
        if from_server:
            if short:
                if first_all is None:
                    first_all = t
                last_all = t
                types = _ints(r.get("quic.frame_type", ""))
                # coalesced packets: the 1-RTT packet is the last one in the datagram, but frame
                # types of all packets are joined (Initial frames decrypt without keys); STREAM
                # frames never appear in Initial/Handshake. Only a datagram holding nothing but
                # a 1-RTT packet proves the 1-RTT keys work.
                if types and forms.strip() == "0":
                    decrypted = True
                if _STREAM_TYPES.intersection(types):
                    if first_pl is None:
                        first_pl = t
                    last_pl = t
        else:
            if ch_initial is None and _INITIAL in r.get("quic.long.packet_type", "").split(","):
                ch_initial = t
            if short and ch_1rtt is None and ch_initial is not None:
                ch_1rtt = t

    def rate(a: float | None, b: float | None) -> tuple[float | None, float | None]:
        if a is None or b is None or b <= a:
            return None, None
        return file_bytes * 8 / (b - a) / 1e6, b - a

    g_all, _ = rate(first_all, last_all)
    first: float | None
    last: float | None
    if decrypted and first_pl is not None:
        g, dur = rate(first_pl, last_pl)
        method, first, last = "1rtt-stream", first_pl, last_pl
    else:
        g, dur = rate(first_all, last_all)
        method, first, last = "1rtt-all", first_all, last_all
    hs = (ch_1rtt - ch_initial) * 1000 if ch_initial is not None and ch_1rtt is not None else None
    return QuicWire(goodput_mbit=g, duration_s=dur, first_ts=first, last_ts=last, method=method,
                    goodput_all_mbit=g_all, handshake_ms=hs, server_packets=n_srv,
                    client_packets=n_cli, server_bytes=srv_bytes, decrypted=decrypted)


def quic_wire(pcap: str, *, server_addr: str, server_port: int, file_bytes: int) -> QuicWire:
    """Run tshark on ``pcap`` (a pcapng with keys injected, ideally) and compute :class:`QuicWire`."""
    rows = tshark_fields(pcap, QUIC_FIELDS, "udp", decode_as=(f"udp.port=={server_port},quic",))
    return quic_wire_from_rows(rows, server_addr=server_addr, server_port=server_port,
                               file_bytes=file_bytes)


@dataclass(frozen=True, slots=True)
class TcpWire:
    """TCP bulk-transfer metrics from the receiver-side capture.

    Attributes:
        goodput_mbit: ``bytes * 8 / duration_s / 1e6`` of the largest data stream.
        duration_s: First to last data packet of that stream.
        bytes: Sequence space covered (highest seq+len − lowest seq).
        stream: tshark's ``tcp.stream`` index of that stream.
        data_packets: Data packets of that stream seen (retransmissions included).
    """

    goodput_mbit: float | None
    duration_s: float | None
    bytes: int
    stream: int | None
    data_packets: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return asdict(self)


def _flag(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true")


def tcp_wire_from_rows(rows: Iterable[Mapping[str, str]], *, sender_addr: str) -> TcpWire:
    """Compute :class:`TcpWire` from rows of :data:`TCP_FIELDS`.

    Data packets of ``sender_addr`` count until the receiver closes that stream (its first FIN
    or RST): what arrives after the receiving application has stopped reading (iperf3 closes at
    the end of its test while the pipe is still full) is not goodput.
    """
    rows = list(rows)
    closed: dict[int, float] = {}
    for r in rows:
        if r.get("ip.src") == sender_addr or not (_flag(r.get("tcp.flags.fin"))
                                                  or _flag(r.get("tcp.flags.reset"))):
            continue
        try:
            s_, t_ = int(r["tcp.stream"]), float(r["frame.time_epoch"])
        except (KeyError, ValueError):
            continue
        closed[s_] = min(closed.get(s_, t_), t_)
    per: dict[int, list[float]] = {}  # stream -> [first_t, last_t, lo_seq, hi_seq, n]
    for r in rows:
        if r.get("ip.src") != sender_addr:
            continue
        try:
            n = int(r.get("tcp.len") or 0)
            if n <= 0:
                continue
            t = float(r["frame.time_epoch"])
            s = int(r["tcp.stream"])
            seq = int(r["tcp.seq"])
        except (KeyError, ValueError):
            continue
        if t > closed.get(s, t):
            continue
        st = per.get(s)
        if st is None:
            per[s] = [t, t, seq, seq + n, 1]
        else:
            st[1] = t
            st[2] = min(st[2], seq)
            st[3] = max(st[3], seq + n)
            st[4] += 1
    if not per:
        return TcpWire(None, None, 0, None, 0)
    s, st = max(per.items(), key=lambda kv: kv[1][3] - kv[1][2])
    t0, t1, lo, hi, npk = st
    nbytes = int(hi - lo)
    dur = t1 - t0
    g = nbytes * 8 / dur / 1e6 if dur > 0 else None
    return TcpWire(goodput_mbit=g, duration_s=dur if dur > 0 else None, bytes=nbytes, stream=s,
                   data_packets=int(npk))


def tcp_wire(pcap: str, *, sender_addr: str) -> TcpWire:
    """Run tshark on a (headers-only is enough) capture and compute :class:`TcpWire`."""
    rows = tshark_fields(pcap, TCP_FIELDS, f"(tcp.len > 0 && ip.src == {sender_addr}) || "
                                           "tcp.flags.fin == 1 || tcp.flags.reset == 1")
    return tcp_wire_from_rows(rows, sender_addr=sender_addr)


def count_by_source(rows: Iterable[Mapping[str, str]], addrs: Sequence[str]) -> dict[str, int]:
    """Packets per source address (only ``addrs`` are counted)."""
    out = dict.fromkeys(addrs, 0)
    for r in rows:
        a = r.get("ip.src")
        if a in out:
            out[a] += 1
    return out


def packets_by_source(pcap: str, addrs: Sequence[str], proto: str = "ip") -> dict[str, int]:
    """Count ``proto`` packets per source address in ``pcap`` (tshark)."""
    return count_by_source(tshark_fields(pcap, ("ip.src",), proto), addrs)
