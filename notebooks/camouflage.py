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
# # Camouflage: our REALITY flows, Chromium, curl and quic-go side by side
#
# The committed captures in `tests/data/fingerprint/` (real handshakes on a loopback namespace,
# see its README) read by the fingerprint tool (`python -m quicreality.analysis.fingerprint`,
# docs/camouflage.md). The reference is Chromium 156's profile from 24 connections,
# `docs/data/chrome156-hello.json`.

# %%
import pandas as pd

from quicreality.analysis.fingerprint_views import (
    chromium_reference,
    diff_table,
    fixture_flows,
    profile_of,
    server_flights,
    side_by_side,
    timeline,
)

pd.set_option("display.max_colwidth", 200)
pd.set_option("display.max_rows", 200)
flows = fixture_flows()
profiles = {name: profile_of(fps, label=name) for name, fps in flows.items()}
reference = chromium_reference()
{name: len(fps) for name, fps in flows.items()}

# %% [markdown]
# ## How many client features differ from Chromium's (random fields ignored)
#
# Chromium's own captures must show 0, and so must our REALITY client with its default (chrome
# hello, ech carrier: `ours-reality`); the minimal hellos (plain and REALITY), curl and quic-go
# show how far each is from a browser.

# %%
diff_table(reference, profiles)

# %% [markdown]
# ## The client features side by side (only the rows where the clients differ)

# %%
columns = ["chromium-ours", "ours-reality", "ours-reality-minimal", "ours-plain", "curl-ours",
           "quicgo-ours"]
side_by_side({"chrome156 (24)": reference, **{c: profiles[c] for c in columns}},
             only_differing=True)

# %% [markdown]
# ## The first datagrams of one flow each: Chromium's two 1250-byte Initials, ours (the chrome
# default: two as well) and our minimal hello's one

# %%
timeline(flows["chromium-ngtcp2"][0])

# %%
timeline(flows["ours-reality"][0])

# %%
timeline(flows["ours-reality-minimal"][0])

# %% [markdown]
# ## The server's first flight: ngtcp2 answering Chromium vs our accepted REALITY connection
#
# Datagrams the server sent before the client's first 1-RTT packet (UDP payload bytes).

# %%
server_flights({k: flows[k] for k in ("chromium-ngtcp2", "ours-reality", "ours-reality-minimal",
                                      "chromium-ours")})

# %%
side_by_side({k: profiles[k] for k in ("chromium-ngtcp2", "ours-reality")},
             prefixes=("server.flight", "server.tls", "server.quic.scid"), only_differing=True)
