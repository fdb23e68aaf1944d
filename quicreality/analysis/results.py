"""The runner's results tree → tidy tables; a Parquet index across runs.

Layout (scenario runner, ``docs/architecture.md``)::

    results/runs/<UTC time>-<git sha>/<scenario>/<workload>/<client>__<server>/rep-<n>/
        manifest.json  check.json  samples.jsonl  *.pcap  *.pcapng  keys*.log  qlog*/  std*

:func:`rep_dirs` lists the rep folders with their coordinates; :func:`load_samples`,
:func:`load_checks` and :func:`load_manifests` read them (tolerant of missing files: a crashed
peer is a failed check, not a missing folder, but a half-written run can still be read);
:func:`build_index` writes ``results/index.parquet`` with one row per sample of every run.

:func:`default_run` is what the notebooks read when no run is given: the newest run under
``results/runs/``, else the committed sample under ``captures/``.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "REPO_ROOT",
    "build_index",
    "default_run",
    "find_runs",
    "load_checks",
    "load_manifests",
    "load_samples",
    "rep_dirs",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
_REP_RE = re.compile(r"^rep-(\d+)$")
SAMPLE_COLUMNS = ["run", "scenario", "workload", "client", "server", "rep", "metric", "value",
                  "unit"]


def find_runs(results_dir: str | Path | None = None) -> list[Path]:
    """Run folders under ``<results_dir>/runs`` (default ``results/``), oldest first.

    A run folder is any direct child of ``runs/`` that holds at least one ``rep-<n>`` folder.
    """
    base = Path(results_dir) if results_dir is not None else REPO_ROOT / "results"
    runs_dir = base / "runs" if (base / "runs").is_dir() else base
    if not runs_dir.is_dir():
        return []
    runs = [d for d in runs_dir.iterdir() if d.is_dir() and any(_iter_rep_dirs(d))]
    return sorted(runs, key=lambda d: d.name)


def default_run(results_dir: str | Path | None = None,
                captures_dir: str | Path | None = None) -> Path:
    """The newest run under ``results/runs/``, else the committed sample in ``captures/``.

    Raises:
        FileNotFoundError: If neither exists.
    """
    runs = find_runs(results_dir)
    if runs:
        return runs[-1]
    cap = Path(captures_dir) if captures_dir is not None else REPO_ROOT / "captures"
    samples = find_runs(cap) if cap.is_dir() else []
    if samples:
        return samples[-1]
    raise FileNotFoundError(f"no run under {results_dir or REPO_ROOT / 'results'} and no sample "
                            f"under {cap}")


def _iter_rep_dirs(run_dir: Path) -> Iterable[Path]:
    for p in sorted(run_dir.rglob("rep-*")):
        if p.is_dir() and _REP_RE.match(p.name):
            yield p


def rep_dirs(run_dir: str | Path) -> pd.DataFrame:
    """One row per rep folder: run, scenario, workload, pair, client, server, rep, path."""
    run = Path(run_dir)
    rows = []
    for p in _iter_rep_dirs(run):
        parts = p.relative_to(run).parts
        if len(parts) < 4:
            continue
        scenario, workload, pair = parts[-4], parts[-3], parts[-2]
        client, _, server = pair.partition("__")
        rows.append({"run": run.name, "scenario": scenario, "workload": workload, "pair": pair,
                     "client": client, "server": server,
                     "rep": int(_REP_RE.match(p.name).group(1)),  # type: ignore[union-attr]
                     "path": str(p)})
    cols = ["run", "scenario", "workload", "pair", "client", "server", "rep", "path"]
    return pd.DataFrame(rows, columns=cols).sort_values(
        ["scenario", "workload", "pair", "rep"]).reset_index(drop=True)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            warnings.warn(f"{path}: skipping a malformed line", stacklevel=3)
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _runs(run_dirs: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(run_dirs, (str, Path)):
        return [Path(run_dirs)]
    return [Path(r) for r in run_dirs]


def load_samples(run_dirs: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """All ``samples.jsonl`` rows of the given runs as one tidy table.

    Columns: run, scenario, workload, client, server, rep, metric, value, unit, plus any extra
    keys the runner wrote, and ``pair`` (``client__server``). Coordinates missing from a row are
    filled from the rep folder's path.
    """
    rows: list[dict[str, Any]] = []
    for run in _runs(run_dirs):
        for rd in rep_dirs(run).itertuples(index=False):
            f = Path(rd.path) / "samples.jsonl"
            if not f.exists():
                continue
            for obj in _read_jsonl(f):
                row = {"run": rd.run, "scenario": rd.scenario, "workload": rd.workload,
                       "client": rd.client, "server": rd.server, "rep": rd.rep}
                row.update({k: v for k, v in obj.items() if v is not None or k not in row})
                rows.append(row)
    df = pd.DataFrame(rows)
    for c in SAMPLE_COLUMNS:
        if c not in df.columns:
            df[c] = pd.Series(dtype="object")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    df["rep"] = pd.to_numeric(df["rep"], errors="coerce").astype("Int64")
    df["run"] = df["run"].astype(str)
    df["pair"] = df["client"].astype(str) + "__" + df["server"].astype(str)
    extra = [c for c in df.columns if c not in SAMPLE_COLUMNS and c != "pair"]
    return df[[*SAMPLE_COLUMNS, "pair", *extra]]


def load_checks(run_dirs: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """``check.json`` of every rep: coordinates plus ok, reason, details."""
    rows = []
    for run in _runs(run_dirs):
        for rd in rep_dirs(run).itertuples(index=False):
            f = Path(rd.path) / "check.json"
            chk: dict[str, Any] = {}
            if f.exists():
                try:
                    chk = json.loads(f.read_text())
                except json.JSONDecodeError:
                    chk = {"ok": False, "reason": "check.json unreadable"}
            rows.append({"run": rd.run, "scenario": rd.scenario, "workload": rd.workload,
                         "pair": rd.pair, "rep": rd.rep, "ok": chk.get("ok"),
                         "reason": chk.get("reason"), "details": chk.get("details"),
                         "path": rd.path})
    return pd.DataFrame(rows, columns=["run", "scenario", "workload", "pair", "rep", "ok",
                                       "reason", "details", "path"])


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def load_manifests(run_dirs: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Key fields of every rep's ``manifest.json`` (the full dict in ``manifest``)."""
    rows = []
    for run in _runs(run_dirs):
        for rd in rep_dirs(run).itertuples(index=False):
            f = Path(rd.path) / "manifest.json"
            m: dict[str, Any] = {}
            if f.exists():
                try:
                    m = json.loads(f.read_text())
                except json.JSONDecodeError:
                    m = {}
            raw_git = m.get("git")
            git: dict[str, Any] = raw_git if isinstance(raw_git, dict) else {}
            rows.append({
                "run": rd.run, "scenario": rd.scenario, "workload": rd.workload,
                "pair": rd.pair, "rep": rd.rep,
                "git_sha": m.get("git_sha") or git.get("sha"),
                "git_dirty": m.get("git_dirty", git.get("dirty")),
                "seed": m.get("seed"), "backend": m.get("backend") or _get(m, "link", "backend"),
                "kernel": m.get("kernel") or _get(m, "host", "kernel"),
                "started": m.get("started") or m.get("start_time"),
                "manifest": m, "path": rd.path})
    return pd.DataFrame(rows, columns=["run", "scenario", "workload", "pair", "rep", "git_sha",
                                       "git_dirty", "seed", "backend", "kernel", "started",
                                       "manifest", "path"])


