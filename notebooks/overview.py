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
# # Overview of a run
#
# Which run: `$QR_RUN_DIR` if set, else the newest folder in `results/runs/`, else the small
# committed sample in `captures/`. Everything below comes from `quicreality.analysis`; this
# notebook holds no parsing code.

# %%
from quicreality.analysis import plots
from quicreality.analysis.views import RunView

run = RunView.open()  # or RunView.open("results/runs/<UTC time>-<git sha>")
run

# %% [markdown]
# ## Reps and checks

# %%
checks = run.checks
print(f"{int(checks['ok'].fillna(False).astype(bool).sum())} of {len(checks)} reps passed")
checks[["workload", "pair", "rep", "ok", "reason"]]

# %% [markdown]
# ## Where and how it ran (manifests)

# %%
run.manifests[["workload", "pair", "rep", "git_sha", "git_dirty", "seed", "backend", "kernel"]]

# %% [markdown]
# ## Key numbers per workload (median over reps)

# %%
key_metrics = ["goodput", "goodput_wire_mbps", "handshake_ms", "rtt_median_ms", "packets_lost",
               "transfer_time"]
summary = run.summary()
table = summary[summary["metric"].isin(key_metrics)].pivot_table(
    index=["workload", "pair"], columns="metric", values="median")
table.round(2)

# %% [markdown]
# ## Goodput per workload (one point per rep)

# %%
ax = plots.comparison_plot(run.goodput_values(), title="Goodput per workload (wire)")
