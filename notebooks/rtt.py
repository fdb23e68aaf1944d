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
# # RTT
#
# RTT samples come from the endpoints' qlogs (`recovery:metrics_updated`, every flavour
# normalised); the one-way delay through the emulated link comes from matching datagrams
# between the client-side and the server-side capture.

# %%
from quicreality.analysis import plots
from quicreality.analysis.views import RunView

run = RunView.open()
run

# %% [markdown]
# ## RTT CDF per workload (data sender's view: the server)

# %%
cdfs = {}
for workload in run.workloads:
    vals = []
    for rep in run.all_reps(workload):
        r = rep.rtt
        if len(r):
            side = r[r["vantage"] == "server"]
            vals += list((side if len(side) else r)["latest_rtt_ms"])
    if vals:
        cdfs[workload] = vals
ax = plots.rtt_cdf_plot(cdfs, title="latest_rtt, all reps")

# %% [markdown]
# ## RTT over time, one rep

# %%
rep = run.rep()
rtt = rep.rtt
print(rep.path)
for vantage in sorted(rtt["vantage"].unique()) if len(rtt) else []:
    plots.rtt_timeline_plot(rtt[rtt["vantage"] == vantage], time_col="conn_time_s",
                            title=f"{rep.workload} rep {rep.rep}: RTT at the {vantage}")

# %% [markdown]
# ## One-way delay through the link (both captures)

# %%
if rep.has_both_captures:
    summary, per_packet = rep.link_loss("to_client")
    print(summary)
    ax = plots.new_axes()
    ok = per_packet[per_packet["delivered"]]
    ax.plot(ok["time_s"], ok["owd_ms"], ".", ms=2)
    ax.set_xlabel("time since the server's first datagram [s]")
    ax.set_ylabel("one-way delay server → client [ms]")
    ax.set_title("queueing shows up as delay above the configured one-way delay")
else:
    print("this rep has no pair of captures")
