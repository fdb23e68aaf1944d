"""``python -m quicreality.bench analysis RUN_DIR``: how fast the analysis opens a run.

Three timings on one run folder, as a user meets them:

1. **derive, cold**: ``python -m quicreality.analysis derive RUN_DIR --force`` (every derived
   table rebuilt: one tshark pass per capture, qlogs, goodput, RTT/cwnd, slices), with the
   per-phase breakdown it prints;
2. **each notebook, warm**: every notebook of ``notebooks/`` that reads a run (``QR_RUN_DIR``),
   executed headless in a fresh kernel (nbclient) against the derived tables, one at a time,
   then all of them together as ``python -m quicreality.analysis notebooks`` runs them (one
   kernel per core at a time; :func:`~quicreality.analysis.notebooks.run_notebooks`);
3. **report, warm**: ``python -m quicreality.scenarios report RUN_DIR``.

It prints the run's size (raw files and derived tables) and the goals of the analysis issue next
to each figure (notebook ≤ 20 s, all notebooks ≤ 60 s, report ≤ 10 s). Nothing asserts a time:
the machine may be shared, so the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from ..analysis.notebooks import RUN_NOTEBOOKS, run_notebooks
from ..analysis.results import REPO_ROOT

GOAL_NOTEBOOK_S, GOAL_ALL_S, GOAL_REPORT_S = 20.0, 60.0, 10.0


def _size(path: Path, *, derived: bool) -> int:
    return sum(f.stat().st_size for f in path.rglob("*")
               if f.is_file() and ("derived" in f.parts) == derived)


def _timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str, int]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False)
    return time.perf_counter() - t0, (p.stdout + p.stderr).strip(), p.returncode


def main(argv: list[str]) -> int:
    """CLI; returns 0 when everything ran, 1 when a step failed, 2 on usage errors."""
    ap = argparse.ArgumentParser(prog="python -m quicreality.bench analysis",
                                 description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("run_dir", type=Path, help="a run folder (results/runs/<run>)")
    ap.add_argument("--no-derive", action="store_true",
                    help="skip the cold derive (time only the warm notebooks and report)")
    ap.add_argument("--notebooks", default=",".join(RUN_NOTEBOOKS),
                    help="comma-separated notebook names (default: every run notebook)")
    args = ap.parse_args(argv)
    run = args.run_dir.resolve()
    if not (run / "run.json").is_file():
        print(f"bench analysis: {run} is not a run folder (no run.json)", file=sys.stderr)
        return 2
    names = [n for n in args.notebooks.split(",") if n]
    unknown = [n for n in names if not (REPO_ROOT / "notebooks" / f"{n}.ipynb").exists()]
    if unknown:
        print(f"bench analysis: no such notebook: {', '.join(unknown)}", file=sys.stderr)
        return 2
    failed = 0
    print(f"run {run.name}: raw files {_size(run, derived=False) / 1e9:.2f} GB, "
          f"{sum(1 for _ in run.rglob('rep-*/manifest.json'))} reps; "
          f"load average {os.getloadavg()[0]:.1f}")
    if not args.no_derive:
        secs, out, rc = _timed([sys.executable, "-m", "quicreality.analysis", "derive",
                                str(run), "--force"])
        failed += rc != 0
        print(f"derive (cold, --force): {secs:.1f} s" + ("" if rc == 0 else f"  FAILED ({rc})"))
        for line in out.splitlines():
            print(f"    {line}")
    print(f"derived tables {_size(run, derived=True) / 1e6:.1f} MB")
    total = 0.0
    for i, name in enumerate(names, 1):  # one at a time: each notebook as a user opens it
        r = run_notebooks([name], run, jobs=1)[0]
        total += r.seconds
        failed += not r.ok
        mark = "ok" if r.seconds <= GOAL_NOTEBOOK_S else "OVER"
        print(f"[{i}/{len(names)}] notebook {name:12s} {r.seconds:6.1f} s  (goal <= "
              f"{GOAL_NOTEBOOK_S:.0f} s: {mark})" + (f"  ERROR {r.error}" if r.error else ""))
    print(f"  one after another: {total:.1f} s")
    jobs = os.cpu_count() or 1
    t0 = time.perf_counter()
    together = run_notebooks(names, run, jobs=jobs)
    wall = time.perf_counter() - t0
    failed += sum(not r.ok for r in together)
    print(f"all {len(names)} notebooks together (python -m quicreality.analysis notebooks, "
          f"{jobs} kernels at a time): {wall:.1f} s  (goal <= {GOAL_ALL_S:.0f} s: "
          f"{'ok' if wall <= GOAL_ALL_S else 'OVER'})")
    secs, out, rc = _timed([sys.executable, "-m", "quicreality.scenarios", "report", str(run)])
    failed += rc not in (0, 1)  # 1 = a regression verdict: the report itself ran
    print(f"report (warm): {secs:.1f} s  (goal <= {GOAL_REPORT_S:.0f} s: "
          f"{'ok' if secs <= GOAL_REPORT_S else 'OVER'}); exit {rc}: "
          f"{out.splitlines()[0] if out else ''}")
    print(f"load average now {os.getloadavg()[0]:.1f}")
    return 1 if failed else 0
