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
# # Throughput over time
#
# Goodput = application bytes the client saw for the first time (retransmitted or duplicated
# ranges count once), binned in time. Source: the decrypted client-side capture when the rep
# kept one, else the client's qlog. iperf3 workloads show iperf3's own intervals.

# %%
from quicreality.analysis import plots
from quicreality.analysis.views import RunView

run = RunView.open()
INTERVAL_S = 0.25
run

# %% [markdown]
# ## Goodput timeline of every rep, per workload

# %%
for workload in run.workloads:
    series = {}
    for rep in run.all_reps(workload):
        tl = rep.goodput(INTERVAL_S)
        if len(tl):
            series[f"{rep.pair} rep {rep.rep}"] = tl
    if series:
        plots.goodput_plot(series, title=f"{workload}: goodput ({INTERVAL_S:g} s bins)")

# %% [markdown]
# ## Overall goodput (wire, quic-interop-runner definition) and what the peer reported

# %%
s = run.samples
s[s["metric"].str.contains("goodput")].pivot_table(
    index=["workload", "pair", "rep"], columns="metric", values="value").round(2)

# %% [markdown]
# ## iperf3 intervals (workloads that ran iperf3)

# %%
rows = []
for rep in run.all_reps():
    res = rep.iperf3
    if res is not None:
        iv = res.intervals[res.intervals["stream"] == "sum"]
        rows.append((rep, iv))
        print(rep.workload, rep.pair, rep.rep, res.summary)
if rows:
    ax = plots.new_axes()
    for rep, iv in rows:
        ax.step(iv["end"], iv["mbps"], where="pre", label=f"{rep.workload} rep {rep.rep}")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("Mbit/s")
    ax.legend(fontsize="small")
else:
    print("no iperf3 output in this run")
