"""Regression report of a run against a baseline: ``report.md``, ``report.html`` (plots embedded
as base64 PNG) and ``report.json`` in the run folder.

Built by ``python -m quicreality.scenarios report RUN_DIR [--baseline FILE]``. The report opens
with **one verdict line** (:attr:`Report.verdict`):

* ``regressed``: a workload of our stack dropped relative to the controls (exit 1);
* ``environment changed``: the controls (the reference peers) moved together beyond their noise
  floor; ours, judged relative to them, did not regress (exit 0);
* ``not comparable``: no workload of ours was measured like its baseline (fields named);
* ``inconclusive``: a workload needs a rerun (exit 0); ``ok`` otherwise.

:mod:`.regression` has the rule, :mod:`.baselines` the definitions.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import plots
from .baselines import load_baseline
from .regression import (
    DEFAULT_ALPHA,
    DEFAULT_FLOOR,
    DEFAULT_INTERVALS,
    DEFAULT_NOISE_K,
    Comparison,
    baseline_path,
    compare_run,
    environment_factor,
    run_samples,
)

__all__ = ["Report", "build_report", "end_of_run_lines", "run_verdict", "write_report"]

_BADGE = {"regression": "#c0392b", "inconclusive, rerun": "#d68910", "ok": "#1e8449",
          "ok (improved)": "#1e8449", "not comparable": "#7f8c8d", "no data": "#7f8c8d",
          "control steady": "#2874a6", "control moved": "#8e44ad"}
_TOP = {"regressed": "#c0392b", "environment changed": "#8e44ad", "not comparable": "#7f8c8d",
        "inconclusive": "#d68910", "ok": "#1e8449"}
_CAPTURE_EXT = (".pcap", ".pcapng", ".sqlog", ".qlog", ".sqlog.gz", ".qlog.gz", "keys.log")


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
    rep_paths: dict[str, list[str]] = field(default_factory=dict)
    quick: bool | None = None  #: the run was ``--quick`` (from its measurement definitions)

    @property
    def regressions(self) -> list[Comparison]:
        """Workloads of our stack with a regression verdict (controls never regress)."""
        return [c for c in self.comparisons if c.is_regression]

    @property
    def inconclusive(self) -> list[Comparison]:
        """Workloads with an inconclusive verdict."""
        return [c for c in self.comparisons if c.verdict.startswith("inconclusive")]

    @property
    def moved_controls(self) -> list[Comparison]:
        """Controls that moved beyond their noise floor."""
        return [c for c in self.comparisons if c.verdict == "control moved"]

    @property
    def not_comparable(self) -> list[Comparison]:
        """Workloads without a baseline measured the same way."""
        return [c for c in self.comparisons if c.verdict == "not comparable"]

    @property
    def env_change(self) -> float:
        """The controls' common shift now/baseline − 1 (geometric median; nan without)."""
        ctl = [c for c in self.comparisons if c.verdict.startswith("control ")]
        factor, used = environment_factor(ctl)
        return factor - 1 if used else math.nan

    @property
    def env_floor(self) -> float:
        """The noise floor of that shift: the median of the controls' floors."""
        floors = [c.floor for c in self.comparisons if c.verdict.startswith("control ")]
        return float(np.median(floors)) if floors else math.nan

    @property
    def environment_changed(self) -> bool:
        """The controls moved *together* beyond their noise floor (one control moving alone,
        or controls moving in opposite directions, is noise of single reps, not weather)."""
        e = self.env_change
        return (math.isfinite(e) and abs(e) >= self.env_floor
                and any(c.change * e > 0 for c in self.moved_controls))

    @property
    def verdict(self) -> str:
        """``regressed``, ``environment changed``, ``not comparable``, ``inconclusive``, ``ok``."""
        if self.regressions:
            return "regressed"
        ours = [c for c in self.comparisons if c.role == "ours"]
        if ours and all(c.verdict in ("not comparable", "no data") for c in ours):
            return "not comparable"
        if self.environment_changed:
            return "environment changed"
        return "inconclusive" if self.inconclusive else "ok"

    @property
    def verdict_line(self) -> str:
        """The one line a person reads first."""
        v = self.verdict
        env = _grouped(self.moved_controls)
        nc = self.not_comparable
        if v == "regressed":
            line = f"REGRESSED vs the controls: {_grouped(self.regressions)} — CI fails"
            if self.environment_changed:
                line += f" (environment changed too: controls {self.env_change:+.0%}: {env})"
        elif v == "not comparable":
            fields = _fields(nc)
            line = "NOT COMPARABLE: " + (
                ", ".join(fields[:8]) + (" …" if len(fields) > 8 else "")
                + " differ from the baseline" if fields
                else "no baseline for this definition") + " — nothing judged, CI passes"
        elif v == "environment changed":
            line = (f"ENVIRONMENT CHANGED: controls {self.env_change:+.0%} together (moved: "
                    f"{env}); our stack relative to them: "
                    + ("inconclusive, rerun " + ", ".join(c.key.split('/')[0]
                                                          for c in self.inconclusive)
                       if self.inconclusive else "ok") + " — does not fail CI")
        elif v == "inconclusive":
            line = ("INCONCLUSIVE, rerun: " + ", ".join(c.key for c in self.inconclusive)
                    + " — does not fail CI")
        else:
            line = "OK: no regression of our stack relative to the controls"
        if self.moved_controls and not self.environment_changed and v != "not comparable":
            line += (f"; controls moved singly, not together (common shift "
                     f"{self.env_change:+.0%}, floor {self.env_floor:.0%}): {env}")
        if nc and v != "not comparable":
            line += f"; not comparable: {', '.join(c.key.split('/')[0] for c in nc)}"
        return line

    @property
    def exit_code(self) -> int:
        """1 on any regression, else 0."""
        return 1 if self.regressions else 0

    @property
    def rerun_workloads(self) -> list[str]:
        """What a confirmation rerun needs: the regressed workloads and every control."""
        if not self.regressions:
            return []
        return sorted({c.key.split("/")[0] for c in self.regressions}
                      | {c.key.split("/")[0] for c in self.comparisons if c.role == "control"})


