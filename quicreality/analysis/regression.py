"""Throughput regression verdicts: sampling, the statistics, and baseline files.

The verdict (per workload, :func:`compare`)
-------------------------------------------
* **regression**: a two-sided Mann-Whitney U test (scipy) gives p ≤ ``alpha`` (0.01) **and** the
  median moved down by at least ``floor`` (see :data:`DEFAULT_FLOOR`);
* **inconclusive, rerun**: only one of the two holds (significant but small, or a large drop
  that is not significant — e.g. too few samples: :func:`min_p_value` says how low p can go);
* **ok**: neither (an improvement that passes both is reported as ``ok (improved)``).

Sampling (why not one number per rep)
-------------------------------------
An exact MWU with 3 reps against 3 cannot go below p = 0.1, and the CI ``--quick`` run has one
or two reps per workload. So each rep contributes ``intervals_per_rep`` samples: the transfer
(first → last payload packet at the client-side capture) is cut into equal slices and the
goodput of each slice (first-seen bytes × 8 / slice duration) is one sample
(:func:`interval_goodput`). **The samples within a rep are not independent** (they share the
rep's connection, its loss pattern and the machine's load at that moment), so the MWU p-value is
optimistic: it treats 10 correlated slices as 10 independent draws. The magnitude floor is what
keeps rep-to-rep noise from being called a regression, and the false-alarm rate of the whole
rule is *measured* (``docs/analysis.md``), not taken from the nominal alpha.

Like with like, and controls (:func:`compare_run`)
-------------------------------------------------
Baseline files (``results/baselines/<scenario>.json``, :func:`make_baseline`, format in
:mod:`.baselines`) keep the raw per-rep values and slices per **measurement definition** and host
class; a workload measured differently is ``not comparable``. The reference peers (catalog
``baseline = true``) are controls: ours is judged after dividing its samples by the controls'
geometric-median shift (a difference in differences on the log scale), and controls that moved
beyond their noise floor make the report say ``environment changed``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import socket
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .baselines import (
    BASELINE_SCHEMA,
    definition_id,
    host_class,
    load_baseline,
    match_entry,
    merge_entries,
    normalise,
    run_definitions,
)
from .results import REPO_ROOT, load_checks, load_samples, rep_dirs
from .sources import interval_samples

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_FLOOR",
    "DEFAULT_INTERVALS",
    "Comparison",
    "compare",
    "compare_run",
    "environment_factor",
    "host_description",
    "load_baseline",
    "make_baseline",
    "min_p_value",
    "pick_metric",
    "run_samples",
    "save_baseline",
    "update_baseline",
]

DEFAULT_ALPHA = 0.01
#: Smallest relative drop of the median that can be a regression (see docs/analysis.md for the
#: measured false-alarm rate that motivated it).
DEFAULT_FLOOR = 0.15
DEFAULT_INTERVALS = 20
#: The floor of a workload is at least this many times its baseline's between-rep CV.
DEFAULT_NOISE_K = 3.0
#: Between-rep CV from the MAD (True) or the standard deviation (False).
ROBUST_CV = True
#: samples.jsonl metrics tried, in order, as "the goodput" of a rep.
GOODPUT_METRICS = ("goodput_wire_mbps", "goodput_mbps", "goodput", "throughput_mbps",
                   "receiver_mbps")


def _mannwhitneyu_p(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value (scipy's); scipy.stats is imported here, on first use.

    Importing ``scipy.stats`` takes 1-3 s on the project machine; most users of this module
    (the overview notebook's :func:`pick_metric`, baselines) never test anything.
    """
    from scipy import stats

    return float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)


def min_p_value(n1: int, n2: int) -> float:
    """Smallest two-sided MWU p-value attainable with ``n1`` vs ``n2`` samples (no ties)."""
    if n1 < 1 or n2 < 1:
        return 1.0
    x = np.arange(n1, dtype=float)
    y = np.arange(n1, n1 + n2, dtype=float)
    return _mannwhitneyu_p(x, y)


@dataclass
class Comparison:
    """One workload's verdict and the numbers behind it."""

    key: str
    current: list[float]
    baseline: list[float]
    current_reps: int
    baseline_reps: int
    unit: str = "interval"
    current_median: float = math.nan
    baseline_median: float = math.nan
    change: float = math.nan  #: (current − baseline) / baseline, of the medians
    p_value: float = math.nan
    min_p: float = math.nan
    verdict: str = "no baseline"
    reason: str = ""
    alpha: float = DEFAULT_ALPHA
    floor: float = DEFAULT_FLOOR
    role: str = "ours"  #: ``ours`` or ``control`` (a reference peer: catalog ``baseline``)
    env_factor: float = 1.0  #: the current samples were divided by this (controls' shift)
    raw_current: list[float] = field(default_factory=list)  #: samples before that division
    raw_median: float = math.nan
    raw_change: float = math.nan  #: change of the medians before the control adjustment
    differences: list[str] = field(default_factory=list)  #: why not comparable
    definition_id: str = ""  #: the matched baseline entry

    @property
    def is_regression(self) -> bool:
        """True for a regression verdict."""
        return self.verdict == "regression"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return asdict(self)


