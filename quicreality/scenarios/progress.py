"""Live progress and the final summary table of a run (rich).

On a terminal the progress is a live panel: scenario, workload, peers,
repetition, elapsed time and the current rate on the impaired link (updated
about once a second), with the finished repetitions below.  Without a
terminal (CI, pipes) it prints one plain line per repetition instead.

:func:`summarise` turns the per-repetition rows into one row per workload
(goodput median (min–max), RTT median, losses, handshake, pass count);
:func:`summary_table` renders it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

__all__ = ["Progress", "RepRecord", "SummaryRow", "summarise", "summary_table", "summary_text"]


@dataclass(frozen=True, slots=True)
class RepRecord:
    """One finished (or not run) repetition, as the summary needs it.

    Attributes:
        workload: Workload name.
        pair: ``<client>__<server>``.
        rep: Repetition number (0 for a workload that was not run).
        status: ``ok``, ``fail`` or ``not-run``.
        reason: check.json's reason.
        metrics: metric → value (the sample values of this rep).
        secs: Wall time of the repetition.
        baseline: Whether the workload is a baseline.
    """

    workload: str
    pair: str
    rep: int
    status: str
    reason: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    secs: float = 0.0
    baseline: bool = False


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One workload in the final table (None where nothing was measured)."""

    workload: str
    pair: str
    baseline: bool
    reps: int
    passed: int
    status: str
    goodput_median: float | None
    goodput_min: float | None
    goodput_max: float | None
    goodput_reported_median: float | None
    rtt_median_ms: float | None
    lost_median: float | None
    lost_kind: str
    handshake_median_ms: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return asdict(self)


