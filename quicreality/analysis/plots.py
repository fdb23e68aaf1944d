"""matplotlib plots shared by the notebooks and the regression report.

Every function draws on an ``ax`` it is given (or a new figure's) and returns the ``Axes``;
nothing is shown or saved here. :func:`figure_png` turns a figure into PNG bytes for the report.
The Agg backend is selected on import unless a backend is already active (notebooks keep
their inline backend).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline",
                                            "inline", "nbagg", "widget", "ipympl"):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "comparison_plot",
    "cwnd_plot",
    "figure_png",
    "goodput_plot",
    "loss_markers",
    "new_axes",
    "rtt_cdf_plot",
    "rtt_timeline_plot",
]


def new_axes(figsize: tuple[float, float] = (8.0, 3.5)) -> Axes:
    """A fresh figure with one Axes."""
    _fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _ax(ax: Axes | None) -> Axes:
    return ax if ax is not None else new_axes()


def goodput_plot(series: Mapping[str, pd.DataFrame], ax: Axes | None = None,
                 title: str = "Goodput") -> Axes:
    """Goodput timelines (:func:`~quicreality.analysis.metrics.goodput_timeline` tables).

    Args:
        series: label → table with t_start, t_end, mbps.
    """
    ax = _ax(ax)
    for label, tl in series.items():
        if tl.empty:
            continue
        ax.step(np.r_[tl["t_start"].to_numpy(), tl["t_end"].to_numpy()[-1:]],
                np.r_[tl["mbps"].to_numpy(), tl["mbps"].to_numpy()[-1:]], where="post",
                label=label)
    ax.set_xlabel("time since first payload [s]")
    ax.set_ylabel("goodput [Mbit/s]")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    if series:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def rtt_timeline_plot(rtt: pd.DataFrame, ax: Axes | None = None, time_col: str = "time_s",
                      label: str = "", title: str = "RTT") -> Axes:
    """latest (dots), smoothed and min RTT over time (:func:`~.metrics.rtt_samples`)."""
    ax = _ax(ax)
    pre = f"{label} " if label else ""
    if not rtt.empty:
        ax.plot(rtt[time_col], rtt["latest_rtt_ms"], ".", ms=3, alpha=0.6,
                label=f"{pre}latest")
        if "smoothed_rtt_ms" in rtt:
            ax.plot(rtt[time_col], rtt["smoothed_rtt_ms"], "-", lw=1.2, label=f"{pre}smoothed")
        if "min_rtt_ms" in rtt:
            ax.plot(rtt[time_col], rtt["min_rtt_ms"], "--", lw=1, label=f"{pre}min")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("RTT [ms]")
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def rtt_cdf_plot(samples: Mapping[str, Sequence[float] | pd.Series], ax: Axes | None = None,
                 title: str = "RTT CDF") -> Axes:
    """Empirical CDFs of RTT samples (ms), one line per label."""
    ax = _ax(ax)
    for label, vals in samples.items():
        v = np.sort(np.asarray([x for x in vals if not math.isnan(float(x))], dtype=float))
        if len(v):
            ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post", label=label)
    ax.set_xlabel("RTT [ms]")
    ax.set_ylabel("fraction of samples")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    if samples:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def cwnd_plot(metrics: pd.DataFrame, ax: Axes | None = None, time_col: str = "time_s",
              title: str = "Congestion window and bytes in flight") -> Axes:
    """cwnd and bytes in flight (KB) from a forward-filled metrics table."""
    ax = _ax(ax)
    if not metrics.empty:
        if "cwnd" in metrics and metrics["cwnd"].notna().any():
            ax.step(metrics[time_col], metrics["cwnd"] / 1000, where="post", label="cwnd")
        if "bytes_in_flight" in metrics and metrics["bytes_in_flight"].notna().any():
            ax.plot(metrics[time_col], metrics["bytes_in_flight"] / 1000, lw=0.8, alpha=0.7,
                    label="bytes in flight")
        if "ssthresh" in metrics and metrics["ssthresh"].notna().any():
            ss = metrics["ssthresh"].where(metrics["ssthresh"] < 1e12)
            ax.step(metrics[time_col], ss / 1000, where="post", ls=":", label="ssthresh")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("KB")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def loss_markers(ax: Axes, *, lost: Sequence[float] = (), retransmitted: Sequence[float] = (),
                 spurious: Sequence[float] = ()) -> Axes:
    """Vertical markers for packet losses, retransmissions and spurious retransmissions."""
    for times, color, label in ((lost, "tab:red", "lost"),
                                (retransmitted, "tab:orange", "retransmitted"),
                                (spurious, "tab:purple", "spurious retransmit")):
        times = [t for t in times if not math.isnan(float(t))]
        if times:
            ax.vlines(times, 0, 1, transform=ax.get_xaxis_transform(), colors=color, lw=0.6,
                      alpha=0.6, label=f"{label} ({len(times)})")
    ax.legend(fontsize="small")
    return ax


def comparison_plot(current: Mapping[str, Sequence[float]],
                    baseline: Mapping[str, Sequence[float]] | None = None,
                    ax: Axes | None = None, ylabel: str = "goodput [Mbit/s]",
                    title: str = "Per workload: this run vs baseline",
                    verdicts: Mapping[str, str] | None = None) -> Axes:
    """Side-by-side box plots (with points) per workload: baseline (grey) and current (blue)."""
    names = list(current)
    if ax is None:
        ax = new_axes((max(6.0, 1.6 * len(names) + 2), 4.0))
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        groups: list[tuple[Sequence[float], float, str]] = []
        if baseline is not None and name in baseline:
            groups.append((baseline[name], i - 0.18, "0.6"))
        groups.append((current[name], i + (0.18 if baseline is not None else 0), "tab:blue"))
        for vals, x, color in groups:
            v = [float(x) for x in vals if not math.isnan(float(x))]
            if not v:
                continue
            ax.boxplot([v], positions=[x], widths=0.3, showfliers=False, patch_artist=True,
                       boxprops={"facecolor": color, "alpha": 0.35},
                       medianprops={"color": "black"})
            ax.plot(x + rng.uniform(-0.08, 0.08, len(v)), v, ".", color=color, ms=3)
        if verdicts and name in verdicts:
            ax.annotate(verdicts[name], (i, 1.0), xycoords=("data", "axes fraction"),
                        ha="center", va="bottom", fontsize="small")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20, ha="right", fontsize="small")
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.set_title(title, pad=14)
    handles = [plt.Rectangle((0, 0), 1, 1, color="tab:blue", alpha=0.35)]
    labels = ["this run"]
    if baseline is not None:
        handles.insert(0, plt.Rectangle((0, 0), 1, 1, color="0.6", alpha=0.35))
        labels.insert(0, "baseline")
    ax.legend(handles, labels, fontsize="small", loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return ax


def strip_box_plot(groups: Sequence[tuple[str, Sequence[float], str]], ax: Axes | None = None,
                   title: str = "", ylabel: str = "Mbit/s") -> Axes:
    """A box per group with its points jittered on top (``(label, values, colour)`` each)."""
    if ax is None:
        ax = new_axes((3.4, 2.6))
    rng = np.random.default_rng(0)
    for i, (_, vals, color) in enumerate(groups):
        v = finite(vals)
        if not v:
            continue
        ax.boxplot([v], positions=[i], widths=0.5, showfliers=False, patch_artist=True,
                   boxprops={"facecolor": color, "alpha": 0.3}, medianprops={"color": "black"})
        ax.plot(i + rng.uniform(-0.15, 0.15, len(v)), v, ".", color=color, ms=3)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g[0] for g in groups], fontsize="small")
    ax.set_ylabel(ylabel, fontsize="small")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return ax


def ratio_plot(rows: Sequence[tuple[str, float, float, str]], ax: Axes | None = None,
               title: str = "Change now / baseline") -> Axes:
    """One row per workload: ``(label, change, floor, colour)``; change as a dot (in %), the
    ±floor band shaded, 0 marked."""
    n = len(rows)
    if ax is None:
        ax = new_axes((7.5, 0.32 * n + 1.2))
    for i, (_, change, floor, color) in enumerate(rows):
        y = n - 1 - i
        ax.fill_betweenx([y - 0.35, y + 0.35], -100 * floor, 100 * floor, color="0.9")
        if math.isfinite(change):
            ax.plot([0, 100 * change], [y, y], "-", color=color, lw=1)
            ax.plot([100 * change], [y], "o", color=color, ms=6)
    ax.axvline(0, color="0.4", lw=0.8)
    ax.set_yticks(range(n))
    ax.set_yticklabels([r[0] for r in reversed(rows)], fontsize="small")
    ax.set_xlabel("change of the median [%] (grey: the workload's floor)", fontsize="small")
    ax.set_title(title, fontsize="medium")
    ax.grid(axis="x", alpha=0.3)
    return ax


def figure_png(fig: Figure | Axes | Any, dpi: int = 100, close: bool = True) -> bytes:
    """PNG bytes of a figure (or of an Axes' figure); closes it unless ``close=False``."""
    f = fig.get_figure(root=True) if isinstance(fig, Axes) else fig
    assert f is not None
    buf = io.BytesIO()
    f.savefig(buf, format="png", dpi=dpi)
    if close:
        plt.close(f)
    return buf.getvalue()


def finite(values: Sequence[float]) -> list[float]:
    """Values that are finite numbers."""
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
