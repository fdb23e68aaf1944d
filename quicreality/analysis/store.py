"""One results store over every run: a Parquet dataset of all samples, queried with DuckDB.

Theory of operation
-------------------
``python -m quicreality.analysis.store build [RESULTS_DIR]`` (default ``results/``) reads every
run under ``RESULTS_DIR/runs/`` through the loaders of :mod:`.results` (:func:`load_samples`,
:func:`load_manifests`, :func:`load_checks`: the same rows ``report`` and the notebooks see) and
writes ``RESULTS_DIR/store/<run>.parquet``, one file per run, one row per sample, with

* the sample: run, scenario, workload, client, server, pair, rep, metric, value, unit, source;
* the repetition's check: ``ok``, ``reason``;
* the scenario point: ``sweep`` (the sweep's name, or null), ``point_index``, ``point_label``,
  ``point_seed``, ``param_<key>`` (the swept value as written in the file, as text) and the
  configured link as numbers: ``link_loss`` (0..1), ``link_delay_ms`` (one-way),
  ``link_rate_mbit``, ``rtt_ms`` (sum of both one-way delays), ``quick``;
* where it ran: ``host_name``, ``host_kernel``, ``host_machine``, ``host_cpu_model``,
  ``host_cpus``, ``load_before``/``load_after`` (1-minute load average), ``executor``,
  ``worker``; and ``git_sha``, ``git_dirty``, ``seed``, ``backend``, ``started``.

A run's file is rewritten only when the run changed (the newest mtime of its ``run.json``,
``samples.jsonl``, ``check.json`` and ``manifest.json`` files, kept in ``store/_runs.json``);
files of runs that are gone are removed. ``build --rebuild`` rewrites everything.

``python -m quicreality.analysis.store query [--results RESULTS_DIR] "SQL"`` opens DuckDB
with a view ``samples`` over the store (all columns of all runs, ``union_by_name``) and prints
the result as a table; :func:`query` returns a DataFrame (what the notebooks use)::

    SELECT workload, link_loss, median(value) AS goodput FROM samples
    WHERE metric = 'goodput' AND ok GROUP BY ALL ORDER BY ALL
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .results import REPO_ROOT, find_runs, load_checks, load_manifests, load_samples

__all__ = ["STORE_DIR", "build_store", "connect", "main", "query", "store_dir"]

STORE_DIR = "store"
_KEYS = ["run", "scenario", "workload", "pair", "rep"]
_INDEX = "_runs.json"


def store_dir(results_dir: str | Path | None = None) -> Path:
    """``<results_dir>/store`` (default ``results/store``)."""
    base = Path(results_dir) if results_dir is not None else REPO_ROOT / "results"
    return base / STORE_DIR


def _stamp(run: Path) -> float:
    """Newest mtime of the files a run's rows come from."""
    files = [run / "run.json", *run.rglob("rep-*/samples.jsonl"), *run.rglob("rep-*/check.json"),
             *run.rglob("rep-*/manifest.json")]
    return max((f.stat().st_mtime for f in files if f.exists()), default=0.0)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _rep_columns(m: Mapping[str, Any]) -> dict[str, Any]:
    """Point, link and host columns of one repetition, from its manifest."""
    sc = m.get("scenario") if isinstance(m.get("scenario"), Mapping) else {}
    link = (sc or {}).get("link") or ((m.get("link") or {}).get("configured")) or {}
    ts, tc = link.get("to_server") or {}, link.get("to_client") or {}
    point = (sc or {}).get("point") or {}
    host = m.get("host") if isinstance(m.get("host"), Mapping) else {}
    ex = m.get("executor") if isinstance(m.get("executor"), Mapping) else {}
    d_s, d_c = _num(ts.get("delay_ms")) or 0.0, _num(tc.get("delay_ms")) or 0.0
    out: dict[str, Any] = {
        "sweep": point.get("sweep"), "point_index": point.get("index"),
        "point_label": point.get("label"), "point_seed": point.get("seed"),
        "quick": bool((sc or {}).get("quick", False)),
        "link_loss": _num(tc.get("loss")) or 0.0, "link_delay_ms": d_c,
        "link_rate_mbit": _num(tc.get("rate_mbit")), "rtt_ms": d_s + d_c,
        "host_name": (host or {}).get("hostname"), "host_kernel": (host or {}).get("kernel"),
        "host_machine": (host or {}).get("machine"),
        "host_cpu_model": (host or {}).get("cpu_model"), "host_cpus": (host or {}).get("cpus"),
        "load_before": _load1((host or {}).get("load_before")),
        "load_after": _load1((host or {}).get("load_after")),
        "executor": (ex or {}).get("kind"), "worker": (ex or {}).get("worker")}
    for k, v in (point.get("params") or {}).items():
        out["param_" + k.replace(".", "_")] = None if v is None else str(v)
    return out


def _load1(v: Any) -> float | None:
    return _num(v[0]) if isinstance(v, (list, tuple)) and v else None


