"""Thin, lazy views of a run and of one rep, for the notebooks.

>>> run = RunView.open()            # $QR_RUN_DIR, else the newest results/runs/*, else captures/
>>> run.summary()                   # per workload × metric: n, median, min, max
>>> rep = run.rep("ours-ours")      # first pair, rep 1 (one with captures if there is one)
>>> rep.events                      # normalised qlog events of every endpoint
>>> rep.client_pcap                 # PcapTables of the decrypted client-side capture

Nothing is parsed until it is asked for, and each table is parsed once.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .iperf3 import Iperf3Result, load_iperf3
from .metrics import (
    goodput_timeline,
    link_loss,
    new_bytes,
    qlog_received_stream,
    retransmissions,
    rtt_samples,
)
from .pcap import PcapTables, load_pcap
from .pcapfile import read_udp
from .qlog import load_qlogs, metrics_table
from .results import default_run, load_checks, load_manifests, load_samples, rep_dirs
from .sources import RepFiles, rep_files, response_frames

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

    @property
    def has_capture(self) -> bool:
        """True if a client-side capture is present."""
        return self.files.client_capture is not None

    @property
    def has_both_captures(self) -> bool:
        """True if the client-side and the server-side capture are both present."""
        return self.files.client_capture is not None and self.files.server_pcap is not None

    @functools.cached_property
    def events(self) -> pd.DataFrame:
        """qlog events of every endpoint (``load_qlogs``)."""
        return load_qlogs(self.files.qlogs) if self.files.qlogs else load_qlogs([])

    @functools.cached_property
    def metrics(self) -> pd.DataFrame:
        """Forward-filled recovery metrics (RTT, cwnd, bytes in flight) per qlog."""
        return metrics_table(self.events)

    @functools.cached_property
    def rtt(self) -> pd.DataFrame:
        """RTT samples (latest/smoothed/min) of every endpoint."""
        return rtt_samples(self.events)

    @functools.cached_property
    def client_pcap(self) -> PcapTables | None:
        """The decrypted client-side capture (None without one)."""
        cap = self.files.client_capture
        if cap is None:
            return None
        return load_pcap(cap, keylog=self.files.keylog if cap.suffix == ".pcap" else None)

    @functools.cached_property
    def server_pcap(self) -> PcapTables | None:
        """The server-side capture, decrypted with the key log (None without one)."""
        if self.files.server_pcap is None:
            return None
        return load_pcap(self.files.server_pcap, keylog=self.files.keylog)

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
        if self.client_pcap is not None:
            sf = response_frames(self.client_pcap.stream_frames("to_client"))
            if not sf.empty:
                return goodput_timeline(new_bytes(sf), interval_s=interval_s)
        if not self.events.empty:
            sf = response_frames(qlog_received_stream(self.events, "client"))
            if not sf.empty:
                return goodput_timeline(new_bytes(sf), interval_s=interval_s)
        return pd.DataFrame(columns=["t_start", "t_end", "bytes", "mbps"])

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
        c, s = self.files.client_pcap or self.files.client_pcapng, self.files.server_pcap
        if c is None or s is None:
            raise FileNotFoundError(f"{self.path}: needs client- and server-side captures")
        server = self.client_pcap.server if self.client_pcap is not None else None
        server_addr = server[0] if server else None
        if direction == "to_client":
            return link_loss(s, c, src=server_addr)
        client_addr = next((d.src for d in read_udp(c) if d.src != server_addr), None)
        return link_loss(c, s, src=client_addr)


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
        if prefer_capture:
            with_cap = [v for v in views if v.has_capture]
            if with_cap:
                return with_cap[0]
        return views[0]

    def all_reps(self, workload: str | None = None) -> list[RepView]:
        """Every rep (of one workload)."""
        r = self.reps if workload is None else self.reps[self.reps["workload"] == workload]
        return [RepView(Path(x.path), x.workload, x.pair, int(x.rep))
                for x in r.itertuples(index=False)]
