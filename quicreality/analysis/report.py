"""Regression report of a run against a baseline: ``report.md``, ``report.html`` (plots embedded
as base64 PNG) and ``report.json`` in the run folder.

Built by ``python -m quicreality.scenarios report RUN_DIR [--baseline FILE]``; the exit status
is 1 when any workload is a regression (:mod:`.regression` has the rule).
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import plots
from .regression import (
    DEFAULT_ALPHA,
    DEFAULT_FLOOR,
    DEFAULT_INTERVALS,
    DEFAULT_NOISE_K,
    Comparison,
    baseline_path,
    compare_run,
    host_description,
    load_baseline,
    run_samples,
)

__all__ = ["Report", "build_report", "write_report"]

_BADGE = {"regression": "#c0392b", "inconclusive, rerun": "#d68910", "ok": "#1e8449",
          "ok (improved)": "#1e8449", "no baseline": "#7f8c8d", "no data": "#7f8c8d"}


@dataclass
class Report:
    """A built report."""

    run_dir: Path
    comparisons: list[Comparison]
    baseline_file: Path | None
    markdown: str = ""
    html: str = ""
    figures: dict[str, bytes] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)

    @property
    def regressions(self) -> list[Comparison]:
        """Workloads with a regression verdict."""
        return [c for c in self.comparisons if c.is_regression]

    @property
    def inconclusive(self) -> list[Comparison]:
        """Workloads with an inconclusive verdict."""
        return [c for c in self.comparisons if c.verdict.startswith("inconclusive")]

    @property
    def exit_code(self) -> int:
        """1 on any regression, else 0."""
        return 1 if self.regressions else 0


def _fmt(v: float, spec: str = ".2f") -> str:
    return "–" if v is None or not math.isfinite(v) else format(v, spec)


def _dist(vals: Sequence[float]) -> str:
    if not vals:
        return "–"
    q = np.percentile(vals, [0, 25, 50, 75, 100])
    return f"{q[0]:.2f} / {q[1]:.2f} / **{q[2]:.2f}** / {q[3]:.2f} / {q[4]:.2f}"


def _figures(comps: list[Comparison], current: Mapping[str, Any], baseline: Mapping[str, Any]
             ) -> dict[str, bytes]:
    figs: dict[str, bytes] = {}
    cur = {c.key: c.current for c in comps if c.current}
    base = {c.key: c.baseline for c in comps if c.baseline}
    if cur:
        ax = plots.comparison_plot(cur, base or None, verdicts={c.key: c.verdict for c in comps},
                                   title="Goodput samples per workload: baseline vs this run")
        figs["comparison"] = plots.figure_png(ax)
    keys = [k for k in current if any(r.get("intervals") for r in current[k]["reps"])]
    if keys:
        ncol = min(3, len(keys))
        nrow = math.ceil(len(keys) / ncol)
        fig, axes = plots.plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 2.8 * nrow),
                                       layout="constrained", squeeze=False)
        for ax, key in zip(axes.flat, keys):
            for src, color, label in ((baseline.get("workloads", {}).get(key, {}), "0.6",
                                       "baseline"), (current[key], "tab:blue", "this run")):
                for i, rep in enumerate(src.get("reps", []) if src else []):
                    iv = rep.get("intervals") or []
                    if iv:
                        x = (np.arange(len(iv)) + 0.5) / len(iv)
                        ax.plot(x, iv, "-o", ms=2, lw=1, color=color,
                                label=label if i == 0 else None)
            ax.set_title(key, fontsize="small")
            ax.set_xlabel("fraction of transfer", fontsize="small")
            ax.set_ylabel("Mbit/s", fontsize="small")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize="x-small")
        for ax in list(axes.flat)[len(keys):]:
            ax.set_visible(False)
        fig.suptitle("Goodput over each transfer (equal slices, one line per rep)")
        figs["timelines"] = plots.figure_png(fig)
    return figs


def build_report(run_dir: str | Path, baseline: str | Path | Mapping[str, Any] | None = None,
                 *, alpha: float = DEFAULT_ALPHA, floor: float = DEFAULT_FLOOR,
                 unit: str = "interval", metric: str | None = None,
                 intervals_per_rep: int = DEFAULT_INTERVALS, noise_k: float = DEFAULT_NOISE_K,
                 also: Sequence[str | Path] = ()) -> Report:
    """Compare a run with a baseline and render Markdown + HTML (nothing written yet).

    Args:
        run_dir: The run folder (``results/runs/<time>-<sha>``).
        baseline: A baseline file, an already-loaded document, or None for
            ``results/baselines/<scenario>.json`` of the run's scenario (if it exists).
        alpha: Significance level of the Mann-Whitney U test.
        floor: Relative median drop that a regression needs at least.
        unit: ``interval`` (per-slice samples) or ``rep`` (one value per rep).
        metric: samples.jsonl metric to use as goodput (default: the first known one).
        intervals_per_rep: Slices per rep.
        noise_k: A workload's floor is at least ``noise_k`` × its baseline's between-rep CV.
        also: More runs of the same code whose reps are pooled with this run's (a confirmation
            rerun of the workloads that regressed; only workloads present in this run count).
    """
    run = Path(run_dir)
    current = run_samples(run, metric=metric, intervals_per_rep=intervals_per_rep)
    for extra in also:
        for key, entry in run_samples(Path(extra), metric=metric,
                                      intervals_per_rep=intervals_per_rep).items():
            if key in current:
                current[key]["reps"].extend(entry["reps"])
    scenarios = sorted({e["scenario"] for e in current.values()})
    base_file: Path | None = None
    if baseline is None and len(scenarios) == 1:
        cand = baseline_path(scenarios[0])
        baseline = cand if cand.exists() else None
    if isinstance(baseline, (str, Path)):
        base_file = Path(baseline)
        base_doc: dict[str, Any] = load_baseline(base_file)
    else:
        base_doc = dict(baseline) if baseline else {}
    comps = compare_run(current, base_doc, alpha=alpha, floor=floor, unit=unit, noise_k=noise_k)
    rep = Report(run_dir=run, comparisons=comps, baseline_file=base_file)
    rep.figures = _figures(comps, current, base_doc)
    ctx = {"run": run.name + "".join(f" + {Path(a).name}" for a in also),
           "scenarios": ", ".join(scenarios) or "–",
           "baseline": str(base_file) if base_file else ("(given)" if base_doc else "none"),
           "base_host": base_doc.get("host", {}), "here": host_description(),
           "base_runs": ", ".join(base_doc.get("source_runs", [])) or "–",
           "alpha": alpha, "floor": floor, "noise_k": noise_k, "unit": unit,
           "k": intervals_per_rep,
           "sources": {k: "; ".join(sorted({r.get("source", "") for r in e["reps"]} - {""}))
                       for k, e in current.items()}}
    rep.markdown = _markdown(rep, ctx)
    rep.html = _html(rep, ctx)
    return rep


def _summary_line(rep: Report) -> str:
    if rep.regressions:
        return ("**REGRESSION** in " + ", ".join(c.key for c in rep.regressions)
                + " — CI fails.")
    if rep.inconclusive:
        return ("**INCONCLUSIVE — rerun**: " + ", ".join(c.key for c in rep.inconclusive)
                + " (does not fail CI).")
    return "No regression."


def _rule(ctx: Mapping[str, Any]) -> str:
    return (f"Verdict rule: **regression** when a two-sided Mann-Whitney U test gives "
            f"p ≤ {ctx['alpha']:g} **and** the median dropped by at least the workload's floor "
            f"(max of {ctx['floor']:.0%} and {ctx['noise_k']:g} × the baseline's between-rep "
            "coefficient of variation; shown per workload); "
            f"**inconclusive, rerun** when only one holds; **ok** otherwise. Samples: "
            + ("the goodput of each of "
               f"{ctx['k']} equal slices of every rep's transfer (slices of one rep are "
               "correlated, so p is optimistic; see docs/analysis.md for the measured "
               "false-alarm rate)." if ctx["unit"] == "interval"
               else "one goodput value per rep."))


def _host(h: Mapping[str, Any]) -> str:
    if not h:
        return "–"
    return (f"{h.get('hostname', '?')}, {h.get('cpus', '?')} × {h.get('cpu_model', '?')}, "
            f"kernel {h.get('kernel', '?')}")


def _markdown(rep: Report, ctx: Mapping[str, Any]) -> str:
    base = (f"- baseline: {ctx['baseline']} "
            f"(runs: {ctx['base_runs']}; host: {_host(ctx['base_host'])})")
    lines = [f"# Regression report: {ctx['run']}", "", _summary_line(rep), "",
             f"- scenario: {ctx['scenarios']}", base,
             f"- this host: {_host(ctx['here'])}", "", _rule(ctx), "",
             ("| workload | reps now/base | samples now/base | median now [Mbit/s] "
              "| median base | change | floor | p | min p | verdict |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in rep.comparisons:
        lines.append(
            f"| {c.key} | {c.current_reps}/{c.baseline_reps} | {len(c.current)}/{len(c.baseline)}"
            f" | {_fmt(c.current_median)} | {_fmt(c.baseline_median)} | "
            f"{_fmt(c.change * 100, '+.1f')}{'%' if math.isfinite(c.change) else ''} | "
            f"{c.floor:.0%} | {_fmt(c.p_value, '.2g')} | {_fmt(c.min_p, '.2g')} | "
            f"**{c.verdict}** |")
    lines += ["", "## Distributions (min / p25 / **median** / p75 / max, Mbit/s)", "",
              "| workload | this run | baseline |", "|---|---|---|"]
    for c in rep.comparisons:
        lines.append(f"| {c.key} | {_dist(c.current)} | {_dist(c.baseline)} |")
    lines += ["", "## Reasons", ""]
    lines += [f"- **{c.key}**: {c.verdict} — {c.reason}"
              + (f" (slices: {ctx['sources'][c.key]})" if ctx["sources"].get(c.key) else "")
              for c in rep.comparisons]
    if rep.figures:
        lines += ["", "## Plots", "", "Embedded in report.html: "
                  + ", ".join(f"`{k}`" for k in rep.figures) + "."]
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:right}td:first-child,th:first-child{text-align:left}.v{color:#fff;padding:2px 6px;
border-radius:4px;white-space:nowrap}.banner{padding:.8em;border-radius:6px;color:#fff}
img{max-width:100%}"""


