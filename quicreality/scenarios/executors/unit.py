"""One unit of a run (scenario point × workload × repetition), run in its own process.

Theory of operation
-------------------
A remote executor ships a :class:`UnitSpec` (plain JSON: the scenario file as data, the
``--seed``/``--quick``/``--only``/``--reps``/``--max-size``/``--max-seconds`` transforms, the
point, workload and repetition, the run's name) to a worker. :func:`run_unit_process` starts
``python -m quicreality.scenarios.executors.unit SPEC.json OUT_DIR PROBES.json`` (own session,
SIGTERM when the calling thread dies: ``PR_SET_PDEATHSIG``; ``PROBES.json`` is the host's
feature/tool probe, made once per worker process: :func:`worker_probes`), which rebuilds the same
:class:`~..catalog.Scenario` (:func:`scenario_of`), builds its own topology **as the local runner
does** (:func:`~..points.run_point`: link check, re-arm with the rep's seed, the workload,
manifest/check/samples), and writes ``OUT_DIR/<run>/<scenario>/<workload>/<pair>/rep-<k>/``
and ``OUT_DIR/unit.json`` (the rep's record, the link check, the host). The parent packs
``OUT_DIR/<run>`` as a ``.tar.gz`` (:func:`pack`); the coordinator unpacks it into its run
directory (:func:`unpack`), so the results tree is the one a local run writes.

A unit process in its own process is what makes the topology code work unchanged (signal
handlers in the main thread, the emulator dying with its parent) and what makes a cancel
clean: SIGTERM to the unit's process group tears its namespaces down
(:func:`stop_units`), and ``clean --run-id`` (:func:`clean_units`) removes what a SIGKILL left.

A worker that dies mid-unit (SIGKILL, OOM) leaves its unit's work dir
(``$TMPDIR/qr-<topo_id>-unit-*``: the partial rep folder, captures, emulator files). Two things
remove it on that host without help: the unit process, SIGTERMed by the kernel when its worker
dies, tears its topology down and deletes the work dir once it sees it was orphaned; and
:func:`sweep_stale_units` (before every unit and at the end of a run, on every worker) deletes
work dirs whose owners (the worker and the unit process, recorded in ``owner.json`` with their
start times) are all gone, after ``clean --run-id`` of their topology. The partial folder never
reaches the results tree: only a finished unit's archive is unpacked there, and it replaces
any rep folder of the same name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import points
from ..catalog import Scenario, parse_scenario
from ..procutil import die_with_parent
from ..transforms import apply_transform

__all__ = ["UnitSpec", "clean_units", "pack", "run_unit_process", "scenario_of", "stop_units",
           "sweep_stale_units", "unpack"]

#: Unit processes of this process (pid → topology run id), for :func:`stop_units`.
_RUNNING: dict[int, str] = {}
_LOCK = threading.Lock()
#: :func:`worker_probes` of this process, once made.
_PROBES: dict[str, Any] | None = None
#: A unit's work dir: ``$TMPDIR/qr-<topo_id>-unit-<random>``.
_WORK_RE = re.compile(r"^qr-(?P<id>[0-9a-f]{6})-unit-")
#: The file in a unit's work dir naming the processes that own it (pid and start time).
OWNER_FILE = "owner.json"


@dataclasses.dataclass(frozen=True, slots=True)
class UnitSpec:
    """Everything a worker needs to run one unit (JSON-serialisable).

    Attributes:
        doc: The scenario file as parsed TOML (its ``[sweep]`` included).
        source: The file's path on the coordinator (error messages, manifests).
        default_name: The scenario's name (if the file has no ``scenario.name``).
        seed: The base seed (``--seed`` or the file's).
        transforms: ``Scenario.transforms`` of the coordinator (:mod:`..transforms`).
        point: The point's scenario name (the scenario's own name without a sweep).
        workload: Workload name.
        rep: Repetition (1-based).
        reps: Repetitions of that workload (for the progress line).
        run: The run directory's name (every sample's ``run``).
        backend: ``auto`` | ``userspace`` | ``netem``, resolved on the worker.
        topo_id: The unit's topology run id (namespaces ``qr-<topo_id>-*``).
        executor: Recorded in the manifest (``kind``, ``scheduler``, ``attempt``).
    """

    doc: Mapping[str, Any]
    source: str
    default_name: str
    seed: int
    transforms: tuple[tuple[Any, ...], ...]
    point: str
    workload: str
    rep: int
    reps: int
    run: str
    backend: str
    topo_id: str
    executor: Mapping[str, Any]

    def to_json(self) -> str:
        """The spec as JSON."""
        return json.dumps(dataclasses.asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> UnitSpec:
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        d["transforms"] = tuple(tuple(t) if t[0] != "only" else (t[0], tuple(t[1]))
                                for t in d["transforms"])
        return cls(**d)

    @property
    def key(self) -> str:
        """``<point>/<workload>/rep-<k>``: the unit's name."""
        return f"{self.point}/{self.workload}/rep-{self.rep}"


