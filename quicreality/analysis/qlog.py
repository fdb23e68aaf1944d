"""qlog in every flavour we meet → one normalised, tidy event table.

Theory of operation
-------------------
Containers (:func:`read_traces`):

* **JSON** (``{"qlog_format": "JSON", "traces": [...]}``; aioquic), one or more traces, events as
  objects or (draft-01) as arrays described by ``event_fields``;
* **JSON-SEQ** (RFC 7464: records prefixed by ``0x1E``, the first is the header with one
  ``trace``; ours, ngtcp2, quic-go ≥ 0.36);
* **NDJSON** (one JSON object per line, header first; quic-go 0.29's draft-02).

Event names (:func:`canonical_name`) are mapped onto the qlog 0.3 names that qvis uses
(``transport:packet_sent``, ``recovery:metrics_updated``, ``recovery:packet_lost`` ...): the
current drafts' ``quic:`` names (``quic:recovery_metrics_updated``, ``quic:packet_lost``,
``quic:timer_updated`` ...) and ``h3:`` names are translated. ``event`` is the part after the
colon.

Time bases (:func:`_event_times_ms`) — all normalised to **seconds**:

* 0.3 ``time_format`` ``absolute`` (the default; aioquic writes epoch milliseconds), ``relative``
  (to ``reference_time``, a number of ms: epoch for quic-go, our monotonic ``now`` for ours, 0 for
  ngtcp2) or ``delta`` (to the previous event);
* draft ``relative_to_epoch`` with a ``reference_time`` object (``clock_type`` system/monotonic,
  ``epoch``, quic-go's ``wall_clock_time``; our ``quicreality_reference_now_ms`` extension) and
  ``relative_to_previous_event``.

``time_s`` is seconds since the trace's first event ("connection start" from that endpoint's
point of view). ``time_abs_s`` is the absolute time when the clock is known, with ``clock`` =
``epoch`` | ``monotonic`` | ``unknown``; :func:`load_qlogs` adds ``conn_time_s``, seconds since
the earliest event of the connection (``group_id``) across the traces that share a clock, so the
client's and the server's view line up when both were written on one host.

Field differences handled: ``owner`` vs ``initiator``; ``cwnd`` (aioquic) vs
``congestion_window``; packet_lost's ``header.packet_number`` vs aioquic's top-level
``type``/``packet_number``; stream/crypto frame ``length`` vs ``raw.length``; ack ranges
``[[n]]`` vs ``[[lo, hi]]``; integer-millisecond RTTs (ngtcp2); metrics that carry only the
fields that changed (quic-go) — see :func:`metrics_table` which forward-fills them.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "QLOG_SUFFIXES",
    "QlogTrace",
    "canonical_name",
    "find_qlogs",
    "frames_table",
    "is_qlog_name",
    "load_qlog",
    "load_qlogs",
    "metrics_table",
    "read_traces",
]

QLOG_SUFFIXES = (".sqlog", ".qlog", ".json", ".jsonl", ".ndjson")
#: Names of files that are qlogs for sure (also gzipped: ``x.sqlog.gz``).
QLOG_NAMES = (".sqlog", ".qlog", ".sqlog.gz", ".qlog.gz")
_RS = "\x1e"

#: draft (``quic:``) event -> 0.3 name, where the category is not simply ``transport``.
_DRAFT_TO_03: dict[str, str] = {
    "recovery_metrics_updated": "recovery:metrics_updated",
    "recovery_parameters_set": "recovery:parameters_set",
    "metrics_updated": "recovery:metrics_updated",
    "packet_lost": "recovery:packet_lost",
    "congestion_state_updated": "recovery:congestion_state_updated",
    "loss_timer_updated": "recovery:loss_timer_updated",
    "timer_updated": "recovery:loss_timer_updated",
    "marked_for_retransmit": "recovery:marked_for_retransmit",
    "ecn_state_updated": "recovery:ecn_state_updated",
    "server_listening": "connectivity:server_listening",
    "connection_started": "connectivity:connection_started",
    "connection_closed": "connectivity:connection_closed",
    "connection_id_updated": "connectivity:connection_id_updated",
    "connection_state_updated": "connectivity:connection_state_updated",
    "spin_bit_updated": "connectivity:spin_bit_updated",
    "path_assigned": "connectivity:path_assigned",
    "tuple_assigned": "connectivity:path_assigned",
    "mtu_updated": "connectivity:mtu_updated",
    "key_updated": "security:key_updated",
    "key_discarded": "security:key_retired",
    "key_retired": "security:key_retired",
}

#: metric field -> output column (RTTs in ms keep an ``_ms`` suffix).
_METRICS: dict[str, str] = {
    "min_rtt": "min_rtt_ms",
    "smoothed_rtt": "smoothed_rtt_ms",
    "latest_rtt": "latest_rtt_ms",
    "rtt_variance": "rtt_variance_ms",
    "congestion_window": "cwnd",
    "cwnd": "cwnd",
    "bytes_in_flight": "bytes_in_flight",
    "ssthresh": "ssthresh",
    "packets_in_flight": "packets_in_flight",
    "pacing_rate": "pacing_rate",
    "pto_count": "pto_count",
}
METRIC_COLUMNS = tuple(dict.fromkeys(_METRICS.values()))

EVENT_COLUMNS = (
    "file", "producer", "flavour", "vantage", "group_id", "time_s", "time_abs_s", "clock",
    "name", "event", "category", "name_raw", "packet_type", "packet_number", "length",
    "trigger", *METRIC_COLUMNS, "cc_state", "cc_state_old", "owner", "frames", "data",
)


def canonical_name(name: str) -> str:
    """The qlog 0.3 (qvis) name of ``name`` (``quic:packet_lost`` → ``recovery:packet_lost``)."""
    if ":" not in name:
        return name
    cat, ev = name.split(":", 1)
    if cat == "quic":
        return _DRAFT_TO_03.get(ev, f"transport:{ev}")
    if cat == "h3":
        return f"http:{ev}"
    if cat == "recovery" and ev == "recovery_metrics_updated":
        return "recovery:metrics_updated"
    return name


@dataclass
class QlogTrace:
    """One trace: its header fields and raw events (each a dict with time/name/data)."""

    path: Path
    container: str  #: "json" | "json-seq" | "ndjson"
    header: dict[str, Any]
    trace: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def common_fields(self) -> dict[str, Any]:
        """``trace.common_fields`` (empty dict if absent)."""
        cf = self.trace.get("common_fields") or {}
        return cf if isinstance(cf, dict) else {}

    @property
    def vantage(self) -> str:
        """``client``, ``server``, ``network`` or ``unknown``."""
        vp = self.trace.get("vantage_point") or {}
        t = vp.get("type") if isinstance(vp, dict) else None
        if t:
            return str(t)
        stem = self.path.stem.lower()
        for side in ("client", "server"):
            if stem.endswith(side):
                return side
        return "unknown"

    @property
    def flavour(self) -> str:
        """``0.3``, ``draft-02`` ..., or ``draft`` (file_schema headers)."""
        if "file_schema" in self.header:
            return "draft"
        return str(self.header.get("qlog_version", "unknown"))

    @property
    def producer(self) -> str:
        """Best guess of who wrote it: ours, quicgo, aioquic, ngtcp2 or unknown."""
        title = str(self.header.get("title", "")).lower()
        vp = self.trace.get("vantage_point") or {}
        vname = str(vp.get("name", "")).lower() if isinstance(vp, dict) else ""
        if "quicreality" in title:
            return "ours"
        if "quic-go" in title:
            return "quicgo"
        if "ngtcp2" in vname or "ngtcp2" in title:
            return "ngtcp2"
        if "aioquic" in vname or "aioquic" in title:
            return "aioquic"
        return "unknown"

    @property
    def group_id(self) -> str:
        """``group_id`` or ``ODCID`` from the common fields (or the file stem)."""
        cf = self.common_fields
        gid = cf.get("group_id") or cf.get("ODCID") or cf.get("odcid")
        return str(gid) if gid else self.path.stem.split("_")[0]


def _events_from_arrays(trace: Mapping[str, Any]) -> list[dict[str, Any]]:
    """draft-01 traces: events as arrays described by ``event_fields``."""
    names = list(trace.get("event_fields") or [])
    out = []
    for arr in trace.get("events") or []:
        if isinstance(arr, dict):
            out.append(arr)
            continue
        rec = dict(zip(names, arr, strict=False))
        if "category" in rec and "event" in rec and "name" not in rec:
            rec["name"] = f"{rec.pop('category')}:{rec.pop('event')}"
        for tkey in ("relative_time", "delta_time"):
            if tkey in rec and "time" not in rec:
                rec["time"] = rec.pop(tkey)
        out.append(rec)
    return out


def read_traces(path: str | Path) -> list[QlogTrace]:
    """Parse a qlog file of any container into traces (no normalisation yet).

    Raises:
        ValueError: If the file is not recognisably qlog.
    """
    p = Path(path)
    if p.name.endswith(".gz"):  # the committed sample keeps its qlogs gzipped
        with gzip.open(p, "rt", errors="replace") as f:
            text = f.read()
    else:
        text = p.read_text(errors="replace")
    stripped = text.lstrip(" \t\r\n")  # not lstrip(): Python counts RS (0x1E) as whitespace
    if not stripped:
        return []
    if stripped[0] == _RS:
        return [_trace_from_stream(p, "json-seq", _loads_tolerant(text.split(_RS)))]
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        recs = _loads_tolerant(text.splitlines())
        if not recs:
            raise ValueError(f"{p}: not JSON, JSON-SEQ or NDJSON") from None
        return [_trace_from_stream(p, "ndjson", recs)]
    if isinstance(doc, dict) and "traces" in doc:
        header = {k: v for k, v in doc.items() if k != "traces"}
        return [QlogTrace(p, "json", header, t, _events_from_arrays(t))
                for t in doc["traces"] if isinstance(t, dict)]
    if isinstance(doc, dict) and "trace" in doc:  # a header-only JSON-SEQ/NDJSON file
        return [_trace_from_stream(p, "ndjson", [doc])]
    raise ValueError(f"{p}: no qlog traces found")


def _loads_tolerant(chunks: Iterable[str]) -> list[Any]:
    """JSON records, skipping ones that do not parse (a peer killed mid-write truncates the
    last record: ngtcp2 and quic-go do not flush on SIGTERM)."""
    out = []
    for chunk in chunks:
        c = chunk.strip(" \t\r\n").lstrip(_RS)
        if c:
            try:
                out.append(json.loads(c))
            except json.JSONDecodeError:
                continue
    return out


def _trace_from_stream(p: Path, container: str, recs: list[Any]) -> QlogTrace:
    header: dict[str, Any] = {}
    if recs and isinstance(recs[0], dict) and ("trace" in recs[0] or "qlog_version" in recs[0]
                                               or "file_schema" in recs[0]):
        header = recs.pop(0)
    trace = header.get("trace") if isinstance(header.get("trace"), dict) else {}
    hdr = {k: v for k, v in header.items() if k != "trace"}
    events = [r for r in recs if isinstance(r, dict) and "name" in r]
    return QlogTrace(p, container, hdr, trace or {}, events)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v) if math.isfinite(v) else None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _event_times_ms(trace: QlogTrace) -> tuple[list[float], float | None, str]:
    """Per-event time in ms on the trace's own base, the base's absolute ms, and the clock."""
    cf = trace.common_fields
    conf = trace.trace.get("configuration") or {}
    fmt = str(cf.get("time_format") or trace.header.get("time_format") or "").lower()
    raw = [_num(e.get("time")) or 0.0 for e in trace.events]
    if fmt in ("delta", "relative_to_previous_event"):
        acc, out = 0.0, []
        for t in raw:
            acc += t
            out.append(acc)
        raw = out
    offset = _num(conf.get("time_offset")) if isinstance(conf, dict) else None
    if offset:
        raw = [t + offset for t in raw]
    ref = cf.get("reference_time")
    if isinstance(ref, dict):  # draft reference_time object
        clock = str(ref.get("clock_type", "system"))
        epoch = str(ref.get("epoch", "1970-01-01T00:00:00.000Z"))
        wall = _num(ref.get("wall_clock_time"))
        if clock == "system" and epoch != "unknown":
            return raw, 0.0, "epoch"
        our_ref = _num(cf.get("quicreality_reference_now_ms"))
        if our_ref is not None:
            return raw, our_ref, "monotonic"
        if wall is not None:
            return raw, wall, "epoch"
        return raw, None, "unknown"
    ref_ms = _num(ref)
    if fmt in ("relative", "relative_to_epoch") or ref_ms is not None:
        if ref_ms is None or ref_ms == 0:
            if fmt == "relative_to_epoch" and raw and min(raw) > 1e11:
                return raw, 0.0, "epoch"
            return raw, None, "unknown"
        return raw, ref_ms, "epoch" if ref_ms > 1e11 else "monotonic"
    # 0.3 "absolute" (the default): aioquic writes epoch milliseconds
    if raw and min(raw) > 1e11:
        return raw, 0.0, "epoch"
    return raw, None, "unknown"


def _frame_length(fr: Mapping[str, Any]) -> float | None:
    n = _num(fr.get("length"))
    if n is None and isinstance(fr.get("raw"), dict):
        n = _num(fr["raw"].get("length"))
    return n


def _flatten(ev: Mapping[str, Any]) -> dict[str, Any]:
    """Per-event columns common to all flavours (see :data:`EVENT_COLUMNS`)."""
    raw_data = ev.get("data")
    data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    row: dict[str, Any] = {"data": data}
    raw_hdr = data.get("header")
    hdr: dict[str, Any] = raw_hdr if isinstance(raw_hdr, dict) else {}
    row["packet_type"] = hdr.get("packet_type", data.get("packet_type", data.get("type")))
    pn = hdr.get("packet_number", data.get("packet_number"))
    row["packet_number"] = _num(pn)
    length = None
    if isinstance(data.get("raw"), dict):
        length = _num(data["raw"].get("length"))
    if length is None:
        length = _num(hdr.get("packet_size", data.get("packet_size", hdr.get("length"))))
    row["length"] = length
    trig = data.get("trigger")
    row["trigger"] = str(trig) if trig is not None else None
    for key, col in _METRICS.items():
        if key in data:
            row[col] = _num(data[key])
    if "new" in data and isinstance(data.get("new"), (str, int)):
        row["cc_state"] = str(data["new"])
        if data.get("old") is not None:
            row["cc_state_old"] = str(data["old"])
    owner = data.get("owner", data.get("initiator"))
    if owner is not None:
        row["owner"] = str(owner)
    frames = data.get("frames")
    if isinstance(frames, list):
        row["frames"] = frames
    return row


def load_qlog(path: str | Path) -> pd.DataFrame:
    """All traces of one qlog file as a tidy event table (columns :data:`EVENT_COLUMNS`).

    Inside a rep folder the table is read from (and the first time written to) the rep's
    derived cache (:mod:`.cache`).
    """
    from .capcache import cached_qlog  # the cache needs pyarrow; keep this import lazy

    return cached_qlog(path, load_qlog_raw)


def load_qlog_raw(path: str | Path) -> pd.DataFrame:
    """:func:`load_qlog` without the cache: always parses the file."""
    frames = [_trace_frame(t) for t in read_traces(path)]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return _empty_events()
    if len(frames) == 1:
        return frames[0]  # already indexed 0..n-1
    return pd.concat(frames, ignore_index=True)


_EMPTY_EVENTS: pd.DataFrame | None = None


def _empty_events() -> pd.DataFrame:
    global _EMPTY_EVENTS
    if _EMPTY_EVENTS is None:
        _EMPTY_EVENTS = pd.DataFrame({c: pd.Series(dtype="object") for c in EVENT_COLUMNS})
    return _EMPTY_EVENTS.copy()


#: Event columns that are numbers (float, NaN when absent or not a number).
_NUMERIC_COLUMNS = frozenset(("packet_number", "length", "time_abs_s", *METRIC_COLUMNS))
#: Columns no event had: ``None`` for these, NaN for the others.
_NONE_IF_ABSENT = frozenset(("frames", "cc_state", "cc_state_old", "owner"))


def _trace_frame(trace: QlogTrace) -> pd.DataFrame:
    if not trace.events:
        return _empty_events()
    times, base_ms, clock = _event_times_ms(trace)
    t0 = min(times)
    rows = []
    for ev, t in zip(trace.events, times, strict=False):
        raw_name = str(ev.get("name", ""))
        name = canonical_name(raw_name)
        row = _flatten(ev)
        row["name_raw"] = raw_name
        row["name"] = name
        row["category"], _, row["event"] = name.partition(":")
        row["time_s"] = (t - t0) / 1000.0
        row["time_abs_s"] = (base_ms + t) / 1000.0 if base_ms is not None else math.nan
        rows.append(row)
    n = len(rows)
    constant = {"file": str(trace.path), "producer": trace.producer, "flavour": trace.flavour,
                "vantage": trace.vantage, "group_id": trace.group_id, "clock": clock}
    present: set[str] = set()
    for row in rows:
        present.update(row)
    # One constructor over whole columns (per-column assignment costs a pandas call each).
    columns: dict[str, Any] = {}
    for c in EVENT_COLUMNS:
        if c in constant:
            columns[c] = [constant[c]] * n
        elif c in _NUMERIC_COLUMNS:  # values are float or None (_num), time_abs_s a float
            columns[c] = np.array([math.nan if (v := row.get(c)) is None else v for row in rows]
                                  if c in present else [math.nan] * n, dtype=np.float64)
        elif c not in present:
            columns[c] = [None if c in _NONE_IF_ABSENT else math.nan] * n
        else:
            columns[c] = [row.get(c, math.nan) for row in rows]
    df = pd.DataFrame(columns)
    time_s = columns["time_s"]
    if not all(a <= b for a, b in pairwise(time_s)):  # a NaN compares False: sort
        df = df.sort_values("time_s", kind="stable").reset_index(drop=True)
    return df


def is_qlog_name(path: str | Path) -> bool:
    """True for ``*.sqlog``/``*.qlog`` (optionally ``.gz``)."""
    return str(path).endswith(QLOG_NAMES)


def find_qlogs(directory: str | Path, *, strict: bool = True) -> list[Path]:
    """qlog files under ``directory`` (recursive), sorted; empty files skipped.

    ``strict`` (default) keeps only ``.sqlog``/``.qlog`` (and their ``.gz``); otherwise any
    ``.json``/``.jsonl``/``.ndjson`` is tried too.
    """
    d = Path(directory)
    if d.is_file():
        return [d]

    def ok(p: Path) -> bool:
        return is_qlog_name(p) or (not strict and p.suffix in QLOG_SUFFIXES
                                   and not p.name.startswith(("manifest", "check", "report")))
    return sorted(p for p in d.rglob("*") if p.is_file() and ok(p) and p.stat().st_size > 0)


def load_qlogs(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Several qlog files (or a directory of them) as one event table with ``conn_time_s``.

    Files that fail to parse are skipped with a ``UserWarning``.
    """
    import warnings

    if isinstance(paths, (str, Path)):
        paths = find_qlogs(paths)
    parts = []
    for p in paths:
        try:
            df = load_qlog(p)
        except (ValueError, json.JSONDecodeError, OSError) as exc:
            warnings.warn(f"skipping {p}: {exc}", stacklevel=2)
            continue
        if not df.empty:
            parts.append(df)
    if not parts:
        out = _empty_events()
        out["conn_time_s"] = pd.Series(dtype=float)
        return out
    df = pd.concat(parts, ignore_index=True)
    df["conn_time_s"] = df["time_s"]
    known = df["clock"].isin(["epoch", "monotonic"]) & df["time_abs_s"].notna()
    if known.any():
        start = df[known].groupby(["group_id", "clock"])["time_abs_s"].transform("min")
        df.loc[known, "conn_time_s"] = df.loc[known, "time_abs_s"] - start
    return df