def _fields(comps: Sequence[Comparison]) -> list[str]:
    """The definition fields that differ (``field: now X, baseline Y`` reasons only)."""
    return sorted({d.split(":")[0] for c in comps for d in c.differences if ": now " in d})


def _grouped(comps: Sequence[Comparison]) -> str:
    """``a, b −50%; c −23%``: workloads grouped by their rounded change."""
    groups: dict[str, list[str]] = {}
    for c in comps:
        groups.setdefault(f"{c.change:+.0%}".replace("-", "−"), []).append(c.key.split("/")[0])
    return "; ".join(f"{', '.join(names)} {pct}" for pct, names in groups.items())


def _fmt(v: float, spec: str = ".2f") -> str:
    return "–" if v is None or not math.isfinite(v) else format(v, spec)


def _pct(v: float) -> str:
    return f"{v:+.1%}" if v is not None and math.isfinite(v) else "–"


def _rel(c: Comparison) -> str:
    return _pct(c.change) if c.role == "ours" and c.verdict != "not comparable" else "–"


def _dist(vals: Sequence[float]) -> str:
    if not vals:
        return "–"
    q = np.percentile(vals, [0, 25, 50, 75, 100])
    return f"{q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f} / {q[3]:.2f} / {q[4]:.2f}"


def _figures(comps: list[Comparison]) -> dict[str, bytes]:
    figs: dict[str, bytes] = {}
    rows = [(f"{c.key.split('/')[0]} ({'vs controls' if c.role == 'ours' else 'control'})",
             c.change, c.floor, "tab:purple" if c.role == "control" else (
                 "tab:red" if c.is_regression else "tab:blue"))
            for c in comps if c.verdict != "not comparable" and math.isfinite(c.change)]
    if rows:
        figs["ratio"] = plots.figure_png(plots.ratio_plot(
            rows, title="Change vs baseline: ours relative to the controls, controls raw"))
    for c in comps:
        if not c.current and not c.baseline:
            continue
        groups = [("baseline", c.baseline, "0.5"),
                  ("now", c.raw_current or c.current, "tab:blue")]
        if c.role == "ours" and c.env_factor != 1.0 and c.baseline:
            groups.append((f"now ÷ {c.env_factor:.2f}", c.current, "tab:orange"))
        ax = plots.strip_box_plot(groups, title=f"{c.key.split('/')[0]} — {c.verdict}",
                                  ylabel=f"goodput per {'slice' if c.unit == 'interval' else 'rep'}"
                                         " [Mbit/s]")
        figs[f"w:{c.key}"] = plots.figure_png(ax)
    return figs


