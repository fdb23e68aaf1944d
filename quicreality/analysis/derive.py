"""Precompute every derived table of a run, in parallel; the rep-level derived tables.

    python -m quicreality.analysis derive RUN_DIR [--force] [--jobs N]

Per rep (``rep-<n>/derived/``, schema in docs/analysis.md), besides the per-file tables of
:mod:`.capcache` (captures, TCP segments, qlog events) and the verdict's ``slices``
(:func:`~.sources.cached_slice_source`):

* ``goodput``: first-seen stream bytes the goodput timeline is binned from
  (:meth:`~.views.RepView.goodput`: the client-side capture, else the client's qlog);
* ``rtt``: :func:`~.metrics.rtt_samples` of the qlogs; ``cwnd``: the forward-filled recovery
  metrics (:func:`~.qlog.metrics_table`: cwnd, bytes in flight, ssthresh, RTTs);
* ``qlog_packets``: one row per packet sent / received / lost / newly acked, per qlog;
* ``link_loss.to_client`` / ``link_loss.to_server``: :func:`~.metrics.link_loss`'s
  per-datagram table (its summary in the metadata);
* the small summaries of :mod:`.summaries` (``loss_summary``, ``handshake_qlog``,
  ``reality_events``, ``handshake_wire``), so notebooks that visit every rep stay fast.

Every reader goes through the same functions, so the first load of a table writes it and
``derive`` only does that up front for all reps at once, one worker process per core, and
prints its progress and the time spent per phase.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd

from . import cache, summaries
from .capcache import derive_capture
from .metrics import (
    RangeSet,
    frames_table,
    goodput_timeline,
    link_loss,
    new_bytes,
    qlog_received_stream,
    rtt_samples,
)
from .qlog import load_qlogs, metrics_table
from .reptables import EventsFn, FramesFn, client_tables, frames_once
from .reptables import cached_table as _cached
from .reptables import client_capture as _client_capture
from .reptables import qlog_deps as _qlog_deps
from .results import rep_dirs
from .sources import (
    SLICE_COLUMNS,
    RepFiles,
    cached_slice_source,
    derived_rep_files,
    record_files,
    response_frames,
)

__all__ = ["PACKET_EVENT_COLUMNS", "cached_goodput", "cached_link_loss", "cached_metrics",
           "cached_qlog_packets", "cached_rtt", "derive_rep", "derive_run", "main",
           "qlog_packet_events"]

GOODPUT_COLUMNS = ["t_start", "t_end", "bytes", "mbps"]
#: Columns of ``derived/qlog_packets``.
PACKET_EVENT_COLUMNS = ["file", "vantage", "group_id", "event", "time_s", "conn_time_s",
                        "packet_type", "packet_number", "length"]


# -- goodput ------------------------------------------------------------------------------------

def cached_goodput(rf: RepFiles, events: EventsFn, interval_s: float = 0.25) -> pd.DataFrame:
    """:meth:`~.views.RepView.goodput` through the ``goodput`` table (first-seen bytes)."""
    cap, keylog = _client_capture(rf)
    caps = [p for p in (cap, keylog) if p is not None]

    def deps(meta: dict[str, Any]) -> list[Path]:
        return caps if meta.get("source") == "capture" else [*caps, *rf.qlogs]

    def build() -> tuple[pd.DataFrame, dict[str, Any]]:
        tables = client_tables(rf)
        if tables is not None:
            sf = response_frames(tables.stream_frames("to_client"))
            if not sf.empty:
                return _first_seen(sf), {"source": "capture"}
        ev = events()
        if not ev.empty:
            sf = response_frames(qlog_received_stream(ev, "client"))
            if not sf.empty:
                return _first_seen(sf), {"source": "qlog"}
        return pd.DataFrame({c: pd.Series(dtype=float) for c in SLICE_COLUMNS}), {"source": ""}

    nb, meta = _cached(rf.path, "goodput", deps, build)
    if not meta.get("source"):
        return pd.DataFrame(columns=GOODPUT_COLUMNS)
    return goodput_timeline(nb, interval_s=interval_s)


def _first_seen(frames: pd.DataFrame) -> pd.DataFrame:
    nb = new_bytes(frames)
    return nb[[c for c in SLICE_COLUMNS if c in nb.columns]]


# -- qlog series ----------------------------------------------------------------------------------

def cached_rtt(rf: RepFiles, events: EventsFn) -> pd.DataFrame:
    """:func:`~.metrics.rtt_samples` of the rep's qlogs through the ``rtt`` table."""
    return _cached(rf.path, "rtt", _qlog_deps(rf), lambda: (rtt_samples(events()), {}))[0]


def cached_metrics(rf: RepFiles, events: EventsFn) -> pd.DataFrame:
    """:func:`~.qlog.metrics_table` (forward-filled) through the ``cwnd`` table."""
    return _cached(rf.path, "cwnd", _qlog_deps(rf), lambda: (metrics_table(events()), {}))[0]


