"""Small per-rep derived tables, so that notebooks that look at every rep never load full events.

A notebook that loops over all reps of a full run (``retransmits``, ``reality``) used to load
every rep's complete qlog event table (``RepView.events``: hundreds of thousands of rows, their
frames decoded from JSON) to keep a few rows of each. These tables hold just the result, in
``rep-<n>/derived/`` with the same keying, invalidation and pruning rules as every other derived
table (:mod:`.cache`, :func:`.reptables.cached_table`; schema in docs/analysis.md):

* ``loss_summary``: :func:`~.metrics.loss_summary` of the rep's qlogs (per qlog: packets
  sent / received / lost, retransmitted STREAM packets and bytes);
* ``handshake_qlog``: :func:`~.metrics.handshake_qlog` of the rep's client qlogs;
* ``reality_events``: the ``reality:*`` events of every qlog (the REALITY gate's verdicts);
* ``handshake_wire``: :func:`~.metrics.handshake_wire` of the decrypted client-side capture.

Each is computed from exactly what the uncached path computes it from, so cached and uncached
results are equal (``tests/unit/analysis/test_cache.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .metrics import handshake_qlog, handshake_wire, loss_summary
from .reptables import EventsFn, FramesFn, client_tables, frames_once
from .reptables import cached_table as _cached
from .reptables import client_capture as _client_capture
from .reptables import qlog_deps as _qlog_deps
from .sources import RepFiles

__all__ = ["HANDSHAKE_QLOG_COLUMNS", "LOSS_COLUMNS", "REALITY_EVENT_COLUMNS",
           "cached_handshake_qlog", "cached_handshake_wire", "cached_loss_summary",
           "cached_reality_events", "reality_events"]

#: Columns of ``derived/loss_summary`` (:func:`~.metrics.loss_summary`).
LOSS_COLUMNS = ["file", "vantage", "producer", "packets_sent", "packets_received",
                "packets_lost", "lost_pct", "retransmitted_packets", "retransmitted_bytes"]
#: Columns of ``derived/handshake_qlog`` (:func:`~.metrics.handshake_qlog`).
HANDSHAKE_QLOG_COLUMNS = ["file", "producer", "handshake_s", "handshake_done_s"]
#: Columns of ``derived/reality_events``; ``data`` is the event's data (a dict, JSON-stored).
REALITY_EVENT_COLUMNS = ["file", "vantage", "group_id", "time_s", "conn_time_s", "name", "data"]
_WIRE_COLUMNS = ["handshake_s", "handshake_done_s"]


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def _loss(events: EventsFn, frames: FramesFn) -> pd.DataFrame:
    ev = events()
    t = loss_summary(ev, frames()) if len(ev) else pd.DataFrame()
    return t[LOSS_COLUMNS] if len(t) else _empty(LOSS_COLUMNS)


def cached_loss_summary(rf: RepFiles, events: EventsFn, frames: FramesFn | None = None,
                        ) -> pd.DataFrame:
    """:func:`~.metrics.loss_summary` of the rep's qlogs through ``loss_summary``.

    ``frames`` gives ``frames_table(events())`` when the caller computes it anyway.
    """
    fr = frames or frames_once(events)
    return _cached(rf.path, "loss_summary", _qlog_deps(rf), lambda: (_loss(events, fr), {}))[0]


def _handshakes(events: EventsFn, frames: FramesFn) -> pd.DataFrame:
    ev = events()
    t = handshake_qlog(ev, frames()) if len(ev) else pd.DataFrame()
    return t[HANDSHAKE_QLOG_COLUMNS] if len(t) else _empty(HANDSHAKE_QLOG_COLUMNS)


def cached_handshake_qlog(rf: RepFiles, events: EventsFn, frames: FramesFn | None = None,
                          ) -> pd.DataFrame:
    """:func:`~.metrics.handshake_qlog` of the rep's qlogs through ``handshake_qlog``."""
    fr = frames or frames_once(events)
    return _cached(rf.path, "handshake_qlog", _qlog_deps(rf),
                   lambda: (_handshakes(events, fr), {}))[0]


def reality_events(events: pd.DataFrame) -> pd.DataFrame:
    """The ``reality:*`` events (``name`` starts with ``reality:``) of a qlog event table."""
    if events.empty:
        return _empty(REALITY_EVENT_COLUMNS)
    v = events[events["name"].str.startswith("reality:")]
    cols = {c: (v[c] if c in v.columns else pd.Series([None] * len(v), index=v.index,
                                                      dtype=object))
            for c in REALITY_EVENT_COLUMNS}
    return pd.DataFrame(cols).reset_index(drop=True) if len(v) else _empty(REALITY_EVENT_COLUMNS)


def cached_reality_events(rf: RepFiles, events: EventsFn) -> pd.DataFrame:
    """:func:`reality_events` of the rep's qlogs through ``reality_events``."""
    return _cached(rf.path, "reality_events", _qlog_deps(rf),
                   lambda: (reality_events(events()), {}))[0]


def cached_handshake_wire(rf: RepFiles) -> dict[str, float] | None:
    """:func:`~.metrics.handshake_wire` of the client-side capture (None without one)."""
    cap, keylog = _client_capture(rf)
    if cap is None:
        return None
    caps: list[Path] = [p for p in (cap, keylog) if p is not None]

    def build() -> tuple[pd.DataFrame, dict[str, Any]]:
        tables = client_tables(rf)
        if tables is None:
            return pd.DataFrame({c: pd.Series(dtype=float) for c in _WIRE_COLUMNS}), {}
        h = handshake_wire(tables)
        return pd.DataFrame([{c: float(h[c]) for c in _WIRE_COLUMNS}]), {}

    df, _ = _cached(rf.path, "handshake_wire", lambda meta: caps, build)
    if df.empty:
        return None
    return {c: float(df[c].iloc[0]) for c in _WIRE_COLUMNS}
