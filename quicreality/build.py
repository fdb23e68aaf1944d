"""``python -m quicreality.build``: compile the hot modules with mypyc, in place.

``scripts/setup.sh`` runs it at install (``QR_MYPYC=0`` opts out). The compiled extension
(``<module>.cpython-*.so`` next to each ``.py``, plus one shared ``quicreality/_native__mypyc*.so``)
takes precedence on import; the ``.py`` is the fallback and behaves the same (the unit+sim suite
runs both ways, docs/performance.md). ``QR_PURE=1`` runs the ``.py`` of every compiled module
with the extensions left in place.

A build writes ``quicreality/_mypyc_stamp.json`` with the SHA-256 of every compiled source. When
a compiled source has changed since, importing quicreality falls back to pure Python for all the
compiled modules, with one warning line on stderr (``QR_MYPYC_STRICT=1``: ImportError instead).
Rebuild, or ``--clean`` to go back to pure Python for good. ``--status`` prints the active mode
and why, then each module's form.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import _compiled

ROOT = _compiled.ROOT
PACKAGE = _compiled.PACKAGE
STAMP = _compiled.STAMP
#: The modules compiled (defined in :mod:`._compiled`, which every import of quicreality reads).
MODULES = _compiled.MODULES


def source_of(module: str) -> Path:
    """The ``.py`` file of a dotted module name under this checkout."""
    return _compiled.source_of(module, ROOT)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compiled_files() -> list[Path]:
    """The extension files in the package: every module's and the shared one, including those of
    modules a previous build compiled that :data:`MODULES` no longer lists."""
    return sorted(PACKAGE.rglob("*.cpython-*.so"))


def stale_modules() -> list[str]:
    """Compiled modules whose source changed since the build (empty when not built)."""
    return _compiled.stale_modules(ROOT, STAMP, MODULES)


def clean() -> int:
    """Remove every extension and the stamp; returns how many files went."""
    files = compiled_files() + ([STAMP] if STAMP.exists() else [])
    for path in files:
        path.unlink()
    return len(files)


def build() -> None:
    """Compile :data:`MODULES` with mypyc (in a scratch dir for the C sources) and record the stamp.

    Raises RuntimeError with mypyc's output if it fails; the checkout is then left pure Python."""
    clean()
    scratch = Path(tempfile.mkdtemp(prefix="qr-mypyc-"))
    try:
        argv = [sys.executable, "-c",
                "import sys; from setuptools import setup; from mypyc.build import mypycify; "
                "a = sys.argv[1:]; sys.argv = ['setup.py', 'build_ext', '--inplace', '--build-temp', a[0], "
                "'--build-lib', a[0] + '/lib']; "
                "setup(name='quicreality-mypyc', ext_modules=mypycify(a[1:], opt_level='3', "
                "group_name='quicreality._native', target_dir=a[0]))",
                str(scratch), *(str(source_of(m).relative_to(ROOT)) for m in MODULES)]
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            clean()
            raise RuntimeError(f"mypyc failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}"
                               f"\n{proc.stderr[-3000:]}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    STAMP.write_text(json.dumps({"sources": {m: _sha256(source_of(m)) for m in MODULES}}, indent=1))


def status() -> list[tuple[str, bool]]:
    """(module, imported from a compiled extension) for every module of :data:`MODULES`."""
    return [(m, not str(importlib.import_module(m).__file__).endswith(".py")) for m in MODULES]


def mode_line() -> str:
    """``mode: compiled|pure (why)`` for this process (the first line of ``--status``)."""
    mode = _compiled.active or _compiled.activate()
    return f"mode: {'compiled' if mode.compiled else 'pure'} ({mode.reason})"


def main(argv: list[str] | None = None) -> int:
    """Build, clean or report."""
    ap = argparse.ArgumentParser(prog="python -m quicreality.build", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--clean", action="store_true", help="remove the extensions: pure Python again")
    g.add_argument("--status", action="store_true",
                   help="print the active mode (compiled or pure, and why), then each module's form")
    g.add_argument("--check", action="store_true",
                   help="exit 0 if a build is present and up to date with the sources, else 1")
    args = ap.parse_args(argv)
    if args.check:
        ok = STAMP.exists() and bool(compiled_files()) and not stale_modules()
        print("mypyc build up to date" if ok else "no up-to-date mypyc build")
        return 0 if ok else 1
    if args.clean:
        print(f"removed {clean()} files; {len(MODULES)} modules are pure Python")
        return 0
    if args.status:
        print(mode_line())
        for module, native in status():
            print(f"  {module:40s} {'mypyc' if native else 'python'}")
        return 0
    try:
        import mypyc  # noqa: F401  (shipped with mypy, in the dev extras)
    except ImportError:
        print("error: mypyc is not installed (pip install mypy)", file=sys.stderr)
        return 2
    if stale_modules():
        print("the existing build is stale: rebuilding")
    print(f"compiling {len(MODULES)} modules with mypyc (about a minute) ...", flush=True)
    wall, cpu = time.monotonic(), _children_cpu()
    try:
        build()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"built {len(compiled_files())} extensions in {time.monotonic() - wall:.0f} s wall, "
          f"{_children_cpu() - cpu:.0f} s CPU; stamp {STAMP.relative_to(ROOT)}")
    return 0


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (the compiler)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    sys.exit(main())
