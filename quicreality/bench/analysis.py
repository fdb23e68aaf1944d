"""``python -m quicreality.bench analysis RUN_DIR``: how fast the analysis opens a run.

Three timings on one run folder, as a user meets them:

1. **derive, cold**: ``python -m quicreality.analysis derive RUN_DIR --force`` (every derived
   table rebuilt: one tshark pass per capture, qlogs, goodput, RTT/cwnd, slices), with the
   per-phase breakdown it prints;
2. **each notebook, warm**: every notebook of ``notebooks/`` that reads a run (``QR_RUN_DIR``),
   executed headless in a fresh kernel (nbclient) against the derived tables, then all of them
   one after another;
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

from ..analysis.results import REPO_ROOT

#: Notebooks that read the run named by ``QR_RUN_DIR`` (camouflage and censorship read their
#: own committed data).
RUN_NOTEBOOKS = ("overview", "throughput", "rtt", "retransmits", "regression", "reality",
                 "captures", "sweeps")
GOAL_NOTEBOOK_S, GOAL_ALL_S, GOAL_REPORT_S = 20.0, 60.0, 10.0


def _size(path: Path, *, derived: bool) -> int:
    return sum(f.stat().st_size for f in path.rglob("*")
               if f.is_file() and ("derived" in f.parts) == derived)


def _timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str, int]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False)
    return time.perf_counter() - t0, (p.stdout + p.stderr).strip(), p.returncode


def _notebook(name: str, run_dir: Path) -> tuple[float, str]:
    """Execute one notebook in a fresh kernel; (seconds, error or "")."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    os.environ["QR_RUN_DIR"] = str(run_dir)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb_dir = REPO_ROOT / "notebooks"
    nb = nbformat.read(nb_dir / f"{name}.ipynb", as_version=4)
    t0 = time.perf_counter()
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(nb_dir)}}).execute()
    except CellExecutionError as exc:
        return time.perf_counter() - t0, str(exc).splitlines()[-1][:200]
    return time.perf_counter() - t0, ""


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
    for i, name in enumerate(names, 1):
        secs, err = _notebook(name, run)
        total += secs
        failed += bool(err)
        mark = "ok" if secs <= GOAL_NOTEBOOK_S else "OVER"
        print(f"[{i}/{len(names)}] notebook {name:12s} {secs:6.1f} s  (goal <= "
              f"{GOAL_NOTEBOOK_S:.0f} s: {mark})" + (f"  ERROR {err}" if err else ""))
    print(f"all {len(names)} notebooks: {total:.1f} s  (goal <= {GOAL_ALL_S:.0f} s: "
          f"{'ok' if total <= GOAL_ALL_S else 'OVER'})")
    secs, out, rc = _timed([sys.executable, "-m", "quicreality.scenarios", "report", str(run)])
    failed += rc not in (0, 1)  # 1 = a regression verdict: the report itself ran
    print(f"report (warm): {secs:.1f} s  (goal <= {GOAL_REPORT_S:.0f} s: "
          f"{'ok' if secs <= GOAL_REPORT_S else 'OVER'}); exit {rc}: "
          f"{out.splitlines()[0] if out else ''}")
    print(f"load average now {os.getloadavg()[0]:.1f}")
    return 1 if failed else 0
