"""One topology's worth of a run: link check, workloads, repetitions, and the run's summary.

The local runner (:mod:`.runner`) and both executors (:mod:`.executors`) build on this module:
:func:`run_point` runs one scenario or sweep point on one topology (optionally only some
``(workload, rep)`` units), :func:`finish_run` writes the summary and ``run.json``. It never
imports the runner or the executors, so neither depends on the other.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from .catalog import Scenario, Workload
from .linkcheck import check_link
from .model import Link, link_to_dict
from .netem import probe_netem
from .peers import paths
from .peers.certs import make_test_cert
from .progress import Progress, RepRecord, summarise, summary_table, summary_text
from .results import (
    Sample,
    git_info,
    host_info,
    load_average,
    rep_dir,
    tool_versions,
    write_json,
    write_samples,
)
from .topology import ADDRESSES, Backend, Topology, new_run_id
from .workloads import Assets, RepContext, run_rep
from .workloads.reality import SERVER_NAME, probe_features

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_LINK", "EXIT_OK", "EXIT_USAGE", "RunState",
           "choose_backend", "finish_run", "host_probes", "make_assets", "new_run_info",
           "not_run_reason", "run_point"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LINK, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

#: Tools each workload kind needs on this machine (beyond our own CLI).
_TOOLS = {"curl": (paths.curl_h3,), "quicgo": (paths.qrgo,),
          "ngtcp2": (paths.gtlsclient, paths.gtlsserver), "iperf3": (paths.iperf3,),
          "aioquic": (lambda: paths.aioquic_script("h3server.py"),), "ours": ()}


@dataclasses.dataclass
class RunState:
    """What a run accumulates (for the summary and run.json)."""

    run_dir: Path
    scenario: Scenario
    records: list[RepRecord] = dataclasses.field(default_factory=list)
    link_checks: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    exit_code: int = EXIT_OK
    note: str = ""
    point_checks: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    link_failed: list[str] = dataclasses.field(default_factory=list)


def choose_backend(requested: str, link: Link, *, censor: bool = False) -> tuple[Backend, str]:
    """(backend, why): ``auto`` picks netem when the kernel has it, else userspace.

    A scenario with a ``[censor]`` always gets the userspace emulator (netem cannot inspect).
    """
    if censor:
        return "userspace", "the [censor] runs in the userspace emulator"
    if requested == "userspace":
        return "userspace", "requested"
    has_bh = link.to_server.blackhole is not None or link.to_client.blackhole is not None
    probe = probe_netem()
    if requested == "netem":
        return "netem", f"requested (probe: {probe.detail})"
    if not probe.available:
        return "userspace", f"netem unavailable: {probe.detail}"
    if has_bh:
        return "userspace", "netem available, but blackhole schedules need the userspace emulator"
    return "netem", "netem available"


def _without_blackhole(link: Link) -> Link:
    return Link(to_server=dataclasses.replace(link.to_server, blackhole=None),
                to_client=dataclasses.replace(link.to_client, blackhole=None))


def _missing_tools(w: Workload) -> list[str]:
    out = []
    for peer in {w.client, w.server, w.target if (w.reality or w.kind == "fallback") else "ours"}:
        for fn in _TOOLS.get(peer, ()):
            try:
                fn()
            except paths.PeerNotInstalled as e:
                out.append(str(e))
    return out


def _measure(topo: Topology, sc: Scenario, progress: Progress,
             state: RunState) -> bool:
    """Link check (one retry); records every attempt; True if the link is within tolerance."""
    link = sc.link
    for attempt in (1, 2):
        progress.message(f"measuring the link (attempt {attempt}: ping + iperf3 UDP probes)")
        try:
            res, m = check_link(topo, link, probe_s=sc.link_check.probe_s,
                                ping_count=sc.link_check.ping_count)
        except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as e:
            state.link_checks.append({"attempt": attempt, "check": {"ok": False, "items": []},
                                      "error": str(e), "summary": f"probe failed: {e}"})
            progress.message(f"link probe failed: {e}")
            continue
        entry = {"attempt": attempt, "check": res.to_dict(), "measured": dataclasses.asdict(m),
                 "summary": res.summary()}
        state.link_checks.append(entry)
        progress.message("link " + ("ok" if res.ok else "OFF BEYOND TOLERANCE") + ":\n    "
                         + "\n    ".join(res.summary().splitlines()))
        if res.ok:
            return True
    return False


def _rep_record(w: Workload, rep: int, ok: bool, reason: str, metrics: dict[str, float],
                secs: float) -> RepRecord:
    return RepRecord(workload=w.name, pair=w.pair, rep=rep, status="ok" if ok else "fail",
                     reason=reason, metrics=metrics, secs=secs, baseline=w.baseline)


def host_probes() -> dict[str, Any]:
    """What this checkout offers here: ``features`` (:func:`probe_features`) and ``tools``
    (their versions). Each run probes once; a Dask worker once per worker process."""
    return {"features": sorted(probe_features()), "tools": tool_versions()}


def new_run_info(sc: Scenario, run_dir: Path, backend: str, why: str,
                 executor: Mapping[str, Any],
                 probes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The first version of ``run.json`` (also what every manifest copies from).

    ``probes``: :func:`host_probes` made earlier on this host (default: probe now)."""
    probes = probes if probes is not None else host_probes()
    return {
        "run": run_dir.name, "started_utc": _dt.datetime.now(_dt.UTC).isoformat(),
        "argv": sys.argv, "scenario": sc.to_dict(), "seed": sc.seed, "git": git_info(),
        "kernel": os.uname().release, "backend": backend, "backend_reason": why,
        "features": list(probes["features"]), "tools": dict(probes["tools"]),
        "host": host_info(),
        "executor": dict(executor), "status": "running",
        **({"points": [p.point for p in sc.points()]} if sc.sweep is not None else {})}


