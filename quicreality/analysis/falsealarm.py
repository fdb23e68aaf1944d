"""Measure the verdict rule's false-alarm rate and detection power on repeated, unchanged runs.

    python -m quicreality.analysis.falsealarm RUN_DIR RUN_DIR ... [--pool 3 5] [--floor 0.15]
        [--noise-k 0 3] [--confirm] [--intervals 20] [--json OUT]

Every run is an unchanged repeat of the same scenario (same code, same machine). For every run
*c* and every set *B* of ``--pool`` other runs, the report's rule compares *c* (as "this run")
with a baseline pooled from *B*, exactly as ``report`` would with a baseline recorded by
``baseline update B...``. Each comparison of one workload is a trial:

* **false alarm**: a ``regression`` verdict (CI would fail) — nothing changed;
* ``inconclusive`` verdicts are counted too (CI prints them but passes);
* **detection**: the same comparisons with *c*'s workloads of our stack slowed down by
  ``--factor`` (default 2, a 50 % goodput drop, :func:`~.inject.slow_down_run`'s effect on the
  samples; the controls left as measured) must give ``regression``.

Only our workloads are trials (controls never regress); comparisons where a control moved
(``environment changed``, which does not fail CI) are counted separately.

Trials that share runs are not independent, so the rates are descriptive (how often the rule
fired on this machine's real noise), not a calibrated probability.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .baselines import BASELINE_SCHEMA, definition_id, host_class
from .regression import (
    DEFAULT_ALPHA,
    DEFAULT_FLOOR,
    DEFAULT_INTERVALS,
    DEFAULT_NOISE_K,
    compare_run,
    run_samples,
)

__all__ = ["Study", "false_alarm_study", "pooled_baseline", "pooled_samples", "slowed"]


def pooled_samples(entries: Sequence[Mapping[str, Mapping[str, Any]]]
                   ) -> dict[str, dict[str, Any]]:
    """The :func:`~.regression.run_samples` of several runs as one run (reps pooled)."""
    out: dict[str, dict[str, Any]] = {}
    for per_run in entries:
        for key, e in per_run.items():
            w = out.setdefault(key, {**e, "reps": []})
            w["reps"] = w["reps"] + [r for r in e["reps"] if r.get("ok", True)]
    return out


def pooled_baseline(entries: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """A schema-2 baseline document pooling the reps of several runs' samples (each entry
    keeps its runs' measurement definition, so it matches runs measured the same way)."""
    return {"schema": BASELINE_SCHEMA, "entries": [
        {"key": key, "id": definition_id(e.get("definition") or {}),
         "definition": e.get("definition") or {}, "host_class": host_class(e.get("host") or {}),
         "control": bool(e.get("control")), "reps": e["reps"]}
        for key, e in pooled_samples(entries).items()]}


def slowed(entry_map: Mapping[str, Mapping[str, Any]], factor: float, *,
           controls_too: bool = False) -> dict[str, dict[str, Any]]:
    """Samples of a run as if every transfer of our stack (``controls_too``: of every
    workload) had taken ``factor`` times longer."""
    out: dict[str, dict[str, Any]] = {}
    for key, e in entry_map.items():
        if e.get("control") and not controls_too:
            out[key] = dict(e)
            continue
        reps = [{**r, "value": r["value"] / factor,
                 "intervals": None if r.get("intervals") is None
                 else [x / factor for x in r["intervals"]]} for r in e["reps"]]
        out[key] = {**e, "reps": reps}
    return out


