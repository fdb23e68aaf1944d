"""Decrypted QUIC captures → per-packet and per-frame tables, via ``tshark -T fields`` / ``-T json``.

The uncached loaders; :mod:`.pcap` is the public entry point, which reads through the derived
cache (:mod:`.capcache`) and re-exports these names.

Theory of operation
-------------------
pyshark is far too slow for bulk captures (testbed-references §3.4), so we run tshark once with
``-T fields -E occurrence=a`` (every occurrence of every field, comma-joined). That loses the
alignment between fields when a datagram carries several QUIC packets (coalesced Initial +
Handshake + 1-RTT) and when a frame lacks a field, so:

* datagrams with more than one QUIC packet (only during the handshake) are re-read with
  ``tshark -T json --no-duplicate-keys -J quic`` restricted to those frame numbers, and the tree
  is walked in document order into the same per-packet field lists;
* inside one QUIC packet, frames are re-assembled by consuming each frame type's fields in order
  (:func:`_frames_of_packet`): STREAM frames always carry ``stream_id`` and the OFF/LEN/FIN bits,
  ``offset`` only when OFF is set (else 0, RFC 9000 §19.8) and ``length`` only when LEN is set;
  ACK frames carry ``ack_range_count`` (gap, ack_range) pairs; CRYPTO frames offset + length.
* a STREAM frame without a Length field runs to the end of the packet (quic-go does this for the
  last frame); its length is reconstructed from the packet length minus the short header
  (1 + DCID + PN length, the 2-bit field + 1), the 16-byte AEAD tag and the encoded sizes of the frames before
  it (:func:`_encoded_size`, minimal varints assumed); if a preceding frame's size is unknown the
  length is NaN and ``length_reconstructed`` says so.

Keys: a pcapng with a Decryption Secrets Block (``editcap --inject-secrets``) decrypts on its own;
otherwise pass ``keylog``. Without keys, 1-RTT packets have no packet number and no frames.
Direction: the client is the sender of the first Initial (or pass ``server_port``).
``ack_delay`` is the encoded value; multiply by 2^ack_delay_exponent µs (default 3) for time.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "FIELDS",
    "PcapTables",
    "load_capture",
    "load_pcap_raw",
    "tcp_frame",
    "varint_size",
]

FRAME_NAMES: dict[int, str] = {
    0x00: "padding", 0x01: "ping", 0x02: "ack", 0x03: "ack", 0x04: "reset_stream",
    0x05: "stop_sending", 0x06: "crypto", 0x07: "new_token", 0x10: "max_data",
    0x11: "max_stream_data", 0x12: "max_streams", 0x13: "max_streams", 0x14: "data_blocked",
    0x15: "stream_data_blocked", 0x16: "streams_blocked", 0x17: "streams_blocked",
    0x18: "new_connection_id", 0x19: "retire_connection_id", 0x1A: "path_challenge",
    0x1B: "path_response", 0x1C: "connection_close", 0x1D: "connection_close",
    0x1E: "handshake_done", 0x30: "datagram", 0x31: "datagram",
}
LONG_TYPES = {0: "initial", 1: "0RTT", 2: "handshake", 3: "retry"}

_PACKET_FIELDS = ("frame.number", "frame.time_epoch", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
                  "udp.srcport", "udp.dstport", "udp.length")
_QUIC_FIELDS = (
    "quic.packet_length", "quic.header_form", "quic.long.packet_type", "quic.packet_number",
    "quic.packet_number_length", "quic.dcid", "quic.decryption_failed", "quic.frame_type",
    "quic.stream.stream_id", "quic.stream.off", "quic.stream.len", "quic.stream.fin",
    "quic.stream.offset", "quic.stream.length", "quic.ack.largest_acknowledged",
    "quic.ack.ack_delay", "quic.ack.ack_range_count", "quic.ack.first_ack_range", "quic.ack.gap",
    "quic.ack.ack_range", "quic.ack.ect0_count", "quic.ack.ect1_count", "quic.ack.ecn_ce_count",
    "quic.crypto.offset", "quic.crypto.length", "quic.padding_length", "quic.md.maximum_data",
    "quic.msd.stream_id", "quic.msd.maximum_stream_data",
)
#: Every field extracted with ``-T fields`` (order of the columns).
FIELDS = _PACKET_FIELDS + _QUIC_FIELDS
_AEAD_TAG = 16


def varint_size(v: int) -> int:
    """Bytes of the minimal QUIC variable-length encoding of ``v`` (RFC 9000 §16)."""
    if v < 0x40:
        return 1
    if v < 0x4000:
        return 2
    if v < 0x4000_0000:
        return 4
    return 8


@dataclass
class PcapTables:
    """The tables of one capture.

    Attributes:
        packets: One row per QUIC packet (coalesced packets share ``frame_no``).
        frames: One row per QUIC frame of decrypted packets.
        server: ``(address, port)`` of the server as inferred (or given).
    """

    packets: pd.DataFrame
    frames: pd.DataFrame
    server: tuple[str, int] | None

    def stream_frames(self, direction: str = "to_client", packet_type: str = "1RTT",
                      ) -> pd.DataFrame:
        """STREAM frames sent in ``direction`` in packets of ``packet_type``."""
        f = self.frames
        return f[(f["frame_type"] == "stream") & (f["direction"] == direction)
                 & (f["packet_type"] == packet_type)].reset_index(drop=True)

    def ack_ranges(self, direction: str = "to_server", packet_type: str = "1RTT",
                   ) -> pd.DataFrame:
        """ACK ranges, one row per inclusive range ``(lo, hi)`` of each ACK frame."""
        f = self.frames
        acks = f[(f["frame_type"] == "ack") & (f["direction"] == direction)
                 & (f["packet_type"] == packet_type)]
        rows = [{"time_s": r.time_s, "frame_no": r.frame_no, "packet_number": r.packet_number,
                 "lo": lo, "hi": hi}
                for r in acks.itertuples(index=False) for lo, hi in (r.ack_ranges or [])]
        return pd.DataFrame(rows, columns=["time_s", "frame_no", "packet_number", "lo", "hi"])


def _tshark(argv: Sequence[str], timeout: float) -> str:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> exit {r.returncode}: {r.stderr.strip()[-500:]}")
    return r.stdout


def _base_argv(pcap: str | Path, keylog: str | Path | None, decode_as: Iterable[str]) -> list[str]:
    argv = ["tshark", "-r", str(pcap), "-n"]
    if keylog:
        argv += ["-o", f"tls.keylog_file:{keylog}"]
    for d in decode_as:
        argv += ["-d", d]
    return argv


def _fields_rows(pcap: str | Path, keylog: str | Path | None, decode_as: Iterable[str],
                 timeout: float, *, display_filter: str = "quic",
                 fields: Sequence[str] = FIELDS) -> list[dict[str, list[str]]]:
    argv = [*_base_argv(pcap, keylog, decode_as), "-Y", display_filter, "-T", "fields",
            "-E", "header=y", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,",
            "-E", "quote=n"]
    for f in fields:
        argv += ["-e", f]
    out = _tshark(argv, timeout)
    lines = out.splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        vals = line.split("\t")
        vals += [""] * (len(header) - len(vals))
        rows.append({h: (v.split(",") if v else []) for h, v in zip(header, vals, strict=False)})
    return rows


def _walk(node: Any, wanted: frozenset[str], out: dict[str, list[str]]) -> None:
    """Collect values of ``wanted`` keys from a tshark JSON tree in document order."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in wanted and not isinstance(v, (dict, list)):
                out.setdefault(k, []).append(str(v))
            elif k in wanted and isinstance(v, list) and all(not isinstance(x, dict) for x in v):
                out.setdefault(k, []).extend(str(x) for x in v)
            else:
                _walk(v, wanted, out)
    elif isinstance(node, list):
        for x in node:
            _walk(x, wanted, out)


