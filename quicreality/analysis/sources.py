"""What is in a rep folder, and the per-slice goodput samples the regression verdict uses.

The runner writes the client-side and server-side captures of the impaired link, the merged
key log, the client-side pcapng with the keys injected, qlogs, and peer output
(``iperf3 -J``) into each ``rep-<n>/`` folder. :func:`rep_files` finds them by name
(``*client*.pcapng`` ...) so small naming changes do not break the analysis;
:func:`interval_goodput` picks the best source for goodput slices:

1. the decrypted client-side QUIC capture (first-seen STREAM bytes sent by the server);
2. a TCP capture (first-seen sequence bytes of the dominant sender: iperf3 workloads);
3. the ``iperf3 -J`` interval sums;
4. the client's qlog (STREAM frames it received).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .iperf3 import load_iperf3
from .metrics import goodput_timeline, new_bytes, qlog_received_stream
from .pcap import load_pcap
from .qlog import find_qlogs, load_qlogs

__all__ = ["RepFiles", "interval_goodput", "rep_files", "tcp_payload"]


@dataclass
class RepFiles:
    """Files of one rep folder (``None`` / empty when absent)."""

    path: Path
    client_pcapng: Path | None = None  #: client side, keys injected
    client_pcap: Path | None = None
    server_pcap: Path | None = None
    keylog: Path | None = None
    qlogs: list[Path] = field(default_factory=list)
    iperf3: list[Path] = field(default_factory=list)

    @property
    def client_capture(self) -> Path | None:
        """The best client-side capture (decryptable pcapng first)."""
        return self.client_pcapng or self.client_pcap


def _first(paths: list[Path], *needles: str) -> Path | None:
    for needle in needles:
        for p in paths:
            if needle in p.name.lower():
                return p
    return None


def rep_files(rep_dir: str | Path) -> RepFiles:
    """Find the captures, key log, qlogs and iperf3 outputs in ``rep_dir`` (recursively)."""
    d = Path(rep_dir)
    files = sorted(p for p in d.rglob("*") if p.is_file())
    pcapngs = [p for p in files if p.suffix == ".pcapng"]
    pcaps = [p for p in files if p.suffix == ".pcap"]
    rf = RepFiles(path=d)
    rf.client_pcapng = _first(pcapngs, "client", "decrypt", "inject") or (
        pcapngs[0] if len(pcapngs) == 1 else None)
    rf.client_pcap = _first(pcaps, "client")
    rf.server_pcap = _first(pcaps, "server")
    logs = [p for p in files if p.suffix in (".log", ".txt", ".keys")]
    rf.keylog = _first(logs, "keylog", "keys", "sslkey", "secrets")
    rf.qlogs = [p for p in find_qlogs(d) if p.suffix in (".sqlog", ".qlog")]
    for p in files:
        if p.suffix == ".json" and "iperf" in p.name.lower():
            rf.iperf3.append(p)
        elif p.suffix in (".json", ".out", ".stdout") and p.stat().st_size < 5_000_000:
            try:
                head = p.read_text(errors="replace")[:4000]
            except OSError:
                continue
            is_iperf = '"intervals"' in head or ('"start"' in head and '"connecting_to"' in head)
            if is_iperf and p not in rf.iperf3:
                rf.iperf3.append(p)
    return rf


def tcp_payload(pcap: str | Path, timeout: float = 300.0) -> pd.DataFrame:
    """TCP segments with payload: time_s, src, sport, stream, seq (relative), length."""
    argv = ["tshark", "-r", str(pcap), "-n", "-Y", "tcp.len > 0", "-T", "fields",
            "-E", "separator=/t", "-e", "frame.time_epoch", "-e", "ip.src", "-e", "tcp.srcport",
            "-e", "tcp.stream", "-e", "tcp.seq", "-e", "tcp.len"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"tshark failed on {pcap}: {r.stderr.strip()[-300:]}")
    rows = [line.split("\t") for line in r.stdout.splitlines() if line.strip()]
    df = pd.DataFrame(rows, columns=["time_epoch", "src", "sport", "stream", "seq", "length"])
    for c in ("time_epoch", "sport", "stream", "seq", "length"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["time_s"] = df["time_epoch"] - (df["time_epoch"].min() if len(df) else 0.0)
    return df


def _tcp_slices(pcap: Path, n: int) -> np.ndarray | None:
    seg = tcp_payload(pcap)
    if seg.empty:
        return None
    top = seg.groupby(["src", "sport"])["length"].sum().idxmax()
    s = seg[(seg["src"] == top[0]) & (seg["sport"] == top[1])].rename(
        columns={"stream": "stream_id", "seq": "offset"})
    tl = goodput_timeline(new_bytes(s), n_intervals=n)
    return tl["mbps"].to_numpy() if len(tl) else None


def interval_goodput(rep_dir: str | Path, n_intervals: int = 10) -> np.ndarray | None:
    """Goodput (Mbit/s) of ``n_intervals`` equal slices of the transfer, or None.

    See the module docstring for the order in which sources are tried. iperf3 JSON gives its own
    intervals (``-i``), whatever ``n_intervals`` is.
    """
    rf = rep_files(rep_dir)
    cap = rf.client_capture
    if cap is not None:
        keylog = rf.keylog if cap.suffix == ".pcap" else None
        tables = load_pcap(cap, keylog=keylog)
        sf = tables.stream_frames("to_client")
        if not sf.empty:
            tl = goodput_timeline(new_bytes(sf), n_intervals=n_intervals)
            return tl["mbps"].to_numpy()
        if tables.packets.empty:
            for pcap in (cap, rf.server_pcap):
                if pcap is not None:
                    out = _tcp_slices(pcap, n_intervals)
                    if out is not None:
                        return out
    for p in rf.iperf3:
        try:
            res = load_iperf3(p)
        except (ValueError, json.JSONDecodeError):
            continue
        iv = res.intervals[(res.intervals["stream"] == "sum") & (res.intervals["omitted"] != True)]
        if len(iv):
            return iv["mbps"].to_numpy(dtype=float)
    client_qlogs = [q for q in rf.qlogs if "client" in q.name.lower()] or rf.qlogs
    if client_qlogs:
        ev = load_qlogs(client_qlogs)
        if not ev.empty:
            sf = qlog_received_stream(ev, "client")
            if not sf.empty:
                return goodput_timeline(new_bytes(sf), n_intervals=n_intervals)["mbps"].to_numpy()
    return None
