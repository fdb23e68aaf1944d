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
# # Censorship: who gets through the censor lab, why, how fast, and what the prober learns
#
# Reads one run of the `censor-gfw` scenario (`python -m quicreality.scenarios run censor-gfw`;
# set `QR_RUN_DIR` to its run directory, otherwise the newest run under `results/runs/` is
# used). The censor (docs/scenarios.md, "The censor") is `gfw-2025` (the GFW's QUIC SNI censor
# as measured by Zohaib et al., USENIX Security 2025), a `fingerprint` rule against a 32-byte
# session_id in a QUIC hello, and an `active-probe` prober for flows to the REALITY name.
# Findings and the commands behind every number: docs/findings.md.

# %%
import pandas as pd

from quicreality.analysis import censorship
from quicreality.analysis.views import RunView

pd.set_option("display.max_colwidth", 120)
pd.set_option("display.width", 200)
run = RunView.open()
run

# %% [markdown]
# ## Per client configuration: blocked or not, by whom, how fast
#
# `time_to_block_ms` is from the flow's first packet to the decision (the censor's clock);
# `on_packet` is the client packet that decided. `probe_verdicts` is what the active prober
# concluded about the server that flow went to.

# %%
censorship.summary(run)

# %% [markdown]
# ## Every repetition, with the censor's reason in words

# %%
censorship.outcomes(run)

# %% [markdown]
# ## What the prober learns: each probe class, the server's answer and the target's
#
# `server` is the suspected server (our listener, or our plain server), `target` the real site
# for the same SNI (quic-go in the target namespace). Answer shapes: packet type; for a server
# Initial the SCID length and the ServerHello's cipher suite, key share group and extension
# order (readable by anyone: Initial keys are public); `encrypted` for Handshake / 1-RTT.

# %%
p = censorship.probes(run)
p

# %% [markdown]
# Probe classes whose answers differed, per workload (a REALITY listener must have none):

# %%
p[~p["same"].astype(bool)].groupby(["workload", "probe"]).size()

# %% [markdown]
# ## How each client's first flight differs from Chromium 156's
#
# The fingerprint tool (`python -m quicreality.analysis.fingerprint --compare
# docs/data/chrome156-hello.json <rep>/client.pcap --side client`) on each workload's first
# repetition; random fields (CIDs, GREASE values, permuted orders) are ignored. The reference
# profile was captured with SNI `localhost`, so `tls.server_name` and the lengths that follow
# from it differ for every client here, Chromium included.

# %%
censorship.first_flights(run)
