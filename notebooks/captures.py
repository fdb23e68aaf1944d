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
# # Packet-level dissection of a small decrypted capture (pyshark)
#
# For looking at individual packets interactively. pyshark runs tshark's PDML output and is
# far too slow for whole captures — the bulk loader (`quicreality.analysis.pcap.load_pcap`,
# `tshark -T fields`) is what the other notebooks use. The capture is the client-side pcapng
# with the TLS secrets injected (`editcap --inject-secrets`), so it decrypts on its own.

# %%
from quicreality.analysis import dissect
from quicreality.analysis.views import RunView

run = RunView.open()
rep = run.rep()  # a rep that kept its captures
pcap = rep.files.client_capture
print(pcap)

# %% [markdown]
# ## The first packets: handshake, then data

# %%
pkts = dissect.packets(pcap, count=25, keylog=rep.files.keylog if pcap.suffix == ".pcap" else None)
dissect.summary(pkts)

# %% [markdown]
# ## One packet's full QUIC dissection (the client's first coalesced Initial + Handshake + 1-RTT)

# %%
coalesced = next((p for p in pkts if len([lay for lay in p.layers if lay.layer_name == "quic"]) > 1),
                 pkts[0])
for layer in coalesced.layers:
    if layer.layer_name == "quic":
        print(layer)

# %% [markdown]
# ## The same packets from the bulk loader (frames re-assembled per QUIC packet)

# %%
tables = rep.client_pcap
tables.frames[tables.frames["frame_no"] <= 25][
    ["frame_no", "quic_index", "direction", "packet_type", "packet_number", "frame_type",
     "stream_id", "offset", "length", "ack_ranges"]]
