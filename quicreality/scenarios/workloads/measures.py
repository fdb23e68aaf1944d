"""Measurements several workload kinds take: RTT and loss from the qlogs, link loss from the
two captures, the endpoints' CPU time.

Each returns ``(metrics, details)``: tidy :data:`~.context.Metric` rows for ``samples.jsonl`` and
the evidence behind them for ``check.json``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ..qlogsum import QlogSummary, summarise_qlog
from ..topology import ADDRESSES
from ..wire import packets_by_source
from .context import Metric

__all__ = ["cpu_metrics", "link_loss_metrics", "qlog_metrics"]


def _qlogs(d: Path) -> list[QlogSummary]:
    out = []
    for role in ("client", "server"):  # qlog/<role>/: the runner knows who wrote it
        for f in sorted((d / role).glob("*")) if (d / role).is_dir() else ():
            if f.is_file() and f.suffix in (".qlog", ".sqlog"):
                with contextlib.suppress(Exception):
                    out.append(summarise_qlog(f, role))
    return out


def _pick(summaries: list[QlogSummary], vantage: str) -> QlogSummary | None:
    """The summary of ``vantage`` with the most packets (the data connection)."""
    cands = [s for s in summaries if s.vantage == vantage]
    return max(cands, key=lambda s: s.packets_sent + s.packets_received) if cands else None


def qlog_metrics(rep_dir: Path, sender: str) -> tuple[list[Metric], dict[str, Any]]:
    """RTT and loss numbers from the qlogs; the data sender's view is preferred."""
    sums = _qlogs(rep_dir / "qlog")
    other = "client" if sender == "server" else "server"
    snd, rcv = _pick(sums, sender), _pick(sums, other)
    m: list[Metric] = []
    rtt_src = snd if snd is not None and snd.rtt_median_ms is not None else rcv
    if rtt_src is not None and rtt_src.rtt_median_ms is not None:
        m.append(("rtt_median_ms", rtt_src.rtt_median_ms, "ms", "qlog"))
    if rtt_src is not None and rtt_src.min_rtt_ms is not None:
        m.append(("rtt_min_ms", float(rtt_src.min_rtt_ms), "ms", "qlog"))
    if snd is not None:
        m.append(("packets_lost", float(snd.packets_lost), "packets", "qlog"))
        if snd.packets_spurious is not None:
            m.append(("packets_spurious", float(snd.packets_spurious), "packets", "qlog"))
        m.append(("packets_sent", float(snd.packets_sent), "packets", "qlog"))
    details = {"qlog_files": [s.to_dict() for s in sums],
               "rtt_from": rtt_src.vantage if rtt_src is not None else None}
    return m, details


def link_loss_metrics(rep_dir: Path, flow: str, capture_counts: dict[str, dict[str, int | None]]
                      ) -> tuple[list[Metric], dict[str, Any]]:
    """Packets of the workload's ``flow`` (a display filter such as ``udp.port == 443``) that
    entered the impaired link on one side and did not come out on the other.

    Counting is only right if neither tcpdump dropped packets: otherwise no metric is
    emitted (the emulator's own drop counters are always recorded by the runner).
    """
    dropped = {h: (c or {}).get("dropped_by_kernel") for h, c in capture_counts.items()}
    if any(dropped.values()):
        return [], {"flow": flow, "skipped": f"tcpdump dropped packets {dropped}: capture "
                                             "counts would misstate the link's losses"}
    c, s = ADDRESSES["client"], ADDRESSES["server"]
    at_client = packets_by_source(str(rep_dir / "client.pcap"), (c, s), flow)
    at_server = packets_by_source(str(rep_dir / "server.pcap"), (c, s), flow)
    lost_tc = at_server[s] - at_client[s]
    lost_ts = at_client[c] - at_server[c]
    m: list[Metric] = [("link_lost_to_client", float(lost_tc), "packets", "wire"),
                       ("link_lost_to_server", float(lost_ts), "packets", "wire")]
    return m, {"flow": flow, "packets_at_client_side": at_client,
               "packets_at_server_side": at_server}


def cpu_metrics(cpu_s: dict[str, float | None], payload_bytes: int) -> list[Metric]:
    """``cpu_<role>_s`` (user + system seconds of each endpoint process, from ``/proc``) and
    ``cpu_<role>_s_per_mb`` (per 10^6 payload bytes); a role whose CPU was not read is left out.

    The link emulator and the captures share the machine's cores with the endpoints, so an
    endpoint's CPU per byte tells how much of the emulator's time it can take (issue 13's
    late releases).
    """
    m: list[Metric] = []
    for role, value in cpu_s.items():
        if value is None:
            continue
        m.append((f"cpu_{role}_s", value, "s", "runner"))
        if payload_bytes > 0:
            m.append((f"cpu_{role}_s_per_mb", value / (payload_bytes / 1e6), "s/MB", "runner"))
    return m
