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
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import cache
from .iperf3 import load_iperf3
from .metrics import goodput_timeline, new_bytes, qlog_received_stream
from .pcap import load_pcap, tcp_frame
from .qlog import find_qlogs, load_qlogs

__all__ = ["SLICE_COLUMNS", "RepFiles", "cached_slice_source", "derived_rep_files",
           "interval_goodput", "interval_samples", "record_files", "rep_files", "response_frames",
           "slice_source", "tcp_payload"]

#: Columns of the first-seen-bytes table the slices are binned from (``derived/slices``).
SLICE_COLUMNS = ["time_s", "stream_id", "offset", "length", "new_bytes"]


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
                   and cache.DERIVED_DIR not in p.relative_to(d).parts[:-1])
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


_ROLES = ("client_pcapng", "client_pcap", "server_pcap", "keylog")
_FILES_JSON = "files.json"


def record_files(rf: RepFiles) -> None:
    """Remember the rep's raw captures and key log in ``derived/files.json``.

    So that after the captures are pruned, :func:`derived_rep_files` still knows which
    (derived) capture was the client's and the server's.
    """
    if not cache.enabled():
        return
    d = rf.path / cache.DERIVED_DIR
    f = d / _FILES_JSON
    doc = _recorded(rf.path)
    new = {r: str(getattr(rf, r).relative_to(rf.path)) for r in _ROLES if getattr(rf, r)}
    if all(doc.get(r) == v for r, v in new.items()):
        return
    doc.update(new)
    try:
        d.mkdir(exist_ok=True)
        tmp = d / f".{_FILES_JSON}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(tmp, f)
    except OSError:
        pass  # a read-only run: nothing is cached


def _recorded(rep_dir: Path) -> dict[str, str]:
    try:
        doc = json.loads((rep_dir / cache.DERIVED_DIR / _FILES_JSON).read_text())
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in doc.items() if k in _ROLES and isinstance(v, str)}


def derived_rep_files(rep_dir: str | Path) -> RepFiles:
    """:func:`rep_files`, plus the captures/key log that were pruned after being derived.

    A role (client capture, server capture, key log) with no file now is filled with the
    recorded path if it no longer exists: the loaders then serve its derived tables.
    """
    rf = rep_files(rep_dir)
    if not cache.enabled():
        return rf
    for role, rel in _recorded(rf.path).items():
        p = rf.path / rel
        if getattr(rf, role) is None and not p.exists():
            setattr(rf, role, p)
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


def _first_seen(frames: pd.DataFrame) -> pd.DataFrame | None:
    """First-seen bytes of ``frames``, or None if they span no time (no slices at any N)."""
    nb = new_bytes(frames)
    if not len(goodput_timeline(nb, n_intervals=1)):
        return None
    return nb[[c for c in SLICE_COLUMNS if c in nb.columns]]


def _tcp_source(rf: RepFiles) -> pd.DataFrame | None:
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
    return _first_seen(s)


def _quic_source(rf: RepFiles) -> tuple[pd.DataFrame | None, str]:
    """First-seen bytes from the QUIC captures: decrypted STREAM bytes, else wire bytes."""
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
            return _first_seen(down), "quic stream bytes, client-side capture"
        if rf.server_pcap is not None:  # upload: count at the receiver
            st = load_pcap(rf.server_pcap, keylog=rf.keylog)
            at_server = response_frames(st.stream_frames("to_server"))
            if len(at_server):
                return _first_seen(at_server), "quic stream bytes, server-side capture"
        return _first_seen(up), "quic stream bytes, client-side capture (upload)"
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
    return _first_seen(pseudo), f"udp payload bytes {dom} (capture not decrypted)"


