"""The results store (issue 16): Parquet per run + DuckDB view, medians equal report's."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import duckdb  # noqa: F401 - the [lab] extras install it (scripts/setup.sh); missing = a setup bug
import pytest

from quicreality.analysis.report import build_report
from quicreality.analysis.store import build_store, main, query


@pytest.fixture()
def results(tmp_path: Path, sample: Path) -> Path:
    """A results root holding a copy of the committed sample run."""
    (tmp_path / "runs").mkdir()
    shutil.copytree(sample, tmp_path / "runs" / sample.name)
    return tmp_path


def test_store_medians_equal_the_report(results: Path) -> None:
    info = build_store(results)
    assert info["written"] and info["rows"] > 0
    run = results / "runs" / info["written"][0]
    rep = build_report(run, baseline={}, unit="rep")
    medians = {c.key: c.current_median for c in rep.comparisons}
    assert len(medians) >= 5
    df = query("SELECT workload || '/' || pair AS key, median(value) AS m FROM samples "
               "WHERE metric = 'goodput' AND ok GROUP BY ALL", results)
    got = dict(zip(df["key"], df["m"], strict=True))
    for key, m in medians.items():
        if math.isfinite(m):
            assert got[key] == pytest.approx(m, rel=1e-12), key


def test_store_has_run_point_and_host_columns(results: Path) -> None:
    run = next((results / "runs").iterdir())
    m = next(run.rglob("rep-1/manifest.json"))  # a manifest written by this version's runner
    man = json.loads(m.read_text())
    man["host"] = {"hostname": "h1", "kernel": "k", "machine": "x86_64", "cpu_model": "cpu",
                   "cpus": 2, "load_before": [0.5, 0.4, 0.3], "load_after": [1.5, 1, 1]}
    man["executor"] = {"kind": "dask", "worker": "tcp://127.0.0.1:1"}
    man["scenario"]["point"] = {"sweep": "s", "index": 3, "label": "loss-1pct",
                                "params": {"loss": "1%"}, "seed": 42}
    m.write_text(json.dumps(man))
    build_store(results)
    rel = m.parent.relative_to(run).parts
    df = query(f"SELECT * FROM samples WHERE workload = '{rel[1]}' AND pair = '{rel[2]}' "
               "AND rep = 1", results)
    assert len(df) > 0
    row = df.iloc[0]
    assert row["run"] == run.name and row["host_name"] == "h1" and row["host_cpus"] == 2
    assert row["load_before"] == 0.5 and row["load_after"] == 1.5
    assert row["executor"] == "dask" and row["worker"] == "tcp://127.0.0.1:1"
    assert row["sweep"] == "s" and row["point_index"] == 3 and row["param_loss"] == "1%"
    assert row["link_loss"] == pytest.approx(0.01) and row["rtt_ms"] == 40
    other = query("SELECT count(*) AS n FROM samples WHERE sweep IS NULL", results)
    assert int(other["n"][0]) > 0


def test_store_is_incremental_and_drops_removed_runs(results: Path) -> None:
    first = build_store(results)
    again = build_store(results)
    assert again["written"] == [] and again["kept"] == first["written"]
    copy = results / "runs" / "20990101T000000Z-copy"
    shutil.copytree(next((results / "runs").iterdir()), copy)
    third = build_store(results)
    assert third["written"] == [copy.name]
    n = query("SELECT count(*) AS n FROM samples", results)["n"][0]
    assert n == 2 * first["rows"]  # (the copy's rows keep the run name samples.jsonl gives)
    shutil.rmtree(copy)
    assert build_store(results)["removed"] == [copy.name]


def test_cli_build_and_query(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "--results", str(results), "SELECT 1"]) == 2  # no store yet
    assert "run `python -m quicreality.analysis.store build" in capsys.readouterr().err
    assert main(["build", str(results)]) == 0
    assert main(["query", "--results", str(results),
                 "SELECT metric, count(*) AS n FROM samples GROUP BY ALL ORDER BY metric"]) == 0
    out = capsys.readouterr().out
    assert "goodput" in out and "row(s)" in out
    assert main(["query", "--results", str(results), "SELECT nope FROM samples"]) == 2
