"""``iperf3 -J`` output → per-interval table and a summary.

iperf3 reports every interval (``-i``) per stream and summed; with ``-R`` the local side is the
receiver and the interval rows carry ``sender: false``. TCP sender rows add ``retransmits``,
``snd_cwnd`` and ``rtt`` (µs); UDP rows add ``jitter_ms``, ``lost_packets`` and ``packets``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Iperf3Result", "load_iperf3", "parse_iperf3"]

_STREAM_KEYS = ("start", "end", "seconds", "bytes", "bits_per_second", "retransmits", "snd_cwnd",
                "snd_wnd", "rtt", "rttvar", "pmtu", "jitter_ms", "lost_packets", "packets",
                "lost_percent", "omitted", "sender")


class Iperf3Result:
    """A parsed iperf3 JSON document.

    Attributes:
        intervals: One row per interval (``stream`` = socket, or ``"sum"`` for the sum rows);
            ``mbps`` = bits_per_second / 1e6; ``rtt_ms`` from the sender's ``rtt`` (µs).
        summary: ``protocol``, ``reverse``, ``duration_s``, ``sent_mbps``, ``received_mbps``,
            ``retransmits``, ``sender_cc``, ``receiver_cc``, ``error``.
        raw: The JSON document.
    """

    def __init__(self, intervals: pd.DataFrame, summary: dict[str, Any], raw: dict[str, Any]
                 ) -> None:
        self.intervals = intervals
        self.summary = summary
        self.raw = raw

    def __repr__(self) -> str:
        return f"Iperf3Result({self.summary!r}, {len(self.intervals)} interval rows)"


def parse_iperf3(doc: dict[str, Any]) -> Iperf3Result:
    """Parse an already-loaded iperf3 JSON document."""
    rows = []
    for iv in doc.get("intervals", []):
        for st in iv.get("streams", []):
            rows.append({"stream": str(st.get("socket", "?")),
                         **{k: st.get(k) for k in _STREAM_KEYS}})
        if "sum" in iv:
            rows.append({"stream": "sum", **{k: iv["sum"].get(k) for k in _STREAM_KEYS}})
    cols = ["stream", *_STREAM_KEYS]
    df = pd.DataFrame(rows, columns=cols)
    for c in _STREAM_KEYS:
        if c not in ("omitted", "sender"):
            df[c] = pd.to_numeric(df[c], errors="coerce")
    df["mbps"] = df["bits_per_second"] / 1e6
    df["rtt_ms"] = df["rtt"] / 1000.0
    start = doc.get("start", {})
    end = doc.get("end", {})
    test = start.get("test_start", {})
    sent = end.get("sum_sent") or end.get("sum") or {}
    recv = end.get("sum_received") or end.get("sum") or {}
    summary = {
        "protocol": test.get("protocol"),
        "reverse": bool(test.get("reverse", 0)),
        "duration_s": test.get("duration"),
        "sent_mbps": (sent.get("bits_per_second") or 0) / 1e6 if sent else None,
        "received_mbps": (recv.get("bits_per_second") or 0) / 1e6 if recv else None,
        "bytes_received": recv.get("bytes"),
        "retransmits": sent.get("retransmits"),
        "sender_cc": end.get("sender_tcp_congestion"),
        "receiver_cc": end.get("receiver_tcp_congestion"),
        "error": doc.get("error"),
    }
    return Iperf3Result(df, summary, doc)


def load_iperf3(path: str | Path) -> Iperf3Result:
    """Parse the ``iperf3 -J`` output saved in ``path``.

    Tolerates text before the JSON document (some wrappers log a line first).
    """
    text = Path(path).read_text(errors="replace")
    start = text.find("{")
    if start < 0:
        raise ValueError(f"{path}: no JSON object")
    doc, _ = json.JSONDecoder().raw_decode(text[start:])
    return parse_iperf3(doc)
