# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Regression check against a baseline
#
# The same computation as `python -m quicreality.scenarios report RUN_DIR` (see
# `docs/analysis.md`, "Regression verdicts"):
#
# 1. **Like with like.** Each workload is matched to the baseline entry measured the same way:
#    workload parameters, link, quick or full, peer versions, and the host class (CPU model and
#    count) the run's manifests recorded. Anything else is **not comparable**, with the differing
#    fields named, never a regression.
# 2. **Controls.** The catalog's `baseline = true` workloads (quic-go, ngtcp2, TCP: nothing of
#    ours) are measured on the same link in the same run. When they moved beyond their noise floor,
#    the environment moved: the verdict is **environment changed** and CI does not fail for it.
# 3. **Ours, relative to the controls.** Our samples are divided by the environment factor (the
#    geometric median of the controls' shifts), then the per-slice goodput is compared with the
#    baseline's slices by a two-sided Mann-Whitney U test: **regression** needs p ≤ 0.01 *and* a
#    median drop of at least the workload's floor; one of the two alone is **inconclusive, rerun**.

# %%
import pandas as pd

from quicreality.analysis import plots, regression
from quicreality.analysis.views import RunView

run = RunView.open()
current = regression.run_samples(run.path)
scenario = next(iter(current.values()))["scenario"] if current else None
path = regression.baseline_path(scenario) if scenario else None
if path is not None and path.exists():
    baseline = regression.load_baseline(path)
    print(f"baseline: {path} ({len(baseline.get('entries', []))} entries, runs "
          f"{', '.join(baseline.get('source_runs', []))})")
else:
    baseline = regression.make_baseline(run.path, samples=[current])  # demo: run vs itself
    print("no committed baseline for this scenario: comparing the run with itself")

# %%
COLUMNS = ["key", "role", "verdict", "current_median", "baseline_median", "change", "raw_change",
           "env_factor", "p_value", "reason"]
comps = regression.compare_run(current, baseline)
pd.DataFrame([{k: c.to_dict()[k] for k in COLUMNS} for c in comps])

# %%
ax = plots.comparison_plot({c.key: c.current for c in comps},
                           {c.key: c.baseline for c in comps},
                           verdicts={c.key: c.verdict for c in comps})

# %% [markdown]
# ## The three cases the report must tell apart
#
# The run against a baseline made from itself, scaled: every workload 30 % faster in the
# baseline (the machine got slower: **environment changed**, ours is judged relative to the
# controls and is fine), and only our workloads 2× faster in the baseline (a real **regression**
# of ours, with the controls steady).

# %%
own = regression.make_baseline(run.path, samples=[current])


def scaled(doc, factor_of):
    out = {**doc, "entries": []}
    for e in doc["entries"]:
        f = factor_of(e)
        out["entries"].append({**e, "reps": [
            {**r, "value": r["value"] * f, "intervals": [x * f for x in (r["intervals"] or [])]}
            for r in e["reps"]]})
    return out


cases = {"same": own,
         "all 30 % faster": scaled(own, lambda e: 1.3),
         "ours 2x faster": scaled(own, lambda e: 1.0 if e.get("control") else 2.0)}
rows = []
for name, doc in cases.items():
    for c in regression.compare_run(current, doc):
        rows.append({"baseline": name, "key": c.key, "role": c.role, "verdict": c.verdict,
                     "change": c.change, "env_factor": c.env_factor})
table = pd.DataFrame(rows)
table.pivot_table(index=["key", "role"], columns="baseline", values="verdict", aggfunc="first")

# %% [markdown]
# ## How low can p go? (exact two-sided MWU, no ties)

# %%
pd.DataFrame([{"n_current": a, "n_baseline": b, "min_p": regression.min_p_value(a, b)}
              for a, b in [(1, 3), (3, 3), (5, 5), (2, 6), (10, 10), (10, 30), (30, 30)]])
