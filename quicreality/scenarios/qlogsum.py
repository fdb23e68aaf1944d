"""A few numbers per qlog file, for the runner's samples and summary table.

This is deliberately small: the runner needs the RTT median, packets lost and
packets sent of each endpoint, whatever qlog flavour the peer writes.  Full
qlog → pandas parsing lives in :mod:`quicreality.analysis`.

Accepted containers: JSON (``traces[].events[]``, aioquic), JSON-SEQ (records
split on 0x1E: ours, ngtcp2, curl) and NDJSON (quic-go).  Event names are
normalised by dropping the category and a ``recovery_`` prefix, so
``recovery:metrics_updated`` (0.3) and ``quic:recovery_metrics_updated``
(draft) are both ``metrics_updated``.  Times and RTTs are in milliseconds in
all the peers we run (ngtcp2 0.12 writes integer ms).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["QlogSummary", "iter_events", "normalise_name", "summarise_qlog", "vantage_point"]


def normalise_name(name: str) -> str:
    """``recovery:metrics_updated`` / ``quic:recovery_metrics_updated`` → ``metrics_updated``."""
    base = name.rsplit(":", 1)[-1]
    return base.removeprefix("recovery_")


def _records(text: str) -> Iterator[dict[str, Any]]:
    s = text.lstrip()
    if "\x1e" in text:
        parts = text.split("\x1e")
    elif s.startswith("{") and '"traces"' in s[:4096]:
        try:
            doc = json.loads(s)
        except json.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            yield doc
            for tr in doc.get("traces", []):
                for ev in tr.get("events", []):
                    if isinstance(ev, dict):
                        yield ev
            return
        parts = text.splitlines()
    else:
        parts = text.splitlines()
    for p in parts:
        p = p.strip()
        if not p:
            continue
        try:
            obj = json.loads(p)
        except json.JSONDecodeError:
            continue  # a truncated last record (peer killed) is skipped
        if isinstance(obj, dict):
            yield obj


def iter_events(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(normalised name, data) of every event in a qlog file of any supported flavour."""
    text = Path(path).read_text(errors="replace")
    for rec in _records(text):
        name = rec.get("name")
        if isinstance(name, str):
            data = rec.get("data")
            yield normalise_name(name), data if isinstance(data, dict) else {}


def vantage_point(path: str | Path) -> str | None:
    """``client`` / ``server`` from the file's header (or its name), else None."""
    p = Path(path)
    full = p.read_text(errors="replace")
    if full.lstrip().startswith("{") and '"traces"' in full[:4096]:
        try:  # JSON (aioquic): vantage_point may follow the events
            vp = json.loads(full)["traces"][0].get("vantage_point", {}).get("type")
            if vp in ("client", "server"):
                return str(vp)
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
            pass
    text = full[:4096]
    for key in ('"type":"client"', '"type": "client"'):
        if key in text:
            return "client"
    for key in ('"type":"server"', '"type": "server"'):
        if key in text:
            return "server"
    stem = p.stem.lower()
    if stem.endswith("client"):
        return "client"
    if stem.endswith("server"):
        return "server"
    return None


@dataclass(frozen=True, slots=True)
class QlogSummary:
    """Numbers from one endpoint's qlog.

    Attributes:
        file: The qlog file.
        vantage: ``client`` / ``server`` / None.
        rtt_samples: ``latest_rtt`` values > 0 seen in metrics updates.
        rtt_median_ms: Median of those (None without samples).
        min_rtt_ms: Smallest ``min_rtt`` (or latest_rtt) reported.
        packets_sent: ``packet_sent`` events.
        packets_lost: ``packet_lost`` events (the sender's loss detection).
        packets_received: ``packet_received`` events.
        packets_spurious: ``quicreality:spurious_loss`` events (packets declared lost and
            acknowledged later); None for other stacks' qlogs, which do not report them.
    """

    file: str
    vantage: str | None
    rtt_samples: int
    rtt_median_ms: float | None
    min_rtt_ms: float | None
    packets_sent: int
    packets_lost: int
    packets_received: int
    packets_spurious: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return asdict(self)


def summarise_qlog(path: str | Path, vantage: str | None = None) -> QlogSummary:
    """Summarise one qlog file (unreadable parts are skipped, never fatal).

    Args:
        path: The qlog file.
        vantage: ``client``/``server`` if the caller knows it (e.g. from the directory the
            peer wrote into); otherwise read from the file.
    """
    rtts: list[float] = []
    min_rtt: float | None = None
    sent = lost = received = spurious = 0
    for name, data in iter_events(path):
        if name == "metrics_updated":
            v = data.get("latest_rtt")
            if isinstance(v, (int, float)) and v > 0:
                rtts.append(float(v))
            m = data.get("min_rtt")
            if isinstance(m, (int, float)) and m > 0:
                min_rtt = m if min_rtt is None else min(min_rtt, float(m))
        elif name == "packet_sent":
            sent += 1
        elif name == "packet_lost":
            lost += 1
        elif name == "packet_received":
            received += 1
        elif name == "spurious_loss":
            spurious += 1
    if min_rtt is None and rtts:
        min_rtt = min(rtts)
    return QlogSummary(file=str(path), vantage=vantage or vantage_point(path),
                       rtt_samples=len(rtts),
                       rtt_median_ms=statistics.median(rtts) if rtts else None,
                       min_rtt_ms=min_rtt, packets_sent=sent, packets_lost=lost,
                       packets_received=received,
                       packets_spurious=spurious if _is_ours(path) else None)


def _is_ours(path: str | Path) -> bool:
    """True for a qlog our stack wrote (its header's title, see qlog/writer.py)."""
    with open(path, errors="replace") as f:
        head = f.read(4096)
    return '"title": "quicreality"' in head or '"title":"quicreality"' in head