def qlog_packet_events(events: pd.DataFrame, frames: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per packet sent, received, declared lost or newly acknowledged, per qlog.

    ``acked`` rows come from the ACK frames the endpoint received: each packet number of its
    own (same packet number space) the first time an ACK covers it, at that ACK's time.
    ``frames``: ``frames_table(events)`` if the caller has it already.
    """
    names = {"transport:packet_sent": "sent", "transport:packet_received": "received",
             "recovery:packet_lost": "lost"}
    if events.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PACKET_EVENT_COLUMNS})
    ev = events[events["name"].isin(list(names))]
    out = pd.DataFrame({"file": ev["file"], "vantage": ev["vantage"],
                        "group_id": ev["group_id"], "event": ev["name"].map(names),
                        "time_s": ev["time_s"], "conn_time_s": ev["conn_time_s"],
                        "packet_type": ev["packet_type"], "packet_number": ev["packet_number"],
                        "length": ev["length"]})
    fr = frames_table(events) if frames is None else frames
    rows: list[dict[str, Any]] = []
    if len(fr):
        acks = fr[(fr["frame_type"] == "ack") & (fr["direction"] == "received")]
        seen: dict[tuple[Any, Any], RangeSet] = defaultdict(RangeSet)
        for r in acks.sort_values("time_s", kind="stable").itertuples(index=False):
            acked = seen[(r.file, r.packet_type)]
            for lo, hi in r.acked_ranges or []:
                if acked.add(int(lo), int(hi) + 1) == 0:
                    continue
                for pn in range(int(lo), int(hi) + 1):
                    rows.append({"file": r.file, "vantage": r.vantage, "group_id": r.group_id,
                                 "event": "acked", "time_s": r.time_s,
                                 "conn_time_s": getattr(r, "conn_time_s", r.time_s),
                                 "packet_type": r.packet_type, "packet_number": float(pn),
                                 "length": float("nan")})
    # a range that was partly acked before repeats some packet numbers: keep the first ack
    acked_df = pd.DataFrame(rows, columns=PACKET_EVENT_COLUMNS).drop_duplicates(
        ["file", "packet_type", "packet_number"])
    both = pd.concat([out, acked_df], ignore_index=True) if len(acked_df) else out
    both = both.sort_values(["file", "time_s"], kind="stable").reset_index(drop=True)
    return both[PACKET_EVENT_COLUMNS]


def cached_qlog_packets(rf: RepFiles, events: EventsFn, frames: FramesFn | None = None,
                        ) -> pd.DataFrame:
    """:func:`qlog_packet_events` of the rep through the ``qlog_packets`` table."""
    fr = frames or frames_once(events)
    return _cached(rf.path, "qlog_packets", _qlog_deps(rf),
                   lambda: (qlog_packet_events(events(), fr()), {}))[0]


# -- link loss ----------------------------------------------------------------------------------

def cached_link_loss(rf: RepFiles, direction: str = "to_client",
                     ) -> tuple[dict[str, float], pd.DataFrame]:
    """:meth:`~.views.RepView.link_loss` through ``link_loss.<direction>``.

    Raises:
        FileNotFoundError: Without both captures (raw or derived).
    """
    c, s = rf.client_pcap or rf.client_pcapng, rf.server_pcap
    if c is None or s is None:
        raise FileNotFoundError(f"{rf.path}: needs client- and server-side captures")
    cap, keylog = _client_capture(rf)
    deps = [p for p in (c, s, cap, keylog) if p is not None]

    def build() -> tuple[pd.DataFrame, dict[str, Any]]:
        tables = client_tables(rf)
        server = tables.server if tables is not None else None
        server_addr = server[0] if server else None
        if direction == "to_client":
            summary, df = link_loss(s, c, src=server_addr)
        else:
            from .pcapfile import read_udp

            client_addr = next((d.src for d in read_udp(c) if d.src != server_addr), None)
            summary, df = link_loss(c, s, src=client_addr)
        return df, {"summary": summary}

    df, meta = _cached(rf.path, f"link_loss.{direction}", lambda m: deps, build)
    return {k: float(v) for k, v in meta["summary"].items()}, df


# -- the run ------------------------------------------------------------------------------------

def derive_rep(rep_dir: str | Path) -> dict[str, float]:
    """Derive (or validate) every table of one rep; seconds spent per phase."""
    t: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        t[phase] = t.get(phase, 0.0) + now - t0
        t0 = now

    rf = derived_rep_files(rep_dir)
    lap("scan")
    cap, keylog = _client_capture(rf)
    for p, k in ((cap, keylog), (rf.server_pcap, rf.keylog)):
        if p is not None:
            derive_capture(p, keylog=k)
    record_files(rf)
    lap("tshark")
    ev: list[pd.DataFrame] = []

    def events() -> pd.DataFrame:
        if not ev:
            ev.append(load_qlogs(rf.qlogs))
        return ev[0]

    events()
    lap("qlog")
    cached_slice_source(rf.path)
    lap("slices")
    cached_goodput(rf, events)
    lap("goodput")
    cached_rtt(rf, events)
    cached_metrics(rf, events)
    lap("rtt_cwnd")
    frames = frames_once(events)  # decoded once for qlog_packets and the summaries
    cached_qlog_packets(rf, events, frames)
    lap("qlog_packets")
    summaries.cached_loss_summary(rf, events, frames)
    summaries.cached_handshake_qlog(rf, events, frames)
    summaries.cached_reality_events(rf, events)
    summaries.cached_handshake_wire(rf)
    lap("summaries")
    if (rf.client_pcap or rf.client_pcapng) is not None and rf.server_pcap is not None:
        for direction in ("to_client", "to_server"):
            cached_link_loss(rf, direction)
    lap("link_loss")
    return t


def _label(row: Any) -> str:
    return f"{row.workload}/{row.pair}/rep-{row.rep}"


def derive_run(run_dir: str | Path, *, force: bool = False, jobs: int | None = None,
               progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Derive every rep of ``run_dir`` in parallel (``jobs`` processes, default: the cores).

    Args:
        run_dir: A run folder (``results/runs/<UTC time>-<git sha>``).
        force: Delete every rep's ``derived/`` first (re-derive from the raw files).
        jobs: Worker processes (1: in this process).
        progress: Called with one line per finished rep (default: print to stderr).

    Returns:
        ``{"reps", "seconds", "phases": {phase: seconds summed over reps}, "failed": [...],
        "raw_bytes", "derived_bytes"}``.
    """
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    reps = rep_dirs(run_dir)
    if force:
        for p in reps["path"]:
            shutil.rmtree(Path(p) / cache.DERIVED_DIR, ignore_errors=True)
    n = len(reps)
    jobs = max(1, jobs or os.cpu_count() or 1)
    phases: dict[str, float] = defaultdict(float)
    failed: list[str] = []
    start = time.perf_counter()

    def done(i: int, label: str, t: dict[str, float] | None, err: str = "") -> None:
        if t is None:
            failed.append(f"{label}: {err}")
            say(f"[{i}/{n}] {label}  FAILED: {err}")
            return
        for k, v in t.items():
            phases[k] += v
        parts = ", ".join(f"{k} {v:.1f}" for k, v in t.items() if v >= 0.05)
        say(f"[{i}/{n}] {label}  {sum(t.values()):.1f} s  ({parts})")

    rows = list(reps.itertuples(index=False))
    if jobs == 1 or n <= 1:
        for i, r in enumerate(rows, 1):
            try:
                done(i, _label(r), derive_rep(r.path))
            except Exception as exc:  # noqa: BLE001 - one bad rep must not stop the others
                done(i, _label(r), None, f"{type(exc).__name__}: {exc}")
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, n)) as pool:
            futs = {pool.submit(derive_rep, r.path): r for r in rows}
            for i, fut in enumerate(as_completed(futs), 1):
                r = futs[fut]
                try:
                    done(i, _label(r), fut.result())
                except Exception as exc:  # noqa: BLE001
                    done(i, _label(r), None, f"{type(exc).__name__}: {exc}")
    raw = derived = 0
    for p in Path(run_dir).rglob("*"):
        if p.is_file():
            if cache.DERIVED_DIR in p.relative_to(run_dir).parts[:-1]:
                derived += p.stat().st_size
            else:
                raw += p.stat().st_size
    return {"reps": n, "seconds": time.perf_counter() - start, "phases": dict(phases),
            "failed": failed, "raw_bytes": raw, "derived_bytes": derived, "jobs": jobs}


