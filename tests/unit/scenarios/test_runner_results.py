"""Results layout, samples schema, check.json and the summary table (no root)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from quicreality.scenarios.progress import RepRecord, summarise, summary_text
from quicreality.scenarios.results import (
    SAMPLE_FIELDS,
    Check,
    Sample,
    git_info,
    new_run_dir,
    read_samples,
    rep_dir,
    validate_sample,
    write_json,
    write_samples,
)

T = dt.datetime(2026, 11, 25, 15, 12, 0, tzinfo=dt.UTC)


def _sample(**kw: object) -> Sample:
    base: dict[str, object] = {
        "run": "20261125T151200Z-abc1234", "scenario": "lossy-wan", "workload": "curl-ours",
        "client": "curl", "server": "ours", "rep": 1, "metric": "goodput", "value": 4.2,
        "unit": "Mbit/s", "source": "wire"}
    base.update(kw)
    return Sample(**base)  # type: ignore[arg-type]


def test_run_dir_is_utc_time_and_git_sha_and_never_reused(tmp_path: Path) -> None:
    a = new_run_dir(tmp_path, "abc1234", T)
    b = new_run_dir(tmp_path, "abc1234", T)
    assert a == tmp_path / "runs" / "20261125T151200Z-abc1234"
    assert b.name == "20261125T151200Z-abc1234-2" and a.is_dir() and b.is_dir()


def test_rep_dir_layout(tmp_path: Path) -> None:
    d = rep_dir(tmp_path, "lossy-wan", "curl-ours", "curl", "ours", 3)
    assert d == tmp_path / "lossy-wan" / "curl-ours" / "curl__ours" / "rep-3" and d.is_dir()
    with pytest.raises(ValueError, match="workload"):
        rep_dir(tmp_path, "lossy-wan", "../evil", "curl", "ours", 1)


def test_samples_round_trip_with_the_documented_keys(tmp_path: Path) -> None:
    p = tmp_path / "samples.jsonl"
    n = write_samples(p, [_sample(), _sample(metric="handshake_ms", value=47.0, unit="ms")])
    assert n == 2
    rows = read_samples(p)
    assert [tuple(r) for r in rows] == [SAMPLE_FIELDS, SAMPLE_FIELDS]
    assert rows[1]["metric"] == "handshake_ms" and rows[1]["rep"] == 1
    assert SAMPLE_FIELDS[:9] == ("run", "scenario", "workload", "client", "server", "rep",
                                 "metric", "value", "unit")


@pytest.mark.parametrize(("change", "bad"), [
    ({"rep": 0}, "rep"), ({"value": float("nan")}, "value"), ({"value": "4"}, "value"),
    ({"source": "rumour"}, "source"), ({"metric": ""}, "metric"), ({"unit": ""}, "unit")])
def test_invalid_samples_are_rejected(change: dict[str, object], bad: str) -> None:
    row = _sample().to_dict()
    row.update(change)
    with pytest.raises(ValueError, match=f"sample.{bad}"):
        validate_sample(row)
    with pytest.raises(ValueError, match="sample keys"):
        validate_sample({k: v for k, v in _sample().to_dict().items() if k != "unit"})


def test_check_and_manifest_json(tmp_path: Path) -> None:
    write_json(tmp_path / "check.json", Check(False, "client hung", {"path": tmp_path}).to_dict())
    doc = json.loads((tmp_path / "check.json").read_text())
    assert doc == {"ok": False, "reason": "client hung", "details": {"path": str(tmp_path)}}
    write_json(tmp_path / "m.json", {"s": {1, 2}, "sample": _sample()})
    m = json.loads((tmp_path / "m.json").read_text())
    assert sorted(m["s"]) == [1, 2] and m["sample"]["metric"] == "goodput"


def test_git_info_has_sha_and_dirty_flag() -> None:
    g = git_info()
    assert set(g) >= {"sha", "short", "dirty"} and isinstance(g["dirty"], bool)
    assert g["sha"] == "unknown" or len(g["sha"]) == 40


def _rec(wl: str, rep: int, status: str, gp: float | None = None, **m: float) -> RepRecord:
    metrics = dict(m)
    if gp is not None:
        metrics["goodput"] = gp
    return RepRecord(workload=wl, pair="a__b", rep=rep, status=status,
                     reason="why" if status != "ok" else "fine", metrics=metrics, secs=1.0)


def test_summary_rows_median_min_max_and_status() -> None:
    rows = summarise([
        _rec("x", 1, "ok", 4.0, rtt_median_ms=40, packets_lost=20, handshake_ms=45),
        _rec("x", 2, "ok", 5.0, rtt_median_ms=42, packets_lost=22, handshake_ms=47),
        _rec("x", 3, "ok", 9.0, rtt_median_ms=41, packets_lost=24, handshake_ms=46),
        _rec("y", 1, "ok", 46.0, rtt_mean_ms=41, retransmits=800),
        _rec("y", 2, "fail"),
        _rec("z", 0, "not-run"),
    ])
    x, y, z = rows
    assert (x.goodput_median, x.goodput_min, x.goodput_max) == (5.0, 4.0, 9.0)
    assert (x.rtt_median_ms, x.lost_median, x.lost_kind, x.handshake_median_ms) == (41, 22, "lost",
                                                                                    46)
    assert (x.status, x.passed, x.reps) == ("PASS", 3, 3)
    assert (y.status, y.passed, y.reps, y.lost_kind, y.rtt_median_ms) == ("FAIL", 1, 2, "retx", 41)
    assert y.reason == "why"
    assert (z.status, z.reps, z.goodput_median) == ("NOT RUN", 0, None)
    text = summary_text(rows, "title")
    assert "5.00 (4.00–9.00)" in text and "NOT RUN" in text and "FAIL 1/2" in text