def compare(current: Sequence[float], baseline: Sequence[float], *, key: str = "",
            current_reps: int = 0, baseline_reps: int = 0, unit: str = "interval",
            alpha: float = DEFAULT_ALPHA, floor: float = DEFAULT_FLOOR) -> Comparison:
    """The verdict for one workload (higher is better: goodput)."""
    cur = [float(v) for v in current if v is not None and math.isfinite(v)]
    base = [float(v) for v in baseline if v is not None and math.isfinite(v)]
    c = Comparison(key=key, current=cur, baseline=base, current_reps=current_reps,
                   baseline_reps=baseline_reps, unit=unit, alpha=alpha, floor=floor)
    if not cur:
        c.verdict, c.reason = "no data", "no samples in this run"
        return c
    c.current_median = float(np.median(cur))
    if not base:
        c.verdict, c.reason = "no baseline", "no baseline samples for this workload"
        return c
    c.baseline_median = float(np.median(base))
    c.min_p = min_p_value(len(cur), len(base))
    if c.baseline_median > 0:
        c.change = (c.current_median - c.baseline_median) / c.baseline_median
    if len(set(cur + base)) == 1:
        c.p_value = 1.0
    else:
        c.p_value = _mannwhitneyu_p(cur, base)
    significant = c.p_value <= alpha
    dropped = c.change <= -floor
    rose = c.change >= floor
    stat = f"p={c.p_value:.2g} (α={alpha:g}), median {c.change:+.1%} (floor {floor:.0%})"
    if significant and dropped:
        c.verdict, c.reason = "regression", stat
    elif significant and rose:
        c.verdict, c.reason = "ok (improved)", stat
    elif significant:
        c.verdict = "inconclusive, rerun"
        c.reason = f"significant but the median moved less than the floor: {stat}"
    elif dropped:
        c.verdict = "inconclusive, rerun"
        c.reason = f"median dropped but not significantly: {stat}"
        if c.min_p > alpha:
            c.reason += (f"; with {len(cur)} vs {len(base)} samples p cannot go below "
                         f"{c.min_p:.2g}: more reps needed")
    else:
        c.verdict, c.reason = "ok", stat
    return c


def pick_metric(samples: pd.DataFrame, preferred: str | None = None) -> str | None:
    """The goodput metric present in ``samples`` (``preferred`` first)."""
    names = set(samples["metric"].dropna().astype(str))
    for m in ((preferred,) if preferred else ()) + GOODPUT_METRICS:
        if m in names:
            return m
    cands = sorted(n for n in names if "goodput" in n)
    return cands[0] if cands else None


def run_samples(run_dir: str | Path, *, metric: str | None = None,
                intervals_per_rep: int = DEFAULT_INTERVALS, with_intervals: bool = True,
                ) -> dict[str, dict[str, Any]]:
    """Per workload (``<workload>/<client>__<server>``): per-rep goodput and slices.

    Returns:
        key → {"workload", "pair", "scenario", "unit" (Mbit/s), "metric", "definition"
        (:func:`~.baselines.definition`), "control" (a reference peer), "host" (or None),
        "reps": [{"run", "rep", "value", "ok", "intervals": [...] | None, "source"}]}
        (``source`` says where the slices came from, see :func:`~.sources.interval_samples`). Reps whose check
        failed are kept with ``ok: False`` and excluded from verdicts.
    """
    run = Path(run_dir)
    samples = load_samples(run)
    checks = load_checks(run)
    metric = pick_metric(samples, metric) if not samples.empty else metric
    ok = {(r.workload, r.pair, int(r.rep)): r.ok for r in checks.itertuples(index=False)}
    meta = run_definitions(run, metric=metric, intervals_per_rep=intervals_per_rep)
    out: dict[str, dict[str, Any]] = {}
    for rd in rep_dirs(run).itertuples(index=False):
        key = f"{rd.workload}/{rd.pair}"
        s = samples[(samples["workload"] == rd.workload) & (samples["pair"] == rd.pair)
                    & (samples["rep"] == rd.rep) & (samples["metric"] == metric)]
        value = float(s["value"].iloc[0]) if len(s) else math.nan
        unit = str(s["unit"].iloc[0]) if len(s) and s["unit"].iloc[0] else "Mbit/s"
        slices, source = None, ""
        if with_intervals and (len(s) or metric is None):
            try:
                slices, source = interval_samples(rd.path, intervals_per_rep)
            except (RuntimeError, ValueError, OSError) as exc:
                warnings.warn(f"{rd.path}: no interval samples: {exc}", stacklevel=2)
        if not len(s) and slices is None:
            continue  # not a goodput workload (e.g. fallback)
        m = meta.get(key, {})
        entry = out.setdefault(key, {"workload": rd.workload, "pair": rd.pair,
                                     "scenario": rd.scenario, "metric": metric, "unit": unit,
                                     "definition": m.get("definition", {}),
                                     "control": bool(m.get("control")), "host": m.get("host"),
                                     "reps": []})
        entry["reps"].append({"run": rd.run, "rep": int(rd.rep), "value": value,
                              "ok": ok.get((rd.workload, rd.pair, int(rd.rep))) is not False,
                              "intervals": None if slices is None else [float(x) for x in slices],
                              "source": source if slices is not None else ""})
    return out


