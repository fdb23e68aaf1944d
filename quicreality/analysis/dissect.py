"""Interactive packet-level dissection of a *small* decrypted capture with pyshark.

pyshark runs ``tshark -T pdml`` and builds Python objects per field: fine for a few dozen
packets in a notebook, far too slow for bulk analysis (use :mod:`.pcap` for that). Everything
here reads at most ``count`` packets and closes the tshark process.

>>> pkts = packets("captures/.../client.pcapng", count=20)
>>> pkts[3].quic            # the full dissection tree of one packet
>>> summary(pkts)           # one row per packet: time, src, QUIC packet type, frames
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["frame_names", "packets", "summary"]

_FRAME_TYPES = {0: "PADDING", 1: "PING", 2: "ACK", 3: "ACK_ECN", 6: "CRYPTO", 7: "NEW_TOKEN",
                16: "MAX_DATA", 17: "MAX_STREAM_DATA", 24: "NEW_CONNECTION_ID",
                25: "RETIRE_CONNECTION_ID", 28: "CONNECTION_CLOSE", 29: "CONNECTION_CLOSE_APP",
                30: "HANDSHAKE_DONE"}


def packets(pcap: str | Path, *, count: int = 20, display_filter: str = "quic",
            keylog: str | Path | None = None, decode_as: dict[str, str] | None = None,
            ) -> list[Any]:
    """The first ``count`` packets matching ``display_filter`` as pyshark packets.

    Args:
        pcap: A capture (a pcapng with injected secrets decrypts on its own).
        count: How many packets to dissect at most.
        display_filter: tshark display filter.
        keylog: NSS key log when the secrets are not injected.
        decode_as: pyshark ``decode_as`` mapping, e.g. ``{"udp.port==4433": "quic"}``.
    """
    import pyshark  # only here: the bulk loaders never need it

    prefs = {"tls.keylog_file": str(keylog)} if keylog else None

    def collect() -> list[Any]:
        # a fresh event loop in a worker thread: a Jupyter kernel's loop is already running
        # in the main thread, and pyshark drives tshark with run_until_complete
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        cap = pyshark.FileCapture(str(pcap), display_filter=display_filter, keep_packets=False,
                                  override_prefs=prefs, decode_as=decode_as, eventloop=loop)
        out: list[Any] = []
        try:
            for pkt in cap:
                out.append(pkt)
                if len(out) >= count:
                    break
        finally:
            cap.close()
            # let the subprocess transports finish closing before the loop goes away
            loop.run_until_complete(asyncio.sleep(0.05))
            gc.collect()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()
        return out

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(collect).result()


def frame_names(pkt: Any) -> list[str]:
    """QUIC frame type names of every QUIC layer of a pyshark packet, in order."""
    names: list[str] = []
    for layer in pkt.layers:
        if layer.layer_name != "quic":
            continue
        for field in layer._get_all_fields_with_alternates():
            if field.name == "quic.frame_type":
                try:
                    t = int(field.show)
                except (TypeError, ValueError):
                    continue
                names.append("STREAM" if 8 <= t <= 15 else _FRAME_TYPES.get(t, f"0x{t:02x}"))
    return names


def summary(pkts: list[Any]) -> pd.DataFrame:
    """One row per pyshark packet: number, time, src → dst, QUIC packet types and frames."""
    rows = []
    for p in pkts:
        quic = [lay for lay in p.layers if lay.layer_name == "quic"]
        types = []
        for q in quic:
            form = getattr(q, "header_form", None)
            if str(form) in ("0", "False"):
                types.append("1RTT")
            else:
                lt = str(getattr(q, "long_packet_type", "?"))
                types.append({"0": "initial", "1": "0RTT", "2": "handshake",
                              "3": "retry"}.get(lt, lt))
        rows.append({"no": int(p.number), "time_s": float(p.frame_info.time_relative),
                     "src": f"{p.ip.src}:{p[p.transport_layer].srcport}",
                     "dst": f"{p.ip.dst}:{p[p.transport_layer].dstport}",
                     "length": int(p.length), "quic_packets": "+".join(types),
                     "frames": ", ".join(frame_names(p))})
    return pd.DataFrame(rows)
