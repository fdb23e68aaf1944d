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

# %%

# %% [markdown]
# # Sweeps: goodput against loss and RTT, per stack
#
# Reads the results store (`python -m quicreality.analysis.store build`, see
# `docs/scale-out.md`): one row per sample of every run, with the sweep point's configured link
# (`link_loss`, `rtt_ms`, `link_rate_mbit`). Set `QR_RESULTS` to another results root and
# `QR_SWEEP` to pick a sweep (default: the newest in the store). Record one with
# `python -m quicreality.scenarios run loss-sweep [--quick] [--executor dask]`. Without any sweep
# the notebook shows one ordinary run (`QR_RUN_DIR`) as a single point.
#
# The dashed line is the Mathis et al. (1997) bound of a Reno-style TCP flow,
# goodput ≤ (MSS / RTT) · √(3/2) / √p with MSS = 1448 bytes, capped at the link rate: a
# reference for how loss-based congestion control scales, not a target.

# %%
from quicreality.analysis import sweeps

src = sweeps.open_sweep()
print("store:", src.results, "| sweep:", src.sweep or "none (a single run)")

# %%
points = sweeps.sweep_points(src)
points

# %%
fig = sweeps.sweep_plot(points)

# %% [markdown]
# ## Where each point ran
#
# Hosts and executors of the samples above (a sweep fanned out over Dask workers records the
# worker of every unit).

# %%
sweeps.where_ran(src)

# %%
src.close()  # removes the temporary store of the single-run fallback (a no-op otherwise)