def build_index(results_dir: str | Path | None = None, out: str | Path | None = None,
                ) -> pd.DataFrame:
    """One row per sample of every run under ``results_dir``, written as Parquet.

    Adds the manifest's git sha / dirty flag / backend / seed and the check's ``ok`` to each
    sample row. Default output: ``<results_dir>/index.parquet``.
    """
    base = Path(results_dir) if results_dir is not None else REPO_ROOT / "results"
    runs = find_runs(base)
    samples = load_samples(runs)
    if runs:
        man = load_manifests(runs).drop(columns=["manifest", "path"])
        chk = load_checks(runs)[["run", "scenario", "workload", "pair", "rep", "ok", "reason"]]
        keys = ["run", "scenario", "workload", "pair", "rep"]
        for extra in (man, chk):
            extra["rep"] = pd.to_numeric(extra["rep"]).astype("Int64")
        samples = samples.merge(man, on=keys, how="left").merge(chk, on=keys, how="left")
    target = Path(out) if out is not None else base / "index.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    frame = samples.copy()
    for c in frame.columns:
        if frame[c].dtype == object:
            frame[c] = frame[c].map(lambda v: v if v is None or isinstance(v, (str, int, float,
                                                                                bool))
                                    else json.dumps(v, default=str))
    frame.to_parquet(target, index=False)
    return samples