def _html(rep: Report, ctx: Mapping[str, Any]) -> str:
    e = html.escape
    color = "#c0392b" if rep.regressions else ("#d68910" if rep.inconclusive else "#1e8449")
    summary = _summary_line(rep).replace("**", "")
    rows = []
    for c in rep.comparisons:
        badge = f'<span class="v" style="background:{_BADGE.get(c.verdict, "#555")}">' \
                f'{e(c.verdict)}</span>'
        change = f"{c.change:+.1%}" if math.isfinite(c.change) else "–"
        rows.append(
            f"<tr><td>{e(c.key)}</td><td>{c.current_reps}/{c.baseline_reps}</td>"
            f"<td>{len(c.current)}/{len(c.baseline)}</td><td>{_fmt(c.current_median)}</td>"
            f"<td>{_fmt(c.baseline_median)}</td><td>{change}</td><td>{c.floor:.0%}</td>"
            f"<td>{_fmt(c.p_value, '.2g')}</td><td>{_fmt(c.min_p, '.2g')}</td><td>{badge}</td>"
            f"<td style='text-align:left'>{e(c.reason)}"
            f"{'<br><small>slices: ' + e(ctx['sources'][c.key]) + '</small>' if ctx['sources'].get(c.key) else ''}"
            f"</td></tr>")
    dist = "".join(f"<tr><td>{e(c.key)}</td><td>{_dist(c.current).replace('**', '')}</td>"
                   f"<td>{_dist(c.baseline).replace('**', '')}</td></tr>"
                   for c in rep.comparisons)
    imgs = "".join(
        f'<figure><img alt="{e(name)}" id="fig-{e(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"><figcaption>{e(name)}</figcaption></figure>'
        for name, png in rep.figures.items())
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Regression report {e(ctx['run'])}</title><style>{_CSS}</style></head><body>
<h1>Regression report: {e(ctx['run'])}</h1>
<p class="banner" style="background:{color}">{e(summary)}</p>
<ul><li>scenario: {e(ctx['scenarios'])}</li>
<li>baseline: {e(ctx['baseline'])} (runs: {e(ctx['base_runs'])}; host: {e(_host(ctx['base_host']))})</li>
<li>this host: {e(_host(ctx['here']))}</li></ul>
<p>{e(_rule(ctx).replace('**', ''))}</p>
<table id="verdicts"><tr><th>workload</th><th>reps now/base</th><th>samples now/base</th>
<th>median now [Mbit/s]</th><th>median base</th><th>change</th><th>floor</th><th>p</th>
<th>min p</th>
<th>verdict</th><th>reason</th></tr>{''.join(rows)}</table>
<h2>Distributions (min / p25 / median / p75 / max, Mbit/s)</h2>
<table id="distributions"><tr><th>workload</th><th>this run</th><th>baseline</th></tr>{dist}</table>
<h2>Plots</h2>{imgs}</body></html>
"""


def write_report(run_dir: str | Path, baseline: str | Path | Mapping[str, Any] | None = None,
                 **kw: Any) -> Report:
    """:func:`build_report` and write report.md / report.html / report.json into the run."""
    rep = build_report(run_dir, baseline, **kw)
    run = Path(run_dir)
    for name, text in (("report.md", rep.markdown), ("report.html", rep.html)):
        (run / name).write_text(text)
        rep.written.append(run / name)
    doc = {"run": run.name, "baseline": str(rep.baseline_file) if rep.baseline_file else None,
           "also": [str(a) for a in kw.get("also", ())], "exit_code": rep.exit_code,
           "regressions": [c.key for c in rep.regressions],
           "rerun_workloads": sorted({c.key.split("/")[0] for c in rep.regressions}),
           "comparisons": [c.to_dict() for c in rep.comparisons]}
    (run / "report.json").write_text(json.dumps(doc, indent=1, default=float) + "\n")
    rep.written.append(run / "report.json")
    return rep
