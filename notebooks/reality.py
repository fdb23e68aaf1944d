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
# # REALITY: verdicts, fallback flows, handshake timing
#
# * workloads that use REALITY (the REALITY client, the relay, and the fallback that must reach
#   the target's real page) and their checks;
# * the REALITY gate's decisions, logged by our server as `reality:verdict` qlog events;
# * handshake time per workload: from the wire (client's first Initial → its first 1-RTT
#   packet) and from the client's qlog.

# %%
import pandas as pd

from quicreality.analysis.views import RunView

run = RunView.open()
run

# %% [markdown]
# ## REALITY-related workloads and their checks

# %%
def is_reality(name: str) -> bool:
    return any(k in name for k in ("reality", "fallback", "relay"))


reality_workloads = [w for w in run.workloads if is_reality(w)]
checks = run.checks[run.checks["workload"].isin(reality_workloads)]
print(reality_workloads or "no REALITY workloads in this run")
checks[["workload", "pair", "rep", "ok", "reason"]]

# %% [markdown]
# ## Gate verdicts from the servers' qlogs

# %%
verdicts = []
for rep in run.all_reps():
    v = rep.reality_events  # the reality:* rows of rep.events, from a small derived table
    if len(v):
        for row in v.itertuples(index=False):
            verdicts.append({"workload": rep.workload, "rep": rep.rep, "vantage": row.vantage,
                             "time_s": row.time_s, "event": row.name, **(row.data or {})})
pd.DataFrame(verdicts) if verdicts else "no reality:* events in this run's qlogs"

# %% [markdown]
# ## Handshake timing per workload

# %%
s = run.samples
wire = s[s["metric"] == "handshake_ms"].pivot_table(index=["workload", "pair"], values="value",
                                                    aggfunc=["median", "min", "max", "count"])
wire

# %%
rows = []
for rep in run.all_reps():
    # metrics.handshake_qlog(rep.events) and .handshake_wire(rep.client_pcap), cached per rep
    for r in rep.handshake_qlog.itertuples(index=False):
        rows.append({"workload": rep.workload, "rep": rep.rep, "source": "qlog",
                     "producer": r.producer, "handshake_ms": r.handshake_s * 1000,
                     "handshake_done_ms": r.handshake_done_s * 1000})
    h = rep.handshake_wire
    if h is not None:
        rows.append({"workload": rep.workload, "rep": rep.rep, "source": "wire",
                     "producer": "", "handshake_ms": h["handshake_s"] * 1000,
                     "handshake_done_ms": h["handshake_done_s"] * 1000})
pd.DataFrame(rows).round(1) if rows else "no handshakes found"
