"""What is in a rep folder, and the per-slice goodput samples the regression verdict uses.

The runner writes the client-side and server-side captures of the impaired link, the merged
key log, the client-side pcapng with the keys injected, qlogs, and peer output
(``iperf3 -J``) into each ``rep-<n>/`` folder. :func:`rep_files` finds them by name
(``*client*.pcapng`` ...) so small naming changes do not break the analysis;
:func:`interval_goodput` picks the best source for goodput slices:

1. the decrypted QUIC captures: first-seen STREAM bytes on client-initiated bidirectional
   streams (:func:`response_frames`) in the dominant direction, counted at the receiver's
   capture (downloads: client side; uploads such as the forward relay: server side);
2. an undecryptable QUIC capture: UDP payload bytes of the dominant direction (a wire rate,
   retransmissions included — still proportional to goodput for a regression check);
3. a TCP capture (first-seen sequence bytes of the dominant sender, receiver side: iperf3);
4. the ``iperf3 -J`` interval sums;
5. the client's qlog (STREAM frames it received).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .cache import DERIVED_DIR
from .iperf3 import load_iperf3
from .metrics import goodput_timeline, new_bytes, qlog_received_stream
from .pcap import load_pcap, tcp_frame
from .qlog import find_qlogs, load_qlogs

__all__ = ["RepFiles", "interval_goodput", "interval_samples", "rep_files", "response_frames",
           "tcp_payload"]


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
    files = sorted(p for p in d.rglob("*") if p.is_file()
                   and DERIVED_DIR not in p.relative_to(d).parts[:-1])
    pcapngs = [p for p in files if p.suffix == ".pcapng"]
    pcaps = [p for p in files if p.suffix == ".pcap"]
    rf = RepFiles(path=d)
    rf.client_pcapng = _first(pcapngs, "client", "decrypt", "inject") or (
        pcapngs[0] if len(pcapngs) == 1 else None)
    rf.client_pcap = _first(pcaps, "client")
    rf.server_pcap = _first(pcaps, "server")
    logs = [p for p in files if p.suffix in (".log", ".txt", ".keys")]
    exact = [p for p in logs if p.name == "keys.log"]  # the runner's merged key log
    rf.keylog = exact[0] if exact else _first(logs, "keylog", "keys", "sslkey", "secrets")
    rf.qlogs = find_qlogs(d)
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


def response_frames(stream_frames: pd.DataFrame) -> pd.DataFrame:
    """STREAM frames on client-initiated bidirectional streams (``id % 4 == 0``): the responses.

    HTTP/3 control and QPACK streams (unidirectional) carry a few bytes at handshake time and
    would otherwise stretch the transfer's first slice back to the handshake.
    """
    return stream_frames[stream_frames["stream_id"] % 4 == 0].reset_index(drop=True)


def tcp_payload(pcap: str | Path, timeout: float = 300.0) -> pd.DataFrame:
    """TCP segments with payload: time_s, src, sport, stream, seq (relative), length.

    Read from the rep's derived cache when the capture was derived (:mod:`.capcache`).
    """
    from .cache import fingerprint, rep_dir_of
    from .capcache import cached_tcp, store_tcp  # the cache needs pyarrow: import lazily

    hit = cached_tcp(pcap)
    if hit is not None:
        return hit
    rep = rep_dir_of(pcap)
    fp = fingerprint(rep, [pcap]) if rep is not None else None
    df = tcp_payload_raw(pcap, timeout)
    store_tcp(pcap, df, fp)
    return df


def tcp_payload_raw(pcap: str | Path, timeout: float = 300.0) -> pd.DataFrame:
    """:func:`tcp_payload` without the cache: always runs tshark."""
    argv = ["tshark", "-r", str(pcap), "-n", "-Y", "tcp.len > 0", "-T", "fields",
            "-E", "separator=/t", "-e", "frame.time_epoch", "-e", "ip.src", "-e", "tcp.srcport",
            "-e", "tcp.stream", "-e", "tcp.seq", "-e", "tcp.len"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"tshark failed on {pcap}: {r.stderr.strip()[-300:]}")
    rows = [line.split("\t") for line in r.stdout.splitlines() if line.strip()]
    return tcp_frame(rows)


def _slices(frames: pd.DataFrame, n: int) -> np.ndarray | None:
    tl = goodput_timeline(new_bytes(frames), n_intervals=n)
    return tl["mbps"].to_numpy() if len(tl) else None


def _tcp_slices(rf: RepFiles, n: int) -> np.ndarray | None:
    """First-seen TCP bytes of the dominant sender, at the receiver's capture.

    The client speaks first (iperf3 sends its cookie), so if the dominant sender is the
    address of the first payload segment, data flows to the server: use the server-side
    capture.
    """
    cap = rf.client_capture
    if cap is None:
        return None
    seg = tcp_payload(cap)
    if seg.empty:
        return None
    top = seg.groupby(["src", "sport"])["length"].sum().idxmax()
    if top[0] == seg["src"].iloc[0] and rf.server_pcap is not None:
        srv = tcp_payload(rf.server_pcap)
        if not srv.empty:
            seg = srv
    s = seg[(seg["src"] == top[0]) & (seg["sport"] == top[1])].rename(
        columns={"stream": "stream_id", "seq": "offset"})
    return _slices(s, n)


def _quic_slices(rf: RepFiles, n: int) -> tuple[np.ndarray | None, str]:
    """Slices from the QUIC captures: decrypted STREAM bytes, else wire bytes."""
    cap = rf.client_capture
    if cap is None:
        return None, ""
    tables = load_pcap(cap, keylog=rf.keylog if cap.suffix == ".pcap" else None)
    if tables.packets.empty:
        return None, ""
    down = response_frames(tables.stream_frames("to_client"))
    up = response_frames(tables.stream_frames("to_server"))
    if len(down) or len(up):
        if down["length"].sum() >= up["length"].sum():
            return _slices(down, n), "quic stream bytes, client-side capture"
        if rf.server_pcap is not None:  # upload: count at the receiver
            st = load_pcap(rf.server_pcap, keylog=rf.keylog)
            at_server = response_frames(st.stream_frames("to_server"))
            if len(at_server):
                return _slices(at_server, n), "quic stream bytes, server-side capture"
        return _slices(up, n), "quic stream bytes, client-side capture (upload)"
    # not decryptable: UDP payload bytes of the dominant direction (a wire rate, not goodput)
    p = tables.packets.drop_duplicates("frame_no")
    p = p[p["packet_type"] == "1RTT"]
    if p.empty:
        return None, ""
    dom = p.groupby("direction")["udp_length"].sum().idxmax()
    d = p[p["direction"] == dom]
    lengths = d["udp_length"].to_numpy(dtype=float)
    pseudo = pd.DataFrame({"time_s": d["time_s"].to_numpy(), "stream_id": 0,
                           "offset": np.concatenate([[0.0], np.cumsum(lengths)[:-1]]),
                           "length": lengths})
    return _slices(pseudo, n), f"udp payload bytes {dom} (capture not decrypted)"


def interval_samples(rep_dir: str | Path, n_intervals: int = 10,
                     ) -> tuple[np.ndarray | None, str]:
    """Goodput slices of one rep and a description of where they came from.

    See the module docstring for the order in which sources are tried. iperf3 JSON gives its
    own intervals (``-i``), whatever ``n_intervals`` is.
    """
    rf = rep_files(rep_dir)
    out, src = _quic_slices(rf, n_intervals)
    if out is not None:
        return out, src
    if rf.client_capture is not None:
        out = _tcp_slices(rf, n_intervals)
        if out is not None:
            return out, "tcp sequence bytes, receiver-side capture"
    for p in rf.iperf3:
        try:
            res = load_iperf3(p)
        except (ValueError, json.JSONDecodeError):
            continue
        iv = res.intervals[(res.intervals["stream"] == "sum") & res.intervals["omitted"].ne(True)]
        if len(iv):
            return iv["mbps"].to_numpy(dtype=float), f"iperf3 intervals ({p.name})"
    client_qlogs = [q for q in rf.qlogs if "client" in str(q).lower()] or rf.qlogs
    if client_qlogs:
        ev = load_qlogs(client_qlogs)
        if not ev.empty:
            sf = response_frames(qlog_received_stream(ev, "client"))
            if not sf.empty:
                return _slices(sf, n_intervals), "quic stream bytes, client qlog"
    return None, ""


def interval_goodput(rep_dir: str | Path, n_intervals: int = 10) -> np.ndarray | None:
    """Goodput (Mbit/s) of ``n_intervals`` equal slices of the transfer, or None."""
    return interval_samples(rep_dir, n_intervals)[0]
