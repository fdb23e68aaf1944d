"""Sweeps read back from the results store: goodput per stack against the configured link.

:func:`open_sweep` builds (incrementally) the store of a results root (``$QR_RESULTS``, default
``results/``) and picks a sweep (``$QR_SWEEP``, default the newest one). Without any sweep it
falls back to one ordinary run (``$QR_RUN_DIR`` or the newest run) as a single point, in a
temporary store that :meth:`SweepSource.close` removes. :func:`sweep_points` is the per-point
table, :func:`sweep_plot` draws goodput against loss per RTT with the Mathis bound
(:func:`mathis_mbit`) for reference. ``notebooks/sweeps.py`` is the front end;
``python -m quicreality.analysis.sweeps [--results DIR] [--sweep NAME] [--png OUT]`` prints the
per-point table and where the points ran, and writes the plot as a PNG (:func:`main`).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import plots, store
from .results import REPO_ROOT
from .views import RunView

__all__ = ["SweepSource", "main", "mathis_mbit", "open_sweep", "sweep_plot", "sweep_points",
           "where_ran"]

#: TCP MSS of the Mathis reference curve: a 1500-byte MTU less IPv4, TCP and timestamps.
MATHIS_MSS = 1448


@dataclass(frozen=True, slots=True)
class SweepSource:
    """A store and the sweep in it to read (``sweep`` None: a single ordinary run)."""

    results: Path
    sweep: str | None
    temporary: bool = False

    @property
    def where(self) -> str:
        """The SQL filter selecting this sweep's samples."""
        return "TRUE" if self.sweep is None else f"sweep = '{self.sweep.replace(chr(39), '')}'"

    def query(self, sql: str) -> pd.DataFrame:
        """Run ``sql`` over this store's ``samples`` view."""
        return store.query(sql, self.results)

    def close(self) -> None:
        """Remove the temporary store of the single-run fallback."""
        if self.temporary:
            shutil.rmtree(self.results, ignore_errors=True)


def open_sweep(results: str | Path | None = None, sweep: str | None = None) -> SweepSource:
    """The newest (or the named) sweep in ``results``' store, building the store first."""
    root = Path(results or os.environ.get("QR_RESULTS") or REPO_ROOT / "results")
    sweep = sweep or os.environ.get("QR_SWEEP") or None
    if (root / "runs").is_dir() and any((root / "runs").glob("*/run.json")):
        store.build_store(root)
        found = store.query("SELECT sweep, max(started) AS last FROM samples WHERE sweep IS NOT "
                            "NULL GROUP BY sweep ORDER BY last DESC", root)
        names = [str(s) for s in found["sweep"]]
        if sweep is not None and sweep not in names:
            raise ValueError(f"no sweep {sweep!r} in {root}/store (found: {names or 'none'})")
        if names:
            return SweepSource(results=root, sweep=sweep or names[0])
    if sweep is not None:
        raise ValueError(f"no sweep {sweep!r}: {root} has no runs")
    run = RunView.open().path
    tmp = Path(tempfile.mkdtemp(prefix="qr-sweeps-"))
    shutil.copytree(run, tmp / "runs" / run.name)
    store.build_store(tmp)
    return SweepSource(results=tmp, sweep=None, temporary=True)


def sweep_points(src: SweepSource, metric: str = "goodput") -> pd.DataFrame:
    """Per workload and point: median, min and max of ``metric`` over the passing reps."""
    return src.query(f"""
        SELECT workload, client, server, link_loss, rtt_ms, link_rate_mbit,
               median(value) AS median, min(value) AS lo, max(value) AS hi, count(*) AS reps
        FROM samples WHERE metric = '{metric.replace(chr(39), '')}' AND ok AND {src.where}
        GROUP BY ALL ORDER BY workload, rtt_ms, link_loss""")


