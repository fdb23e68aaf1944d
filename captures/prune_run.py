#!/usr/bin/env python3
"""Copy a real run folder into ``captures/``, pruned to stay small (a few MB).

    python captures/prune_run.py results/runs/<UTC time>-<git sha> [--keep-captures ours-ours]

Kept for every rep: ``manifest.json``, ``check.json``, ``samples.jsonl``, the peers'
stdout/stderr and configs, and every qlog **gzipped** (``*.sqlog.gz``/``*.qlog.gz``; the
analysis loaders read them as they are). Kept only for the ``--keep-captures`` workloads (rep 1):
``client.pcapng`` (the client-side capture with the TLS secrets injected), ``server.pcap`` and
``keys.log``. Kept whole: every rep's ``derived/`` tables (``python -m quicreality.analysis
derive``), so the analysis of the pruned copy gives what it gave on the full run. Dropped: every other capture, ``client.pcap`` (its packets are in the pcapng) and
the per-endpoint ``keys/`` folder (merged into ``keys.log``). Logs over 100 kB are gzipped. The run-level ``run.json``,
``summary.*`` and ``emulator/`` are kept. A ``PRUNED.md`` in the copy says what was removed.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMALL = 2_000_000  #: other files up to this size are kept (logs, configs)
GZIP_ABOVE = 100_000  #: ... and gzipped above this size
CAPTURES = ("client.pcapng", "server.pcap", "keys.log")


def prune(src: Path, out_dir: Path, keep_captures: set[str]) -> Path:
    """Write the pruned copy of ``src`` into ``out_dir / src.name``; return it."""
    dst = out_dir / src.name
    if dst.exists():
        raise FileExistsError(dst)
    removed: list[str] = []
    for f in sorted(src.rglob("*")):
        if not f.is_file():
            continue
        rel = f.relative_to(src)
        parts = rel.parts
        rep_dir = next((i for i, p in enumerate(parts) if p.startswith("rep-")), None)
        workload = parts[1] if len(parts) > 3 else ""
        in_rep_root = rep_dir is not None and rep_dir == len(parts) - 2
        target = dst / rel
        if rep_dir is not None and "derived" in parts[rep_dir + 1:-1]:
            target.parent.mkdir(parents=True, exist_ok=True)  # derived tables (analysis
            shutil.copy2(f, target)  # derive): kept whole, so the pruned run still analyses
            continue
        if f.name.endswith((".sqlog", ".qlog")):
            target = target.with_name(f.name + ".gz")
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(f, "rb") as fi, gzip.open(target, "wb", compresslevel=9) as fo:
                shutil.copyfileobj(fi, fo)
            continue
        keep_caps = (workload in keep_captures and in_rep_root
                     and parts[rep_dir] == "rep-1")  # type: ignore[index]
        if f.suffix in (".pcap", ".pcapng") or f.name in CAPTURES or "keys" in parts[:-1]:
            if keep_caps and f.name in CAPTURES:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)
            else:
                removed.append(str(rel))
            continue
        if f.stat().st_size > SMALL:
            removed.append(str(rel))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if f.stat().st_size > GZIP_ABOVE:  # e.g. gtlsclient's chatty stderr
            with open(f, "rb") as fi, gzip.open(target.with_name(f.name + ".gz"), "wb") as fo:
                shutil.copyfileobj(fi, fo)
        else:
            shutil.copy2(f, target)
    note = ["# Pruned copy of a real run", "",
            f"Source: `{src}` (a `python -m quicreality.scenarios run lossy-wan --quick` run).",
            (f"Made by `captures/prune_run.py`; captures kept for: "
             f"{', '.join(sorted(keep_captures))} (rep 1). qlogs are gzipped. Removed files:"),
            ""]
    note += [f"- `{r}`" for r in removed]
    (dst / "PRUNED.md").write_text("\n".join(note) + "\n")
    return dst


def main(argv: list[str] | None = None) -> int:
    """CLI."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, default=REPO / "captures")
    ap.add_argument("--keep-captures", nargs="*", default=["ours-ours"])
    args = ap.parse_args(argv)
    dst = prune(args.run, args.out, set(args.keep_captures))
    size = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())
    print(f"{dst}: {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