def _rep_paths(run: Path, also: Sequence[Path]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in [run, *also]:
        for p in sorted(r.rglob("rep-*")):
            if p.is_dir() and len(p.relative_to(r).parts) >= 4:
                key = f"{p.parent.parent.name}/{p.parent.name}"
                out.setdefault(key, []).append(os.path.relpath(p, run))
    return out


def build_report(run_dir: str | Path, baseline: str | Path | Mapping[str, Any] | None = None,
                 *, alpha: float = DEFAULT_ALPHA, floor: float = DEFAULT_FLOOR,
                 unit: str = "interval", metric: str | None = None,
                 intervals_per_rep: int = DEFAULT_INTERVALS, noise_k: float = DEFAULT_NOISE_K,
                 also: Sequence[str | Path] = (), any_host: bool = False,
                 use_controls: bool = True) -> Report:
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
            rerun; only workloads present in this run count).
        any_host: Judge against a baseline recorded on another host class.
        use_controls: Judge ours relative to the controls (default) or unadjusted.
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
    # judged on the host each workload recorded (not this machine: a report may be made
    # anywhere); a run that recorded none is not judged on host class
    run_hosts = sorted({_host(e["host"]) for e in current.values() if e.get("host")})
    comps = compare_run(current, base_doc, alpha=alpha, floor=floor, unit=unit,
                        noise_k=noise_k, host=None, any_host=any_host,
                        use_controls=use_controls)
    rep = Report(run_dir=run, comparisons=comps, baseline_file=base_file,
                 rep_paths=_rep_paths(run, [Path(a) for a in also]),
                 quick=any(bool((e.get("definition") or {}).get("quick"))
                           for e in current.values()))
    rep.figures = _figures(comps)
    entries = base_doc.get("entries", [])
    ctx = {"run": run.name + "".join(f" + {Path(a).name}" for a in also),
           "scenarios": ", ".join(scenarios) or "–",
           "baseline": str(base_file) if base_file else ("(given)" if base_doc else "none"),
           "base_hosts": sorted({_host(e.get("host") or e.get("host_class") or {})
                                 for e in entries}),
           "here": "; ".join(run_hosts) or "not recorded by the run",
           "base_runs": ", ".join(sorted({r for e in entries for r in e.get("source_runs", [])}))
           or "–", "alpha": alpha, "floor": floor, "noise_k": noise_k, "unit": unit,
           "k": intervals_per_rep,
           "sources": {k: "; ".join(sorted({r.get("source", "") for r in e["reps"]} - {""}))
                       for k, e in current.items()}}
    rep.markdown = _markdown(rep, ctx)
    rep.html = _html(rep, ctx)
    return rep


def _rule(ctx: Mapping[str, Any]) -> str:
    return ("Like with like: each workload is compared only with a baseline entry of the same "
            "measurement definition (workload parameters, link, quick/full, peer versions) and "
            "host class; otherwise **not comparable**. Controls (the reference peers) are "
            "compared as measured: **control moved** when the median moved by at least the "
            "control's noise floor. Ours is "
            "judged **relative to the controls**: its samples are divided by the environment "
            "factor (geometric median of the controls' shifts) before the rule: **regression** "
            f"when p ≤ {ctx['alpha']:g} **and** the median dropped by at least the floor (max of "
            f"{ctx['floor']:.0%} and {ctx['noise_k']:g} × the baseline's between-rep CV), "
            "**inconclusive, rerun** when only one holds. Samples: "
            + (f"the goodput of {ctx['k']} equal slices of every rep (correlated within a rep; "
               "docs/analysis.md has the measured false-alarm rate)."
               if ctx["unit"] == "interval" else "one goodput value per rep."))


def _host(h: Mapping[str, Any]) -> str:
    if not h:
        return "–"
    return f"{h.get('cpus', '?')} × {h.get('cpu_model', '?')} ({h.get('machine', '?')})"


def _details(c: Comparison, ctx: Mapping[str, Any]) -> str:
    s = f"{c.verdict} — {c.reason}"
    if ctx["sources"].get(c.key):
        s += f" (slices: {ctx['sources'][c.key]})"
    return s