def scenario_of(spec: UnitSpec) -> Scenario:
    """The unit's point scenario, rebuilt from the spec exactly as the coordinator built it."""
    sc = dataclasses.replace(parse_scenario(spec.doc, spec.source, spec.default_name),
                             seed=spec.seed)
    for op in spec.transforms:
        sc = apply_transform(sc, op)
    for p in sc.points():
        if p.name == spec.point:
            return p
    raise ValueError(f"unit {spec.key}: no point {spec.point!r} in the scenario")


def pack(directory: Path) -> bytes:
    """``directory`` as a gzip-compressed tar (paths relative to its parent)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        tar.add(directory, arcname=directory.name)
    return buf.getvalue()


def unpack(archive: bytes, dest: Path) -> list[Path]:
    """Extract an archive of :func:`pack` under ``dest``; returns the rep folders it held.

    Members must stay inside ``dest`` (tarfile's ``data`` filter: no absolute paths, no
    ``..``, no devices or links out of the tree).
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        names = tar.getnames()
        for n in names:  # a rep folder is the finished attempt's alone, never merged
            if Path(n).name.startswith("rep-") and (dest / n).is_dir() \
                    and not (dest / n).is_symlink():
                shutil.rmtree(dest / n)
        tar.extractall(dest, filter="data")
    return sorted({dest / n for n in names if Path(n).name.startswith("rep-")
                   and (dest / n).is_dir()})


def _pdeathsig() -> None:  # runs in the child between fork and exec
    die_with_parent(signal.SIGTERM)


def worker_probes() -> dict[str, Any]:
    """:func:`~..points.host_probes` of this host, made once per (worker) process.

    The feature probe starts ``python -m quicreality ... --help`` four times (about 15 s on a
    loaded 2-core host); a unit process reads the parent's result instead of probing again.
    """
    global _PROBES
    with _LOCK:
        if _PROBES is None:
            _PROBES = points.host_probes()
        return _PROBES


