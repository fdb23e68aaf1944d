"""``run --executor dask`` against a real Dask scheduler and two workers on this machine (root).

The scheduler and the workers are separate processes started as a user would start them
(``dask scheduler``, ``dask worker --resources netlab=1 SCHEDULER``). A small sweep (2 points ×
2 workloads) runs through them and locally; the tests check that:

* every unit ran on one of the two workers, and no worker ran two units at once;
* the results tree is the local run's: the same rep folders and the same sample keys;
* a worker SIGKILLed mid-unit gets its unit retried (``run.json`` ``units`` says so), the run
  still passes, and neither the dead attempt's namespaces nor its unit work dir (the partial
  rep folder) is left behind, without running ``clean``; the results tree holds only the
  finished attempts' rep folders.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).parent / "dask"

SWEEP = """
[scenario]
name = "dask-lab"
description = "dask executor lab test: 2 loss points x 2 workloads"
reps = 1
seed = 21

[link]
rate_mbit = {rate}
delay_ms = 5
loss = "0%"
queue_packets = 100

[link_check]
enabled = false

[sweep]
loss = ["0%", "1%"]

[[workload]]
name = "ours"
kind = "download"
client = "ours"
server = "ours"
size = "{size}"
timeout_s = 120

[[workload]]
name = "tcp"
kind = "iperf3"
client = "iperf3"
server = "iperf3"
seconds = 2
reverse = true
congestion = "cubic"
baseline = true
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


class Cluster:
    """A scheduler and two nanny-supervised workers, each in its own process group."""

    def __init__(self, tmp: Path) -> None:
        if not DASK.exists():
            pytest.fail(f"{DASK} missing: run scripts/setup.sh (installs distributed)")
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs = tmp / "dask-logs"
        self.logs.mkdir()
        port = self.address.rsplit(":", 1)[1]
        self._spawn("scheduler", [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", port,
                                  "--no-dashboard"])
        self._wait_for_scheduler()
        for name in ("w1", "w2"):
            self._spawn(name, [str(DASK), "worker", self.address, "--name", name, "--nworkers",
                               "1", "--nthreads", "1", "--resources", "netlab=1",
                               "--no-dashboard", "--local-directory", str(tmp / name)])
        self._wait_for_workers(2)

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        self.procs.append(subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True,
                                           env={**os.environ, "PYTHONPATH": str(REPO)}))

    def _wait_for_scheduler(self, timeout: float = 60.0) -> None:
        host, port = self.address[len("tcp://"):].rsplit(":", 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex((host, int(port))) == 0:
                    return
            time.sleep(0.2)
        raise AssertionError(f"the scheduler never listened: {self.log_text()}")

    def workers(self) -> dict[str, str]:
        """Worker address -> name, as the scheduler knows them."""
        from distributed import Client

        with Client(self.address, timeout=15) as c:
            info = c.scheduler_info()["workers"]
        return {addr: w.get("name", "") for addr, w in info.items()}

    def _wait_for_workers(self, n: int, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.workers()) >= n:
                return
            time.sleep(0.5)
        raise AssertionError(f"{n} workers never registered: {self.log_text()}")

    def log_text(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                         for p in sorted(self.logs.glob("*.log")))

    def close(self) -> None:
        for p in reversed(self.procs):
            _stop(p)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


def _run(tmp: Path, *extra: str, size: str = "1MB", rate: int = 20, timeout: float = 600.0,
         background: bool = False) -> subprocess.Popen[str] | subprocess.CompletedProcess[str]:
    scen = tmp / "dask-lab.toml"
    scen.write_text(SWEEP.replace("{size}", size).replace("{rate}", str(rate)))
    argv = [sys.executable, "-m", "quicreality.scenarios", "run", str(scen), "--results",
            str(tmp / "results"), *extra]
    if background:
        return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          check=False)


def _tree(run: Path) -> dict[str, set[str]]:
    """rep folder (relative) -> the sample keys (metric/source) it holds."""
    out = {}
    for s in sorted(run.rglob("rep-*/samples.jsonl")):
        keys = {f"{json.loads(line)['metric']}/{json.loads(line)['source']}"
                for line in s.read_text().splitlines() if line.strip()}
        out[str(s.parent.relative_to(run))] = keys
    return out


def _run_dir(tmp: Path) -> Path:
    (run,) = [p.parent for p in (tmp / "results" / "runs").glob("*/run.json")]
    return run


def _intervals(run: Path) -> dict[str, list[tuple[float, float, str]]]:
    """worker -> (start, end, rep folder) of every unit it ran, from the manifests."""
    out: dict[str, list[tuple[float, float, str]]] = {}
    for m in run.rglob("rep-*/manifest.json"):
        man = json.loads(m.read_text())
        t0 = dt.datetime.fromisoformat(man["started_utc"]).timestamp()
        worker = man["executor"].get("worker", "?")
        out.setdefault(worker, []).append((t0, t0 + float(man["secs"]), str(m.parent)))
    return out