def metrics_table(events: pd.DataFrame, *, ffill: bool = True) -> pd.DataFrame:
    """``recovery:metrics_updated`` rows, one column per metric, forward-filled per trace.

    quic-go and ours log only the fields that changed; forward-filling per file gives the
    state after each update.
    """
    # .eq, not ==: atheris's comparison tracing (the qlog-loader fuzz target) keeps a reference
    # to every result of == that is not a bool, so a Series mask per call (docs/security.md).
    m = events[events["name"].eq("recovery:metrics_updated")].copy()
    cols = [c for c in METRIC_COLUMNS if c in m.columns]
    if ffill and not m.empty:
        m[cols] = m.groupby("file")[cols].ffill()
    keep = ["file", "producer", "vantage", "group_id", "time_s", "conn_time_s", *cols]
    return m[[c for c in keep if c in m.columns]].reset_index(drop=True)


def _ack_ranges(fr: Mapping[str, Any]) -> list[tuple[int, int]]:
    out = []
    for r in fr.get("acked_ranges") or []:
        if isinstance(r, (list, tuple)) and r:
            lo, hi = int(r[0]), int(r[-1])
            out.append((min(lo, hi), max(lo, hi)))
        elif isinstance(r, (int, float)):
            out.append((int(r), int(r)))
    return out