def _values(entry: Mapping[str, Any], unit: str) -> tuple[list[float], int]:
    reps = [r for r in entry.get("reps", []) if r.get("ok", True)]
    if unit == "interval":
        vals = [v for r in reps for v in (r.get("intervals") or [])]
        return vals, sum(1 for r in reps if r.get("intervals"))
    vals = [r["value"] for r in reps if r.get("value") is not None]
    return [v for v in vals if math.isfinite(v)], len(vals)


def rep_cv(entry: Mapping[str, Any], robust: bool = ROBUST_CV) -> float:
    """Between-rep coefficient of variation of a workload's per-rep goodput (0 if < 2 reps).

    ``robust``: 1.4826 × MAD / median, so one slow rep in the baseline does not set the floor.
    """
    vals = [r["value"] for r in entry.get("reps", []) if r.get("ok", True)
            and isinstance(r.get("value"), (int, float)) and math.isfinite(r["value"])]
    if len(vals) < 2 or np.median(vals) <= 0:
        return 0.0
    if robust:
        med = float(np.median(vals))
        return float(1.4826 * np.median(np.abs(np.asarray(vals) - med)) / med)
    return float(np.std(vals, ddof=1) / np.mean(vals))


def workload_floor(baseline_entry: Mapping[str, Any], floor: float = DEFAULT_FLOOR,
                   noise_k: float = DEFAULT_NOISE_K) -> float:
    """The magnitude floor for one workload: ``max(floor, noise_k × between-rep CV)``.

    The slices of a rep carry no information about run-to-run variation, which for some
    workloads (ngtcp2, BBR, the relay) is ±10-25 % even on a seeded link; the baseline's own
    reps measure it.
    """
    return max(floor, noise_k * rep_cv(baseline_entry))


def _sources(entry: Mapping[str, Any]) -> set[str]:
    """Where the slices of a workload's reps came from (baselines before that: empty)."""
    return {str(r.get("source", "")).split(",")[0] for r in entry.get("reps", [])
            if r.get("intervals") and r.get("source")}


def _compare_entry(key: str, entry: Mapping[str, Any], b: Mapping[str, Any], *, alpha: float,
                   floor: float, noise_k: float, unit: str, scale: float = 1.0) -> Comparison:
    """One workload against its matched baseline entry; the current values are ÷ ``scale``."""
    w_floor = workload_floor(b, floor, noise_k)
    u = unit
    cur, n_cur = _values(entry, u)
    base, n_base = _values(b, u)
    src_cur, src_base = _sources(entry), _sources(b)
    if u == "interval" and (not cur or not base or (src_cur and src_base
                                                    and src_cur != src_base)):
        u = "rep"  # slices missing, or measured differently: compare per-rep values
        cur, n_cur = _values(entry, u)
        base, n_base = _values(b, u)
    c = compare([v / scale for v in cur], base, key=key, current_reps=n_cur,
                baseline_reps=n_base, unit=u, alpha=alpha, floor=w_floor)
    c.raw_current = cur
    c.raw_median = float(np.median(cur)) if cur else math.nan
    c.raw_change = (c.raw_median / c.baseline_median - 1 if cur and c.baseline_median > 0
                    else math.nan)
    return c


