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
# # Losses and retransmissions
#
# * qlog: packets the sender declared lost, and packets that repeated STREAM bytes it had sent;
# * pcap: retransmitted STREAM ranges at the server-side capture, **spurious** when a packet
#   that carried the range earlier had been acknowledged;
# * the link itself: datagrams that entered it (sender-side capture) and never came out
#   (receiver-side capture).

# %%
import pandas as pd

from quicreality.analysis import plots
from quicreality.analysis.views import RunView

run = RunView.open()
run

# %% [markdown]
# ## Per rep, from the qlogs

# %%
tables = []
for rep in run.all_reps():
    t = rep.loss_summary.copy()  # metrics.loss_summary(rep.events), from a small derived table
    if len(t):
        t.insert(0, "rep", rep.rep)
        t.insert(0, "pair", rep.pair)
        t.insert(0, "workload", rep.workload)
        tables.append(t.drop(columns=["file"]))
pd.concat(tables, ignore_index=True) if tables else "no qlogs in this run"

# %% [markdown]
# ## Retransmitted ranges in one rep's capture

# %%
rep = run.rep()
retx = rep.retransmissions()
print(rep.path)
print(f"{len(retx)} retransmitted STREAM frames, {int(retx['retx_bytes'].sum())} bytes, "
      f"{int(retx['spurious'].fillna(False).astype(bool).sum())} spurious")
retx.head(20)

# %% [markdown]
# ## cwnd / bytes in flight at the sender, with loss and retransmit markers

# %%
m = rep.metrics
srv = m[m["vantage"] == "server"] if len(m) else m
ax = plots.cwnd_plot(srv, time_col="conn_time_s" if len(srv) else "time_s",
                     title=f"{rep.workload} rep {rep.rep}: server")
pk = rep.qlog_packets
lost = pk[(pk["event"] == "lost") & (pk["vantage"] == "server")] if len(pk) else pk
plots.loss_markers(ax, lost=list(lost["conn_time_s"]) if len(lost) else [])

# %% [markdown]
# ## Loss at the bottleneck (client-side vs server-side capture)

# %%
if rep.has_both_captures:
    for direction in ("to_client", "to_server"):
        summary, _ = rep.link_loss(direction)
        print(direction, {k: round(v, 3) for k, v in summary.items()})
else:
    print("this rep has no pair of captures")
