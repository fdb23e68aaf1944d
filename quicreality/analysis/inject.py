"""Inject a known slowdown into a copy of a run, to check that the regression report catches it.

A real "50 % goodput drop" means every byte took twice as long. :func:`slow_down_run` makes
exactly that out of a recorded run, at every level the report reads:

* ``samples.jsonl``: goodput-like metrics (unit ``Mbit/s``) ÷ factor, times × factor;
* captures (pcap and pcapng, keys kept): packet timestamps stretched around the first packet
  (:func:`stretch_capture`), so wire goodput and every slice drop by the factor;
* qlogs: event times stretched the same way (:func:`stretch_qlog`).

Used by the injected-regression test and the detection-power check in ``docs/analysis.md``.
"""

from __future__ import annotations

import gzip
import json
import shutil
import struct
from collections.abc import Collection
from pathlib import Path

from .qlog import is_qlog_name

__all__ = ["slow_down_run", "stretch_capture", "stretch_qlog"]

_RS = "\x1e"


def stretch_capture(src: str | Path, dst: str | Path, factor: float) -> int:
    """Copy a pcap/pcapng with timestamps stretched by ``factor`` around the first packet.

    Returns the number of packets rewritten.
    """
    data = bytearray(Path(src).read_bytes())
    n = _stretch_pcapng(data, factor) if data[:4] == b"\x0a\x0d\x0d\x0a" else \
        _stretch_pcap(data, factor)
    Path(dst).write_bytes(bytes(data))
    return n


def _stretch_pcap(data: bytearray, factor: float) -> int:
    magic = bytes(data[:4])
    end = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    div = 1_000_000_000 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1_000_000
    off, t0, n = 24, None, 0
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from(end + "IIII", data, off)
        t = sec * div + frac
        t0 = t if t0 is None else t0
        new = t0 + round((t - t0) * factor)
        struct.pack_into(end + "II", data, off, new // div, new % div)
        off += 16 + incl
        n += 1
    return n


def _stretch_pcapng(data: bytearray, factor: float) -> int:
    off, end, t0, n = 0, "<", None, 0
    while off + 12 <= len(data):
        btype = struct.unpack_from(end + "I", data, off)[0]
        if btype == 0x0A0D0D0A:
            end = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        blen = struct.unpack_from(end + "I", data, off + 4)[0]
        if blen < 12:
            break
        if btype == 6:  # enhanced packet block: timestamp high/low at +12/+16 (interface units)
            hi, lo = struct.unpack_from(end + "II", data, off + 12)
            t = (hi << 32) | lo
            t0 = t if t0 is None else t0
            new = t0 + round((t - t0) * factor)
            struct.pack_into(end + "II", data, off + 12, new >> 32, new & 0xFFFFFFFF)
            n += 1
        off += blen
    return n


def stretch_qlog(src: str | Path, dst: str | Path, factor: float) -> int:
    """Copy a qlog (any container, optionally gzipped) with event times stretched by ``factor``.

    Times are stretched around the first event (for ``delta``/``relative_to_previous_event``
    each delta is scaled). Returns the number of events rewritten.
    """
    p = Path(src)
    opener = gzip.open if p.name.endswith(".gz") else open
    with opener(p, "rt") as f:  # type: ignore[operator]
        text = f.read()
    if text.lstrip(" \t\r\n").startswith(_RS):  # Python's lstrip() would eat RS too
        recs = _records(text.split(_RS))
        n = _stretch_events(recs[1:], _fmt(recs[0]), factor)
        out = "".join(_RS + json.dumps(r) + "\n" for r in recs)
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            recs = _records(text.splitlines())
            n = _stretch_events(recs[1:], _fmt(recs[0]), factor)
            out = "".join(json.dumps(r) + "\n" for r in recs)
        else:
            n = 0
            for tr in doc.get("traces", []):
                n += _stretch_events(tr.get("events", []), _fmt({"trace": tr}), factor)
            out = json.dumps(doc)
    with opener(Path(dst), "wt") as f:  # type: ignore[operator]
        f.write(out)
    return n


def _records(chunks: list[str]) -> list[dict]:  # type: ignore[type-arg]
    out = []
    for c in chunks:
        c = c.strip(" \t\r\n")
        if c:
            try:
                out.append(json.loads(c))
            except json.JSONDecodeError:
                continue  # truncated record of a killed peer
    return out


def _fmt(header: dict) -> str:  # type: ignore[type-arg]
    cf = (header.get("trace") or {}).get("common_fields") or {}
    return str(cf.get("time_format", ""))


def _stretch_events(events: list, time_format: str, factor: float) -> int:  # type: ignore[type-arg]
    times = [e for e in events if isinstance(e, dict) and isinstance(e.get("time"), (int, float))]
    if not times:
        return 0
    if time_format in ("delta", "relative_to_previous_event"):
        for e in times[1:]:
            e["time"] = e["time"] * factor
        return len(times)
    t0 = min(e["time"] for e in times)
    for e in times:
        e["time"] = t0 + (e["time"] - t0) * factor
    return len(times)


def slow_down_run(src_run: str | Path, dst_run: str | Path, factor: float = 2.0,
                  only: Collection[str] | None = None) -> Path:
    """Copy ``src_run`` to ``dst_run`` as if every transfer had taken ``factor`` times longer.

    ``only``: slow down only these workloads (names), e.g. those of our stack, leaving the
    controls as measured.
    """
    src, dst = Path(src_run), Path(dst_run)
    shutil.copytree(src, dst)
    for f in dst.rglob("*"):
        if not f.is_file():
            continue
        if only is not None:
            parts = f.relative_to(dst).parts
            if len(parts) < 3 or parts[1] not in only:
                continue
        if f.suffix in (".pcap", ".pcapng"):
            stretch_capture(f, f, factor)
        elif is_qlog_name(f):
            stretch_qlog(f, f, factor)
        elif f.name == "samples.jsonl":
            rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
            for r in rows:
                unit = str(r.get("unit", ""))
                if isinstance(r.get("value"), (int, float)):
                    if unit in ("Mbit/s", "bit/s", "kbit/s", "Gbit/s"):
                        r["value"] = r["value"] / factor
                    elif unit == "s" and "time" in str(r.get("metric", "")):
                        r["value"] = r["value"] * factor
            f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dst
