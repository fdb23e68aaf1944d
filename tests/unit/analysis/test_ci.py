"""The CI gate's logic (run → report → confirm a regression with a rerun), with the runner
replaced by copies of the committed real run (unchanged or slowed down 2x)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from quicreality.analysis import ci
from quicreality.analysis.inject import slow_down_run
from quicreality.analysis.regression import make_baseline, save_baseline

KEEP = ("ours-ours", "quicgo-quicgo")  # one workload with captures, one from qlogs


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory: pytest.TempPathFactory, sample: Path) -> Path:
    dst = tmp_path_factory.mktemp("ci") / sample.name
    for w in KEEP:
        src = sample / "lossy-wan" / w
        shutil.copytree(src, dst / "lossy-wan" / w)
    return dst


def _fake_runner(monkeypatch: pytest.MonkeyPatch, results: Path, sample: Path,
                 factors: list[float]) -> list[list[str]]:
    calls: list[list[str]] = []

    def fake_run(scenario: str, res: Path, only: list[str]) -> tuple[int, Path | None]:
        calls.append(list(only))
        factor = factors[len(calls) - 1]
        dst = res / "runs" / f"2099010{len(calls)}T000000Z-fake000"
        if factor == 1.0:
            shutil.copytree(sample, dst)
        else:
            slow_down_run(sample, dst, factor, only=["ours-ours"])  # the control as measured
        return 0, dst

    monkeypatch.setattr(ci, "_run", fake_run)
    return calls


@pytest.mark.parametrize(("factors", "exit_code", "reruns"), [
    ([1.0], 0, 0),                 # unchanged: passes, no rerun
    ([2.0, 2.0], 1, 1),            # real 50 % drop: confirmed by the rerun, CI fails
    ([2.0, 1.0], 0, 1),            # a one-off slow run: not confirmed, CI passes (inconclusive)
])
def test_gate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, small_sample: Path,
              factors: list[float], exit_code: int, reruns: int) -> None:
    baseline = save_baseline(make_baseline(small_sample), tmp_path / "lossy-wan.json")
    calls = _fake_runner(monkeypatch, tmp_path / "results", small_sample, factors)
    rc = ci.main(["--results", str(tmp_path / "results"), "--baseline", str(baseline)])
    assert rc == exit_code
    assert len(calls) == 1 + reruns
    if reruns:
        assert set(calls[1]) == set(KEEP)  # the regressed workload and the controls rerun
    report = next((tmp_path / "results" / "runs").glob("20990101*")) / "report.md"
    text = report.read_text()
    assert (text.startswith("# REGRESSED")) == (exit_code == 1)


def test_missing_baseline_is_a_usage_error(tmp_path: Path) -> None:
    assert ci.main(["--baseline", str(tmp_path / "none.json")]) == 2
