"""iperf3 -J and the runner's results tree (samples, checks, manifests, Parquet index)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
from analysis_paths import DATA

from quicreality.analysis.iperf3 import load_iperf3
from quicreality.analysis.results import (
    build_index,
    default_run,
    find_runs,
    load_checks,
    load_manifests,
    load_samples,
    rep_dirs,
)


def test_iperf3_intervals_and_summary() -> None:
    res = load_iperf3(DATA / "iperf3" / "tcp.json")
    s = res.summary
    assert s["protocol"] == "TCP" and s["reverse"] is True
    assert 1.0 < s["received_mbps"] < 20.0  # 20 Mbit/s link with 2 % loss
    sums = res.intervals[res.intervals["stream"] == "sum"]
    assert len(sums) == 4  # -t 2 -i 0.5
    assert sums["end"].iloc[-1] > 1.9
    assert (sums["mbps"] > 0).all()
    assert res.intervals["bytes"].sum() > 0


def test_iperf3_tolerates_a_log_line_before_the_json(tmp_path: Path) -> None:
    p = tmp_path / "client.stdout"
    p.write_text("starting iperf3\n" + (DATA / "iperf3" / "tcp.json").read_text())
    assert load_iperf3(p).summary["protocol"] == "TCP"


def test_results_tables_of_the_sample_run(sample: Path) -> None:
    reps = rep_dirs(sample)
    assert len(reps) >= 2 and set(reps.columns) >= {"scenario", "workload", "pair", "rep"}
    assert set(reps["scenario"]) == {"lossy-wan"}
    s = load_samples(sample)
    assert {"run", "scenario", "workload", "client", "server", "rep", "metric", "value",
            "unit", "pair"} <= set(s.columns)
    assert (s["metric"] == "goodput").sum() >= 2 or (s["metric"] == "goodput_wire_mbps").sum()
    assert s["value"].notna().all()
    checks = load_checks(sample)
    assert len(checks) == len(reps) and checks["ok"].all()
    man = load_manifests(sample)
    assert man["manifest"].map(bool).all()


def test_parquet_index_across_runs(sample: Path, tmp_path: Path) -> None:
    runs = tmp_path / "results" / "runs"
    runs.mkdir(parents=True)
    shutil.copytree(sample, runs / sample.name)
    other = runs / "20990101T000000Z-0000000"
    shutil.copytree(sample, other)
    for f in other.rglob("samples.jsonl"):  # a second run: same layout, its own name
        rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        f.write_text("".join(json.dumps({**r, "run": other.name}) + "\n" for r in rows))
    assert [p.name for p in find_runs(tmp_path / "results")] == [sample.name, other.name]
    assert default_run(tmp_path / "results") == other
    idx = build_index(tmp_path / "results")
    back = pd.read_parquet(tmp_path / "results" / "index.parquet")
    assert len(back) == len(idx) == 2 * len(load_samples(sample))
    assert set(back["run"]) == {sample.name, other.name}
    assert {"git_sha", "ok", "metric", "value"} <= set(back.columns)


def test_default_run_falls_back_to_the_committed_sample(tmp_path: Path, sample: Path) -> None:
    assert default_run(tmp_path / "empty-results") == sample