def _coalesced_packets(pcap: str | Path, frame_numbers: Sequence[int],
                       keylog: str | Path | None, decode_as: Iterable[str],
                       timeout: float) -> dict[int, list[dict[str, list[str]]]]:
    """frame number → per-QUIC-packet field lists, from the JSON tree."""
    out: dict[int, list[dict[str, list[str]]]] = {}
    wanted = frozenset(_QUIC_FIELDS)
    for i in range(0, len(frame_numbers), 200):
        chunk = frame_numbers[i:i + 200]
        filt = "frame.number in {" + ",".join(str(n) for n in chunk) + "}"
        # -c: stop reading after the last wanted frame (coalesced datagrams are handshake-only,
        # near the start); whether tshark counts read or displayed packets, none is missed
        argv = [*_base_argv(pcap, keylog, decode_as), "-c", str(max(chunk)), "-Y", filt,
                "-T", "json", "--no-duplicate-keys", "-J", "frame quic"]
        for pkt in json.loads(_tshark(argv, timeout) or "[]"):
            layers = pkt.get("_source", {}).get("layers", {})
            num = int(layers.get("frame", {}).get("frame.number", -1))
            quic = layers.get("quic", [])
            quic = quic if isinstance(quic, list) else [quic]
            per = []
            for q in quic:
                d: dict[str, list[str]] = {}
                _walk(q, wanted, d)
                per.append(d)
            out[num] = per
    return out


