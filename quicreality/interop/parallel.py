"""``run --jobs N``: N cells (case x server x client, all repetitions) at once, each job on its own
topology.

Theory of operation
-------------------
Most of a full matrix is link time and waiting (crosstraffic, goodput, the 50-handshake loss
cases), not CPU, so cells can run side by side, provided they cannot see each other and a
measurement is not slowed by its neighbours.

* **Isolation, as the Dask executor does it** (``docs/scale-out.md``): every topology gets its
  own :func:`~quicreality.scenarios.topology.new_run_id`, so its namespaces are
  ``qr-<id>-client|server|target``, its emulator process, TUNs, captures and owner marker are
  its own.  The address plan (:data:`~quicreality.scenarios.topology.ADDRESSES`) is the same in
  every topology and lives only inside that topology's namespaces (nothing is addressed in the
  root namespace), so two jobs' 10.99.x addresses never meet: a packet of job A can only reach
  A's TUNs and A's emulator.
* **Jobs**: N threads, each with its own :class:`~.links.LinkCache` (link reuse per job: a job
  asks the scheduler for a cell of the link its topology has, before any other).  A cell's
  repetitions run in order on one topology with the same seeds as ``--jobs 1``
  (``seed * 1000 + rep``), so each run's link (loss pattern, blackhole and rebind schedule)
  is the same under either.  The analysis (keys, editcap, tshark, check) goes to one shared
  pool of niced threads (:func:`~.pool.lower_priority`), at most two pending per job.
* **Scheduling by CPU weight** (:func:`cell_cpu`): every cell has an estimated CPU demand in
  cores; a cell starts only if the running cells' sum plus its own stays within ``cpu_budget``
  and, while any measurement runs (or when the new cell is one), within ``quiet_budget``
  (default 0: a measurement runs alone, see :data:`QUIET_BUDGET`).
  Cells are offered longest first (:func:`cell_estimate_s`), so the long measurements do not
  end up alone at the end.  A cell heavier than the budget runs alone.
* **Provenance**: every run's sample records its job, its wall-clock start and end and, once
  the matrix is done, every other run that overlapped it (:func:`mark_overlaps`).
* **Failure and Ctrl-C**: SIGINT, SIGTERM and SIGHUP in the main thread stop the scheduler,
  kill every process in every job's namespaces (so the jobs' waits return), and the jobs' link
  caches tear their topologies down before the exception propagates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..scenarios.cleanup import clean
from ..scenarios.model import Link
from ..scenarios.procutil import kill_pids
from ..scenarios.results import write_json
from ..scenarios.topology import Topology, TopologyError, install_term_handlers
from .cases import Case
from .links import LinkCache
from .pool import lower_priority
from .runner import (
    LINK_FEATURES,
    CaseEnv,
    Levers,
    MatrixOptions,
    Outcome,
    declined_verdict,
    failed_job,
    guarded,
    make_files,
    not_run,
    start_pair,
)
from .support import SupportCache

__all__ = ["Cell", "Scheduler", "cell_cpu", "cell_estimate_s", "mark_overlaps", "matrix_jobs",
           "run_estimate_s"]

#: Peers whose client or server is Python (CPU per byte several times the native peers').
PYTHON_PEERS = frozenset({"ours", "aioquic", "qh3"})
#: Default CPU budget of the running cells, in cores (the machine has 2).
CPU_BUDGET = 1.6
#: Budget of the other cells while a measurement runs (goodput, crosstraffic): 0, so a
#: measurement runs alone.  Measured (docs/interop.md "Parallel cases"): next to three other
#: goodput cells, ours <- ours fell from 9427-9454 to 8765-9361 kbit/s and quicgo <- quicgo
#: from 9501-9506 to 8884-9503: their number must not depend on their neighbours.
QUIET_BUDGET = 0.0


def _side(peer: str) -> float:
    """Cores one endpoint uses moving data at the QIR link's 10 Mbit/s."""
    if peer in PYTHON_PEERS:
        return 0.25
    return 0.15 if peer == "chromium" else 0.05