def _start_time(pid: int) -> str | None:
    """``/proc/<pid>/stat`` start time of a running (not zombie) process, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def _write_owners(work: Path, **pids: int) -> None:
    (work / OWNER_FILE).write_text(json.dumps({k: [pid, _start_time(pid)]
                                               for k, pid in pids.items()}))


def _owners_alive(work: Path) -> bool | None:
    """Whether a process named in ``work``'s owner file still runs; None without the file."""
    try:
        owners = json.loads((work / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return any(start is not None and _start_time(int(pid)) == start
               for pid, start in owners.values())


def sweep_stale_units() -> dict[str, Any]:
    """Remove the work dirs of units on this host whose owners are all gone (a dead worker).

    For each such dir, ``clean --run-id`` of its topology first (namespaces and processes a
    SIGKILLed unit left; a topology whose owner still runs is skipped). Dirs without an owner
    file, or with a live owner, are left alone. Returns the host, the dirs and namespaces
    removed.
    """
    from ..cleanup import clean

    out: dict[str, Any] = {"host": os.uname().nodename, "workdirs": [], "namespaces": []}
    for d in sorted(Path(tempfile.gettempdir()).glob("qr-*-unit-*")):
        m = _WORK_RE.match(d.name)
        if m is None or d.is_symlink() or not d.is_dir() or _owners_alive(d) is not False:
            continue
        out["namespaces"] += clean(m.group("id")).namespaces
        shutil.rmtree(d, ignore_errors=True)
        out["workdirs"].append(str(d))
    return out


def run_unit_process(spec: UnitSpec, timeout: float | None = None) -> dict[str, Any]:
    """Run one unit in a child process and return ``unit.json`` plus ``archive`` (bytes).

    Raises:
        RuntimeError: The unit process failed (exit status and the end of its stderr).
    """
    sweep_stale_units()
    work = Path(tempfile.mkdtemp(prefix=f"qr-{spec.topo_id}-unit-"))
    try:
        _write_owners(work, worker=os.getpid())
        (work / "spec.json").write_text(spec.to_json())
        (work / "probes.json").write_text(json.dumps(worker_probes()))
        out = work / "out"
        out.mkdir()
        env = dict(os.environ)
        env.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[3]))
        with open(work / "unit.log", "wb") as log:
            p = subprocess.Popen(  # preexec_fn only calls prctl (PDEATHSIG)
                [sys.executable, "-m", "quicreality.scenarios.executors.unit",
                 str(work / "spec.json"), str(out), str(work / "probes.json")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_pdeathsig, env=env)
            with _LOCK:
                _RUNNING[p.pid] = spec.topo_id
            _write_owners(work, worker=os.getpid(), unit=p.pid)
            try:
                rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _stop(p.pid)
                rc = p.wait()
            finally:
                with _LOCK:
                    _RUNNING.pop(p.pid, None)
        result_f = out / "unit.json"
        if rc != 0 or not result_f.exists():
            tail = (work / "unit.log").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"unit {spec.key} failed (exit {rc}) on "
                               f"{os.uname().nodename}: {tail}")
        result: dict[str, Any] = json.loads(result_f.read_text())
        run_dir = out / spec.run
        result["archive"] = pack(run_dir) if run_dir.is_dir() else b""
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _stop(pid: int, grace: float = 15.0) -> None:
    """SIGTERM the unit's process group (its topology tears down), SIGKILL after ``grace``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def stop_units() -> list[str]:
    """Stop every unit process of this process (a cancel); returns their topology ids."""
    with _LOCK:
        running = dict(_RUNNING)
    for pid in running:
        _stop(pid)
    return sorted(running.values())


def clean_units(topo_ids: list[str]) -> dict[str, Any]:
    """``clean --run-id`` for each topology id (what a SIGKILLed unit left on this host)."""
    from ..cleanup import clean

    out: dict[str, Any] = {"host": os.uname().nodename, "namespaces": [], "pids": []}
    for tid in topo_ids:
        rep = clean(tid, force=True)
        out["namespaces"] += rep.namespaces
        out["pids"] += rep.pids
    return out


# --------------------------------------------------------------------------- the child


def _child(spec_file: str, out_dir: str, probes_file: str | None = None) -> int:
    from rich.console import Console

    from ..progress import Progress
    from ..results import write_json

    spec = UnitSpec.from_json(Path(spec_file).read_text())
    point = scenario_of(spec)
    out = Path(out_dir)
    run_dir = out / spec.run
    run_dir.mkdir(parents=True)
    backend, why = points.choose_backend(spec.backend, point.link,
                                               censor=point.censor is not None)
    probes = json.loads(Path(probes_file).read_text()) if probes_file else None
    run_info = points.new_run_info(point, run_dir, backend, why, dict(spec.executor), probes)
    state = points.RunState(run_dir=run_dir, scenario=point)
    scratch = out / "scratch"
    scratch.mkdir()
    workdir = out / "emulator"
    workdir.mkdir()
    console = Console(file=sys.stderr, width=150)
    t0 = time.time()
    with Progress(console, point.name, 1) as progress:
        assets = points.make_assets(scratch, frozenset(run_info["features"]))
        ok = points.run_point(point, state, assets, progress, run_info, backend, spec.topo_id,
                              workdir, units=[(spec.workload, spec.rep)])
    shutil.rmtree(scratch, ignore_errors=True)
    write_json(out / "unit.json", {
        "key": spec.key, "link_ok": ok, "records": [dataclasses.asdict(r) for r in state.records],
        "link_checks": state.link_checks, "host": run_info["host"], "started": t0,
        "finished": time.time(), "pid": os.getpid(), "emulator_stats":
        (run_info.get("emulator_stats_points") or {}).get(point.name,
                                                           run_info.get("emulator_stats"))})
    return 0


def _main(argv: list[str]) -> int:
    """The unit process: :func:`_child`; if its worker died meanwhile (the kernel's SIGTERM,
    ``PR_SET_PDEATHSIG``), its work dir goes once the topology is down."""
    parent = os.getppid()
    work = Path(argv[1]).parent

    def on_term(signum: int, frame: object) -> None:  # outside a topology, too: run finally
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    try:
        return _child(*argv[:3])
    finally:
        if os.getppid() != parent and _WORK_RE.match(work.name) and not work.is_symlink():
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:4]))
