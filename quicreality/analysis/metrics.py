"""Derived metrics from the normalised qlog/pcap/iperf3 tables.

Conventions: times in seconds (``time_s``), rates in Mbit/s (10^6 bit/s), RTTs in ms.

* **Goodput** counts application bytes the first time they are seen (:func:`new_bytes`), so a
  retransmitted or duplicated range counts once. :func:`goodput_overall` is quic-interop-runner's
  definition (file bytes over first-to-last server 1-RTT payload packet at the client-side
  capture); :func:`goodput_timeline` bins the first-seen bytes.
* **Retransmissions** (:func:`retransmissions`): a STREAM range the sender already sent before;
  **spurious** if a packet that carried it earlier was acknowledged (ACK ranges in the capture),
  i.e. the original had arrived.
* **Loss at the bottleneck** (:func:`link_loss`): datagrams in the sender-side capture whose
  payload never shows up in the receiver-side capture (:mod:`.pcapfile`), plus the one-way
  delay of those that did.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .pcap import PcapTables
from .pcapfile import read_udp
from .qlog import frames_table, metrics_table

__all__ = [
    "RangeSet",
    "goodput_overall",
    "goodput_timeline",
    "handshake_qlog",
    "handshake_wire",
    "link_loss",
    "loss_summary",
    "new_bytes",
    "qlog_received_stream",
    "retransmissions",
    "rtt_samples",
]


class RangeSet:
    """Disjoint half-open integer ranges with "add and tell me what was new"."""

    def __init__(self) -> None:
        self._lo: list[int] = []
        self._hi: list[int] = []

    def add(self, lo: int, hi: int) -> int:
        """Add ``[lo, hi)``; return how many of its bytes were not covered before."""
        if hi <= lo:
            return 0
        i = bisect.bisect_left(self._hi, lo)  # first range that ends at/after lo
        j = i
        covered = 0
        new_lo, new_hi = lo, hi
        while j < len(self._lo) and self._lo[j] <= hi:
            covered += max(0, min(hi, self._hi[j]) - max(lo, self._lo[j]))
            new_lo = min(new_lo, self._lo[j])
            new_hi = max(new_hi, self._hi[j])
            j += 1
        self._lo[i:j] = [new_lo]
        self._hi[i:j] = [new_hi]
        return (hi - lo) - covered

    def __contains__(self, x: int) -> bool:
        i = bisect.bisect_right(self._lo, x) - 1
        return i >= 0 and self._lo[i] <= x < self._hi[i]

    @property
    def total(self) -> int:
        """Bytes covered."""
        return sum(h - lo for lo, h in zip(self._lo, self._hi, strict=False))


def new_bytes(frames: pd.DataFrame, time_col: str = "time_s") -> pd.DataFrame:
    """First-seen bytes per STREAM frame (in time order), per ``stream_id``.

    Args:
        frames: STREAM frames with ``stream_id``, ``offset``, ``length`` and ``time_col``.

    Returns:
        ``frames`` sorted by time with a ``new_bytes`` column.
    """
    f = frames.dropna(subset=["offset", "length"]).sort_values(time_col, kind="stable").copy()
    sets: dict[Any, RangeSet] = defaultdict(RangeSet)
    out = []
    for sid, off, ln in zip(f["stream_id"], f["offset"], f["length"], strict=False):
        out.append(sets[sid].add(int(off), int(off) + int(ln)))
    f["new_bytes"] = np.asarray(out, dtype=float)
    return f.reset_index(drop=True)


def qlog_received_stream(events: pd.DataFrame, vantage: str = "client") -> pd.DataFrame:
    """STREAM frames received by ``vantage`` (1-RTT) from a qlog event table."""
    fr = frames_table(events[events["vantage"] == vantage])
    return fr[(fr["frame_type"] == "stream") & (fr["direction"] == "received")].reset_index(
        drop=True)


def goodput_timeline(frames: pd.DataFrame, *, interval_s: float | None = 0.5,
                     n_intervals: int | None = None, time_col: str = "time_s",
                     span: tuple[float, float] | None = None) -> pd.DataFrame:
    """First-seen bytes binned over time → Mbit/s per bin.

    Give either a fixed ``interval_s`` or ``n_intervals`` equal bins over ``span`` (default: the
    first to the last frame carrying new bytes).

    Returns:
        Columns t_start, t_end, bytes, mbps (one row per bin, empty bins included).
    """
    nb = frames if "new_bytes" in frames.columns else new_bytes(frames, time_col)
    nb = nb[nb["new_bytes"] > 0]
    cols = ["t_start", "t_end", "bytes", "mbps"]
    if nb.empty:
        return pd.DataFrame(columns=cols)
    t = nb[time_col].to_numpy(dtype=float)
    lo, hi = span if span is not None else (float(t.min()), float(t.max()))
    if hi <= lo:
        return pd.DataFrame(columns=cols)
    if n_intervals is not None:
        edges = np.linspace(lo, hi, n_intervals + 1)
    else:
        step = float(interval_s or 0.5)
        edges = np.arange(lo, hi + step, step)
        if len(edges) < 2:
            edges = np.array([lo, lo + step])
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(edges) - 2)
    sums = np.bincount(idx, weights=nb["new_bytes"].to_numpy(dtype=float),
                       minlength=len(edges) - 1)
    widths = np.diff(edges)
    return pd.DataFrame({"t_start": edges[:-1], "t_end": edges[1:], "bytes": sums,
                         "mbps": sums * 8 / widths / 1e6})


def goodput_overall(tables: PcapTables, file_bytes: int | None = None) -> dict[str, float]:
    """quic-interop-runner's goodput at the client-side capture.

    ``file_bytes`` × 8 over first → last server 1-RTT packet carrying STREAM data. Without
    ``file_bytes`` the first-seen bytes of the largest stream are used (HTTP/3 framing
    included, a few bytes more than the file).
    """
    sf = tables.stream_frames("to_client")
    if sf.empty:
        return {"first_s": math.nan, "last_s": math.nan, "duration_s": math.nan,
                "bytes": math.nan, "mbps": math.nan}
    first, last = float(sf["time_s"].min()), float(sf["time_s"].max())
    if file_bytes is None:
        nb = new_bytes(sf)
        file_bytes = int(nb.groupby("stream_id")["new_bytes"].sum().max())
    dur = last - first
    return {"first_s": first, "last_s": last, "duration_s": dur, "bytes": float(file_bytes),
            "mbps": file_bytes * 8 / dur / 1e6 if dur > 0 else math.nan}


def rtt_samples(events: pd.DataFrame, vantage: str | None = None) -> pd.DataFrame:
    """RTT over time: rows of metrics updates that carried ``latest_rtt`` (no forward fill).

    Columns: file, vantage, time_s, conn_time_s, latest_rtt_ms, smoothed_rtt_ms (forward-filled
    per file), min_rtt_ms (forward-filled), rtt_variance_ms.
    """
    m = metrics_table(events, ffill=False)
    filled = metrics_table(events, ffill=True)
    if vantage is not None:
        keep = m["vantage"] == vantage
        m, filled = m[keep], filled[keep]
    has = m["latest_rtt_ms"].notna() & (m["latest_rtt_ms"] > 0) if "latest_rtt_ms" in m else \
        pd.Series(False, index=m.index)
    out = filled[has.to_numpy()].copy()
    cols = ["file", "vantage", "time_s", "conn_time_s", "latest_rtt_ms", "smoothed_rtt_ms",
            "min_rtt_ms", "rtt_variance_ms"]
    return out[[c for c in cols if c in out.columns]].reset_index(drop=True)


def _frames_of(frames: pd.DataFrame | None, ev: pd.DataFrame, file: Any, vantage: Any,
               ) -> pd.DataFrame:
    """``frames_table(ev)``, or its rows in ``frames`` (the whole event table's, computed once)."""
    if frames is None:
        return frames_table(ev)
    return frames[(frames["file"] == file) & (frames["vantage"] == vantage)]


def loss_summary(events: pd.DataFrame, frames: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per qlog file: packets sent/received/lost, lost %, retransmitted STREAM packets and bytes.

    "retransmitted" here comes from the sender's own log: packets whose STREAM frames repeat
    bytes it had already sent (:func:`retransmissions` on the ``packet_sent`` frames).
    ``frames``: ``frames_table(events)`` if the caller has it already (same result, faster).
    """
    rows = []
    for (file, vantage, producer), ev in events.groupby(["file", "vantage", "producer"]):
        sent = int((ev["name"] == "transport:packet_sent").sum())
        recv = int((ev["name"] == "transport:packet_received").sum())
        lost = int((ev["name"] == "recovery:packet_lost").sum())
        fr = _frames_of(frames, ev, file, vantage)
        sf = fr[(fr["frame_type"] == "stream") & (fr["direction"] == "sent")]
        rt = retransmissions(sf) if not sf.empty else pd.DataFrame()
        rows.append({"file": file, "vantage": vantage, "producer": producer,
                     "packets_sent": sent, "packets_received": recv, "packets_lost": lost,
                     "lost_pct": 100.0 * lost / sent if sent else math.nan,
                     "retransmitted_packets": int(rt["packet_number"].nunique()) if len(rt) else 0,
                     "retransmitted_bytes": float(rt["retx_bytes"].sum()) if len(rt) else 0.0})
    return pd.DataFrame(rows)


def _acked_set(acks: pd.DataFrame) -> RangeSet:
    rs = RangeSet()
    for lo, hi in zip(acks["lo"], acks["hi"], strict=False):
        rs.add(int(lo), int(hi) + 1)
    return rs


def retransmissions(stream_frames: pd.DataFrame, acks: pd.DataFrame | None = None,
                    time_col: str = "time_s") -> pd.DataFrame:
    """STREAM ranges the sender sent again (one row per frame that repeated bytes).

    Args:
        stream_frames: The sender's STREAM frames (pcap ``stream_frames(direction)`` or qlog
            ``packet_sent`` frames): stream_id, offset, length, packet_number, ``time_col``.
        acks: ACK ranges for the sender's packets (``PcapTables.ack_ranges``: lo, hi); when
            given, ``spurious`` is True if an earlier packet carrying these bytes was acked.

    Returns:
        Columns time_s, packet_number, stream_id, offset, length, retx_bytes, orig_packets
        (packet numbers that carried the bytes before) and spurious (or None without acks).
    """
    f = stream_frames.dropna(subset=["offset", "length"]).sort_values(time_col, kind="stable")
    acked = _acked_set(acks) if acks is not None and len(acks) else None
    sets: dict[Any, RangeSet] = defaultdict(RangeSet)
    segs: dict[Any, list[tuple[int, int, float]]] = defaultdict(list)  # (lo, hi, pn) by lo
    maxlen: dict[Any, int] = defaultdict(int)
    rows = []
    for t, pn, sid, off, ln in zip(f[time_col], f["packet_number"], f["stream_id"], f["offset"],
                                   f["length"], strict=False):
        lo, hi = int(off), int(off) + int(ln)
        new = sets[sid].add(lo, hi)
        if new < hi - lo:
            lst = segs[sid]
            start = bisect.bisect_left(lst, (lo - maxlen[sid], -1, -1.0))
            orig = sorted({p for a, b, p in lst[start:] if a < hi and b > lo and p != pn
                           and not (isinstance(p, float) and math.isnan(p))})
            spurious = None
            if acked is not None:
                spurious = any(int(p) in acked for p in orig)
            rows.append({"time_s": t, "packet_number": pn, "stream_id": sid, "offset": lo,
                         "length": hi - lo, "retx_bytes": (hi - lo) - new,
                         "orig_packets": [int(p) for p in orig], "spurious": spurious})
        bisect.insort(segs[sid], (lo, hi, pn))
        maxlen[sid] = max(maxlen[sid], hi - lo)
    return pd.DataFrame(rows, columns=["time_s", "packet_number", "stream_id", "offset",
                                       "length", "retx_bytes", "orig_packets", "spurious"])


def handshake_wire(tables: PcapTables) -> dict[str, float]:
    """Handshake timing at a capture: client's first Initial → its first 1-RTT packet
    (``handshake_s``, the runner's definition) and → the first HANDSHAKE_DONE seen
    (``handshake_done_s``)."""
    p, f = tables.packets, tables.frames
    init = p[(p["direction"] == "to_server") & (p["packet_type"] == "initial")]
    if init.empty:
        return {"handshake_s": math.nan, "handshake_done_s": math.nan}
    t0 = float(init["time_s"].min())
    c1 = p[(p["direction"] == "to_server") & (p["packet_type"] == "1RTT")]
    hd = f[(f["frame_type"] == "handshake_done") & (f["direction"] == "to_client")]
    return {"handshake_s": float(c1["time_s"].min()) - t0 if not c1.empty else math.nan,
            "handshake_done_s": float(hd["time_s"].min()) - t0 if not hd.empty else math.nan}


def handshake_qlog(events: pd.DataFrame, frames: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per client qlog: first packet sent → first 1-RTT packet sent (``handshake_s``) and →
    HANDSHAKE_DONE received (``handshake_done_s``).

    ``frames``: ``frames_table(events)`` if the caller has it already (same result, faster).
    """
    rows = []
    for file, ev in events[events["vantage"] == "client"].groupby("file"):
        sent = ev[ev["name"] == "transport:packet_sent"]
        if sent.empty:
            continue
        t0 = float(sent["time_s"].min())
        one = sent[sent["packet_type"] == "1RTT"]
        fr = _frames_of(frames, ev, file, "client")
        hd = fr[(fr["frame_type"] == "handshake_done") & (fr["direction"] == "received")]
        rows.append({"file": file, "producer": ev["producer"].iloc[0],
                     "handshake_s": float(one["time_s"].min()) - t0 if len(one) else math.nan,
                     "handshake_done_s": float(hd["time_s"].min()) - t0 if len(hd) else math.nan})
    return pd.DataFrame(rows, columns=["file", "producer", "handshake_s", "handshake_done_s"])


def link_loss(sender_side: str | Path, receiver_side: str | Path, *, src: str | None = None,
              sport: int | None = None) -> tuple[dict[str, float], pd.DataFrame]:
    """Datagrams lost between two captures of one direction of the link.

    Args:
        sender_side: Capture at the sending end (e.g. the server side for ``to_client``).
        receiver_side: Capture at the receiving end.
        src: Only datagrams from this address (e.g. the server's); default: all.
        sport: Only datagrams from this UDP port.

    Returns:
        A summary (sent, delivered, lost, loss_pct, unmatched_arrivals, owd_median_ms) and a
        per-datagram table (time_s from the first sent, length, delivered, owd_ms).
    """
    def keep(d: Any) -> bool:
        return (src is None or d.src == src) and (sport is None or d.sport == sport)

    sent = [d for d in read_udp(sender_side) if keep(d)]
    arrived: dict[bytes, list[float]] = defaultdict(list)
    for d in read_udp(receiver_side):
        if keep(d):
            arrived[d.digest].append(d.time)
    for v in arrived.values():
        v.reverse()  # pop() gives the earliest
    n_arrived = sum(len(v) for v in arrived.values())
    rows = []
    t0 = sent[0].time if sent else 0.0
    for d in sent:
        times = arrived.get(d.digest)
        t_recv = times.pop() if times else None
        rows.append({"time_s": d.time - t0, "length": d.length, "delivered": t_recv is not None,
                     "owd_ms": (t_recv - d.time) * 1000 if t_recv is not None else math.nan})
    df = pd.DataFrame(rows, columns=["time_s", "length", "delivered", "owd_ms"])
    n_sent = len(df)
    delivered = int(df["delivered"].sum()) if n_sent else 0
    summary = {"sent": float(n_sent), "delivered": float(delivered),
               "lost": float(n_sent - delivered),
               "loss_pct": 100.0 * (n_sent - delivered) / n_sent if n_sent else math.nan,
               "unmatched_arrivals": float(n_arrived - delivered),
               "owd_median_ms": float(df["owd_ms"].median()) if delivered else math.nan}
    return summary, df


def cdf(values: Iterable[float]) -> pd.DataFrame:
    """Empirical CDF: columns value, p (for step plots)."""
    v = np.asarray(list(values), dtype=float)
    v = np.sort(v[~np.isnan(v)])
    return pd.DataFrame({"value": v, "p": np.arange(1, len(v) + 1) / max(len(v), 1)})


def counts(values: Iterable[Any]) -> dict[Any, int]:
    """A plain dict of value counts (handy in notebooks and reports)."""
    return dict(Counter(values))
