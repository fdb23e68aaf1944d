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
# The same computation as `python -m quicreality.scenarios report RUN_DIR`: per workload the
# goodput of 10 equal slices of every rep's transfer is compared with the baseline's slices by
# a two-sided Mann-Whitney U test; **regression** needs p ≤ 0.01 *and* a median drop of at
# least the floor; one of the two alone is **inconclusive, rerun**. See `docs/analysis.md` for
# why slices (not reps), their dependence, and the measured false-alarm rate.

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
    print(f"baseline: {path} ({', '.join(baseline['source_runs'])})")
else:
    baseline = regression.make_baseline(run.path, samples=[current])  # demo: run vs itself
    print("no committed baseline for this scenario: comparing the run with itself")

# %%
comps = regression.compare_run(current, baseline)
pd.DataFrame([{k: v for k, v in c.to_dict().items() if k not in ("current", "baseline")}
              for c in comps])

# %%
ax = plots.comparison_plot({c.key: c.current for c in comps},
                           {c.key: c.baseline for c in comps},
                           verdicts={c.key: c.verdict for c in comps})

# %% [markdown]
# ## What an injected 50 % drop looks like

# %%
halved = {k: {**e, "reps": [{**r, "value": r["value"] / 2,
                             "intervals": [x / 2 for x in (r["intervals"] or [])]}
                            for r in e["reps"]]} for k, e in current.items()}
pd.DataFrame([{"workload": c.key, "p": c.p_value, "change": c.change, "verdict": c.verdict}
              for c in regression.compare_run(halved, baseline)])

# %% [markdown]
# ## How low can p go? (exact two-sided MWU, no ties)

# %%
pd.DataFrame([{"n_current": a, "n_baseline": b, "min_p": regression.min_p_value(a, b)}
              for a, b in [(1, 3), (3, 3), (5, 5), (2, 6), (10, 10), (10, 30), (30, 30)]])
