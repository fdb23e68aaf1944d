"""``run NAME --executor dask``: every unit (point × workload × rep) a Dask distributed task.

Theory of operation
-------------------
The coordinator (this process) creates the run directory and ``run.json`` as the local runner
does, connects to a scheduler (``--scheduler tcp://HOST:PORT``; without it a
:class:`distributed.LocalCluster` of ``--workers-per-host`` worker processes on this machine)
and submits one task per unit. Each task needs the worker resource ``netlab=1``: workers are
started with ``dask worker --resources netlab=1 SCHEDULER``, so a worker runs one unit at a
time and its timings stay clean. The task (:func:`dask_unit`) runs the unit in a child process
on its worker (:func:`.unit.run_unit_process`: its own namespaces and topology, link check,
re-armed seed, workload) and returns the repetition folder as a ``.tar.gz``; the coordinator
unpacks it into the run directory, so ``report``, the notebooks, the store and the baselines
read the same tree as after a local run. Each manifest's ``executor`` names the worker.

Faults:

* **A worker dies mid-unit**: the scheduler is told to give up on a task after one lost worker
  (``allowed_failures = 0``); the coordinator resubmits the unit once (it runs on another
  worker, or the same one restarted by its nanny) under a new topology id and records the
  retry in ``run.json`` ``units``; a second failure is a failed repetition whose reason says
  so. A unit process that exits abnormally (not a failed check: a crash) is retried the same
  way. The dead attempt's work dir and namespaces are removed on its host (by the orphaned
  unit process itself, and by :func:`.unit.sweep_stale_units`, which every worker runs before
  each unit and at the end of the run: ``run.json`` ``stale_cleanup``); only a finished
  attempt's archive reaches the results tree.
* **Ctrl-C / SIGTERM**: remaining tasks are cancelled, every worker stops its unit processes
  (SIGTERM: their topologies tear down) and runs ``clean --run-id`` for this run's topology
  ids (:func:`.unit.clean_units`); finished units stay in the run directory; exit 130.
* **Lost scheduler**: the run ends with a clear error (exit 1) naming the scheduler; finished
  units are kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .. import points
from ..catalog import Scenario
from ..progress import RepRecord
from ..results import git_info, new_run_dir, write_json
from ..topology import new_run_id
from .unit import UnitSpec, clean_units, run_unit_process, stop_units, sweep_stale_units

__all__ = ["SchedulerLost", "dask_unit", "run_dask", "unit_specs"]

#: Seconds the client may stay disconnected before the scheduler counts as lost.
LOST_AFTER_S = 20.0


class SchedulerLost(RuntimeError):
    """The connection to the Dask scheduler is gone."""


def unit_specs(sc: Scenario, run: str, backend: str, executor: Mapping[str, Any]
               ) -> list[UnitSpec]:
    """One :class:`~.unit.UnitSpec` per unit, in run order (points, workloads, reps)."""
    parent_doc = dict(sc.data)
    name = sc.name
    out = []
    for p in sc.points():
        for w in p.workloads:
            reps = p.reps_of(w)
            for rep in range(1, reps + 1):
                out.append(UnitSpec(doc=parent_doc, source=sc.source, default_name=name,
                                    seed=sc.seed, transforms=sc.transforms, point=p.name,
                                    workload=w.name, rep=rep, reps=reps, run=run,
                                    backend=backend, topo_id=new_run_id(),
                                    executor=dict(executor)))
    return out


def dask_unit(spec_json: str, attempt: int) -> dict[str, Any]:
    """The task: run one unit on this worker; returns ``unit.json`` + ``archive`` + ``worker``."""
    from distributed import get_worker

    addr = get_worker().address
    spec = UnitSpec.from_json(spec_json)
    spec = dataclasses.replace(spec, executor={**spec.executor, "worker": addr,
                                               "attempt": attempt})
    res = run_unit_process(spec)
    res["worker"] = addr
    return res


def _set_allowed_failures(n: int, dask_scheduler: Any = None) -> int:
    """On the scheduler (``client.run_on_scheduler`` passes it as the keyword
    ``dask_scheduler``): set how often a task may lose its worker; returns the old value."""
    old = int(dask_scheduler.allowed_failures)
    dask_scheduler.allowed_failures = n
    return old


def _sweep_workers(client: Any) -> dict[str, Any]:
    """At the end of a run: :func:`.unit.sweep_stale_units` on every worker (what a dead
    worker's unit left on its host); worker address -> what it removed, or the error."""
    try:
        return dict(client.run(sweep_stale_units, wait=True))
    except Exception as e:  # noqa: BLE001 - recorded; the units' results are in already
        return {"error": f"{type(e).__name__}: {e}"[:300]}


def _stop_and_clean(topo_ids: list[str]) -> dict[str, Any]:
    """On every worker after a cancel: stop our unit processes, then clean their leftovers."""
    stopped = stop_units()
    out = clean_units(sorted(set(topo_ids) | set(stopped)))
    out["stopped"] = stopped
    return out


@dataclasses.dataclass
class _View:
    """The live panel: totals and what each worker runs."""

    scenario: str
    total: int
    done: int = 0
    failed: int = 0
    retried: int = 0
    workers: dict[str, tuple[str, float]] = dataclasses.field(default_factory=dict)
    last: list[str] = dataclasses.field(default_factory=list)
    started: float = dataclasses.field(default_factory=time.monotonic)

    def __rich__(self) -> RenderableType:
        el = time.monotonic() - self.started
        head = Text(f"{self.scenario}  ", style="bold")
        head.append(f"[{self.done}/{self.total} units]  {self.failed} failed  {self.retried} "
                    f"retried  {el:6.0f}s")
        t = Table.grid(padding=(0, 2))
        for w, (key, t0) in sorted(self.workers.items()):
            t.add_row(Text(w, style="cyan"), key, f"{time.monotonic() - t0:5.0f}s")
        return Group(head, t, *[Text(x, style="dim") for x in self.last[-8:]])


def run_dask(sc: Scenario, results: Path, backend: str, console: Console, *,
             scheduler: str | None, workers_per_host: int = 1) -> Any:
    """Run ``sc`` through Dask (see the module docstring); returns the runner's ``RunState``."""
    from distributed import Client, LocalCluster


    git = git_info()
    run_dir = new_run_dir(results, git["short"])
    state = points.RunState(run_dir=run_dir, scenario=sc)
    cluster = None
    executor: dict[str, Any] = {"kind": "dask", "scheduler": scheduler or "local-cluster",
                                "workers_per_host": workers_per_host}
    run_info = points.new_run_info(sc, run_dir, backend, "resolved on each worker", executor)
    specs = unit_specs(sc, run_dir.name, backend, executor)
    run_info["units"] = []
    write_json(run_dir / "run.json", run_info)
    client = None
    view = _View(scenario=sc.name, total=len(specs))
    futures: dict[Any, tuple[UnitSpec, int]] = {}
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(_sigterm_as_interrupt())
        if scheduler is None:
            cluster = LocalCluster(n_workers=workers_per_host, threads_per_worker=1,
                                   processes=True, resources={"netlab": 1},
                                   dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(scheduler, timeout=15)
        client.run_on_scheduler(_set_allowed_failures, 0)
        _submit_all(client, specs, futures, state, run_info, view, console, run_dir)
        run_info["stale_cleanup"] = _sweep_workers(client)
    except KeyboardInterrupt:
        state.exit_code = points.EXIT_INTERRUPTED
        state.note = _cancel(client, list(futures), [*specs, *(s for s, _ in futures.values())])
    except SchedulerLost as e:
        state.exit_code = points.EXIT_FAILED
        state.note = (f"lost the Dask scheduler {scheduler or ''}: {e}; the "
                      f"{view.done} finished unit(s) are kept in {run_dir}")
        console.print(f"[bold red]error:[/] {state.note}", highlight=False)
    except OSError as e:  # cannot connect at all
        state.exit_code = points.EXIT_FAILED
        state.note = f"cannot reach the Dask scheduler {scheduler}: {e}"
        console.print(f"[bold red]error:[/] {state.note}", highlight=False)
    finally:
        stack.close()
        if client is not None:
            try:
                client.close(timeout=5)
            except Exception:  # noqa: BLE001 - a dead scheduler: nothing left to close
                pass
        if cluster is not None:
            cluster.close(timeout=10)
        _order_records(state, specs)
        points.finish_run(state, run_info, console)
    return state


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM on the coordinator is a Ctrl-C (cancel, clean on every worker, exit 130).

    Only the first SIGTERM raises; later ones are ignored until the block ends, so the
    cancel-and-clean that follows is not cut short. Outside the main thread (no signal
    handlers there) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _submit_all(client: Any, specs: Sequence[UnitSpec], futures: dict[Any, tuple[UnitSpec, int]],
                state: Any, run_info: dict[str, Any], view: _View, console: Console,
                run_dir: Path) -> None:
    """Submit every unit, collect results (retry once), keep the panel and run.json current.

    ``futures`` (filled here) holds the tasks not collected yet (for a cancel)."""
    from distributed import wait

    def submit(spec: UnitSpec, attempt: int) -> None:
        f = client.submit(dask_unit, spec.to_json(), attempt, key=f"qr-{spec.topo_id}-a{attempt}",
                          resources={"netlab": 1}, pure=False, retries=0)
        futures[f] = (spec, attempt)

    for s in specs:
        submit(s, 1)
    by_key = {f.key: s.key for f, (s, _) in futures.items()}
    live = Live(view, console=console, refresh_per_second=2, transient=True) \
        if console.is_terminal else None
    if live is not None:
        live.__enter__()
    lost_since: float | None = None
    try:
        while futures:
            try:
                done, _ = wait(list(futures), timeout=1.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            if client.status != "running":
                lost_since = lost_since or time.monotonic()
                if client.status in ("closed", "closing") or \
                        time.monotonic() - lost_since > LOST_AFTER_S:
                    raise SchedulerLost(f"client {client.status}")
            else:
                lost_since = None
            for f in done:
                spec, attempt = futures.pop(f)
                _collect(f, spec, attempt, submit, state, run_info, view, console, run_dir,
                         client)
                by_key.update({g.key: s.key for g, (s, _) in futures.items()})
            try:
                proc = client.processing()
            except Exception as e:
                if client.status != "running":
                    lost_since = lost_since or time.monotonic()
                    continue
                raise SchedulerLost(str(e)) from e
            now = time.monotonic()
            busy = {}
            for w, keys in proc.items():
                for k in keys:
                    unit = by_key.get(k)
                    if unit is not None:
                        prev = view.workers.get(w)
                        busy[w] = (unit, prev[1] if prev and prev[0] == unit else now)
            view.workers = busy
    finally:
        if live is not None:
            live.__exit__(None, None, None)


def _collect(f: Any, spec: UnitSpec, attempt: int, submit: Any, state: Any,
             run_info: dict[str, Any], view: _View, console: Console, run_dir: Path,
             client: Any) -> None:
    """One finished (or failed) task: unpack, record, or retry once."""
    from concurrent.futures import CancelledError

    from .unit import unpack

    entry: dict[str, Any] = {"unit": spec.key, "attempt": attempt, "topo_id": spec.topo_id}
    try:
        res = f.result()
    except CancelledError as e:
        if client.status != "running":
            raise SchedulerLost(f"task {spec.key} cancelled: {e}") from e
        raise
    except Exception as e:  # noqa: BLE001 - a dead worker (KilledWorker) or a crashed unit
        entry.update(status="error", error=f"{type(e).__name__}: {e}"[:500])
        run_info["units"].append(entry)
        if attempt == 1:
            view.retried += 1
            msg = f"RETRY {spec.key}: {type(e).__name__}: {str(e)[:150]}"
            # a new topology id: the cleanup of the dead attempt's (namespaces, work dir)
            # on its host can never touch the retry's
            submit(dataclasses.replace(spec, topo_id=new_run_id()), 2)
        else:
            view.failed += 1
            view.done += 1
            msg = f"FAILED {spec.key} twice: {type(e).__name__}: {str(e)[:150]}"
            point = next(p for p in state.scenario.points() if p.name == spec.point)
            w = next(w for w in point.workloads if w.name == spec.workload)
            label = f"{point.point['label']}/{w.name}" if point.point is not None else w.name
            state.records.append(RepRecord(
                workload=label, pair=w.pair, rep=spec.rep, status="fail",
                reason=f"unit failed on two attempts (last: {type(e).__name__}: {e})"[:300],
                baseline=w.baseline))
        view.last.append(msg)
        if not console.is_terminal:
            _plain_line(console, f"[{state.scenario.name}] {msg}")
        write_json(run_dir / "run.json", run_info)
        return
    archive = res.pop("archive", b"")
    reps = unpack(archive, run_dir.parent) if archive else []
    recs = [RepRecord(**r) for r in res.get("records", [])]
    state.records.extend(recs)
    if res.get("link_checks"):
        state.point_checks.setdefault(spec.point, res["link_checks"])
    if not res.get("link_ok", True):
        state.link_failed.append(spec.key)
    entry.update(status="ok", worker=res.get("worker"), host=(res.get("host") or {}).get(
        "hostname"), started=res.get("started"), finished=res.get("finished"),
        rep_dirs=[str(p.relative_to(run_dir)) for p in reps])
    run_info["units"].append(entry)
    view.done += 1
    for r in recs:
        gp = r.metrics.get("goodput")
        line = (f"{r.status.upper():7} {r.workload} {r.pair} rep {r.rep} on {res.get('worker')}: "
                f"{'–' if gp is None else f'{gp:.2f} Mbit/s'} in {r.secs:.1f}s  {r.reason[:80]}")
        view.last.append(line)
        if not console.is_terminal:
            _plain_line(console, f"[{state.scenario.name} {view.done}/{view.total}] {line}")
    write_json(run_dir / "run.json", run_info)


def _plain_line(console: Console, text: str) -> None:
    """One progress line without a terminal: never wrapped (one line per unit in a CI log,
    greppable), no markup (unit keys hold ``[``)."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def _cancel(client: Any, pending: list[Any], specs: Sequence[UnitSpec]) -> str:
    """Ctrl-C: cancel the tasks, stop unit processes and clean on every worker."""
    if client is None:
        return "interrupted before the scheduler answered"
    ids = list(dict.fromkeys(s.topo_id for s in specs))  # a retry has its own id
    try:
        client.cancel(pending)
        cleaned = client.run(_stop_and_clean, ids, wait=True)
    except Exception as e:  # noqa: BLE001 - report what could not be cleaned
        return (f"interrupted; could not reach every worker to clean up ({e}): run "
                "`python -m quicreality.scenarios clean` on each worker host")
    ns = sum(len(v.get("namespaces", [])) for v in cleaned.values())
    stopped = sum(len(v.get("stopped", [])) for v in cleaned.values())
    return (f"interrupted (Ctrl-C or SIGTERM): tasks cancelled; {stopped} running unit(s) "
            f"stopped and {ns} leftover namespace(s) removed on {len(cleaned)} worker(s)")


def _order_records(state: Any, specs: Sequence[UnitSpec]) -> None:
    """Records in run order (as a local run lists them), one ``not-run`` per workload."""
    order: dict[tuple[str, str], int] = {}
    for p in state.scenario.points():
        for w in p.workloads:
            label = f"{p.point['label']}/{w.name}" if p.point is not None else w.name
            order.setdefault((label, w.pair), len(order))
    seen: set[tuple[str, str]] = set()
    out = []
    for r in state.records:
        if r.status == "not-run":
            if (r.workload, r.pair) in seen:
                continue
            seen.add((r.workload, r.pair))
        out.append(r)
    state.records = sorted(out, key=lambda r: (order.get((r.workload, r.pair), len(order)),
                                                r.rep))
