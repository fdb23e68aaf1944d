"""Thin, lazy views of a run and of one rep, for the notebooks.

>>> run = RunView.open()            # $QR_RUN_DIR, else the newest results/runs/*, else captures/
>>> run.summary()                   # per workload × metric: n, median, min, max
>>> rep = run.rep("ours-ours")      # first pair, rep 1 (one with captures if there is one)
>>> rep.events                      # normalised qlog events of every endpoint
>>> rep.client_pcap                 # PcapTables of the decrypted client-side capture
>>> rep.loss_summary                # per qlog: sent/lost/retransmitted (small derived table)

Nothing is parsed until it is asked for, and each table is parsed once.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import derive, summaries
from .iperf3 import Iperf3Result, load_iperf3
from .metrics import retransmissions
from .pcap import PcapTables, load_pcap
from .qlog import frames_table, load_qlogs
from .results import default_run, load_checks, load_manifests, load_samples, rep_dirs
from .sources import RepFiles, derived_rep_files, rep_files

__all__ = ["RepView", "RunView"]


@dataclass
class RepView:
    """One ``rep-<n>`` folder."""

    path: Path
    workload: str
    pair: str
    rep: int

    @functools.cached_property
    def files(self) -> RepFiles:
        """Captures, key log, qlogs and iperf3 outputs found in the folder."""
        return rep_files(self.path)

    @functools.cached_property
    def derived_files(self) -> RepFiles:
        """:attr:`files` plus the captures pruned after they were derived (``derive``)."""
        return derived_rep_files(self.path)

    @property
    def has_capture(self) -> bool:
        """True if a client-side capture is present (or was derived before it was pruned)."""
        return self.derived_files.client_capture is not None

    @property
    def has_both_captures(self) -> bool:
        """True if the client-side and the server-side capture are both present (or derived)."""
        f = self.derived_files
        return f.client_capture is not None and f.server_pcap is not None

    @functools.cached_property
    def events(self) -> pd.DataFrame:
        """qlog events of every endpoint (``load_qlogs``)."""
        return load_qlogs(self.files.qlogs) if self.files.qlogs else load_qlogs([])

    def _events(self) -> pd.DataFrame:
        return self.events

    @functools.cached_property
    def _frame_table(self) -> pd.DataFrame:
        return frames_table(self.events)

    def _frames(self) -> pd.DataFrame:
        return self._frame_table

    @functools.cached_property
    def metrics(self) -> pd.DataFrame:
        """Forward-filled recovery metrics (RTT, cwnd, bytes in flight) per qlog."""
        return derive.cached_metrics(self.files, self._events)

    @functools.cached_property
    def rtt(self) -> pd.DataFrame:
        """RTT samples (latest/smoothed/min) of every endpoint."""
        return derive.cached_rtt(self.files, self._events)

    @functools.cached_property
    def qlog_packets(self) -> pd.DataFrame:
        """Packets sent, received, lost and newly acked per qlog (``derive.qlog_packet_events``)."""
        return derive.cached_qlog_packets(self.files, self._events, self._frames)

    @functools.cached_property
    def loss_summary(self) -> pd.DataFrame:
        """Per qlog: packets sent/received/lost, retransmitted STREAM packets and bytes.

        :func:`~.metrics.loss_summary` of :attr:`events`, through the rep's small
        ``loss_summary`` table (the events are only loaded to derive it).
        """
        return summaries.cached_loss_summary(self.files, self._events, self._frames)

    @functools.cached_property
    def handshake_qlog(self) -> pd.DataFrame:
        """Per client qlog: the handshake times (:func:`~.metrics.handshake_qlog`), cached."""
        return summaries.cached_handshake_qlog(self.files, self._events, self._frames)

    @functools.cached_property
    def reality_events(self) -> pd.DataFrame:
        """The ``reality:*`` qlog events (the REALITY gate's verdicts), cached.

        Columns file, vantage, group_id, time_s, conn_time_s, name, data (a dict).
        """
        return summaries.cached_reality_events(self.files, self._events)

    @functools.cached_property
    def handshake_wire(self) -> dict[str, float] | None:
        """:func:`~.metrics.handshake_wire` of the client-side capture (None without one)."""
        return summaries.cached_handshake_wire(self.derived_files)

    @functools.cached_property
    def client_pcap(self) -> PcapTables | None:
        """The decrypted client-side capture (None without one)."""
        return derive.client_tables(self.derived_files)

    @functools.cached_property
    def server_pcap(self) -> PcapTables | None:
        """The server-side capture, decrypted with the key log (None without one)."""
        f = self.derived_files
        if f.server_pcap is None:
            return None
        try:
            return load_pcap(f.server_pcap, keylog=f.keylog)
        except RuntimeError:
            if f.server_pcap.exists():
                raise
            return None  # pruned before it was derived

    @functools.cached_property
    def iperf3(self) -> Iperf3Result | None:
        """The first parsable iperf3 JSON output (None without one)."""
        for p in self.files.iperf3:
            try:
                return load_iperf3(p)
            except ValueError:
                continue
        return None

    def goodput(self, interval_s: float = 0.25) -> pd.DataFrame:
        """Goodput timeline: from the client-side capture if any, else the client's qlog."""
        return derive.cached_goodput(self.derived_files, self._events, interval_s)

    def retransmissions(self) -> pd.DataFrame:
        """Retransmitted STREAM ranges of the server with spurious flags (server-side pcap).

        Falls back to the client-side capture (where every repeat seen is a duplicate arrival,
        hence spurious by construction) when the server side is missing.
        """
        tables = self.server_pcap or self.client_pcap
        if tables is None:
            return retransmissions(pd.DataFrame(columns=["time_s", "packet_number", "stream_id",
                                                         "offset", "length"]))
        return retransmissions(tables.stream_frames("to_client"), tables.ack_ranges("to_server"))

    def link_loss(self, direction: str = "to_client") -> tuple[dict[str, float], pd.DataFrame]:
        """Loss and one-way delay on the link in ``direction`` (needs both captures).

        The server is the receiver of the first Initial in the client-side capture.
        """
        return derive.cached_link_loss(self.derived_files, direction)


class RunView:
    """A run folder: its reps, samples, checks and manifests."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.reps = rep_dirs(self.path)

    @classmethod
    def open(cls, path: str | Path | None = None) -> RunView:
        """``path``, else ``$QR_RUN_DIR``, else :func:`~.results.default_run`."""
        chosen = path or os.environ.get("QR_RUN_DIR") or default_run()
        return cls(chosen)

    def __repr__(self) -> str:
        return f"RunView({self.path}, {len(self.reps)} reps)"

    @functools.cached_property
    def samples(self) -> pd.DataFrame:
        """samples.jsonl rows of every rep."""
        return load_samples(self.path)

    @functools.cached_property
    def checks(self) -> pd.DataFrame:
        """check.json of every rep."""
        return load_checks(self.path)

    @functools.cached_property
    def manifests(self) -> pd.DataFrame:
        """manifest.json key fields of every rep."""
        return load_manifests(self.path)

    @property
    def workloads(self) -> list[str]:
        """Workload names in this run."""
        return list(dict.fromkeys(self.reps["workload"]))

    def summary(self, metrics: list[str] | None = None) -> pd.DataFrame:
        """Per workload/pair × metric: n, median, min, max (and unit)."""
        s = self.samples
        if metrics:
            s = s[s["metric"].isin(metrics)]
        if s.empty:
            return pd.DataFrame(columns=["workload", "pair", "metric", "n", "median", "min",
                                         "max", "unit"])
        g = s.groupby(["workload", "pair", "metric"])
        out = g["value"].agg(n="count", median="median", min="min", max="max")
        out["unit"] = g["unit"].first()
        return out.reset_index()

    def goodput_values(self, metric: str | None = None) -> dict[str, list[float]]:
        """``workload/pair`` → per-rep goodput values (the runner's wire goodput)."""
        from .regression import pick_metric

        m = pick_metric(self.samples, metric)
        s = self.samples[self.samples["metric"] == m]
        return {f"{w}/{p}": list(g["value"]) for (w, p), g in s.groupby(["workload", "pair"])}

    def rep(self, workload: str | None = None, pair: str | None = None, rep: int | None = None,
            *, prefer_capture: bool = True) -> RepView:
        """One rep (default: the first workload; a rep with a client capture if any)."""
        r = self.reps
        if workload is not None:
            r = r[r["workload"] == workload]
        if pair is not None:
            r = r[r["pair"] == pair]
        if rep is not None:
            r = r[r["rep"] == rep]
        if r.empty:
            raise KeyError(f"no rep for workload={workload} pair={pair} rep={rep} in {self.path}")
        views = [RepView(Path(x.path), x.workload, x.pair, int(x.rep))
                 for x in r.itertuples(index=False)]
        if prefer_capture:  # a rep with its raw capture first, else one with derived tables
            for has in (lambda v: v.files.client_capture is not None, lambda v: v.has_capture):
                with_cap = [v for v in views if has(v)]
                if with_cap:
                    return with_cap[0]
        return views[0]

    def all_reps(self, workload: str | None = None) -> list[RepView]:
        """Every rep (of one workload)."""
        r = self.reps if workload is None else self.reps[self.reps["workload"] == workload]
        return [RepView(Path(x.path), x.workload, x.pair, int(x.rep))
                for x in r.itertuples(index=False)]