def _markdown(rep: Report, ctx: Mapping[str, Any]) -> str:
    lines = [f"# {rep.verdict_line}", "", (f"Run {ctx['run']} ({ctx['scenarios']}) against "
             f"{ctx['baseline']}; report.html has the plots."), "",
             ("| workload | role | median now | base | raw change | vs controls | floor | p "
             "| verdict |"), "|---|---|---|---|---|---|---|---|---|"]
    for c in rep.comparisons:
        lines.append(f"| {c.key} | {c.role} | {_fmt(c.raw_median if c.raw_current else c.current_median)}"
                     f" | {_fmt(c.baseline_median)} | {_pct(c.raw_change)} | {_rel(c)} | "
                     f"{c.floor:.0%} | {_fmt(c.p_value, '.2g')} | **{c.verdict}** |")
    lines += ["", "## Details", ""]
    for c in rep.comparisons:
        links = ", ".join(f"[{p}]({p})" for p in rep.rep_paths.get(c.key, []))
        lines.append(f"- **{c.key}**: {_details(c, ctx)}" + (f" — reps: {links}" if links else ""))
    lines += ["", "## Distributions (min / p25 / median / p75 / max, Mbit/s)", "",
              "| workload | this run | baseline |", "|---|---|---|"]
    lines += [f"| {c.key} | {_dist(c.raw_current or c.current)} | {_dist(c.baseline)} |"
              for c in rep.comparisons]
    lines += ["", "## How this was judged", "", _rule(ctx), "",
              f"- baseline runs: {ctx['base_runs']}",
              (f"- baseline host(s): {'; '.join(ctx['base_hosts']) or '–'}; the run's host: "
              f"{ctx['here']}")]
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:1.5em auto;padding:0 1em}
table{border-collapse:collapse;margin:.8em 0;font-size:14px}td,th{border:1px solid #ddd;
padding:3px 7px;text-align:right}td:first-child,th:first-child{text-align:left}
tr.details td{text-align:left;color:#444;font-size:12px;background:#fafafa;border-top:0}
.v{color:#fff;padding:1px 6px;border-radius:4px;white-space:nowrap}
#verdict{padding:.7em 1em;border-radius:6px;color:#fff;font-size:1.25em;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:8px}.grid figure{margin:0;width:340px}
.grid img{width:340px}figcaption{font-size:12px}img{max-width:100%}small{color:#666}"""


def _img(name: str, png: bytes, alt: str) -> str:
    e = html.escape
    return (f'<img alt="{e(alt)}" id="fig-{e(name)}" src="data:image/png;base64,'
            f'{base64.b64encode(png).decode()}">')


def _html(rep: Report, ctx: Mapping[str, Any]) -> str:
    e = html.escape
    rows = []
    for c in rep.comparisons:
        badge = (f'<span class="v" style="background:{_BADGE.get(c.verdict, "#555")}">'
                 f'{e(c.verdict)}</span>')
        links = " ".join(f'<a href="{e(p)}/">{e(p.split("/")[-1])}</a>'
                         for p in rep.rep_paths.get(c.key, []))
        files = _files(rep.run_dir, rep.rep_paths.get(c.key, []))
        now = c.raw_median if c.raw_current else c.current_median
        rows.append(
            f'<tr id="row-{e(c.key)}"><td>{e(c.key)}</td><td>{e(c.role)}</td>'
            f"<td>{_fmt(now)}</td><td>{_fmt(c.baseline_median)}</td><td>{_pct(c.raw_change)}</td>"
            f"<td>{_rel(c)}</td><td>{c.floor:.0%}</td><td>{_fmt(c.p_value, '.2g')}</td>"
            f"<td>{badge}</td></tr>"
            f'<tr class="details"><td colspan="9">{e(_details(c, ctx))}'
            f"{'<br>reps: ' + links if links else ''}"
            f"{'<br><small>' + files + '</small>' if files else ''}</td></tr>")
    ratio = rep.figures.get("ratio")
    per = "".join(f'<figure>{_img(n, png, n[2:])}<figcaption>{e(n[2:])} '
                  + " ".join(f'<a href="{e(p)}/">{e(p.split("/")[-1])}</a>'
                             for p in rep.rep_paths.get(n[2:], []))
                  + "</figcaption></figure>"
                  for n, png in rep.figures.items() if n.startswith("w:"))
    dist = "".join(f"<tr><td>{e(c.key)}</td><td>{_dist(c.raw_current or c.current)}</td>"
                   f"<td>{_dist(c.baseline)}</td></tr>" for c in rep.comparisons)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>{e(rep.verdict_line)}</title><style>{_CSS}</style></head><body>
<p id="verdict" data-verdict="{e(rep.verdict)}" style="background:{_TOP[rep.verdict]}">\
{e(rep.verdict_line)}</p>
<p>Run <b>{e(ctx['run'])}</b> ({e(ctx['scenarios'])}) against {e(ctx['baseline'])}.</p>
<table id="verdicts"><tr><th>workload</th><th>role</th><th>median now [Mbit/s]</th>
<th>baseline</th><th>raw change</th><th>vs controls</th><th>floor</th><th>p</th><th>verdict</th>
</tr>{''.join(rows)}</table>
{'<h2>Relative to the controls</h2>' + _img('ratio', ratio, 'ratio') if ratio else ''}
<h2>Goodput distribution per workload: baseline vs now</h2>
<p><small>Each point is one {'slice of a rep' if ctx['unit'] == 'interval' else 'rep'};
orange: this run divided by the environment factor (what ours is judged on).</small></p>
<div class="grid">{per}</div>
<h2>Distributions (min / p25 / median / p75 / max, Mbit/s)</h2>
<table id="distributions"><tr><th>workload</th><th>this run</th><th>baseline</th></tr>{dist}</table>
<h2>How this was judged</h2><p>{e(_rule(ctx).replace('**', ''))}</p>
<ul><li>baseline runs: {e(ctx['base_runs'])}</li>
<li>baseline host(s): {e('; '.join(ctx['base_hosts']) or '–')}; the run's host: {e(ctx['here'])}</li></ul>
</body></html>
"""


def _files(run: Path, rels: Sequence[str]) -> str:
    out = []
    for rel in rels:
        d = run / rel
        if not d.is_dir():
            continue
        for p in sorted(d.rglob("*")):
            if p.is_file() and p.name.endswith(_CAPTURE_EXT):
                r = os.path.relpath(p, run)
                out.append(f'<a href="{html.escape(r)}">{html.escape(p.name)}</a>')
    return " ".join(out[:12]) + (" …" if len(out) > 12 else "")


def write_report(run_dir: str | Path, baseline: str | Path | Mapping[str, Any] | None = None,
                 **kw: Any) -> Report:
    """:func:`build_report` and write report.md / report.html / report.json into the run."""
    rep = build_report(run_dir, baseline, **kw)
    run = Path(run_dir)
    for name, text in (("report.md", rep.markdown), ("report.html", rep.html)):
        (run / name).write_text(text)
        rep.written.append(run / name)
    doc = {"run": run.name, "baseline": str(rep.baseline_file) if rep.baseline_file else None,
           "also": [str(a) for a in kw.get("also", ())], "verdict": rep.verdict,
           "verdict_line": rep.verdict_line, "exit_code": rep.exit_code,
           "regressions": [c.key for c in rep.regressions],
           "moved_controls": {c.key: c.change for c in rep.moved_controls},
           "environment_change": rep.env_change, "environment_floor": rep.env_floor,
           "rerun_workloads": rep.rerun_workloads,
           "comparisons": [c.to_dict() for c in rep.comparisons]}
    (run / "report.json").write_text(json.dumps(doc, indent=1, default=float) + "\n")
    rep.written.append(run / "report.json")
    return rep


def run_verdict(run_dir: str | Path, baseline: str | Path | None = None) -> tuple[str, Path]:
    """The end-of-run line of ``scenarios run``: write the report, return (line, report.html).

    Without a baseline file for the scenario the line says so plainly.
    """
    run = Path(run_dir)
    rep = write_report(run, baseline)
    if rep.baseline_file is None:
        line = ("not comparable: no baseline for this definition (no "
                "results/baselines/<scenario>.json; record one with "
                "`python -m quicreality.scenarios baseline update RUN_DIR...`)")
    elif rep.verdict == "not comparable":
        fields = _fields(rep.not_comparable)
        line = ("not comparable: no baseline for this definition ("
                + ("--quick" if rep.quick else "full") + f" run) in {rep.baseline_file}"
                + ("; differing: " + ", ".join(fields) if fields else ""))
    else:
        label = {"regressed": "regressed (vs the controls)", "ok": "ok",
                 "inconclusive": "ok (inconclusive, rerun)",
                 "environment changed": "environment changed",
                 "not comparable": "not comparable"}[rep.verdict]
        line = f"{label}: {rep.verdict_line.split(': ', 1)[-1]}"
    return line, run / "report.html"


def end_of_run_lines(run_dir: str | Path) -> list[str]:
    """What ``scenarios run`` prints last: the verdict against the committed baseline of the
    run's definition and the report's path. Never raises (a report error is a line too)."""
    try:
        line, path = run_verdict(run_dir)
    except Exception as exc:  # noqa: BLE001 - the run itself is done; say why there is no verdict
        return [f"verdict: not judged ({type(exc).__name__}: {exc})"]
    return [f"verdict: {line}", f"report: {path}"]