def _int(v: str | None) -> int | None:
    if v is None or v == "":
        return None
    try:
        return int(v, 0) if v.startswith("0x") else int(v)
    except ValueError:
        return None


def _flag(v: str | None) -> bool:
    return v in ("1", "True", "true")


class _Q:
    """Per-field FIFO of values for one QUIC packet."""

    def __init__(self, fields: Mapping[str, list[str]]) -> None:
        self._q = {k: deque(v) for k, v in fields.items()}

    def pop(self, name: str) -> str | None:
        q = self._q.get(name)
        return q.popleft() if q else None

    def all(self, name: str) -> list[str]:
        return list(self._q.get(name, ()))


def _encoded_size(fr: Mapping[str, Any]) -> float:
    """Encoded size of a frame from its fields (NaN when not computable)."""
    t = fr["type_code"]
    if t == 0x00:
        return float(fr.get("padding_length") or 1)
    if t in (0x01, 0x1E):
        return 1.0
    if t in (0x02, 0x03):
        size = 1 + sum(varint_size(fr[k]) for k in ("largest", "ack_delay_raw", "range_count",
                                                     "first_range"))
        size += sum(varint_size(g) + varint_size(r) for g, r in fr["gaps"])
        if t == 0x03:
            size += sum(varint_size(x) for x in fr.get("ecn", (0, 0, 0)))
        return float(size)
    if t == 0x06:
        return float(1 + varint_size(fr["offset"]) + varint_size(fr["length"]) + fr["length"])
    if 0x08 <= t <= 0x0F and not math.isnan(fr["length"]):
        size = 1 + varint_size(fr["stream_id"]) + fr["length"]
        size += varint_size(fr["offset"]) if t & 0x04 else 0
        size += varint_size(fr["length"]) if t & 0x02 else 0
        return float(size)
    if t == 0x10 and fr.get("max_data") is not None:
        return float(1 + varint_size(fr["max_data"]))
    if t == 0x11 and fr.get("msd") is not None:
        return float(1 + varint_size(fr["stream_id"]) + varint_size(fr["msd"]))
    return math.nan


def _frames_of_packet(q: _Q, payload_len: float) -> list[dict[str, Any]]:
    """Re-assemble the frames of one QUIC packet from its per-field queues."""
    frames: list[dict[str, Any]] = []
    used = 0.0
    for tstr in q.all("quic.frame_type"):
        t = _int(tstr)
        if t is None:
            continue
        fr: dict[str, Any] = {"type_code": t, "frame_type": FRAME_NAMES.get(
            t, "stream" if 0x08 <= t <= 0x0F else f"0x{t:02x}"), "stream_id": None,
            "offset": None, "length": math.nan, "fin": False, "length_reconstructed": False,
            "ack_largest": None, "ack_delay_raw": None, "ack_ranges": None}
        if 0x08 <= t <= 0x0F:
            fr["stream_id"] = _int(q.pop("quic.stream.stream_id"))
            off, has_len = _flag(q.pop("quic.stream.off")), _flag(q.pop("quic.stream.len"))
            fr["fin"] = _flag(q.pop("quic.stream.fin"))
            fr["offset"] = _int(q.pop("quic.stream.offset")) if off else 0
            if has_len:
                fr["length"] = float(_int(q.pop("quic.stream.length")) or 0)
            else:
                hdr = 1 + varint_size(fr["stream_id"] or 0)
                hdr += varint_size(fr["offset"] or 0) if off else 0
                fr["length"] = payload_len - used - hdr
                fr["length_reconstructed"] = True
        elif t in (0x02, 0x03):
            largest = _int(q.pop("quic.ack.largest_acknowledged")) or 0
            delay = _int(q.pop("quic.ack.ack_delay")) or 0
            count = _int(q.pop("quic.ack.ack_range_count")) or 0
            first = _int(q.pop("quic.ack.first_ack_range")) or 0
            gaps = [(_int(q.pop("quic.ack.gap")) or 0, _int(q.pop("quic.ack.ack_range")) or 0)
                    for _ in range(count)]
            ranges = [(largest - first, largest)]
            smallest = largest - first
            for gap, rng in gaps:  # RFC 9000 §19.3.1
                hi = smallest - gap - 2
                lo = hi - rng
                ranges.append((lo, hi))
                smallest = lo
            fr.update(ack_largest=largest, ack_delay_raw=delay, ack_ranges=ranges, largest=largest,
                      range_count=count, first_range=first, gaps=gaps)
            if t == 0x03:
                fr["ecn"] = tuple(_int(q.pop(k)) or 0 for k in (
                    "quic.ack.ect0_count", "quic.ack.ect1_count", "quic.ack.ecn_ce_count"))
        elif t == 0x06:
            fr["offset"] = _int(q.pop("quic.crypto.offset")) or 0
            fr["length"] = float(_int(q.pop("quic.crypto.length")) or 0)
        elif t == 0x00:
            fr["padding_length"] = _int(q.pop("quic.padding_length"))
        elif t == 0x10:
            fr["max_data"] = _int(q.pop("quic.md.maximum_data"))
        elif t == 0x11:
            fr["stream_id"] = _int(q.pop("quic.msd.stream_id"))
            fr["msd"] = _int(q.pop("quic.msd.maximum_stream_data"))
        size = _encoded_size(fr) if t not in range(0x08, 0x10) or not math.isnan(fr["length"]) \
            else math.nan
        used += size
        frames.append(fr)
    return frames