def main(argv: Sequence[str] | None = None) -> int:
    """``derive RUN_DIR [--force] [--jobs N]``; exit 1 if a rep failed, 2 on usage errors."""
    ap = argparse.ArgumentParser(
        prog="python -m quicreality.analysis derive",
        description="Precompute the derived tables (rep-N/derived/*.parquet) of a run: "
                    "captures through tshark once, qlogs, goodput, RTT/cwnd, verdict slices.")
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--force", action="store_true",
                    help="delete the existing derived tables and derive again")
    ap.add_argument("--jobs", type=int, default=None,
                    help="worker processes (default: the number of cores)")
    args = ap.parse_args(argv)
    if not args.run_dir.is_dir():
        print(f"derive: {args.run_dir} is not a directory", file=sys.stderr)
        return 2
    if not cache.enabled():
        print(f"derive: the cache is disabled (${cache.CACHE_ENV})", file=sys.stderr)
        return 2
    res = derive_run(args.run_dir, force=args.force, jobs=args.jobs)
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(res["phases"].items(),
                                                           key=lambda kv: -kv[1]))
    print(f"derived {res['reps']} reps of {args.run_dir} in {res['seconds']:.1f} s "
          f"with {res['jobs']} workers; per phase (summed over reps): {phases}")
    print(f"raw files {res['raw_bytes'] / 1e6:.1f} MB, derived tables "
          f"{res['derived_bytes'] / 1e6:.1f} MB")
    for f in res["failed"]:
        print(f"failed: {f}", file=sys.stderr)
    return 1 if res["failed"] else 0
