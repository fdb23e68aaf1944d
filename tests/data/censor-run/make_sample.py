#!/usr/bin/env python3
"""Copy a real ``censor-gfw`` run into this folder, pruned to what notebooks/censorship.py reads.

    python tests/data/censor-run/make_sample.py results/runs/<UTC time>-<git sha>

Kept: ``run.json``, ``summary.json``; per repetition ``check.json``, ``samples.jsonl``,
``censor.jsonl``, ``manifest.json``, and ``client.pcap`` cut to its first 8 packets
(``editcap -r``: the client's first flight and the server's first answers, which is all the
fingerprint tool reads). Everything else (the transfers, qlogs, keys, logs) is left out.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEEP = ("check.json", "samples.jsonl", "censor.jsonl", "manifest.json")


def main(src: Path) -> Path:
    """Write the pruned copy of ``src`` to ``HERE / src.name``; return it."""
    dst = HERE / src.name
    if dst.exists():
        raise SystemExit(f"{dst} exists")
    for name in ("run.json", "summary.json"):
        if (src / name).exists():
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dst / name)
    for rep in sorted(src.rglob("rep-*")):
        out = dst / rep.relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for name in KEEP:
            if (rep / name).exists():
                shutil.copy2(rep / name, out / name)
        if (rep / "client.pcap").exists():
            subprocess.run(["editcap", "-r", str(rep / "client.pcap"), str(out / "client.pcap"),
                            "1-8"], check=True)
    return dst


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(main(Path(sys.argv[1])))
