"""The regression verdict on synthetic samples (regression / inconclusive / ok)."""

from __future__ import annotations

import numpy as np
import pytest

from quicreality.analysis.falsealarm import pooled_baseline
from quicreality.analysis.regression import compare, compare_run, min_p_value

RNG = np.random.default_rng(20261125)


def noisy(median: float, n: int, cv: float = 0.2) -> list[float]:
    return list(median * np.exp(RNG.normal(0.0, cv, n)))


def test_clear_regression() -> None:
    base = noisy(10.0, 60)
    cur = noisy(5.0, 20)
    c = compare(cur, base, key="w", floor=0.10)
    assert c.verdict == "regression" and c.is_regression
    assert c.p_value < 1e-6 and c.change < -0.4


def test_no_change_is_ok() -> None:
    base = noisy(10.0, 60)
    c = compare(list(base[:20]), base, floor=0.10)
    assert c.verdict == "ok" and c.p_value > 0.01


def test_noise_only_never_regresses() -> None:
    verdicts = [compare(noisy(10.0, 20, 0.3), noisy(10.0, 60, 0.3), floor=0.10).verdict
                for _ in range(200)]
    assert verdicts.count("regression") <= 2  # independent noise: ~alpha x P(drop >= floor)
    # a sample median 10 % off by chance (no significance) is "inconclusive": loud, not failing
    assert verdicts.count("ok") >= 150


def test_too_few_reps_is_inconclusive_not_regression() -> None:
    # 3 vs 3 per-rep values: the exact two-sided MWU cannot go below p = 0.1
    c = compare([5.0, 5.1, 4.9], [10.0, 10.2, 9.9], floor=0.10)
    assert c.min_p == pytest.approx(0.1)
    assert c.verdict == "inconclusive, rerun"
    assert "cannot go below" in c.reason


def test_significant_but_small_change_is_inconclusive() -> None:
    base = list(np.linspace(9.9, 10.1, 60))
    cur = list(np.linspace(9.4, 9.6, 20))  # -5 %: significant, below a 10 % floor
    c = compare(cur, base, floor=0.10)
    assert c.p_value < 0.01 and c.verdict == "inconclusive, rerun"


def test_improvement_is_ok() -> None:
    c = compare(noisy(20.0, 20, 0.05), noisy(10.0, 60, 0.05), floor=0.10)
    assert c.verdict == "ok (improved)"


def test_no_baseline_and_no_data() -> None:
    assert compare([1.0], []).verdict == "no baseline"
    assert compare([], [1.0]).verdict == "no data"


@pytest.mark.parametrize(("n1", "n2", "p"), [(3, 3, 0.1), (5, 5, 0.0079), (1, 5, 0.333)])
def test_min_p_values(n1: int, n2: int, p: float) -> None:
    assert min_p_value(n1, n2) == pytest.approx(p, abs=5e-4)


def _entry(values: list[float], slices: list[list[float]] | None) -> dict:  # type: ignore[type-arg]
    return {"workload": "w", "pair": "a__b", "scenario": "s", "metric": "goodput",
            "unit": "Mbit/s",
            "reps": [{"run": "r", "rep": i + 1, "value": v, "ok": True,
                      "intervals": None if slices is None else slices[i]}
                     for i, v in enumerate(values)]}


def test_compare_run_uses_slices_and_falls_back_to_reps() -> None:
    base_slices = [noisy(10.0, 20, 0.1) for _ in range(3)]
    cur_slices = [list(np.asarray(s) / 2) for s in noisy_sets(1)]
    baseline = pooled_baseline([{"w/a__b": _entry([10.0, 10.1, 9.9], base_slices)}])
    current = {"w/a__b": _entry([5.0], cur_slices)}
    (c,) = compare_run(current, baseline, floor=0.10)
    assert c.unit == "interval" and len(c.current) == 20 and len(c.baseline) == 60
    assert c.verdict == "regression"
    no_slices = {"w/a__b": _entry([5.0], None)}
    (c2,) = compare_run(no_slices, baseline, floor=0.10)
    assert c2.unit == "rep" and c2.verdict == "inconclusive, rerun"  # 1 vs 3 reps
    failed = _entry([5.0], cur_slices)
    failed["reps"][0]["ok"] = False  # a failed rep never counts
    (c3,) = compare_run({"w/a__b": failed}, baseline)
    assert c3.verdict == "no data"


def noisy_sets(n: int) -> list[list[float]]:
    return [noisy(10.0, 20, 0.1) for _ in range(n)]
