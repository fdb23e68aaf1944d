"""``python -m quicreality.scenarios run|list``: the scenario runner.

Theory of operation
-------------------
``run NAME|PATH`` loads the scenario (:mod:`.catalog`), checks privileges
(exit 2 with one line without root/CAP_NET_ADMIN), creates the run directory
(:mod:`.results`), builds **one** topology for the whole run and measures its
link (:mod:`.linkcheck`; a link off beyond tolerance is measured once more,
then the run stops with exit 3).  Then, for every workload and repetition::

    counters = topo.rearm(seed * 1000 + rep)   # same loss pattern for rep k of every workload
    outcome  = workloads.run_rep(ctx)          # never raises except Ctrl-C / SIGTERM
    counters = topo.rearm(...)                 # this rep's emulator counters
    write manifest.json, check.json, samples.jsonl

Workloads whose feature is missing from this checkout (REALITY, relay) are
*not run* and shown as such; they are never reported as passed.  The run ends
with the summary table (also ``summary.json``/``summary.txt``), prints the run
directory and exits 0 only if every workload ran and passed.

Cleanup: the topology context manager removes namespaces, links and every
process in them on success, failure, Ctrl-C and SIGTERM; per-rep processes
are stopped at the end of their repetition; the scratch directory (served
files, downloads) is a ``qr-<id>-*`` temp dir that is always removed (and
that ``clean`` recognises if the runner was SIGKILLed).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from .catalog import Scenario, ScenarioError, catalog, find_scenario, parse_size
from .cleanup import require_net_admin
from .peers import paths
from .points import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LINK,
    EXIT_OK,
    EXIT_USAGE,
    RunState,
    choose_backend,
    finish_run,
    make_assets,
    new_run_info,
    not_run_reason,
    run_point,
)
from .progress import Progress
from .results import git_info, new_run_dir, write_json
from .topology import TopologyError, new_run_id
from .transforms import capped, without_link_check

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_LINK", "EXIT_OK", "EXIT_USAGE", "RunState",
           "choose_backend", "finish_run", "main_list", "main_run", "make_assets", "new_run_info",
           "not_run_reason", "run_point", "run_scenario"]

DEFAULT_RESULTS = paths.REPO_ROOT / "results"

@dataclasses.dataclass(frozen=True, slots=True)
class RunOptions:
    """Command-line options of ``run``."""

    scenario: str
    reps: int | None = None
    seed: int | None = None
    results: Path = DEFAULT_RESULTS
    quick: bool = False
    only: tuple[str, ...] = ()
    backend: str | None = None


def run_scenario(sc: Scenario, opts: RunOptions, console: Console) -> RunState:
    """Run ``sc`` (every point of a sweep) and write everything under a new run directory
    (see the module docstring)."""
    git = git_info()
    run_dir = new_run_dir(opts.results, git["short"])
    state = RunState(run_dir=run_dir, scenario=sc)
    backend, why = choose_backend(opts.backend or sc.backend, sc.link,
                                  censor=sc.censor is not None)
    topo_id = new_run_id()
    scratch = Path(tempfile.mkdtemp(prefix=f"qr-{topo_id}-scratch-"))
    run_info = new_run_info(sc, run_dir, backend, why, {"kind": "local"})
    run_info["topology_run_id"] = topo_id
    write_json(run_dir / "run.json", run_info)
    points = sc.points()
    try:
        assets = make_assets(scratch, frozenset(run_info["features"]))
        with Progress(console, sc.name, sc.total_reps()) as progress:
            for i, point in enumerate(points):
                workdir = run_dir / "emulator"
                if point.point is not None:
                    progress.message(f"point {i + 1}/{len(points)}: {point.name}")
                    workdir = workdir / point.name
                    workdir.mkdir(parents=True, exist_ok=True)
                # every point reuses the run's topology id: `clean` keeps the scratch dir
                # (qr-<id>-scratch-*) of a run whose namespaces exist
                ok = run_point(point, state, assets, progress, run_info, backend, topo_id,
                               workdir)
                if not ok and sc.sweep is None:
                    state.exit_code = EXIT_LINK
                    return state
    except KeyboardInterrupt:
        state.exit_code = EXIT_INTERRUPTED
        state.note = "interrupted (Ctrl-C or SIGTERM); namespaces and processes were removed"
    except TopologyError as e:
        state.exit_code = EXIT_FAILED
        state.note = f"the topology failed, run aborted (namespaces were removed): {e}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        finish_run(state, run_info, console)
    return state


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m quicreality.scenarios run",
                                 description="run a scenario: namespaces, impaired link, real "
                                             "peers, pcap/keys/qlog, tidy results")
    ap.add_argument("scenario", metavar="NAME|PATH", help="catalog name (see `list`) or a .toml")
    ap.add_argument("--reps", type=int, help="repetitions per workload (overrides the file)")
    ap.add_argument("--seed", type=int, help="base seed (rep k uses seed*1000+k)")
    ap.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                    help=f"results root (default {DEFAULT_RESULTS}); runs go to <root>/runs/")
    ap.add_argument("--quick", action="store_true",
                    help="the scenario's [quick] settings: fewer reps, smaller transfers")
    ap.add_argument("--only", action="append", default=[], metavar="WORKLOAD",
                    help="run only this workload (repeatable)")
    ap.add_argument("--max-size", metavar="SIZE",
                    help="cap every download at SIZE (e.g. 2MB), keeping the points, reps and "
                         "link check (both executors; a smaller run of the same sweep)")
    ap.add_argument("--max-seconds", type=float, metavar="S",
                    help="cap every iperf3/timed workload at S seconds (as --max-size)")
    ap.add_argument("--no-link-check", action="store_true",
                    help="skip the link check (both executors; for a loaded host whose probes "
                         "fail; manifests record it)")
    ap.add_argument("--backend", choices=["auto", "userspace", "netem"],
                    help="link emulation backend (default: the scenario's, usually auto)")
    ap.add_argument("--executor", choices=["local", "dask"], default="local",
                    help="local (default: this machine) or dask (one task per point x workload "
                         "x rep on Dask workers; docs/scale-out.md)")
    ap.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                    help="dask: the scheduler (default: a local cluster on this machine)")
    ap.add_argument("--workers-per-host", type=int, default=1, metavar="N",
                    help="dask without --scheduler: worker processes of the local cluster, "
                         "each running one unit at a time (default 1)")
    return ap


def _capped(sc: Scenario, size: str | None, seconds: float | None) -> Scenario:
    """``--max-size``/``--max-seconds`` (:func:`.transforms.capped`); ScenarioError if bad."""
    nbytes = None
    if size is not None:
        try:
            nbytes = parse_size(size)
        except ValueError as e:
            raise ScenarioError("", "--max-size", str(e)) from e
        if nbytes <= 0:
            raise ScenarioError("", "--max-size", "must be > 0")
    if seconds is not None and not seconds > 0:
        raise ScenarioError("", "--max-seconds", "must be > 0")
    return capped(sc, nbytes, seconds)


def main_run(argv: Sequence[str] | None = None) -> int:
    """CLI of ``run``; returns the exit status (0 only if every workload ran and passed)."""
    args = _parser().parse_args(list(argv) if argv is not None else None)
    console = Console()
    if not console.is_terminal:
        console = Console(width=170)  # CI logs: do not squeeze the summary table into 80 columns
    try:
        sc = find_scenario(args.scenario)
        if args.quick:
            sc = sc.quickened()
        if args.only:
            sc = sc.only(args.only)
        if args.reps is not None:
            if args.reps < 1:
                raise ScenarioError("", "--reps", "must be >= 1")
            sc = sc.with_reps(args.reps)
        if args.max_size is not None or args.max_seconds is not None:
            sc = _capped(sc, args.max_size, args.max_seconds)
        if args.no_link_check:
            sc = without_link_check(sc)
        if args.seed is not None:
            sc = dataclasses.replace(sc, seed=args.seed)  # sweep points derive theirs from it
    except ScenarioError as e:
        print(f"quicreality.scenarios: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.executor == "local" and args.scheduler is not None:
        print("quicreality.scenarios: --scheduler needs --executor dask", file=sys.stderr)
        return EXIT_USAGE
    if args.workers_per_host < 1:
        print("quicreality.scenarios: --workers-per-host: must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    if args.executor == "dask":
        try:
            from .executors.daskexec import run_dask
        except ImportError as exc:
            print(f"quicreality.scenarios: --executor dask needs the distributed package "
                  f"(run scripts/setup.sh): {exc}", file=sys.stderr)
            return EXIT_USAGE
        if args.scheduler is None:
            require_net_admin("`run --executor dask` with a local cluster")
        state = run_dask(sc, args.results, args.backend or sc.backend, console,
                         scheduler=args.scheduler, workers_per_host=args.workers_per_host)
        return int(state.exit_code)
    require_net_admin("`run`")
    opts = RunOptions(scenario=args.scenario, reps=args.reps, seed=args.seed,
                      results=args.results, quick=args.quick, only=tuple(args.only),
                      backend=args.backend)
    state = run_scenario(sc, opts, console)
    return state.exit_code


def main_list(argv: Sequence[str] | None = None) -> int:
    """CLI of ``list``: catalog names and one-line descriptions."""
    ap = argparse.ArgumentParser(prog="python -m quicreality.scenarios list",
                                 description="list the scenario catalog (scenarios/*.toml)")
    ap.add_argument("-v", "--verbose", action="store_true", help="also list the workloads")
    args = ap.parse_args(list(argv) if argv is not None else None)
    try:
        scenarios = catalog()
    except ScenarioError as e:
        print(f"quicreality.scenarios: {e}", file=sys.stderr)
        return EXIT_USAGE
    width = max((len(s.name) for s in scenarios), default=0)
    for s in scenarios:
        print(f"{s.name:<{width}}  {s.description}")
        if args.verbose and s.sweep is not None:
            q = s.quickened()
            dims = " x ".join(f"{k} ({len(v)})" for k, v in zip(s.sweep.keys, s.sweep.values,
                                                                 strict=True))
            print(f"{'':<{width}}    sweep: {dims} = {len(s.points())} points, "
                  f"{s.total_reps()} units (point x workload x rep); --quick: "
                  f"{len(q.points())} points, {q.total_reps()} units")
        if args.verbose:
            for w in s.workloads:
                print(f"{'':<{width}}    {w.name:<22} {w.kind:<12} {w.pair:<18} "
                      f"{w.description}")
    return EXIT_OK