def make_assets(scratch: Path, features: frozenset[str]) -> Assets:
    """Served files, the run's test PKI (CA + leaf for every address) and the feature set."""
    (scratch / "www").mkdir()
    cert, key, ca = make_test_cert(scratch / "pki", extra_sans=[
        *(ADDRESSES[h] for h in ("client", "server", "server_preferred", "target",
                                 "server_target_side")),
        SERVER_NAME])
    return Assets(dir=scratch, www=scratch / "www", cert=cert, key=key, ca=ca, features=features)


def run_point(sc: Scenario, state: RunState, assets: Assets, progress: Progress,
              run_info: dict[str, Any], backend: Backend, topo_id: str, workdir: Path,
              units: Sequence[tuple[str, int]] | None = None) -> bool:
    """One topology for one scenario (or sweep point): link check, then its repetitions.

    ``units``: only these ``(workload, rep)`` (the dask executor runs one per task); default
    every workload's repetitions. Returns False if the link check failed (nothing was run;
    for a sweep point its workloads are recorded as not run).
    """
    state.link_checks = []
    if sc.link_check.enabled and (sc.link.to_server.blackhole or sc.link.to_client.blackhole):
        # the schedule would black out the probes: measure the same link without it
        with Topology.create(new_run_id(), _without_blackhole(sc.link), backend,
                             seed=sc.seed) as probe_topo:
            link_ok = _measure(probe_topo, sc, progress, state)
        state.note = "link check on a twin topology without the blackhole schedule"
    else:
        link_ok = True
    with Topology.create(topo_id, sc.link, backend, seed=sc.seed, workdir=str(workdir),
                         censor=dict(sc.censor) if sc.censor is not None else None,
                         link2=sc.link2) as topo:
        if sc.link_check.enabled and not state.link_checks:
            link_ok = _measure(topo, sc, progress, state)
        if sc.point is not None:
            state.point_checks[sc.name] = list(state.link_checks)
        if not link_ok:
            if sc.point is not None:
                for w in sc.workloads:
                    if units is not None and not any(w.name == u for u, _ in units):
                        continue  # a dask unit records only its own workload
                    rec = RepRecord(workload=_label(sc, w), pair=w.pair, rep=0, status="not-run",
                                    reason="link check failed (off beyond tolerance)",
                                    baseline=w.baseline)
                    state.records.append(rec)
                    progress.end_rep(rec)
                state.link_failed.append(sc.name)
            return False
        _run_workloads(topo, sc, state, assets, progress, run_info, units)
    if sc.point is None:
        run_info["emulator_stats"] = topo.emulator_stats
        if topo.emulator2_stats is not None:
            run_info["emulator2_stats"] = topo.emulator2_stats
    else:
        run_info.setdefault("emulator_stats_points", {})[sc.name] = topo.emulator_stats
    return True