def test_dask_units_run_on_the_workers_one_at_a_time_and_match_a_local_run(
        cluster: Cluster, tmp_path: Path) -> None:
    workers = cluster.workers()
    (tmp_path / "local").mkdir()
    (tmp_path / "dask").mkdir()
    local = _run(tmp_path / "local")
    assert isinstance(local, subprocess.CompletedProcess)
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    res = _run(tmp_path / "dask", "--executor", "dask", "--scheduler", cluster.address)
    assert isinstance(res, subprocess.CompletedProcess)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:] + cluster.log_text()

    run = _run_dir(tmp_path / "dask")
    tree_dask, tree_local = _tree(run), _tree(_run_dir(tmp_path / "local"))
    assert len(tree_dask) == 4  # 2 points x 2 workloads x 1 rep
    assert tree_dask == tree_local

    per_worker = _intervals(run)
    assert set(per_worker) <= set(workers), (per_worker.keys(), workers)
    assert sum(len(v) for v in per_worker.values()) == 4
    for worker, spans in per_worker.items():
        spans.sort()
        for (_, end, a), (start, _, b) in itertools.pairwise(spans):
            assert start >= end - 0.05, f"{worker} ran {a} and {b} at once"
    info = json.loads((run / "run.json").read_text())
    assert info["executor"]["kind"] == "dask" and info["status"] == "passed"


def _unit_pids() -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if b"quicreality.scenarios.executors.unit" in cmd:
            pids.append(int(d.name))
    return pids


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_a_worker_killed_mid_unit_is_retried_and_leaves_no_namespace(
        cluster: Cluster, tmp_path: Path) -> None:
    # 6 MB at 4 Mbit/s: each download unit runs ~12 s, long enough to kill its worker mid-unit
    p = _run(tmp_path, "--executor", "dask", "--scheduler", cluster.address, "--only", "ours",
             size="6MB", rate=4, background=True)
    assert isinstance(p, subprocess.Popen)
    try:
        deadline = time.monotonic() + 120
        victim = None
        while victim is None and time.monotonic() < deadline:
            for pid in _unit_pids():
                try:
                    worker = _parent(pid)  # the unit's parent is the worker process,
                    nanny = _parent(worker)  # whose parent is the `dask worker` nanny
                    cmd = Path(f"/proc/{nanny}/cmdline").read_bytes()
                    if b"dask\x00worker" in cmd and cluster.address.encode() in cmd:
                        victim = worker
                        break
                except (OSError, ValueError):
                    continue
            time.sleep(0.2)
        assert victim is not None, "no unit process ever started"
        time.sleep(3.0)  # well inside the unit (its topology is up, the transfer runs)
        os.kill(victim, signal.SIGKILL)
        out, _ = p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, out[-4000:] + cluster.log_text()
    run = _run_dir(tmp_path)
    info = json.loads((run / "run.json").read_text())
    errors = [u for u in info["units"] if u.get("status") == "error"]
    assert errors and all(u["attempt"] == 1 for u in errors), info["units"]
    assert "RETRY" in out
    tree = _tree(run)
    assert len(tree) == 2  # both points' downloads finished (one on its second attempt)
    # no partial folder of the dead attempt in the results tree: every rep folder is one of
    # the two finished units', written by the attempt run.json names as the one that passed
    assert {str(d.relative_to(run)) for d in run.rglob("rep-*") if d.is_dir()} == set(tree)
    ok = {u["unit"]: u for u in info["units"] if u.get("status") == "ok"}
    assert len(ok) == 2
    for rep in tree:
        man = json.loads((run / rep / "manifest.json").read_text())
        (unit,) = [u for u in ok.values() if rep in u["rep_dirs"]]
        assert man["executor"]["attempt"] == unit["attempt"], (rep, man["executor"], unit)
    for e in errors:  # the retry ran under its own topology id
        assert ok[e["unit"]]["attempt"] == 2 and ok[e["unit"]]["topo_id"] != e["topo_id"]
    assert "stale_cleanup" in info, sorted(info)
    topo_ids = {u["topo_id"] for u in info["units"]}
    tmp = Path(tempfile.gettempdir())
    deadline = time.monotonic() + 30  # the killed unit's teardown runs on its own
    while time.monotonic() < deadline:
        left = {ns for ns in _netns() if any(ns.startswith(f"qr-{t}-") for t in topo_ids)}
        dirs = {str(d) for t in topo_ids for d in tmp.glob(f"qr-{t}-*")}
        if not left and not dirs:
            break
        time.sleep(0.5)
    assert not left, left
    assert not dirs, dirs  # the dead attempt's unit work dir is gone, with no `clean` run