def _iter_frames(events: pd.DataFrame) -> Iterator[dict[str, Any]]:
    cols = ["file", "vantage", "group_id", "time_s", "name", "packet_type", "packet_number",
            "frames"]
    has_conn = "conn_time_s" in events.columns
    if has_conn:
        cols.append("conn_time_s")
    sub = events[events["name"].isin(["transport:packet_sent", "transport:packet_received"])]
    for rec in sub[cols].itertuples(index=False):
        frames = rec.frames if isinstance(rec.frames, list) else []
        for idx, fr in enumerate(frames):
            if not isinstance(fr, dict):
                continue
            ftype = str(fr.get("frame_type", "unknown"))
            row = {"file": rec.file, "vantage": rec.vantage, "group_id": rec.group_id,
                   "time_s": rec.time_s,
                   "direction": "sent" if rec.name.endswith("sent") else "received",
                   "packet_type": rec.packet_type, "packet_number": rec.packet_number,
                   "frame_index": idx, "frame_type": ftype,
                   "stream_id": _num(fr.get("stream_id")),
                   "offset": _num(fr.get("offset")) if ftype in ("stream", "crypto") else None,
                   "length": _frame_length(fr), "fin": bool(fr.get("fin", False)),
                   "ack_delay_ms": _num(fr.get("ack_delay")),
                   "acked_ranges": _ack_ranges(fr) if ftype == "ack" else None}
            if has_conn:
                row["conn_time_s"] = rec.conn_time_s
            if ftype == "stream" and row["offset"] is None:
                row["offset"] = 0.0  # RFC 9000 §19.8: absent offset means 0
            yield row


def frames_table(events: pd.DataFrame) -> pd.DataFrame:
    """One row per frame of every ``packet_sent``/``packet_received`` event.

    Columns: file, vantage, group_id, time_s, direction (sent|received), packet_type,
    packet_number, frame_index, frame_type, stream_id, offset, length, fin, ack_delay_ms,
    acked_ranges (list of inclusive ``(lo, hi)``), and conn_time_s when present.
    """
    rows = list(_iter_frames(events))
    cols = ["file", "vantage", "group_id", "time_s", "direction", "packet_type", "packet_number",
            "frame_index", "frame_type", "stream_id", "offset", "length", "fin", "ack_delay_ms",
            "acked_ranges"]
    if "conn_time_s" in events.columns:
        cols.append("conn_time_s")
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    df = pd.DataFrame(rows, columns=cols)
    for c in ("stream_id", "offset", "length", "packet_number", "ack_delay_ms"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df
