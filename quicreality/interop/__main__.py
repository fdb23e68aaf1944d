"""``python -m quicreality.interop list|run``: the QIR test cases over our links.

``list`` prints every case (abbreviation, name, link); ``table RUN`` prints a run's
``result.json`` as a markdown grid.  ``run`` runs the selected cases for
every server x client pair and writes ``result.json`` (QIR's schema), ``samples.jsonl`` and
``matrix.html`` into a new run directory.  Exit status: 0 when the matrix ran (failed cases
are data), 1 when nothing ran, 2 on a usage error (or without root).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..scenarios.cleanup import require_net_admin
from ..scenarios.peers import paths
from ..scenarios.results import git_info, new_run_dir, write_json
from .adapters import CLIENTS, SERVERS
from .cases import CASES, CaseError, select

EXIT_OK, EXIT_NOTHING, EXIT_USAGE = 0, 1, 2
DEFAULT_RESULTS = paths.REPO_ROOT / "results"


def _peers(value: str | None, known: Sequence[str], role: str) -> tuple[str, ...]:
    if value is None:
        return tuple(known)
    out = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [v for v in out if v not in known]
    if bad or not out:
        raise CaseError(f"--{role}s: unknown {role}(s) {bad or value!r}; known: {', '.join(known)}")
    return out


def main_list() -> int:
    """Print the cases."""
    for c in CASES:
        kind = "measurement" if c.measurement else "test"
        print(f"{c.abbr:<4} {c.name:<20} {kind:<12} {c.link_text}")
    return EXIT_OK


def main_table(run: Path) -> int:
    """Print ``run``'s result.json (a run directory or the file) as markdown."""
    from .report import markdown_table

    path = run / "result.json" if run.is_dir() else run
    try:
        doc = json.loads(path.read_text())
        print(markdown_table(doc), end="")
    except (OSError, ValueError, KeyError, IndexError) as e:
        print(f"quicreality.interop: {path}: not a result.json ({e})", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def main_run(args: argparse.Namespace) -> int:
    """Run the matrix; see the module docstring for the exit status."""
    from .parallel import mark_overlaps, matrix_jobs, run_estimate_s
    from .report import matrix_html, result_json, tidy_rows
    from .runner import Levers, MatrixOptions, Outcome, dump_jsonl, run_info, run_matrix

    try:
        cases = select(args.tests)
        servers = _peers(args.servers, SERVERS, "server")
        clients = _peers(args.clients, CLIENTS, "client")
        if args.reps is not None and args.reps < 1:
            raise CaseError("--reps must be >= 1")
        if args.analysis_workers < 0:
            raise CaseError("--analysis-workers must be >= 0")
        if args.jobs < 1:
            raise CaseError("--jobs must be >= 1")
        if args.cpu_budget <= 0 or args.quiet_budget < 0:
            raise CaseError("--cpu-budget must be > 0 and --quiet-budget >= 0")
    except CaseError as e:
        print(f"quicreality.interop: {e}", file=sys.stderr)
        return EXIT_USAGE
    require_net_admin("`python -m quicreality.interop run`")
    opts = MatrixOptions(cases=cases, servers=servers, clients=clients, results=args.results,
                         reps=args.reps, seed=args.seed)
    run_dir = new_run_dir(Path(args.results) / "interop", git_info()["short"])
    info = run_info(opts)
    info.update({"jobs": args.jobs, "cpu_budget": args.cpu_budget,
                 "quiet_budget": args.quiet_budget})
    write_json(run_dir / "run.json", info)
    total = sum((args.reps or c.repetitions) for c in cases) * len(servers) * len(clients)
    t0, done = time.time(), [0]
    est_total = sum((args.reps or c.repetitions) * run_estimate_s(c, s, k)
                    for c in cases for s in servers for k in clients)
    est_done = [0.0]
    print(f"interop run {run_dir.name}: {len(cases)} case(s) x {len(servers)} server(s) x "
          f"{len(clients)} client(s) = {total} run(s), --jobs {args.jobs}", flush=True)

    def progress(o: Outcome) -> None:
        n = 1 if o.verdict is not None else (args.reps or o.case.repetitions)
        done[0] += n
        ran = o.verdict is not None and not o.sample.get("checked_only")
        est_done[0] += n * run_estimate_s(o.case, o.server, o.client) if ran else 0.0
        est_left = est_total - est_done[0]
        el = time.time() - t0
        eta = f"ETA {el * est_left / est_done[0] / 60:4.0f}m" if est_done[0] > 0 else "ETA    ?"
        res = o.verdict.result if o.verdict is not None else "NOT RUN"
        job = f"j{o.sample['job']}" if "job" in o.sample else "  "
        print(f"[{done[0]:>4}/{total} {el:6.0f}s {eta}] {job:<3} {o.case.abbr:<3} "
              f"{o.case.name:<19} {o.server:>7} <- {o.client:<7} {res:<11} {o.secs:5.1f}s  "
              f"{o.reason[:100]}", flush=True)

    try:
        outcomes = run_matrix(opts, run_dir, progress, Levers(
            analysis_workers=args.analysis_workers, check_support=not args.no_support_check,
            reuse_links=not args.no_link_reuse, jobs=args.jobs, cpu_budget=args.cpu_budget,
            quiet_budget=args.quiet_budget), jobs_runner=matrix_jobs)
    except KeyboardInterrupt:
        print("interrupted; namespaces and processes were removed", file=sys.stderr)
        return 130
    end = time.time()
    mark_overlaps([o.sample for o in outcomes])
    doc = result_json(outcomes, cases, servers, clients, t0, end, run_dir.name)
    write_json(run_dir / "result.json", doc)
    rows = [r for o in outcomes for r in tidy_rows(o, run_dir.name)]
    dump_jsonl(run_dir / "samples.jsonl", rows)
    for o in outcomes:  # per case and pair, next to its evidence
        d = run_dir / f"{o.server}_{o.client}" / o.case.name
        if o.verdict is not None and d.is_dir():
            with open(d / "samples.jsonl", "a") as f:
                for r in tidy_rows(o, run_dir.name):
                    f.write(json.dumps(r, sort_keys=True) + "\n")
    (run_dir / "matrix.html").write_text(matrix_html(outcomes, cases, servers, clients,
                                                     f"interop matrix {run_dir.name}"))
    info.update({"finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end)),
                 "seconds": round(end - t0, 1)})
    write_json(run_dir / "run.json", info)
    ran = [o for o in outcomes if o.verdict is not None]
    counts = {r: sum(1 for o in ran if o.verdict is not None and o.verdict.result == r)
              for r in ("succeeded", "failed", "unsupported")}
    print(f"done in {end - t0:.0f} s: {counts['succeeded']} succeeded, {counts['failed']} failed, "
          f"{counts['unsupported']} unsupported, {len(outcomes) - len(ran)} not run", flush=True)
    print(f"run directory: {run_dir}", flush=True)
    return EXIT_OK if ran else EXIT_NOTHING


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(prog="python -m quicreality.interop",
                                 description="quic-interop-runner's test cases over our "
                                             "emulated links, every peer, both roles")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="print the test cases: abbreviation, name, kind, link")
    t = sub.add_parser("table", help="print a run's result.json as a markdown grid")
    t.add_argument("run", type=Path, metavar="RUN_DIR|result.json")
    r = sub.add_parser("run", help="run the matrix (root: network namespaces)")
    r.add_argument("--clients", help=f"comma-separated (default all: {','.join(CLIENTS)})")
    r.add_argument("--servers", help=f"comma-separated (default all: {','.join(SERVERS)})")
    r.add_argument("--tests", help="comma-separated case names or abbreviations (default all)")
    r.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                   help=f"results root (default {DEFAULT_RESULTS}); runs go to "
                        "<root>/interop/runs/")
    r.add_argument("--reps", type=int, help="repetitions per pair (default: 1 per test, "
                                            "5 per measurement, as QIR)")
    r.add_argument("--seed", type=int, default=1, help="emulator base seed (default 1)")
    r.add_argument("--analysis-workers", type=int, default=1, metavar="N",
                   help="threads that decrypt and judge finished runs while the next one runs "
                        "(default 1; 0: judge each run before the next starts)")
    r.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="cells (case x server x client, all repetitions) run at once, each on "
                        "its own topology: own namespaces, emulator and captures (default 1)")
    r.add_argument("--cpu-budget", type=float, default=1.6, metavar="CORES",
                   help="with --jobs: estimated cores the running cells may use together "
                        "(default 1.6; a heavier cell runs alone)")
    r.add_argument("--quiet-budget", type=float, default=0.0, metavar="CORES",
                   help="with --jobs: the same while a measurement (goodput, crosstraffic) "
                        "runs (default 0: a measurement runs alone; measured: next to other "
                        "cells goodput drops by up to 7 %%)")
    r.add_argument("--no-support-check", action="store_true",
                   help="do not ask the adapters for 127 (QR_CHECK_ONLY=1) before the runs: "
                        "an unsupported cell is then started to find out")
    r.add_argument("--no-link-reuse", action="store_true",
                   help="build a new topology for every case (default: cases with the same "
                        "link run together on one)")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.cmd == "list":
        return main_list()
    if args.cmd == "table":
        return main_table(args.run)
    return main_run(args)


if __name__ == "__main__":
    sys.exit(main())