def run_table(run: str | Path) -> pd.DataFrame:
    """Every sample of one run with its check, point, link and host columns."""
    samples = load_samples(run)
    if samples.empty:
        return samples
    man = load_manifests(run)
    extra = pd.DataFrame([{**dict(zip(_KEYS, (r.run, r.scenario, r.workload, r.pair, r.rep),
                                     strict=True)),
                           "git_sha": r.git_sha, "git_dirty": r.git_dirty, "seed": r.seed,
                           "backend": r.backend, "started": r.started,
                           **_rep_columns(r.manifest or {})}
                          for r in man.itertuples(index=False)])
    chk = load_checks(run)[[*_KEYS, "ok", "reason"]]
    out = samples
    for df in (extra, chk):
        if df.empty:
            continue
        df = df.copy()
        df["rep"] = pd.to_numeric(df["rep"]).astype("Int64")
        out = out.merge(df, on=_KEYS, how="left")
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].map(lambda v: v if v is None or isinstance(v, (str, int, float, bool))
                                else json.dumps(v, default=str))
    if "ok" in out.columns:
        out["ok"] = out["ok"].astype("boolean")
    return out


def build_store(results_dir: str | Path | None = None, *, rebuild: bool = False
                ) -> dict[str, Any]:
    """Write ``<results_dir>/store/`` (see the module docstring).

    Returns:
        ``{"store", "runs", "written", "kept", "removed", "rows"}`` (``rows``: of the written
        files).
    """
    base = Path(results_dir) if results_dir is not None else REPO_ROOT / "results"
    out = store_dir(base)
    out.mkdir(parents=True, exist_ok=True)
    index_f = out / _INDEX
    try:
        index: dict[str, float] = {} if rebuild else json.loads(index_f.read_text())
    except (OSError, json.JSONDecodeError):
        index = {}
    runs = find_runs(base)
    written, kept, rows = [], [], 0
    new_index: dict[str, float] = {}
    for run in runs:
        stamp = _stamp(run)
        target = out / f"{run.name}.parquet"
        new_index[run.name] = stamp
        if not rebuild and index.get(run.name) == stamp and target.exists():
            kept.append(run.name)
            continue
        table = run_table(run)
        if table.empty:
            target.unlink(missing_ok=True)
            continue
        tmp = target.with_suffix(".parquet.tmp")
        table.to_parquet(tmp, index=False)
        tmp.replace(target)
        written.append(run.name)
        rows += len(table)
    removed = []
    for f in out.glob("*.parquet"):
        if f.stem not in new_index:
            f.unlink()
            removed.append(f.stem)
    index_f.write_text(json.dumps(new_index, indent=1, sort_keys=True) + "\n")
    return {"store": str(out), "runs": len(runs), "written": written, "kept": kept,
            "removed": removed, "rows": rows}


def connect(results_dir: str | Path | None = None) -> Any:
    """A DuckDB connection (in memory) with the view ``samples`` over the store.

    Raises:
        FileNotFoundError: No store (run ``build`` first).
    """
    import duckdb

    d = store_dir(results_dir)
    if not any(d.glob("*.parquet")):
        raise FileNotFoundError(f"no store under {d}: run `python -m quicreality.analysis.store "
                                f"build {d.parent}` first")
    con = duckdb.connect()
    pattern = str(d / "*.parquet").replace("'", "''")
    con.execute(f"CREATE VIEW samples AS SELECT * FROM read_parquet('{pattern}', "
                "union_by_name = true)")
    return con


def query(sql: str, results_dir: str | Path | None = None) -> pd.DataFrame:
    """Run ``sql`` over the store (view ``samples``) and return the result."""
    con = connect(results_dir)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def _print_table(df: pd.DataFrame) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(show_lines=False)
    for c in df.columns:
        t.add_column(str(c), justify="right" if pd.api.types.is_numeric_dtype(df[c]) else "left")
    for row in df.itertuples(index=False):
        t.add_row(*("" if v is None or (isinstance(v, float) and pd.isna(v)) else
                    f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    console = Console() if sys.stdout.isatty() else Console(width=200)
    console.print(t)
    console.print(f"{len(df)} row(s)", highlight=False)


def main(argv: Sequence[str] | None = None) -> int:
    """``build [RESULTS_DIR] [--rebuild]`` or ``query [--results DIR] SQL``; exit 2 on usage
    errors (no store, bad SQL)."""
    ap = argparse.ArgumentParser(prog="python -m quicreality.analysis.store",
                                 description="the results store: Parquet + DuckDB")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write RESULTS_DIR/store/ from every run")
    b.add_argument("results", nargs="?", type=Path, default=None,
                   help="results root (default results/)")
    b.add_argument("--rebuild", action="store_true", help="rewrite every run's file")
    q = sub.add_parser("query", help="run SQL over the view `samples`")
    q.add_argument("sql")
    q.add_argument("--results", type=Path, default=None, help="results root (default results/)")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.cmd == "build":
        info = build_store(args.results, rebuild=args.rebuild)
        print(f"store: {info['store']}: {info['runs']} run(s), {len(info['written'])} written "
              f"({info['rows']} rows), {len(info['kept'])} unchanged, {len(info['removed'])} "
              "removed")
        return 0
    import duckdb

    try:
        df = query(args.sql, args.results)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except duckdb.Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _print_table(df)
    return 0


if __name__ == "__main__":
    sys.exit(main())