def slice_source(rf: RepFiles) -> tuple[str, pd.DataFrame, str]:
    """What the verdict's slices are computed from: ``(kind, table, description)``.

    ``kind`` is ``frames`` (first-seen bytes: :data:`SLICE_COLUMNS`, binned into N equal
    slices), ``values`` (iperf3's own intervals: one ``mbps`` column) or ``none``. See the
    module docstring for the order in which sources are tried.
    """
    nb, src = _quic_source(rf)
    if nb is not None:
        return "frames", nb, src
    if rf.client_capture is not None:
        nb = _tcp_source(rf)
        if nb is not None:
            return "frames", nb, "tcp sequence bytes, receiver-side capture"
    for p in rf.iperf3:
        try:
            res = load_iperf3(p)
        except (ValueError, json.JSONDecodeError):
            continue
        iv = res.intervals[(res.intervals["stream"] == "sum") & res.intervals["omitted"].ne(True)]
        if len(iv):
            return ("values", pd.DataFrame({"mbps": iv["mbps"].to_numpy(dtype=float)}),
                    f"iperf3 intervals ({p.name})")
    client_qlogs = [q for q in rf.qlogs if "client" in str(q).lower()] or rf.qlogs
    if client_qlogs:
        ev = load_qlogs(client_qlogs)
        if not ev.empty:
            sf = response_frames(qlog_received_stream(ev, "client"))
            if not sf.empty:
                nb = _first_seen(sf)
                if nb is not None:
                    return "frames", nb, "quic stream bytes, client qlog"
    return "none", pd.DataFrame({c: pd.Series(dtype=float) for c in SLICE_COLUMNS}), ""


def _slice_deps(rf: RepFiles, kind: str, src: str) -> list[Path]:
    """Raw files the slices depend on: captures always; iperf3/qlogs when they were used or
    would be tried (a new one appearing then invalidates)."""
    deps = [p for p in (rf.client_pcapng, rf.client_pcap, rf.server_pcap, rf.keylog) if p]
    if kind != "frames" or not src.startswith(("quic stream bytes, client-side",
                                                "quic stream bytes, server-side", "udp", "tcp")):
        deps += rf.iperf3
        if not src.startswith("iperf3"):
            deps += rf.qlogs
    return deps


def cached_slice_source(rep_dir: str | Path) -> tuple[str, pd.DataFrame, str]:
    """:func:`slice_source` of a rep folder through its derived cache (table ``slices``)."""
    rf = derived_rep_files(rep_dir)
    if not cache.enabled():
        return slice_source(rf)
    rc = cache.RepCache(rep_dir)
    info = rc.read_meta("slices")
    if info is not None:
        meta = info.get("meta", {})
        hit = rc.lookup("slices", _slice_deps(rf, meta.get("kind", ""), meta.get("source", "")))
        if hit is not None:
            return str(hit.meta["kind"]), hit.frame, str(hit.meta["source"])
    fp_all = cache.fingerprint(rc.rep_dir, _slice_deps(rf, "none", ""))
    kind, table, src = slice_source(rf)
    deps = {str(p) for p in _slice_deps(rf, kind, src)}
    fp = [f for f, p in zip(fp_all, _slice_deps(rf, "none", ""), strict=True) if str(p) in deps]
    rc.store("slices", table, [], meta={"kind": kind, "source": src}, fingerprints=fp)
    record_files(rf)
    return kind, table, src


def interval_samples(rep_dir: str | Path, n_intervals: int = 10,
                     ) -> tuple[np.ndarray | None, str]:
    """Goodput slices of one rep and a description of where they came from.

    See the module docstring for the order in which sources are tried. iperf3 JSON gives its
    own intervals (``-i``), whatever ``n_intervals`` is. The source table is read from the
    rep's derived cache (``derived/slices.parquet``) when valid, so a rep whose captures were
    pruned after it was derived still gives the same slices.
    """
    kind, table, src = cached_slice_source(rep_dir)
    if kind == "values":
        return table["mbps"].to_numpy(dtype=float), src
    if kind == "frames":
        tl = goodput_timeline(table, n_intervals=n_intervals)
        return (tl["mbps"].to_numpy() if len(tl) else None), src
    return None, ""


def interval_goodput(rep_dir: str | Path, n_intervals: int = 10) -> np.ndarray | None:
    """Goodput (Mbit/s) of ``n_intervals`` equal slices of the transfer, or None."""
    return interval_samples(rep_dir, n_intervals)[0]
