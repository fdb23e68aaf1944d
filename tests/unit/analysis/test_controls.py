"""Like with like, and the reference peers as controls, on the committed real quick run.

Every baseline here is built from the committed sample itself (``make_baseline``), then
re-defined as the catalog's full run or scaled; no number is written by hand.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quicreality.analysis.baselines import definition_id, load_baseline
from quicreality.analysis.cli import main_report
from quicreality.analysis.regression import make_baseline, run_samples, save_baseline
from quicreality.analysis.report import build_report, end_of_run_lines, run_verdict
from quicreality.scenarios.catalog import find_scenario


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, sample: Path) -> Path:
    dst = tmp_path_factory.mktemp("controls") / sample.name
    shutil.copytree(sample, dst)
    return dst


@pytest.fixture(scope="module")
def samples(run: Path) -> dict[str, dict[str, Any]]:
    return run_samples(run)


@pytest.fixture(scope="module")
def same(samples: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The sample as its own baseline (same definition, this host)."""
    return make_baseline([Path("sample")], samples=[samples])


def _scaled(doc: dict[str, Any], factor: Callable[[dict[str, Any]], float]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    for e in out["entries"]:
        f = factor(e)
        for r in e["reps"]:
            r["value"] *= f
            r["intervals"] = r["intervals"] and [x * f for x in r["intervals"]]
    return out


def _report(run: Path, doc: dict[str, Any], tmp_path: Path, *extra: str
            ) -> tuple[int, dict[str, Any]]:
    path = save_baseline(doc, tmp_path / "lossy-wan.json")
    rc = main_report([str(run), "--baseline", str(path), *extra])
    return rc, json.loads((run / "report.json").read_text())


def test_controls_are_the_catalogs_baseline_workloads(samples: dict[str, dict[str, Any]]
                                                      ) -> None:
    catalog = {w.name: w.baseline for w in find_scenario("lossy-wan").workloads}
    assert {k: e["control"] for k, e in samples.items()} == {
        k: catalog[k.split("/")[0]] for k in samples}
    assert sum(e["control"] for e in samples.values()) == 5


def test_quick_sample_against_a_full_run_baseline_is_not_comparable(
        run: Path, same: dict[str, Any], tmp_path: Path) -> None:
    full = {w.name: w for w in find_scenario("lossy-wan").workloads}  # not quickened
    doc = copy.deepcopy(same)
    for e in doc["entries"]:
        w = full[e["key"].split("/")[0]]
        d = e["definition"]
        d["quick"] = False
        for f in ("size_bytes", "seconds"):
            if d.get(f"workload.{f}") is not None:
                d[f"workload.{f}"] = getattr(w, f)
        e["id"] = definition_id(d)
    rc, rep = _report(run, doc, tmp_path)
    assert rc == 0 and rep["verdict"] == "not comparable"
    assert {c["verdict"] for c in rep["comparisons"]} == {"not comparable"}
    ours = next(c for c in rep["comparisons"] if c["key"] == "ours-ours/ours__ours")
    assert "quick: now true, baseline false" in ours["differences"]
    assert "workload.size_bytes: now 2000000, baseline 20000000" in ours["differences"]
    tcp = next(c for c in rep["comparisons"] if c["key"] == "tcp-bbr/iperf3__iperf3")
    assert "workload.seconds: now 3, baseline 10" in tcp["differences"]
    assert "quick" in rep["verdict_line"] and "workload.size_bytes" in rep["verdict_line"]
    line, html = run_verdict(run, tmp_path / "lossy-wan.json")
    assert line.startswith("not comparable: no baseline for this definition (--quick run")
    assert html.name == "report.html"


def test_everything_30_percent_faster_in_the_baseline_is_environment_changed(
        run: Path, same: dict[str, Any], tmp_path: Path) -> None:
    rc, rep = _report(run, _scaled(same, lambda e: 1.3), tmp_path)
    assert rc == 0 and rep["verdict"] == "environment changed"
    assert not rep["regressions"]
    assert len(rep["moved_controls"]) == 5
    for key, change in rep["moved_controls"].items():
        assert change == pytest.approx(1 / 1.3 - 1, abs=0.01)
        assert key.split("/")[0] in rep["verdict_line"]
    assert "−23%" in rep["verdict_line"]
    ours = [c for c in rep["comparisons"] if c["role"] == "ours"]
    assert ours and all(c["verdict"] == "ok" for c in ours)
    assert all(c["raw_change"] == pytest.approx(-0.23, abs=0.01) for c in ours)


def test_only_ours_2x_faster_in_the_baseline_is_a_regression(
        run: Path, same: dict[str, Any], tmp_path: Path) -> None:
    rc, rep = _report(run, _scaled(same, lambda e: 1.0 if e["control"] else 2.0), tmp_path)
    assert rc == 1 and rep["verdict"] == "regressed"
    ours = {c["key"]: c for c in rep["comparisons"] if c["role"] == "ours"}
    # the relays have only 3 one-second iperf3 intervals in a --quick rep: 3 vs 3 samples
    # cannot reach p <= 0.01, so they say "inconclusive, rerun", never ok
    testable = {k for k, c in ours.items() if c["min_p"] <= 0.01}
    assert len(testable) >= 5 and set(rep["regressions"]) == testable
    assert all(ours[k]["verdict"] == "inconclusive, rerun" for k in set(ours) - testable)
    assert all(c["change"] == pytest.approx(-0.5, abs=0.02) for c in ours.values())
    assert not rep["moved_controls"]
    controls = {c["key"] for c in rep["comparisons"] if c["role"] == "control"}
    assert set(rep["rerun_workloads"]) == {k.split("/")[0] for k in testable | controls}


def test_a_regression_is_still_caught_when_the_controls_shift(
        run: Path, same: dict[str, Any], tmp_path: Path) -> None:
    rc, rep = _report(run, _scaled(same, lambda e: 1.3 if e["control"] else 2.6), tmp_path)
    assert rc == 1 and rep["verdict"] == "regressed"
    assert rep["moved_controls"] and "environment changed too" in rep["verdict_line"]
    ours = [c for c in rep["comparisons"] if c["role"] == "ours"]
    assert all(c["verdict"] == "regression" for c in ours if c["min_p"] <= 0.01)
    assert all(c["change"] == pytest.approx(-0.5, abs=0.02) for c in ours)
    assert all(c["env_factor"] == pytest.approx(1 / 1.3, abs=0.01) for c in ours)


def test_without_controls_the_environment_is_blamed_on_us(
        run: Path, same: dict[str, Any], tmp_path: Path) -> None:
    """What the control adjustment prevents: the 30 %-faster baseline judged unadjusted."""
    rc, rep = _report(run, _scaled(same, lambda e: 1.3), tmp_path, "--no-controls")
    assert rc == 1 and rep["regressions"]


def test_another_host_class_is_not_comparable(run: Path, same: dict[str, Any],
                                              tmp_path: Path) -> None:
    # the run is judged on the host its manifests recorded (the sample predates that field:
    # record the baseline's host in a copy), never on the machine making the report
    hosted = tmp_path / run.name
    shutil.copytree(run, hosted)
    for m in hosted.rglob("rep-*/manifest.json"):
        man = json.loads(m.read_text())
        man["host"] = dict(same["entries"][0]["host"])
        m.write_text(json.dumps(man))
    assert build_report(hosted, same).verdict == "ok"
    doc = copy.deepcopy(same)
    for e in doc["entries"]:
        e["host_class"]["cpu_model"] = "Other CPU " + str(e["host_class"]["cpu_model"])
    rep = build_report(hosted, doc)
    assert rep.verdict == "not comparable"
    assert all(any(d.startswith("host.cpu_model: now ") for d in c.differences)
               for c in rep.comparisons)
    assert build_report(hosted, doc, any_host=True).verdict == "ok"
    # a run that recorded no host is not judged on host class
    assert build_report(run, doc).verdict == "ok"


def test_committed_baseline_is_schema_2_and_matches_the_quick_sample(run: Path) -> None:
    doc = load_baseline(Path(__file__).resolve().parents[3] / "results" / "baselines"
                        / "lossy-wan.json")
    assert doc["schema"] == 2
    # both the --quick (CI) and the full (main job) definitions are committed
    assert {e["definition"]["quick"] for e in doc["entries"]} == {True, False}
    rep = build_report(run)  # the committed baseline of the run's scenario
    # every workload is judged (the gate is not a no-op); the sample is the code of 2026-11-25,
    # slower than the code the --quick entries were recorded from, so it may be judged regressed
    assert not rep.not_comparable and rep.verdict != "not comparable"
    assert all(c.verdict != "not comparable" for c in rep.comparisons)


def test_old_and_unknown_baseline_formats(run: Path, tmp_path: Path) -> None:
    v1 = {"schema": 1, "scenario": "lossy-wan", "host": {}, "workloads": {
        "ours-ours/ours__ours": {"workload": "ours-ours", "pair": "ours__ours",
                                 "reps": [{"value": 1.0, "ok": True, "intervals": None}]}}}
    (tmp_path / "v1.json").write_text(json.dumps(v1))
    rep = build_report(run, tmp_path / "v1.json")
    (c,) = [c for c in rep.comparisons if c.key == "ours-ours/ours__ours"]
    assert c.verdict == "not comparable" and "schema 1 baseline" in c.reason
    (tmp_path / "v9.json").write_text(json.dumps({"schema": 9}))
    with pytest.raises(ValueError, match=r"unknown baseline format \(schema 9\)"):
        load_baseline(tmp_path / "v9.json")


def test_end_of_run_lines(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `scenarios run` prints last: against a baseline of the same definition, and with no
    baseline file for the scenario at all."""
    from quicreality.analysis import report as report_mod

    own = tmp_path / "own.json"
    save_baseline(make_baseline([run]), own)  # the sample as its own baseline
    monkeypatch.setattr(report_mod, "baseline_path", lambda s: own)
    verdict, path = end_of_run_lines(run)
    assert (verdict.startswith("verdict: ok: no regression of our stack")
            and path == f"report: {run / 'report.html'}")
    monkeypatch.setattr(report_mod, "baseline_path", lambda s: tmp_path / "none.json")
    (verdict, _) = end_of_run_lines(run)
    assert verdict.startswith("verdict: not comparable: no baseline for this definition")


def test_false_alarm_study_counts_only_ours_and_slows_only_ours(
        samples: dict[str, dict[str, Any]]) -> None:
    """The study's mechanics (not a measurement): copies of the sample scaled by a few %."""
    from quicreality.analysis.falsealarm import false_alarm_study

    runs = [{k: {**e, "reps": [{**r, "value": r["value"] * f, "intervals": r["intervals"]
                                and [x * f for x in r["intervals"]]} for r in e["reps"]]}
             for k, e in samples.items()} for f in (1.0, 0.97, 1.03)]
    st = false_alarm_study(runs, pool=1, confirm=True).to_dict()
    ours = [k for k, e in samples.items() if not e["control"]]
    assert st["trials"] == st["ci_runs"] * len(ours)
    assert st["false_alarm_rate"] == 0 and st["env_changed_rate"] == 0
    assert st["detection_rate"] >= 5 / len(ours)  # all but the 3-sample relays


def test_a_new_catalog_key_with_its_default_keeps_baselines_comparable() -> None:
    from quicreality.analysis.baselines import definition_diff

    base = {"quick": True, "workload.size_bytes": 2_000_000}
    assert definition_diff(base | {"workload.carrier": None}, base) == []
    assert definition_diff(base | {"workload.fingerprint": False}, base) == []
    assert definition_diff(base | {"workload.carrier": "ech"}, base) == [
        ("workload.carrier", "ech", None)]
    assert definition_diff(base, base | {"workload.size_bytes": 20_000_000}) == [
        ("workload.size_bytes", 2_000_000, 20_000_000)]


def test_controls_moving_apart_are_noise_not_the_environment(
        run: Path, same: dict[str, Any], tmp_path: Path) -> None:
    """What a real --quick run on a busy machine showed (ngtcp2 +28 % / +37 %, tcp-bbr −25 %):
    single controls moving in opposite directions do not make `environment changed`."""
    up = {"ngtcp2-bbr", "ngtcp2-ngtcp2"}  # slower in the baseline: now faster
    down = {"tcp-bbr", "tcp-cubic"}  # faster in the baseline: now slower
    rc, rep = _report(run, _scaled(same, lambda e: 0.7 if e["key"].split("/")[0] in up else
                                   1.3 if e["key"].split("/")[0] in down else 1.0), tmp_path)
    assert rc == 0 and rep["verdict"] == "ok", rep["verdict_line"]
    assert len(rep["moved_controls"]) == 4
    assert "controls moved singly, not together" in rep["verdict_line"]
    assert abs(rep["environment_change"]) < 0.01  # the median control did not move