def _label(sc: Scenario, w: Workload) -> str:
    """The summary's workload column: the name, prefixed by the sweep point's label."""
    return f"{sc.point['label']}/{w.name}" if sc.point is not None else w.name


def not_run_reason(w: Workload, features: frozenset[str]) -> str:
    """Why ``w`` cannot run here ("" if it can): a missing feature of our CLI or peer."""
    missing = sorted(w.requires - features)
    if missing:
        return (f"needs {', '.join(missing)}, which this checkout's `python -m quicreality` "
                f"does not offer")
    return "; ".join(_missing_tools(w))


def _run_workloads(topo: Topology, sc: Scenario, state: RunState, assets: Assets,
                   progress: Progress, run_info: dict[str, Any],
                   units: Sequence[tuple[str, int]] | None = None) -> None:
    """The loop over workloads and repetitions (or just ``units``)."""
    for w in sc.workloads:
        reps = sc.reps_of(w)
        todo = [r for r in range(1, reps + 1) if units is None or (w.name, r) in units]
        if not todo:
            continue
        why = not_run_reason(w, assets.features)
        if why:
            rec = RepRecord(workload=_label(sc, w), pair=w.pair, rep=0, status="not-run",
                            reason=why, baseline=w.baseline)
            state.records.append(rec)
            progress.end_rep(rec)
            continue
        for rep in todo:
            state.records.append(_one_rep(topo, sc, w, rep, reps, assets, progress, state,
                                          run_info))


def _one_rep(topo: Topology, sc: Scenario, w: Workload, rep: int, reps: int, assets: Assets,
             progress: Progress, state: RunState, run_info: dict[str, Any]) -> RepRecord:
    """One repetition: re-arm, run, write manifest/check/samples."""
    d = rep_dir(state.run_dir, sc.name, w.name, w.client, w.server, rep)
    seed = sc.rep_seed(rep)
    progress.start_rep(_label(sc, w), w.pair, rep, reps)
    topo.rearm(seed)
    t0 = time.monotonic()
    started = _dt.datetime.now(_dt.UTC).isoformat()
    load_before = load_average()
    ctx = RepContext(topo=topo, scenario=sc, workload=w, rep=rep, dir=d, assets=assets,
                     on_rate=progress.on_rate)
    try:
        outcome = run_rep(ctx)
    finally:
        counters = topo.rearm(seed)
        secs = time.monotonic() - t0
        manifest = {
            "run": state.run_dir.name, "scenario": sc.to_dict(), "workload": w.name,
            "client": w.client, "server": w.server, "rep": rep, "seed": seed,
            "base_seed": sc.seed, "started_utc": started, "secs": round(secs, 3),
            "git": run_info["git"], "kernel": run_info["kernel"], "backend": topo.backend,
            "tools": run_info["tools"], "features": run_info["features"],
            "host": {**run_info["host"], "load_before": load_before, "load_after": load_average()},
            "executor": run_info["executor"],
            "commands": ctx.commands, "topology": topo.info(),
            "link": {"configured": link_to_dict(sc.link), "measured": state.link_checks,
                     "emulator_counters_this_rep": counters},
            "reality_public": {k: v for k, v in assets.reality.items()
                               if k in ("public_key", "short_id")},
        }
        write_json(d / "manifest.json", manifest)
    write_json(d / "check.json", outcome.check.to_dict())
    metrics = list(outcome.metrics)
    if counters is not None:
        for direction in ("to_server", "to_client"):
            c = counters.get(direction, {})
            drops = c.get("dropped", {})
            total = sum(v for v in drops.values() if isinstance(v, (int, float)))
            metrics.append((f"emulator_drops_{direction}", float(total), "packets", "emulator"))
            # how faithfully the link ran: releases > 0.5 ms after their due time (CPU contention)
            if c.get("packets_out"):
                late = c.get("late_releases_over_0_5ms", 0) / c["packets_out"]
                metrics.append((f"emulator_late_fraction_{direction}", float(late), "ratio",
                                "emulator"))
                metrics.append((f"emulator_max_late_ms_{direction}",
                                float(c.get("max_late_ms", 0.0)), "ms", "emulator"))
    samples = [Sample(run=state.run_dir.name, scenario=sc.name, workload=w.name, client=w.client,
                      server=w.server, rep=rep, metric=m, value=float(v), unit=u, source=s)
               for m, v, u, s in metrics]
    write_samples(d / "samples.jsonl", samples)
    rec = _rep_record(w, rep, outcome.check.ok, outcome.check.reason,
                      {m: float(v) for m, v, _, _ in metrics}, secs)
    rec = dataclasses.replace(rec, workload=_label(sc, w))
    progress.end_rep(rec)
    return rec