def _packet_rows(num: int, t: float, src: str, dst: str, sport: int, dport: int, udp_len: int,
                 packets: list[dict[str, list[str]]]) -> Iterator[tuple[dict[str, Any],
                                                                        list[dict[str, Any]]]]:
    for idx, fields in enumerate(packets):
        q = _Q(fields)
        form = _int(q.pop("quic.header_form"))
        plen = _int(q.pop("quic.packet_length"))
        if form == 0:
            ptype = "1RTT"
        else:
            ptype = LONG_TYPES.get(_int(q.pop("quic.long.packet_type")) or 0, "unknown")
        pn = _int(q.pop("quic.packet_number"))
        pn_len = _int(q.pop("quic.packet_number_length"))
        dcid = q.pop("quic.dcid") or ""
        failed = q.pop("quic.decryption_failed") is not None
        payload = math.nan
        if form == 0 and plen is not None and pn_len is not None:
            # quic.packet_number_length is the 2-bit field: bytes = value + 1
            payload = plen - 1 - len(dcid.replace(":", "")) // 2 - (pn_len + 1) - _AEAD_TAG
        frames = _frames_of_packet(q, payload) if pn is not None else []
        row = {"frame_no": num, "time_epoch": t, "src": src, "dst": dst, "sport": sport,
               "dport": dport, "udp_length": udp_len, "quic_index": idx, "packet_type": ptype,
               "packet_number": pn, "packet_length": plen, "dcid": dcid.replace(":", ""),
               "decrypted": pn is not None and not failed, "n_frames": len(frames)}
        yield row, frames


#: Extra fields of the one-pass capture load (:func:`load_capture`): TCP segments for the
#: sequence timeline, and the protocol stack to tell QUIC rows from TCP rows.
TCP_FIELDS = ("frame.protocols", "tcp.srcport", "tcp.stream", "tcp.seq", "tcp.len")
TCP_COLUMNS = ["time_epoch", "src", "sport", "stream", "seq", "length"]


def load_capture(pcap: str | Path, *, keylog: str | Path | None = None,
                 server_port: int | None = None, decode_as: Iterable[str] = (),
                 timeout: float = 600.0) -> tuple[PcapTables, pd.DataFrame]:
    """One tshark pass for every consumer: the QUIC tables and the TCP payload segments.

    Returns the same :class:`PcapTables` as an uncached :func:`load_pcap` and the same table as
    :func:`~.sources.tcp_payload` (time_epoch, src, sport, stream, seq, length, time_s). Only
    the handshake's coalesced datagrams are read again (``-T json``, the first frames only).
    """
    decode_as = tuple(decode_as)
    rows = _fields_rows(pcap, keylog, decode_as, timeout, display_filter="quic || tcp.len > 0",
                        fields=(*FIELDS, *TCP_FIELDS))
    quic_rows, tcp_rows = [], []
    for r in rows:
        if "quic" in ",".join(r.get("frame.protocols", [])).split(":"):
            quic_rows.append(r)
        elif r.get("tcp.len") and (_int(r["tcp.len"][0]) or 0) > 0:
            tcp_rows.append(r)
    tables = _tables_from_rows(pcap, quic_rows, keylog, decode_as, server_port, timeout)
    return tables, tcp_frame([[",".join(r.get(f, [])) for f in (
        "frame.time_epoch", "ip.src", "tcp.srcport", "tcp.stream", "tcp.seq", "tcp.len")]
        for r in tcp_rows])


