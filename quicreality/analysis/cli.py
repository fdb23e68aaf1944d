"""``report`` and ``baseline update`` sub-commands of ``python -m quicreality.scenarios``.

    python -m quicreality.scenarios report RUN_DIR [--baseline FILE] [--floor 0.10]
    python -m quicreality.scenarios baseline update RUN_DIR [RUN_DIR ...] [--out FILE]
    python -m quicreality.scenarios baseline rekey OLD.json --like RUN_DIR [--out FILE]

``report`` exits 1 on a regression, 0 otherwise (an inconclusive verdict is printed loudly but
does not fail), 2 on a usage error or an unreadable run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .regression import (
    DEFAULT_ALPHA,
    DEFAULT_FLOOR,
    DEFAULT_INTERVALS,
    DEFAULT_NOISE_K,
    baseline_path,
    make_baseline,
    run_samples,
    save_baseline,
    update_baseline,
)

__all__ = ["main_baseline", "main_report"]


def _report_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m quicreality.scenarios report",
        description="Compare a run with its baseline; write report.md/report.html into the run "
                    "folder; exit 1 on a regression.")
    ap.add_argument("run_dir", type=Path,
                    help="results/runs/<UTC time>-<git sha>, or 'latest' for the newest run "
                         "under --results")
    ap.add_argument("--results", type=Path, default=None,
                    help="results folder for 'latest' (default: results/)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="baseline file (default: results/baselines/<scenario>.json)")
    ap.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                    help=f"Mann-Whitney U significance level (default {DEFAULT_ALPHA})")
    ap.add_argument("--floor", type=float, default=DEFAULT_FLOOR,
                    help=f"smallest relative median drop for a regression (default "
                         f"{DEFAULT_FLOOR})")
    ap.add_argument("--unit", choices=("interval", "rep"), default="interval",
                    help="samples: goodput slices of each rep (default) or one value per rep")
    ap.add_argument("--intervals", type=int, default=DEFAULT_INTERVALS,
                    help=f"slices per rep (default {DEFAULT_INTERVALS})")
    ap.add_argument("--metric", default=None, help="samples.jsonl goodput metric name")
    ap.add_argument("--noise-k", type=float, default=DEFAULT_NOISE_K,
                    help=f"a workload's floor is at least this × its baseline's between-rep "
                         f"CV (default {DEFAULT_NOISE_K:g}; 0 = the fixed floor)")
    ap.add_argument("--also", type=Path, action="append", default=[], metavar="RUN_DIR",
                    help="pool this run's reps with RUN_DIR's (a confirmation rerun)")
    ap.add_argument("--any-host", action="store_true",
                    help="judge against a baseline of another host class (CPU model/count)")
    ap.add_argument("--no-controls", action="store_true",
                    help="judge our workloads unadjusted (not relative to the controls)")
    return ap


def main_report(argv: list[str]) -> int:
    """``report RUN_DIR [--baseline FILE]``."""
    args = _report_parser().parse_args(argv)
    if str(args.run_dir) == "latest":
        from .results import find_runs

        runs = find_runs(args.results)
        if not runs:
            print(f"report: no run under {args.results or 'results/'}runs", file=sys.stderr)
            return 2
        args.run_dir = runs[-1]
    if not args.run_dir.is_dir():
        print(f"report: {args.run_dir} is not a directory", file=sys.stderr)
        return 2
    from .report import write_report  # pandas/matplotlib only when needed

    try:
        rep = write_report(args.run_dir, args.baseline, alpha=args.alpha, floor=args.floor,
                           unit=args.unit, metric=args.metric,
                           intervals_per_rep=args.intervals, noise_k=args.noise_k,
                           also=args.also, any_host=args.any_host,
                           use_controls=not args.no_controls)
    except (ValueError, FileNotFoundError) as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    print_table(rep)
    if rep.inconclusive:
        print("!" * 72)
        print("!!! INCONCLUSIVE, RERUN: " + ", ".join(c.key for c in rep.inconclusive))
        print("!" * 72)
    if rep.regressions:
        print("REGRESSION: " + ", ".join(c.key for c in rep.regressions))
        if not args.also:
            only = " ".join(f"--only {w}" for w in rep.rerun_workloads)
            print(f"confirm with a rerun: python -m quicreality.scenarios run SCENARIO --quick "
                  f"{only}, then report {args.run_dir} --also <that run>")
    if rep.baseline_file is None and not any(c.baseline for c in rep.comparisons):
        print("note: no baseline to compare with "
              "(python -m quicreality.scenarios baseline update RUN_DIR)")
    for p in rep.written:
        print(f"wrote {p}")
    print(rep.verdict_line)
    return rep.exit_code


def print_table(rep: Any) -> None:
    """One line per workload: role, median, change (raw and relative to controls), verdict."""
    width = max([len(c.key) for c in rep.comparisons] + [8])
    for c in rep.comparisons:
        change = f"{c.change:+.1%}" if c.change == c.change else "–"
        raw = f"{c.raw_change:+.1%}" if c.raw_change == c.raw_change else "–"
        print(f"{c.key:<{width}}  {c.role:<7}  median {c.current_median:8.2f} Mbit/s  "
              f"raw {raw:>7}  vs controls {change if c.role == 'ours' else '–':>7}  "
              f"floor {c.floor:.0%}  p={c.p_value:.2g}  {c.verdict}")


def main_baseline(argv: list[str]) -> int:
    """``baseline update RUN_DIR [RUN_DIR ...] [--out FILE]`` / ``baseline rekey OLD --like RUN``."""
    ap = argparse.ArgumentParser(
        prog="python -m quicreality.scenarios baseline",
        description="Record runs' raw per-rep goodput (and per-slice samples) as a baseline "
                    "keyed by their measurement definition.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("update", help="add/replace entries in results/baselines/<scenario>.json")
    up.add_argument("run_dirs", type=Path, nargs="+",
                    help="one or more unchanged runs (reps are pooled per definition)")
    up.add_argument("--out", type=Path, default=None,
                    help="output file (default results/baselines/<scenario>.json); entries of "
                         "other definitions or hosts in it are kept")
    up.add_argument("--scenario", default=None, help="only this scenario of the run(s)")
    up.add_argument("--intervals", type=int, default=DEFAULT_INTERVALS)
    up.add_argument("--metric", default=None)
    up.add_argument("--note", default=None, help="free text stored in the file (provenance)")
    rk = sub.add_parser("rekey", help="convert a schema-1 baseline, taking the measurement "
                                      "definitions from a run measured the same way")
    rk.add_argument("old", type=Path)
    rk.add_argument("--like", type=Path, required=True, metavar="RUN_DIR")
    rk.add_argument("--note", required=True, help="why that run has the same definition")
    rk.add_argument("--out", type=Path, default=None, help="default: overwrite OLD")
    rk.add_argument("--intervals", type=int, default=DEFAULT_INTERVALS)
    args = ap.parse_args(argv)
    if args.cmd == "rekey":
        return _rekey(args)
    for r in args.run_dirs:
        if not r.is_dir():
            print(f"baseline: {r} is not a directory", file=sys.stderr)
            return 2
    try:
        doc = make_baseline(args.run_dirs, scenario=args.scenario, metric=args.metric,
                            intervals_per_rep=args.intervals, note=args.note or "")
        out = args.out or baseline_path(doc["scenario"])
        doc = update_baseline(out, doc)
    except ValueError as exc:
        print(f"baseline: {exc}", file=sys.stderr)
        return 2
    save_baseline(doc, out)
    n = sum(len(e["reps"]) for e in doc["entries"])
    print(f"wrote {out}: {len(doc['entries'])} entries, {n} reps")
    return 0


def _rekey(args: argparse.Namespace) -> int:
    from .baselines import rekey_v1

    if not args.like.is_dir():
        print(f"baseline: {args.like} is not a directory", file=sys.stderr)
        return 2
    old = json.loads(args.old.read_text())
    cur = run_samples(args.like, intervals_per_rep=args.intervals, with_intervals=False)
    try:
        doc = rekey_v1(old, {k: e["definition"] for k, e in cur.items()},
                       {k: e["control"] for k, e in cur.items()},
                       f"re-keyed from schema 1 with the definitions of {args.like.name}: "
                       f"{args.note}")
    except ValueError as exc:
        print(f"baseline: {exc}", file=sys.stderr)
        return 2
    dropped = doc.pop("dropped")
    out = save_baseline(doc, args.out or args.old)
    print(f"wrote {out}: {len(doc['entries'])} entries"
          + (f"; dropped (no such workload in the run): {', '.join(dropped)}"
             if dropped else ""))
    return 0