def cell_cpu(case: Case, server: str, client: str) -> float:
    """Estimated cores a run of ``case`` between ``server`` and ``client`` keeps busy."""
    if case.name == "multiplexing" and client in PYTHON_PEERS - {"ours"}:
        return 1.2  # 1999 requests: CPU-bound in the client for 70 s
    if case.check == "multiconnect":  # 50 connections: a client process per connection
        return 0.6 if client in PYTHON_PEERS - {"ours"} else 0.3
    if sum(case.files) >= 1_000_000 or case.name == "multiplexing":
        share = 0.7 if case.crosstraffic else 1.0  # QUIC gets ~6 of the 10 Mbit/s
        return round(share * (_side(server) + _side(client)) + 0.05, 3)
    return 0.3  # small cases: mostly two process start-ups


def run_estimate_s(case: Case, server: str, client: str) -> float:
    """Seconds one run takes (measured per run at load ~2, docs/interop.md "Timing")."""
    python_client = client in PYTHON_PEERS - {"ours"}
    per = {"crosstraffic": 35.7, "goodput": 10.7, "blackhole": 16.0, "rebind-port": 12.0,
           "rebind-addr": 12.0, "transfer": 10.7, "longrtt": 10.0, "connectionmigration": 10.0}
    if case.check == "multiconnect":
        return 50.0 if client == "ours" else 110.0
    if case.name == "multiplexing":
        return 72.0 if python_client else 5.0
    return per.get(case.name, 4.0)


def cell_estimate_s(case: Case, server: str, client: str, reps: int) -> float:
    """Seconds a whole cell (every repetition) takes."""
    return reps * run_estimate_s(case, server, client)


@dataclass(frozen=True, slots=True)
class Cell:
    """One case between one server and one client, every repetition."""

    index: int  #: position in the sequential (``--jobs 1``) order
    case: Case
    server: str
    client: str
    cpu: float
    est_s: float

    @property
    def quiet(self) -> bool:
        """A measurement: its neighbours must stay within the quiet budget."""
        return self.case.measurement

    @property
    def label(self) -> str:
        """``case server<-client``."""
        return f"{self.case.name} {self.server}<-{self.client}"


class Scheduler:
    """Which cell a job runs next (see the module docstring); thread-safe."""

    def __init__(self, cells: Sequence[Cell], *, cpu_budget: float = CPU_BUDGET,
                 quiet_budget: float = QUIET_BUDGET) -> None:
        self._pending = sorted(cells, key=lambda c: (-c.est_s, c.index))
        self._running: list[Cell] = []
        self._cpu_budget = cpu_budget
        self._quiet_budget = quiet_budget
        self._cv = threading.Condition()
        self._stopped = False

    def _fits(self, cell: Cell) -> bool:
        if not self._running:
            return True  # heavier than the budget: runs alone
        load = sum(c.cpu for c in self._running) + cell.cpu
        if cell.quiet or any(c.quiet for c in self._running):  # a measurement's neighbours
            return load <= min(self._cpu_budget, self._quiet_budget)
        return load <= self._cpu_budget

    def take(self, link: Link | None, *, wait: bool = True) -> Cell | None:
        """The next cell for a job whose topology has ``link`` (blocks until one fits, unless
        not ``wait``); None when every cell is taken or :meth:`stop` was called."""
        with self._cv:
            while True:
                if self._stopped or not self._pending:
                    return None
                fits = [c for c in self._pending if self._fits(c)]
                if fits:
                    same = [c for c in fits if c.case.link == link]
                    cell = (same or fits)[0]
                    self._pending.remove(cell)
                    self._running.append(cell)
                    return cell
                if not wait:
                    return None
                self._cv.wait(timeout=1.0)

    def done(self, cell: Cell) -> None:
        """``cell`` finished (or failed): its CPU share is free again."""
        with self._cv:
            with contextlib.suppress(ValueError):
                self._running.remove(cell)
            self._cv.notify_all()

    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopped

    def stop(self) -> None:
        """Hand out no more cells."""
        with self._cv:
            self._stopped = True
            self._cv.notify_all()

    @property
    def remaining(self) -> int:
        """Cells not yet taken."""
        with self._cv:
            return len(self._pending)


