"""Run the audit's key reproducers and say which findings still reproduce.

The same eight scripts and the same "still reproduces" conditions as the audit's own
``../shared/audit/check.sh``, but each script is taken from this directory when a port exists
(the originals poke at attributes that moved, or stop with an error because the attack no longer
gets as far as they assume; see README.md) and from ``../shared/audit/`` otherwise.

usage (from the project root): python3 scripts/audit/check.py [--python PY]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ORIGINALS = ROOT.parent / "shared" / "audit"


def _e1(t: str) -> bool:
    return "HandshakeCompleted" in t.split("server events:")[-1].split("\n")[0] or "QRLY" in t


def _e4(t: str) -> bool:
    m = re.search(r"victim got (\d+) B", t)
    return m is None or int(m.group(1)) > 3600


def _e10b(t: str) -> bool:
    m = re.search(r"(\d+) fields, ([\d.]+) MB", t)
    return m is not None and float(m.group(2)) > 1.0


#: script -> True when its output shows the defect still reproducing (as in the audit's check.sh)
STILL_REPRODUCES: dict[str, Callable[[str], bool]] = {
    "e1_bypass": _e1,
    "e1b_passive": _e1,
    "e2_replay": lambda t: re.search(r"t=\+ *(121|70)s: ACCEPT", t) is not None,
    "e4_close_amp": _e4,
    "e8_pn_replay": lambda t: "after replaying" in t
    and t.split("after replaying")[-1].count("payload-0") > 0,
    "e10b_qpack_h3": _e10b,
    "e15_pending_fill": lambda t: "genuine client -> Forward" in t,
    "e6_h3_grease": lambda t: "UNCAUGHT" in t,
}


def script_path(name: str) -> Path | None:
    """The port in this directory, else the audit's original, else None."""
    for d in (HERE, ORIGINALS):
        if (d / f"{name}.py").is_file():
            return d / f"{name}.py"
    return None


def run(name: str, python: str = sys.executable, timeout: float = 90.0) -> tuple[str, str]:
    """Run one reproducer: ``(verdict, output)``, verdict one of fixed, reproduces, broken, missing."""
    path = script_path(name)
    if path is None:
        return "missing", ""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        proc = subprocess.run([python, str(path)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return "broken", f"timed out after {timeout:.0f} s"
    out = proc.stdout + proc.stderr
    if "Traceback" in out and "UNCAUGHT" not in out:
        return "broken", out
    return ("reproduces" if STILL_REPRODUCES[name](out) else "fixed"), out


def main(argv: list[str] | None = None) -> int:
    """Print one line per script and the audit's summary line; exit 1 unless all are fixed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable, help="interpreter to run them with")
    args = ap.parse_args(argv)
    verdicts: dict[str, str] = {}
    for name in STILL_REPRODUCES:
        verdicts[name], _ = run(name, args.python)
        where = script_path(name)
        print(f"{name:18} {verdicts[name]:10} {where.relative_to(ROOT.parent) if where else ''}")
    fixed = sum(v == "fixed" for v in verdicts.values())
    rest = {k: [n for n, v in verdicts.items() if v == k] for k in ("reproduces", "broken", "missing")}
    line = f"security reproducers: {fixed}/{len(verdicts)} fixed"
    for kind, names in rest.items():
        if names:
            line += f"; {kind}: {' '.join(names)}"
    print(line)
    return 0 if fixed == len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