def environment_factor(controls: Sequence[Comparison]) -> tuple[float, list[str]]:
    """The environment's goodput factor now/baseline: geometric median of the controls' shifts.

    Each control's shift is its median now / median in the baseline; the factor is
    ``exp(median(log shifts))`` (robust to one noisy control). Returns ``(1.0, [])`` without
    usable controls, else the factor and the controls that entered it.
    """
    logs = [(c.key, math.log(1 + c.change)) for c in controls
            if math.isfinite(c.change) and c.change > -1]
    if not logs:
        return 1.0, []
    return float(math.exp(np.median([v for _, v in logs]))), [k for k, _ in logs]


def compare_run(current: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Any] | None,
                *, alpha: float = DEFAULT_ALPHA, floor: float = DEFAULT_FLOOR,
                noise_k: float = DEFAULT_NOISE_K, unit: str = "interval",
                host: Mapping[str, Any] | None = None, any_host: bool = False,
                use_controls: bool = True) -> list[Comparison]:
    """Verdicts for every workload of a run (see :func:`run_samples`) against a baseline.

    1. **Like with like**: each workload is matched to the baseline entry with the same
       measurement definition (and host class, unless ``any_host``); none → ``not comparable``
       naming the differing fields (:func:`~.baselines.match_entry`).
    2. **Controls** (``control``: the catalog's reference peers) are compared as they are:
       ``control moved`` when their median moved by at least their noise floor
       (:func:`workload_floor`: max of ``floor`` and ``noise_k`` × the baseline's between-rep
       CV), whatever p says (one rep of iperf3 cannot be significant), else ``control
       steady``. They never regress.
    3. **Ours** is judged relative to the controls (difference in differences on the log
       scale): the current samples are divided by the environment factor
       (:func:`environment_factor` of the comparable controls) before the usual rule
       (:func:`compare`); ``raw_change`` keeps the unadjusted change. Without comparable
       controls (or ``use_controls=False``) ours is judged unadjusted and the reason says so.

    ``host``: the host to judge a workload on when its manifests recorded none (the run's own
    recorded host always wins; None: not judged on host class).

    ``unit`` = ``interval`` (per-slice samples; falls back to per-rep values for a workload whose
    slices are missing on either side) or ``rep``. Each workload's floor is
    :func:`workload_floor` of its baseline entry (``noise_k = 0``: the fixed ``floor``).
    """
    doc = normalise(baseline, "baseline") if baseline else {"entries": []}
    entries = doc.get("entries", [])
    kw: dict[str, Any] = {"alpha": alpha, "floor": floor, "noise_k": noise_k, "unit": unit}
    matched: dict[str, Mapping[str, Any]] = {}
    out: dict[str, Comparison] = {}
    for key, entry in current.items():
        b, why = match_entry(entries, key, entry.get("definition") or {},
                             entry.get("host") or host, any_host=any_host)
        cur, n_cur = _values(entry, unit)
        role = "control" if entry.get("control") else "ours"
        if why:
            c = Comparison(key=key, current=cur, baseline=[], current_reps=n_cur,
                           baseline_reps=0, unit=unit, alpha=alpha, floor=floor,
                           verdict="not comparable", reason="; ".join(why))
            c.current_median = float(np.median(cur)) if cur else math.nan
            c.differences = list(why)
            if b is not None and not b.get("schema1"):
                c.reason = "measured differently from the baseline: " + c.reason
        elif not cur and not _values(entry, "rep")[0]:
            c = Comparison(key=key, current=[], baseline=[], current_reps=0, baseline_reps=0,
                           verdict="no data", reason="no samples in this run")
        else:
            matched[key] = b  # type: ignore[assignment]
            c = _compare_entry(key, entry, b, **kw)  # type: ignore[arg-type]
        c.role = role
        c.definition_id = str(b.get("id", "")) if b is not None and not why else ""
        out[key] = c
    controls = [c for c in out.values() if c.role == "control" and c.key in matched]
    for c in controls:  # beyond the noise floor (max of floor, k × between-rep CV) = moved
        moved = math.isfinite(c.change) and abs(c.change) >= c.floor
        c.verdict = "control moved" if moved else "control steady"
        c.reason = f"median {c.change:+.1%} (noise floor ±{c.floor:.0%}), p={c.p_value:.2g}"
    factor, used = environment_factor(controls) if use_controls else (1.0, [])
    for key, c in out.items():
        if c.role != "ours" or key not in matched:
            continue
        if used:
            c2 = _compare_entry(key, current[key], matched[key], **kw, scale=factor)
            c2.role, c2.definition_id, c2.env_factor = "ours", c.definition_id, factor
            c2.reason = (f"relative to {len(used)} control(s) (environment ×{factor:.3f}): "
                         f"{c2.reason}; unadjusted {c2.raw_change:+.1%}")
            out[key] = c2
        else:
            c.reason = "unadjusted (no comparable controls in this run): " + c.reason
    return list(out.values())