def finish_run(state: RunState, run_info: dict[str, Any], console: Console) -> None:
    """Summary table, run.json, exit code."""
    sc = state.scenario
    rows = summarise(state.records)
    title = f"{sc.name}{' --quick' if sc.quick else ''}: {sc.description}"
    if state.link_failed and state.exit_code == EXIT_OK:
        state.exit_code = EXIT_LINK
    if state.exit_code == EXIT_OK and any(r.status != "PASS" for r in rows):
        state.exit_code = EXIT_FAILED
    if state.link_failed:
        console.print(f"[bold red]LINK CHECK FAILED at {len(state.link_failed)} point(s): "
                      f"{', '.join(state.link_failed)}; their workloads were not run.[/]")
    elif sc.point is None and state.link_checks and not state.link_checks[-1]["check"]["ok"]:
        console.print("[bold red]LINK CHECK FAILED: the emulated link is not what the scenario "
                      "says; no workload was run.[/]")
        console.print(state.link_checks[-1]["summary"], highlight=False)
    if rows:
        console.print(summary_table(rows, title))
    if state.note:
        console.print(f"note: {state.note}", highlight=False)
    not_run = [r for r in rows if r.status == "NOT RUN"]
    for r in not_run:
        console.print(f"[yellow]NOT RUN[/] {r.workload}: {r.reason}", highlight=False)
    run_info.update({"status": {EXIT_OK: "passed", EXIT_FAILED: "failed", EXIT_LINK: "link-check-failed",
                                EXIT_INTERRUPTED: "interrupted"}.get(state.exit_code, "failed"),
                     "exit_code": state.exit_code, "link_check": state.link_checks,
                     **({"link_check_points": state.point_checks} if state.point_checks else {}),
                     "finished_utc": _dt.datetime.now(_dt.UTC).isoformat(), "note": state.note,
                     "not_run": [{"workload": r.workload, "reason": r.reason} for r in not_run]})
    write_json(state.run_dir / "run.json", run_info)
    write_json(state.run_dir / "summary.json", [r.to_dict() for r in rows])
    (state.run_dir / "summary.txt").write_text(summary_text(rows, title) if rows else "no rows\n")
    console.print(f"run directory: {state.run_dir}", highlight=False)
    if state.exit_code in (EXIT_OK, EXIT_FAILED) and rows:  # the verdict vs the baseline
        try:
            from ..analysis.report import end_of_run_lines  # pandas/matplotlib only here
        except ImportError as exc:
            console.print(f"verdict: not judged (analysis extras missing: {exc})")
        else:
            for line in end_of_run_lines(state.run_dir):
                console.print(line, highlight=False, soft_wrap=True)