def _med(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(records: Iterable[RepRecord]) -> list[SummaryRow]:
    """One :class:`SummaryRow` per (workload, pair), in first-seen order."""
    groups: dict[tuple[str, str], list[RepRecord]] = {}
    for r in records:
        groups.setdefault((r.workload, r.pair), []).append(r)
    rows = []
    for (wl, pair), recs in groups.items():
        ran = [r for r in recs if r.status != "not-run"]

        def vals(metric: str, recs: list[RepRecord] = ran) -> list[float]:
            return [r.metrics[metric] for r in recs if metric in r.metrics]

        gp = vals("goodput")
        rtt = vals("rtt_median_ms") or vals("rtt_mean_ms")
        lost, kind = vals("packets_lost"), "lost"
        if not lost:
            lost, kind = vals("retransmits"), "retx"
        passed = sum(r.status == "ok" for r in ran)
        if not ran:
            status = "NOT RUN"
        elif passed == len(ran):
            status = "PASS"
        else:
            status = "FAIL"
        failing = [r.reason for r in recs if r.status != "ok"]
        rows.append(SummaryRow(
            workload=wl, pair=pair, baseline=recs[0].baseline, reps=len(ran), passed=passed,
            status=status, goodput_median=_med(gp), goodput_min=min(gp) if gp else None,
            goodput_max=max(gp) if gp else None,
            goodput_reported_median=_med(vals("goodput_reported")),
            rtt_median_ms=_med(rtt), lost_median=_med(lost), lost_kind=kind,
            handshake_median_ms=_med(vals("handshake_ms")),
            reason=failing[0] if failing else (recs[-1].reason if recs else "")))
    return rows


def _f(v: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if v is None else fmt.format(v)


def summary_table(rows: Sequence[SummaryRow], title: str) -> Table:
    """The final table (rich)."""
    t = Table(title=title, title_justify="left", expand=False)
    for col, just in (("workload", "left"), ("client__server", "left"),
                      ("goodput Mbit/s median (min–max)", "right"), ("peer says", "right"),
                      ("RTT ms", "right"), ("lost/retx", "right"), ("handshake ms", "right"),
                      ("result", "left")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        gp = "–" if r.goodput_median is None else (
            f"{r.goodput_median:.2f} ({r.goodput_min:.2f}–{r.goodput_max:.2f})")
        lost = "–" if r.lost_median is None else f"{r.lost_kind} {r.lost_median:.0f}"
        style = {"PASS": "green", "FAIL": "bold red", "NOT RUN": "yellow"}[r.status]
        res = Text(f"{r.status} {r.passed}/{r.reps}" if r.status != "NOT RUN" else "NOT RUN",
                   style=style)
        if r.status != "PASS" and r.reason:
            res.append(f"  {r.reason[:90]}", style="dim")
        name = r.workload + (" (baseline)" if r.baseline else "")
        t.add_row(name, r.pair, gp, _f(r.goodput_reported_median), _f(r.rtt_median_ms, "{:.1f}"),
                  lost, _f(r.handshake_median_ms, "{:.0f}"), res)
    return t


def summary_text(rows: Sequence[SummaryRow], title: str, width: int = 160) -> str:
    """The table as plain text (summary.txt)."""
    console = Console(width=width, record=True, file=open("/dev/null", "w"),  # noqa: SIM115
                      color_system=None)
    console.print(summary_table(rows, title))
    text = console.export_text()
    console.file.close()
    return text


class Progress:
    """Live display of a run (a context manager)."""

    def __init__(self, console: Console, scenario: str, total_reps: int) -> None:
        self.console = console
        self.scenario = scenario
        self.total = total_reps
        self.done = 0
        self.current: tuple[str, str, int, int] | None = None
        self.started = 0.0
        self.rate: float | None = None
        self.finished: list[RepRecord] = []
        self.note = ""
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self._live = Live(self, console=self.console, refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def message(self, text: str) -> None:
        """A line of status (link check, setup) above the progress."""
        self.note = text
        if self._live is None:
            self.console.print(f"[{self.scenario}] {text}", highlight=False)

    def start_rep(self, workload: str, pair: str, rep: int, reps: int) -> None:
        """A repetition begins."""
        self.current = (workload, pair, rep, reps)
        self.started = time.monotonic()
        self.rate = None
        if self._live is None:
            self.console.print(f"[{self.scenario} {self.done + 1}/{self.total}] {workload} "
                               f"{pair} rep {rep}/{reps} ...", highlight=False)

    def on_rate(self, mbit: float) -> None:
        """Current rate on the impaired link (Mbit/s)."""
        self.rate = mbit

    def end_rep(self, rec: RepRecord) -> None:
        """A repetition finished (or a workload was not run)."""
        self.done += 1 if rec.status != "not-run" else 0
        self.finished.append(rec)
        self.current = None
        if self._live is None:
            gp = rec.metrics.get("goodput")
            g = f"{gp:.2f} Mbit/s" if gp is not None else "–"
            self.console.print(f"    {rec.status.upper():7} {rec.workload} {rec.pair} "
                               f"rep {rec.rep}: {g} in {rec.secs:.1f}s  {rec.reason[:120]}",
                               highlight=False)

    def __rich__(self) -> RenderableType:
        head = Text(f"{self.scenario}  ", style="bold")
        head.append(f"[{self.done}/{self.total} reps]  ")
        if self.current is not None:
            wl, pair, rep, reps = self.current
            el = time.monotonic() - self.started
            head.append(f"{wl}  {pair}  rep {rep}/{reps}  {el:5.1f}s  ", style="cyan")
            head.append("–" if self.rate is None else f"{self.rate:6.2f} Mbit/s on the link",
                        style="bold cyan")
        elif self.note:
            head.append(self.note, style="dim")
        t = Table.grid(padding=(0, 2))
        for rec in self.finished[-10:]:
            gp = rec.metrics.get("goodput")
            style = {"ok": "green", "fail": "red", "not-run": "yellow"}[rec.status]
            t.add_row(Text(rec.status.upper(), style=style), rec.workload, rec.pair,
                      f"rep {rec.rep}", "–" if gp is None else f"{gp:.2f} Mbit/s",
                      f"{rec.secs:.1f}s", Text(rec.reason[:80], style="dim"))
        return Group(head, t)