@dataclass
class Study:
    """Counts per workload and overall."""

    pool: int
    floor: float
    alpha: float
    intervals: int
    noise_k: float = DEFAULT_NOISE_K
    trials: int = 0
    false_alarms: int = 0
    inconclusive: int = 0
    detected: int = 0
    runs_with_false_alarm: int = 0
    run_trials: int = 0
    confirm: bool = False
    env_changed: int = 0  #: comparisons (CI runs) with at least one control moved
    by_workload: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON with the rates."""
        t = self.trials or 1
        return {"pool": self.pool, "floor": self.floor, "noise_k": self.noise_k,
                "alpha": self.alpha,
                "intervals_per_rep": self.intervals, "trials": self.trials,
                "false_alarm_rate": self.false_alarms / t,
                "inconclusive_rate": self.inconclusive / t,
                "detection_rate": self.detected / t,
                "confirm": self.confirm, "ci_runs": self.run_trials,
                "env_changed_rate": self.env_changed / (self.run_trials or 1),
                "ci_run_false_alarm_rate": self.runs_with_false_alarm / (self.run_trials or 1),
                "by_workload": {k: dict(v) for k, v in sorted(self.by_workload.items())}}


def false_alarm_study(samples: Sequence[Mapping[str, Mapping[str, Any]]], *, pool: int = 3,
                      floor: float = DEFAULT_FLOOR, alpha: float = DEFAULT_ALPHA,
                      factor: float = 2.0, intervals: int = DEFAULT_INTERVALS,
                      noise_k: float = DEFAULT_NOISE_K, confirm: bool = False) -> Study:
    """All (current run, pooled baseline of ``pool`` other runs) comparisons.

    With ``confirm``, a regression must survive a confirmation rerun: the verdict is recomputed
    with the current run pooled with each other run not in the baseline (the CI recipe in
    docs/analysis.md), and counts as the fraction of those reruns that still say regression.

    Args:
        samples: :func:`~.regression.run_samples` of each unchanged run.
    """
    st = Study(pool=pool, floor=floor, alpha=alpha, intervals=intervals, noise_k=noise_k,
               confirm=confirm)
    idx = range(len(samples))
    kw: dict[str, Any] = {"alpha": alpha, "floor": floor, "noise_k": noise_k}
    for c in idx:
        others = [i for i in idx if i != c]
        for combo in itertools.combinations(others, pool):
            base = pooled_baseline([samples[i] for i in combo])
            reruns = [i for i in others if i not in combo]
            verdicts = compare_run(samples[c], base, **kw)
            worse = compare_run(slowed(samples[c], factor), base, **kw)
            if confirm:
                verdicts = _confirmed(verdicts, samples, c, reruns, base, 1.0, kw)
                worse = _confirmed(worse, samples, c, reruns, base, factor, kw)
            st.run_trials += 1
            any_alarm = False
            st.env_changed += int(any(v.verdict == "control moved" for v in verdicts))
            for v, w in zip(verdicts, worse, strict=False):
                if not v.baseline or v.role != "ours":
                    continue
                st.trials += 1
                st.by_workload[v.key][v.verdict] += 1
                st.by_workload[v.key]["detected" if w.is_regression else "missed"] += 1
                if v.is_regression:
                    st.false_alarms += 1
                    any_alarm = True
                elif v.verdict.startswith("inconclusive"):
                    st.inconclusive += 1
                st.detected += int(w.is_regression)
            st.runs_with_false_alarm += int(any_alarm)
    return st


def _confirmed(verdicts: list[Any], samples: Sequence[Mapping[str, Mapping[str, Any]]],
               c: int, reruns: list[int], base: Mapping[str, Any], factor: float,
               kw: Mapping[str, Any]) -> list[Any]:
    """Keep a regression only if a majority of confirmation reruns (pooled with run ``c``)
    still give one; others become ``inconclusive, rerun``."""
    out = []
    for v in verdicts:
        if not v.is_regression or not reruns:
            out.append(v)
            continue
        hits = 0
        for r in reruns:
            pooled = pooled_samples([slowed(samples[c], factor), slowed(samples[r], factor)])
            res = [x for x in compare_run(pooled, base, **kw) if x.key == v.key]
            hits += int(bool(res) and res[0].is_regression)
        if hits * 2 > len(reruns):
            out.append(v)
        else:
            v2 = type(v)(**{**v.to_dict(), "verdict": "inconclusive, rerun",
                            "reason": "not confirmed by a rerun"})
            out.append(v2)
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI: print (and optionally save) the study for the given runs."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--pool", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--floor", type=float, nargs="+", default=[DEFAULT_FLOOR])
    ap.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    ap.add_argument("--noise-k", type=float, nargs="+", default=[DEFAULT_NOISE_K])
    ap.add_argument("--intervals", type=int, default=DEFAULT_INTERVALS)
    ap.add_argument("--factor", type=float, default=2.0)
    ap.add_argument("--confirm", action="store_true",
                    help="regressions must survive a confirmation rerun (the CI gate)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    samples = [run_samples(r, intervals_per_rep=args.intervals) for r in args.runs]
    results = []
    for pool in args.pool:
        if pool >= len(samples):
            continue
        for floor, noise_k in itertools.product(args.floor, args.noise_k):
            st = false_alarm_study(samples, pool=pool, floor=floor, alpha=args.alpha,
                                   factor=args.factor, intervals=args.intervals,
                                   noise_k=noise_k, confirm=args.confirm)
            d = st.to_dict()
            results.append(d)
            print(f"pool={pool} floor={floor:.0%} noise_k={noise_k:g} K={args.intervals}: "
                  f"{d['trials']} trials, "
                  f"false alarms {d['false_alarm_rate']:.2%}, inconclusive "
                  f"{d['inconclusive_rate']:.2%}, detected {d['detection_rate']:.2%}; "
                  f"CI runs with ≥1 false alarm {d['ci_run_false_alarm_rate']:.2%} "
                  f"of {d['ci_runs']}; 'environment changed' {d['env_changed_rate']:.2%}")
            for key, cnt in d["by_workload"].items():
                print(f"    {key:<32} {cnt}")
    if args.json:
        args.json.write_text(json.dumps({"runs": [str(r) for r in args.runs],
                                         "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