def where_ran(src: SweepSource) -> pd.DataFrame:
    """Hosts, executors and workers of the sweep's samples, with the units each ran."""
    return src.query(f"""
        SELECT host_name, host_cpu_model, host_cpus, executor, worker,
               count(DISTINCT workload || '/' || CAST(rep AS VARCHAR) || '/'
                              || coalesce(CAST(point_label AS VARCHAR), '')) AS units
        FROM samples WHERE {src.where} GROUP BY ALL ORDER BY ALL""")


def mathis_mbit(loss: float, rtt_ms: float, rate_mbit: float, mss: int = MATHIS_MSS) -> float:
    """Mathis et al. (1997) bound (MSS/RTT)·√(3/2)/√p in Mbit/s, capped at the link rate."""
    if loss <= 0 or rtt_ms <= 0:
        return rate_mbit
    return min(rate_mbit, mss * 8 / (rtt_ms / 1000) * math.sqrt(1.5) / math.sqrt(loss) / 1e6)


def sweep_plot(points: pd.DataFrame, ylabel: str = "goodput (Mbit/s)") -> Figure:
    """One panel per RTT: median per workload against loss (bars: min-max), Mathis dashed."""
    rtts = sorted(points["rtt_ms"].dropna().unique()) or [math.nan]
    fig = plots.plt.figure(figsize=(5.0 * len(rtts), 4.0))  # pyplot's: a notebook shows it
    axes = fig.subplots(1, len(rtts), squeeze=False, sharey=True)[0]
    for ax, rtt in zip(axes, rtts, strict=True):
        at = points[points["rtt_ms"] == rtt]
        for workload, g in at.groupby("workload"):
            g = g.sort_values("link_loss")
            ax.errorbar(g["link_loss"] * 100, g["median"],
                        yerr=[g["median"] - g["lo"], g["hi"] - g["median"]],
                        marker="o", capsize=3, label=str(workload))
        if len(at):
            hi = max(float(at["link_loss"].max()), 1e-3)
            losses = np.linspace(max(1e-4, float(at["link_loss"].min())), hi, 100)
            rate = float(at["link_rate_mbit"].max())
            ax.plot(losses * 100, [mathis_mbit(p, float(rtt), rate) for p in losses], "k--",
                    lw=1, label=f"Mathis (Reno, MSS {MATHIS_MSS})")
        ax.set_title(f"RTT {rtt:.0f} ms")
        ax.set_xlabel("random loss each way (%)")
        ax.set_yscale("log")
    axes[0].set_ylabel(ylabel + ", median; bars: min-max over reps")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: the sweep's per-point medians and hosts as tables; ``--png``: the plot too."""
    ap = argparse.ArgumentParser(prog="python -m quicreality.analysis.sweeps",
                                 description="a sweep from the results store: goodput per stack "
                                             "against loss per RTT (docs/scale-out.md)")
    ap.add_argument("--results", type=Path, default=None,
                    help="results root (default $QR_RESULTS or results/); its store is built")
    ap.add_argument("--sweep", default=None, help="sweep name (default: the newest)")
    ap.add_argument("--metric", default="goodput", help="sample metric (default goodput)")
    ap.add_argument("--png", type=Path, default=None, help="write the plot here")
    args = ap.parse_args(list(argv) if argv is not None else None)
    try:
        src = open_sweep(args.results, args.sweep)
    except ValueError as e:
        print(f"quicreality.analysis.sweeps: {e}", file=sys.stderr)
        return 2
    try:
        pts = sweep_points(src, args.metric)
        print(f"sweep: {src.sweep or 'none (a single run)'} in {src.results}")
        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(pts.to_string(index=False))
            print(where_ran(src).to_string(index=False))
        if args.png is not None:
            fig = sweep_plot(pts, ylabel=f"{args.metric} (Mbit/s)" if args.metric == "goodput"
                             else args.metric)
            args.png.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(args.png, dpi=110)
            print(f"plot: {args.png}")
    finally:
        src.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