def host_description() -> dict[str, Any]:
    """Where a baseline was measured: hostname, kernel, CPU model and count, Python."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return {"hostname": socket.gethostname(), "kernel": platform.release(),
            "machine": platform.machine(), "cpu_model": cpu, "cpus": os.cpu_count(),
            "mem_total_kb": mem_kb, "python": platform.python_version()}


def make_baseline(run_dirs: str | Path | Iterable[str | Path], *, scenario: str | None = None,
                  metric: str | None = None, intervals_per_rep: int = DEFAULT_INTERVALS,
                  samples: Sequence[Mapping[str, Mapping[str, Any]]] | None = None,
                  note: str = "") -> dict[str, Any]:
    """A schema-2 baseline document from one or more runs (their reps are pooled per
    workload *and* measurement definition: a quick and a full run make two entries).

    ``samples`` may hold the :func:`run_samples` of each run, already computed.
    """
    runs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(r) for r in run_dirs]
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    scenarios: set[str] = set()
    here = host_description()
    for i, run in enumerate(runs):
        per_run = samples[i] if samples is not None else run_samples(
            run, metric=metric, intervals_per_rep=intervals_per_rep)
        for key, entry in per_run.items():
            if scenario is not None and entry["scenario"] != scenario:
                continue
            scenarios.add(entry["scenario"])
            defn = entry.get("definition") or {}
            host = entry.get("host") or here
            e = entries.setdefault((key, definition_id(defn)), {
                "key": key, "id": definition_id(defn), "definition": defn,
                "host_class": host_class(host), "host": host,
                "recorded": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "source_runs": [], "note": note, "control": bool(entry.get("control")),
                "workload": entry["workload"], "pair": entry["pair"],
                "metric": entry["metric"], "unit": entry["unit"], "reps": []})
            if run.name not in e["source_runs"]:
                e["source_runs"].append(run.name)
            e["reps"].extend(r for r in entry["reps"] if r["ok"])
    entries = {k: e for k, e in entries.items() if e["reps"]}
    if not entries:
        raise ValueError(f"no goodput samples in {', '.join(map(str, runs))}")
    if len(scenarios) > 1 and scenario is None:
        raise ValueError(f"runs hold several scenarios {sorted(scenarios)}: pick one")
    return {"schema": BASELINE_SCHEMA, "scenario": scenario or next(iter(scenarios)),
            "sampling": {"unit": "interval", "intervals_per_rep": intervals_per_rep,
                         "definition": "goodput of equal slices of the first-to-last payload "
                                       "packet interval at the client-side capture"},
            "source_runs": [r.name for r in runs],
            "entries": merge_entries([], entries.values())}


def update_baseline(path: str | Path, new: Mapping[str, Any]) -> dict[str, Any]:
    """``new`` merged into the baseline file at ``path`` (if any): entries with the same
    workload, definition and host class are replaced, the others kept (quick + full, hosts)."""
    p = Path(path)
    if not p.exists():
        return dict(new)
    old = load_baseline(p)
    entries = merge_entries(old.get("entries", []), new["entries"])
    return dict(new) | {"entries": entries, "source_runs": sorted(
        {r for e in entries for r in e.get("source_runs", [])})}


def baseline_path(scenario: str, root: str | Path | None = None) -> Path:
    """``results/baselines/<scenario>.json`` (under ``root``, default the repository)."""
    return Path(root or REPO_ROOT) / "results" / "baselines" / f"{scenario}.json"


def save_baseline(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Write a schema-2 baseline: one line per rep, values rounded to 4 decimals (small diffs)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    head = {k: v for k, v in doc.items() if k != "entries"}
    lines = [json.dumps(head, indent=1)[:-2] + ',\n "entries": [']
    items = list(doc.get("entries", []))
    for i, e in enumerate(items):
        meta = {k: v for k, v in e.items() if k != "reps"}
        lines.append(f"  {json.dumps(_rounded(meta))[:-1]}, \"reps\": [")
        reps = [json.dumps(_rounded(r)) for r in e.get("reps", [])]
        lines.append(",\n".join(f"   {r}" for r in reps))
        lines.append("  ]}" + ("," if i < len(items) - 1 else ""))
    lines.append(" ]\n}")
    p.write_text("\n".join(lines) + "\n")
    normalise(json.loads(p.read_text()), str(p))  # never leave a file that does not parse
    return p


def _rounded(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_rounded(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return round(float(v), 4) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v
