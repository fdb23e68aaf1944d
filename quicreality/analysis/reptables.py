"""How a rep-level derived table is looked up, built and stored (shared by :mod:`.derive` and
:mod:`.summaries`).

A rep-level table (``rep-<n>/derived/<name>.parquet``) depends on raw files of the rep that may
depend on what the build found (``deps(meta)``: e.g. the goodput table depends on the qlogs only
when it fell back to them). Paths in a ``file`` column are stored relative to the rep folder and
served absolute again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from . import cache
from .pcap import PcapTables, load_pcap
from .qlog import frames_table
from .sources import RepFiles

__all__ = ["EventsFn", "FramesFn", "cached_table", "client_capture", "client_tables",
           "frames_once", "qlog_deps"]

#: Gives a rep's qlog events when called (loaded only when a table has to be built).
EventsFn = Callable[[], pd.DataFrame]
#: Gives ``frames_table`` of those events when called (computed once, shared by the tables).
FramesFn = Callable[[], pd.DataFrame]


def frames_once(events: EventsFn) -> FramesFn:
    """A :data:`FramesFn` that computes ``frames_table(events())`` on its first call only."""
    memo: list[pd.DataFrame] = []

    def frames() -> pd.DataFrame:
        if not memo:
            memo.append(frames_table(events()))
        return memo[0]

    return frames


def client_capture(rf: RepFiles) -> tuple[Path | None, Path | None]:
    """The client-side capture and the key log to decrypt it with (None for a pcapng with
    embedded secrets)."""
    cap = rf.client_capture
    return cap, (rf.keylog if cap is not None and cap.suffix == ".pcap" else None)


def client_tables(rf: RepFiles) -> PcapTables | None:
    """The client-side capture's tables (raw or derived), None without one."""
    cap, keylog = client_capture(rf)
    if cap is None:
        return None
    try:
        return load_pcap(cap, keylog=keylog)
    except RuntimeError:
        if cap.exists():
            raise
        return None  # pruned before it was derived


def _rel_files(df: pd.DataFrame, rep: Path) -> pd.DataFrame:
    if "file" in df.columns and len(df):
        df = df.copy()
        rel = {f: os.path.relpath(f, rep) for f in df["file"].unique()}  # a few files, many rows
        df["file"] = [rel[f] for f in df["file"]]
    return df


def _abs_files(df: pd.DataFrame, rep: Path) -> pd.DataFrame:
    if "file" in df.columns and len(df):
        absolute = {f: str(rep / f) for f in df["file"].unique()}
        df["file"] = [absolute[f] for f in df["file"]]
    return df


def cached_table(rep_dir: Path, name: str, deps: Callable[[dict[str, Any]], list[Path]],
                 build: Callable[[], tuple[pd.DataFrame, dict[str, Any]]],
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Table ``name`` of the rep if valid for ``deps(meta)``, else built and stored."""
    if not cache.enabled():
        return build()
    rc = cache.RepCache(rep_dir)
    info = rc.read_meta(name)
    if info is None:
        rc.lookup(name, [])  # a table that exists but cannot be read: warn and delete it
    else:
        hit = rc.lookup(name, deps(info.get("meta", {})))
        if hit is not None:
            return _abs_files(hit.frame, rep_dir), hit.meta
    every = deps({})
    fp_all = cache.fingerprint(rep_dir, every)
    df, meta = build()
    used = {str(p) for p in deps(meta)}
    fp = [f for f, p in zip(fp_all, every, strict=True) if str(p) in used]
    rc.store(name, _rel_files(df, rep_dir), [], meta=meta, fingerprints=fp)
    return df, meta


def qlog_deps(rf: RepFiles) -> Callable[[dict[str, Any]], list[Path]]:
    """``deps`` of a table computed from the rep's qlogs only."""
    return lambda meta: list(rf.qlogs)