def tcp_frame(rows: list[list[str]]) -> pd.DataFrame:
    """TCP segment rows (strings, :data:`TCP_COLUMNS` order) → the typed segment table."""
    df = pd.DataFrame(rows, columns=TCP_COLUMNS)
    for c in ("time_epoch", "sport", "stream", "seq", "length"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["time_s"] = df["time_epoch"] - (df["time_epoch"].min() if len(df) else 0.0)
    return df


def load_pcap_raw(pcap: str | Path, *, keylog: str | Path | None = None,
                  server_port: int | None = None, decode_as: Iterable[str] = (),
                  timeout: float = 600.0) -> PcapTables:
    """:func:`.pcap.load_pcap` without the cache: always runs tshark."""
    decode_as = tuple(decode_as)
    rows = _fields_rows(pcap, keylog, decode_as, timeout)
    return _tables_from_rows(pcap, rows, keylog, decode_as, server_port, timeout)


def _tables_from_rows(pcap: str | Path, rows: list[dict[str, list[str]]],
                      keylog: str | Path | None, decode_as: tuple[str, ...],
                      server_port: int | None, timeout: float) -> PcapTables:
    multi = [int(r["frame.number"][0]) for r in rows if len(r.get("quic.packet_length", [])) > 1]
    coalesced = _coalesced_packets(pcap, multi, keylog, decode_as, timeout) if multi else {}
    pkt_rows: list[dict[str, Any]] = []
    frame_rows: list[dict[str, Any]] = []
    for r in rows:
        num = int(r["frame.number"][0])
        t = float(r["frame.time_epoch"][0])
        src = (r.get("ip.src") or r.get("ipv6.src") or [""])[0]
        dst = (r.get("ip.dst") or r.get("ipv6.dst") or [""])[0]
        sport = _int((r.get("udp.srcport") or [""])[0]) or 0
        dport = _int((r.get("udp.dstport") or [""])[0]) or 0
        udp_len = _int((r.get("udp.length") or [""])[0]) or 0
        packets = coalesced.get(num) or [{k: v for k, v in r.items() if k.startswith("quic.")}]
        for prow, frames in _packet_rows(num, t, src, dst, sport, dport, udp_len, packets):
            pkt_rows.append(prow)
            for i, fr in enumerate(frames):
                frame_rows.append({"frame_no": num, "time_epoch": t, "src": src, "sport": sport,
                                   "quic_index": prow["quic_index"],
                                   "packet_type": prow["packet_type"],
                                   "packet_number": prow["packet_number"], "frame_index": i,
                                   **{k: fr.get(k) for k in (
                                       "frame_type", "stream_id", "offset", "length", "fin",
                                       "length_reconstructed", "ack_largest", "ack_delay_raw",
                                       "ack_ranges")}})
    packets_df = pd.DataFrame(pkt_rows, columns=[
        "frame_no", "time_epoch", "src", "dst", "sport", "dport", "udp_length", "quic_index",
        "packet_type", "packet_number", "packet_length", "dcid", "decrypted", "n_frames"])
    frames_df = pd.DataFrame(frame_rows, columns=[
        "frame_no", "time_epoch", "src", "sport", "quic_index", "packet_type", "packet_number",
        "frame_index", "frame_type", "stream_id", "offset", "length", "fin",
        "length_reconstructed", "ack_largest", "ack_delay_raw", "ack_ranges"])
    server = _infer_server(packets_df, server_port)
    t0 = packets_df["time_epoch"].min() if not packets_df.empty else 0.0
    for df in (packets_df, frames_df):
        df["time_s"] = df["time_epoch"] - t0
        if server is None:
            df["direction"] = "unknown"
        else:
            to_client = (df["src"] == server[0]) & (df["sport"] == server[1])
            df["direction"] = to_client.map({True: "to_client", False: "to_server"})
    for c in ("stream_id", "offset", "packet_number", "ack_largest", "ack_delay_raw"):
        frames_df[c] = pd.to_numeric(frames_df[c], errors="coerce")
    packets_df["packet_number"] = pd.to_numeric(packets_df["packet_number"], errors="coerce")
    return PcapTables(packets=packets_df, frames=frames_df, server=server)


def _infer_server(packets: pd.DataFrame, server_port: int | None) -> tuple[str, int] | None:
    if packets.empty:
        return None
    if server_port is not None:
        hit = packets[packets["dport"] == server_port]
        if not hit.empty:
            return str(hit.iloc[0]["dst"]), int(server_port)
        hit = packets[packets["sport"] == server_port]
        return (str(hit.iloc[0]["src"]), int(server_port)) if not hit.empty else None
    initial = packets[packets["packet_type"] == "initial"]
    first = initial.iloc[0] if not initial.empty else packets.iloc[0]
    return str(first["dst"]), int(first["dport"])
