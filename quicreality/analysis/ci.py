"""The CI regression gate: run a scenario ``--quick``, report against the committed baseline,
and confirm a regression with one rerun before failing.

    python -m quicreality.analysis.ci [--scenario lossy-wan] [--results DIR] [--baseline FILE]
                                      [--no-confirm]

1. ``python -m quicreality.scenarios run SCENARIO --quick --results DIR`` (a failed check fails
   CI with the runner's exit status, before any statistics);
2. ``report`` of that run against ``results/baselines/<scenario>.json`` → report.md/html/json in
   the run folder;
3. if a workload regressed: rerun those workloads and the controls (``--only``: ours is judged
   relative to the controls of the same runs), and report again with the rerun's reps pooled
   (``--also``). A one-off slow run does not survive this; a real
   regression does (docs/analysis.md has the measured rates with and without it).

Exit status: 0 (ok, inconclusive, environment changed or not comparable — printed loudly),
1 (confirmed regression), or the runner's non-zero status.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from .cli import print_table
from .regression import baseline_path
from .report import Report, write_report
from .results import REPO_ROOT, find_runs

__all__ = ["main"]


def _run(scenario: str, results: Path, only: list[str]) -> tuple[int, Path | None]:
    before = {p.name for p in find_runs(results)}
    argv = [sys.executable, "-m", "quicreality.scenarios", "run", scenario, "--quick",
            "--results", str(results)]
    for w in only:
        argv += ["--only", w]
    print("+ " + " ".join(argv), flush=True)
    rc = subprocess.run(argv, cwd=REPO_ROOT, check=False).returncode
    new = [p for p in find_runs(results) if p.name not in before]
    return rc, (new[-1] if new else None)


def _summary(rep: Report, label: str) -> None:
    print(f"== {label}: {rep.verdict_line}")
    print_table(rep)
    if rep.inconclusive:
        print("!" * 72 + "\n!!! INCONCLUSIVE (does not fail CI): "
              + ", ".join(c.key for c in rep.inconclusive) + "\n" + "!" * 72)


def main(argv: list[str] | None = None) -> int:
    """Run, report, confirm; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="lossy-wan")
    ap.add_argument("--results", type=Path, default=REPO_ROOT / "results")
    ap.add_argument("--baseline", type=Path, default=None)
    ap.add_argument("--no-confirm", action="store_true",
                    help="fail on the first run's regression verdict (no rerun)")
    args = ap.parse_args(argv)
    baseline = args.baseline or baseline_path(args.scenario)
    if not baseline.exists():
        print(f"ci: no baseline {baseline}; record one with "
              f"python -m quicreality.scenarios baseline update RUN_DIR...", file=sys.stderr)
        return 2
    rc, run = _run(args.scenario, args.results, [])
    if rc != 0 or run is None:
        print(f"ci: the run failed (exit {rc}); no regression report", file=sys.stderr)
        return rc or 2
    rep = write_report(run, baseline)
    _summary(rep, f"report {run}")
    if not rep.regressions or args.no_confirm:
        print(f"report: {run / 'report.html'}")
        return rep.exit_code
    only = rep.rerun_workloads
    print(f"ci: regression in {', '.join(c.key for c in rep.regressions)}: confirming with a "
          f"rerun of {', '.join(only)}", flush=True)
    rc2, rerun = _run(args.scenario, args.results, only)
    if rc2 != 0 or rerun is None:
        print(f"ci: the confirmation rerun failed (exit {rc2})", file=sys.stderr)
        return rc2 or 1
    final = write_report(run, baseline, also=[rerun])
    _summary(final, f"report {run} + rerun {rerun.name}")
    print(f"report: {run / 'report.html'}")
    return final.exit_code


if __name__ == "__main__":
    sys.exit(main())