def mark_overlaps(samples: Sequence[dict[str, Any]]) -> None:
    """Add ``concurrent`` (count) and ``concurrent_with`` (``abbr server<-client#rep``) to
    every sample with ``wall_start``/``wall_end``: the runs whose live part overlapped it."""
    timed = [s for s in samples if "wall_start" in s and "wall_end" in s]
    timed.sort(key=lambda s: s["wall_start"])
    for s in timed:
        others = [o for o in timed if o is not s and o["wall_start"] < s["wall_end"]
                  and s["wall_start"] < o["wall_end"]]
        s["concurrent"] = len(others)
        s["concurrent_with"] = [f"{o['abbr']} {o['server']}<-{o['client']}#{o['rep']}"
                                for o in others]


#: ``body(job, cell, topo, analysis, stopping)``: ``stopping()`` is true once the run is
#: interrupted (the body starts no further repetition).
JobBody = Callable[[int, Cell, Topology | None, "Analysis", Callable[[], bool]], None]


class Analysis:
    """The shared, niced analysis threads; a job may have at most ``per_job`` pending."""

    def __init__(self, workers: int, jobs: int, per_job: int = 2) -> None:
        self._ex = ThreadPoolExecutor(max_workers=max(1, workers),
                                      thread_name_prefix="qr-analysis",
                                      initializer=lower_priority, initargs=(10,))
        self._slots = [threading.BoundedSemaphore(per_job) for _ in range(jobs)]
        self._futures: list[Future[None]] = []
        self._lock = threading.Lock()

    def submit(self, job: int, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the background (blocks while job ``job`` has ``per_job`` pending)."""
        slot = self._slots[job]
        slot.acquire()
        try:
            fut = self._ex.submit(fn)
        except BaseException:
            slot.release()
            raise
        fut.add_done_callback(lambda _f: slot.release())
        with self._lock:
            self._futures.append(fut)

    def wait(self) -> None:
        """Wait for every submitted analysis (an exception of one is raised here)."""
        while True:
            with self._lock:
                futs, self._futures = self._futures, []
            if not futs:
                return
            for f in futs:
                f.result()

    def close(self, *, cancel: bool) -> None:
        """Shut the threads down."""
        self._ex.shutdown(wait=True, cancel_futures=cancel)


def _kill_namespaces(topo: Topology) -> None:
    for host in topo.hosts:
        r = subprocess.run(["ip", "netns", "pids", topo.ns(host)], capture_output=True,
                           text=True, timeout=15, check=False)
        kill_pids([int(x) for x in r.stdout.split() if x.isdigit()], grace=1.0)


def _sweep(log: list[dict[str, Any]]) -> None:
    """Remove whatever a job's teardown left of its topologies (a cell interrupted while its
    topology was being built): ``scenarios clean`` for each run id the jobs built."""
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=15,
                       check=False)
    for rid in {str(e["built"]) for e in log if "built" in e}:
        if f"qr-{rid}-" in r.stdout:
            rep = clean(rid, force=True)
            log.append({"swept": rid, "namespaces": rep.namespaces, "pids": rep.pids})


def run_jobs(cells: Sequence[Cell], jobs: int, seed: int, emu_root: Path, body: JobBody,
             analysis: Analysis, *, cpu_budget: float = CPU_BUDGET,
             quiet_budget: float = QUIET_BUDGET) -> list[dict[str, Any]]:
    """Run ``cells`` on ``jobs`` threads; ``body(job, cell, topo, analysis)`` runs one cell's
    repetitions (``topo`` is None only if its link could not be built: the body reports that).
    Returns the topology log (every build and reuse, with its job).  Raises KeyboardInterrupt
    after cleaning up if the main thread got SIGINT/SIGTERM/SIGHUP."""
    sched = Scheduler(cells, cpu_budget=cpu_budget, quiet_budget=quiet_budget)
    caches: list[LinkCache] = [LinkCache(seed) for _ in range(jobs)]
    current: list[Topology | None] = [None] * jobs
    errors: list[BaseException] = []
    log: list[dict[str, Any]] = []
    builds = [0] * jobs

    def job(j: int) -> None:
        links = caches[j]
        link: Link | None = None
        try:
            while (cell := sched.take(link)) is not None:
                try:
                    builds[j] += 1
                    wd = emu_root / cell.case.name / f"job{j}.{builds[j]}"
                    wd.mkdir(parents=True, exist_ok=True)
                    topo: Topology | None
                    try:
                        topo = links.get(cell.case.link, wd, cell.label)
                        link = cell.case.link
                        if links.log and links.log[-1].get("reused"):
                            with contextlib.suppress(OSError):
                                wd.rmdir()  # its emulator's files are in the builder's dir
                    except TopologyError as e:
                        topo, link = None, None
                        links.log.append({"case": cell.label, "build_error": str(e)})
                    current[j] = topo
                    body(j, cell, topo, analysis, sched.stopping)
                finally:
                    sched.done(cell)
        except BaseException as e:  # noqa: BLE001 -- reported by the main thread
            errors.append(e)
            sched.stop()
        finally:
            current[j] = None
            with contextlib.suppress(TopologyError):
                links.close()

    restore = install_term_handlers()
    threads = [threading.Thread(target=job, args=(j,), name=f"qr-job{j}", daemon=True)
               for j in range(jobs)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.5)
    except KeyboardInterrupt:
        sched.stop()
        deadline = time.monotonic() + 60.0
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            for topo in list(current):  # until every job is out of its cell
                if topo is not None:
                    with contextlib.suppress(OSError, subprocess.SubprocessError):
                        _kill_namespaces(topo)
            for t in threads:
                t.join(timeout=0.2)
        raise
    finally:
        restore()
        for j, c in enumerate(caches):
            log.extend({**e, "job": j} for e in c.log)
        _sweep(log)
    if errors:
        raise errors[0]
    return log



def run_matrix_parallel(opts: MatrixOptions, run_dir: Path, scratch: Path,
                        certs: tuple[Path, Path], support: SupportCache | None,
                        pairs: Sequence[tuple[str, str]], deliver: Callable[[Outcome], None],
                        jobs: int, analysis_workers: int, *, cpu_budget: float = CPU_BUDGET,
                        quiet_budget: float = QUIET_BUDGET) -> list[dict[str, Any]]:
    """The ``--jobs N`` body of :func:`~.runner.run_matrix` for the cases whose link can be
    built: declined cells are answered at once (nothing to run), the others become cells for
    :func:`run_jobs`.  ``deliver`` is called (under a lock) once per finished run; returns the
    topology log."""
    lock = threading.Lock()
    envs: dict[str, CaseEnv] = {}
    left: dict[str, int] = {}

    def env_of(case: Case) -> CaseEnv:
        with lock:
            env = envs.get(case.name)
            if env is None:
                rng = random.Random(f"{opts.seed}-{case.name}")
                www = scratch / f"www-{case.name}"
                names = make_files(case, www, rng)
                env = CaseEnv(case, None, www, names, certs[1] if case.big_cert else certs[0],
                               scratch, support)
                envs[case.name] = env
            return env

    def delivered(o: Outcome, runs: int = 1) -> None:
        with lock:
            deliver(o)
            left[o.case.name] -= runs
            if left[o.case.name] == 0 and o.case.name in envs:
                shutil.rmtree(envs[o.case.name].www, ignore_errors=True)

    cells: list[Cell] = []
    for case in opts.cases:
        reps = opts.reps or case.repetitions
        for s, c in pairs:
            left[case.name] = left.get(case.name, 0) + reps
            probe = CaseEnv(case, None, scratch, [], certs[0], scratch, support)
            declined = declined_verdict(probe, s, c)
            if declined is None:
                cells.append(Cell(len(cells), case, s, c, cell_cpu(case, s, c),
                                  cell_estimate_s(case, s, c, reps)))
                continue
            for rep in range(1, reps + 1):
                d = run_dir / f"{s}_{c}" / case.name
                delivered(start_pair(probe, s, c, rep, d / str(rep) if reps > 1 else d, 0)())

    def body(j: int, cell: Cell, topo: Topology | None, pool: Analysis,
             stopping: Callable[[], bool]) -> None:
        case, s, c = cell.case, cell.server, cell.client
        reps = opts.reps or case.repetitions
        if topo is None:
            delivered(not_run(case, s, c, "topology failed: see emulator/topologies.json"), reps)
            return
        env = dataclasses.replace(env_of(case), topo=topo)
        for rep in range(1, reps + 1):
            if stopping():
                return
            if case.measurement:
                pool.wait()  # no analysis shares the CPU with a measured transfer
            d = run_dir / f"{s}_{c}" / case.name
            d = d / str(rep) if reps > 1 else d
            w0 = time.time()
            try:
                job = start_pair(env, s, c, rep, d, opts.seed * 1000 + rep)
            except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as e:
                job = failed_job(case, s, c, rep, e)
            prov = {"job": j, "jobs": jobs, "wall_start": round(w0, 3),
                    "wall_end": round(time.time(), 3)}
            pool.submit(j, lambda job=job, rep=rep, d=d, prov=prov:  # type: ignore[misc]
                        delivered(_with_provenance(guarded(job, case, s, c, rep), d, prov)))

    analysis = Analysis(analysis_workers, jobs)
    ok = False
    try:
        log = run_jobs(cells, jobs, opts.seed, run_dir / "emulator", body, analysis,
                       cpu_budget=cpu_budget, quiet_budget=quiet_budget)
        analysis.wait()
        ok = True
    finally:
        analysis.close(cancel=not ok)
    return log


def _with_provenance(o: Outcome, d: Path, prov: dict[str, Any]) -> Outcome:
    """``o`` with the job and wall times in its sample and in ``d/verdict.json``."""
    path = d / "verdict.json"
    with contextlib.suppress(OSError, ValueError):
        doc = json.loads(path.read_text())
        write_json(path, {**doc, **prov})
    return dataclasses.replace(o, sample={**o.sample, **prov})


def matrix_jobs(opts: MatrixOptions, run_dir: Path, scratch: Path, certs: tuple[Path, Path],
                 support: SupportCache | None, usable: dict[str, str],
                 runnable: Sequence[tuple[str, str]], levers: Levers, outcomes: list[Outcome],
                 on_outcome: Callable[[Outcome], None]) -> None:
    """``levers.jobs > 1``: the not-runnable cells here, the rest in :mod:`.parallel`; the
    outcomes end up in the ``--jobs 1`` order."""
    def deliver(o: Outcome) -> None:
        outcomes.append(o)
        on_outcome(o)

    for case in opts.cases:
        missing = sorted(case.needs - LINK_FEATURES)
        for s, c in ((s, c) for s in opts.servers for c in opts.clients):
            why = usable[s] or usable[c]
            if why or missing:
                deliver(not_run(case, s, c, why or (
                    f"the emulator in this checkout has no {', '.join(missing)} stage: "
                    f"the case's link cannot be built")))
    cases = tuple(c for c in opts.cases if not (c.needs - LINK_FEATURES))
    log = run_matrix_parallel(dataclasses.replace(opts, cases=cases), run_dir, scratch, certs,
                              support, runnable, deliver, levers.jobs,
                              max(1, levers.analysis_workers), cpu_budget=levers.cpu_budget,
                              quiet_budget=levers.quiet_budget)
    order = {(c.name, s, k): i for i, (c, s, k) in enumerate(
        (c, s, k) for c in opts.cases for s in opts.servers for k in opts.clients)}
    outcomes.sort(key=lambda o: (order[(o.case.name, o.server, o.client)], o.rep))
    (run_dir / "emulator").mkdir(parents=True, exist_ok=True)
    for d in (run_dir / "emulator").iterdir():  # a case whose cells all reused a topology
        with contextlib.suppress(OSError):
            d.rmdir()
    write_json(run_dir / "emulator" / "topologies.json",
               {"jobs": levers.jobs, "cpu_budget": levers.cpu_budget,
                "quiet_budget": levers.quiet_budget, "topologies": log,
                "support_checks_s": {f"{p}/{r}": t for (p, r), t in
                                     (support.check_secs.items() if support else ())}})
